import { eventDeltas, type Deltas } from '../../domain/stats.js'
import type { ExpiredEvent, EventsRepository } from './events.repository.js'
import { toExpiredEvent } from './events.repository.js'

/**
 * Events that leave by expiry. Every write of the service applies its own counter deltas, but
 * an event past its retention is deleted by no write of ours: DynamoDB's TTL deletes it (the
 * stream consumer, src/lambda-streams.ts, hears of it), or on the embedded stand-in, which has
 * no TTL, the retention sweep below. Both end in `removed`, the one path that takes a removed
 * event off the dashboard counters:
 *
 * 1. claim the removal (`expired#<id>` in the meta table, a conditional put): a redelivered
 *    stream record, a sweep and a stream record of the same removal, or an event the recount
 *    already left out, find the claim and change nothing;
 * 2. apply `eventDeltas(facts, null)` with one atomic ADD (a soft-deleted event counted for
 *    nothing, so its expiry changes nothing and claims nothing);
 * 3. if that ADD fails, give the claim back and throw: the stream retries the record.
 *
 * The guarantee is the one of every counter write here: at most once. A crash between the claim
 * and the ADD (or a failure to give the claim back) loses that one decrement; `npm run
 * recount-stats` repairs it. Nothing is ever taken off twice.
 */
export interface ExpiryStore extends Pick<EventsRepository, 'claimExpiry' | 'releaseExpiry' | 'releaseDedup' | 'expiredPage' | 'deleteExpired'> {}

/** Where the counters live (the dashboard module's stats repository, given by the composition root). */
export interface CounterStore {
  apply: (pk: string, deltas: Deltas) => Promise<void>
}

export interface ExpiryLog {
  error: (obj: object, msg: string) => void
}

/** What `removed` did: took the event off the counters, found it done already, or had nothing to take off. */
export type ExpiryOutcome = 'applied' | 'duplicate' | 'uncounted'

export interface SweepResult {
  /** Expired events found. */
  expired: number
  /** Deleted by this sweep. */
  deleted: number
  /** Found expired, but changed (extended) or gone before the delete: left alone. */
  kept: number
  /** Deleted, but their counters could not be updated (logged; the recount repairs them). */
  failed: number
}

export interface SweepOptions {
  /** Items read per Scan page (default 200). */
  pageSize?: number
  /** Stops between items when aborted (the app is closing). */
  signal?: AbortSignal
  /** The clock (tests). */
  now?: () => number
}

export function createExpiryService (deps: { events: ExpiryStore, counters: CounterStore, log: ExpiryLog }) {
  const { events, counters, log } = deps

  /** The one path of an event that left by expiry (see the module comment); `item` is the removed item as stored. */
  async function removed (item: Record<string, unknown>): Promise<ExpiryOutcome> {
    return await removedEvent(toExpiredEvent(item))
  }

  async function removedEvent (event: ExpiredEvent): Promise<ExpiryOutcome> {
    const deltas = eventDeltas({ severity: event.severity, source: event.source, status: event.status, deleted: event.deleted_at !== null }, null)
    if (Object.keys(deltas).length === 0) return 'uncounted'
    if (!(await events.claimExpiry(event.id))) return 'duplicate'
    try {
      await counters.apply('events', deltas)
    } catch (err) {
      await events.releaseExpiry(event.id).catch((releaseErr: unknown) => {
        log.error({ err: releaseErr, event_id: event.id }, 'expiry claim not released after a failed counter update: this decrement is lost; run npm run recount-stats')
      })
      throw err
    }
    // The key's claim would point at a missing event (ingestion would free it at the next
    // trigger); free it now so the meta table does not keep it. Conditional on this event.
    await events.releaseDedup(event.account_id, event.dedup_key, event.id).catch(() => {})
    return 'applied'
  }

  /**
   * The retention sweep (the embedded stand-in's TTL): pages through the events table for
   * events past their `ttl`, deletes each one as TTL would (still expired, still at the version
   * read), then takes it off the counters through `removed`. A failed counter update is logged
   * (the event is gone: the recount repairs the counters), never thrown.
   */
  async function sweep (opts: SweepOptions = {}): Promise<SweepResult> {
    const now = opts.now ?? Date.now
    const result: SweepResult = { expired: 0, deleted: 0, kept: 0, failed: 0 }
    let startKey: Record<string, unknown> | undefined
    do {
      if (opts.signal?.aborted) break
      const nowS = Math.floor(now() / 1000)
      const page = await events.expiredPage({ nowS, limit: opts.pageSize ?? 200, startKey })
      for (const event of page.items) {
        if (opts.signal?.aborted) break
        result.expired++
        if (!(await events.deleteExpired(event, nowS))) {
          result.kept++
          continue
        }
        result.deleted++
        try {
          await removedEvent(event)
        } catch (err) {
          result.failed++
          log.error({ err, event_id: event.id }, 'expired event deleted but the dashboard counters not updated; run npm run recount-stats')
        }
      }
      startKey = page.lastKey
    } while (startKey)
    return result
  }

  return { removed, sweep }
}

export type ExpiryService = ReturnType<typeof createExpiryService>
