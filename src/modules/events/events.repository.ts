import { setTimeout as sleep } from 'node:timers/promises'
import { createHash } from 'node:crypto'
import type { AttributeValue, DynamoDB, WriteRequest } from '@aws-sdk/client-dynamodb'
import { DomainError } from '../../domain/errors.js'
import { isExpired, type EventStatus, type ListedEvent, type MonitoringEvent } from '../../domain/events.js'
import type { Severity } from '../../domain/monitoring-settings.js'
import { isConditionFailed } from '../../db/errors.js'
import type { MetaItem } from '../../db/meta.model.js'
import { mapPage, readPage, type CursorCodec, type Page } from '../../db/pagination.js'
import { toAttributes, type RawClient } from '../../db/raw.js'
import type { TableModel } from '../../db/tables.js'
import { applied, readIndexPage } from '../../db/access.js'
import { where, type Condition, type KeyCondition, type Update } from '../../db/expressions.js'
import { itemSize } from '../../db/item-size.js'
import { clearMarks, markAttributes, markedKeys, withMarks } from '../../db/marks.js'
import type { EventItem } from './events.model.js'

export interface EventListQuery {
  severity?: Severity
  source?: MonitoringEvent['source']
  account_id?: string
  status?: EventStatus
  from?: string
  to?: string
  time_field: 'occurred_at' | 'last_seen_at'
  limit: number
  cursor?: string
}

/** How long an envelope claimed by a delivery that then died blocks its retries. */
const STALE_ENVELOPE_MS = 60_000
/** Envelopes are remembered well past EventBridge's 24-hour retry window. */
const ENVELOPE_TTL_S = 3 * 24 * 3600

/** DynamoDB's limits per BatchGetItem / BatchWriteItem request. */
const BATCH_GET_KEYS = 100
const BATCH_WRITE_ITEMS = 25
/** Attempts at the keys or items DynamoDB left unprocessed (throttling), with exponential back-off. */
const BATCH_ATTEMPTS = 8
/** BatchWriteItem requests of one batch in flight at once. */
const WRITE_CONCURRENCY = 4

/** 25, 50, 100 … ms (at most 1.6 s), jittered to 50–100 %. */
const batchBackoff = (attempt: number): Promise<void> => sleep(Math.min(1600, 25 * 2 ** attempt) * (0.5 + Math.random() / 2))

const chunks = <T>(items: T[], size: number): T[][] => Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size))

/** What a new occurrence (or a resolution) changes on its event. */
export interface OccurrenceChanges {
  severity: Severity
  status: EventStatus
  last_seen_at: string
  native_severity: string | null
  ttl: number
  resources: string[]
  resource_count: number
}

/** A new event of the batch fast path and the envelope that creates it. */
export interface NewEvent {
  event: MonitoringEvent
  envelopeId: string
  /** Its notification mark (`event.created@1`), when a rule wants it. */
  marks?: string[] | undefined
}

/** Per monitored account: one account's key can never reach another account's events. */
const dedupClaim = (account: string, dedupKey: string): string => `dedup#${account}#${createHash('sha256').update(dedupKey).digest('hex')}`
const envelopeClaim = (account: string, id: string): string => `envelope#${account}#${id}`

/**
 * The write shards of the `entity` key of the two all-events indexes (events.model.ts): an
 * event's shard comes from the last character of its ULID (random, 32 symbols: uniform over 8).
 * Never lowered: the lists read every shard ever written (and `event`, the key before sharding).
 */
export const ENTITY_SHARDS = 8
/** An event's write shard, 0 … ENTITY_SHARDS - 1: fixed for the item's life. */
const shardOf = (id: string): number => id.charCodeAt(id.length - 1) % ENTITY_SHARDS
const entityShard = (id: string): `event#${number}` => `event#${shardOf(id)}`

/**
 * The attributes the status, source and severity indexes are keyed on hold their value
 * write-sharded the same way: `<value>#<k>` (`open#3`), so that the busiest value (`open`, the
 * busiest source or severity) is 8 partition keys, not one (docs/capacity.md). The index
 * definitions are unchanged. Items written before hold the bare value and stay listed (the lists
 * read it with the shards); an update that changes the value writes the sharded form. Readers
 * never see the stored form: the mappers decode it (`fromStored`), conditions and filters match
 * either form (`isValue`). Domain values never contain `#`.
 */
export const SHARDED_VALUES = ['status', 'source', 'severity'] as const
type ShardedValue = typeof SHARDED_VALUES[number]
/** The stored form of `value` of an attribute of SHARDED_VALUES, for the event `id`. */
export const toStored = (value: string, id: string): string => `${value}#${shardOf(id)}`
/** The value of a stored form (or of a bare value written before the sharding). */
export const fromStored = (stored: string): string => {
  const at = stored.indexOf('#')
  return at < 0 ? stored : stored.slice(0, at)
}
/** The partitions of `value` of a sharded index: its bare form (items of before) and its shards. */
const partitionsOf = (value: string): string[] => [value, ...Array.from({ length: ENTITY_SHARDS }, (_, k) => `${value}#${k}`)]
/** The partitions of the all-events indexes: `event` (items of before the sharding) and `event#0` … */
const ENTITY_PARTITIONS = partitionsOf('event')
/** `attr` holds `value`, stored either way. */
const isValue = (attr: ShardedValue, value: string): Condition => where.or(where.eq(attr, value), where.beginsWith(attr, `${value}#`))

/** Every stored attribute but `raw`: lists never read the envelope (up to ~350 KB an item). */
const LISTED_ATTRIBUTES = ['id', 'entity', 'dedup_key', 'source', 'detail_type', 'account_id', 'region', 'resources', 'resource_count', 'title', 'description',
  'severity', 'native_severity', 'source_state', 'status', 'occurrence_count', 'occurred_at', 'last_seen_at', 'occurred_sk', 'seen_sk', 'resolved_at',
  'task_id', 'labels', 'version', 'ttl', 'created_at', 'updated_at', 'deleted_at', 'deleted_by'] as const
/** A page of a list carries at most this much JSON (the spec's bound). */
const LIST_PAGE_BYTES = 1024 * 1024

export const toEvent = (item: EventItem): MonitoringEvent => ({ ...toListedEvent(item), raw: JSON.parse(item.raw) as Record<string, unknown> })

const toListedEvent = (item: Omit<EventItem, 'raw'>): ListedEvent => ({
  id: item.id,
  dedup_key: item.dedup_key,
  source: fromStored(item.source) as MonitoringEvent['source'],
  detail_type: item.detail_type,
  account_id: item.account_id,
  region: item.region,
  resources: item.resources ?? [],
  // Items written before resource_count existed listed at most the 50 they kept.
  resource_count: item.resource_count ?? item.resources?.length ?? 0,
  title: item.title,
  description: item.description ?? null,
  severity: fromStored(item.severity) as Severity,
  native_severity: item.native_severity ?? null,
  source_state: item.source_state as MonitoringEvent['source_state'],
  status: fromStored(item.status) as EventStatus,
  occurrence_count: item.occurrence_count,
  occurred_at: item.occurred_at,
  last_seen_at: item.last_seen_at,
  resolved_at: item.resolved_at ?? null,
  task_id: item.task_id ?? null,
  labels: JSON.parse(item.labels) as Record<string, string>,
  created_at: item.created_at,
  updated_at: item.updated_at,
  version: item.version,
  ttl: item.ttl,
  deleted_at: item.deleted_at ?? null,
  deleted_by: item.deleted_by ?? null
})

/**
 * An event item stays well under DynamoDB's 400 KB item limit, with room for the attributes
 * later writes add (task link, deletion marks). Everything but `raw` is bounded by the adapters'
 * limits (about 160 KB at worst); `raw` gets what is left.
 */
const EVENT_ITEM_BUDGET = 350_000
/** The spec's bound on the top-level properties of `raw`. */
const MAX_RAW_PROPERTIES = 200
/** The envelope fields kept when an envelope is cut to fit (each at most 256 characters). */
const KEPT_ENVELOPE_FIELDS = ['version', 'id', 'detail-type', 'source', 'account', 'time', 'region', 'replay-name'] as const

/**
 * `raw` as stored: the envelope as JSON when the item fits in `budget` bytes with it; otherwise the
 * envelope with `detail` replaced by a marker `{ _truncated: true, _original_bytes }`; otherwise
 * only its known fields (and the first 50 resources) with that marker. Sizes in UTF-8 bytes, as
 * DynamoDB counts them.
 */
export function fitRaw (raw: Record<string, unknown>, budget: number): string {
  const full = JSON.stringify(raw)
  const bytes = Buffer.byteLength(full)
  const keys = Object.keys(raw)
  if (bytes <= budget && keys.length <= MAX_RAW_PROPERTIES) return full
  const marker = { _truncated: true, _original_bytes: bytes }
  if (keys.length <= MAX_RAW_PROPERTIES) {
    const withoutDetail = JSON.stringify({ ...raw, detail: marker })
    if (Buffer.byteLength(withoutDetail) <= budget) return withoutDetail
  }
  const kept: Record<string, unknown> = {}
  for (const key of KEPT_ENVELOPE_FIELDS) {
    const value = Object.hasOwn(raw, key) ? raw[key] : undefined
    if (typeof value === 'string') kept[key] = value.slice(0, 256)
  }
  const resources = Array.isArray(raw.resources) ? raw.resources.filter((r): r is string => typeof r === 'string' && r.length <= 2048).slice(0, 50) : []
  const minimal = JSON.stringify({ ...kept, resources, detail: marker, _truncated_fields: true })
  return Buffer.byteLength(minimal) <= budget ? minimal : JSON.stringify({ id: kept.id, detail: marker, _truncated_fields: true })
}

/** The event item exactly as it is stored (the one writer of event items, both paths; the bench data uses it too). */
export function eventItem (event: MonitoringEvent, marks?: readonly string[]): EventItem {
  const { description, native_severity: nativeSeverity, resolved_at: resolvedAt, task_id: taskId, labels, raw, deleted_at: _d, deleted_by: _b, ...rest } = event
  const item: Omit<EventItem, 'raw'> = {
    ...rest,
    entity: entityShard(event.id),
    status: toStored(event.status, event.id),
    source: toStored(event.source, event.id),
    severity: toStored(event.severity, event.id),
    labels: JSON.stringify(labels),
    occurred_sk: `${event.occurred_at}#${event.id}`,
    seen_sk: `${event.last_seen_at}#${event.id}`,
    ...(description !== null ? { description } : {}),
    ...(nativeSeverity !== null ? { native_severity: nativeSeverity } : {}),
    ...(resolvedAt !== null ? { resolved_at: resolvedAt } : {}),
    ...(taskId !== null ? { task_id: taskId } : {}),
    ...markAttributes(marks)
  }
  return { ...item, raw: fitRaw(raw as Record<string, unknown>, EVENT_ITEM_BUDGET - itemSize(item) - 3) }
}

/** `raw` of an update of `current` (with `changes`), fitted to the item budget. */
const rawAfter = (current: MonitoringEvent, changes: Partial<MonitoringEvent>, raw: Record<string, unknown>): string =>
  eventItem({ ...current, ...changes, raw }).raw as string

/** The dedup claim of a new event, naming the envelope that creates it. */
const dedupItem = (event: MonitoringEvent, envelopeId: string) =>
  ({ pk: dedupClaim(event.account_id, event.dedup_key), ref: event.id, created_at: event.created_at, by_envelope: envelopeId })

/** The envelope claim of a processed envelope, as `claimEnvelope` then `completeEnvelope` leave it. */
const doneEnvelopeItem = (account: string, envelopeId: string, eventId: string, now: number) =>
  ({ pk: envelopeClaim(account, envelopeId), state: 'done', claimed_at: now, ttl: Math.ceil(now / 1000) + ENVELOPE_TTL_S, ref: eventId })

/** What the functions of this repository work on. */
interface Ctx {
  client: DynamoDB
  raw: RawClient
  cursors: CursorCodec
  eventsTable: string
  metaTable: string
}

// ---- Batches: BatchGetItem / BatchWriteItem with retries of what DynamoDB left unprocessed. ----

/** Consistent BatchGetItem of any number of keys (100 per request, unprocessed keys retried). */
async function batchGet (ctx: Ctx, table: string, keys: Array<Record<string, AttributeValue>>, projection: string[]): Promise<Array<Record<string, AttributeValue>>> {
  const names = Object.fromEntries(projection.map((name, i) => [`#a${i}`, name]))
  const found: Array<Record<string, AttributeValue>> = []
  await Promise.all(chunks(keys, BATCH_GET_KEYS).map(async (chunk) => {
    let pending = chunk
    for (let attempt = 0; pending.length; attempt++) {
      if (attempt === BATCH_ATTEMPTS) throw new Error(`BatchGetItem on ${table}: ${pending.length} keys still unprocessed after ${BATCH_ATTEMPTS} attempts`)
      if (attempt) await batchBackoff(attempt)
      const res = await ctx.client.batchGetItem({
        RequestItems: { [table]: { Keys: pending, ConsistentRead: true, ProjectionExpression: Object.keys(names).join(', '), ExpressionAttributeNames: names } }
      })
      found.push(...(res.Responses?.[table] ?? []))
      pending = res.UnprocessedKeys?.[table]?.Keys ?? []
    }
  }))
  return found
}

/** One BatchWriteItem request's worth of puts (≤ 25), unprocessed items retried; throws when some could not be written. */
async function batchPut (ctx: Ctx, puts: Array<{ table: string, item: Record<string, unknown> }>, deadline = Infinity): Promise<void> {
  let pending: Record<string, WriteRequest[]> = {}
  for (const { table, item } of puts) (pending[table] ??= []).push({ PutRequest: { Item: toAttributes(item) } })
  for (let attempt = 0; Object.keys(pending).length; attempt++) {
    if (attempt === BATCH_ATTEMPTS) throw new Error(`BatchWriteItem: items still unprocessed after ${BATCH_ATTEMPTS} attempts`)
    if (attempt) await batchBackoff(attempt)
    if (Date.now() > deadline) throw new Error('BatchWriteItem: items still unprocessed at the deadline')
    const res = await ctx.client.batchWriteItem({ RequestItems: pending })
    pending = Object.fromEntries(Object.entries(res.UnprocessedItems ?? {}).filter(([, requests]) => requests.length))
  }
}

// ---- Events ----

async function get (ctx: Ctx, id: string): Promise<MonitoringEvent | null> {
  const item = await ctx.raw.getItem<EventItem>(ctx.eventsTable, { id })
  return item ? toEvent(item) : null
}

async function getLive (ctx: Ctx, id: string): Promise<MonitoringEvent> {
  const event = await get(ctx, id)
  if (!event || event.deleted_at || isExpired(event)) throw new DomainError('not_found', 'Event not found.')
  return event
}

/** Exists, not deleted, not past its retention. */
const live = (): Condition => where.and(where.exists('id'), where.notExists('deleted_at'), where.gt('ttl', Math.floor(Date.now() / 1000)))

/** What a decision about `current` was based on: a concurrent occurrence makes the caller re-decide. */
const unchangedSince = (current: MonitoringEvent): Condition => where.and(
  live(), where.eq('account_id', current.account_id), isValue('status', current.status),
  isValue('severity', current.severity), where.eq('last_seen_at', current.last_seen_at))

/** A conditional update of an event; the event after it, or null when the condition failed. */
async function updateEvent (ctx: Ctx, id: string, change: Update, condition: Condition): Promise<MonitoringEvent | null> {
  try {
    const item = await ctx.raw.updateItem<EventItem>(ctx.eventsTable, { id }, change, { condition, returnValues: 'ALL_NEW' })
    return toEvent(item!)
  } catch (err) {
    if (isConditionFailed(err)) return null
    throw err
  }
}

/**
 * One more occurrence of an unresolved event. Conditional on what the decision was based
 * on (severity, last_seen_at, status); null when it changed meanwhile (read and retry).
 * The count is an atomic ADD, so concurrent occurrences are all counted.
 */
function addOccurrence (ctx: Ctx, current: MonitoringEvent, changes: OccurrenceChanges, raw: Record<string, unknown>, marks?: string[]): Promise<MonitoringEvent | null> {
  const now = new Date().toISOString()
  return updateEvent(ctx, current.id, withMarks({
    set: {
      severity: toStored(changes.severity, current.id),
      status: toStored(changes.status, current.id),
      last_seen_at: changes.last_seen_at,
      seen_sk: `${changes.last_seen_at}#${current.id}`,
      source_state: 'active',
      ttl: changes.ttl,
      resources: changes.resources,
      resource_count: changes.resource_count,
      raw: rawAfter(current, { ...changes, updated_at: now }, raw),
      updated_at: now,
      native_severity: changes.native_severity ?? undefined
    },
    add: { occurrence_count: 1, version: 1 }
  }, marks), unchangedSince(current))
}

/** The source says it is over: the event is resolved (once). */
function resolve (ctx: Ctx, current: MonitoringEvent, changes: Pick<OccurrenceChanges, 'resources' | 'resource_count' | 'ttl'> & { time: string }, raw: Record<string, unknown>, marks?: string[]): Promise<MonitoringEvent | null> {
  const now = new Date().toISOString()
  const { time, ...rest } = changes
  const lastSeen = time > current.last_seen_at ? time : current.last_seen_at
  const set = { ...rest, status: 'resolved', source_state: 'resolved', resolved_at: now, last_seen_at: lastSeen, seen_sk: `${lastSeen}#${current.id}`, updated_at: now } as const
  return updateEvent(ctx, current.id, withMarks({ set: { ...set, status: toStored(set.status, current.id), raw: rawAfter(current, set, raw) }, add: { version: 1 } }, marks), unchangedSince(current))
}

/**
 * Links a task to the event, only if it has none yet: of two concurrent calls exactly one
 * wins. An open event becomes acknowledged in the same write.
 */
function attachTask (ctx: Ctx, current: MonitoringEvent, taskId: string): Promise<MonitoringEvent | null> {
  return updateEvent(ctx, current.id, {
    set: { task_id: taskId, updated_at: new Date().toISOString(), status: current.status === 'open' ? toStored('acknowledged', current.id) : undefined },
    add: { version: 1 }
  }, where.and(live(), where.notExists('task_id'), isValue('status', current.status), isValue('severity', current.severity)))
}

/** Unlinks a task (deleted, or its creation failed) if it is still the linked one. */
async function detachTask (ctx: Ctx, eventId: string, taskId: string): Promise<void> {
  await updateEvent(ctx, eventId, { remove: ['task_id'], set: { updated_at: new Date().toISOString() }, add: { version: 1 } }, where.eq('task_id', taskId))
}

async function softDelete (ctx: Ctx, id: string, by: string): Promise<MonitoringEvent> {
  const now = new Date().toISOString()
  const deleted = await updateEvent(ctx, id, { set: { deleted_at: now, deleted_by: by, updated_at: now }, add: { version: 1 } }, live())
  if (!deleted) throw new DomainError('not_found', 'Event not found.')
  // A deleted event no longer takes occurrences: the next trigger opens a new one.
  await releaseDedup(ctx, deleted.account_id, deleted.dedup_key, id)
  return deleted
}

// ---- Claims (meta table): envelopes seen, and the open event of each dedup key. ----

/**
 * Claims an envelope id for processing. 'duplicate' when it was processed already, or
 * is being processed by a live delivery; a claim left by a delivery that died is taken over.
 */
async function claimEnvelope (ctx: Ctx, account: string, envelopeId: string, now: number): Promise<'claimed' | 'duplicate' | 'in_flight'> {
  const pk = envelopeClaim(account, envelopeId)
  const claimed = await applied(ctx.raw.updateItem(ctx.metaTable, { pk }, { set: { state: 'processing', claimed_at: now, ttl: Math.ceil(now / 1000) + ENVELOPE_TTL_S } }, {
    // A stale claim naming its event (the new-event path) is taken over only once that event is known missing (below).
    condition: where.or(where.notExists('pk'), where.and(where.eq('state', 'processing'), where.lt('claimed_at', now - STALE_ENVELOPE_MS), where.notExists('ref')))
  }))
  if (claimed) return 'claimed'
  // Only a finished delivery makes this one a duplicate; one still in flight may yet fail.
  const claim = await ctx.raw.getItem<MetaItem>(ctx.metaTable, { pk })
  if (claim?.state === 'done') return 'duplicate'
  if (claim?.state === 'processing' && claim.ref) {
    // Claimed by the new-event path (`claimEnvelopeFor`) with the event it creates: processed
    // once that event exists (deleted or not); taken over when it never appeared and the claim is stale.
    if (await ctx.raw.getItem(ctx.eventsTable, { id: claim.ref }, { attributes: ['id'] })) {
      // Marked done on the way, so later duplicates need not look for the event.
      await applied(ctx.raw.updateItem(ctx.metaTable, { pk }, { set: { state: 'done' } }, { condition: where.and(where.eq('state', 'processing'), where.eq('ref', claim.ref)) }))
      return 'duplicate'
    }
    if ((claim.claimed_at ?? 0) < now - STALE_ENVELOPE_MS) {
      const taken = await applied(ctx.raw.updateItem(ctx.metaTable, { pk }, { set: { claimed_at: now, ttl: Math.ceil(now / 1000) + ENVELOPE_TTL_S }, remove: ['ref'] }, {
        condition: where.and(where.eq('state', 'processing'), where.eq('ref', claim.ref), where.eq('claimed_at', claim.claimed_at ?? 0))
      }))
      if (taken) return 'claimed'
    }
  }
  return 'in_flight'
}

/**
 * Claims an envelope id for the new event `eventId` it creates (a conditional put, never a
 * takeover): the claim names the event, and counts as processed once that event exists (see
 * `claimEnvelope`), so the new-event path needs no write after the event. False when the
 * envelope has a claim already (processed, or being processed).
 */
function claimEnvelopeFor (ctx: Ctx, account: string, envelopeId: string, eventId: string, now: number): Promise<boolean> {
  return applied(ctx.raw.putItem(ctx.metaTable, { pk: envelopeClaim(account, envelopeId), state: 'processing', claimed_at: now, ttl: Math.ceil(now / 1000) + ENVELOPE_TTL_S, ref: eventId }, { condition: where.notExists('pk') }))
}

/** Gives back a claim of `claimEnvelopeFor` whose event was not written. */
async function releaseEnvelopeFor (ctx: Ctx, account: string, envelopeId: string, eventId: string): Promise<void> {
  await applied(ctx.raw.deleteItem(ctx.metaTable, { pk: envelopeClaim(account, envelopeId) }, { condition: where.and(where.eq('state', 'processing'), where.eq('ref', eventId)) }))
}

/** Marks the envelope processed, remembering the event it went to (for duplicates). */
async function completeEnvelope (ctx: Ctx, account: string, envelopeId: string, eventId: string | null): Promise<void> {
  await ctx.raw.updateItem(ctx.metaTable, { pk: envelopeClaim(account, envelopeId) }, { set: { state: 'done', ref: eventId ?? undefined } })
}

/** The event a processed envelope went to, if any. */
async function envelopeEvent (ctx: Ctx, account: string, envelopeId: string): Promise<string | null> {
  const claim = await ctx.raw.getItem<MetaItem>(ctx.metaTable, { pk: envelopeClaim(account, envelopeId) })
  return claim?.ref ?? null
}

/** Lets a failed delivery be retried at once. */
async function releaseEnvelope (ctx: Ctx, account: string, envelopeId: string): Promise<void> {
  await ctx.raw.deleteItem(ctx.metaTable, { pk: envelopeClaim(account, envelopeId) }, { condition: where.eq('state', 'processing') }).catch(() => {})
}

/** The id of the open (unresolved) event of a dedup key, if any, and the envelope that created it. */
async function openEventId (ctx: Ctx, account: string, dedupKey: string): Promise<{ id: string, createdAt: string, byEnvelope: string | null } | null> {
  const claim = await ctx.raw.getItem<MetaItem>(ctx.metaTable, { pk: dedupClaim(account, dedupKey) })
  return claim?.ref ? { id: claim.ref, createdAt: claim.created_at ?? new Date(0).toISOString(), byEnvelope: claim.by_envelope ?? null } : null
}

/** Frees a dedup key so that the next trigger opens a new event. */
async function releaseDedup (ctx: Ctx, account: string, dedupKey: string, eventId: string): Promise<void> {
  await applied(ctx.raw.deleteItem(ctx.metaTable, { pk: dedupClaim(account, dedupKey) }, { condition: where.eq('ref', eventId) }))
}

/**
 * Claims the dedup key of a new event for envelope `envelopeId` (a conditional put): false
 * when the key is held. The one conditional write of a new event on the batch path.
 */
function claimNew (ctx: Ctx, event: MonitoringEvent, envelopeId: string): Promise<boolean> {
  return applied(ctx.raw.putItem(ctx.metaTable, dedupItem(event, envelopeId), { condition: where.notExists('pk') }))
}

/**
 * Makes `event` the open event of its dedup key and stores it. Returns false when another
 * delivery holds the key (then record an occurrence on that event instead). The claim
 * names the envelope that creates the event: a concurrent delivery of the same envelope
 * that finds it knows the envelope was processed.
 */
async function createOpen (ctx: Ctx, event: MonitoringEvent, envelopeId: string, marks?: string[]): Promise<boolean> {
  if (!(await claimNew(ctx, event, envelopeId))) return false
  try {
    await ctx.raw.putItem(ctx.eventsTable, eventItem(event, marks), { condition: where.notExists('id') })
  } catch (err) {
    await releaseDedup(ctx, event.account_id, event.dedup_key, event.id)
    throw err
  }
  return true
}

// ---- Batch fast path ----

/**
 * Which of these envelopes have a claim (processed, or being processed) and which of these
 * dedup keys have an open event (or a claim on one): one consistent read for a whole batch.
 */
async function claimsPresent (ctx: Ctx, account: string, envelopeIds: string[], dedupKeys: string[]): Promise<{ envelopes: Set<string>, dedupKeys: Set<string> }> {
  const byPk = new Map<string, ['envelope' | 'dedup', string]>()
  for (const id of envelopeIds) byPk.set(envelopeClaim(account, id), ['envelope', id])
  for (const key of dedupKeys) byPk.set(dedupClaim(account, key), ['dedup', key])
  const found = await batchGet(ctx, ctx.metaTable, [...byPk.keys()].map(pk => ({ pk: { S: pk } })), ['pk'])
  const out = { envelopes: new Set<string>(), dedupKeys: new Set<string>() }
  for (const item of found) {
    const [kind, value] = byPk.get(item.pk?.S ?? '') ?? []
    if (kind === 'envelope') out.envelopes.add(value!)
    else if (kind === 'dedup') out.dedupKeys.add(value!)
  }
  return out
}

/**
 * Stores claimed new events, then marks their envelopes done, with BatchWriteItem, a chunk
 * at a time: the events first, and the envelope claims only for events known stored, so
 * an envelope is never marked done for an event that does not exist. `written` are the
 * events stored with their envelope claims, `unsure` the rest, with the first error.
 * `envelopesClaimed`: the envelopes were claimed with `claimEnvelopeFor` (naming their events),
 * so the events are the only writes.
 * Nothing is started after `deadline` (the dedup claims must not go stale while their
 * events are being written: another delivery would take the key over). Between an event
 * and its envelope claim, the dedup claim naming the envelope makes a redelivery a duplicate.
 */
async function storeNew (ctx: Ctx, account: string, created: NewEvent[], deadline: number, opts: { envelopesClaimed?: boolean } = {}): Promise<{ written: NewEvent[], unsure: NewEvent[], error?: unknown }> {
  const written: NewEvent[] = []
  const unsure: NewEvent[] = []
  let error: { err: unknown } | undefined
  const queue = chunks(created, BATCH_WRITE_ITEMS)
  const worker = async (): Promise<void> => {
    for (let chunk = queue.shift(); chunk; chunk = queue.shift()) {
      try {
        if (error) throw error.err
        if (Date.now() > deadline) throw new Error('storing new events took too long; their claims are released')
        await batchPut(ctx, chunk.map(({ event, marks }) => ({ table: ctx.eventsTable, item: eventItem(event, marks) })), deadline)
        // Claimed with `claimEnvelopeFor`, an envelope is processed once its event exists.
        if (!opts.envelopesClaimed) {
          const now = Date.now()
          await batchPut(ctx, chunk.map(({ event, envelopeId }) => ({ table: ctx.metaTable, item: doneEnvelopeItem(account, envelopeId, event.id, now) })), deadline)
        }
        written.push(...chunk)
      } catch (err) {
        error ??= { err }
        unsure.push(...chunk)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(WRITE_CONCURRENCY, queue.length) }, worker))
  return error ? { written, unsure, error: error.err } : { written, unsure }
}

/**
 * After `storeNew` failed: the events that were stored after all are kept (returned) and
 * their envelopes marked done. For the others, the envelope claim (if it was written) and
 * then the dedup claim are removed, so that a redelivery of the envelope is processed.
 * What cannot be done is left to the claims' staleness rules, and reported as `error`.
 */
async function abandonNew (ctx: Ctx, account: string, unsure: NewEvent[]): Promise<{ kept: NewEvent[], error?: unknown }> {
  let stored: Set<string | undefined>
  try {
    stored = new Set((await batchGet(ctx, ctx.eventsTable, unsure.map(({ event }) => ({ id: { S: event.id } })), ['id'])).map(item => item.id?.S))
  } catch (error) {
    return { kept: [], error }
  }
  const kept = unsure.filter(({ event }) => stored.has(event.id))
  const now = Date.now()
  const outcomes = await Promise.allSettled([
    ...unsure.filter(({ event }) => !stored.has(event.id)).map(async ({ event, envelopeId }) => {
      await applied(ctx.raw.deleteItem(ctx.metaTable, { pk: envelopeClaim(account, envelopeId) }, { condition: where.eq('ref', event.id) }))
      await releaseDedup(ctx, account, event.dedup_key, event.id)
    }),
    ...chunks(kept, BATCH_WRITE_ITEMS).map(chunk =>
      batchPut(ctx, chunk.map(({ event, envelopeId }) => ({ table: ctx.metaTable, item: doneEnvelopeItem(account, envelopeId, event.id, now) }))))
  ])
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected')
  return failed ? { kept, error: failed.reason } : { kept }
}

// ---- Lists: one named access pattern per index, newest first on `<time>#<id>`. ----

/** An index of the events table: its partition attribute and its time sort key. */
interface EventIndex { name: string, attr: 'entity' | 'severity' | 'account_id' | 'source' | 'status', sk: 'occurred_sk' | 'seen_sk' }
const INDEXES = {
  bySeen: { name: 'entity-seen-index', attr: 'entity', sk: 'seen_sk' },
  bySeverity: { name: 'severity-occurred-index', attr: 'severity', sk: 'occurred_sk' },
  byAccount: { name: 'account-occurred-index', attr: 'account_id', sk: 'occurred_sk' },
  bySource: { name: 'source-occurred-index', attr: 'source', sk: 'occurred_sk' },
  byStatus: { name: 'status-occurred-index', attr: 'status', sk: 'occurred_sk' },
  all: { name: 'entity-occurred-index', attr: 'entity', sk: 'occurred_sk' }
} as const satisfies Record<string, EventIndex>

/** The index a query reads: `last_seen_at` order has one; else the first filter that has one. */
function indexFor (q: EventListQuery): EventIndex {
  if (q.time_field === 'last_seen_at') return INDEXES.bySeen
  if (q.severity) return INDEXES.bySeverity
  if (q.account_id) return INDEXES.byAccount
  if (q.source) return INDEXES.bySource
  if (q.status) return INDEXES.byStatus
  return INDEXES.all
}

/** The time range as a condition on the index's sort key (`to` exclusive). */
function timeRange (sk: string, from: string | undefined, to: string | undefined): KeyCondition['sort'] {
  if (from && to) return { name: sk, op: 'between', value: from, to }
  if (from) return { name: sk, op: '>=', value: from }
  if (to) return { name: sk, op: '<', value: to }
  return undefined
}

/**
 * Events newest first on `time_field`, through the index `indexFor` picks; the other filters
 * apply to the pages read. Pages carry every attribute but `raw` and at most 1 MiB of JSON.
 */
async function list (ctx: Ctx, q: EventListQuery): Promise<Page<ListedEvent>> {
  const { limit, cursor, ...filters } = q
  const index = indexFor(q)
  const filter = where.and(
    where.notExists('deleted_at'),
    where.gt('ttl', Math.floor(Date.now() / 1000)),
    q.account_id !== undefined && index.attr !== 'account_id' && where.eq('account_id', q.account_id),
    ...SHARDED_VALUES.map(attr => q[attr] !== undefined && attr !== index.attr && isValue(attr, q[attr]))
  )
  if (index.attr === 'entity') return mapPage(await listMerged(ctx, q, index, ENTITY_PARTITIONS, filter), toListedEvent)
  if (index.attr !== 'account_id') return mapPage(await listMerged(ctx, q, index, partitionsOf(q[index.attr]!), filter), toListedEvent)
  const partition = q[index.attr]!
  const sort = timeRange(index.sk, q.from, q.to)
  const page = await readIndexPage<Omit<EventItem, 'raw'>, Omit<EventItem, 'raw'>>(ctx.raw, ctx.cursors, {
    table: ctx.eventsTable,
    index: index.name,
    key: { partition: [index.attr, partition], ...(sort ? { sort } : {}) },
    filter,
    attributes: [...LISTED_ATTRIBUTES],
    map: item => item,
    cursorScope: { list: 'events', ...filters },
    limit,
    cursor,
    bound: {
      maxBytes: LIST_PAGE_BYTES,
      // What the item's JSON in the response costs, near enough (the stored JSON texts and strings).
      sizeOf: (item) => Buffer.byteLength(JSON.stringify(item)),
      keyOf: (item) => ({ id: item.id, [index.attr]: item[index.attr], [index.sk]: item[index.sk] })
    }
  })
  return mapPage(page, toListedEvent)
}

type ListedItem = Omit<EventItem, 'raw'>

/**
 * A page of an index whose key is write-sharded (`entity`, and the status, source and severity
 * values): every partition of the key (`partitions`: the key of before the sharding first, then
 * the shards) is read at the same time (one round trip) and the pages are merged newest first on
 * the sort key, which is unique (`<time>#<id>`). The cursor is the sort key of the last event returned (`below`): the
 * next page reads every partition below it. What a page may return is bounded by the partitions
 * that have more: only events at or above the highest key at which such a partition stopped
 * have all been examined (filters apply after Limit, so a partition can stop short).
 */
async function listMerged (ctx: Ctx, q: EventListQuery, index: EventIndex, partitions: string[], filter: Condition): Promise<Page<ListedItem>> {
  const { limit, cursor, ...filters } = q
  const sk = index.sk
  const skOf = (item: ListedItem): string => item[sk]
  return readPage<ListedItem>(ctx.cursors, { list: 'events', ...filters }, limit, cursor, async (n, startKey) => {
    // `below` (or, from a cursor of before the sharding, the index key it carried) is exclusive.
    const below = typeof startKey?.below === 'string' ? startKey.below : typeof startKey?.[sk] === 'string' ? startKey[sk] as string : undefined
    const to = below !== undefined && (q.to === undefined || below < q.to) ? below : q.to
    const sort = timeRange(sk, q.from, to)
    // A shard holds an eighth of the events: three times its share (and 2) covers its part of the
    // page but for a chance of ~1 in 5,000 (10 of the 19 newest in one shard); when it does not,
    // the frontier below shortens the page and the next round goes on, a second sequential round
    // trip. Twice the share (7 for 20) needed it for ~5 % of pages of random ids, and for the
    // bench's generated ids (skewed) for most of them. A read of every partition up to n would
    // cost 9 × n items for n. The key of before the sharding may hold every recent event: it is
    // read up to n.
    const shardLimit = Math.min(n, Math.ceil((3 * n) / ENTITY_SHARDS) + 2)
    const pages = await Promise.all(partitions.map((partition, i) => ctx.raw.queryPage<ListedItem>({
      table: ctx.eventsTable,
      index: index.name,
      key: { partition: [index.attr, partition], ...(sort ? { sort } : {}) },
      filter,
      forward: false,
      limit: i === 0 ? n : shardLimit,
      attributes: [...LISTED_ATTRIBUTES]
    })))
    // The highest key at which a partition with more stopped: everything at or above it was examined.
    let frontier: string | undefined
    for (const page of pages) {
      const stopped = page.lastKey?.[sk]
      if (typeof stopped === 'string' && (frontier === undefined || stopped > frontier)) frontier = stopped
    }
    const merged = pages.flatMap(p => p.items)
      .filter(item => skOf(item) !== below && (frontier === undefined || skOf(item) >= frontier))
      .sort((a, b) => (skOf(a) < skOf(b) ? 1 : skOf(a) > skOf(b) ? -1 : 0))
    const items = merged.slice(0, n)
    const cut = merged.length > n
    if (cut) return { items, lastKey: { below: skOf(items[items.length - 1]!) } }
    // Not cut: every event at or above the frontier that passed the filters is in this page.
    if (frontier !== undefined) return { items, lastKey: { below: frontier } }
    return { items, lastKey: undefined }
  }, 5, {
    maxBytes: LIST_PAGE_BYTES,
    sizeOf: (item) => Buffer.byteLength(JSON.stringify(item)),
    keyOf: (item) => ({ below: skOf(item) })
  })
}

/** The most recent live events (dashboard). */
async function recent (ctx: Ctx, limit: number): Promise<ListedEvent[]> {
  return (await list(ctx, { time_field: 'occurred_at', limit })).items
}

/** Maintenance only (recounts, exports): every event. Never on a request path. */
async function * scanAll (ctx: Ctx): AsyncGenerator<MonitoringEvent> {
  for await (const item of ctx.raw.scanAll<EventItem>(ctx.eventsTable)) yield toEvent(item)
}

// ---- Expiry: an event past its retention leaves the table (TTL on DynamoDB, the sweep on the stand-in). ----

/** What taking a removed event off the counters needs of it (a stream record's old image, or a swept item). */
export type ExpiredEvent = Pick<MonitoringEvent, 'id' | 'account_id' | 'dedup_key' | 'severity' | 'source' | 'status' | 'deleted_at' | 'version' | 'ttl'>

/** The attributes the sweep reads (never `raw`). */
const EXPIRED_ATTRIBUTES = ['id', 'account_id', 'dedup_key', 'severity', 'source', 'status', 'deleted_at', 'version', 'ttl'] as const

/**
 * A removed event item (unmarshalled) as an ExpiredEvent; throws when it is not an event item
 * (a malformed or foreign old image must be reported, never guessed at).
 */
export function toExpiredEvent (item: Record<string, unknown>): ExpiredEvent {
  const text = (name: string): string => {
    const v = item[name]
    if (typeof v !== 'string' || v === '') throw new Error(`not an event item: ${name} is ${v === undefined ? 'missing' : 'not a non-empty string'}`)
    return v
  }
  const number = (name: string): number => {
    const v = item[name]
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`not an event item: ${name} is ${v === undefined ? 'missing' : 'not a number'}`)
    return v
  }
  const deleted = item.deleted_at
  if (deleted !== undefined && typeof deleted !== 'string') throw new Error('not an event item: deleted_at is not a string')
  return {
    id: text('id'),
    account_id: text('account_id'),
    dedup_key: text('dedup_key'),
    severity: fromStored(text('severity')) as Severity,
    source: fromStored(text('source')) as MonitoringEvent['source'],
    status: fromStored(text('status')) as EventStatus,
    deleted_at: deleted ?? null,
    version: number('version'),
    ttl: number('ttl')
  }
}

/**
 * Claims of removed events outlive every redelivery (a stream keeps records 24 hours and the
 * consumer gives up on a record after a day: infra/lib/expiry-consumer.ts), and the claims the
 * recount writes for expired events not yet deleted outlive TTL's delay (typically days).
 */
const EXPIRY_CLAIM_TTL_S = 30 * 24 * 3600
/** Per event id: ids are never reused and an item is removed once, so the id names the removal. */
const expiryClaim = (id: string): string => `expired#${id}`

/**
 * Claims the removal of event `id` for the counters (a conditional put of `expired#<id>`): true
 * for the first caller, false when it was claimed already (a redelivered stream record, or an
 * event the recount already left out).
 */
function claimExpiry (ctx: Ctx, id: string, now = Date.now()): Promise<boolean> {
  return applied(ctx.raw.putItem(ctx.metaTable, { pk: expiryClaim(id), ref: id, claimed_at: now, ttl: Math.ceil(now / 1000) + EXPIRY_CLAIM_TTL_S }, { condition: where.notExists('pk') }))
}

/** Gives a claim back when its counter update failed, so that the retry applies it. */
async function releaseExpiry (ctx: Ctx, id: string): Promise<void> {
  await ctx.raw.deleteItem(ctx.metaTable, { pk: expiryClaim(id) })
}

/**
 * One page of the retention sweep: the events whose `ttl` is at or before `nowS` among at most
 * `limit` items read (a Scan with a filter: the sweep runs on the embedded stand-in, small and
 * local; real DynamoDB has TTL). Maintenance only, never on a request path.
 */
async function expiredPage (ctx: Ctx, opts: { nowS: number, limit: number, startKey?: Record<string, unknown> | undefined }): Promise<{ items: ExpiredEvent[], lastKey: Record<string, unknown> | undefined }> {
  const page = await ctx.raw.scanPage<Record<string, unknown>>(ctx.eventsTable, { filter: where.le('ttl', opts.nowS), limit: opts.limit, startKey: opts.startKey, attributes: [...EXPIRED_ATTRIBUTES] })
  return { items: page.items.map(toExpiredEvent), lastKey: page.lastKey }
}

/**
 * Deletes an expired event as TTL would, pinned to what the sweep read: only while it is still
 * expired and still at the version read (a write that extended it meanwhile wins). False when
 * the condition failed.
 */
function deleteExpired (ctx: Ctx, event: Pick<ExpiredEvent, 'id' | 'version'>, nowS: number): Promise<boolean> {
  return applied(ctx.raw.deleteItem(ctx.eventsTable, { id: event.id }, { condition: where.and(where.eq('version', event.version), where.le('ttl', nowS)) }))
}

/** An event with its notification marks (null when absent). */
async function withMarksOf (ctx: Ctx, id: string): Promise<{ event: MonitoringEvent, marks: string[] } | null> {
  const item = await ctx.raw.getItem<EventItem>(ctx.eventsTable, { id })
  return item ? { event: toEvent(item), marks: [...(item.notify ?? [])] } : null
}

export function createEventsRepository (events: TableModel, meta: TableModel, cursors: CursorCodec, client: DynamoDB, raw: RawClient) {
  const ctx: Ctx = { client, raw, cursors, eventsTable: events.table().name, metaTable: meta.table().name }
  return {
    get: (id: string) => get(ctx, id),
    getLive: (id: string) => getLive(ctx, id),
    scanAll: () => scanAll(ctx),
    list: (q: EventListQuery) => list(ctx, q),
    recent: (limit: number) => recent(ctx, limit),
    addOccurrence: (current: MonitoringEvent, changes: OccurrenceChanges, raw: Record<string, unknown>, marks?: string[]) => addOccurrence(ctx, current, changes, raw, marks),
    resolve: (current: MonitoringEvent, changes: Parameters<typeof resolve>[2], raw: Record<string, unknown>, marks?: string[]) => resolve(ctx, current, changes, raw, marks),
    attachTask: (current: MonitoringEvent, taskId: string) => attachTask(ctx, current, taskId),
    detachTask: (eventId: string, taskId: string) => detachTask(ctx, eventId, taskId),
    softDelete: (id: string, by: string) => softDelete(ctx, id, by),
    claimEnvelope: (account: string, envelopeId: string, now: number) => claimEnvelope(ctx, account, envelopeId, now),
    completeEnvelope: (account: string, envelopeId: string, eventId: string | null) => completeEnvelope(ctx, account, envelopeId, eventId),
    envelopeEvent: (account: string, envelopeId: string) => envelopeEvent(ctx, account, envelopeId),
    releaseEnvelope: (account: string, envelopeId: string) => releaseEnvelope(ctx, account, envelopeId),
    openEventId: (account: string, dedupKey: string) => openEventId(ctx, account, dedupKey),
    releaseDedup: (account: string, dedupKey: string, eventId: string) => releaseDedup(ctx, account, dedupKey, eventId),
    createOpen: (event: MonitoringEvent, envelopeId: string, marks?: string[]) => createOpen(ctx, event, envelopeId, marks),
    claimsPresent: (account: string, envelopeIds: string[], dedupKeys: string[]) => claimsPresent(ctx, account, envelopeIds, dedupKeys),
    claimNew: (event: MonitoringEvent, envelopeId: string) => claimNew(ctx, event, envelopeId),
    storeNew: (account: string, created: NewEvent[], deadline: number, opts?: { envelopesClaimed?: boolean }) => storeNew(ctx, account, created, deadline, opts),
    claimEnvelopeFor: (account: string, envelopeId: string, eventId: string, now: number) => claimEnvelopeFor(ctx, account, envelopeId, eventId, now),
    releaseEnvelopeFor: (account: string, envelopeId: string, eventId: string) => releaseEnvelopeFor(ctx, account, envelopeId, eventId),
    abandonNew: (account: string, unsure: NewEvent[]) => abandonNew(ctx, account, unsure),
    claimExpiry: (id: string) => claimExpiry(ctx, id),
    releaseExpiry: (id: string) => releaseExpiry(ctx, id),
    expiredPage: (opts: { nowS: number, limit: number, startKey?: Record<string, unknown> | undefined }) => expiredPage(ctx, opts),
    deleteExpired: (event: Pick<ExpiredEvent, 'id' | 'version'>, nowS: number) => deleteExpired(ctx, event, nowS),
    /** Notification marks (src/db/marks.ts): the ids of marked events in a shard, an event with its marks, and clearing them. */
    marked: async (shard: string, limit: number) => (await markedKeys<{ id: string }>(ctx.raw, ctx.eventsTable, shard, limit)).map(k => k.id),
    withMarks: (id: string) => withMarksOf(ctx, id),
    clearMarks: (id: string, marks: string[]) => clearMarks(ctx.raw, ctx.eventsTable, { id }, marks)
  }
}

export type EventsRepository = ReturnType<typeof createEventsRepository>
