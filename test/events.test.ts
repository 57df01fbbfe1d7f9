/**
 * Events API: ingestion (API keys, adapters of each AWS source, idempotency, deduplication,
 * concurrency, batches, monitoring settings), listing, deletion and tasks created from events.
 * Every request goes through the helper's `request`, so every response is also checked
 * against docs/api-specification.yaml. Envelopes are clones of test/fixtures/events/*.json.
 */
import { createHash, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import t from 'tap'
import type { Test } from 'tap'
import { recountStats } from '../src/modules/dashboard/recount.js'
import { build, assertProblem, type Api, type Response } from './helper.js'

type Json = Record<string, any>
type Severity = 'critical' | 'high' | 'medium' | 'low' | 'info'
type Source = 'aws.cloudwatch' | 'aws.guardduty' | 'aws.securityhub' | 'aws.health'
type EventStatus = 'open' | 'acknowledged' | 'resolved' | 'suppressed'
type Action = 'created' | 'updated' | 'resolved' | 'duplicate' | 'ignored' | 'rejected'
type IgnoreReason = 'unsupported_source' | 'unsupported_detail_type' | 'detail_unreadable' | 'no_findings' | 'too_many_findings' | 'insufficient_data' | 'no_open_event' | 'stale_resolution' | 'source_disabled' | 'below_min_severity'

interface MonitoringEvent {
  id: string
  dedup_key: string
  source: Source
  detail_type: string
  account_id: string
  region: string
  resources: string[]
  resource_count: number
  title: string
  description: string | null
  severity: Severity
  native_severity: string | null
  source_state: 'active' | 'resolved' | 'pending'
  status: EventStatus
  occurrence_count: number
  occurred_at: string
  last_seen_at: string
  resolved_at: string | null
  task_id: string | null
  labels: Record<string, string>
  raw: Json
  created_at: string
  updated_at: string
}
interface IngestResult {
  index: number
  item: number
  envelope_id: string | null
  event_id: string | null
  dedup_key: string | null
  action: Action
  reason: IgnoreReason | null
  error: { status: number, code: string, detail: string } | null
}
interface IngestResponse { accepted: number, duplicates: number, rejected: number, results: IngestResult[] }
interface Task {
  id: string
  title: string
  description: string | null
  status: string
  priority: string
  assigned_to: string | null
  created_by: string
  event_id: string | null
  due_at: string | null
  version: number
}
interface Page<T> { items: T[], next_cursor: string | null }
interface Who { id: string, token: string }

const ACCOUNT = '123456789012'
const OTHER_ACCOUNT = '210987654321'
const MISSING_ID = '01JDQ2Z5Y3K4M5N6P7Q8R9S0TV'
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const SEVERITIES: Severity[] = ['critical', 'high', 'medium', 'low', 'info']
const PRIORITY_OF: Record<Severity, string> = { critical: 'critical', high: 'high', medium: 'medium', low: 'low', info: 'low' }

// ------------------------------------------------------------------------------------------
// Envelopes: clones of the fixtures, each with a new EventBridge id.

const FIXTURES = new URL('./fixtures/events/', import.meta.url)
const fixture = (name: string): Json => JSON.parse(readFileSync(new URL(`${name}.json`, FIXTURES), 'utf8'))
const clone = <T>(value: T): T => structuredClone(value)
/** Minutes after a fixed base, as EventBridge writes `time` (no milliseconds). */
const at = (minutes: number): string => new Date(Date.parse('2025-03-01T00:00:00.000Z') + minutes * 60_000).toISOString().replace('.000Z', 'Z')
/** The canonical form the API returns. */
const iso = (time: string): string => new Date(time).toISOString()
const hex = (): string => randomUUID().replace(/-/g, '')
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

function envelope (name: string, change?: (e: Json) => void): Json {
  const e = fixture(name)
  e.id = randomUUID()
  change?.(e)
  return e
}

const alarmArn = (name: string, account = ACCOUNT, region = 'us-east-1'): string => `arn:aws:cloudwatch:${region}:${account}:alarm:${name}`

/** A CloudWatch Alarm State Change of alarm `name`; `severity` becomes the alarm's `severity` tag. */
function alarm (o: { name: string, time?: string, state?: 'ALARM' | 'OK' | 'INSUFFICIENT_DATA', severity?: string, account?: string, region?: string }): Json {
  const state = o.state ?? 'ALARM'
  const file = state === 'OK' ? 'cloudwatch-ok' : state === 'INSUFFICIENT_DATA' ? 'cloudwatch-insufficient-data' : 'cloudwatch-alarm'
  return envelope(file, e => {
    e.account = o.account ?? ACCOUNT
    e.region = o.region ?? 'us-east-1'
    if (o.time) e.time = o.time
    e.resources = [alarmArn(o.name, e.account, e.region)]
    e.detail.alarmName = o.name
    e.detail.state.value = state
    if (o.severity) e.detail.configuration.tags = { severity: o.severity, team: 'platform' }
  })
}

const findingArn = (finding: string, account = ACCOUNT): string =>
  `arn:aws:guardduty:us-east-1:${account}:detector/5cc2a1e0b6d84f3e9a7b2c1d0e9f8a7b/finding/${finding}`

/** A GuardDuty Finding with id `finding` and severity `score`; `archived` resolves it. */
function guardDuty (o: { finding: string, score?: number, archived?: boolean, time?: string, account?: string }): Json {
  return envelope(o.archived ? 'guardduty-finding-archived' : 'guardduty-finding', e => {
    e.account = o.account ?? ACCOUNT
    e.detail.accountId = e.account
    e.detail.id = o.finding
    e.detail.arn = findingArn(o.finding, e.account)
    e.detail.severity = o.score ?? 8
    e.detail.service.archived = o.archived ?? false
    if (o.time) e.time = o.time
  })
}

/** A Security Hub finding of control finding `control`; `resolved` uses the RESOLVED fixture. */
function securityHub (o: { control: string, label?: string, resolved?: boolean, time?: string, account?: string }): Json {
  return envelope(o.resolved ? 'securityhub-finding-resolved' : 'securityhub-finding', e => {
    e.account = o.account ?? ACCOUNT
    const finding = e.detail.findings[0]
    finding.Id = `arn:aws:securityhub:us-east-1:${e.account}:security-control/EC2.8/finding/${o.control}`
    finding.AwsAccountId = e.account
    e.resources = [finding.Id]
    if (o.label) finding.Severity.Label = o.label
    if (o.time) e.time = o.time
  })
}

/** An AWS Health event `code`; `closed` uses the closed fixture. */
function health (o: { code: string, category?: string, status?: 'open' | 'closed' | 'upcoming', time?: string, account?: string }): Json {
  return envelope(o.status === 'closed' ? 'health-closed' : 'health-issue', e => {
    e.account = o.account ?? ACCOUNT
    e.detail.affectedAccount = e.account
    e.detail.eventArn = `arn:aws:health:us-east-1::event/EC2/AWS_EC2_OPERATIONAL_ISSUE/AWS_EC2_OPERATIONAL_ISSUE_${o.code}`
    e.detail.eventTypeCategory = o.category ?? 'issue'
    e.detail.statusCode = o.status ?? 'open'
    if (o.time) e.time = o.time
  })
}

// ------------------------------------------------------------------------------------------
// Clients and shared steps.

const qs = (query: Record<string, string | number | undefined>): string => {
  const params = new URLSearchParams()
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v))
  const s = params.toString()
  return s ? `?${s}` : ''
}

function eventsClient (api: Api) {
  const h = (token: string | undefined): Record<string, string> => (token ? api.auth(token) : {})
  return {
    ingest: (key: string | undefined, payload: object, headers: Record<string, string> = {}) =>
      api.request({ method: 'POST', url: '/api/events/ingest', headers: { ...(key === undefined ? {} : { 'x-api-key': key }), ...headers }, payload }),
    list: (token: string | undefined, query = '') => api.request({ method: 'GET', url: `/api/events${query}`, headers: h(token) }),
    get: (token: string | undefined, id: string) => api.request({ method: 'GET', url: `/api/events/${id}`, headers: h(token) }),
    remove: (token: string | undefined, id: string) => api.request({ method: 'DELETE', url: `/api/events/${id}`, headers: h(token) }),
    createTask: (token: string | undefined, id: string, payload?: object) =>
      api.request({ method: 'POST', url: `/api/events/${id}/create-task`, headers: h(token), ...(payload === undefined ? {} : { payload }) }),
    task: (token: string, id: string) => api.request({ method: 'GET', url: `/api/tasks/${id}`, headers: h(token) }),
    tasksOf: (token: string, eventId: string) => api.request({ method: 'GET', url: `/api/tasks${qs({ event_id: eventId, limit: 100 })}`, headers: h(token) }),
    removeTask: (token: string, id: string) => api.request({ method: 'DELETE', url: `/api/tasks/${id}`, headers: h(token) })
  }
}
type Client = ReturnType<typeof eventsClient>

/** Registers a monitored AWS account as the admin: its record id and its ingestion key. */
async function registerAccount (api: Api, accountId = ACCOUNT, name = 'prod'): Promise<{ id: string, key: string }> {
  const res = await api.request({
    method: 'POST',
    url: '/api/config/aws-accounts',
    headers: api.auth(await api.adminToken()),
    payload: { account_id: accountId, name, role_arn: `arn:aws:iam::${accountId}:role/MonitoringReadOnly` }
  })
  if (res.statusCode !== 201) throw new Error(`createAwsAccount ${accountId} failed: ${res.statusCode} ${res.body.slice(0, 300)}`)
  const body = res.json()
  return { id: body.account.id, key: body.api_key }
}

async function setup (t: Test) {
  const api = await build(t)
  const c = eventsClient(api)
  const token = await api.adminToken()
  const me = await api.request({ method: 'GET', url: '/api/auth/me', headers: api.auth(token) })
  const admin: Who = { id: me.json().id, token }
  const account = await registerAccount(api)
  return { api, c, admin, key: account.key, account }
}

/**
 * Ingests one envelope, expects 202 with `action` (and, for `ignored`, the `reason` when given);
 * returns its result.
 */
async function ingestOne (t: Test, c: Client, key: string, env: Json, action: Action, label: string, reason?: IgnoreReason): Promise<IngestResult> {
  const res = await c.ingest(key, env)
  if (res.statusCode !== 202) throw new Error(`${label}: ingest answered ${res.statusCode} ${res.body.slice(0, 400)}`)
  const body = res.json<IngestResponse>()
  t.equal(body.results.length, 1, `${label}: one result`)
  const r = body.results[0]!
  t.equal(r.action, action, `${label}: action ${action} (got ${r.action}${r.reason ? ` ${r.reason}` : ''}${r.error ? ` ${JSON.stringify(r.error)}` : ''})`)
  t.equal(r.item, 0, `${label}: item 0`)
  if (action !== 'ignored') t.equal(r.reason, null, `${label}: reason null`)
  else if (reason) t.equal(r.reason, reason, `${label}: reason ${reason}`)
  else t.type(r.reason, 'string', `${label}: a reason`)
  t.equal(r.envelope_id, env.id, `${label}: envelope_id`)
  t.same([body.accepted, body.duplicates, body.rejected], action === 'duplicate' ? [0, 1, 0] : action === 'rejected' ? [0, 0, 1] : [1, 0, 0], `${label}: totals`)
  if (action === 'created' || action === 'updated' || action === 'resolved') t.match(r.event_id, ULID, `${label}: event_id`)
  if (action === 'ignored') t.equal(r.event_id, null, `${label}: no event_id`)
  return r
}

async function mustEvent (c: Client, token: string, id: string | null): Promise<MonitoringEvent> {
  const res = await c.get(token, String(id))
  if (res.statusCode !== 200) throw new Error(`getEvent ${id} failed: ${res.statusCode} ${res.body.slice(0, 300)}`)
  return res.json<MonitoringEvent>()
}

/** Every event of a list query (following next_cursor), checking page sizes. */
async function walk (t: Test, c: Client, token: string, query: Record<string, string | undefined>, limit: number): Promise<MonitoringEvent[]> {
  const items: MonitoringEvent[] = []
  let cursor: string | undefined
  for (let page = 0; page < 100; page++) {
    const url = qs({ ...query, limit, cursor })
    const res = await c.list(token, url)
    if (res.statusCode !== 200) {
      t.fail(`GET /api/events${url}: ${res.statusCode} ${res.body.slice(0, 300)}`)
      return items
    }
    const body = res.json<Page<MonitoringEvent>>()
    if (body.items.length > limit) t.fail(`GET /api/events${url}: ${body.items.length} items, more than limit=${limit}`)
    items.push(...body.items)
    if (body.next_cursor === null) return items
    cursor = body.next_cursor
  }
  t.fail(`GET /api/events ${JSON.stringify(query)}: more than 100 pages`)
  return items
}

const ids = (events: Array<{ id: string }>): string[] => events.map(e => e.id)
const count = (results: IngestResult[], action: Action): number => results.filter(r => r.action === action).length

// ------------------------------------------------------------------------------------------
t.test('ingestion auth: API keys, disabled and deleted accounts, rotation, account mismatch', async t => {
  const { api, c, admin, key, account } = await setup(t)
  const first = alarm({ name: 'auth-alarm', time: at(0) })
  // A different, well-formed key: one character in the middle changed.
  const i = Math.floor(key.length / 2)
  const unknownKey = key.slice(0, i) + (key[i] === 'A' ? 'B' : 'A') + key.slice(i + 1)

  const refusals: Array<[string, Record<string, string>]> = [
    ['no X-Api-Key', {}],
    ['empty X-Api-Key', { 'x-api-key': '' }],
    ['malformed X-Api-Key', { 'x-api-key': 'not-an-api-key' }],
    ['unknown X-Api-Key', { 'x-api-key': unknownKey }],
    ['an admin bearer token instead of the key', api.auth(admin.token)],
    ['the API key sent as a bearer token', { authorization: `Bearer ${key}` }]
  ]
  for (const [label, headers] of refusals) {
    const res = await c.ingest(undefined, first, headers)
    assertProblem(t, res, 401, 'invalid_api_key', label)
    t.match(String(res.headers['www-authenticate'] ?? ''), /^ApiKey\b/, `${label}: WWW-Authenticate names the ApiKey scheme`)
  }
  // The refused deliveries left no trace: the first accepted one is not a duplicate.
  const created = await ingestOne(t, c, key, first, 'created', 'the valid key after the refusals')
  const inList = async () => ids((await c.list(admin.token, '?limit=100')).json<Page<MonitoringEvent>>().items)
  t.same(await inList(), [created.event_id], 'only the accepted delivery created an event')

  // Disabled account: its key is refused (spec: 401 invalid_api_key), enabling it again restores it.
  const disable = await api.request({ method: 'PUT', url: `/api/config/aws-accounts/${account.id}`, headers: api.auth(admin.token), payload: { enabled: false } })
  t.equal(disable.statusCode, 200, 'account disabled')
  t.equal(disable.json().enabled, false, 'enabled: false')
  const whileDisabled = alarm({ name: 'while-disabled', time: at(1) })
  const disabledRes = await c.ingest(key, whileDisabled)
  assertProblem(t, disabledRes, 401, 'invalid_api_key', 'key of a disabled account')
  t.match(String(disabledRes.headers['www-authenticate'] ?? ''), /^ApiKey\b/, 'disabled account: WWW-Authenticate')
  t.same(await inList(), [created.event_id], 'nothing ingested while disabled')
  const enable = await api.request({ method: 'PUT', url: `/api/config/aws-accounts/${account.id}`, headers: api.auth(admin.token), payload: { enabled: true } })
  t.equal(enable.statusCode, 200, 'account enabled again')
  await ingestOne(t, c, key, whileDisabled, 'created', 're-enabled: the envelope refused while disabled is processed now')

  // Rotation: the old key stops at once, the new one works.
  const rotate = await api.request({ method: 'POST', url: `/api/config/aws-accounts/${account.id}/rotate-key`, headers: api.auth(admin.token) })
  t.equal(rotate.statusCode, 200, 'rotate-key → 200')
  const newKey: string = rotate.json().api_key
  t.not(newKey, key, 'a new key')
  t.ok(newKey.startsWith(rotate.json().api_key_prefix), 'api_key_prefix is the start of the new key')
  const afterRotation = alarm({ name: 'after-rotation', time: at(2) })
  const old = await c.ingest(key, afterRotation)
  assertProblem(t, old, 401, 'invalid_api_key', 'the rotated (old) key')
  t.match(String(old.headers['www-authenticate'] ?? ''), /^ApiKey\b/, 'old key: WWW-Authenticate')
  await ingestOne(t, c, newKey, afterRotation, 'created', 'the new key')

  // Envelope of another AWS account: 403 alone, a rejected result in a batch.
  const foreign = alarm({ name: 'foreign-alarm', time: at(3), account: OTHER_ACCOUNT })
  assertProblem(t, await c.ingest(newKey, foreign), 403, 'account_mismatch', 'single envelope of another account')
  const mixed = await c.ingest(newKey, { events: [alarm({ name: 'batch-own', time: at(4) }), foreign] })
  t.equal(mixed.statusCode, 202, `batch with a foreign envelope → 202 (got ${mixed.statusCode})`)
  const mb = mixed.json<IngestResponse>()
  t.equal(mb.results[0]?.action, 'created', 'own envelope created')
  t.equal(mb.results[1]?.action, 'rejected', 'foreign envelope rejected')
  t.equal(mb.results[1]?.index, 1, 'rejected result index')
  t.equal(mb.results[1]?.envelope_id, foreign.id, 'rejected result envelope_id')
  t.equal(mb.results[1]?.event_id, null, 'rejected: no event')
  t.equal(mb.results[1]?.error?.status, 403, 'rejected: error.status 403')
  t.equal(mb.results[1]?.error?.code, 'account_mismatch', 'rejected: error.code')
  t.type(mb.results[1]?.error?.detail, 'string', 'rejected: error.detail')
  t.same([mb.accepted, mb.duplicates, mb.rejected], [1, 0, 1], 'batch totals')
  const foreignEvents = await c.list(admin.token, `?account_id=${OTHER_ACCOUNT}`)
  t.same(foreignEvents.json<Page<MonitoringEvent>>().items, [], 'no event of the other account was stored')

  // Deleted account: its key stops working; its events are kept.
  const del = await api.request({ method: 'DELETE', url: `/api/config/aws-accounts/${account.id}`, headers: api.auth(admin.token) })
  t.equal(del.statusCode, 204, 'account deleted')
  const deletedRes = await c.ingest(newKey, alarm({ name: 'after-delete', time: at(5) }))
  assertProblem(t, deletedRes, 401, 'invalid_api_key', 'key of a deleted account')
  t.match(String(deletedRes.headers['www-authenticate'] ?? ''), /^ApiKey\b/, 'deleted account: WWW-Authenticate')
  t.equal((await c.get(admin.token, String(created.event_id))).statusCode, 200, 'events of a deleted account are kept')
  t.equal((await inList()).length, 4, 'exactly the four accepted envelopes made events')
})

// ------------------------------------------------------------------------------------------
t.test('each fixture kind ingested once: action, then the stored event', async t => {
  const { api, c, key } = await setup(t)
  const user = await api.userWithRole('user')

  // Resolutions with nothing open, and INSUFFICIENT_DATA, open nothing.
  const nothingOpen: Array<[string, IgnoreReason]> = [
    ['cloudwatch-ok', 'no_open_event'], ['guardduty-finding-archived', 'no_open_event'], ['securityhub-finding-resolved', 'no_open_event'],
    ['health-closed', 'no_open_event'], ['cloudwatch-insufficient-data', 'insufficient_data']
  ]
  for (const [name, reason] of nothingOpen) {
    const r = await ingestOne(t, c, key, fixture(name), 'ignored', name, reason)
    t.equal(r.error, null, `${name}: error null`)
  }
  t.same((await c.list(user.token, '?limit=100')).json<Page<MonitoringEvent>>().items, [], 'no event after the ignored envelopes')

  const alarmFixture = fixture('cloudwatch-alarm')
  const gd = fixture('guardduty-finding')
  const sh = fixture('securityhub-finding')
  const hi = fixture('health-issue')
  const cases: Array<{ name: string, source: Source, detailType: string, region: string, severity: Severity, state: string, dedup: (k: string) => boolean }> = [
    { name: 'cloudwatch-alarm', source: 'aws.cloudwatch', detailType: 'CloudWatch Alarm State Change', region: 'us-east-1', severity: 'medium', state: 'active', dedup: k => k === alarmFixture.resources[0] },
    { name: 'guardduty-finding', source: 'aws.guardduty', detailType: 'GuardDuty Finding', region: 'us-east-1', severity: 'high', state: 'active', dedup: k => k === gd.detail.arn },
    { name: 'securityhub-finding', source: 'aws.securityhub', detailType: 'Security Hub Findings - Imported', region: 'us-east-1', severity: 'high', state: 'active', dedup: k => k.includes(sh.detail.findings[0].ProductArn) && k.includes(sh.detail.findings[0].Id) },
    { name: 'health-issue', source: 'aws.health', detailType: 'AWS Health Event', region: 'us-east-1', severity: 'high', state: 'active', dedup: k => k.includes(ACCOUNT) && k.includes(hi.detail.eventArn) },
    { name: 'health-public-issue', source: 'aws.health', detailType: 'AWS Health Event', region: 'eu-west-1', severity: 'high', state: 'active', dedup: k => k.includes(fixture('health-public-issue').detail.eventArn) },
    { name: 'health-scheduled-change', source: 'aws.health', detailType: 'AWS Health Event', region: 'us-east-1', severity: 'medium', state: 'pending', dedup: k => k.includes(fixture('health-scheduled-change').detail.eventArn) }
  ]
  const created: string[] = []
  for (const k of cases) {
    const env = fixture(k.name)
    const r = await ingestOne(t, c, key, env, 'created', k.name)
    t.equal(r.index, 0, `${k.name}: index 0`)
    t.equal(r.error, null, `${k.name}: error null`)
    const ev = await mustEvent(c, user.token, r.event_id)
    created.push(ev.id)
    t.equal(ev.id, r.event_id, `${k.name}: id`)
    t.equal(ev.dedup_key, r.dedup_key, `${k.name}: dedup_key as in the result`)
    t.ok(k.dedup(ev.dedup_key), `${k.name}: dedup_key ${ev.dedup_key} is built from the source's key fields`)
    t.equal(ev.source, k.source, `${k.name}: source`)
    t.equal(ev.detail_type, k.detailType, `${k.name}: detail_type`)
    t.equal(ev.account_id, ACCOUNT, `${k.name}: account_id`)
    t.equal(ev.region, k.region, `${k.name}: region`)
    t.equal(ev.severity, k.severity, `${k.name}: severity`)
    t.equal(ev.source_state, k.state, `${k.name}: source_state`)
    t.equal(ev.status, 'open', `${k.name}: status open`)
    t.equal(ev.occurrence_count, 1, `${k.name}: occurrence_count 1`)
    t.equal(ev.occurred_at, iso(env.time), `${k.name}: occurred_at is the envelope time, canonical`)
    t.equal(ev.last_seen_at, iso(env.time), `${k.name}: last_seen_at`)
    t.equal(ev.resolved_at, null, `${k.name}: resolved_at null`)
    t.equal(ev.task_id, null, `${k.name}: task_id null`)
    t.strictSame(ev.raw, env, `${k.name}: raw is the envelope`)
    t.ok(ev.labels !== null && typeof ev.labels === 'object' && !Array.isArray(ev.labels), `${k.name}: labels is an object`)
    t.ok(ev.title.length > 0, `${k.name}: a title`)
    t.match(ev.created_at, TIMESTAMP, `${k.name}: created_at`)
  }

  // A `time` with an offset is stored as canonical UTC.
  const offset = guardDuty({ finding: hex(), score: 2, time: '2024-06-03T16:27:52+02:00' })
  const r = await ingestOne(t, c, key, offset, 'created', 'time with an offset')
  const ev = await mustEvent(c, user.token, r.event_id)
  t.equal(ev.occurred_at, '2024-06-03T14:27:52.000Z', 'occurred_at in UTC with milliseconds')
  t.equal(ev.severity, 'low', 'GuardDuty score 2 → low')
  created.push(ev.id)

  const all = (await c.list(user.token, '?limit=100')).json<Page<MonitoringEvent>>().items
  t.same(ids(all).sort(), [...created].sort(), 'the list holds exactly the created events')
})

// ------------------------------------------------------------------------------------------
t.test('idempotency and dedup: duplicates, occurrences, severity, reopening, resolution', async t => {
  const { api, c, key, admin } = await setup(t)
  const user = await api.userWithRole('user')
  const name = 'prod-orders-latency'

  const e1 = alarm({ name, time: at(0) })
  const r1 = await ingestOne(t, c, key, e1, 'created', 'first ALARM')
  const id = String(r1.event_id)
  const before = await mustEvent(c, admin.token, id)
  t.equal(before.dedup_key, alarmArn(name), 'CloudWatch dedup_key is the alarm ARN')

  // The same envelope again, and the same id with other content: duplicates, nothing changes.
  const d1 = await ingestOne(t, c, key, e1, 'duplicate', 'same envelope again')
  t.equal(d1.event_id, id, 'duplicate names the event of the first delivery')
  const sameId = clone(e1)
  sameId.time = at(1)
  sameId.detail.configuration.tags = { severity: 'critical' }
  await ingestOne(t, c, key, sameId, 'duplicate', 'same envelope id, other content')
  t.strictSame(await mustEvent(c, admin.token, id), before, 'duplicates changed nothing')

  // A new delivery of the same alarm: one more occurrence.
  const e2 = alarm({ name, time: at(5) })
  const r2 = await ingestOne(t, c, key, e2, 'updated', 'same alarm, later time')
  t.equal(r2.event_id, id, 'updated the same event')
  let ev = await mustEvent(c, admin.token, id)
  t.equal(ev.occurrence_count, 2, 'occurrence_count 2')
  t.equal(ev.last_seen_at, iso(at(5)), 'last_seen_at advanced')
  t.equal(ev.occurred_at, iso(at(0)), 'occurred_at unchanged')
  t.strictSame(ev.raw, e2, 'raw is the latest envelope')
  t.equal(ev.created_at, before.created_at, 'created_at unchanged')
  t.ok(ev.updated_at >= before.updated_at, 'updated_at not earlier')

  // INSUFFICIENT_DATA of an alarm in ALARM changes nothing.
  const snapshot = ev
  await ingestOne(t, c, key, alarm({ name, state: 'INSUFFICIENT_DATA', time: at(6) }), 'ignored', 'INSUFFICIENT_DATA while open', 'insufficient_data')
  t.strictSame(await mustEvent(c, admin.token, id), snapshot, 'INSUFFICIENT_DATA changed nothing')

  // An occurrence delivered late (older time) is counted but does not move last_seen_at back.
  await ingestOne(t, c, key, alarm({ name, time: at(3) }), 'updated', 'late delivery of an older occurrence')
  ev = await mustEvent(c, admin.token, id)
  t.equal(ev.occurrence_count, 3, 'occurrence_count 3')
  t.equal(ev.last_seen_at, iso(at(5)), 'last_seen_at stays at the latest time')
  t.equal(ev.occurred_at, iso(at(0)), 'occurred_at still the first')

  // Severity follows the latest occurrence.
  await ingestOne(t, c, key, alarm({ name, time: at(10), severity: 'low' }), 'updated', 'severity tag low')
  ev = await mustEvent(c, admin.token, id)
  t.equal(ev.severity, 'low', 'severity changed to low')
  t.equal(ev.occurrence_count, 4, 'occurrence_count 4')

  // Acknowledged (a task was created), then a same-severity occurrence keeps it, a rise reopens it.
  const taskRes = await c.createTask(user.token, id, {})
  t.equal(taskRes.statusCode, 201, 'task created from the event')
  const taskId = taskRes.json<Task>().id
  t.equal((await mustEvent(c, admin.token, id)).status, 'acknowledged', 'acknowledged after create-task')
  await ingestOne(t, c, key, alarm({ name, time: at(12), severity: 'low' }), 'updated', 'same severity while acknowledged')
  ev = await mustEvent(c, admin.token, id)
  t.equal(ev.status, 'acknowledged', 'same severity: still acknowledged')
  t.equal(ev.occurrence_count, 5, 'occurrence_count 5')
  await ingestOne(t, c, key, alarm({ name, time: at(15), severity: 'high' }), 'updated', 'severity rises to high')
  ev = await mustEvent(c, admin.token, id)
  t.equal(ev.severity, 'high', 'severity high')
  t.equal(ev.status, 'open', 'a severity rise reopens an acknowledged event')
  t.equal(ev.task_id, taskId, 'the task link is kept')
  t.equal(ev.occurrence_count, 6, 'occurrence_count 6')

  // OK resolves it.
  const ok = alarm({ name, state: 'OK', time: at(20) })
  const rOk = await ingestOne(t, c, key, ok, 'resolved', 'OK')
  t.equal(rOk.event_id, id, 'resolved the open event')
  ev = await mustEvent(c, admin.token, id)
  t.equal(ev.status, 'resolved', 'status resolved')
  t.equal(ev.source_state, 'resolved', 'source_state resolved')
  t.match(ev.resolved_at, TIMESTAMP, 'resolved_at set')
  t.equal(ev.occurrence_count, 6, 'a resolution is not an occurrence')
  const resolved = ev
  const dOk = await ingestOne(t, c, key, ok, 'duplicate', 'the OK delivered again')
  t.equal(dOk.event_id, id, 'duplicate of the OK names the event it resolved')
  await ingestOne(t, c, key, alarm({ name, state: 'OK', time: at(21) }), 'ignored', 'another OK with nothing open', 'no_open_event')
  t.strictSame(await mustEvent(c, admin.token, id), resolved, 'the resolved event is unchanged by the later OKs')

  // The next ALARM opens a new event.
  const e7 = alarm({ name, time: at(30) })
  const r7 = await ingestOne(t, c, key, e7, 'created', 'ALARM after the resolution')
  t.not(r7.event_id, id, 'a new event id')
  const fresh = await mustEvent(c, admin.token, r7.event_id)
  t.equal(fresh.occurrence_count, 1, 'new event: occurrence_count 1')
  t.equal(fresh.occurred_at, iso(at(30)), 'new event: occurred_at is its own first time')
  t.equal(fresh.status, 'open', 'new event open')
  t.equal(fresh.task_id, null, 'new event has no task')
  const r8 = await ingestOne(t, c, key, alarm({ name, time: at(35) }), 'updated', 'next occurrence')
  t.equal(r8.event_id, fresh.id, 'goes to the new event')
  t.strictSame(await mustEvent(c, admin.token, id), resolved, 'the old event stays resolved and untouched')

  // GuardDuty: score change, then archived resolves.
  const finding = hex()
  const g1 = await ingestOne(t, c, key, guardDuty({ finding, score: 5, time: at(40) }), 'created', 'GuardDuty finding score 5')
  t.equal((await mustEvent(c, admin.token, g1.event_id)).severity, 'medium', 'score 5 → medium')
  const g2 = await ingestOne(t, c, key, guardDuty({ finding, score: 9.2, time: at(41) }), 'updated', 'GuardDuty finding score 9.2')
  t.equal(g2.event_id, g1.event_id, 'same finding event')
  ev = await mustEvent(c, admin.token, g1.event_id)
  t.equal(ev.severity, 'critical', 'score 9.2 → critical')
  t.equal(ev.occurrence_count, 2, 'GuardDuty occurrence_count 2')
  const g3 = await ingestOne(t, c, key, guardDuty({ finding, score: 9.2, archived: true, time: at(42) }), 'resolved', 'GuardDuty finding archived')
  t.equal(g3.event_id, g1.event_id, 'archived resolves the finding event')
  ev = await mustEvent(c, admin.token, g1.event_id)
  t.same([ev.status, ev.source_state], ['resolved', 'resolved'], 'GuardDuty event resolved')
  t.match(ev.resolved_at, TIMESTAMP, 'GuardDuty resolved_at')

  // Security Hub: label change, then RESOLVED.
  const control = randomUUID()
  const s1 = await ingestOne(t, c, key, securityHub({ control, label: 'MEDIUM', time: at(50) }), 'created', 'Security Hub MEDIUM')
  t.equal((await mustEvent(c, admin.token, s1.event_id)).severity, 'medium', 'MEDIUM → medium')
  await ingestOne(t, c, key, securityHub({ control, label: 'CRITICAL', time: at(51) }), 'updated', 'Security Hub CRITICAL')
  t.equal((await mustEvent(c, admin.token, s1.event_id)).severity, 'critical', 'CRITICAL → critical')
  const s3 = await ingestOne(t, c, key, securityHub({ control, resolved: true, time: at(52) }), 'resolved', 'Security Hub RESOLVED')
  t.equal(s3.event_id, s1.event_id, 'RESOLVED resolves the finding event')
  ev = await mustEvent(c, admin.token, s1.event_id)
  t.same([ev.status, ev.source_state, ev.occurrence_count], ['resolved', 'resolved', 2], 'Security Hub event resolved')

  // AWS Health: closed resolves.
  const code = hex()
  const h1 = await ingestOne(t, c, key, health({ code, time: at(60) }), 'created', 'Health open')
  const h2 = await ingestOne(t, c, key, health({ code, status: 'closed', time: at(61) }), 'resolved', 'Health closed')
  t.equal(h2.event_id, h1.event_id, 'closed resolves the Health event')
  ev = await mustEvent(c, admin.token, h1.event_id)
  t.same([ev.status, ev.source_state], ['resolved', 'resolved'], 'Health event resolved')
})

// ------------------------------------------------------------------------------------------
t.test('concurrency: concurrent duplicates count once, concurrent occurrences are all counted', async t => {
  const { c, key, admin } = await setup(t)

  // 10 concurrent deliveries of one envelope.
  const same = alarm({ name: 'concurrent-same', time: at(0) })
  const sameRes = await Promise.all(Array.from({ length: 10 }, () => c.ingest(key, same)))
  t.same(sameRes.map(r => r.statusCode), Array(10).fill(202), 'all 202')
  const sameResults = sameRes.map(r => r.json<IngestResponse>().results[0]!)
  t.equal(count(sameResults, 'created'), 1, 'created exactly once')
  t.equal(count(sameResults, 'duplicate'), 9, 'the nine others are duplicates')
  const sameId = sameResults.find(r => r.action === 'created')?.event_id
  t.ok(sameResults.every(r => r.event_id === null || r.event_id === sameId), 'no result names another event')
  t.equal((await mustEvent(c, admin.token, sameId ?? MISSING_ID)).occurrence_count, 1, 'occurrence_count 1')

  // 10 concurrent deliveries of different envelopes of one alarm.
  const name = 'concurrent-many'
  const envs = Array.from({ length: 10 }, (_, i) => alarm({ name, time: at(10 + i) }))
  const manyRes = await Promise.all(envs.map(e => c.ingest(key, e)))
  t.same(manyRes.map(r => r.statusCode), Array(10).fill(202), `all 202 (got ${manyRes.map(r => r.statusCode).join(',')})`)
  const many = manyRes.filter(r => r.statusCode === 202).map(r => r.json<IngestResponse>().results[0]!)
  t.equal(count(many, 'created'), 1, 'one created')
  t.equal(count(many, 'updated'), 9, 'nine updated')
  const manyIds = [...new Set(many.map(r => r.event_id))]
  t.equal(manyIds.length, 1, 'all name one event')
  const ev = await mustEvent(c, admin.token, manyIds[0] ?? MISSING_ID)
  t.equal(ev.occurrence_count, 10, 'occurrence_count exactly 10: no lost counts')
  t.equal(ev.last_seen_at, iso(at(19)), 'last_seen_at is the latest time')
  const creator = many.findIndex(r => r.action === 'created')
  t.equal(ev.occurred_at, iso(envs[creator]?.time ?? ''), 'occurred_at is the time of the delivery that created it')
  const ofAlarm = (await c.list(admin.token, '?source=aws.cloudwatch&limit=100')).json<Page<MonitoringEvent>>().items.filter(e => e.dedup_key === alarmArn(name))
  t.equal(ofAlarm.length, 1, 'exactly one event for the alarm')

  // One batch of 100 envelopes for 10 alarms.
  const batch = Array.from({ length: 100 }, (_, i) => alarm({ name: `batch-alarm-${i % 10}`, time: at(100 + i) }))
  const res = await c.ingest(key, { events: batch })
  t.equal(res.statusCode, 202, `batch of 100 → 202 (got ${res.statusCode}: ${res.body.slice(0, 200)})`)
  const body = res.json<IngestResponse>()
  t.same([body.accepted, body.duplicates, body.rejected], [100, 0, 0], 'totals')
  t.same(body.results.map(r => r.index), Array.from({ length: 100 }, (_, i) => i), 'results in request order')
  t.equal(count(body.results, 'created'), 10, '10 created')
  t.equal(count(body.results, 'updated'), 90, '90 updated')
  const batchKeys = new Set(Array.from({ length: 10 }, (_, i) => alarmArn(`batch-alarm-${i}`)))
  const events = (await c.list(admin.token, '?source=aws.cloudwatch&limit=100')).json<Page<MonitoringEvent>>().items.filter(e => batchKeys.has(e.dedup_key))
  t.equal(events.length, 10, '10 events')
  t.same(events.map(e => e.occurrence_count), Array(10).fill(10), 'each alarm counted 10 times')
  t.equal(events.reduce((sum, e) => sum + e.occurrence_count, 0), 100, 'counts sum to 100')

  // The same batch delivered again: 100 duplicates, nothing changes.
  const again = await c.ingest(key, { events: batch })
  const againBody = again.json<IngestResponse>()
  t.same([again.statusCode, againBody.accepted, againBody.duplicates, againBody.rejected], [202, 0, 100, 0], 'redelivered batch: all duplicates')
  const after = (await c.list(admin.token, '?source=aws.cloudwatch&limit=100')).json<Page<MonitoringEvent>>().items.filter(e => batchKeys.has(e.dedup_key))
  t.equal(after.reduce((sum, e) => sum + e.occurrence_count, 0), 100, 'counts still sum to 100')
})

// ------------------------------------------------------------------------------------------
t.test('the dedup claim names the envelope that created the event: its redelivery is a duplicate', async t => {
  const { api, c, key, admin } = await setup(t)
  const meta = `${api.config.tablePrefix}meta`
  const db = api.app.db.client
  const first = alarm({ name: 'claim-names-envelope', time: at(0) })
  const created = await ingestOne(t, c, key, first, 'created', 'first delivery')
  // The envelope claim is missing: the window in which a batch has claimed the dedup key and
  // written the event but not yet its envelope claims, or a delivery that failed after the event.
  await db.deleteItem({ TableName: meta, Key: { pk: { S: `envelope#${ACCOUNT}#${String(first.id)}` } } })
  const again = await ingestOne(t, c, key, first, 'duplicate', 'redelivery without an envelope claim')
  t.equal(again.event_id, created.event_id, 'names the event the envelope created')
  t.equal((await mustEvent(c, admin.token, created.event_id)).occurrence_count, 1, 'not counted again')
  const claim = await db.getItem({ TableName: meta, Key: { pk: { S: `envelope#${ACCOUNT}#${String(first.id)}` } }, ConsistentRead: true })
  t.match(claim.Item, { state: { S: 'done' }, ref: { S: created.event_id } }, 'the envelope claim is written again')
  await ingestOne(t, c, key, alarm({ name: 'claim-names-envelope', time: at(1) }), 'updated', 'another envelope of the alarm is an occurrence')
})

// ------------------------------------------------------------------------------------------
// The batch fast path: new events of a batch take one conditional write each (the dedup claim)
// and are stored with BatchWriteItem; everything else goes envelope by envelope.

/** The dashboard's event counters equal a recount of the stored events. */
async function countersMatchRecount (t: Test, api: Api, label: string): Promise<void> {
  const live = (await api.app.repos.stats.read(['events'])).events ?? {}
  const truth = (await recountStats(api.app.repos)).events ?? {}
  for (const k of new Set([...Object.keys(live), ...Object.keys(truth)])) t.equal(live[k] ?? 0, truth[k] ?? 0, `${label}: counter ${k} equals the recount`)
}

/** Attribute names and DynamoDB types of a stored item (the values aside). */
async function shapeOf (api: Api, table: 'events' | 'meta', key: Record<string, string>): Promise<Record<string, string>> {
  const res = await api.app.db.client.getItem({ TableName: `${api.config.tablePrefix}${table}`, Key: Object.fromEntries(Object.entries(key).map(([k, v]) => [k, { S: v }])), ConsistentRead: true })
  return Object.fromEntries(Object.entries(res.Item ?? {}).map(([name, value]) => [name, Object.keys(value)[0]!]))
}
const dedupPk = (dedupKey: string): string => `dedup#${ACCOUNT}#${createHash('sha256').update(dedupKey).digest('hex')}`
const envelopePk = (id: string): string => `envelope#${ACCOUNT}#${id}`

/** Fault injection on the app's DynamoDB client (the database stays real): `fault` runs around each matching command. */
function onCommand (api: Api, command: string, fault: (next: () => Promise<unknown>) => Promise<unknown>): () => void {
  const name = `test-fault-${randomUUID()}`
  api.app.db.client.middlewareStack.add((next, context) => async (args) => {
    if (context.commandName !== command) return next(args)
    return fault(() => next(args)) as ReturnType<typeof next>
  }, { step: 'initialize', name })
  return () => { api.app.db.client.middlewareStack.remove(name) }
}
const injected = (): Error => Object.assign(new Error('injected failure'), { name: 'InternalServerError', $fault: 'server' })

t.test('batch fast path: 100 new events in one batch, stored exactly as the per-envelope path stores them', async t => {
  const { api, c, key, admin } = await setup(t)
  const tags = ['critical', 'high', 'medium', 'low', 'info'] as const
  const batch = Array.from({ length: 100 }, (_, i) => i < 90
    ? alarm({ name: `fast-${i}`, time: at(i), severity: tags[i % 5] })
    : guardDuty({ finding: hex(), score: 8, time: at(i) }))
  const res = await c.ingest(key, { events: batch })
  t.equal(res.statusCode, 202, `batch of 100 → 202 (got ${res.statusCode}: ${res.body.slice(0, 200)})`)
  const body = res.json<IngestResponse>()
  t.same([body.accepted, body.duplicates, body.rejected], [100, 0, 0], 'totals')
  t.same(body.results.map(r => [r.index, r.envelope_id, r.action, r.error]), batch.map((e, i) => [i, e.id, 'created', null]), 'every envelope created, results in request order')
  t.ok(body.results.every(r => ULID.test(String(r.event_id))), 'every result names an event')
  t.equal(new Set(body.results.map(r => r.event_id)).size, 100, '100 different events')
  t.same(body.results.slice(0, 90).map(r => r.dedup_key), batch.slice(0, 90).map((_, i) => alarmArn(`fast-${i}`)), 'dedup keys')

  // GET, the lists and their filters see them.
  const byId = new Map(body.results.map((r, i) => [String(r.event_id), batch[i]!]))
  for (const i of [0, 37, 89, 95]) {
    const ev = await mustEvent(c, admin.token, body.results[i]!.event_id)
    t.match(ev, { status: 'open', occurrence_count: 1, account_id: ACCOUNT, occurred_at: iso(batch[i]!.time), last_seen_at: iso(batch[i]!.time), resolved_at: null, task_id: null }, `event ${i} as ingested`)
    t.strictSame(ev.raw, batch[i], `event ${i}: raw is the envelope`)
  }
  const all = await walk(t, c, admin.token, {}, 100)
  t.same(ids(all).sort(), [...byId.keys()].sort(), 'the list holds the 100 events')
  t.equal((await walk(t, c, admin.token, { time_field: 'last_seen_at' }, 100)).length, 100, 'by last_seen_at too')
  for (const [n, severity] of tags.entries()) {
    const expected = body.results.slice(0, 90).filter((_, i) => i % 5 === n).map(r => String(r.event_id))
    if (severity === 'high') expected.push(...body.results.slice(90).map(r => String(r.event_id)))
    t.same(ids(await walk(t, c, admin.token, { severity }, 100)).sort(), expected.sort(), `severity=${severity}`)
  }
  t.same(ids(await walk(t, c, admin.token, { source: 'aws.guardduty' }, 100)).sort(), body.results.slice(90).map(r => String(r.event_id)).sort(), 'source=aws.guardduty')
  t.equal((await walk(t, c, admin.token, { source: 'aws.cloudwatch', status: 'open' }, 100)).length, 90, 'source + status')
  t.equal((await walk(t, c, admin.token, { account_id: ACCOUNT }, 7)).length, 100, 'account_id, pages of 7')

  // The same items as the per-envelope path writes: an OK first makes the later ALARM of the
  // same alarm in the batch go envelope by envelope.
  const slowAlarm = alarm({ name: 'slow-path', time: at(200), severity: 'high' })
  const slow = await c.ingest(key, { events: [alarm({ name: 'slow-path', state: 'OK', time: at(199) }), slowAlarm] })
  t.same(slow.json<IngestResponse>().results.map(r => [r.action, r.reason]), [['ignored', 'no_open_event'], ['created', null]], 'per-envelope path: created')
  const slowId = String(slow.json<IngestResponse>().results[1]!.event_id)
  const fastId = String(body.results[1]!.event_id)
  const fastShape = await shapeOf(api, 'events', { id: fastId })
  t.same(fastShape, await shapeOf(api, 'events', { id: slowId }), 'event item: same attributes and types on both paths')
  t.match(fastShape, { id: 'S', entity: 'S', occurred_sk: 'S', seen_sk: 'S', labels: 'S', raw: 'S', resources: 'L', ttl: 'N', occurrence_count: 'N', version: 'N', description: 'S', native_severity: 'S' }, 'event item: key, index and JSON attributes')
  t.same(await shapeOf(api, 'meta', { pk: dedupPk(alarmArn('fast-1')) }), await shapeOf(api, 'meta', { pk: dedupPk(alarmArn('slow-path')) }), 'dedup claim: same shape on both paths')
  t.same(await shapeOf(api, 'meta', { pk: envelopePk(batch[1]!.id) }), await shapeOf(api, 'meta', { pk: envelopePk(slowAlarm.id) }), 'envelope claim: same shape on both paths')
  const [fastEvent, slowEvent] = [await mustEvent(c, admin.token, fastId), await mustEvent(c, admin.token, slowId)]
  t.same(Object.keys(fastEvent).sort(), Object.keys(slowEvent).sort(), 'same fields through the API')

  // They take occurrences, resolutions and tasks like any event; the batch again is all duplicates.
  const next = await c.ingest(key, { events: [alarm({ name: 'fast-1', time: at(300), severity: 'high' }), alarm({ name: 'fast-2', state: 'OK', time: at(301) })] })
  t.same(next.json<IngestResponse>().results.map(r => [r.action, r.event_id]), [['updated', fastId], ['resolved', body.results[2]!.event_id]], 'occurrence and resolution of fast-path events')
  t.equal((await c.createTask(admin.token, fastId, {})).statusCode, 201, 'a task from a fast-path event')
  const again = (await c.ingest(key, { events: batch })).json<IngestResponse>()
  t.same([again.accepted, again.duplicates], [0, 100], 'the batch again: 100 duplicates')
  t.same(again.results.map(r => r.event_id), body.results.map(r => r.event_id), 'each naming its event')
  const stats = (await api.request({ method: 'GET', url: '/api/dashboard/events-stats', headers: api.auth(admin.token) })).json()
  t.match(stats, { total: 101, by_source: { 'aws.cloudwatch': 91, 'aws.guardduty': 10 }, by_status: { open: 99, acknowledged: 1, resolved: 1 } }, 'dashboard counts')
  await countersMatchRecount(t, api, 'after the fast path')
})

t.test('batch fast path: a mixed batch gives the same results as its envelopes one at a time', async t => {
  // The same history in two fresh apps: once as one batch, once envelope by envelope.
  const scenario = (): { before: Json[], batch: Json[] } => {
    const before = [alarm({ name: 'mixed-open', time: at(0) }), alarm({ name: 'mixed-to-resolve', time: at(1) })]
    const f1 = alarm({ name: 'mixed-f1', time: at(10) })
    const f2 = alarm({ name: 'mixed-f2', time: at(11), severity: 'high' })
    const sameIdOtherKey = clone(f1)
    sameIdOtherKey.resources = [alarmArn('mixed-other')]
    sameIdOtherKey.detail.alarmName = 'mixed-other'
    const batch = [
      f1, // 0 created (fast path)
      before[0]!, // 1 duplicate of an earlier delivery
      alarm({ name: 'mixed-open', time: at(12) }), // 2 occurrence of an open event
      f2, // 3 created
      alarm({ name: 'mixed-f1', time: at(13), severity: 'critical' }), // 4 occurrence of 0 in the same batch
      alarm({ name: 'mixed-to-resolve', state: 'OK', time: at(14) }), // 5 resolves an open event
      alarm({ name: 'mixed-foreign', time: at(15), account: OTHER_ACCOUNT }), // 6 rejected 403
      envelope('cloudwatch-alarm', e => { e['detail-type'] = 'CloudWatch Alarm Configuration Change' }), // 7 ignored: unsupported_detail_type
      f1, // 8 the same envelope again in the batch
      alarm({ name: 'mixed-f2', state: 'OK', time: at(16) }), // 9 resolves 3
      alarm({ name: 'mixed-f2', time: at(17) }), // 10 opens a new event after 9
      guardDuty({ finding: hex(), time: at(18) }), // 11 created
      alarm({ name: 'mixed-insufficient', state: 'INSUFFICIENT_DATA', time: at(19) }), // 12 ignored: insufficient_data
      alarm({ name: 'mixed-nothing-open', state: 'OK', time: at(20) }), // 13 ignored: no_open_event
      sameIdOtherKey, // 14 envelope id of 0 with other content
      alarm({ name: 'mixed-f3', state: 'OK', time: at(21) }), // 15 ignored: no_open_event …
      alarm({ name: 'mixed-f3', time: at(22) }) // 16 … then created, envelope by envelope
    ]
    return { before, batch }
  }
  const expected: Action[] = ['created', 'duplicate', 'updated', 'created', 'updated', 'resolved', 'rejected', 'ignored', 'duplicate', 'resolved', 'created', 'created', 'ignored', 'ignored', 'duplicate', 'ignored', 'created']
  const expectedReasons: Array<IgnoreReason | null> = expected.map(() => null)
  expectedReasons[7] = 'unsupported_detail_type'
  expectedReasons[12] = 'insufficient_data'
  expectedReasons[13] = 'no_open_event'
  expectedReasons[15] = 'no_open_event'
  const { before, batch } = scenario()

  const run = async (oneByOne: boolean) => {
    const { api, c, key, admin } = await setup(t)
    for (const e of before) await ingestOne(t, c, key, e, 'created', 'history')
    let results: IngestResult[]
    if (oneByOne) {
      results = []
      for (const [i, e] of batch.entries()) {
        const body = (await c.ingest(key, { events: [e] })).json<IngestResponse>()
        results.push({ ...body.results[0]!, index: i })
      }
    } else {
      const res = await c.ingest(key, { events: batch })
      t.equal(res.statusCode, 202, 'mixed batch → 202')
      const body = res.json<IngestResponse>()
      t.same([body.accepted, body.duplicates, body.rejected], [13, 3, 1], 'batch totals')
      results = body.results
    }
    const events = await walk(t, c, admin.token, {}, 100)
    await countersMatchRecount(t, api, oneByOne ? 'one by one' : 'batch')
    return { results, events }
  }
  const batched = await run(false)
  const single = await run(true)
  t.same(batched.results.map(r => r.action), expected, 'batch: the expected action per envelope')
  t.same(single.results.map(r => r.action), expected, 'one by one: the same actions')
  t.same(batched.results.map(r => r.reason), expectedReasons, 'batch: the reason of each ignored envelope, null for the others')
  t.same(batched.results.map(r => r.item), expected.map(() => 0), 'batch: item 0 for every one-event envelope')
  const comparable = (r: IngestResult) => [r.index, r.item, r.envelope_id, r.action, r.reason, r.dedup_key, r.error?.status ?? null, r.error?.code ?? null, r.event_id === null]
  t.same(batched.results.map(comparable), single.results.map(comparable), 'batch and one by one: same results (event ids aside)')
  const idOf = (i: number) => batched.results[i]!.event_id
  t.same([idOf(4), idOf(8), idOf(14)], [idOf(0), idOf(0), idOf(0)], 'occurrence and duplicates name the event of envelope 0')
  t.equal(idOf(9), idOf(3), 'the resolution names the event it resolved')
  t.not(idOf(10), idOf(3), 'the next trigger opened a new event')
  const summary = (events: MonitoringEvent[]) => events.map(e => [e.dedup_key, e.status, e.occurrence_count, e.severity, e.occurred_at, e.last_seen_at]).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1))
  t.same(summary(batched.events), summary(single.events), 'the same events stored either way')
  t.equal(batched.events.length, 7, 'seven events')
})

t.test('batch fast path under concurrency: envelopes count once, one open event per dedup key, counters exact', async t => {
  const { api, c, key, admin } = await setup(t)
  /** Every envelope counted by exactly one of the responses (`seen`: envelopes counted before, duplicates only). */
  const seen = new Set<string>()
  const check = async (responses: Response[], batches: Json[][], label: string) => {
    t.same(responses.map(r => r.statusCode), responses.map(() => 202), `${label}: all 202 (${responses.map(r => `${r.statusCode} ${r.statusCode === 202 ? '' : r.body.slice(0, 200)}`).join(', ')})`)
    const byEnvelope = new Map<string, IngestResult[]>()
    responses.forEach((res, b) => res.json<IngestResponse>().results.forEach((r, i) => {
      t.equal(r.envelope_id, batches[b]![i]!.id, `${label}: result order`)
      const id = String(r.envelope_id)
      byEnvelope.set(id, [...(byEnvelope.get(id) ?? []), r])
    }))
    for (const [id, rs] of byEnvelope) {
      const counted = rs.filter(r => r.action !== 'duplicate')
      if (counted.length !== (seen.has(id) ? 0 : 1)) t.fail(`${label}: envelope ${id} counted ${counted.length} times (${rs.map(r => r.action).join(', ')})`)
      if (rs.some(r => r.action === 'rejected')) t.fail(`${label}: envelope ${id} rejected: ${JSON.stringify(rs)}`)
      const names = new Set(rs.map(r => r.event_id))
      if (names.size !== 1) t.fail(`${label}: the deliveries of envelope ${id} name different events: ${[...names].join(', ')}`)
      seen.add(id)
    }
    t.pass(`${label}: each envelope counted exactly once`)
  }
  const verifyEvents = async (envelopesByKey: Map<string, Set<string>>, label: string) => {
    const events = await walk(t, c, admin.token, { status: 'open' }, 100)
    for (const [k, envs] of envelopesByKey) {
      const open = events.filter(e => e.dedup_key === k)
      t.equal(open.length, 1, `${label}: one open event for ${k}`)
      t.equal(open[0]?.occurrence_count, envs.size, `${label}: ${k} counted ${envs.size} times`)
    }
  }
  const byKey = new Map<string, Set<string>>()
  const note = (batch: Json[]) => { for (const e of batch) byKey.set(e.resources[0], (byKey.get(e.resources[0]) ?? new Set()).add(e.id)) }

  for (let round = 0; round < 2; round++) {
    // The same batch twice at once: 40 new alarms, 10 of them with a second occurrence.
    const same = [
      ...Array.from({ length: 40 }, (_, i) => alarm({ name: `twice-${round}-${i}`, time: at(i), severity: SEVERITIES[i % 5] })),
      ...Array.from({ length: 10 }, (_, i) => alarm({ name: `twice-${round}-${i * 4}`, time: at(50 + i) }))
    ]
    note(same)
    await check(await Promise.all([c.ingest(key, { events: same }), c.ingest(key, { events: same })]), [same, same], `round ${round}, same batch twice`)

    // Two batches sharing 20 envelopes, and 10 dedup keys through different envelopes; the
    // second also repeats an envelope of the batch before (a duplicate).
    const shared = Array.from({ length: 20 }, (_, i) => alarm({ name: `shared-${round}-${i}`, time: at(100 + i) }))
    const one = [...shared.slice(0, 10), ...Array.from({ length: 10 }, (_, i) => alarm({ name: `key-${round}-${i}`, time: at(130 + i), severity: 'high' })), ...Array.from({ length: 15 }, (_, i) => alarm({ name: `own1-${round}-${i}`, time: at(140 + i) })), ...shared.slice(10)]
    const two = [...Array.from({ length: 10 }, (_, i) => alarm({ name: `key-${round}-${i}`, time: at(160 + i), severity: 'low' })), ...shared.slice().reverse(), ...Array.from({ length: 15 }, (_, i) => alarm({ name: `own2-${round}-${i}`, time: at(170 + i) })), same[3]!]
    note(one)
    note(two)
    await check(await Promise.all([c.ingest(key, { events: one }), c.ingest(key, { events: two })]), [one, two], `round ${round}, overlapping batches`)
  }
  await verifyEvents(byKey, 'after the concurrent batches')
  const total = (await walk(t, c, admin.token, {}, 100)).length
  t.equal(total, byKey.size, `one event per dedup key (${byKey.size})`)
  await countersMatchRecount(t, api, 'after the concurrent batches')
})

t.test('all-events lists read the write-sharded entity key: every shard and the key before sharding, merged newest first, paged without loss', async t => {
  const { api, c, admin, key } = await setup(t)
  const batch = Array.from({ length: 40 }, (_, i) => alarm({ name: `sharded-${i}`, time: at(i) }))
  const created = (await c.ingest(key, { events: batch })).json<IngestResponse>().results.map(r => String(r.event_id))
  const table = `${api.config.tablePrefix}events`
  const entities = await Promise.all(created.map(async id => (await api.app.db.client.getItem({ TableName: table, Key: { id: { S: id } } })).Item!.entity!.S!))
  t.ok(new Set(entities).size >= 4, `spread over ${new Set(entities).size} shards`)
  t.ok(entities.every(e => /^event#[0-7]$/.test(e)), 'entity = event#<0..7>')
  // Items written before the sharding carry `entity = event`: still listed.
  for (const id of created.slice(0, 6)) {
    await api.app.db.client.updateItem({ TableName: table, Key: { id: { S: id } }, UpdateExpression: 'SET entity = :e', ExpressionAttributeValues: { ':e': { S: 'event' } } })
  }
  const newestFirst = (events: MonitoringEvent[], field: 'occurred_at' | 'last_seen_at') => events.every((e, i) => i === 0 || `${events[i - 1]![field]}#${events[i - 1]!.id}` > `${e[field]}#${e.id}`)
  for (const limit of [1, 7, 40, 100]) {
    const all = await walk(t, c, admin.token, {}, limit)
    t.same(ids(all).sort(), [...created].sort(), `limit ${limit}: every event once`)
    t.ok(newestFirst(all, 'occurred_at'), `limit ${limit}: newest first`)
    const seen = await walk(t, c, admin.token, { time_field: 'last_seen_at' }, limit)
    t.same(ids(seen).sort(), [...created].sort(), `limit ${limit}, by last_seen_at: every event once`)
    t.ok(newestFirst(seen, 'last_seen_at'), `limit ${limit}, by last_seen_at: newest first`)
  }
  // Skewed: most events in one shard (read a share at a time): pages still exact, in order.
  for (const id of created.slice(6, 36)) {
    await api.app.db.client.updateItem({ TableName: table, Key: { id: { S: id } }, UpdateExpression: 'SET entity = :e', ExpressionAttributeValues: { ':e': { S: 'event#3' } } })
  }
  for (const limit of [5, 20, 100]) {
    const skewed = await walk(t, c, admin.token, {}, limit)
    t.same(ids(skewed).sort(), [...created].sort(), `skewed, limit ${limit}: every event once`)
    t.ok(newestFirst(skewed, 'occurred_at'), `skewed, limit ${limit}: newest first`)
  }
  const page = (await c.list(admin.token, qs({ limit: 20 }))).json<Page<MonitoringEvent>>()
  t.equal(page.items.length, 20, 'a full page from one request (the rounds of the request fill it)')
  // A time range, and deleted events (filtered after Limit) on the way.
  for (const id of created.slice(10, 20)) t.equal((await c.remove(admin.token, id)).statusCode, 204)
  const from = batch[5]!.time
  const to = batch[30]!.time
  const ranged = await walk(t, c, admin.token, { from, to }, 3)
  const expected = created.filter((_, i) => i >= 5 && i < 30 && (i < 10 || i >= 20))
  t.same(ids(ranged).sort(), [...expected].sort(), '[from, to) without the deleted ones, across every partition')
})

t.test('status, source and severity lists read write-sharded values: every shard and the bare value of before, merged; writes keep the stored form; readers never see it', async t => {
  const { api, c, admin, key } = await setup(t)
  const batch = Array.from({ length: 40 }, (_, i) => alarm({ name: `valued-${i}`, time: at(i), severity: i % 2 ? 'high' : 'low' }))
  const created = (await c.ingest(key, { events: batch })).json<IngestResponse>().results.map(r => String(r.event_id))
  const table = `${api.config.tablePrefix}events`
  const raw = async (id: string) => (await api.app.db.client.getItem({ TableName: table, Key: { id: { S: id } }, ConsistentRead: true })).Item!
  const stored = await Promise.all(created.map(raw))
  for (const [i, item] of stored.entries()) {
    const k = item.entity!.S!.slice('event#'.length)
    t.same([item.status!.S, item.source!.S, item.severity!.S], [`open#${k}`, `aws.cloudwatch#${k}`, `${i % 2 ? 'high' : 'low'}#${k}`], `event ${i}: the index values are stored as <value>#<its shard>`)
  }
  t.ok(new Set(stored.map(i => i.status!.S)).size >= 4, 'open is spread over several keys')
  // Items written before the sharding hold the bare values: still listed, still updatable.
  const before = created.slice(0, 6)
  const severityOf = (i: number): string => (i % 2 ? 'high' : 'low')
  for (const [i, id] of before.entries()) {
    await api.app.db.client.updateItem({ TableName: table, Key: { id: { S: id } }, UpdateExpression: 'SET #st = :o, #so = :c, #se = :s', ExpressionAttributeNames: { '#st': 'status', '#so': 'source', '#se': 'severity' }, ExpressionAttributeValues: { ':o': { S: 'open' }, ':c': { S: 'aws.cloudwatch' }, ':s': { S: severityOf(i) } } })
  }
  const newestFirst = (events: MonitoringEvent[]) => events.every((e, i) => i === 0 || `${events[i - 1]!.occurred_at}#${events[i - 1]!.id}` > `${e.occurred_at}#${e.id}`)
  const bare = (events: MonitoringEvent[]) => events.every(e => !`${e.status}${e.source}${e.severity}`.includes('#'))
  for (const limit of [1, 7, 100]) {
    for (const [query, expected] of [
      [{ status: 'open' }, created],
      [{ source: 'aws.cloudwatch' }, created],
      [{ severity: 'high' }, created.filter((_, i) => severityOf(i) === 'high')],
      [{ severity: 'low', status: 'open' }, created.filter((_, i) => severityOf(i) === 'low')],
      [{ source: 'aws.cloudwatch', status: 'open', time_field: 'last_seen_at' }, created]
    ] as Array<[Record<string, string>, string[]]>) {
      const listed = await walk(t, c, admin.token, query, limit)
      t.same(ids(listed).sort(), [...expected].sort(), `${JSON.stringify(query)}, limit ${limit}: every matching event once`)
      t.ok(query.time_field !== undefined || newestFirst(listed), `${JSON.stringify(query)}, limit ${limit}: newest first`)
      t.ok(bare(listed), `${JSON.stringify(query)}, limit ${limit}: values as the domain has them`)
    }
  }
  // Changes: a task on an event of before (open → acknowledged), an occurrence of one (its
  // condition matches the bare value), the resolution of a new one.
  t.equal((await c.createTask(admin.token, before[0]!, {})).statusCode, 201)
  t.match((await raw(before[0]!)).status!.S, /^acknowledged#[0-7]$/, 'a status change writes the stored form')
  t.equal((await c.ingest(key, alarm({ name: 'valued-1', time: at(50), severity: 'high' }))).statusCode, 202)
  const again = await raw(before[1]!)
  t.same([again.status!.S!.split('#')[0], again.severity!.S, again.occurrence_count!.N], ['open', `high#${again.entity!.S!.slice(6)}`, '2'], 'an occurrence of an event of before: counted, its severity stored sharded')
  t.equal((await c.ingest(key, alarm({ name: 'valued-20', time: at(60), state: 'OK' }))).statusCode, 202)
  t.match((await raw(created[20]!)).status!.S, /^resolved#[0-7]$/, 'a resolution writes the stored form')
  const one = (await c.get(admin.token, created[20]!)).json<MonitoringEvent>()
  t.same([one.status, one.source, one.severity], ['resolved', 'aws.cloudwatch', 'low'], 'GET returns the values')
  t.same(ids(await walk(t, c, admin.token, { status: 'acknowledged' }, 5)), [before[0]], 'status=acknowledged: the changed event')
  t.same(ids(await walk(t, c, admin.token, { status: 'resolved' }, 5)), [created[20]], 'status=resolved: the resolved event')
  t.equal((await walk(t, c, admin.token, { status: 'open' }, 9)).length, 38, 'status=open: the others')
  t.same(ids(await walk(t, c, admin.token, { severity: 'high', account_id: ACCOUNT, status: 'open' }, 4)).sort(),
    created.filter((_, i) => severityOf(i) === 'high').sort(), 'account index with sharded filters (either form)')
  await countersMatchRecount(t, api, 'after the changes')
})

t.test('batch fast path: a failure releases what the delivery claimed; a redelivery is processed, counted once', async t => {
  const { api, c, key, admin } = await setup(t)
  // The injected failures are transient (a DynamoDB 5xx): 503 service_unavailable with Retry-After,
  // a documented answer of ingestEvents, so these go through the helper's contract check too.
  const failing = async (payload: object) => await c.ingest(key, payload)
  const unavailable = (res: Response, label: string): void => {
    assertProblem(t, res, 503, 'service_unavailable', label)
    t.match(String(res.headers['retry-after'] ?? ''), /^[1-9]\d*$/, `${label}: Retry-After in seconds`)
  }
  const claimOf = async (pk: string) => (await api.app.db.client.getItem({ TableName: `${api.config.tablePrefix}meta`, Key: { pk: { S: pk } }, ConsistentRead: true })).Item
  const fresh = (tag: string) => Array.from({ length: 3 }, (_, i) => alarm({ name: `${tag}-${i}`, time: at(i) }))

  // The BatchWriteItem fails: no event, no claim left; the retry creates the events.
  let batch = fresh('write-fails')
  let stop = onCommand(api, 'BatchWriteItemCommand', async () => { throw injected() })
  let res = await failing({ events: batch })
  stop()
  unavailable(res, 'BatchWriteItem failed')
  for (const e of batch) {
    t.equal(await claimOf(dedupPk(e.resources[0])), undefined, 'dedup claim released')
    t.equal(await claimOf(envelopePk(e.id)), undefined, 'no envelope claim')
  }
  t.equal((await walk(t, c, admin.token, {}, 100)).length, 0, 'no event')
  let body = (await c.ingest(key, { events: batch })).json<IngestResponse>()
  t.same(body.results.map(r => r.action), ['created', 'created', 'created'], 'the redelivery creates them')

  // The BatchWriteItem is applied but its answer is lost: the events are kept, the redelivery is duplicates.
  batch = fresh('answer-lost')
  let once = true
  stop = onCommand(api, 'BatchWriteItemCommand', async (next) => {
    const out = await next()
    if (once) {
      once = false
      throw injected()
    }
    return out
  })
  res = await failing({ events: batch })
  stop()
  unavailable(res, 'answer of BatchWriteItem lost')
  const kept = await walk(t, c, admin.token, { source: 'aws.cloudwatch' }, 100)
  t.equal(kept.filter(e => e.dedup_key.includes('answer-lost')).length, 3, 'the three events are kept')
  body = (await c.ingest(key, { events: batch })).json<IngestResponse>()
  t.same(body.results.map(r => r.action), ['duplicate', 'duplicate', 'duplicate'], 'the redelivery: duplicates')
  t.same(body.results.map(r => r.event_id).sort(), ids(kept.filter(e => e.dedup_key.includes('answer-lost'))).sort(), 'naming the kept events')

  // The events' writes stay unprocessed (a throttled index) and the check of what was stored
  // fails too: no envelope is marked done for an event that does not exist.
  batch = fresh('events-unprocessed')
  const eventsTable = `${api.config.tablePrefix}events`
  const fault = `test-fault-${randomUUID()}`
  api.app.db.client.middlewareStack.add((next, context) => async (args: any) => {
    if (context.commandName === 'BatchGetItemCommand' && args.input.RequestItems[eventsTable]) throw injected()
    const held = context.commandName === 'BatchWriteItemCommand' ? args.input.RequestItems[eventsTable] : undefined
    if (!held) return next(args)
    const { [eventsTable]: _held, ...rest } = args.input.RequestItems
    const out: any = Object.keys(rest).length ? await next({ ...args, input: { ...args.input, RequestItems: rest } }) : { output: { $metadata: {} }, response: {} }
    out.output.UnprocessedItems = { ...out.output.UnprocessedItems, [eventsTable]: held }
    return out
  }, { step: 'initialize', name: fault })
  res = await failing({ events: batch })
  api.app.db.client.middlewareStack.remove(fault)
  unavailable(res, 'events left unprocessed')
  for (const e of batch) {
    // Claimed by the new-event path, naming an event that does not exist: not processed.
    const claim = await claimOf(envelopePk(e.id))
    t.not(claim?.state?.S, 'done', 'the envelope is not marked done')
    if (claim?.ref?.S) t.equal((await api.app.db.client.getItem({ TableName: eventsTable, Key: { id: { S: claim.ref.S } } })).Item, undefined, 'its claim names an event that does not exist')
  }
  // The claims could not be released (the check failed): they are left to go stale.
  const staleSince = new Date(Date.now() - 60_000).toISOString()
  for (const e of batch) {
    await api.app.db.client.updateItem({
      TableName: `${api.config.tablePrefix}meta`,
      Key: { pk: { S: dedupPk(e.resources[0]) } },
      UpdateExpression: 'SET created_at = :old',
      ExpressionAttributeValues: { ':old': { S: staleSince } }
    })
    await api.app.db.client.updateItem({
      TableName: `${api.config.tablePrefix}meta`,
      Key: { pk: { S: envelopePk(e.id) } },
      UpdateExpression: 'SET claimed_at = :old',
      ConditionExpression: 'attribute_exists(pk)',
      ExpressionAttributeValues: { ':old': { N: String(Date.now() - 120_000) } }
    }).catch(() => {})
  }
  body = (await c.ingest(key, { events: batch })).json<IngestResponse>()
  t.same(body.results.map(r => r.action), ['created', 'created', 'created'], 'the redelivery, once the claims are stale, creates them')
  for (const r of body.results) await mustEvent(c, admin.token, r.event_id!)

  // The second dedup claim fails: the claims taken are released, the retry creates all.
  batch = fresh('claim-fails')
  let puts = 0
  stop = onCommand(api, 'PutItemCommand', async (next) => {
    if (++puts === 2) throw injected()
    return next()
  })
  res = await failing({ events: batch })
  stop()
  unavailable(res, 'a dedup claim failed')
  for (const e of batch) t.equal(await claimOf(dedupPk(e.resources[0])), undefined, 'dedup claim released')
  body = (await c.ingest(key, { events: batch })).json<IngestResponse>()
  t.same(body.results.map(r => r.action), ['created', 'created', 'created'], 'the redelivery creates them')
  t.equal((await walk(t, c, admin.token, {}, 100)).length, 12, 'twelve events in all')
  await countersMatchRecount(t, api, 'after the failures')

  // A delivery of an envelope whose fast-path event is not written yet waits for it, then is a duplicate.
  const slowWrite = alarm({ name: 'slow-write', time: at(50) })
  stop = onCommand(api, 'BatchWriteItemCommand', async (next) => {
    await sleep(400)
    return next()
  })
  const first = c.ingest(key, slowWrite)
  await sleep(100)
  const second = await c.ingest(key, slowWrite)
  const firstRes = await first
  stop()
  const [r1, r2] = [firstRes.json<IngestResponse>().results[0]!, second.json<IngestResponse>().results[0]!]
  t.same([r1.action, r2.action], ['created', 'duplicate'], 'created once, the concurrent delivery is a duplicate')
  t.equal(r2.event_id, r1.event_id, 'naming the same event')
  t.equal((await mustEvent(c, admin.token, r1.event_id)).occurrence_count, 1, 'counted once')
  t.match(await claimOf(envelopePk(slowWrite.id)), { state: { S: 'done' }, ref: { S: r1.event_id } }, 'envelope claim done')
  await countersMatchRecount(t, api, 'at the end')
})

// ------------------------------------------------------------------------------------------
t.test('batches and request validation', async t => {
  const { c, key, admin } = await setup(t)
  const total = async () => (await c.list(admin.token, '?limit=100')).json<Page<MonitoringEvent>>().items.length

  const valid = alarm({ name: 'batch-valid', time: at(0) })
  const unsupportedSource = envelope('cloudwatch-alarm', e => {
    e.source = 'aws.ec2'
    e['detail-type'] = 'EC2 Instance State-change Notification'
    e.resources = ['arn:aws:ec2:us-east-1:123456789012:instance/i-0a1b2c3d4e5f60718']
    e.detail = { 'instance-id': 'i-0a1b2c3d4e5f60718', state: 'stopped' }
  })
  const unsupportedType = envelope('cloudwatch-alarm', e => { e['detail-type'] = 'CloudWatch Alarm Configuration Change' })
  const foreign = alarm({ name: 'batch-foreign', time: at(1), account: OTHER_ACCOUNT })
  const finding = guardDuty({ finding: hex(), time: at(2) })
  const res = await c.ingest(key, { events: [valid, unsupportedSource, foreign, finding, valid, unsupportedType] })
  t.equal(res.statusCode, 202, `mixed batch → 202 (got ${res.statusCode}: ${res.body.slice(0, 200)})`)
  const body = res.json<IngestResponse>()
  // A well-formed envelope of an unsupported source or detail-type is `ignored` with its reason (never a 4xx).
  const expected: Array<[Action, number | null, string | null, IgnoreReason | null]> = [
    ['created', null, null, null], ['ignored', null, null, 'unsupported_source'], ['rejected', 403, 'account_mismatch', null],
    ['created', null, null, null], ['duplicate', null, null, null], ['ignored', null, null, 'unsupported_detail_type']
  ]
  const sent = [valid, unsupportedSource, foreign, finding, valid, unsupportedType]
  t.equal(body.results.length, 6, 'one result per envelope')
  body.results.forEach((r, i) => {
    const [action, status, code, reason] = expected[i]!
    t.equal(r.index, i, `result ${i}: index`)
    t.equal(r.item, 0, `result ${i}: item 0`)
    t.equal(r.envelope_id, sent[i]!.id, `result ${i}: envelope_id`)
    t.equal(r.action, action, `result ${i}: action ${action}`)
    t.equal(r.reason, reason, `result ${i}: reason ${reason}`)
    if (action === 'ignored') {
      t.equal(r.error, null, `result ${i}: error null`)
      t.equal(r.event_id, null, `result ${i}: no event_id`)
      t.equal(r.dedup_key, null, `result ${i}: no dedup_key (ignored before mapping)`)
    } else if (status === null) {
      t.equal(r.error, null, `result ${i}: error null`)
    } else {
      t.equal(r.error?.status, status, `result ${i}: error.status ${status}`)
      t.equal(r.error?.code, code, `result ${i}: error.code ${code}`)
      t.ok(typeof r.error?.detail === 'string' && r.error.detail.length > 0, `result ${i}: error.detail`)
      t.equal(r.event_id, null, `result ${i}: no event_id`)
    }
  })
  t.equal(body.results[4]?.event_id, body.results[0]?.event_id, 'the repeated envelope names the first one\'s event')
  t.same([body.accepted, body.duplicates, body.rejected], [4, 1, 1], 'accepted / duplicates / rejected totals')
  t.equal(await total(), 2, 'two events stored')

  // Batch size limits.
  const big = Array.from({ length: 101 }, (_, i) => alarm({ name: `too-many-${i}`, time: at(10) }))
  assertProblem(t, await c.ingest(key, { events: big }), 400, 'validation_failed', '101 envelopes')
  assertProblem(t, await c.ingest(key, { events: [] }), 400, 'validation_failed', 'empty batch')
  t.equal(await total(), 2, 'nothing ingested from the refused batches')

  // A single well-formed envelope that cannot be used is `ignored` with its reason (202), never a 4xx.
  await ingestOne(t, c, key, unsupportedSource, 'ignored', 'single envelope of an unsupported source', 'unsupported_source')
  await ingestOne(t, c, key, envelope('cloudwatch-alarm', e => { e['detail-type'] = 'CloudWatch Alarm Configuration Change' }), 'ignored', 'single unsupported detail-type', 'unsupported_detail_type')
  const broken = envelope('cloudwatch-alarm', e => { e.detail.state.value = 'BROKEN' })
  await ingestOne(t, c, key, broken, 'ignored', 'a detail the adapter cannot map (alarm state BROKEN)', 'detail_unreadable')
  t.equal(await total(), 2, 'the ignored envelopes stored no event')

  // An unknown top-level property is AWS's to add: accepted, and kept in raw.
  let stored = 2
  const extra = envelope('cloudwatch-alarm', e => { e.severity = 'high' })
  const extraResult = await ingestOne(t, c, key, extra, 'created', 'extra top-level property')
  stored++
  t.equal((await mustEvent(c, admin.token, extraResult.event_id)).raw.severity, 'high', 'the extra property is kept in raw')
  const extraBatch = (await c.ingest(key, { events: [alarm({ name: 'with-extra-property', time: at(12) }), extra] })).json<IngestResponse>()
  t.same(extraBatch.results.map(r => r.action), ['created', 'duplicate'], 'batch with an envelope with an extra property: processed (here a duplicate)')
  stored++

  // Structurally invalid envelopes: a single one is refused (400); in a batch it is rejected on
  // its own and the other envelopes are processed (202).
  const invalid: Array<[string, Json]> = [
    ['missing detail', envelope('cloudwatch-alarm', e => { delete e.detail })],
    ['bad account', envelope('cloudwatch-alarm', e => { e.account = '12345' })],
    ['region not a region token', envelope('cloudwatch-alarm', e => { e.region = 'us east 1' })],
    ['time not a date-time', envelope('cloudwatch-alarm', e => { e.time = 'yesterday' })],
    ['missing id', envelope('cloudwatch-alarm', e => { delete e.id })]
  ]
  for (const [label, env] of invalid) {
    assertProblem(t, await c.ingest(key, env), 400, 'validation_failed', label)
    const withValid = alarm({ name: `with-invalid-${label}`, time: at(12) })
    const res = await c.ingest(key, { events: [withValid, env] })
    t.equal(res.statusCode, 202, `batch with: ${label} → 202 (got ${res.statusCode}: ${res.body.slice(0, 200)})`)
    const b = res.json<IngestResponse>()
    t.same([b.accepted, b.duplicates, b.rejected], [1, 0, 1], `batch with: ${label}: totals`)
    t.match(b.results[0], { index: 0, envelope_id: withValid.id, action: 'created', error: null }, `batch with: ${label}: the valid envelope is created`)
    t.match(b.results[1], { index: 1, item: 0, envelope_id: env.id ?? null, event_id: null, dedup_key: null, action: 'rejected', reason: null, error: { status: 400, code: 'validation_failed' } }, `batch with: ${label}: the invalid one is rejected`)
    stored++
  }
  assertProblem(t, await c.ingest(key, { events: [alarm({ name: 'extra-batch-prop', time: at(13) })], source: 'x' }), 400, 'validation_failed', 'batch with an extra property')
  t.equal(await total(), stored, 'only the valid envelopes were ingested (none of a refused request)')

  // Not JSON.
  const malformed = await c.ingest(key, '{"version": "0", "id": ' as never, { 'content-type': 'application/json' })
  assertProblem(t, malformed, 400, 'malformed_json', 'malformed JSON')
  const text = await c.ingest(key, JSON.stringify(valid) as never, { 'content-type': 'text/plain' })
  assertProblem(t, text, 415, 'unsupported_media_type', 'text/plain')
  t.equal(await total(), stored, 'nothing more ingested')
})

// ------------------------------------------------------------------------------------------
t.test('monitoring settings applied by ingestion', async t => {
  const { api, c, key, admin } = await setup(t)
  const settings = async (patch: object): Promise<void> => {
    const res = await api.request({ method: 'PUT', url: '/api/config/monitoring', headers: api.auth(admin.token), payload: patch })
    if (res.statusCode !== 200) throw new Error(`updateMonitoringSettings failed: ${res.statusCode} ${res.body.slice(0, 300)}`)
    t.match(res.json(), patch, `settings now ${JSON.stringify(patch)}`)
    // Each instance caches the settings for up to 1 s.
    await sleep(1100)
  }
  const severityOf = async (r: IngestResult) => (await mustEvent(c, admin.token, r.event_id)).severity

  // Defaults: an untagged alarm is medium and is ingested.
  const control = await ingestOne(t, c, key, alarm({ name: 'settings-control', time: at(0) }), 'created', 'default settings')
  t.equal(await severityOf(control), 'medium', 'default cloudwatch severity medium')

  await settings({ min_severity: 'high' })
  const low = await ingestOne(t, c, key, alarm({ name: 'below-min', time: at(1) }), 'ignored', 'medium alarm below min_severity high', 'below_min_severity')
  t.equal(low.error, null, 'ignored: error null')
  await ingestOne(t, c, key, alarm({ name: 'at-min', time: at(2), severity: 'high' }), 'created', 'high alarm at min_severity')
  await ingestOne(t, c, key, guardDuty({ finding: hex(), score: 5, time: at(3) }), 'ignored', 'medium GuardDuty finding below min_severity', 'below_min_severity')
  await ingestOne(t, c, key, guardDuty({ finding: hex(), score: 9.5, time: at(4) }), 'created', 'critical GuardDuty finding')
  const belowIds = (await c.list(admin.token, '?limit=100')).json<Page<MonitoringEvent>>().items.map(e => e.dedup_key)
  t.notOk(belowIds.includes(alarmArn('below-min')), 'the ignored alarm made no event')

  await settings({ min_severity: 'info', enabled_sources: ['aws.cloudwatch', 'aws.securityhub', 'aws.health'] })
  await ingestOne(t, c, key, guardDuty({ finding: hex(), score: 9.5, time: at(5) }), 'ignored', 'GuardDuty disabled in enabled_sources', 'source_disabled')
  await ingestOne(t, c, key, alarm({ name: 'still-enabled', time: at(6) }), 'created', 'CloudWatch still enabled')
  t.equal((await c.list(admin.token, '?source=aws.guardduty&limit=100')).json<Page<MonitoringEvent>>().items.length, 1, 'only the earlier GuardDuty event exists')

  await settings({ enabled_sources: ['aws.cloudwatch', 'aws.guardduty', 'aws.securityhub', 'aws.health'], cloudwatch_default_severity: 'critical' })
  const untagged = await ingestOne(t, c, key, alarm({ name: 'untagged', time: at(7) }), 'created', 'untagged alarm')
  t.equal(await severityOf(untagged), 'critical', 'cloudwatch_default_severity applies to an untagged alarm')
  const tagged = await ingestOne(t, c, key, alarm({ name: 'tagged', time: at(8), severity: 'low' }), 'created', 'tagged alarm')
  t.equal(await severityOf(tagged), 'low', 'the severity tag wins over the default')
  await ingestOne(t, c, key, guardDuty({ finding: hex(), score: 5, time: at(9) }), 'created', 'GuardDuty enabled again')

  await settings({ health_category_severities: { issue: 'low', accountNotification: 'info', scheduledChange: 'info', investigation: 'critical' } })
  const issue = await ingestOne(t, c, key, health({ code: hex(), category: 'issue', time: at(10) }), 'created', 'Health issue')
  t.equal(await severityOf(issue), 'low', 'health_category_severities applies')

  const current = await api.request({ method: 'GET', url: '/api/config/monitoring', headers: api.auth(admin.token) })
  t.match(current.json(), { min_severity: 'info', cloudwatch_default_severity: 'critical', health_category_severities: { issue: 'low' } }, 'GET returns the settings in force')
})

// ------------------------------------------------------------------------------------------
t.test('list events: filters, time ranges, newest first, pagination, cursors, roles', async t => {
  const { api, c, key, admin } = await setup(t)
  const other = await registerAccount(api, OTHER_ACCOUNT, 'security')
  const keyOf = (account: string): string => (account === ACCOUNT ? key : other.key)
  const user = await api.userWithRole('user')
  const manager = await api.userWithRole('manager')

  interface Model { id: string, source: Source, account: string, severity: Severity, status: EventStatus, occurred: string, lastSeen: string, make: (time: string, resolved: boolean) => Json }
  const model: Model[] = []
  const GD: Array<[number, Severity]> = [[9.5, 'critical'], [7.5, 'high'], [5, 'medium'], [2, 'low']]
  const HEALTH: Array<[string, Severity]> = [['issue', 'high'], ['scheduledChange', 'medium'], ['accountNotification', 'low']]
  const SH: Record<Severity, string> = { critical: 'CRITICAL', high: 'HIGH', medium: 'MEDIUM', low: 'LOW', info: 'INFORMATIONAL' }
  for (let i = 0; i < 25; i++) {
    const account = i % 3 === 2 ? OTHER_ACCOUNT : ACCOUNT
    const k = Math.floor(i / 4)
    let source: Source
    let severity: Severity
    let make: Model['make']
    if (i % 4 === 0) {
      source = 'aws.cloudwatch'
      severity = SEVERITIES[k % 5]!
      const name = `list-alarm-${i}`
      make = (time, resolved) => alarm({ name, time, account, severity, state: resolved ? 'OK' : 'ALARM' })
    } else if (i % 4 === 1) {
      source = 'aws.guardduty'
      const [score, sev] = GD[k % 4]!
      severity = sev
      const finding = hex()
      make = (time, resolved) => guardDuty({ finding, score, archived: resolved, time, account })
    } else if (i % 4 === 2) {
      source = 'aws.securityhub'
      severity = SEVERITIES[(k + 2) % 5]!
      const control = randomUUID()
      make = (time, resolved) => securityHub({ control, label: SH[severity], resolved, time, account })
    } else {
      source = 'aws.health'
      const [category, sev] = HEALTH[k % 3]!
      severity = sev
      const code = hex()
      make = (time, resolved) => health({ code, category, status: resolved ? 'closed' : 'open', time, account })
    }
    const time = at(i * 60)
    const r = await ingestOne(t, c, keyOf(account), make(time, false), 'created', `list event ${i}`)
    model.push({ id: String(r.event_id), source, account, severity, status: 'open', occurred: iso(time), lastSeen: iso(time), make })
  }
  // Resolve four (one of each source), acknowledge two, add later occurrences to three.
  for (const i of [0, 1, 2, 3]) {
    const m = model[i]!
    const time = at(2000 + i)
    await ingestOne(t, c, keyOf(m.account), m.make(time, true), 'resolved', `resolve list event ${i}`)
    m.status = 'resolved'
    m.lastSeen = iso(time)
  }
  for (const i of [8, 9]) {
    const res = await c.createTask(admin.token, model[i]!.id)
    t.equal(res.statusCode, 201, `task for list event ${i}`)
    model[i]!.status = 'acknowledged'
  }
  for (const i of [10, 11, 12]) {
    const m = model[i]!
    const time = at(3000 + i)
    await ingestOne(t, c, keyOf(m.account), m.make(time, false), 'updated', `later occurrence of list event ${i}`)
    m.lastSeen = iso(time)
  }

  // The stored events match the model.
  const stored = new Map((await walk(t, c, admin.token, {}, 100)).map(e => [e.id, e]))
  t.equal(stored.size, 25, '25 events')
  for (const m of model) {
    const e = stored.get(m.id)
    t.same(e && [e.source, e.account_id, e.severity, e.status, e.occurred_at, e.last_seen_at], [m.source, m.account, m.severity, m.status, m.occurred, m.lastSeen], `event ${m.id} as ingested`)
  }

  const expectIds = (filter: (m: Model) => boolean, field: 'occurred' | 'lastSeen' = 'occurred'): string[] =>
    model.filter(filter).sort((a, b) => (a[field] < b[field] ? 1 : a[field] > b[field] ? -1 : 0)).map(m => m.id)
  const check = async (query: Record<string, string>, filter: (m: Model) => boolean, label: string, who = user.token) => {
    const field = query.time_field === 'last_seen_at' ? 'lastSeen' : 'occurred'
    const got = ids(await walk(t, c, who, query, 100))
    t.strictSame(got, expectIds(filter, field), `${label}: ${JSON.stringify(query)} (${got.length} items)`)
  }

  await check({}, () => true, 'all, newest first by occurred_at')
  for (const severity of SEVERITIES) await check({ severity }, m => m.severity === severity, 'severity')
  for (const source of ['aws.cloudwatch', 'aws.guardduty', 'aws.securityhub', 'aws.health'] as Source[]) await check({ source }, m => m.source === source, 'source')
  for (const account of [ACCOUNT, OTHER_ACCOUNT]) await check({ account_id: account }, m => m.account === account, 'account_id')
  for (const status of ['open', 'acknowledged', 'resolved', 'suppressed'] as EventStatus[]) await check({ status }, m => m.status === status, 'status')
  await check({ source: 'aws.cloudwatch', account_id: ACCOUNT }, m => m.source === 'aws.cloudwatch' && m.account === ACCOUNT, 'source + account')
  await check({ severity: 'high', status: 'open' }, m => m.severity === 'high' && m.status === 'open', 'severity + status')
  await check({ account_id: OTHER_ACCOUNT, source: 'aws.health', status: 'open' }, m => m.account === OTHER_ACCOUNT && m.source === 'aws.health' && m.status === 'open', 'three filters')

  // occurred_at ranges: from inclusive, to exclusive.
  const occ = (i: number): string => model[i]!.occurred
  await check({ from: occ(5), to: occ(15) }, m => m.occurred >= occ(5) && m.occurred < occ(15), 'from/to')
  await check({ from: occ(20) }, m => m.occurred >= occ(20), 'from only')
  await check({ to: occ(3) }, m => m.occurred < occ(3), 'to only')
  await check({ from: '2025-03-01T07:00:00+02:00', to: at(15 * 60) }, m => m.occurred >= occ(5) && m.occurred < occ(15), 'from with an offset, to without milliseconds')
  await check({ from: occ(7), to: occ(7) }, () => false, 'from = to is empty')
  await check({ from: occ(4), to: occ(20), source: 'aws.guardduty' }, m => m.source === 'aws.guardduty' && m.occurred >= occ(4) && m.occurred < occ(20), 'range + source')
  await check({ from: occ(4), to: occ(20), account_id: OTHER_ACCOUNT, severity: 'medium' }, m => m.account === OTHER_ACCOUNT && m.severity === 'medium' && m.occurred >= occ(4) && m.occurred < occ(20), 'range + account + severity')

  // last_seen_at.
  await check({ time_field: 'last_seen_at' }, () => true, 'newest first by last_seen_at')
  await check({ time_field: 'last_seen_at', from: iso(at(2000)) }, m => m.lastSeen >= iso(at(2000)), 'last_seen_at from')
  await check({ time_field: 'last_seen_at', from: iso(at(2000)), to: iso(at(3011)) }, m => m.lastSeen >= iso(at(2000)) && m.lastSeen < iso(at(3011)), 'last_seen_at from/to')
  await check({ time_field: 'last_seen_at', to: occ(24) }, m => m.lastSeen < occ(24), 'last_seen_at to')
  await check({ time_field: 'last_seen_at', source: 'aws.securityhub' }, m => m.source === 'aws.securityhub', 'last_seen_at + source')
  await check({ time_field: 'last_seen_at', status: 'resolved', from: iso(at(2001)) }, m => m.status === 'resolved' && m.lastSeen >= iso(at(2001)), 'last_seen_at + status + from')
  await check({ time_field: 'occurred_at', from: occ(10), to: occ(13) }, m => m.occurred >= occ(10) && m.occurred < occ(13), 'explicit time_field=occurred_at')

  // Pagination with limit=4.
  for (const query of [{}, { account_id: ACCOUNT }, { time_field: 'last_seen_at' }, { status: 'open' }] as Array<Record<string, string>>) {
    const pages = await walk(t, c, manager.token, query, 4)
    const got = ids(pages)
    t.equal(new Set(got).size, got.length, `limit=4 ${JSON.stringify(query)}: no duplicates`)
    t.strictSame(got, ids(await walk(t, c, manager.token, query, 100)), `limit=4 ${JSON.stringify(query)}: same items and order as one page`)
  }
  const page1 = await c.list(user.token, '?limit=4')
  const p1 = page1.json<Page<MonitoringEvent>>()
  t.equal(p1.items.length, 4, 'first page of 4')
  t.type(p1.next_cursor, 'string', 'a next_cursor')
  const cursor = String(p1.next_cursor)
  const filtered = (await c.list(user.token, `?limit=4&account_id=${ACCOUNT}`)).json<Page<MonitoringEvent>>()
  const fCursor = String(filtered.next_cursor)
  assertProblem(t, await c.list(user.token, qs({ limit: 4, cursor: fCursor, source: 'aws.guardduty' })), 400, 'invalid_cursor', 'cursor with another filter')
  assertProblem(t, await c.list(user.token, qs({ limit: 4, cursor: fCursor })), 400, 'invalid_cursor', 'cursor without its filter')
  assertProblem(t, await c.list(user.token, qs({ limit: 4, cursor, time_field: 'last_seen_at' })), 400, 'invalid_cursor', 'cursor with another time_field')
  assertProblem(t, await c.list(user.token, qs({ limit: 4, cursor, from: occ(2) })), 400, 'invalid_cursor', 'cursor with another range')
  const mid = Math.floor(cursor.length / 2)
  assertProblem(t, await c.list(user.token, qs({ limit: 4, cursor: cursor.slice(0, mid) + (cursor[mid] === 'A' ? 'B' : 'A') + cursor.slice(mid + 1) })), 400, 'invalid_cursor', 'tampered cursor')
  assertProblem(t, await c.list(user.token, qs({ limit: 4, cursor: 'bm90LWEtY3Vyc29y' })), 400, 'invalid_cursor', 'made-up cursor')
  const p2 = await c.list(user.token, qs({ limit: 4, cursor }))
  t.equal(p2.statusCode, 200, 'the cursor works with its own query')

  // Bad query values.
  const bad: Array<Record<string, string>> = [
    { severity: 'urgent' }, { source: 'aws.ec2' }, { account_id: '12345' }, { status: 'closed' }, { limit: '0' }, { limit: '101' }, { limit: 'ten' },
    { from: 'yesterday' }, { to: '2025-13-01T00:00:00Z' }, { time_field: 'created_at' }, { from: occ(10), to: occ(5) }
  ]
  for (const query of bad) {
    const label = `GET /api/events${qs(query)}`
    // A response outside the contract (e.g. a 500) fails this assertion, not the rest of the block.
    const res = await c.list(user.token, qs(query)).catch((err: Error) => { t.fail(`${label}: ${err.message.slice(0, 400)}`) })
    if (res) assertProblem(t, res, 400, 'validation_failed', label)
  }

  // Roles.
  for (const [role, token] of [['user', user.token], ['manager', manager.token], ['admin', admin.token]] as const) {
    t.equal((await c.list(token, '?limit=1')).statusCode, 200, `${role} may list`)
    const got = await c.get(token, model[0]!.id)
    t.equal(got.statusCode, 200, `${role} may get`)
    t.equal(got.json<MonitoringEvent>().id, model[0]!.id, `${role}: the right event`)
  }
  assertProblem(t, await c.list(undefined), 401, 'token_invalid', 'anonymous list')
  assertProblem(t, await c.get(undefined, model[0]!.id), 401, 'token_invalid', 'anonymous get')
  assertProblem(t, await api.request({ method: 'GET', url: '/api/events', headers: { 'x-api-key': key } }), 401, undefined, 'an ingestion key does not list events')
  assertProblem(t, await c.get(user.token, MISSING_ID), 404, 'not_found', 'unknown event')
  assertProblem(t, await c.get(user.token, 'not-an-id'), 400, 'validation_failed', 'malformed event id')
})

// ------------------------------------------------------------------------------------------
t.test('delete events: admin only, soft delete, and a new trigger opens a new event', async t => {
  const { api, c, key, admin } = await setup(t)
  const user = await api.userWithRole('user')
  const manager = await api.userWithRole('manager')
  const name = 'delete-me'
  const first = alarm({ name, time: at(0) })
  const id = String((await ingestOne(t, c, key, first, 'created', 'event to delete')).event_id)
  const keep = String((await ingestOne(t, c, key, alarm({ name: 'keep-me', time: at(1) }), 'created', 'event to keep')).event_id)
  const taskRes = await c.createTask(user.token, id)
  t.equal(taskRes.statusCode, 201, 'a task from the event')
  const task = taskRes.json<Task>()
  const before = await mustEvent(c, admin.token, id)

  assertProblem(t, await c.remove(undefined, id), 401, 'token_invalid', 'anonymous delete')
  assertProblem(t, await c.remove(user.token, id), 403, 'forbidden', 'user delete')
  assertProblem(t, await c.remove(manager.token, id), 403, 'forbidden', 'manager delete')
  t.strictSame(await mustEvent(c, admin.token, id), before, 'refused deletes changed nothing')

  const del = await c.remove(admin.token, id)
  t.equal(del.statusCode, 204, 'admin delete → 204')
  t.equal(del.body, '', 'no body')
  assertProblem(t, await c.get(admin.token, id), 404, 'not_found', 'GET after delete (admin)')
  assertProblem(t, await c.get(user.token, id), 404, 'not_found', 'GET after delete (user)')
  for (const query of [{}, { source: 'aws.cloudwatch' }, { status: 'acknowledged' }, { account_id: ACCOUNT }, { severity: 'medium' }, { time_field: 'last_seen_at' }] as Array<Record<string, string>>) {
    const listed = ids(await walk(t, c, admin.token, query, 100))
    t.notOk(listed.includes(id), `deleted event absent from ${JSON.stringify(query)}`)
  }
  t.same(ids(await walk(t, c, admin.token, {}, 100)), [keep], 'the other event is still listed')
  assertProblem(t, await c.remove(admin.token, id), 404, 'not_found', 'delete again')
  assertProblem(t, await c.remove(admin.token, MISSING_ID), 404, 'not_found', 'delete unknown')
  assertProblem(t, await c.createTask(admin.token, id, {}), 404, 'not_found', 'create-task on a deleted event')
  const kept = await c.task(admin.token, task.id)
  t.equal(kept.statusCode, 200, 'the task created from it is kept')
  t.equal(kept.json<Task>().event_id, id, 'the kept task still names the event')

  // Redelivery does not resurrect it; a new trigger opens a new event.
  await ingestOne(t, c, key, first, 'duplicate', 'redelivery of the deleted event\'s envelope')
  assertProblem(t, await c.get(admin.token, id), 404, 'not_found', 'still deleted after the redelivery')
  const again = await ingestOne(t, c, key, alarm({ name, time: at(10) }), 'created', 'new trigger of the deleted event\'s alarm')
  t.not(again.event_id, id, 'a new event id')
  const fresh = await mustEvent(c, admin.token, again.event_id)
  t.same([fresh.occurrence_count, fresh.occurred_at, fresh.status, fresh.task_id], [1, iso(at(10)), 'open', null], 'the new event starts afresh')
  t.equal(fresh.dedup_key, before.dedup_key, 'same dedup_key')
})

// ------------------------------------------------------------------------------------------
t.test('create a task from an event: defaults, overrides, conflicts, concurrency, unlinking', async t => {
  const { api, c, key, admin } = await setup(t)
  const user = await api.userWithRole('user')
  const manager = await api.userWithRole('manager')
  let minute = 0
  const open = async (name: string, severity?: string): Promise<MonitoringEvent> => {
    const r = await ingestOne(t, c, key, alarm({ name, time: at(++minute), ...(severity ? { severity } : {}) }), 'created', `event ${name}`)
    return mustEvent(c, admin.token, r.event_id)
  }
  const tasksOf = async (eventId: string): Promise<string[]> => ids((await c.tasksOf(admin.token, eventId)).json<Page<Task>>().items)

  // No body at all.
  const ev = await open('task-default')
  assertProblem(t, await c.createTask(undefined, ev.id), 401, 'token_invalid', 'anonymous')
  const res = await c.createTask(user.token, ev.id)
  t.equal(res.statusCode, 201, `no body → 201 (got ${res.statusCode}: ${res.body.slice(0, 200)})`)
  const task = res.json<Task>()
  t.match(task.id, ULID, 'task id')
  t.equal(task.title, ev.title.slice(0, 200), 'title from the event')
  t.equal(task.description, ev.description, 'description from the event')
  t.equal(task.priority, 'medium', 'priority from the severity (medium)')
  t.equal(task.event_id, ev.id, 'event_id')
  t.equal(task.created_by, user.id, 'created_by is the caller')
  t.same([task.status, task.assigned_to, task.due_at], ['open', null, null], 'open, unassigned, no due date')
  t.equal(res.headers.location, `/api/tasks/${task.id}`, 'Location')
  t.equal(res.headers.etag, `"v${task.version}"`, 'ETag')
  let after = await mustEvent(c, admin.token, ev.id)
  t.equal(after.task_id, task.id, 'the event names the task')
  t.equal(after.status, 'acknowledged', 'the event is acknowledged')
  const detail = await c.task(manager.token, task.id)
  t.equal(detail.json<Task>().event_id, ev.id, 'GET /api/tasks/{id} shows event_id')

  // A second task for the same event.
  const second = await c.createTask(manager.token, ev.id, {})
  assertProblem(t, second, 409, 'event_has_task', 'second create-task')
  t.equal(second.json().task_id, task.id, 'the problem names the existing task')
  t.same(await tasksOf(ev.id), [task.id], 'still one task for the event')

  // `{}` body, every role, priority from every severity.
  const roles: Who[] = [user, manager, admin]
  for (const [n, severity] of SEVERITIES.entries()) {
    const e = await open(`task-severity-${severity}`, severity)
    t.equal(e.severity, severity, `event severity ${severity}`)
    const r = await c.createTask(roles[n % 3]!.token, e.id, {})
    t.equal(r.statusCode, 201, `{} as ${['user', 'manager', 'admin'][n % 3]} → 201`)
    t.equal(r.json<Task>().priority, PRIORITY_OF[severity], `severity ${severity} → priority ${PRIORITY_OF[severity]}`)
    t.equal(r.json<Task>().created_by, roles[n % 3]!.id, 'created_by is the caller')
  }

  // Long titles are cut to 200 characters.
  const long = await open(`very-long-alarm-name-${'x'.repeat(220)}`)
  t.ok(long.title.length > 200, `event title is longer than 200 (${long.title.length})`)
  const longTask = (await c.createTask(user.token, long.id, {})).json<Task>()
  t.equal(longTask.title, long.title.slice(0, 200), 'task title is the event title cut to 200')

  // Overrides.
  const custom = await open('task-overrides', 'low')
  const over = await c.createTask(user.token, custom.id, { title: 'Investigate latency', description: 'Check the load balancer.', priority: 'critical', assigned_to: manager.id, due_at: '2030-01-02T03:04:05Z' })
  t.equal(over.statusCode, 201, 'overrides → 201')
  t.match(over.json<Task>(), { title: 'Investigate latency', description: 'Check the load balancer.', priority: 'critical', assigned_to: manager.id, due_at: '2030-01-02T03:04:05.000Z', event_id: custom.id }, 'overrides applied')
  t.equal((await mustEvent(c, admin.token, custom.id)).task_id, over.json<Task>().id, 'linked')

  // Invalid assignee or body: no task, no link.
  const guarded = await open('task-invalid')
  assertProblem(t, await c.createTask(user.token, guarded.id, { assigned_to: MISSING_ID }), 400, 'invalid_assignee', 'unknown assignee')
  const gone = await api.userWithRole('user')
  t.equal((await api.request({ method: 'DELETE', url: `/api/users/${gone.id}`, headers: api.auth(admin.token) })).statusCode, 204, 'user deactivated')
  assertProblem(t, await c.createTask(user.token, guarded.id, { assigned_to: gone.id }), 400, 'invalid_assignee', 'deactivated assignee')
  assertProblem(t, await c.createTask(user.token, guarded.id, { status: 'closed' }), 400, 'validation_failed', 'unknown body property')
  assertProblem(t, await c.createTask(user.token, guarded.id, { priority: 'info' }), 400, 'validation_failed', 'priority info is not a task priority')
  assertProblem(t, await c.createTask(user.token, guarded.id, { title: '' }), 400, 'validation_failed', 'empty title')
  after = await mustEvent(c, admin.token, guarded.id)
  t.same([after.task_id, after.status], [null, 'open'], 'the event keeps no task_id and stays open')
  t.same(await tasksOf(guarded.id), [], 'no task was stored')
  t.equal((await c.createTask(user.token, guarded.id, { assigned_to: user.id })).statusCode, 201, 'a valid assignee then works')

  // Unknown and deleted events.
  assertProblem(t, await c.createTask(user.token, MISSING_ID), 404, 'not_found', 'unknown event')
  const doomed = await open('task-deleted')
  t.equal((await c.remove(admin.token, doomed.id)).statusCode, 204, 'event deleted')
  assertProblem(t, await c.createTask(user.token, doomed.id, {}), 404, 'not_found', 'deleted event')

  // 5 concurrent calls on a fresh event.
  const race = await open('task-race', 'high')
  const callers = [user, manager, admin, user, manager]
  const results = await Promise.all(callers.map(w => c.createTask(w.token, race.id, {})))
  const codes = results.map(r => r.statusCode)
  t.equal(codes.filter(s => s === 201).length, 1, `exactly one 201 (got ${codes.join(',')})`)
  t.equal(codes.filter(s => s === 409).length, 4, 'the others 409')
  const winner = results.find(r => r.statusCode === 201)?.json<Task>().id
  for (const r of results.filter(x => x.statusCode === 409)) {
    t.equal(r.json().code, 'event_has_task', '409 event_has_task')
    t.equal(r.json().task_id, winner, '409 names the winning task')
  }
  t.same(await tasksOf(race.id), [winner], 'exactly one task with that event_id')
  t.equal((await mustEvent(c, admin.token, race.id)).task_id, winner, 'the event names the winner')

  // Deleting the task frees the event.
  const del = await c.removeTask(user.token, task.id)
  t.equal(del.statusCode, 204, 'the creator deletes the task')
  after = await mustEvent(c, admin.token, ev.id)
  t.equal(after.task_id, null, 'the event no longer names the deleted task')
  const next = await c.createTask(manager.token, ev.id, {})
  t.equal(next.statusCode, 201, 'a new task can be created')
  t.not(next.json<Task>().id, task.id, 'a new task id')
  t.equal((await mustEvent(c, admin.token, ev.id)).task_id, next.json<Task>().id, 'linked to the new task')
  t.same(await tasksOf(ev.id), [next.json<Task>().id], 'the deleted task is not listed for the event')

  // A resolved event keeps its status when it gets a task.
  const done = await open('task-resolved')
  await ingestOne(t, c, key, alarm({ name: 'task-resolved', state: 'OK', time: at(++minute) }), 'resolved', 'resolve before the task')
  const onResolved = await c.createTask(user.token, done.id)
  t.equal(onResolved.statusCode, 201, 'task from a resolved event')
  after = await mustEvent(c, admin.token, done.id)
  t.same([after.status, after.task_id], ['resolved', onResolved.json<Task>().id], 'still resolved, now linked')
})

t.test('review regressions: account isolation, late resolutions, in-flight retries, oversized and malformed envelopes', async t => {
  const api = await build(t)
  const admin = await api.adminToken()
  const register = async (accountId: string) => (await api.request({ method: 'POST', url: '/api/config/aws-accounts', headers: api.auth(admin), payload: { account_id: accountId, name: accountId, role_arn: `arn:aws:iam::${accountId}:role/R` } })).json().api_key as string
  const keyA = await register('123456789012')
  const keyB = await register('210987654321')
  const cw = (account: string, alarmAccount: string, id: string, state: 'ALARM' | 'OK', time: string) => ({
    version: '0',
    id,
    'detail-type': 'CloudWatch Alarm State Change',
    source: 'aws.cloudwatch',
    account,
    time,
    region: 'us-east-1',
    resources: [`arn:aws:cloudwatch:us-east-1:${alarmAccount}:alarm:shared-name`],
    detail: { alarmName: 'shared-name', state: { value: state, reason: state, timestamp: time }, previousState: { value: state === 'OK' ? 'ALARM' : 'OK' }, configuration: { metrics: [] } }
  })
  const ingest = (key: string, body: object) => api.request({ method: 'POST', url: '/api/events/ingest', headers: { 'x-api-key': key }, payload: body })

  // B's event cannot be touched through A's key, even with B's alarm ARN.
  const b = (await ingest(keyB, cw('210987654321', '210987654321', 'b-1', 'ALARM', '2026-11-25T10:00:00Z'))).json().results[0]
  const a1 = (await ingest(keyA, cw('123456789012', '210987654321', 'a-1', 'ALARM', '2026-11-25T10:01:00Z'))).json().results[0]
  const a2 = (await ingest(keyA, cw('123456789012', '210987654321', 'a-2', 'OK', '2026-11-25T10:02:00Z'))).json().results[0]
  t.not(a1.event_id, b.event_id, 'A opens its own event instead of updating B\'s')
  t.equal(a2.event_id, a1.event_id, 'and resolves its own')
  const bEvent = (await api.request({ method: 'GET', url: `/api/events/${b.event_id}`, headers: api.auth(admin) })).json()
  t.match(bEvent, { status: 'open', occurrence_count: 1, account_id: '210987654321' }, 'B\'s event is untouched')

  // A late, retried OK older than the latest occurrence does not resolve a firing alarm.
  await ingest(keyB, cw('210987654321', '210987654321', 'b-2', 'ALARM', '2026-11-25T10:20:00Z'))
  const late = (await ingest(keyB, cw('210987654321', '210987654321', 'b-3', 'OK', '2026-11-25T10:10:00Z'))).json().results[0]
  t.equal(late.action, 'ignored')
  t.equal(late.reason, 'stale_resolution', 'ignored as a stale resolution')
  t.equal((await api.request({ method: 'GET', url: `/api/events/${b.event_id}`, headers: api.auth(admin) })).json().status, 'open')

  // Envelopes the database could not store, or that are malformed, are refused per envelope; the rest proceed.
  const big = cw('123456789012', '123456789012', 'big-1', 'ALARM', '2026-11-25T11:00:00Z')
  big.resources = ['arn:aws:cloudwatch:us-east-1:123456789012:alarm:big']
  ;(big.detail as Record<string, unknown>).padding = 'p'.repeat(450_000)
  const bigRes = await ingest(keyA, big)
  t.equal(bigRes.statusCode, 202, 'a 450 KB envelope is ingested')
  const bigEvent = (await api.request({ method: 'GET', url: `/api/events/${bigRes.json().results[0].event_id}`, headers: api.auth(admin) })).json()
  t.match(bigEvent.raw.detail, { _truncated: true }, 'with its oversized detail left out of raw')
  let deep: Record<string, unknown> = {}
  const root = deep
  for (let i = 0; i < 100; i++) { deep.next = {}; deep = deep.next as Record<string, unknown> }
  const nested = { ...cw('123456789012', '123456789012', 'deep-1', 'ALARM', '2026-11-25T11:05:00Z'), detail: { ...cw('123456789012', '123456789012', 'x', 'ALARM', '2026-11-25T11:05:00Z').detail, nested: root } }
  const batch = await ingest(keyA, { events: [nested, { ...cw('123456789012', '123456789012', 'ok-after', 'ALARM', '2026-11-25T11:06:00Z'), resources: ['arn:aws:cloudwatch:us-east-1:123456789012:alarm:after'] }, { ...cw('123456789012', '123456789012', '\ud800', 'ALARM', '2026-11-25T11:07:00Z'), resources: ['arn:aws:cloudwatch:us-east-1:123456789012:alarm:surrogate'] }] })
  t.equal(batch.statusCode, 202)
  t.same(batch.json().results.map((r: { action: string }) => r.action), ['rejected', 'created', 'rejected'], 'deep nesting and an ill-formed id are refused; the rest proceed')
})
