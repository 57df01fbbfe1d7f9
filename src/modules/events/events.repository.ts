import { setTimeout as sleep } from 'node:timers/promises'
import { createHash } from 'node:crypto'
import type { AttributeValue, DynamoDB, WriteRequest } from '@aws-sdk/client-dynamodb'
import dynamoose from 'dynamoose'
import type { Condition } from 'dynamoose/dist/Condition.js'
import { DomainError } from '../../domain/errors.js'
import { isExpired, type EventStatus, type ListedEvent, type MonitoringEvent } from '../../domain/events.js'
import type { Severity } from '../../domain/monitoring-settings.js'
import { isConditionFailed } from '../../db/errors.js'
import type { MetaModel } from '../../db/meta.model.js'
import { readPage, scanAll, type CursorCodec, type Page } from '../../db/pagination.js'
import { toAttributes, type RawClient } from '../../db/raw.js'
import { itemSize } from '../../db/item-size.js'
import type { EventItem, EventsModel } from './events.model.js'

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
}

/** Per monitored account: one account's key can never reach another account's events. */
const dedupClaim = (account: string, dedupKey: string): string => `dedup#${account}#${createHash('sha256').update(dedupKey).digest('hex')}`
const envelopeClaim = (account: string, id: string): string => `envelope#${account}#${id}`

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
  source: item.source as MonitoringEvent['source'],
  detail_type: item.detail_type,
  account_id: item.account_id,
  region: item.region,
  resources: item.resources ?? [],
  // Items written before resource_count existed listed at most the 50 they kept.
  resource_count: item.resource_count ?? item.resources?.length ?? 0,
  title: item.title,
  description: item.description ?? null,
  severity: item.severity as Severity,
  native_severity: item.native_severity ?? null,
  source_state: item.source_state as MonitoringEvent['source_state'],
  status: item.status as EventStatus,
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

/** The event item exactly as it is stored (by Dynamoose on the per-envelope path, by the SDK client on the batch path). */
function eventItem (event: MonitoringEvent): Record<string, unknown> {
  const { description, native_severity: nativeSeverity, resolved_at: resolvedAt, task_id: taskId, labels, raw, deleted_at: _d, deleted_by: _b, ...rest } = event
  const item: Record<string, unknown> = {
    ...rest,
    entity: 'event',
    labels: JSON.stringify(labels),
    occurred_sk: `${event.occurred_at}#${event.id}`,
    seen_sk: `${event.last_seen_at}#${event.id}`,
    ...(description !== null ? { description } : {}),
    ...(nativeSeverity !== null ? { native_severity: nativeSeverity } : {}),
    ...(resolvedAt !== null ? { resolved_at: resolvedAt } : {}),
    ...(taskId !== null ? { task_id: taskId } : {})
  }
  item.raw = fitRaw(raw as Record<string, unknown>, EVENT_ITEM_BUDGET - itemSize(item) - 3)
  return item
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

export function createEventsRepository (events: EventsModel, meta: MetaModel, cursors: CursorCodec, client: DynamoDB, raw: RawClient) {
  const eventsTable = events.table().name
  const metaTable = meta.table().name

  /** Consistent BatchGetItem of any number of keys (100 per request, unprocessed keys retried). */
  async function batchGet (table: string, keys: Array<Record<string, AttributeValue>>, projection: string[]): Promise<Array<Record<string, AttributeValue>>> {
    const names = Object.fromEntries(projection.map((name, i) => [`#a${i}`, name]))
    const found: Array<Record<string, AttributeValue>> = []
    await Promise.all(chunks(keys, BATCH_GET_KEYS).map(async (chunk) => {
      let pending = chunk
      for (let attempt = 0; pending.length; attempt++) {
        if (attempt === BATCH_ATTEMPTS) throw new Error(`BatchGetItem on ${table}: ${pending.length} keys still unprocessed after ${BATCH_ATTEMPTS} attempts`)
        if (attempt) await batchBackoff(attempt)
        const res = await client.batchGetItem({
          RequestItems: { [table]: { Keys: pending, ConsistentRead: true, ProjectionExpression: Object.keys(names).join(', '), ExpressionAttributeNames: names } }
        })
        found.push(...(res.Responses?.[table] ?? []))
        pending = res.UnprocessedKeys?.[table]?.Keys ?? []
      }
    }))
    return found
  }

  /** One BatchWriteItem request's worth of puts (≤ 25), unprocessed items retried; throws when some could not be written. */
  async function batchPut (puts: Array<{ table: string, item: Record<string, AttributeValue> }>, deadline = Infinity): Promise<void> {
    let pending: Record<string, WriteRequest[]> = {}
    for (const { table, item } of puts) (pending[table] ??= []).push({ PutRequest: { Item: item } })
    for (let attempt = 0; Object.keys(pending).length; attempt++) {
      if (attempt === BATCH_ATTEMPTS) throw new Error(`BatchWriteItem: items still unprocessed after ${BATCH_ATTEMPTS} attempts`)
      if (attempt) await batchBackoff(attempt)
      if (Date.now() > deadline) throw new Error('BatchWriteItem: items still unprocessed at the deadline')
      const res = await client.batchWriteItem({ RequestItems: pending })
      pending = Object.fromEntries(Object.entries(res.UnprocessedItems ?? {}).filter(([, requests]) => requests.length))
    }
  }

  const get = async (id: string): Promise<MonitoringEvent | null> => {
    const item = await raw.get<EventItem>(eventsTable, { id })
    return item ? toEvent(item) : null
  }
  /** Exists, not deleted, not past its retention. */
  const live = (): Condition => new dynamoose.Condition('id').exists().and().where('deleted_at').not().exists()
    .and().where('ttl').gt(Math.floor(Date.now() / 1000))

  async function conditionalUpdate (id: string, update: Record<string, unknown>, condition: Condition): Promise<MonitoringEvent | null> {
    try {
      return toEvent(await events.update({ id }, update as never, { condition, returnValues: 'ALL_NEW' }))
    } catch (err) {
      if (isConditionFailed(err)) return null
      throw err
    }
  }

  return {
    get,

    /** Maintenance only (recounts, exports): every item. Never on a request path. */
    scanAll: () => scanAll(events, toEvent),

    async getLive (id: string): Promise<MonitoringEvent> {
      const event = await get(id)
      if (!event || event.deleted_at || isExpired(event)) throw new DomainError('not_found', 'Event not found.')
      return event
    },

    /**
     * Claims an envelope id for processing. 'duplicate' when it was processed already, or
     * is being processed by a live delivery; a claim left by a delivery that died is taken over.
     */
    async claimEnvelope (account: string, envelopeId: string, now: number): Promise<'claimed' | 'duplicate' | 'in_flight'> {
      try {
        await meta.update({ pk: envelopeClaim(account, envelopeId) }, { state: 'processing', claimed_at: now, ttl: Math.ceil(now / 1000) + ENVELOPE_TTL_S }, {
          condition: new dynamoose.Condition('pk').not().exists()
            .or().parenthesis(c => c.where('state').eq('processing').and().where('claimed_at').lt(now - STALE_ENVELOPE_MS))
        })
        return 'claimed'
      } catch (err) {
        if (!isConditionFailed(err)) throw err
      }
      // Only a finished delivery makes this one a duplicate; one still in flight may yet fail.
      const claim = await meta.get({ pk: envelopeClaim(account, envelopeId) }, { consistent: true })
      return claim?.state === 'done' ? 'duplicate' : 'in_flight'
    },

    /** Marks the envelope processed, remembering the event it went to (for duplicates). */
    async completeEnvelope (account: string, envelopeId: string, eventId: string | null): Promise<void> {
      await meta.update({ pk: envelopeClaim(account, envelopeId) }, { state: 'done', ...(eventId ? { ref: eventId } : {}) })
    },

    /** The event a processed envelope went to, if any. */
    async envelopeEvent (account: string, envelopeId: string): Promise<string | null> {
      const claim = await meta.get({ pk: envelopeClaim(account, envelopeId) }, { consistent: true })
      return claim?.ref ?? null
    },

    /** Lets a failed delivery be retried at once. */
    async releaseEnvelope (account: string, envelopeId: string): Promise<void> {
      await meta.delete({ pk: envelopeClaim(account, envelopeId) }, { condition: new dynamoose.Condition('state').eq('processing') }).catch(() => {})
    },

    /** The id of the open (unresolved) event of a dedup key, if any, and the envelope that created it. */
    async openEventId (account: string, dedupKey: string): Promise<{ id: string, createdAt: string, byEnvelope: string | null } | null> {
      const claim = await meta.get({ pk: dedupClaim(account, dedupKey) }, { consistent: true })
      return claim?.ref ? { id: claim.ref, createdAt: claim.created_at ?? new Date(0).toISOString(), byEnvelope: claim.by_envelope ?? null } : null
    },

    /**
     * Makes `event` the open event of its dedup key and stores it. Returns false when another
     * delivery holds the key (then record an occurrence on that event instead). The claim
     * names the envelope that creates the event: a concurrent delivery of the same envelope
     * that finds it knows the envelope was processed.
     */
    async createOpen (event: MonitoringEvent, envelopeId: string): Promise<boolean> {
      try {
        await meta.create(dedupItem(event, envelopeId), { overwrite: false })
      } catch (err) {
        if (isConditionFailed(err)) return false
        throw err
      }
      try {
        await events.create(eventItem(event) as Partial<EventItem>, { overwrite: false })
      } catch (err) {
        await this.releaseDedup(event.account_id, event.dedup_key, event.id)
        throw err
      }
      return true
    },

    // ---- Batch fast path: the SDK client directly, the items in the shape Dynamoose writes. ----

    /**
     * Which of these envelopes have a claim (processed, or being processed) and which of these
     * dedup keys have an open event (or a claim on one): one consistent read for a whole batch.
     */
    async claimsPresent (account: string, envelopeIds: string[], dedupKeys: string[]): Promise<{ envelopes: Set<string>, dedupKeys: Set<string> }> {
      const byPk = new Map<string, ['envelope' | 'dedup', string]>()
      for (const id of envelopeIds) byPk.set(envelopeClaim(account, id), ['envelope', id])
      for (const key of dedupKeys) byPk.set(dedupClaim(account, key), ['dedup', key])
      const found = await batchGet(metaTable, [...byPk.keys()].map(pk => ({ pk: { S: pk } })), ['pk'])
      const out = { envelopes: new Set<string>(), dedupKeys: new Set<string>() }
      for (const item of found) {
        const [kind, value] = byPk.get(item.pk?.S ?? '') ?? []
        if (kind === 'envelope') out.envelopes.add(value!)
        else if (kind === 'dedup') out.dedupKeys.add(value!)
      }
      return out
    },

    /**
     * Claims the dedup key of a new event for envelope `envelopeId` (a conditional put): false
     * when the key is held. The one conditional write of a new event on the batch path.
     */
    async claimNew (event: MonitoringEvent, envelopeId: string): Promise<boolean> {
      try {
        await client.putItem({ TableName: metaTable, Item: toAttributes(dedupItem(event, envelopeId)), ConditionExpression: 'attribute_not_exists(pk)' })
        return true
      } catch (err) {
        if (isConditionFailed(err)) return false
        throw err
      }
    },

    /**
     * Stores claimed new events, then marks their envelopes done, with BatchWriteItem, a chunk
     * at a time: the events first, and the envelope claims only for events known stored, so
     * an envelope is never marked done for an event that does not exist. `written` are the
     * events stored with their envelope claims, `unsure` the rest, with the first error.
     * Nothing is started after `deadline` (the dedup claims must not go stale while their
     * events are being written: another delivery would take the key over). Between an event
     * and its envelope claim, the dedup claim naming the envelope makes a redelivery a duplicate.
     */
    async storeNew (account: string, created: NewEvent[], deadline: number): Promise<{ written: NewEvent[], unsure: NewEvent[], error?: unknown }> {
      const written: NewEvent[] = []
      const unsure: NewEvent[] = []
      let error: { err: unknown } | undefined
      const queue = chunks(created, BATCH_WRITE_ITEMS)
      const worker = async (): Promise<void> => {
        for (let chunk = queue.shift(); chunk; chunk = queue.shift()) {
          try {
            if (error) throw error.err
            if (Date.now() > deadline) throw new Error('storing new events took too long; their claims are released')
            await batchPut(chunk.map(({ event }) => ({ table: eventsTable, item: toAttributes(eventItem(event)) })), deadline)
            const now = Date.now()
            await batchPut(chunk.map(({ event, envelopeId }) => ({ table: metaTable, item: toAttributes(doneEnvelopeItem(account, envelopeId, event.id, now)) })), deadline)
            written.push(...chunk)
          } catch (err) {
            error ??= { err }
            unsure.push(...chunk)
          }
        }
      }
      await Promise.all(Array.from({ length: Math.min(WRITE_CONCURRENCY, queue.length) }, worker))
      return error ? { written, unsure, error: error.err } : { written, unsure }
    },

    /**
     * After `storeNew` failed: the events that were stored after all are kept (returned) and
     * their envelopes marked done. For the others, the envelope claim (if it was written) and
     * then the dedup claim are removed, so that a redelivery of the envelope is processed.
     * What cannot be done is left to the claims' staleness rules, and reported as `error`.
     */
    async abandonNew (account: string, unsure: NewEvent[]): Promise<{ kept: NewEvent[], error?: unknown }> {
      let stored: Set<string | undefined>
      try {
        stored = new Set((await batchGet(eventsTable, unsure.map(({ event }) => ({ id: { S: event.id } })), ['id'])).map(item => item.id?.S))
      } catch (error) {
        return { kept: [], error }
      }
      const kept = unsure.filter(({ event }) => stored.has(event.id))
      const now = Date.now()
      const outcomes = await Promise.allSettled([
        ...unsure.filter(({ event }) => !stored.has(event.id)).map(async ({ event, envelopeId }) => {
          await meta.delete({ pk: envelopeClaim(account, envelopeId) }, { condition: new dynamoose.Condition('ref').eq(event.id) }).catch((err: unknown) => {
            if (!isConditionFailed(err)) throw err
          })
          await this.releaseDedup(account, event.dedup_key, event.id)
        }),
        ...chunks(kept, BATCH_WRITE_ITEMS).map(chunk =>
          batchPut(chunk.map(({ event, envelopeId }) => ({ table: metaTable, item: toAttributes(doneEnvelopeItem(account, envelopeId, event.id, now)) }))))
      ])
      const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected')
      return failed ? { kept, error: failed.reason } : { kept }
    },

    /** Frees a dedup key so that the next trigger opens a new event. */
    async releaseDedup (account: string, dedupKey: string, eventId: string): Promise<void> {
      await meta.delete({ pk: dedupClaim(account, dedupKey) }, { condition: new dynamoose.Condition('ref').eq(eventId) }).catch((err: unknown) => {
        if (!isConditionFailed(err)) throw err
      })
    },

    /**
     * One more occurrence of an unresolved event. Conditional on what the decision was based
     * on (severity, last_seen_at, status); null when it changed meanwhile (read and retry).
     * The count is an atomic ADD, so concurrent occurrences are all counted.
     */
    async addOccurrence (current: MonitoringEvent, changes: OccurrenceChanges, raw: Record<string, unknown>): Promise<MonitoringEvent | null> {
      const now = new Date().toISOString()
      const set: Record<string, unknown> = {
        severity: changes.severity,
        status: changes.status,
        last_seen_at: changes.last_seen_at,
        seen_sk: `${changes.last_seen_at}#${current.id}`,
        source_state: 'active',
        ttl: changes.ttl,
        resources: changes.resources,
        resource_count: changes.resource_count,
        raw: rawAfter(current, { ...changes, updated_at: now }, raw),
        updated_at: now
      }
      if (changes.native_severity !== null) set.native_severity = changes.native_severity
      return conditionalUpdate(current.id, { $SET: set, $ADD: { occurrence_count: 1, version: 1 } },
        live().and().where('account_id').eq(current.account_id).and().where('status').eq(current.status).and().where('severity').eq(current.severity).and().where('last_seen_at').eq(current.last_seen_at))
    },

    /** The source says it is over: the event is resolved (once). */
    async resolve (current: MonitoringEvent, changes: Pick<OccurrenceChanges, 'resources' | 'resource_count' | 'ttl'> & { time: string }, raw: Record<string, unknown>): Promise<MonitoringEvent | null> {
      const now = new Date().toISOString()
      const { time, ...rest } = changes
      const lastSeen = time > current.last_seen_at ? time : current.last_seen_at
      const set = { ...rest, status: 'resolved', source_state: 'resolved', resolved_at: now, last_seen_at: lastSeen, seen_sk: `${lastSeen}#${current.id}`, updated_at: now } as const
      return conditionalUpdate(current.id, {
        $SET: { ...set, raw: rawAfter(current, set, raw) },
        $ADD: { version: 1 }
      // Decided on `current`: a concurrent occurrence (severity, last_seen_at) makes us re-decide.
      }, live().and().where('account_id').eq(current.account_id).and().where('status').eq(current.status)
        .and().where('severity').eq(current.severity).and().where('last_seen_at').eq(current.last_seen_at))
    },

    /**
     * Links a task to the event, only if it has none yet: of two concurrent calls exactly one
     * wins. An open event becomes acknowledged in the same write.
     */
    async attachTask (current: MonitoringEvent, taskId: string): Promise<MonitoringEvent | null> {
      const now = new Date().toISOString()
      const set: Record<string, unknown> = { task_id: taskId, updated_at: now }
      if (current.status === 'open') set.status = 'acknowledged'
      return conditionalUpdate(current.id, { $SET: set, $ADD: { version: 1 } },
        live().and().where('task_id').not().exists().and().where('status').eq(current.status).and().where('severity').eq(current.severity))
    },

    /** Unlinks a task (deleted, or its creation failed) if it is still the linked one. */
    async detachTask (eventId: string, taskId: string): Promise<void> {
      await conditionalUpdate(eventId, { $REMOVE: ['task_id'], $SET: { updated_at: new Date().toISOString() }, $ADD: { version: 1 } },
        new dynamoose.Condition('task_id').eq(taskId))
    },

    async softDelete (id: string, by: string): Promise<MonitoringEvent> {
      const now = new Date().toISOString()
      const deleted = await conditionalUpdate(id, { $SET: { deleted_at: now, deleted_by: by, updated_at: now }, $ADD: { version: 1 } }, live())
      if (!deleted) throw new DomainError('not_found', 'Event not found.')
      // A deleted event no longer takes occurrences: the next trigger opens a new one.
      await this.releaseDedup(deleted.account_id, deleted.dedup_key, id)
      return deleted
    },

    /**
     * Events newest first on `time_field`. One filter picks the index (severity, source,
     * account, status, else all); from/to are key conditions on `<time>#<id>`.
     */
    async list (q: EventListQuery): Promise<Page<ListedEvent>> {
      const { limit, cursor, ...filters } = q
      const bySeen = q.time_field === 'last_seen_at'
      const index = bySeen
        ? { name: 'entity-seen-index', attr: 'entity', value: 'event', sk: 'seen_sk' }
        : q.severity
          ? { name: 'severity-occurred-index', attr: 'severity', value: q.severity, sk: 'occurred_sk' }
          : q.account_id
            ? { name: 'account-occurred-index', attr: 'account_id', value: q.account_id, sk: 'occurred_sk' }
            : q.source
              ? { name: 'source-occurred-index', attr: 'source', value: q.source, sk: 'occurred_sk' }
              : q.status
                ? { name: 'status-occurred-index', attr: 'status', value: q.status, sk: 'occurred_sk' }
                : { name: 'entity-occurred-index', attr: 'entity', value: 'event', sk: 'occurred_sk' }
      // Key condition on the index, filters on the pages read; every name aliased (`status`, `source`, `ttl` are reserved).
      const names: Record<string, string> = { '#k': index.attr, '#deleted': 'deleted_at', '#ttl': 'ttl' }
      LISTED_ATTRIBUTES.forEach((name, i) => { names[`#p${i}`] = name })
      const values: Record<string, unknown> = { ':k': index.value }
      let keyCondition = '#k = :k'
      if (q.from || q.to) names['#sk'] = index.sk
      if (q.from) values[':from'] = q.from
      if (q.to) values[':to'] = q.to
      if (q.from && q.to) keyCondition += ' AND #sk BETWEEN :from AND :to'
      else if (q.from) keyCondition += ' AND #sk >= :from'
      else if (q.to) keyCondition += ' AND #sk < :to'
      const filter = ['attribute_not_exists(#deleted)', '#ttl > :now']
      for (const attr of ['severity', 'account_id', 'source', 'status'] as const) {
        const value = q[attr]
        if (value === undefined || attr === index.attr) continue
        names[`#${attr}`] = attr
        values[`:${attr}`] = value
        filter.push(`#${attr} = :${attr}`)
      }
      const page = await readPage(cursors, { list: 'events', ...filters }, limit, cursor, async (n, startKey) => {
        const res = await raw.query<Omit<EventItem, 'raw'>>({
          TableName: eventsTable,
          IndexName: index.name,
          KeyConditionExpression: keyCondition,
          FilterExpression: filter.join(' AND '),
          ProjectionExpression: LISTED_ATTRIBUTES.map((_, i) => `#p${i}`).join(', '),
          ExpressionAttributeNames: names,
          values: { ...values, ':now': Math.floor(Date.now() / 1000) },
          ScanIndexForward: false,
          Limit: n,
          startKey
        })
        return { items: res.items, lastKey: res.lastKey }
      }, undefined, {
        maxBytes: LIST_PAGE_BYTES,
        // What the item's JSON in the response costs, near enough (the stored JSON texts and strings).
        sizeOf: (item) => Buffer.byteLength(JSON.stringify(item)),
        keyOf: (item) => ({ id: item.id, [index.attr]: item[index.attr as keyof typeof item], [index.sk]: item[index.sk as keyof typeof item] })
      })
      return { items: page.items.map(toListedEvent), next_cursor: page.next_cursor }
    },

    /** The most recent live events (dashboard). */
    async recent (limit: number): Promise<ListedEvent[]> {
      const page = await this.list({ time_field: 'occurred_at', limit })
      return page.items
    }
  }
}

export type EventsRepository = ReturnType<typeof createEventsRepository>
