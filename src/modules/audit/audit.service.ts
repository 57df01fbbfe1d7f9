import { randomInt } from 'node:crypto'
import {
  chainKey, dayOf, daysBetween, scrubSecrets, verifyChain,
  type AuditEntry, type AuditRecord, type BrokenLink, type PendingAudit
} from '../../domain/audit.js'
import { assertRange, DomainError } from '../../domain/errors.js'
import { newId } from '../../lib/ids.js'
import type { Page } from '../../db/pagination.js'
import type { AuditFilter, AuditRepository } from './audit.repository.js'

/** The log a service reports its own failures to (pino's shape). */
interface Log { error: (obj: object, msg: string) => void, warn: (obj: object, msg: string) => void }

export interface AuditServiceOptions {
  /** Chains per day: concurrent writers spread over them (docs/audit.md). */
  shards?: number
  log: Log
}

type Pending = PendingAudit

/** Days `verify` walks at most in one call. */
export const MAX_VERIFY_DAYS = 31

export interface VerifyResult {
  ok: boolean
  from: string
  to: string
  chains: number
  checked: number
  first_broken: BrokenLink | null
}

/** The service is unavailable for a change that must not go unrecorded (fail closed). */
const unavailable = (): DomainError => new DomainError('service_unavailable', 'The audit trail cannot be written right now, so the change was not made; retry later.', { retryAfterSeconds: 5 })

export function createAuditService (repo: AuditRepository, opts: AuditServiceOptions) {
  const shards = opts.shards ?? 4
  /** Writes that failed (best-effort records lost, commits left to the outbox): a metric. */
  const metrics = { written: 0, failed: 0, recovered: 0 }

  async function write (entry: AuditEntry, meta: { id: string, at: string } = { id: newId(), at: new Date().toISOString() }): Promise<AuditRecord> {
    const clean: AuditEntry = { ...entry, change: entry.change ? scrubSecrets(entry.change) : null }
    const record = await repo.append(chainKey(dayOf(meta.at), randomInt(shards)), clean, meta)
    metrics.written++
    return record
  }

  return {
    metrics,

    /** Appends a record now (throws when the store refuses it). */
    record: (entry: AuditEntry) => write(entry),

    /**
     * Authentication events and denials: never fail (nor slow down much) the request they
     * record, so a broken audit store cannot turn a flood of bad logins into an outage. A
     * failure is logged and counted.
     */
    async recordBestEffort (entry: AuditEntry): Promise<void> {
      try {
        await write(entry)
      } catch (err) {
        metrics.failed++
        opts.log.error({ err, audit_action: entry.action, audit_outcome: entry.outcome }, 'audit_write_failed: a best-effort audit record was lost')
      }
    },

    /**
     * Step one of a change that must be recorded: its entry goes to the outbox before the
     * change is made. When that fails, the change is refused (503): fail closed.
     */
    async begin (entry: AuditEntry): Promise<Pending> {
      const pending = { id: newId(), at: new Date().toISOString(), entry }
      try {
        await repo.outboxPut(pending.id, pending.at, entry)
      } catch (err) {
        metrics.failed++
        opts.log.error({ err, audit_action: entry.action }, 'audit_write_failed: the change is refused (fail closed)')
        throw unavailable()
      }
      return pending
    },

    /**
     * Step two, after the change succeeded: the record (with what the change found out: the
     * new object's id, the fields changed) is appended and the outbox entry removed. When the
     * append fails the change stands and is answered: the outbox entry stays, and `recover`
     * appends it later (outcome `unknown`, as nothing says the change was confirmed).
     */
    async commit (pending: Pending, patch: Partial<Pick<AuditEntry, 'target' | 'change' | 'action' | 'outcome' | 'reason'>> = {}): Promise<AuditRecord | null> {
      try {
        const record = await write({ ...pending.entry, ...patch }, { id: pending.id, at: pending.at })
        await repo.outboxDelete(pending.id).catch((err: unknown) => { opts.log.warn({ err }, 'audit outbox entry not removed; recovery will skip it (its record exists)') })
        return record
      } catch (err) {
        metrics.failed++
        opts.log.error({ err, audit_action: pending.entry.action }, 'audit_write_failed: left in the outbox for recovery')
        return null
      }
    },

    /** The change did not happen (it failed): its outbox entry is dropped, nothing is recorded. */
    async abandon (pending: Pending): Promise<void> {
      await repo.outboxDelete(pending.id).catch((err: unknown) => { opts.log.warn({ err }, 'audit outbox entry of a failed change not removed') })
    },

    /**
     * Appends the records of outbox entries older than `olderThanMs` (their request ended
     * without a commit or an abandon: a crash, or the store failed at commit). Their outcome
     * is `unknown`; an entry whose record already exists (commit appended, delete failed) is
     * only removed.
     */
    async recover (olderThanMs = 60_000, now = Date.now()): Promise<number> {
      let n = 0
      for (const p of await repo.outboxDue(now - olderThanMs)) {
        const existing = await repo.list({ limit: 1, ...(p.entry.target?.id ? { target_type: p.entry.target.type, target_id: p.entry.target.id } : { action: p.entry.action }), from: p.at, to: new Date(Date.parse(p.at) + 1).toISOString() })
        if (!existing.items.some(r => r.id === p.id)) {
          await write({ ...p.entry, outcome: 'unknown', reason: 'recovered_from_outbox' }, { id: p.id, at: p.at })
          metrics.recovered++
          n++
        }
        await repo.outboxDelete(p.id)
      }
      return n
    },

    list (q: AuditFilter & { limit: number, cursor?: string | undefined }): Promise<Page<AuditRecord>> {
      assertRange(q.from, q.to, ['from', 'to'])
      if (q.target_id && !q.target_type) {
        throw new DomainError('validation_failed', 'target_id needs target_type.', { errors: [{ path: '/query/target_type', message: 'required with target_id' }] })
      }
      return repo.list(q)
    },

    /** Every page of a filter, for the export (newest first). */
    async * pages (q: AuditFilter, pageSize = 100): AsyncGenerator<AuditRecord[]> {
      let cursor: string | undefined
      do {
        const page = await this.list({ ...q, limit: pageSize, cursor })
        if (page.items.length) yield page.items
        cursor = page.next_cursor ?? undefined
      } while (cursor)
    },

    /**
     * Recomputes every chain of the days from `from` to `to` (UTC dates, inclusive; default
     * today) and reports the first broken link (earliest day, lowest shard).
     */
    async verify (q: { from?: string | undefined, to?: string | undefined }, now = Date.now()): Promise<VerifyResult> {
      const to = q.to ?? dayOf(now)
      const from = q.from ?? to
      if (from > to) throw new DomainError('validation_failed', 'from must not be after to.', { errors: [{ path: '/query/to', message: 'must not be before from' }] })
      const days = daysBetween(from, to, MAX_VERIFY_DAYS + 1)
      if (days.length > MAX_VERIFY_DAYS) throw new DomainError('validation_failed', `verify covers at most ${MAX_VERIFY_DAYS} days per call.`, { errors: [{ path: '/query/from', message: `at most ${MAX_VERIFY_DAYS} days before to` }] })
      let checked = 0
      let chains = 0
      for (const day of days.reverse()) {
        // The day's chains are read together (one round trip for their first pages), then
        // checked in shard order; each holds at most a page in memory.
        const streams = Array.from({ length: shards }, (_, shard) => repo.chainRecords(chainKey(day, shard)))
        const firsts = await Promise.all(streams.map(stream => stream.next()))
        try {
          for (let shard = 0; shard < shards; shard++) {
            const chain = chainKey(day, shard)
            // In batches, each continuing from the last record of the previous one: memory stays flat.
            let last: { seq: number, hash: string } | null = null
            let batch: AuditRecord[] = []
            const check = (): BrokenLink | null => {
              const res = verifyChain(chain, batch, last)
              checked += res.checked
              last = res.last
              batch = []
              return res.broken
            }
            if (!firsts[shard]!.done) chains++
            for (let r = firsts[shard]!; !r.done; r = await streams[shard]!.next()) {
              batch.push(r.value)
              const broken = batch.length >= 500 ? check() : null
              if (broken) return { ok: false, from, to, chains, checked, first_broken: broken }
            }
            const broken = batch.length ? check() : null
            if (broken) return { ok: false, from, to, chains, checked, first_broken: broken }
          }
        } finally {
          await Promise.all(streams.map(stream => stream.return(undefined)))
        }
      }
      return { ok: true, from, to, chains, checked, first_broken: null }
    }
  }
}

export type AuditService = ReturnType<typeof createAuditService>
