/**
 * The audit trail's rules (issue 20): what a record is, what it may never contain, how records
 * are hashed and chained, and how a chain is verified. Framework- and database-free: the audit
 * module stores what these functions produce, and verification recomputes it.
 *
 * Chains: a record belongs to the chain of its day and shard (`chain#<yyyy-mm-dd>#<shard>`), at
 * a position `seq` (0, 1, 2, …). Its `hash` is SHA-256 over the canonical JSON of its content,
 * which includes `prev_hash`, the hash of the record at `seq - 1` (the genesis value at 0). A
 * record edited in place no longer matches its hash; a record removed leaves a gap in `seq`; a
 * record rewritten with a fresh hash breaks the next record's `prev_hash`. See docs/audit.md.
 */
import { createHash } from 'node:crypto'

/** Every action the audit trail records. */
export const AuditActions = [
  'auth.login',
  'auth.login_failed',
  'auth.lockout',
  'auth.refresh_reuse',
  'auth.logout',
  'auth.password_change',
  'user.create',
  'user.update',
  'user.role_change',
  'user.deactivate',
  'user.reactivate',
  'user.password_reset',
  'aws_account.create',
  'aws_account.update',
  'aws_account.delete',
  'aws_account.rotate_key',
  'aws_account.test_connection',
  'monitoring_settings.update',
  'notification_channel.create',
  'notification_channel.update',
  'notification_channel.delete',
  'notification_channel.rotate_secret',
  'notification_channel.test',
  'notification_rule.create',
  'notification_rule.update',
  'notification_rule.delete',
  'event.delete',
  'task.delete',
  'access.denied'
] as const
export type AuditAction = typeof AuditActions[number]

export const AuditOutcomes = ['success', 'failure', 'denied', 'unknown'] as const
export type AuditOutcome = typeof AuditOutcomes[number]

export const AuditTargetTypes = ['user', 'aws_account', 'monitoring_settings', 'notification_channel', 'notification_rule', 'event', 'task', 'session', 'operation'] as const
export type AuditTargetType = typeof AuditTargetTypes[number]

/**
 * Who acted: a signed-in user (`id`, `role`), an ingestion API key (`id` is the AWS account's
 * registration id, `label` its 12-digit account id), or nobody known yet (a failed login:
 * `label` is the e-mail that was tried, never the password).
 */
export interface AuditActor {
  type: 'user' | 'api_key' | 'anonymous'
  id: string | null
  role: 'admin' | 'manager' | 'user' | null
  label: string | null
}

export interface AuditTarget { type: AuditTargetType, id: string | null }

/** A field's value before and after the action. */
export interface FieldChange { from: unknown, to: unknown }
export type AuditChange = Record<string, FieldChange>

/** What a caller states about an action; the service adds the id, time, chain and hashes. */
export interface AuditEntry {
  action: AuditAction
  outcome: AuditOutcome
  actor: AuditActor
  target: AuditTarget | null
  ip: string | null
  user_agent: string | null
  request_id: string | null
  change: AuditChange | null
  /** A short machine-readable reason (`invalid_credentials`, `forbidden`, `recovered_from_outbox`). */
  reason: string | null
  /** Denials only: identical denials (same actor and operation) not recorded since this actor's previous record of it. */
  suppressed?: number | undefined
}

/** An entry written to the outbox before its change: then committed, abandoned or recovered. */
export interface PendingAudit { id: string, at: string, entry: AuditEntry }

/** A stored record: the entry, where it sits in its chain, and its hashes. */
export interface AuditRecord extends AuditEntry {
  /** ULID: sortable by time. */
  id: string
  at: string
  chain: string
  seq: number
  prev_hash: string
  hash: string
}

/** The `prev_hash` of the first record of every chain. */
export const GENESIS_HASH = '0'.repeat(64)

/** Attribute names and keys that hold secrets: never recorded, whatever the caller passes. */
const SECRET_KEY = /^(?!must_change_password$).*(?:password|secret|token|api_?key|sealed|hash|external_id|authorization|cookie)/i

/** The value with every secret-named key removed (at any depth). */
export function scrubSecrets<T> (value: T): T {
  if (Array.isArray(value)) return value.map(v => scrubSecrets(v)) as T
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>)
      .filter(([k]) => !SECRET_KEY.test(k))
      .map(([k, v]) => [k, scrubSecrets(v)])) as T
  }
  return value
}

/**
 * The fields among `fields` whose value differs between `before` and `after` (compared as
 * canonical JSON), as `{ from, to }`; secret-named fields are never included. null when none.
 */
export function changedFields<T extends object> (before: T | null, after: T | null, fields: ReadonlyArray<keyof T & string>): AuditChange | null {
  const out: AuditChange = {}
  for (const f of fields) {
    if (SECRET_KEY.test(f)) continue
    const from = before ? (before as Record<string, unknown>)[f] ?? null : null
    const to = after ? (after as Record<string, unknown>)[f] ?? null : null
    if (canonicalJson(from) !== canonicalJson(to)) out[f] = { from: scrubSecrets(from), to: scrubSecrets(to) }
  }
  return Object.keys(out).length ? out : null
}

/**
 * Canonical JSON: object keys sorted, `undefined` members left out, no whitespace. The same
 * content always gives the same text, whichever order the store returns attributes in.
 */
export function canonicalJson (value: unknown): string {
  if (value === undefined || value === null) return 'null'
  if (Array.isArray(value)) return `[${value.map(v => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

/** The hashed content of a record: everything but its own hash. */
export const hashedContent = (r: Omit<AuditRecord, 'hash'>): Record<string, unknown> => ({
  v: 1,
  id: r.id,
  at: r.at,
  chain: r.chain,
  seq: r.seq,
  action: r.action,
  outcome: r.outcome,
  actor: r.actor,
  target: r.target,
  ip: r.ip,
  user_agent: r.user_agent,
  request_id: r.request_id,
  change: r.change,
  reason: r.reason,
  suppressed: r.suppressed,
  prev_hash: r.prev_hash
})

export const hashRecord = (r: Omit<AuditRecord, 'hash'>): string =>
  createHash('sha256').update(canonicalJson(hashedContent(r))).digest('hex')

/** The UTC day of a time (`yyyy-mm-dd`): the partition of its chains and of the time index. */
export const dayOf = (at: string | number | Date): string => new Date(at).toISOString().slice(0, 10)

export const chainKey = (day: string, shard: number): string => `chain#${day}#${shard}`

/** The days from `from` to `to` (inclusive), newest first; at most `max`. */
export function daysBetween (from: string, to: string, max: number): string[] {
  const out: string[] = []
  const start = Date.parse(`${from}T00:00:00.000Z`)
  for (let t = Date.parse(`${to}T00:00:00.000Z`); t >= start && out.length < max; t -= 86_400_000) out.push(dayOf(t))
  return out
}

/** The next record of a chain whose last record is `last` (null: the chain is empty). */
export function linkRecord (entry: AuditEntry, meta: { id: string, at: string, chain: string }, last: { seq: number, hash: string } | null): AuditRecord {
  const content = { ...entry, ...meta, seq: last ? last.seq + 1 : 0, prev_hash: last ? last.hash : GENESIS_HASH }
  return { ...content, hash: hashRecord(content) }
}

export type BrokenReason = 'hash_mismatch' | 'prev_hash_mismatch' | 'sequence_gap' | 'wrong_chain'
export interface BrokenLink { chain: string, id: string, seq: number, reason: BrokenReason }

/**
 * Checks one chain's records, in `seq` order: each is at the position after its predecessor,
 * names its predecessor's hash and hashes to its own. The first record that fails, or null.
 */
export function verifyChain (chain: string, records: Iterable<AuditRecord>, start: { seq: number, hash: string } | null = null): { checked: number, broken: BrokenLink | null, last: { seq: number, hash: string } | null } {
  let prev = start
  let checked = 0
  for (const r of records) {
    checked++
    const expectedSeq = prev ? prev.seq + 1 : 0
    const fail = (reason: BrokenReason) => ({ checked, broken: { chain, id: r.id, seq: r.seq, reason }, last: prev })
    if (r.chain !== chain) return fail('wrong_chain')
    if (r.seq !== expectedSeq) return fail('sequence_gap')
    if (r.prev_hash !== (prev ? prev.hash : GENESIS_HASH)) return fail('prev_hash_mismatch')
    const { hash, ...content } = r
    if (hashRecord(content) !== hash) return fail('hash_mismatch')
    prev = { seq: r.seq, hash: r.hash }
  }
  return { checked, broken: null, last: prev }
}

/** The key a record is found under by its actor (`actor` filter): the actor's id, else its label (a tried e-mail). */
export const actorKey = (actor: AuditActor): string | null => actor.id ?? (actor.label ? actor.label.toLowerCase() : null)

/** The key of the `target` index: `type#id`. */
export const targetKey = (target: AuditTarget | null): string | null => (target?.id ? `${target.type}#${target.id}` : null)
