import dynamoose from 'dynamoose'
import { isConditionFailed } from '../../db/errors.js'
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

export function createAuthRepository (auth: AuthModel) {
  return {
    async createFamily (f: Omit<RefreshFamily, 'revoked'>): Promise<void> {
      await auth.create({
        pk: family(f.id),
        user_id: f.user_id,
        token_hash: f.token_hash,
        session_version: f.session_version,
        revoked: false,
        expires_at: f.expires_at,
        max_expires_at: f.max_expires_at,
        created_at: new Date().toISOString(),
        ttl: epochSeconds(f.max_expires_at)
      }, { overwrite: false })
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

    async denylist (jti: string, expiresAtMs: number): Promise<void> {
      await auth.create({ pk: deny(jti), expires_at: expiresAtMs, ttl: epochSeconds(expiresAtMs) }, { overwrite: true })
    },

    async isDenylisted (jti: string, now: number): Promise<boolean> {
      const item = await auth.get({ pk: deny(jti) }, { consistent: true })
      return Boolean(item && (item.expires_at ?? 0) > now)
    },

    /** Milliseconds the e-mail is still locked out for, or 0. */
    async lockedFor (email: string, now: number): Promise<number> {
      const item = await auth.get({ pk: lock(email) }, { consistent: true })
      return item?.locked_until && item.locked_until > now ? item.locked_until - now : 0
    },

    /**
     * Counts one failed login in a fixed window with atomic ADD (concurrent failures are all
     * counted); reaching `threshold` locks the e-mail for `windowMs`. Returns the lock in ms.
     */
    async recordFailure (email: string, now: number, threshold: number, windowMs: number): Promise<number> {
      const key = { pk: lock(email) }
      let failures: number | undefined
      for (let attempt = 0; attempt < 3 && failures === undefined; attempt++) {
        try {
          const updated = await auth.update(key, { $ADD: { failures: 1 } }, {
            condition: new dynamoose.Condition('window_started_at').gt(now - windowMs),
            returnValues: 'ALL_NEW'
          })
          failures = updated.failures ?? 1
        } catch (err) {
          if (!isConditionFailed(err)) throw err
          try {
            // No window, or an expired one: start a new window (only one concurrent writer wins).
            await auth.update(key, { failures: 1, window_started_at: now, locked_until: 0, ttl: epochSeconds(now + 2 * windowMs) }, {
              condition: new dynamoose.Condition('pk').not().exists().or().where('window_started_at').le(now - windowMs)
            })
            failures = 1
          } catch (err2) {
            if (!isConditionFailed(err2)) throw err2
          }
        }
      }
      if ((failures ?? 0) >= threshold) {
        const lockedUntil = now + windowMs
        await auth.update(key, { locked_until: lockedUntil, ttl: epochSeconds(lockedUntil + windowMs) })
        return windowMs
      }
      return 0
    },

    async clearFailures (email: string): Promise<void> {
      await auth.delete({ pk: lock(email) })
    }
  }
}

export type AuthRepository = ReturnType<typeof createAuthRepository>
