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
     */
    async reserveAttempt (email: string, now: number, threshold: number, windowMs: number): Promise<'ok' | { lockedMs: number } | { busyMs: number }> {
      const key = { pk: lock(email) }
      for (let round = 0; round < 10; round++) {
        try {
          await raw.update(table, key, {
            update: 'ADD failures :one',
            condition: 'window_started_at > :since AND failures < :max AND locked_until <= :now',
            values: { ':one': 1, ':since': now - windowMs, ':max': threshold, ':now': now }
          })
          return 'ok'
        } catch (err) {
          if (!isConditionFailed(err)) throw err
        }
        const item = await auth.get(key, { consistent: true })
        if (item?.locked_until && item.locked_until > now) return { lockedMs: item.locked_until - now }
        if (!item || (item.window_started_at ?? 0) <= now - windowMs) {
          try {
            // No window, or an expired one: this attempt opens a new window.
            await auth.update(key, { failures: 1, window_started_at: now, locked_until: 0, ttl: epochSeconds(now + 2 * windowMs) }, {
              condition: new dynamoose.Condition('pk').not().exists().or().where('window_started_at').le(now - windowMs)
            })
            return 'ok'
          } catch (err) {
            if (!isConditionFailed(err)) throw err
            continue
          }
        }
        // Someone else opened the window meanwhile: try to take an attempt from it again.
        if ((item.failures ?? 0) < threshold) continue
        return { busyMs: 1000 }
      }
      return { busyMs: 1000 }
    },

    /**
     * After a verified failure: when the window's failures reached the threshold, lock the
     * e-mail for `windowMs` (once per window). Returns the lock in ms, or 0.
     */
    async lockIfExhausted (email: string, now: number, threshold: number, windowMs: number): Promise<number> {
      const key = { pk: lock(email) }
      const item = await auth.get(key, { consistent: true })
      if (!item || (item.failures ?? 0) < threshold || (item.window_started_at ?? 0) <= now - windowMs) return 0
      if (item.locked_until && item.locked_until > now) return item.locked_until - now
      try {
        await auth.update(key, { locked_until: now + windowMs, ttl: epochSeconds(now + 2 * windowMs) }, {
          condition: new dynamoose.Condition('window_started_at').eq(item.window_started_at).and().where('locked_until').le(now)
        })
      } catch (err) {
        if (!isConditionFailed(err)) throw err
      }
      return windowMs
    },

    /** A successful login returns its reservation: the window starts over (unless locked). */
    async clearFailures (email: string, now = Date.now(), windowMs = 15 * 60 * 1000): Promise<void> {
      // A fresh window rather than no item: the next login then reserves with one write.
      await raw.update(table, { pk: lock(email) }, {
        update: 'SET failures = :zero, window_started_at = :now, locked_until = :zero, #ttl = :ttl',
        condition: 'locked_until <= :now OR attribute_not_exists(locked_until)',
        names: { '#ttl': 'ttl' },
        values: { ':zero': 0, ':now': now, ':ttl': epochSeconds(now + 2 * windowMs) }
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
