import { setTimeout as sleep } from 'node:timers/promises'
import { applied, writeOrExplain } from '../../db/access.js'
import { where, type Condition, type Update } from '../../db/expressions.js'
import type { RawClient } from '../../db/raw.js'
import type { TableModel } from '../../db/tables.js'
import { createTtlCache, type TtlCache } from '../../lib/ttl-cache.js'
import type { AuthItem } from './auth.model.js'

/**
 * The auth table's three kinds of item (auth.model.ts), each with its own section below:
 * refresh-token families (`rf#<id>`), the access-token denylist (`deny#<jti>`) and the
 * failed-login window of an e-mail (`lock#<email>`).
 */
const family = (id: string): string => `rf#${id}`
const deny = (jti: string): string => `deny#${jti}`
const lock = (email: string): string => `lock#${email}`
const epochSeconds = (ms: number): number => Math.ceil(ms / 1000)

export interface RefreshFamily {
  id: string
  user_id: string
  token_hash: string
  session_version: number
  revoked: boolean
  expires_at: number
  max_expires_at: number
}

export type RotateResult =
  | { ok: true, family: RefreshFamily }
  | { ok: false, reason: 'unknown' | 'revoked' | 'expired' | 'reused', family?: RefreshFamily }

/** Reserving a login attempt: done, or how long to wait (see `reserveAttempt`). */
export type AttemptAnswer = 'ok' | { lockedMs: number } | { busyMs: number }

const toFamily = (id: string, item: AuthItem): RefreshFamily => ({
  id,
  user_id: item.user_id ?? '',
  token_hash: item.token_hash ?? '',
  session_version: item.session_version ?? 0,
  revoked: item.revoked ?? false,
  expires_at: item.expires_at ?? 0,
  max_expires_at: item.max_expires_at ?? 0
})

/** What the functions of this repository work on. */
interface AuthContext {
  raw: RawClient
  table: string
  cache: { ttlMs: number, settleMs: number }
  /** Denylist answers per process for `ttlMs` (see users.getCaller for the consistency rules). */
  denied: TtlCache<boolean>
}

/** A conditional write whose refusal needs no explanation: true when written, false when its condition did not hold. */

// Refresh-token families: `rf#<family id>`.

async function createFamily (ctx: AuthContext, f: Omit<RefreshFamily, 'revoked'>): Promise<void> {
  await ctx.raw.putItem(ctx.table, {
    pk: family(f.id),
    user_id: f.user_id,
    token_hash: f.token_hash,
    session_version: f.session_version,
    revoked: false,
    expires_at: f.expires_at,
    max_expires_at: f.max_expires_at,
    created_at: new Date().toISOString(),
    ttl: epochSeconds(f.max_expires_at)
  }, { condition: where.notExists('pk') })
}

async function getFamily (ctx: AuthContext, id: string): Promise<RefreshFamily | null> {
  const item = await ctx.raw.getItem<AuthItem>(ctx.table, { pk: family(id) })
  return item ? toFamily(id, item) : null
}

/**
 * Rotates a refresh token: succeeds only if `presentedHash` is still the family's current
 * token and the family is alive. Of two concurrent uses of one token exactly one wins;
 * the loser sees a mismatch and is treated as reuse.
 */
async function rotate (ctx: AuthContext, id: string, presentedHash: string, nextHash: string, now: number, ttlMs: number): Promise<RotateResult> {
  const f = await getFamily(ctx, id)
  if (!f) return { ok: false, reason: 'unknown' }
  if (f.revoked) return { ok: false, reason: 'revoked', family: f }
  if (f.expires_at <= now || f.max_expires_at <= now) return { ok: false, reason: 'expired', family: f }
  if (f.token_hash !== presentedHash) return { ok: false, reason: 'reused', family: f }
  const change: Update = { set: { token_hash: nextHash, expires_at: Math.min(now + ttlMs, f.max_expires_at), updated_at: new Date(now).toISOString() } }
  const rotated = await writeOrExplain(
    async () => toFamily(id, (await ctx.raw.updateItem<AuthItem>(ctx.table, { pk: family(id) }, change, {
      condition: where.and(where.eq('token_hash', presentedHash), where.eq('revoked', false)),
      returnValues: 'ALL_NEW'
    }))!),
    // Someone else rotated (or revoked) it since the read: the token presented is no longer current.
    async () => ({ reason: 'reused' as const, family: f }))
  return rotated.ok ? { ok: true, family: rotated.value } : { ok: false, ...rotated.refusal }
}

async function revokeFamily (ctx: AuthContext, id: string, reason: string): Promise<void> {
  await applied(ctx.raw.updateItem(ctx.table, { pk: family(id) }, {
    set: { revoked: true, revoked_reason: reason, updated_at: new Date().toISOString() }
  }, { condition: where.exists('pk') }))
}

// The access-token denylist: `deny#<jti>`.

/** Revokes an access token until it expires; returns once no instance still accepts it. */
async function denylist (ctx: AuthContext, jti: string, expiresAtMs: number): Promise<void> {
  await ctx.raw.putItem(ctx.table, { pk: deny(jti), expires_at: expiresAtMs, ttl: epochSeconds(expiresAtMs) })
  ctx.denied.set(jti, true)
  if (ctx.cache.settleMs > 0) await sleep(ctx.cache.settleMs)
}

async function isDenylisted (ctx: AuthContext, jti: string, now: number): Promise<boolean> {
  const item = await ctx.raw.getItem<AuthItem>(ctx.table, { pk: deny(jti) })
  return Boolean(item && (item.expires_at ?? 0) > now)
}

// Failed logins of an e-mail: `lock#<email>` (window start, failures, lock).

/**
 * The next step of `reserveAttempt` on the e-mail's item as read: an answer at once (locked,
 * busy), or the conditional write that takes the attempt (a new window, or one more in it).
 */
function nextAttempt (item: AuthItem | null, now: number, threshold: number, windowMs: number): { answer: AttemptAnswer } | { change: Update, condition: Condition } {
  if (item?.locked_until && item.locked_until > now) return { answer: { lockedMs: item.locked_until - now } }
  const since = now - windowMs
  const open = !item || (item.window_started_at ?? 0) <= since
  if (!open && (item.failures ?? 0) >= threshold) return { answer: { busyMs: 1000 } }
  if (open) {
    // No window, or an expired one: this attempt opens a new window.
    return {
      change: { set: { failures: 1, window_started_at: now, locked_until: 0, ttl: epochSeconds(now + 2 * windowMs) } },
      condition: where.or(
        where.notExists('pk'),
        where.and(where.absentOrLe('window_started_at', since), where.absentOrLe('locked_until', now))
      )
    }
  }
  return {
    change: { add: { failures: 1 } },
    condition: where.and(where.gt('window_started_at', since), where.lt('failures', threshold), where.absentOrLe('locked_until', now))
  }
}

/**
 * Reserves one login attempt for the e-mail *before* the password is checked, so parallel
 * guesses cannot slip past the limit while the check runs: at most `threshold` attempts
 * per window are verified. Returns 'ok', or how long to wait: `{ lockedMs }` while the
 * e-mail is locked, `{ busyMs }` while the window's attempts are all in flight (they may
 * still succeed, so that alone does not lock the e-mail).
 *
 * Always one read, then one conditional write (unless locked or busy), whatever state the
 * e-mail is in (never tried, in a window, just logged in, unknown): how long a failed login
 * takes must not tell whether, or how recently, the e-mail was used. The write's condition
 * is the guard; a lost race reads again.
 */
async function reserveAttempt (ctx: AuthContext, email: string, now: number, threshold: number, windowMs: number): Promise<AttemptAnswer> {
  const key = { pk: lock(email) }
  for (let round = 0; round < 10; round++) {
    const step = nextAttempt(await ctx.raw.getItem<AuthItem>(ctx.table, key), now, threshold, windowMs)
    if ('answer' in step) return step.answer
    if (await applied(ctx.raw.updateItem(ctx.table, key, step.change, { condition: step.condition }))) return 'ok'
  }
  return { busyMs: 1000 }
}

/**
 * After a verified failure: when the window's failures reached the threshold, lock the
 * e-mail for `windowMs` (once per window). Returns the lock in ms, or 0. One read (and the
 * locking write when due), the same for every e-mail.
 */
async function lockIfExhausted (ctx: AuthContext, email: string, now: number, threshold: number, windowMs: number): Promise<number> {
  const key = { pk: lock(email) }
  const item = await ctx.raw.getItem<AuthItem>(ctx.table, key)
  if (!item || (item.failures ?? 0) < threshold || (item.window_started_at ?? 0) <= now - windowMs) return 0
  if (item.locked_until && item.locked_until > now) return item.locked_until - now
  await applied(ctx.raw.updateItem(ctx.table, key, {
    set: { locked_until: now + windowMs, ttl: epochSeconds(now + 2 * windowMs) }
  }, { condition: where.and(where.eq('window_started_at', item.window_started_at), where.absentOrLe('locked_until', now)) }))
  return windowMs
}

/**
 * A successful login returns its reservation: the e-mail's failures are forgotten (unless
 * it is locked). No item rather than a fresh window, so that an e-mail that just logged in
 * is in the same state as one never tried: a failed login must not tell them apart.
 */
async function clearFailures (ctx: AuthContext, email: string, now = Date.now()): Promise<void> {
  await applied(ctx.raw.deleteItem(ctx.table, { pk: lock(email) }, { condition: where.absentOrLe('locked_until', now) }))
}

/** Gives back an attempt reserved for a check that did not happen (the server was busy). */
async function returnAttempt (ctx: AuthContext, email: string): Promise<void> {
  await applied(ctx.raw.updateItem(ctx.table, { pk: lock(email) }, { add: { failures: -1 } }, { condition: where.gt('failures', 0) }))
}

/** Operator recovery: lifts a lockout whatever its state. */
async function unlock (ctx: AuthContext, email: string): Promise<void> {
  await ctx.raw.deleteItem(ctx.table, { pk: lock(email) })
}

export function createAuthRepository (auth: TableModel, raw: RawClient, cache: { ttlMs: number, settleMs: number }) {
  const ctx: AuthContext = { raw, table: auth.table().name, cache, denied: createTtlCache<boolean>({ ttlMs: cache.ttlMs, max: 50_000 }) }
  return {
    createFamily: (f: Omit<RefreshFamily, 'revoked'>) => createFamily(ctx, f),
    getFamily: (id: string) => getFamily(ctx, id),
    rotate: (id: string, presentedHash: string, nextHash: string, now: number, ttlMs: number) => rotate(ctx, id, presentedHash, nextHash, now, ttlMs),
    revokeFamily: (id: string, reason: string) => revokeFamily(ctx, id, reason),
    denylist: (jti: string, expiresAtMs: number) => denylist(ctx, jti, expiresAtMs),
    isDenylisted: (jti: string, now: number) => isDenylisted(ctx, jti, now),
    /** `isDenylisted` for the token of the current request, cached per process for `ttlMs`. */
    isTokenDenied: (jti: string): Promise<boolean> => ctx.denied.get(jti, () => isDenylisted(ctx, jti, Date.now())),
    reserveAttempt: (email: string, now: number, threshold: number, windowMs: number) => reserveAttempt(ctx, email, now, threshold, windowMs),
    lockIfExhausted: (email: string, now: number, threshold: number, windowMs: number) => lockIfExhausted(ctx, email, now, threshold, windowMs),
    clearFailures: (email: string, now?: number) => clearFailures(ctx, email, now),
    returnAttempt: (email: string) => returnAttempt(ctx, email),
    unlock: (email: string) => unlock(ctx, email)
  }
}

export type AuthRepository = ReturnType<typeof createAuthRepository>
