import { setTimeout as sleep } from 'node:timers/promises'
import dynamoose from 'dynamoose'
import { isConditionFailed } from '../../db/errors.js'
import type { RawClient } from '../../db/raw.js'
import { createTtlCache } from '../../lib/ttl-cache.js'
import type { AuthItem, AuthModel } from './auth.model.js'

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

const toFamily = (id: string, item: AuthItem): RefreshFamily => ({
  id,
  user_id: item.user_id ?? '',
  token_hash: item.token_hash ?? '',
  session_version: item.session_version ?? 0,
  revoked: item.revoked ?? false,
  expires_at: item.expires_at ?? 0,
  max_expires_at: item.max_expires_at ?? 0
})

export function createAuthRepository (auth: AuthModel, raw: RawClient, cache: { ttlMs: number, settleMs: number }) {
  const table = auth.table().name
  const isDenylisted = async (jti: string, now: number): Promise<boolean> => {
    const item = await raw.get<AuthItem>(table, { pk: deny(jti) })
    return Boolean(item && (item.expires_at ?? 0) > now)
  }
  /** Denylist answers per process for `ttlMs` (see users.getCaller for the consistency rules). */
  const denied = createTtlCache<boolean>({ ttlMs: cache.ttlMs, max: 50_000 })
  return {
    async createFamily (f: Omit<RefreshFamily, 'revoked'>): Promise<void> {
      await raw.put(table, {
        pk: family(f.id),
        user_id: f.user_id,
        token_hash: f.token_hash,
        session_version: f.session_version,
        revoked: false,
        expires_at: f.expires_at,
        max_expires_at: f.max_expires_at,
        created_at: new Date().toISOString(),
        ttl: epochSeconds(f.max_expires_at)
      }, 'attribute_not_exists(pk)')
    },

    async getFamily (id: string): Promise<RefreshFamily | null> {
      const item = await auth.get({ pk: family(id) }, { consistent: true })
      return item ? toFamily(id, item) : null
    },

    /**
     * Rotates a refresh token: succeeds only if `presentedHash` is still the family's current
     * token and the family is alive. Of two concurrent uses of one token exactly one wins;
     * the loser sees a mismatch and is treated as reuse.
     */
    async rotate (id: string, presentedHash: string, nextHash: string, now: number, ttlMs: number): Promise<RotateResult> {
      const current = await auth.get({ pk: family(id) }, { consistent: true })
      if (!current) return { ok: false, reason: 'unknown' }
      const f = toFamily(id, current)
      if (f.revoked) return { ok: false, reason: 'revoked', family: f }
      if (f.expires_at <= now || f.max_expires_at <= now) return { ok: false, reason: 'expired', family: f }
      if (f.token_hash !== presentedHash) return { ok: false, reason: 'reused', family: f }
      const expiresAt = Math.min(now + ttlMs, f.max_expires_at)
      try {
        const updated = await auth.update({ pk: family(id) }, { token_hash: nextHash, expires_at: expiresAt, updated_at: new Date(now).toISOString() }, {
          condition: new dynamoose.Condition('token_hash').eq(presentedHash).and().where('revoked').eq(false),
          returnValues: 'ALL_NEW'
        })
        return { ok: true, family: toFamily(id, updated) }
      } catch (err) {
        if (isConditionFailed(err)) return { ok: false, reason: 'reused', family: f }
        throw err
      }
    },

    async revokeFamily (id: string, reason: string): Promise<void> {
      try {
        await auth.update({ pk: family(id) }, { revoked: true, revoked_reason: reason, updated_at: new Date().toISOString() }, {
          condition: new dynamoose.Condition('pk').exists()
        })
      } catch (err) {
        if (!isConditionFailed(err)) throw err
      }
    },

    /** Revokes an access token until it expires; returns once no instance still accepts it. */
    async denylist (jti: string, expiresAtMs: number): Promise<void> {
      await auth.create({ pk: deny(jti), expires_at: expiresAtMs, ttl: epochSeconds(expiresAtMs) }, { overwrite: true })
      denied.set(jti, true)
      if (cache.settleMs > 0) await sleep(cache.settleMs)
    },

    isDenylisted,

    /** `isDenylisted` for the token of the current request, cached per process for `ttlMs`. */
    isTokenDenied: (jti: string): Promise<boolean> => denied.get(jti, () => isDenylisted(jti, Date.now())),

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
    async reserveAttempt (email: string, now: number, threshold: number, windowMs: number): Promise<'ok' | { lockedMs: number } | { busyMs: number }> {
      const key = { pk: lock(email) }
      for (let round = 0; round < 10; round++) {
        const item = await raw.get<AuthItem>(table, key)
        if (item?.locked_until && item.locked_until > now) return { lockedMs: item.locked_until - now }
        const open = !item || (item.window_started_at ?? 0) <= now - windowMs
        if (!open && (item.failures ?? 0) >= threshold) return { busyMs: 1000 }
        try {
          if (open) {
            // No window, or an expired one: this attempt opens a new window.
            await raw.update(table, key, {
              update: 'SET failures = :one, window_started_at = :now, locked_until = :zero, #ttl = :ttl',
              condition: 'attribute_not_exists(pk) OR ((attribute_not_exists(window_started_at) OR window_started_at <= :since) AND (attribute_not_exists(locked_until) OR locked_until <= :now))',
              names: { '#ttl': 'ttl' },
              values: { ':one': 1, ':zero': 0, ':now': now, ':since': now - windowMs, ':ttl': epochSeconds(now + 2 * windowMs) }
            })
          } else {
            await raw.update(table, key, {
              update: 'ADD failures :one',
              condition: 'window_started_at > :since AND failures < :max AND (attribute_not_exists(locked_until) OR locked_until <= :now)',
              values: { ':one': 1, ':since': now - windowMs, ':max': threshold, ':now': now }
            })
          }
          return 'ok'
        } catch (err) {
          if (!isConditionFailed(err)) throw err
        }
      }
      return { busyMs: 1000 }
    },

    /**
     * After a verified failure: when the window's failures reached the threshold, lock the
     * e-mail for `windowMs` (once per window). Returns the lock in ms, or 0. One read (and the
     * locking write when due), the same for every e-mail.
     */
    async lockIfExhausted (email: string, now: number, threshold: number, windowMs: number): Promise<number> {
      const key = { pk: lock(email) }
      const item = await raw.get<AuthItem>(table, key)
      if (!item || (item.failures ?? 0) < threshold || (item.window_started_at ?? 0) <= now - windowMs) return 0
      if (item.locked_until && item.locked_until > now) return item.locked_until - now
      await raw.update(table, key, {
        update: 'SET locked_until = :until, #ttl = :ttl',
        condition: 'window_started_at = :started AND (attribute_not_exists(locked_until) OR locked_until <= :now)',
        names: { '#ttl': 'ttl' },
        values: { ':until': now + windowMs, ':ttl': epochSeconds(now + 2 * windowMs), ':started': item.window_started_at, ':now': now }
      }).catch((err: unknown) => { if (!isConditionFailed(err)) throw err })
      return windowMs
    },

    /**
     * A successful login returns its reservation: the e-mail's failures are forgotten (unless
     * it is locked). No item rather than a fresh window, so that an e-mail that just logged in
     * is in the same state as one never tried: a failed login must not tell them apart.
     */
    async clearFailures (email: string, now = Date.now()): Promise<void> {
      await auth.delete({ pk: lock(email) }, {
        condition: new dynamoose.Condition('locked_until').not().exists().or().where('locked_until').le(now)
      }).catch((err: unknown) => { if (!isConditionFailed(err)) throw err })
    },

    /** Gives back an attempt reserved for a check that did not happen (the server was busy). */
    async returnAttempt (email: string): Promise<void> {
      await raw.update(table, { pk: lock(email) }, {
        update: 'ADD failures :minus',
        condition: 'failures > :zero',
        values: { ':minus': -1, ':zero': 0 }
      }).catch((err: unknown) => { if (!isConditionFailed(err)) throw err })
    },

    /** Operator recovery: lifts a lockout whatever its state. */
    async unlock (email: string): Promise<void> {
      await auth.delete({ pk: lock(email) })
    }
  }
}

export type AuthRepository = ReturnType<typeof createAuthRepository>
