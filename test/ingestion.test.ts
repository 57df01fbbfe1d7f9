/**
 * Ingestion regressions (POST /api/events/ingest and the ingestion health of an AWS account):
 * envelope leniency, the body's shape deciding its schema, per-envelope rejection in batches,
 * ignore reasons, `__proto__`/`constructor` keys as data, item size, future times, occurrences
 * refreshing the event, Security Hub envelopes with several findings, transient database
 * failures (503), rate limits per API key and per client address for failed keys, and the
 * ingestion health counters. Every request goes through the helper's `request`, so every
 * response is also checked against docs/api-specification.yaml. Envelopes are clones of
 * test/fixtures/events/*.json.
 *
 * Fast on purpose: two apps for the whole file (building one costs about half a second), one
 * with the default limits and one with tiny ingestion limits. Each test registers its own AWS
 * account(s) and sends envelopes of that account only, so tests never see each other's events
 * (lists are filtered by `account_id`), dedup keys or envelope claims.
 */
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { unmarshall } from '@aws-sdk/util-dynamodb'
import t from 'tap'
import type { Test } from 'tap'
import { itemSize, MAX_ITEM_BYTES } from '../src/db/item-size.js'
import type * as S from '../openapi/generated/schemas.js'
import { build, assertProblem, type Api, type Response } from './helper.js'

type Json = Record<string, any>
type IngestResult = S.IngestResult
type Action = IngestResult['action']
type IgnoreReason = S.IgnoreReason
type IngestResponse = S.IngestResponse
type IngestionHealth = S.IngestionHealth
type IngestionWindow = S.IngestionWindow
type Counts = S.IngestionCounts
/** The generated event type, with `raw` and `labels` as JSON to read into. */
type MonitoringEvent = Omit<S.MonitoringEvent, 'raw' | 'labels'> & { raw: Json, labels: Record<string, string> }
interface Page<T> { items: T[], next_cursor: string | null }

const MISSING_ID = '01JDQ2Z5Y3K4M5N6P7Q8R9S0TV'
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/
const CW = 'CloudWatch Alarm State Change'
const GD = 'GuardDuty Finding'

// ------------------------------------------------------------------------------------------
// The apps. Built in this order on purpose: Dynamoose's client is process-wide (the last app
// built sets it), and the fault injection below acts on the default app's client.

let apps: Promise<{ limited: Api, main: Api }> | undefined
const getApps = (): Promise<{ limited: Api, main: Api }> => (apps ??= (async () => {
  const limited = await build(t, { INGEST_RATE_LIMIT_MAX: '5', INGEST_INVALID_KEY_LIMIT_MAX: '3' })
  const main = await build(t)
  return { limited, main }
})())

let accounts = 0
/** A new 12-digit AWS account number for each use. */
const newAccountId = (): string => String(400_000_000_000 + ++accounts * 1_000_003)

// ------------------------------------------------------------------------------------------
// Envelopes: clones of the fixtures for one AWS account, each with a new EventBridge id.

const FIXTURES = new URL('./fixtures/events/', import.meta.url)
const fixture = (name: string): Json => JSON.parse(readFileSync(new URL(`${name}.json`, FIXTURES), 'utf8'))
/** Minutes after a fixed base, as EventBridge writes `time` (no milliseconds). */
const at = (minutes: number): string => new Date(Date.parse('2025-03-01T00:00:00.000Z') + minutes * 60_000).toISOString().replace('.000Z', 'Z')
const iso = (time: string): string => new Date(time).toISOString()
/** A time `ms` from now, as EventBridge writes it. */
const fromNow = (ms: number): string => new Date(Date.now() + ms).toISOString()
const hex = (): string => randomUUID().replace(/-/g, '')
const alarmArn = (name: string, account: string): string => `arn:aws:cloudwatch:us-east-1:${account}:alarm:${name}`
const instanceArn = (account: string, n: number): string => `arn:aws:ec2:us-east-1:${account}:instance/i-${String(n).padStart(17, '0')}`

function envelopesOf (account: string) {
  function envelope (name: string, change?: (e: Json) => void): Json {
    const e = fixture(name)
    e.id = randomUUID()
    e.account = account
    change?.(e)
    return e
  }
  return {
    envelope,
    /** A CloudWatch Alarm State Change of alarm `name`. */
    alarm (o: { name: string, time?: string, state?: 'ALARM' | 'OK' | 'INSUFFICIENT_DATA', account?: string }): Json {
      const state = o.state ?? 'ALARM'
      const file = state === 'OK' ? 'cloudwatch-ok' : state === 'INSUFFICIENT_DATA' ? 'cloudwatch-insufficient-data' : 'cloudwatch-alarm'
      return envelope(file, e => {
        if (o.account) e.account = o.account
        e.region = 'us-east-1'
        if (o.time) e.time = o.time
        e.resources = [alarmArn(o.name, e.account)]
        e.detail.alarmName = o.name
        e.detail.state.value = state
      })
    },
    /** A GuardDuty Finding with id `finding`. */
    guardDuty (o: { finding: string, time?: string }): Json {
      return envelope('guardduty-finding', e => {
        e.detail.accountId = account
        e.detail.id = o.finding
        e.detail.arn = `arn:aws:guardduty:us-east-1:${account}:detector/5cc2a1e0b6d84f3e9a7b2c1d0e9f8a7b/finding/${o.finding}`
        e.detail.severity = 8
        if (o.time) e.time = o.time
      })
    },
    /** The Security Hub envelope with three different findings (HIGH, MEDIUM, LOW), their ids made unique with `tag`. */
    severalFindings (tag: string, change?: (e: Json) => void): Json {
      return envelope('securityhub-findings-several', e => {
        for (const f of e.detail.findings) {
          f.Id = `${String(f.Id).replace(/[0-9a-f-]{36}$/, '')}${tag}-${String(f.Id).slice(-8)}`
          f.AwsAccountId = account
        }
        e.resources = e.detail.findings.map((f: Json) => `${f.ProductArn}/${f.Id}`)
        change?.(e)
      })
    }
  }
}

/** A JSON round trip adding `keys` first: an own `__proto__` key stays an own property (no prototype is touched). */
const withKeys = (value: Json, keys: string): Json => JSON.parse(JSON.stringify(value).replace(/^\{/, `{${keys},`))

// ------------------------------------------------------------------------------------------
// Clients and shared steps.

function eventsClient (api: Api, account: string) {
  return {
    ingest: (key: string | undefined, payload: object | string, remoteAddress?: string) =>
      api.request({
        method: 'POST',
        url: '/api/events/ingest',
        headers: { ...(key === undefined ? {} : { 'x-api-key': key }), ...(typeof payload === 'string' ? { 'content-type': 'application/json' } : {}) },
        payload,
        ...(remoteAddress ? { remoteAddress } : {})
      }),
    get: async (id: string | null): Promise<MonitoringEvent> => {
      const res = await api.request({ method: 'GET', url: `/api/events/${String(id)}`, headers: api.auth(await api.adminToken()) })
      if (res.statusCode !== 200) throw new Error(`getEvent ${id} failed: ${res.statusCode} ${res.body.slice(0, 300)}`)
      return res.json<MonitoringEvent>()
    },
    /** This account's events (one page of 100 is plenty here), newest first. */
    list: async (query = ''): Promise<MonitoringEvent[]> => {
      const res = await api.request({ method: 'GET', url: `/api/events?limit=100&account_id=${account}${query}`, headers: api.auth(await api.adminToken()) })
      if (res.statusCode !== 200) throw new Error(`listEvents failed: ${res.statusCode} ${res.body.slice(0, 300)}`)
      return res.json<Page<MonitoringEvent>>().items
    }
  }
}
type Client = ReturnType<typeof eventsClient>

/** Registers a monitored AWS account as the admin: its record id and its ingestion key. */
async function registerAccount (api: Api, accountId: string): Promise<{ id: string, key: string }> {
  const res = await api.request({
    method: 'POST',
    url: '/api/config/aws-accounts',
    headers: api.auth(await api.adminToken()),
    payload: { account_id: accountId, name: `account ${accountId}`, role_arn: `arn:aws:iam::${accountId}:role/MonitoringReadOnly` }
  })
  if (res.statusCode !== 201) throw new Error(`createAwsAccount ${accountId} failed: ${res.statusCode} ${res.body.slice(0, 300)}`)
  return { id: res.json().account.id, key: res.json().api_key }
}

/** A new AWS account on the default app (or the limited one): its key, client and envelopes. */
async function setup (which: 'main' | 'limited' = 'main') {
  const api = (await getApps())[which]
  const acct = newAccountId()
  const account = await registerAccount(api, acct)
  return { api, acct, account, key: account.key, c: eventsClient(api, acct), ...envelopesOf(acct) }
}

/** Expects 202 and returns the body. */
function accepted (t: Test, res: Response, label: string): IngestResponse {
  t.equal(res.statusCode, 202, `${label}: 202${res.statusCode === 202 ? '' : ` (got ${res.statusCode}: ${res.body.slice(0, 300)})`}`)
  return res.statusCode === 202 ? res.json<IngestResponse>() : { accepted: 0, duplicates: 0, rejected: 0, results: [] }
}

/** Ingests one envelope, expects 202 with `action` (and `reason` for ignored); returns its result. */
async function ingestOne (t: Test, c: Client, key: string, env: Json | string, action: Action, label: string, reason: IgnoreReason | null = null): Promise<IngestResult> {
  const body = accepted(t, await c.ingest(key, env), label)
  const r = body.results[0] ?? ({} as IngestResult)
  t.same([body.results.length, r.action, r.reason, r.item], [1, action, reason, 0], `${label}: one result, ${action}${reason ? ` (${reason})` : ''}${r.action === action ? '' : ` (got ${r.action} ${r.reason ?? ''} ${r.error ? JSON.stringify(r.error) : ''})`}`)
  if (['created', 'updated', 'resolved'].includes(action)) t.match(r.event_id, ULID, `${label}: event_id`)
  return r
}

/**
 * Fault injection on the app's DynamoDB client (the database stays real): `fault` runs around
 * each command named `command` (`*`: every command).
 */
function onCommand (api: Api, command: string, fault: (next: () => Promise<unknown>, input: Json) => Promise<unknown>): () => void {
  const name = `test-fault-${randomUUID()}`
  api.app.db.client.middlewareStack.add((next, context) => async (args) => {
    if (command !== '*' && context.commandName !== command) return next(args)
    return fault(() => next(args), args.input as Json) as ReturnType<typeof next>
  }, { step: 'initialize', name })
  return () => { api.app.db.client.middlewareStack.remove(name) }
}

/** A problem with `status` and `code`, and Retry-After in whole seconds. */
function assertRetryLater (t: Test, res: Response, status: 429 | 503, label: string): void {
  assertProblem(t, res, status, status === 429 ? 'rate_limited' : 'service_unavailable', label)
  t.match(String(res.headers['retry-after'] ?? ''), /^[1-9]\d*$/, `${label}: Retry-After in seconds`)
}

/** The stored event item, measured as DynamoDB measures it (UTF-8), fits its 400 KB limit. */
async function assertItemFits (t: Test, api: Api, id: string | null, label: string): Promise<void> {
  const res = await api.app.db.client.getItem({ TableName: `${api.config.tablePrefix}events`, Key: { id: { S: String(id) } }, ConsistentRead: true })
  const size = res.Item ? itemSize(unmarshall(res.Item)) : Infinity
  t.ok(size <= MAX_ITEM_BYTES, `${label}: the stored item is ${size} bytes, within DynamoDB's ${MAX_ITEM_BYTES}`)
}

// ------------------------------------------------------------------------------------------
t.test('envelope leniency: unknown top-level fields, region tokens, any number of resources', async t => {
  const { api, acct, c, key, alarm, envelope } = await setup()

  // replay-name (EventBridge replays) and a field AWS might add tomorrow: accepted, kept in raw.
  const replayed = alarm({ name: 'replayed', time: at(0) })
  replayed['replay-name'] = 'replay-2025-03-01'
  replayed['x-invented-field'] = { added: 'by AWS later', list: [1, 2, 3] }
  const r1 = await ingestOne(t, c, key, replayed, 'created', 'unknown top-level fields')
  const ev1 = await c.get(r1.event_id)
  t.equal(ev1.raw['replay-name'], 'replay-2025-03-01', 'replay-name kept in raw')
  t.same(ev1.raw['x-invented-field'], { added: 'by AWS later', list: [1, 2, 3] }, 'the invented field kept in raw')
  t.strictSame(ev1.raw, replayed, 'raw is the whole envelope')
  const inBatch = alarm({ name: 'replayed-in-batch', time: at(1) })
  inBatch['another-new-field'] = 'x'
  const batch = accepted(t, await c.ingest(key, { events: [inBatch] }), 'unknown top-level field in a batch')
  t.equal(batch.results[0]?.action, 'created', 'an envelope with an unknown field in a batch is created')

  // Region `global` (AWS Health events that are not regional); region and version are optional.
  const r2 = await ingestOne(t, c, key, envelope('health-issue', e => { e.region = 'global' }), 'created', 'region global')
  t.equal((await c.get(r2.event_id)).region, 'global', 'event region global')
  const noRegion = alarm({ name: 'no-region', time: at(2) })
  delete noRegion.region
  delete noRegion.version
  await ingestOne(t, c, key, noRegion, 'created', 'no region and no version (not required)')

  // 58 resources: the event keeps the first 50, and counts 58.
  const many = alarm({ name: 'many-resources', time: at(3) })
  many.resources = [alarmArn('many-resources', acct), ...Array.from({ length: 57 }, (_, i) => instanceArn(acct, i))]
  const r3 = await ingestOne(t, c, key, many, 'created', '58 resources')
  t.equal(r3.dedup_key, alarmArn('many-resources', acct), 'dedup key: the alarm ARN')
  const ev3 = await c.get(r3.event_id)
  t.equal(ev3.resource_count, 58, 'resource_count 58')
  t.same(ev3.resources, many.resources.slice(0, 50), 'the first 50 resources, in order')
  t.equal(ev3.raw.resources.length, 58, 'raw keeps all 58')

  // 5,000 resources (about 500 KB, within the 1 MiB body limit).
  const huge = alarm({ name: 'huge-resources', time: at(4) })
  huge.resources = [alarmArn('huge-resources', acct), ...Array.from({ length: 4999 }, (_, i) => `${instanceArn(acct, i)}/${'volume-attachment'.repeat(3)}`)]
  const bytes = Buffer.byteLength(JSON.stringify(huge))
  t.ok(bytes > 400_000 && bytes < 1024 * 1024, `the envelope is ${bytes} bytes`)
  const r4 = await ingestOne(t, c, key, huge, 'created', '5,000 resources')
  const ev4 = await c.get(r4.event_id)
  t.equal(ev4.resource_count, 5000, 'resource_count 5000')
  t.same(ev4.resources, huge.resources.slice(0, 50), 'the first 50 kept')
  t.ok(ev4.raw.detail?._truncated === true || ev4.raw.resources?.length === 5000, 'raw complete, or marked _truncated')
  await assertItemFits(t, api, r4.event_id, '5,000 resources')
})

// ------------------------------------------------------------------------------------------
t.test('the body shape decides the schema: per-envelope rejection in batches, one precise error for a single envelope', async t => {
  const { c, key, alarm, envelope, guardDuty } = await setup()

  // A batch of three with one invalid envelope: two processed, one rejected with its envelope id.
  const first = alarm({ name: 'batch-first', time: at(0) })
  const noDetail = envelope('cloudwatch-alarm', e => { delete e.detail })
  const third = guardDuty({ finding: hex(), time: at(1) })
  const body = accepted(t, await c.ingest(key, { events: [first, noDetail, third] }), 'batch with one invalid envelope')
  t.same([body.accepted, body.duplicates, body.rejected], [2, 0, 1], 'totals: 2 accepted, 1 rejected')
  t.same(body.results.map(r => [r.index, r.item, r.envelope_id, r.action]), [[0, 0, first.id, 'created'], [1, 0, noDetail.id, 'rejected'], [2, 0, third.id, 'created']], 'results in order')
  const bad = body.results[1]
  t.match(bad, { event_id: null, dedup_key: null, reason: null, error: { status: 400, code: 'validation_failed' } }, 'the invalid one: rejected, validation_failed 400')
  t.match(bad?.error?.detail, /detail/, `the error detail names the missing field (${bad?.error?.detail})`)
  t.notMatch(bad?.error?.detail, /events/, 'and not the batch')

  // Every envelope invalid: still 202, each rejected on its own.
  const invalid = [
    envelope('cloudwatch-alarm', e => { delete e.time }),
    envelope('cloudwatch-alarm', e => { delete e.id }),
    envelope('cloudwatch-alarm', e => { e.account = 'not-an-account' }),
    envelope('cloudwatch-alarm', e => { e.id = 'x'.repeat(129) })
  ]
  const none = accepted(t, await c.ingest(key, { events: invalid }), 'batch of invalid envelopes only')
  t.same([none.accepted, none.duplicates, none.rejected], [0, 0, 4], 'totals: all rejected')
  t.same(none.results.map(r => [r.index, r.action, r.error?.code, r.error?.status]), invalid.map((_, i) => [i, 'rejected', 'validation_failed', 400]), 'each rejected with validation_failed')
  t.same(none.results.map(r => r.envelope_id), [invalid[0]!.id, null, invalid[2]!.id, null], 'envelope_id when it has a valid one, else null')
  t.match(none.results[0]?.error?.detail, /time/, 'missing time named')
  t.match(none.results[2]?.error?.detail, /account/, 'bad account named')
  // An envelope id that is not well-formed Unicode (a lone surrogate) cannot key deduplication.
  const surrogate = envelope('cloudwatch-alarm', e => { e.id = 'id-\ud800' })
  const lone = accepted(t, await c.ingest(key, { events: [surrogate] }), 'batch with a lone-surrogate id')
  t.match(lone.results[0], { index: 0, action: 'rejected', error: { status: 400, code: 'validation_failed', detail: /Unicode/ } }, 'a lone surrogate in the envelope id: rejected, validation_failed')
  t.equal((await c.list()).length, 2, 'only the two valid envelopes made events')

  // A single invalid envelope: one precise error, about the envelope only.
  const noTime = alarm({ name: 'single-no-time' })
  delete noTime.time
  let res = await c.ingest(key, noTime)
  assertProblem(t, res, 400, 'validation_failed', 'single envelope without time')
  t.same(res.json().errors?.map((e: Json) => e.path), ['/body/time'], `exactly one error, on /body/time (got ${JSON.stringify(res.json().errors)})`)
  const badRegion = alarm({ name: 'single-bad-region', time: at(2) })
  badRegion.region = 'us east 1'
  res = await c.ingest(key, badRegion)
  assertProblem(t, res, 400, 'validation_failed', 'single envelope with a bad region')
  t.same(res.json().errors?.map((e: Json) => e.path), ['/body/region'], `exactly one error, on /body/region (got ${JSON.stringify(res.json().errors)})`)

  // A batch that is itself invalid: errors about the batch only.
  res = await c.ingest(key, { events: 'not-a-list' })
  assertProblem(t, res, 400, 'validation_failed', 'events not an array')
  const paths: string[] = res.json().errors?.map((e: Json) => e.path) ?? []
  t.ok(paths.length > 0 && paths.every(p => p.startsWith('/body/events')), `errors only about /body/events (got ${JSON.stringify(paths)})`)
  res = await c.ingest(key, { events: [first], extra: true })
  assertProblem(t, res, 400, 'validation_failed', 'batch with an extra property')
  t.same(res.json().errors?.map((e: Json) => e.path), ['/body/extra'], 'exactly one error, on /body/extra')
  t.equal((await c.list()).length, 2, 'refused requests stored nothing')
})

// ------------------------------------------------------------------------------------------
t.test('every well-formed envelope is 202: ignored with a reason, never a 4xx', async t => {
  const { c, key, alarm, envelope } = await setup()
  const ec2 = envelope('cloudwatch-alarm', e => {
    e.source = 'aws.ec2'
    e['detail-type'] = 'EC2 Instance State-change Notification'
    e.detail = { 'instance-id': 'i-0a1b2c3d4e5f60718', state: 'stopped' }
  })
  await ingestOne(t, c, key, ec2, 'ignored', 'unknown source', 'unsupported_source')
  await ingestOne(t, c, key, envelope('cloudwatch-alarm', e => { e['detail-type'] = 'CloudWatch Alarm Configuration Change' }), 'ignored', 'unknown detail-type', 'unsupported_detail_type')
  await ingestOne(t, c, key, envelope('guardduty-finding', e => { delete e.detail.arn; delete e.detail.id }), 'ignored', 'GuardDuty finding without arn', 'detail_unreadable')
  await ingestOne(t, c, key, envelope('securityhub-finding', e => { e.detail.findings = [] }), 'ignored', 'Security Hub without findings', 'no_findings')
  await ingestOne(t, c, key, alarm({ name: 'insufficient', state: 'INSUFFICIENT_DATA', time: at(0) }), 'ignored', 'INSUFFICIENT_DATA', 'insufficient_data')
  await ingestOne(t, c, key, alarm({ name: 'nothing-open', state: 'OK', time: at(0) }), 'ignored', 'OK with nothing open', 'no_open_event')
  await ingestOne(t, c, key, alarm({ name: 'late-ok', time: at(10) }), 'created', 'ALARM')
  const stale = await ingestOne(t, c, key, alarm({ name: 'late-ok', state: 'OK', time: at(5) }), 'ignored', 'OK older than the last occurrence', 'stale_resolution')
  t.match(stale.event_id, ULID, 'a stale resolution names the open event')
  t.same((await c.list()).map(e => e.status), ['open'], 'one event, still open')
})

// ------------------------------------------------------------------------------------------
t.test('__proto__ and constructor keys are data on ingestion, refused elsewhere', async t => {
  const { api, c, key, alarm, envelope } = await setup()
  const keys = '"__proto__":{"polluted":"yes","source":"aws.ec2"},"constructor":{"prototype":{"polluted":"yes"}}'

  // In an alarm's detail, sent as JSON text.
  const cw = alarm({ name: 'proto-alarm', time: at(0) })
  cw.detail = withKeys(cw.detail, keys)
  const text = JSON.stringify(cw)
  t.ok(text.includes('"__proto__":{"polluted"'), 'the request body holds a __proto__ key')
  const r1 = await ingestOne(t, c, key, text, 'created', '__proto__ and constructor in detail')
  const ev1 = await c.get(r1.event_id)
  t.ok(Object.hasOwn(ev1.raw.detail, '__proto__'), 'raw.detail keeps __proto__ as an own key')
  t.ok(Object.hasOwn(ev1.raw.detail, 'constructor'), 'raw.detail keeps constructor')
  t.equal(JSON.stringify(ev1.raw.detail), JSON.stringify(cw.detail), 'raw.detail is the detail as sent')
  t.equal(ev1.source, 'aws.cloudwatch', 'the envelope source is read, not one from a __proto__ key')

  // At the top level of the envelope, and inside Security Hub Resources[].Tags.
  const top = withKeys(alarm({ name: 'proto-top', time: at(1) }), keys)
  const r2 = await ingestOne(t, c, key, JSON.stringify(top), 'created', '__proto__ at the top level')
  t.ok(Object.hasOwn((await c.get(r2.event_id)).raw, '__proto__'), 'raw keeps the top-level __proto__')
  const sh = envelope('securityhub-finding', e => {
    const finding = e.detail.findings[0]
    finding.Resources[0].Tags = JSON.parse('{"__proto__":"tag-value","constructor":"another","team":"security"}')
  })
  const r3 = await ingestOne(t, c, key, JSON.stringify(sh), 'created', '__proto__ and constructor in Resources[].Tags')
  const tags = (await c.get(r3.event_id)).raw.detail.findings[0].Resources[0].Tags
  t.ok(Object.hasOwn(tags, '__proto__') && Object.hasOwn(tags, 'constructor'), 'the tags keep both keys')
  t.equal(JSON.stringify(tags), '{"__proto__":"tag-value","constructor":"another","team":"security"}', 'the tags as sent')

  // In a batch too.
  const inBatch = alarm({ name: 'proto-batch', time: at(2) })
  inBatch.detail = withKeys(inBatch.detail, keys)
  const batch = accepted(t, await c.ingest(key, `{"events":[${JSON.stringify(inBatch)}]}`), 'batch with __proto__ keys')
  t.equal(batch.results[0]?.action, 'created', 'created in a batch')

  t.equal(({} as Json).polluted, undefined, 'Object.prototype untouched')
  t.notOk(Object.hasOwn(Object.prototype, 'polluted'), 'no polluted property on Object.prototype')
  t.equal(({} as Json).source, undefined, 'no source on Object.prototype')

  // Other routes still refuse a __proto__ key.
  const res = await api.request({
    method: 'PUT',
    url: '/api/config/monitoring',
    headers: { ...api.auth(await api.adminToken()), 'content-type': 'application/json' },
    payload: '{"__proto__":{"min_severity":"critical"}}'
  })
  assertProblem(t, res, 400, 'malformed_json', 'PUT /api/config/monitoring with __proto__')
})

// ------------------------------------------------------------------------------------------
t.test('item size: ~300 KB envelopes (ASCII and multi-byte) are created and updated, never a 5xx', async t => {
  const { api, c, key, alarm } = await setup()
  /** An alarm envelope of about `bytes` UTF-8 bytes, padded with `char`. */
  const big = (name: string, minute: number, char: string, bytes: number, description?: string): Json => {
    const e = alarm({ name, time: at(minute) })
    if (description) e.detail.configuration.description = description
    e.detail.padding = ''
    const rest = Buffer.byteLength(JSON.stringify(e))
    e.detail.padding = char.repeat(Math.floor((bytes - rest) / Buffer.byteLength(char)))
    return e
  }
  const rawOk = (raw: Json, sent: Json): boolean => raw.detail?._truncated === true ? typeof raw.detail._original_bytes === 'number' : JSON.stringify(raw) === JSON.stringify(sent)
  // [label, padding of the first, of the second, envelope size in UTF-8 bytes, resolved by a big OK too, alarm description]
  const cases: Array<[string, string, string, number, boolean, string?]> = [
    ['ASCII', 'a', 'b', 300_000, true],
    ['é (2 bytes)', 'é', 'è', 300_000, false],
    ['€ (3 bytes), with a long multi-byte description', '€', '€', 300_000, false, '€'.repeat(8000)],
    ['emoji (4 bytes), near the item budget', '😀', '🚨', 345_000, false, '😀'.repeat(4000)],
    ['€, larger than the item limit', '€', 'é', 600_000, true, '€'.repeat(8000)]
  ]
  for (const [label, c1, c2, bytes, resolve, description] of cases) {
    const name = `big-${hex()}`
    const first = big(name, 0, c1, bytes, description)
    t.ok(Math.abs(Buffer.byteLength(JSON.stringify(first)) - bytes) < 10, `${label}: the envelope is ${bytes} bytes of UTF-8`)
    const r1 = await ingestOne(t, c, key, first, 'created', `${label}: first`)
    const ev1 = await c.get(r1.event_id)
    t.ok(rawOk(ev1.raw, first), `${label}: raw complete or marked _truncated`)
    if (bytes <= 300_000) t.notOk(ev1.raw.detail?._truncated, `${label}: a 300 KB envelope is kept whole`)
    await assertItemFits(t, api, r1.event_id, `${label}: first`)

    const second = big(name, 1, c2, bytes, description)
    const r2 = await ingestOne(t, c, key, second, 'updated', `${label}: second occurrence`)
    t.equal(r2.event_id, r1.event_id, `${label}: the same event`)
    const ev2 = await c.get(r2.event_id)
    t.equal(ev2.occurrence_count, 2, `${label}: occurrence_count 2`)
    t.ok(rawOk(ev2.raw, second), `${label}: raw is the second envelope, complete or marked _truncated`)
    t.equal(ev2.raw.id, second.id, `${label}: raw of the second envelope`)
    await assertItemFits(t, api, r2.event_id, `${label}: after the occurrence`)

    if (!resolve) continue
    const ok = big(name, 2, c1, bytes, description)
    ok.detail.state.value = 'OK'
    await ingestOne(t, c, key, ok, 'resolved', `${label}: a big OK resolves it`)
    await assertItemFits(t, api, r2.event_id, `${label}: after the resolution`)
  }
})

// ------------------------------------------------------------------------------------------
t.test('a time far in the future is clamped to the receipt; a later OK resolves the alarm', async t => {
  const { c, key, alarm } = await setup()
  const name = 'from-the-future'
  const before = Date.now()
  const future = alarm({ name, time: '9999-12-31T23:59:59Z' })
  const r1 = await ingestOne(t, c, key, future, 'created', 'year 9999')
  const after = Date.now()
  const ev = await c.get(r1.event_id)
  const occurred = Date.parse(ev.occurred_at)
  t.ok(occurred >= before && occurred <= after, `occurred_at clamped to the receipt (${ev.occurred_at})`)
  t.equal(ev.last_seen_at, ev.occurred_at, 'last_seen_at too')
  t.equal(ev.labels.envelope_time, '9999-12-31T23:59:59Z', 'label envelope_time keeps the original')
  t.equal(ev.raw.time, '9999-12-31T23:59:59Z', 'raw keeps the original')

  // A little ahead (within 5 minutes) is not clamped, and lists above the clamped one.
  const soon = fromNow(60_000)
  const r2 = await ingestOne(t, c, key, alarm({ name: 'slightly-ahead', time: soon }), 'created', 'one minute ahead')
  const ev2 = await c.get(r2.event_id)
  t.equal(ev2.occurred_at, iso(soon), 'a minute ahead is kept')
  t.notOk('envelope_time' in ev2.labels, 'no envelope_time label')
  t.same((await c.list()).map(e => e.id), [r2.event_id, r1.event_id], 'the year-9999 event is not on top of the list')

  // A later OK resolves it.
  const r3 = await ingestOne(t, c, key, alarm({ name, state: 'OK', time: fromNow(1000) }), 'resolved', 'OK after the clamped ALARM')
  t.equal(r3.event_id, r1.event_id, 'the OK resolves the clamped event')
  t.equal((await c.get(r1.event_id)).status, 'resolved', 'resolved')
  // Another year-9999 ALARM: a new event, which its next OK resolves too.
  const r4 = await ingestOne(t, c, key, alarm({ name, time: '9999-12-31T23:59:59Z' }), 'created', 'year 9999 again')
  t.not(r4.event_id, r1.event_id, 'a new event')
  await ingestOne(t, c, key, alarm({ name, state: 'OK', time: fromNow(2000) }), 'resolved', 'its OK')
  t.equal((await c.get(r4.event_id)).status, 'resolved', 'resolved as well')
})

// ------------------------------------------------------------------------------------------
t.test('a later occurrence refreshes resources, resource_count, raw and last_seen_at', async t => {
  const { acct, c, key, alarm } = await setup()
  const name = 'refreshing'
  const e1 = alarm({ name, time: at(0) })
  e1.resources = [alarmArn(name, acct), instanceArn(acct, 1)]
  e1.detail.state.reason = 'first'
  const r1 = await ingestOne(t, c, key, e1, 'created', 'first occurrence')
  const ev1 = await c.get(r1.event_id)
  t.same([ev1.resources, ev1.resource_count], [e1.resources, 2], 'resources of the first')

  const e2 = alarm({ name, time: at(5) })
  e2.resources = [alarmArn(name, acct), ...Array.from({ length: 60 }, (_, i) => instanceArn(acct, 100 + i))]
  e2.detail.state.reason = 'second'
  const r2 = await ingestOne(t, c, key, e2, 'updated', 'second occurrence')
  t.equal(r2.event_id, r1.event_id, 'same event')
  const ev2 = await c.get(r2.event_id)
  t.same(ev2.resources, e2.resources.slice(0, 50), 'resources refreshed (first 50)')
  t.equal(ev2.resource_count, 61, 'resource_count refreshed')
  t.strictSame(ev2.raw, e2, 'raw refreshed')
  t.equal(ev2.last_seen_at, iso(at(5)), 'last_seen_at refreshed')
  t.equal(ev2.occurred_at, iso(at(0)), 'occurred_at kept')

  const e3 = alarm({ name, time: at(9) })
  await ingestOne(t, c, key, e3, 'updated', 'third occurrence')
  const ev3 = await c.get(r1.event_id)
  t.same([ev3.resources, ev3.resource_count, ev3.raw.id, ev3.last_seen_at, ev3.occurrence_count], [[alarmArn(name, acct)], 1, e3.id, iso(at(9)), 3], 'refreshed again')
})

// ------------------------------------------------------------------------------------------
t.test('Security Hub envelopes with several findings: one event per finding, each idempotent', async t => {
  const { api, acct, c, key, alarm, guardDuty, severalFindings } = await setup()
  const meta = `${api.config.tablePrefix}meta`
  const sh = severalFindings('one')
  const findings: Json[] = sh.detail.findings
  const body = accepted(t, await c.ingest(key, sh), 'three findings')
  t.same([body.accepted, body.duplicates, body.rejected], [3, 0, 0], 'three accepted')
  t.same(body.results.map(r => [r.index, r.item, r.envelope_id, r.action, r.reason, r.error]), [0, 1, 2].map(i => [0, i, sh.id, 'created', null, null]), 'one created result per finding, item = position')
  t.same(body.results.map(r => r.dedup_key), findings.map(f => `${f.ProductArn}|${f.Id}`), 'dedup key per finding')
  const eventIds = body.results.map(r => String(r.event_id))
  t.equal(new Set(eventIds).size, 3, 'three different events')
  for (const [i, id] of eventIds.entries()) {
    const ev = await c.get(id)
    t.equal(ev.resources[0], findings[i]!.Id, `event ${i}: its own finding's resources`)
    t.equal(ev.severity, ['high', 'medium', 'low'][i], `event ${i}: its own finding's severity`)
  }
  for (const item of [1, 2]) {
    const claim = await api.app.db.client.getItem({ TableName: meta, Key: { pk: { S: `envelope#${acct}#${String(sh.id)}#${item}` } }, ConsistentRead: true })
    // Claimed by the new-event path with the event it creates (processed once that event exists).
    t.match(claim.Item, { state: { S: 'processing' }, ref: { S: eventIds[item] } }, `item ${item} claimed as <envelope id>#${item}`)
  }

  // Redelivery: three duplicates, each naming its event.
  const again = accepted(t, await c.ingest(key, sh), 'redelivery')
  t.same([again.accepted, again.duplicates], [0, 3], 'three duplicates')
  t.same(again.results.map(r => [r.item, r.action, r.event_id]), eventIds.map((id, i) => [i, 'duplicate', id]), 'each naming its event')

  // Another envelope with the same findings: three occurrences.
  const upd = accepted(t, await c.ingest(key, severalFindings('one', e => { e.time = fromNow(0) })), 'same findings, new envelope')
  t.same(upd.results.map(r => [r.item, r.action, r.event_id]), eventIds.map((id, i) => [i, 'updated', id]), 'three updated')

  // The same finding twice in one envelope counts once.
  const repeated = severalFindings('two', e => { e.detail.findings = [e.detail.findings[0], e.detail.findings[1], structuredClone(e.detail.findings[0])] })
  const rep = accepted(t, await c.ingest(key, repeated), 'a repeated finding')
  t.same(rep.results.map(r => [r.item, r.action]), [[0, 'created'], [1, 'created']], 'two results: the repeated finding counts once')

  // A mixed batch: results in order of index, then item.
  const mixed = accepted(t, await c.ingest(key, { events: [alarm({ name: 'with-findings', time: at(0) }), severalFindings('three'), guardDuty({ finding: hex(), time: at(1) }), sh] }), 'mixed batch')
  t.same(mixed.results.map(r => [r.index, r.item, r.action]), [
    [0, 0, 'created'], [1, 0, 'created'], [1, 1, 'created'], [1, 2, 'created'], [2, 0, 'created'],
    [3, 0, 'duplicate'], [3, 1, 'duplicate'], [3, 2, 'duplicate']
  ], 'index then item')
  t.same([mixed.accepted, mixed.duplicates, mixed.rejected], [5, 3, 0], 'totals count results')
  const twice = severalFindings('four')
  const both = accepted(t, await c.ingest(key, { events: [twice, twice] }), 'the same envelope twice in a batch')
  t.same(both.results.map(r => [r.index, r.item, r.action]), [[0, 0, 'created'], [0, 1, 'created'], [0, 2, 'created'], [1, 0, 'duplicate'], [1, 1, 'duplicate'], [1, 2, 'duplicate']], 'its findings count once')
  t.same(both.results.slice(3).map(r => r.event_id), both.results.slice(0, 3).map(r => r.event_id), 'the duplicates name the events')
  t.equal((await c.list('&source=aws.securityhub')).length, 11, 'eleven Security Hub events')
})

// ------------------------------------------------------------------------------------------
t.test('transient database failures: 503 with Retry-After, and a redelivery completes', async t => {
  const { api, c, key, alarm, severalFindings } = await setup()
  const throttled = (): Error => Object.assign(new Error('Rate of requests exceeds the allowed throughput.'), { name: 'ProvisionedThroughputExceededException', $fault: 'client', $metadata: { httpStatusCode: 400 } })
  const refused = (): Error => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8000'), { code: 'ECONNREFUSED' })
  const unavailable = (): Error => Object.assign(new Error('Service unavailable'), { name: 'ServiceUnavailable', $fault: 'server', $metadata: { httpStatusCode: 503 } })

  // Throttled while claiming a new event (single envelope): 503, then the redelivery creates it.
  const e1 = alarm({ name: 'throttled', time: at(0) })
  let stop = onCommand(api, 'PutItemCommand', async () => { throw throttled() })
  let res = await c.ingest(key, e1)
  stop()
  assertRetryLater(t, res, 503, 'throttled dedup claim')
  t.equal((await c.list()).length, 0, 'no event')
  await ingestOne(t, c, key, e1, 'created', 'redelivery after throttling')

  // Connection refused on the events' write (after both claims): 503, the claims are given back
  // and the counters taken back, then the batch goes through.
  const batch = [alarm({ name: 'refused-1', time: at(1) }), alarm({ name: 'refused-2', time: at(1) })]
  const statsBefore = (await api.app.repos.stats.read(['events'])).events!
  stop = onCommand(api, 'BatchWriteItemCommand', async () => { throw refused() })
  res = await c.ingest(key, { events: batch })
  stop()
  assertRetryLater(t, res, 503, 'connection refused')
  t.same((await api.app.repos.stats.read(['events'])).events, statsBefore, 'the counters are as before')
  const b = accepted(t, await c.ingest(key, { events: batch }), 'redelivered batch')
  t.same(b.results.map(r => r.action), ['created', 'created'], 'both created')
  t.equal((await api.app.repos.stats.read(['events'])).events!.total, (statsBefore.total ?? 0) + 2, 'counted once')

  // Part of an envelope recorded before the failure: the redelivery does the rest, what was recorded is a duplicate.
  const first = accepted(t, await c.ingest(key, severalFindings('transient')), 'three findings')
  const ids = first.results.map(r => String(r.event_id))
  const next = severalFindings('transient', e => { e.time = fromNow(0) })
  const eventsTable = `${api.config.tablePrefix}events`
  stop = onCommand(api, 'UpdateItemCommand', async (go, input) => {
    if (input.TableName === eventsTable && input.Key?.id?.S === ids[1]) throw unavailable()
    return go()
  })
  res = await c.ingest(key, next)
  stop()
  assertRetryLater(t, res, 503, 'the second finding\'s update failed')
  const counts = async () => Promise.all(ids.map(async id => (await c.get(id)).occurrence_count))
  t.same(await counts(), [2, 1, 2], 'the other findings were recorded')
  const redo = accepted(t, await c.ingest(key, next), 'redelivery')
  t.same(redo.results.map(r => [r.item, r.action, r.event_id]), [[0, 'duplicate', ids[0]], [1, 'updated', ids[1]], [2, 'duplicate', ids[2]]], 'what was recorded is a duplicate, the rest is processed')
  t.same(await counts(), [2, 2, 2], 'each finding counted once')

  // The database down altogether (the API key cannot even be checked): 503, not 401 or 500.
  const down = alarm({ name: 'database-down', time: at(2) })
  stop = onCommand(api, '*', async () => { throw refused() })
  res = await c.ingest(key, down)
  stop()
  assertRetryLater(t, res, 503, 'every database call refused')
  await ingestOne(t, c, key, down, 'created', 'redelivery once the database is back')

  // Reads fail the same way: 503, not 500.
  stop = onCommand(api, 'QueryCommand', async () => { throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) })
  res = await api.request({ method: 'GET', url: '/api/events', headers: api.auth(await api.adminToken()) })
  stop()
  assertRetryLater(t, res, 503, 'GET /api/events with the connection reset')
})

// ------------------------------------------------------------------------------------------
t.test('ingestion health: counts per detail-type, totals, other, last delivery, last problem, roles', async t => {
  const { api, acct, c, key, account, alarm, envelope, guardDuty } = await setup()
  const other = await setup()
  const third = await setup()
  const admin = await api.adminToken()
  const manager = await api.userWithRole('manager')
  const user = await api.userWithRole('user')
  const health = async (id: string, token = admin): Promise<Response> => api.request({ method: 'GET', url: `/api/config/aws-accounts/${id}/ingestion-health`, headers: api.auth(token) })
  const zero: Counts = { created: 0, updated: 0, resolved: 0, ignored: 0, duplicate: 0, rejected: 0 }

  // Before any delivery.
  t.match((await health(account.id)).json<IngestionHealth>(), { account_id: acct, last_delivery_at: null, last_problem: null, last_24h: { totals: zero, by_detail_type: [] }, last_7d: { totals: zero, by_detail_type: [] } }, 'nothing delivered yet')

  const startedAt = new Date().toISOString()
  const first = alarm({ name: 'health-alarm', time: at(0) })
  await ingestOne(t, c, key, first, 'created', 'created')
  await ingestOne(t, c, key, alarm({ name: 'health-alarm', time: at(1) }), 'updated', 'updated')
  await ingestOne(t, c, key, first, 'duplicate', 'duplicate')
  await ingestOne(t, c, key, alarm({ name: 'health-alarm', state: 'OK', time: at(2) }), 'resolved', 'resolved')
  await ingestOne(t, c, key, envelope('cloudwatch-alarm', e => { e['detail-type'] = 'CloudWatch Alarm Configuration Change' }), 'ignored', 'unsupported detail-type', 'unsupported_detail_type')
  await ingestOne(t, c, key, envelope('cloudwatch-alarm', e => { e.source = 'aws.ec2'; e['detail-type'] = 'EC2 Instance State-change Notification' }), 'ignored', 'unsupported source', 'unsupported_source')
  await ingestOne(t, c, key, guardDuty({ finding: hex(), time: at(3) }), 'created', 'GuardDuty created')
  // A batch with a GuardDuty envelope that does not validate: rejected, counted under its detail-type.
  const gdInvalid = guardDuty({ finding: hex() })
  delete gdInvalid.time
  const batch = accepted(t, await c.ingest(key, { events: [guardDuty({ finding: hex(), time: at(4) }), gdInvalid] }), 'batch with a rejected envelope')
  t.same(batch.results.map(r => r.action), ['created', 'rejected'], 'created and rejected')
  t.match((await health(account.id)).json<IngestionHealth>().last_problem, { action: 'rejected', reason: 'validation_failed', detail_type: GD, envelope_id: gdInvalid.id }, 'last_problem: the batch entry rejected, with its detail-type')
  // Single-envelope refusals count as rejected too.
  const noTime = alarm({ name: 'health-invalid' })
  delete noTime.time
  assertProblem(t, await c.ingest(key, noTime), 400, 'validation_failed', 'a single invalid envelope')
  // The other account's event: counted for it, not for this one.
  await ingestOne(t, other.c, other.key, other.alarm({ name: 'other-alarm', time: at(0) }), 'created', 'the other account\'s event')
  const lastBefore = new Date().toISOString()
  const foreign = alarm({ name: 'foreign', time: at(5), account: other.acct })
  assertProblem(t, await c.ingest(key, foreign), 403, 'account_mismatch', 'a single envelope of another account')
  const lastAfter = new Date().toISOString()

  const res = await health(account.id)
  t.equal(res.statusCode, 200, 'admin → 200')
  const h = res.json<IngestionHealth>()
  t.equal(h.account_id, acct, 'account_id')
  const byType = (w: IngestionWindow) => Object.fromEntries(w.by_detail_type.map(d => [d.detail_type, d.counts]))
  const expected = {
    [CW]: { ...zero, created: 1, updated: 1, duplicate: 1, resolved: 1, rejected: 2 },
    [GD]: { ...zero, created: 2, rejected: 1 },
    other: { ...zero, ignored: 2 }
  }
  const totals = { created: 3, updated: 1, resolved: 1, ignored: 2, duplicate: 1, rejected: 3 }
  for (const [name, w] of [['last_24h', h.last_24h], ['last_7d', h.last_7d]] as const) {
    t.same(byType(w), expected, `${name}: counts per detail-type (unsupported ones as other)`)
    t.same(w.totals, totals, `${name}: totals`)
    const sums = w.by_detail_type.map(d => Object.values(d.counts).reduce((a, b) => a + b, 0))
    t.same(sums, [...sums].sort((a, b) => b - a), `${name}: most results first`)
  }
  // Windows of whole UTC hours (the hour may have turned since the deliveries).
  const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000
  const starts = (hours: number): string[] => [hour, hour - 3_600_000].map(ms => new Date(ms - hours * 3_600_000).toISOString())
  t.ok(starts(23).includes(h.last_24h.from), `last_24h.from: 23 hours before the current hour (${h.last_24h.from})`)
  t.ok(starts(167).includes(h.last_7d.from), `last_7d.from: 167 hours before the current hour (${h.last_7d.from})`)
  t.ok(h.last_delivery_at !== null && h.last_delivery_at >= lastBefore && h.last_delivery_at <= lastAfter, `last_delivery_at is the last (refused) delivery (${h.last_delivery_at})`)
  t.ok(h.last_delivery_at !== null && h.last_delivery_at >= startedAt, 'within this test')
  t.match(h.last_problem, { action: 'rejected', reason: 'account_mismatch', detail_type: CW, envelope_id: foreign.id }, 'last_problem: the account mismatch')
  t.ok(h.last_problem !== null && h.last_problem.at >= lastBefore && h.last_problem.at <= lastAfter, 'last_problem.at')

  // The other accounts: only their own.
  const o = (await health(other.account.id)).json<IngestionHealth>()
  t.same(byType(o.last_24h), { [CW]: { ...zero, created: 1 } }, 'the other account: its own event only')
  t.equal(o.last_problem, null, 'the other account: no problem')
  t.match((await health(third.account.id)).json<IngestionHealth>(), { account_id: third.acct, last_delivery_at: null, last_problem: null, last_24h: { totals: zero, by_detail_type: [] } }, 'an account without deliveries')

  // The latest problem moves on.
  await ingestOne(t, c, key, alarm({ name: 'late-ok', state: 'OK', time: at(9) }), 'ignored', 'an OK with nothing open', 'no_open_event')
  t.match((await health(account.id)).json<IngestionHealth>().last_problem, { action: 'ignored', reason: 'no_open_event', detail_type: CW }, 'last_problem: the latest ignored result')

  // Roles and unknown accounts.
  const asManager = await health(account.id, manager.token)
  t.equal(asManager.statusCode, 200, 'manager → 200')
  t.equal(asManager.json<IngestionHealth>().last_24h.totals.ignored, 3, 'manager sees the same counts')
  assertProblem(t, await health(account.id, user.token), 403, 'forbidden', 'user')
  assertProblem(t, await api.request({ method: 'GET', url: `/api/config/aws-accounts/${account.id}/ingestion-health` }), 401, undefined, 'anonymous')
  assertProblem(t, await health(MISSING_ID), 404, 'not_found', 'unknown account')
  // Read before (its number known: the health is read beside the account), then deleted: 404.
  t.equal((await api.request({ method: 'DELETE', url: `/api/config/aws-accounts/${third.account.id}`, headers: api.auth(admin) })).statusCode, 204)
  assertProblem(t, await health(third.account.id), 404, 'not_found', 'a deleted account whose number this process knows')
})

// ------------------------------------------------------------------------------------------
// On the app with INGEST_RATE_LIMIT_MAX=5 and INGEST_INVALID_KEY_LIMIT_MAX=3.

t.test('rate limit per API key: one account\'s deliveries never throttle another\'s', async t => {
  const a = await setup('limited')
  const b = await setup('limited')
  // All from one client address (light-my-request's 127.0.0.1), as from AWS's shared ranges.
  for (let i = 0; i < 5; i++) {
    const res = await a.c.ingest(a.key, a.alarm({ name: `a-${i}`, time: at(i) }))
    t.equal(res.statusCode, 202, `account A delivery ${i + 1} → 202`)
    t.equal(res.headers['x-ratelimit-limit'], '5', 'the ingest limit applies')
  }
  for (let i = 0; i < 4; i++) t.equal((await b.c.ingest(b.key, b.alarm({ name: `b-${i}`, time: at(i) }))).statusCode, 202, `account B delivery ${i + 1} → 202`)
  assertRetryLater(t, await a.c.ingest(a.key, a.alarm({ name: 'a-6', time: at(6) })), 429, 'account A\'s 6th delivery')
  t.equal((await b.c.ingest(b.key, b.alarm({ name: 'b-5', time: at(5) }))).statusCode, 202, 'account B\'s 5th delivery still → 202')
  assertRetryLater(t, await b.c.ingest(b.key, b.alarm({ name: 'b-6', time: at(6) })), 429, 'account B\'s 6th delivery')
  t.same((await a.c.list()).map(e => e.dedup_key).sort(), [0, 1, 2, 3, 4].map(i => alarmArn(`a-${i}`, a.acct)), 'account A: the five accepted deliveries, not the refused one')
  t.equal((await b.c.list()).length, 5, 'account B: five events')
  t.equal((await a.api.request({ method: 'GET', url: '/api/events', headers: a.api.auth(await a.api.adminToken()) })).statusCode, 200, 'other routes still answer the same address')
})

t.test('failed API keys are limited per client address; valid keys from it still get through', async t => {
  const { api, c, key, alarm } = await setup('limited')
  const disabled = await setup('limited')
  const off = await api.request({ method: 'PUT', url: `/api/config/aws-accounts/${disabled.account.id}`, headers: api.auth(await api.adminToken()), payload: { enabled: false } })
  t.equal(off.statusCode, 200, 'account B disabled')
  const i = Math.floor(key.length / 2)
  const unknownKey = key.slice(0, i) + (key[i] === 'A' ? 'B' : 'A') + key.slice(i + 1)
  const env = alarm({ name: 'after-failures', time: at(0) })
  const address = '10.20.30.40'

  const failures: Array<[string, string | undefined]> = [['no key', undefined], ['malformed key', 'not-a-key'], ['disabled account\'s key', disabled.key]]
  for (const [label, k] of failures) assertProblem(t, await c.ingest(k, env, address), 401, 'invalid_api_key', `${label} (within the limit)`)
  for (const [label, k] of [['unknown key', unknownKey], ...failures] as Array<[string, string | undefined]>) {
    assertRetryLater(t, await c.ingest(k, env, address), 429, `${label} beyond the limit`)
  }
  const r = accepted(t, await c.ingest(key, env, address), 'a valid key from the same address')
  t.equal(r.results[0]?.action, 'created', 'created')
  t.equal((await c.ingest(key, alarm({ name: 'after-failures-2', time: at(1) }), address)).statusCode, 202, 'and again')
  assertRetryLater(t, await c.ingest(unknownKey, env, address), 429, 'failures are still limited after a valid delivery')
  assertProblem(t, await c.ingest(unknownKey, env, '10.20.30.41'), 401, 'invalid_api_key', 'another address has its own count')
})
