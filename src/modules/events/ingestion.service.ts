import { setTimeout as sleep } from 'node:timers/promises'
import { decodeTime } from 'ulid'
import { EventBridgeEnvelope as EnvelopeSchema, IngestBatch as BatchSchema, type EventBridgeEnvelope, type IgnoreReason, type IngestResponse, type IngestResult, type IngestResultIgnored, type IngestResultProcessed } from '../../../openapi/generated/schemas.js'
import type { AwsAccount } from '../../domain/aws-accounts.js'
import { DomainError, type ErrorCode } from '../../domain/errors.js'
import { STATUS_BY_CODE } from '../../plugins/errors.js'
import { compileBodyCheck } from '../../plugins/validation.js'
import { adaptEnvelope, type AdapterResult, type NormalizedEvent } from '../../domain/event-adapters.js'
import { isExpired, newEvent, occurrenceChanges, retentionEnd, type MonitoringEvent } from '../../domain/events.js'
import { meetsMinSeverity, type MonitoringSettings } from '../../domain/monitoring-settings.js'
import { marksFor, NOTIFY_NOTHING, type ChangeKind, type NotifyGate } from '../../domain/notification-delivery.js'
import { newId } from '../../lib/ids.js'
import type { StatsBatch, StatsRecorder } from '../../plugins/stats.js'
import type { EventsRepository, NewEvent } from './events.repository.js'
import type { IngestionHealthRepository, IngestionRecord } from './ingestion-health.repository.js'

const MAX_ATTEMPTS = 60
/** Envelopes of one batch processed at the same time (different alarms/findings only). */
const BATCH_CONCURRENCY = 8
/** Dedup claims of a batch's new events written at the same time (the fast path). */
const NEW_EVENT_CONCURRENCY = 16
/**
 * Deliveries with at most this many new-event candidates take the two-round-trip path
 * (`createFew`: two conditional claims per event); larger batches the throughput path
 * (`createNew`: one conditional write per event, the rest batched, more round trips).
 */
const FEW_NEW_EVENTS = NEW_EVENT_CONCURRENCY
/** How long a delivery waits for the same envelope being processed by another delivery. */
const IN_FLIGHT_WAIT_MS = 2000
/** Deeper `detail` objects are refused (and could not be stored as JSON safely). */
const MAX_DETAIL_DEPTH = 64
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/
/** A dedup claim whose event never appeared is abandoned after this long. */
const STALE_CLAIM_MS = 30_000

const checkEnvelope = compileBodyCheck(EnvelopeSchema)
const checkBatch = compileBodyCheck(BatchSchema)

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
const detailTypeOf = (envelope: unknown): string | null => isObject(envelope) && typeof envelope['detail-type'] === 'string' ? envelope['detail-type'] : null

/** A batch entry that does not match `EventBridgeEnvelope`: its own `rejected` result. */
function rejectedEntry (index: number, entry: Record<string, unknown>, errors: Array<{ path: string, message: string }>): IngestResult {
  const id = typeof entry.id === 'string' && entry.id.length >= 1 && entry.id.length <= 128 ? entry.id : null
  const detail = errors.slice(0, 5).map(e => `${e.path.replace(/^\/body/, '') || '/'} ${e.message}`).join('; ')
  return { index, item: 0, envelope_id: id, event_id: null, dedup_key: null, action: 'rejected', reason: null, error: { status: STATUS_BY_CODE.validation_failed, code: 'validation_failed', detail: `The envelope is not valid: ${detail}`.slice(0, 2000) } }
}

/** Jittered back-off between attempts on a contended event (5–40 ms). */
const backoff = (): Promise<void> => sleep(5 + Math.floor(Math.random() * 35))

/**
 * `fn` on every item, `limit` at a time. After a failure no new item is started; the ones
 * running are waited for, then the first error is thrown.
 */
async function eachLimit<T> (items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items]
  let failure: { err: unknown } | undefined
  const worker = async (): Promise<void> => {
    for (let item = queue.shift(); item !== undefined && !failure; item = queue.shift()) {
      try {
        await fn(item)
      } catch (err) {
        failure ??= { err }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, queue.length) }, worker))
  if (failure) throw failure.err
}

function depthOf (value: unknown): number {
  let max = 0
  const stack: Array<[unknown, number]> = [[value, 1]]
  while (stack.length) {
    const [v, d] = stack.pop()!
    if (v && typeof v === 'object') {
      max = Math.max(max, d)
      if (max > MAX_DETAIL_DEPTH) return max
      for (const child of Object.values(v)) stack.push([child, d + 1])
    }
  }
  return max
}

/** The envelope as the event's `raw` (the repository cuts it to fit the item limit). */
const rawOf = (envelope: EventBridgeEnvelope): Record<string, unknown> => envelope as unknown as Record<string, unknown>

type OutcomeKeys = 'event_id' | 'dedup_key' | 'action' | 'reason'
/** What processing an event decided: a processed or an ignored result, without its position. */
type Outcome = Pick<IngestResultProcessed, OutcomeKeys> | Pick<IngestResultIgnored, OutcomeKeys>
/**
 * One event of an envelope that needs the database. `claimId` is what idempotency is keyed on:
 * the envelope id, or for the second and later findings of one envelope `<id>#<item>`.
 */
interface Work { index: number, item: number, claimId: string, envelope: EventBridgeEnvelope, ev: NormalizedEvent }

const claimIdOf = (envelope: EventBridgeEnvelope, item: number): string => item === 0 ? envelope.id : `${envelope.id}#${item}`
/** Where ingestion reports its event writes: the batch's counters, applied once at its end. */
type Counted = Pick<StatsBatch, 'event'>

/**
 * Ingestion: EventBridge envelopes to events. Each envelope is checked, adapted (src/domain/
 * event-adapters.ts) and processed idempotently (claims in the meta table); new events of a batch
 * take the fast path (one conditional write each, then BatchWriteItem). Reading events is
 * events.service.ts.
 */
export interface IngestionDeps {
  repo: EventsRepository
  health: Pick<IngestionHealthRepository, 'record'>
  settings: { getCached: () => Promise<MonitoringSettings> }
  stats: StatsRecorder
  /** Told when the ingestion-health counters could not be updated (the delivery still succeeds). */
  onHealthError: (err: unknown, account: string) => void
  /** Whether a change needs notifying (then its write carries the mark: src/db/marks.ts). */
  notify?: NotifyGate
}

export function createIngestionService ({ repo, health, settings: settingsSource, stats, onHealthError, notify = NOTIFY_NOTHING }: IngestionDeps) {
  /** The notification marks of a change to event `e` that produces version `version`. */
  const marks = (kind: ChangeKind, e: Pick<MonitoringEvent, 'severity' | 'source' | 'account_id'>, version: number): Promise<string[] | undefined> =>
    marksFor(notify, { kind, severity: e.severity, source: e.source, account_id: e.account_id }, version)

  function build (envelope: EventBridgeEnvelope, ev: NormalizedEvent, retentionDays: number): MonitoringEvent {
    const id = newId()
    return newEvent(id, envelope.account, ev, rawOf(envelope), new Date(decodeTime(id)).toISOString(), retentionDays)
  }

  /**
   * The open event of the key: null when none, 'wait' while its creator is still writing it,
   * `{ createdBy }` when envelope `envelopeId` created it (that envelope was processed already:
   * a concurrent delivery of it got there first, possibly through the batch fast path).
   */
  async function openEvent (account: string, key: string): Promise<MonitoringEvent | null | 'wait'>
  async function openEvent (account: string, key: string, envelopeId: string): Promise<MonitoringEvent | null | 'wait' | { createdBy: string }>
  async function openEvent (account: string, key: string, envelopeId?: string): Promise<MonitoringEvent | null | 'wait' | { createdBy: string }> {
    const claim = await repo.openEventId(account, key)
    if (!claim) return null
    const current = await repo.get(claim.id)
    if (!current) {
      if (Date.now() - Date.parse(claim.createdAt) < STALE_CLAIM_MS) return 'wait'
      await repo.releaseDedup(account, key, claim.id)
      return null
    }
    if (envelopeId !== undefined && claim.byEnvelope === envelopeId) return { createdBy: current.id }
    if (current.deleted_at || current.status === 'resolved' || isExpired(current)) {
      await repo.releaseDedup(account, key, current.id)
      return null
    }
    return current
  }

  /** A trigger: opens a new event, or counts one more occurrence of the open one. */
  async function trigger ({ envelope, ev, claimId }: Work, retentionDays: number, counted: Counted): Promise<Outcome> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await openEvent(envelope.account, ev.dedup_key, claimId)
      if (current === 'wait') {
        await backoff()
        continue
      }
      if (current && 'createdBy' in current) return { event_id: current.createdBy, dedup_key: ev.dedup_key, action: 'duplicate', reason: null }
      if (!current) {
        const event = build(envelope, ev, retentionDays)
        if (await repo.createOpen(event, claimId, await marks('event.created', event, 1))) {
          counted.event(null, event)
          return { event_id: event.id, dedup_key: ev.dedup_key, action: 'created', reason: null }
        }
        continue
      }
      const changes = occurrenceChanges(current, { severity: ev.severity, time: ev.occurred_at })
      const ttl = retentionEnd(Date.now(), retentionDays)
      // An acknowledged event whose severity rose is reopened: that notifies.
      const reopened = current.status === 'acknowledged' && changes.status === 'open' ? await marks('event.reopened', { ...current, severity: changes.severity }, current.version + 1) : undefined
      const updated = await repo.addOccurrence(current, { ...changes, native_severity: ev.native_severity, ttl, resources: ev.resources, resource_count: ev.resource_count }, rawOf(envelope), reopened)
      if (updated) {
        counted.event(current, updated)
        return { event_id: updated.id, dedup_key: ev.dedup_key, action: 'updated', reason: null }
      }
      // Changed meanwhile (another occurrence, an operator, a resolution): decide again.
      await backoff()
    }
    throw new Error(`could not record an occurrence of ${ev.dedup_key}: too much contention`)
  }

  /** A resolution: resolves the open event, if there is one. */
  async function resolution ({ envelope, ev }: Work, retentionDays: number, counted: Counted): Promise<Outcome> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await openEvent(envelope.account, ev.dedup_key)
      if (current === 'wait') {
        await backoff()
        continue
      }
      if (!current) return { event_id: null, dedup_key: ev.dedup_key, action: 'ignored', reason: 'no_open_event' }
      // A late (retried) resolution older than the latest occurrence does not resolve it.
      if (ev.occurred_at < current.last_seen_at) return { event_id: current.id, dedup_key: ev.dedup_key, action: 'ignored', reason: 'stale_resolution' }
      const changes = { time: ev.occurred_at, resources: ev.resources, resource_count: ev.resource_count, ttl: retentionEnd(Date.now(), retentionDays) }
      const resolved = await repo.resolve(current, changes, rawOf(envelope), await marks('event.resolved', current, current.version + 1))
      if (resolved) {
        counted.event(current, resolved)
        await repo.releaseDedup(envelope.account, ev.dedup_key, resolved.id)
        return { event_id: resolved.id, dedup_key: ev.dedup_key, action: 'resolved', reason: null }
      }
    }
    throw new Error(`could not resolve ${ev.dedup_key}: too much contention`)
  }

  /** A refused envelope: its result carries the problem a single envelope would get (status from the one error table). */
  const rejected = (index: number, envelope: { id?: unknown }, code: ErrorCode, detail: string): IngestResult => ({
    index, item: 0, envelope_id: typeof envelope.id === 'string' ? envelope.id.slice(0, 128) || null : null, event_id: null, dedup_key: null, action: 'rejected', reason: null, error: { status: STATUS_BY_CODE[code], code, detail }
  })
  const ignoredResult = (index: number, item: number, envelope: EventBridgeEnvelope, dedupKey: string | null, reason: IgnoreReason): IngestResult => ({
    index, item, envelope_id: envelope.id, event_id: null, dedup_key: dedupKey, action: 'ignored', reason, error: null
  })

  /**
   * The checks that need no database: per item of the envelope, its final result (rejected,
   * ignored with a reason), or the event it is about.
   */
  function check (account: AwsAccount, envelope: EventBridgeEnvelope, index: number, settings: MonitoringSettings, adapted: AdapterResult[]): Array<IngestResult | Work> {
    if (envelope.account !== account.account_id) {
      return [rejected(index, envelope, 'account_mismatch', `The envelope is from account ${envelope.account}; this API key belongs to ${account.account_id}.`)]
    }
    if (LONE_SURROGATE.test(envelope.id)) return [rejected(index, envelope, 'validation_failed', 'The envelope id is not well-formed Unicode.')]
    if (depthOf(envelope.detail) > MAX_DETAIL_DEPTH) return [rejected(index, envelope, 'validation_failed', `The detail is nested deeper than ${MAX_DETAIL_DEPTH} levels.`)]
    return adapted.map((result): IngestResult | Work => {
      const { item } = result
      if (result.kind === 'ignored') return ignoredResult(index, item, envelope, null, result.reason)
      const ev = result.event
      if (!settings.enabled_sources.includes(ev.source)) return ignoredResult(index, item, envelope, ev.dedup_key, 'source_disabled')
      if (ev.source_state !== 'resolved' && !meetsMinSeverity(ev.severity, settings.min_severity)) return ignoredResult(index, item, envelope, ev.dedup_key, 'below_min_severity')
      return { index, item, claimId: claimIdOf(envelope, item), envelope, ev }
    })
  }

  /** The per-envelope path: claims the envelope id, then records the trigger or resolution. */
  async function perEnvelope (account: AwsAccount, work: Work, settings: MonitoringSettings, counted: Counted, held = false): Promise<IngestResult> {
    const { index, item, envelope, ev, claimId } = work
    const base = { index, item, envelope_id: envelope.id, error: null }
    let claim = held ? 'claimed' : await repo.claimEnvelope(account.account_id, claimId, Date.now())
    // The same envelope is being processed by another delivery: wait for its outcome.
    for (let waited = 0; claim === 'in_flight' && waited < IN_FLIGHT_WAIT_MS; waited += 100) {
      await sleep(100)
      claim = await repo.claimEnvelope(account.account_id, claimId, Date.now())
    }
    if (claim === 'in_flight') return { ...rejected(index, envelope, 'rate_limited', 'This envelope is being processed by another delivery; retry later.'), item }
    if (claim === 'duplicate') {
      return { ...base, event_id: await repo.envelopeEvent(account.account_id, claimId), dedup_key: ev.dedup_key, action: 'duplicate', reason: null }
    }
    try {
      const outcome = ev.source_state === 'resolved' ? await resolution(work, settings.retention_days, counted) : await trigger(work, settings.retention_days, counted)
      await repo.completeEnvelope(account.account_id, claimId, outcome.event_id)
      return { ...base, ...outcome }
    } catch (err) {
      // Let EventBridge's retry of this envelope be processed, not counted as a duplicate.
      await repo.releaseEnvelope(account.account_id, claimId)
      throw err
    }
  }

  /**
   * The new-event path of a small delivery (EventBridge sends one envelope per request), in two
   * round trips per event: (1) the envelope claim and the dedup claim, both conditional puts,
   * at the same time; (2) the event, with the counters and the delivery's ingestion health beside
   * it. Why no event is lost or duplicated:
   * - The envelope claim (`claimEnvelopeFor`) is conditional and names the event: of all
   *   deliveries of an envelope exactly one holds it; the others find it and wait (`in_flight`)
   *   or, once the named event exists, are duplicates (`claimEnvelope`). So the envelope needs no
   *   write after its event, and is never marked processed for an event that does not exist.
   * - The dedup claim is conditional too: of all triggers of a key, one opens the event; the
   *   others record an occurrence on it (they wait while it is being written).
   * - An envelope holding one claim and not the other gives it back and takes the per-envelope
   *   path. A delivery that dies between (1) and (2) leaves claims that name a missing event:
   *   the envelope claim is taken over after a minute and the dedup claim after 30 s (the
   *   staleness rules of the per-envelope path), so EventBridge's retry creates the event once.
   *   The event write is not started after a third of the dedup claim's staleness (`storeNew`).
   * - The counters are applied as the event is written; an event not written takes its deltas
   *   back (`counted`), so they end exact; a crash between is a drift the recount repairs, as
   *   for every counter write.
   * `storing(left)` is called with the envelopes left to the per-envelope path as the events are
   * being written, and runs beside them.
   */
  async function createFew (account: string, candidates: Work[], settings: MonitoringSettings, counted: Counted & Pick<StatsBatch, 'flush'>, results: Map<Work, IngestResult>, storing: (left: Work[]) => Promise<void>, envelopesHeld: Set<Work>): Promise<Work[]> {
    const claimed: Array<NewEvent & Work & { work: Work }> = []
    const left: Work[] = []
    try {
      await eachLimit(candidates, NEW_EVENT_CONCURRENCY, async (w) => {
        const event = build(w.envelope, w.ev, settings.retention_days)
        // The gate answers from its cache: no round trip beside the claims.
        const [envelope, key, notifying] = await Promise.allSettled([
          repo.claimEnvelopeFor(account, w.claimId, event.id, Date.now()),
          repo.claimNew(event, w.claimId),
          marks('event.created', event, 1)
        ])
        const held = envelope.status === 'fulfilled' && envelope.value
        const keyed = key.status === 'fulfilled' && key.value
        if (held && keyed) {
          claimed.push({ ...w, event, envelopeId: w.claimId, work: w, marks: notifying.status === 'fulfilled' ? notifying.value : ['event.created@1'] })
          return
        }
        const failed = [envelope, key].find((r): r is PromiseRejectedResult => r.status === 'rejected')
        if (held && !failed) {
          // The key is taken (an occurrence, most often): the per-envelope path goes on with the
          // envelope held (its claim names an event that will not exist: if this delivery dies,
          // the claim is taken over once stale, as any other).
          envelopesHeld.add(w)
          left.push(w)
          return
        }
        // One claim without the other: give it back, and let the per-envelope path decide.
        await Promise.all([
          held && repo.releaseEnvelopeFor(account, w.claimId, event.id),
          keyed && repo.releaseDedup(account, w.ev.dedup_key, event.id)
        ])
        if (failed) throw failed.reason
        left.push(w)
      })
    } catch (err) {
      // Nothing was stored: give every claim back (what cannot be is left to the staleness rules).
      await Promise.allSettled([
        ...claimed.flatMap(c => [repo.releaseEnvelopeFor(account, c.envelopeId, c.event.id), repo.releaseDedup(account, c.ev.dedup_key, c.event.id)]),
        ...[...envelopesHeld].map(w => repo.releaseEnvelope(account, w.claimId))
      ])
      throw err
    }
    if (!claimed.length) return left
    for (const c of claimed) {
      counted.event(null, c.event)
      results.set(c.work, { index: c.index, item: c.item, envelope_id: c.envelope.id, event_id: c.event.id, dedup_key: c.ev.dedup_key, action: 'created', reason: null, error: null })
    }
    const oldest = Math.min(...claimed.map(c => Date.parse(c.event.created_at)))
    const [stored] = await Promise.all([
      repo.storeNew(account, claimed, oldest + STALE_CLAIM_MS / 3, { envelopesClaimed: true }),
      counted.flush(),
      storing(left)
    ])
    if (stored.error) {
      // Keep what was stored; give the rest back (claims released, deltas taken back) for EventBridge's retry.
      const abandoned = await repo.abandonNew(account, stored.unsure)
      const kept = new Set(abandoned.kept)
      for (const c of stored.unsure as typeof claimed) {
        if (kept.has(c)) continue
        counted.event(c.event, null)
        results.delete(c.work)
      }
      throw abandoned.error ? new AggregateError([stored.error, abandoned.error], 'storing new events failed, and so did releasing their claims (left to the staleness rules)') : stored.error
    }
    return left
  }

  /**
   * The batch fast path, for envelopes that look like they open a new event (triggers, first
   * of their dedup key and of their envelope id in the batch): one read of all their claims,
   * then per envelope found free one conditional write (the dedup claim, naming the envelope),
   * then the events and their envelope claims (done) with BatchWriteItem. Sets the results of
   * the events it created and returns the envelopes left to the per-envelope path: those whose
   * envelope or dedup key was taken, or taken meanwhile by another delivery.
   */
  async function createNew (account: string, candidates: Work[], settings: MonitoringSettings, counted: Counted, results: Map<Work, IngestResult>): Promise<Work[]> {
    if (!candidates.length) return []
    const present = await repo.claimsPresent(account, candidates.map(w => w.claimId), candidates.map(w => w.ev.dedup_key))
    const left = candidates.filter(w => present.envelopes.has(w.claimId) || present.dedupKeys.has(w.ev.dedup_key))
    const free = candidates.filter(w => !present.envelopes.has(w.claimId) && !present.dedupKeys.has(w.ev.dedup_key))
    const claimed: Array<Work & NewEvent & { work: Work }> = []
    let stored = false
    try {
      await eachLimit(free, NEW_EVENT_CONCURRENCY, async (w) => {
        const event = build(w.envelope, w.ev, settings.retention_days)
        if (await repo.claimNew(event, w.claimId)) claimed.push({ ...w, event, envelopeId: w.claimId, work: w, marks: await marks('event.created', event, 1) })
        else left.push(w)
      })
      // A concurrent delivery may have claimed one of these envelopes since the first read (and
      // even finished it, its event resolved and the key freed): those take the per-envelope path.
      const seen = (await repo.claimsPresent(account, claimed.map(c => c.envelopeId), [])).envelopes
      const taken = claimed.filter(c => seen.has(c.envelopeId))
      await Promise.all(taken.map(c => repo.releaseDedup(account, c.ev.dedup_key, c.event.id)))
      left.push(...taken.map(c => c.work))
      stored = true
      // The claims date from build(): stop starting writes well before they would look stale.
      const oldest = Math.min(...claimed.map(c => Date.parse(c.event.created_at)))
      const { written, unsure, error } = await repo.storeNew(account, claimed.filter(c => !seen.has(c.envelopeId)), oldest + STALE_CLAIM_MS / 3)
      const created = (items: NewEvent[]): void => {
        for (const c of items as Array<Work & NewEvent & { work: Work }>) {
          counted.event(null, c.event)
          results.set(c.work, { index: c.index, item: c.item, envelope_id: c.envelope.id, event_id: c.event.id, dedup_key: c.ev.dedup_key, action: 'created', reason: null, error: null })
        }
      }
      created(written)
      if (error) {
        // Keep what was stored; free the rest for EventBridge's retry.
        const abandoned = await repo.abandonNew(account, unsure)
        created(abandoned.kept)
        throw abandoned.error ? new AggregateError([error, abandoned.error], 'storing new events failed, and so did releasing their claims (left to the staleness rules)') : error
      }
    } catch (err) {
      // Failed before anything was stored: no event exists, free the dedup keys taken.
      if (!stored) await Promise.allSettled(claimed.map(c => repo.releaseDedup(account, c.ev.dedup_key, c.event.id)))
      throw err
    }
    return left
  }

  /** Counts a delivery's results in its account's ingestion health; never fails the delivery. */
  async function recordHealth (account: string, at: number, records: IngestionRecord[], sign: 1 | -1 = 1): Promise<void> {
    try {
      await health.record(account, at, records, sign)
    } catch (err) {
      onHealthError(err, account)
    }
  }

  const service = {
    /**
     * One delivery of the ingestion route: a single envelope or `{ events: [...] }`. The body
     * is checked against one schema, chosen by its shape (a batch has `events`), so an invalid
     * single envelope is told its own errors, not those of both alternatives. A batch's invalid
     * envelopes are `rejected` in their results; a single one is a problem. Every result counts
     * in the account's ingestion health.
     */
    async ingest (account: AwsAccount, body: unknown, receivedAt: number): Promise<IngestResponse> {
      if (!isObject(body)) {
        throw new DomainError('validation_failed', 'The body must be one EventBridge envelope (a JSON object) or { "events": [...] }.', { errors: [{ path: '/body', message: 'must be object' }] })
      }
      const batch = Object.hasOwn(body, 'events')
      const checked = (batch ? checkBatch : checkEnvelope)(body)
      if (!checked.valid) {
        if (!batch) {
          await recordHealth(account.account_id, receivedAt, [{ detailType: detailTypeOf(body), result: rejectedEntry(0, body, checked.errors) }])
        }
        throw new DomainError('validation_failed', batch ? 'The batch is not valid.' : 'The envelope is not valid.', { errors: checked.errors })
      }
      const bodies = batch ? body.events as Array<Record<string, unknown>> : [body]
      const entries = bodies.map((entry, index) => {
        const result = checkEnvelope(entry)
        return result.valid ? entry as unknown as EventBridgeEnvelope : rejectedEntry(index, entry, result.errors)
      })
      const records = (results: IngestResult[]): IngestionRecord[] => results.map(result => ({ detailType: detailTypeOf(bodies[result.index]), result }))
      // Counted while the new events are written when the delivery is decided by then, else after.
      let recorded: IngestionRecord[] | undefined
      const decided = async (results: IngestResult[]): Promise<void> => {
        recorded = records(results)
        await recordHealth(account.account_id, receivedAt, recorded)
      }
      let results: IngestResult[]
      try {
        results = await service.ingestBatch(account, entries, await settingsSource.getCached(), { receivedAt, decided })
      } catch (err) {
        // The delivery failed after all: take back what was counted for it.
        if (recorded) await recordHealth(account.account_id, receivedAt, recorded, -1)
        throw err
      }
      if (!recorded) await decided(results)
      if (!batch) {
        const refused = results.find(r => r.action === 'rejected')
        if (refused?.action === 'rejected') {
          // 429: the same envelope is in flight elsewhere; EventBridge retries a 429 later.
          throw new DomainError(refused.error.code as ErrorCode, refused.error.detail, refused.error.code === 'rate_limited' ? { retryAfterSeconds: 5 } : {})
        }
      }
      const count = (...actions: Array<IngestResult['action']>) => results.filter(r => actions.includes(r.action)).length
      return { accepted: count('created', 'updated', 'resolved', 'ignored'), duplicates: count('duplicate'), rejected: count('rejected'), results }
    },

    /**
     * Ingests a batch: one result per item of each envelope, in order (`index`, then `item`).
     * New events first, through the fast path (`createNew`); then everything else envelope by
     * envelope: events with the same dedup key in their order, different ones concurrently, a
     * few at a time. Same results as envelope by envelope. Idempotent: a repeated envelope id is
     * a `duplicate` and changes nothing; concurrent deliveries of one envelope count once.
     * `batch` entries that are already results (refused by validation) are kept as they are.
     */
    async ingestBatch (account: AwsAccount, batch: Array<EventBridgeEnvelope | IngestResult>, settings: MonitoringSettings, opts: { concurrency?: number, receivedAt?: number, decided?: (results: IngestResult[]) => Promise<void> } = {}): Promise<IngestResult[]> {
      const receivedAt = opts.receivedAt ?? Date.now()
      const slots: Array<IngestResult | Work> = []
      for (const [index, entry] of batch.entries()) {
        if ('action' in entry) slots.push(entry)
        else slots.push(...check(account, entry, index, settings, adaptEnvelope(entry, settings, receivedAt)))
      }
      const candidates: Work[] = []
      const rest: Work[] = []
      const keys = new Set<string>()
      const ids = new Set<string>()
      for (const slot of slots) {
        if ('action' in slot) continue
        const first = !keys.has(slot.ev.dedup_key) && !ids.has(slot.claimId)
        keys.add(slot.ev.dedup_key)
        ids.add(slot.claimId)
        ;(first && slot.ev.source_state !== 'resolved' ? candidates : rest).push(slot)
      }
      const done = new Map<Work, IngestResult>()
      const counted = stats.batch()
      const results = (): IngestResult[] => slots.map(slot => 'action' in slot ? slot : done.get(slot)!)
      try {
        // A delivery decided once its new events are claimed (nothing left for the per-envelope
        // path) is told its results while the events are written (`decided`: its ingestion health).
        const storing = async (left: Work[]): Promise<void> => {
          if (!left.length && !rest.length) await opts.decided?.(results())
        }
        const held = new Set<Work>()
        const left = candidates.length <= FEW_NEW_EVENTS
          ? await createFew(account.account_id, candidates, settings, counted, done, storing, held)
          : await createNew(account.account_id, candidates, settings, counted, done)
        const order = new Map(slots.map((slot, i) => [slot, i]))
        const groups = new Map<string, Work[]>()
        for (const w of [...left, ...rest].sort((a, b) => order.get(a)! - order.get(b)!)) {
          const group = groups.get(w.ev.dedup_key) ?? []
          group.push(w)
          groups.set(w.ev.dedup_key, group)
        }
        await eachLimit([...groups.values()], opts.concurrency ?? BATCH_CONCURRENCY, async (group) => {
          for (const w of group) done.set(w, await perEnvelope(account, w, settings, counted, held.has(w)))
        })
      } finally {
        // The counters of what was written, also when the batch failed part-way (nothing to do
        // when they were applied already, as the new-event path does beside its writes).
        await counted.flush()
      }
      return results()
    }
  }
  return service
}

export type IngestionService = ReturnType<typeof createIngestionService>
