/**
 * Deterministic bench data, written straight into the tables with BatchWriteItem: 100k items
 * through the API would take far too long. Each item is a domain object (`newTask` and the
 * status rules of src/domain/tasks.ts; a `MonitoringEvent`) stored by its repository's item
 * builder (`taskItem`, `eventItem`), so the items have exactly the shapes the service writes.
 * The dashboard counters are added in the same pass, computed with the service's own counting
 * rules (src/domain/stats.ts), so the dashboard agrees with the data.
 */
import type { AttributeValue, DynamoDB } from '@aws-sdk/client-dynamodb'
import { toAttributes } from '../../../src/db/raw.js'
import type { MonitoringEvent } from '../../../src/domain/events.js'
import { eventCounts, eventFacts, openTaskOf, taskCounts, taskFacts, type Deltas } from '../../../src/domain/stats.js'
import { newTask, statusEffects, type Task, type TaskStatus } from '../../../src/domain/tasks.js'
import { eventItem } from '../../../src/modules/events/events.repository.js'
import { changeKey, taskItem } from '../../../src/modules/tasks/tasks.repository.js'

/** mulberry32: a small seeded PRNG, so every run writes the same data. */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'

/** A ULID for `ms` whose random part comes from `rand` (deterministic). */
export function ulidAt (ms: number, rand: () => number): string {
  let time = ''
  let t = ms
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32] + time
    t = Math.floor(t / 32)
  }
  let random = ''
  for (let i = 0; i < 16; i++) random += CROCKFORD[Math.floor(rand() * 32)]
  return time + random
}

/** Items are dated over the 300 days before this instant (fixed: the data does not depend on the day it is made). */
export const BASE_MS = Date.UTC(2026, 0, 1)
const SPAN_MS = 300 * 86_400_000
/** Retention end of the generated events: far in the future, so lists never hide them. */
const TTL = Math.floor(Date.UTC(2036, 0, 1) / 1000)

const pick = <T>(rand: () => number, weighted: ReadonlyArray<readonly [T, number]>): T => {
  let r = rand()
  for (const [value, weight] of weighted) {
    if ((r -= weight) < 0) return value
  }
  return weighted[weighted.length - 1]![0]
}

const S = (s: string): AttributeValue => ({ S: s })
const N = (n: number): AttributeValue => ({ N: String(n) })

/** Synthetic people that generated tasks belong to (never logged in; reads do not resolve them). */
export const PEOPLE = Array.from({ length: 50 }, (_, i) => ulidAt(BASE_MS - 86_400_000 + i, prng(1000 + i)))

const TASK_STATUS = [['open', 0.4], ['in_progress', 0.3], ['closed', 0.3]] as const
const PRIORITY = [['critical', 0.1], ['high', 0.25], ['medium', 0.4], ['low', 0.25]] as const
const SEVERITY = [['critical', 0.05], ['high', 0.2], ['medium', 0.35], ['low', 0.25], ['info', 0.15]] as const
const SOURCE = [['aws.cloudwatch', 0.5], ['aws.guardduty', 0.2], ['aws.securityhub', 0.2], ['aws.health', 0.1]] as const
const EVENT_STATUS = [['open', 0.5], ['acknowledged', 0.2], ['resolved', 0.3]] as const
const REGIONS = ['us-east-1', 'eu-west-1', 'ap-southeast-2'] as const
export const ACCOUNTS = ['111111111111', '222222222222', '333333333333', '444444444444'] as const

export interface Generated { item: Record<string, AttributeValue>, deltas: Array<[string, Deltas]> }

/** A status change as the service makes it (domain rules; the history key as the repository assigns it). */
function changed (t: Task, to: TaskStatus, by: string, at: string): Task {
  const version = t.version + 1
  const change = { from: t.status, to, changed_by: by, changed_at: at, comment: null, key: changeKey(version) }
  return { ...t, ...statusEffects(t, to, at), status: to, version, updated_at: at, status_history: [...t.status_history, change] }
}

/** Task number `n` (0-based) of the generated set: the same item every run. */
export function task (n: number): Generated {
  const rand = prng(0x7a5c + n * 7919)
  const createdMs = BASE_MS - SPAN_MS + Math.floor((n * 7_777_777) % SPAN_MS) + (n % 1000)
  const id = ulidAt(createdMs, rand)
  const created = new Date(createdMs).toISOString()
  const status = pick(rand, TASK_STATUS)
  const priority = pick(rand, PRIORITY)
  const creator = PEOPLE[Math.floor(rand() * PEOPLE.length)]!
  const assignee = rand() < 0.8 ? PEOPLE[Math.floor(rand() * PEOPLE.length)]! : null
  let t = newTask(id, created, { id: creator, role: 'user' }, {
    title: `Investigate ${priority} issue #${n}`,
    description: `Generated task ${n} for the benchmark. Check the dashboards, then close it.`,
    priority,
    assigned_to: assignee
  }, null)
  if (status !== 'open') t = changed(t, 'in_progress', assignee ?? creator, new Date(createdMs + 3_600_000).toISOString())
  if (status === 'closed') t = changed(t, 'closed', assignee ?? creator, new Date(createdMs + 86_400_000).toISOString())
  const facts = taskFacts(t)
  const deltas: Array<[string, Deltas]> = [['tasks', taskCounts(facts)]]
  const open = openTaskOf(facts)
  if (open) deltas.push([`user#${open}`, { open: 1 }])
  return { item: toAttributes(taskItem(t)), deltas }
}

/** Event number `n` (0-based) of the generated set. */
export function event (n: number): Generated {
  const rand = prng(0xe7e7 + n * 104729)
  const occurredMs = BASE_MS - SPAN_MS + Math.floor((n * 5_555_555) % SPAN_MS) + (n % 1000)
  const id = ulidAt(occurredMs + 1500, rand)
  const occurred = new Date(occurredMs).toISOString()
  const created = new Date(occurredMs + 1500).toISOString()
  const severity = pick(rand, SEVERITY)
  const source = pick(rand, SOURCE)
  const status = pick(rand, EVENT_STATUS)
  const account = ACCOUNTS[n % ACCOUNTS.length]!
  const region = REGIONS[n % REGIONS.length]!
  const name = `bench-alarm-${n}`
  const arn = `arn:aws:cloudwatch:${region}:${account}:alarm:${name}`
  const raw = { version: '0', id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`, 'detail-type': 'CloudWatch Alarm State Change', source, account, time: occurred.replace(/\.\d{3}Z$/, 'Z'), region, resources: [arn], detail: { alarmName: name, state: { value: 'ALARM', reason: 'Threshold Crossed' } } }
  const e: MonitoringEvent = {
    id,
    dedup_key: arn,
    source,
    detail_type: 'CloudWatch Alarm State Change',
    account_id: account,
    region,
    resources: [arn],
    resource_count: 1,
    title: `${name}: Threshold Crossed`,
    description: null,
    severity,
    native_severity: severity.toUpperCase(),
    source_state: status === 'resolved' ? 'resolved' : 'active',
    status,
    occurrence_count: 1 + (n % 3),
    occurred_at: occurred,
    last_seen_at: occurred,
    resolved_at: status === 'resolved' ? created : null,
    task_id: null,
    labels: { alarm_name: name, state: 'ALARM' },
    raw,
    version: 1,
    ttl: TTL,
    created_at: created,
    updated_at: created,
    deleted_at: null,
    deleted_by: null
  }
  return { item: toAttributes(eventItem(e)), deltas: [['events', eventCounts(eventFacts(e))]] }
}

export interface LoadResult { items: number, seconds: number, perSecond: number }

/**
 * Writes generated items [from, to) with BatchWriteItem (25 per call, `concurrency` calls in
 * flight), retrying unprocessed items, then adds their counters to the stats table.
 */
export async function load (client: DynamoDB, table: string, statsTable: string | null, make: (n: number) => Generated, from: number, to: number, concurrency = 4): Promise<LoadResult> {
  const started = performance.now()
  const counters = new Map<string, Deltas>()
  let next = from
  const worker = async (): Promise<void> => {
    while (next < to) {
      const start = next
      const end = Math.min(to, start + 25)
      next = end
      let requests = []
      for (let n = start; n < end; n++) {
        const { item, deltas } = make(n)
        requests.push({ PutRequest: { Item: item } })
        for (const [pk, d] of deltas) {
          const c = counters.get(pk) ?? {}
          for (const [k, v] of Object.entries(d)) c[k] = (c[k] ?? 0) + v
          counters.set(pk, c)
        }
      }
      for (let attempt = 0; requests.length > 0; attempt++) {
        if (attempt > 20) throw new Error(`BatchWriteItem on ${table}: items left unprocessed`)
        const res = await client.batchWriteItem({ RequestItems: { [table]: requests } })
        requests = (res.UnprocessedItems?.[table] ?? []) as typeof requests
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  if (statsTable) await addCounters(client, statsTable, counters)
  const seconds = (performance.now() - started) / 1000
  return { items: to - from, seconds, perSecond: (to - from) / seconds }
}

/** Atomic ADDs, as the stats plugin applies them. */
export async function addCounters (client: DynamoDB, statsTable: string, counters: Map<string, Deltas>): Promise<void> {
  const pending = [...counters].filter(([, d]) => Object.keys(d).length > 0)
  for (let i = 0; i < pending.length; i += 8) {
    await Promise.all(pending.slice(i, i + 8).map(([pk, d]) => {
      const entries = Object.entries(d)
      return client.updateItem({
        TableName: statsTable,
        Key: { pk: S(pk) },
        UpdateExpression: `ADD ${entries.map((_, j) => `#c${j} :v${j}`).join(', ')}`,
        ExpressionAttributeNames: Object.fromEntries(entries.map(([k], j) => [`#c${j}`, k])),
        ExpressionAttributeValues: Object.fromEntries(entries.map(([, v], j) => [`:v${j}`, N(v)]))
      })
    }))
  }
}

/** `count` EventBridge envelopes of new CloudWatch alarms for ingestion (unique ids and alarm names). */
export function envelopes (account: string, runId: string, start: number, count: number): unknown[] {
  const out: unknown[] = []
  for (let i = start; i < start + count; i++) {
    const name = `ingest-${runId}-${i}`
    out.push({
      version: '0',
      id: `${runId}-${i}`,
      'detail-type': 'CloudWatch Alarm State Change',
      source: 'aws.cloudwatch',
      account,
      time: '2026-11-20T09:21:37Z',
      region: 'us-east-1',
      resources: [`arn:aws:cloudwatch:us-east-1:${account}:alarm:${name}`],
      detail: {
        alarmName: name,
        state: { value: 'ALARM', reason: `Threshold Crossed: 2 out of the last 2 datapoints [93.18 (20/11/26 09:16:00)] were greater than the threshold (80.0). Alarm ${i}.`, timestamp: '2026-11-20T09:21:37.413+0000' },
        previousState: { value: 'OK', reason: 'Threshold Crossed', timestamp: '2026-11-20T08:41:09.127+0000' },
        configuration: {
          description: 'CPU above 80% [severity:high]',
          metrics: [{ id: 'm1', metricStat: { metric: { namespace: 'AWS/EC2', name: 'CPUUtilization', dimensions: { InstanceId: `i-${String(i).padStart(17, '0')}` } }, period: 300, stat: 'Average' }, returnData: true }]
        }
      }
    })
  }
  return out
}
