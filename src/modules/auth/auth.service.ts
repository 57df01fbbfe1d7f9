import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { randomId } from '../../lib/ids.js'
import { DomainError } from '../../domain/errors.js'
import { assertPasswordAcceptable, assertPasswordWellFormed, samePassword } from '../../domain/password-policy.js'
import { normalizeEmail, temporaryPasswordExpired, type User } from '../../domain/users.js'
import type { WriteOutcome } from '../../db/access.js'
import type { PasswordCheck, PasswordHasher } from '../../plugins/passwords.js'
import type { AccessClaims } from '../../plugins/auth.js'
import type { AuthRepository } from './auth.repository.js'

export interface AuthServiceOptions {
  refreshTtlSeconds: number
  familyMaxSeconds: number
  lockout: { threshold: number, windowSeconds: number }
  issueAccessToken: (user: Pick<User, 'id' | 'role' | 'session_version'>) => { token: string, expiresIn: number }
}

/** What the audit trail wants to know of a sign-in beyond its result (the routes record it). */
export type AuthObservation =
  /** The credentials were accepted and the login recorded on the user: reported while the session starts. */
  | { kind: 'login', user: User }
  | { kind: 'lockout', email: string }
  | { kind: 'refresh_reuse', userId: string | null }

export interface Session {
  accessToken: string
  expiresIn: number
  refreshToken: string
  refreshExpiresIn: number
  user: User
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('base64url')

/** Refresh tokens are opaque: `<family id>.<secret>`; only a hash of the secret is stored. */
const REFRESH_TOKEN = /^([0-9A-HJKMNP-TV-Z]{26})\.([A-Za-z0-9_-]{43})$/

const invalidCredentials = (): DomainError => new DomainError('invalid_credentials', 'The e-mail or password is incorrect.')

/** No user has this id (ids are ULIDs): reading it costs what reading a user costs. */
const NO_USER_ID = '~no-user'

/** What signing in needs of the users module (a port: app.ts passes the users repository). */
export interface AuthUsers {
  getByEmail: (email: string) => Promise<User | null>
  getById: (id: string) => Promise<User | null>
  /** Refused when the user changed since the password was checked. */
  recordLogin: (user: User, at: string, rehash?: string) => Promise<WriteOutcome<User, unknown>>
  /** A password change, or just `bumpSession` (ends the user's sessions), guarded by `expect`. */
  update: (id: string, patch: Partial<Pick<User, 'password_hash' | 'must_change_password'>> & { bumpSession?: boolean }, opts?: { expect?: Partial<Pick<User, 'session_version' | 'password_hash'>> }) => Promise<unknown>
}

export function createAuthService (repos: { auth: AuthRepository, users: AuthUsers }, passwords: PasswordHasher, opts: AuthServiceOptions) {
  const windowMs = opts.lockout.windowSeconds * 1000

  async function startSession (user: User, now: number): Promise<Session> {
    // Unpredictable (not the monotonic sequence that request ids reveal): a guessed family id
    // with a wrong secret would otherwise count as token reuse and end the user's sessions.
    const familyId = randomId()
    const secret = randomBytes(32).toString('base64url')
    const maxExpiresAt = now + opts.familyMaxSeconds * 1000
    const expiresAt = Math.min(now + opts.refreshTtlSeconds * 1000, maxExpiresAt)
    await repos.auth.createFamily({
      id: familyId,
      user_id: user.id,
      token_hash: sha256(secret),
      session_version: user.session_version,
      expires_at: expiresAt,
      max_expires_at: maxExpiresAt
    })
    const access = opts.issueAccessToken(user)
    return {
      accessToken: access.token,
      expiresIn: access.expiresIn,
      refreshToken: `${familyId}.${secret}`,
      refreshExpiresIn: Math.max(1, Math.floor((expiresAt - now) / 1000)),
      user
    }
  }

  /** Takes one attempt from the e-mail's allowance, or refuses with 429. */
  async function reserveAttempt (email: string, now: number): Promise<void> {
    const r = await repos.auth.reserveAttempt(email, now, opts.lockout.threshold, windowMs)
    if (r === 'ok') return
    if ('lockedMs' in r) throw new DomainError('account_locked', 'Too many failed logins for this account; try again later.', { retryAfterSeconds: r.lockedMs / 1000 })
    throw new DomainError('rate_limited', 'Too many login attempts for this account are in progress; retry in a moment.', { retryAfterSeconds: r.busyMs / 1000 })
  }

  /**
   * The user of an e-mail, after the same database reads whether or not it exists: the users
   * repository reads the e-mail's claim and then the user it names, so an unknown e-mail is
   * given the second read too.
   */
  async function findByEmail (email: string): Promise<User | null> {
    const user = await repos.users.getByEmail(email)
    if (!user) await repos.users.getById(NO_USER_ID)
    return user
  }

  /** The password check of a reserved attempt; a busy server (429) gives the attempt back. */
  async function verifyReserved (email: string, hash: string | null, password: string): Promise<PasswordCheck> {
    try {
      return await passwords.check(hash, password)
    } catch (err) {
      if (err instanceof DomainError && err.code === 'rate_limited') await repos.auth.returnAttempt(email).catch(() => {})
      throw err
    }
  }

  /** A verified failure: locks the e-mail once the window's failures reach the threshold. */
  async function failed (email: string, now: number, observe?: (o: AuthObservation) => void): Promise<never> {
    if (await repos.auth.lockIfExhausted(email, now, opts.lockout.threshold, windowMs) > 0) observe?.({ kind: 'lockout', email })
    throw invalidCredentials()
  }

  return {
    /**
     * Unknown e-mail, wrong password, deactivated account and expired temporary password all
     * take one path: the same database round trips (reserve: one read and one write; lookup:
     * two reads; then one read), the same argon2 work (a dummy hash stands in for a missing
     * user; see PasswordHasher.check) and the same 401. Failures count toward a per-e-mail
     * lockout stored in the database, so it holds across instances.
     */
    async login (rawEmail: string, password: string, observe?: (o: AuthObservation) => void): Promise<Session> {
      assertPasswordWellFormed(password, 'body/password')
      const email = normalizeEmail(rawEmail)
      const now = Date.now()
      // The attempt is reserved before the password is checked; the lookup need not wait for it.
      const [, user] = await Promise.all([reserveAttempt(email, now), findByEmail(email)])
      const check = await verifyReserved(email, user?.password_hash ?? null, password)
      // The one decision, after all the work: nothing above may depend on which clause fails.
      if (!user || !check.ok || !user.is_active || temporaryPasswordExpired(user, now)) return failed(email, now, observe)
      // Upgrading an outdated (or not normalised) hash can wait for a quieter moment (the next login).
      const rehash = check.rehash
        ? await passwords.hash(password).catch((err: unknown) => { if (err instanceof DomainError && err.code === 'rate_limited') return undefined; throw err })
        : undefined
      // Only if nothing changed since the password was checked: a password change, reset or
      // deactivation that lands meanwhile must not be outlived by this session.
      const recorded = await repos.users.recordLogin(user, new Date(now).toISOString(), rehash)
      if (!recorded.ok) throw invalidCredentials()
      const updated = recorded.value
      // The audit record is written alongside the session's writes (no extra round trip).
      observe?.({ kind: 'login', user: updated })
      // A successful login returns its reservation, alongside starting the session.
      const [session] = await Promise.all([startSession(updated, now), repos.auth.clearFailures(email, now)])
      return session
    },

    /**
     * Rotates the refresh token. Presenting a token that was already rotated is treated as
     * theft: the whole family (that login's sessions) is revoked.
     */
    async refresh (token: string, observe?: (o: AuthObservation) => void): Promise<Session> {
      const match = REFRESH_TOKEN.exec(token)
      if (!match?.[1] || !match[2]) throw new DomainError('token_invalid', 'The refresh token is not valid.')
      const familyId = match[1]
      const now = Date.now()
      const nextSecret = randomBytes(32).toString('base64url')
      const result = await repos.auth.rotate(familyId, sha256(match[2]), sha256(nextSecret), now, opts.refreshTtlSeconds * 1000)
      if (!result.ok) {
        if (result.reason === 'reused') {
          // Possible theft: end the family and every session of the user, access tokens included.
          await repos.auth.revokeFamily(familyId, 'reuse_detected')
          observe?.({ kind: 'refresh_reuse', userId: result.family?.user_id ?? null })
          if (result.family) await repos.users.update(result.family.user_id, { bumpSession: true }).catch(() => {})
          throw new DomainError('token_revoked', 'This refresh token was already used; the session has been revoked. Log in again.')
        }
        if (result.reason === 'expired') throw new DomainError('token_expired', 'The refresh token has expired; log in again.')
        if (result.reason === 'revoked') throw new DomainError('token_revoked', 'The session has been revoked; log in again.')
        throw new DomainError('token_invalid', 'The refresh token is not valid.')
      }
      const user = await repos.users.getById(result.family.user_id)
      if (!user || !user.is_active || user.session_version !== result.family.session_version) {
        await repos.auth.revokeFamily(familyId, 'session_ended')
        throw new DomainError('token_revoked', 'The session is no longer valid; log in again.')
      }
      const access = opts.issueAccessToken(user)
      return {
        accessToken: access.token,
        expiresIn: access.expiresIn,
        refreshToken: `${familyId}.${nextSecret}`,
        refreshExpiresIn: Math.max(1, Math.floor((result.family.expires_at - now) / 1000)),
        user
      }
    },

    /** Denylists the access token until it expires and revokes the caller's refresh family. */
    async logout (claims: AccessClaims, refreshToken: string | undefined): Promise<void> {
      // The refresh family first: the denylist write may wait for other instances (see
      // AUTH_CACHE_MS), and a refresh meanwhile must not rotate the token out of reach.
      const match = refreshToken ? REFRESH_TOKEN.exec(refreshToken) : null
      if (match?.[1] && match[2]) {
        const family = await repos.auth.getFamily(match[1])
        const presented = Buffer.from(sha256(match[2]))
        // Only the caller's own, matching token: a stranger's token is ignored, not revoked.
        if (family && family.user_id === claims.sub && presented.length === family.token_hash.length &&
            timingSafeEqual(presented, Buffer.from(family.token_hash))) {
          await repos.auth.revokeFamily(family.id, 'logout')
        }
      }
      await repos.auth.denylist(claims.jti, claims.exp * 1000)
    },

    /** Changes the password; every existing session of the user ends (log in again). */
    async changePassword (user: User, current: string, next: string, observe?: (o: AuthObservation) => void): Promise<void> {
      assertPasswordWellFormed(current, 'body/current_password')
      assertPasswordWellFormed(next, 'body/new_password')
      const now = Date.now()
      await reserveAttempt(user.email, now)
      if (!(await verifyReserved(user.email, user.password_hash, current)).ok) {
        if (await repos.auth.lockIfExhausted(user.email, now, opts.lockout.threshold, windowMs) > 0) observe?.({ kind: 'lockout', email: user.email })
        throw new DomainError('invalid_credentials', 'The current password is incorrect.', { errors: [{ path: '/body/current_password', message: 'incorrect password' }] })
      }
      if (samePassword(current, next)) {
        throw new DomainError('password_policy', 'The new password must differ from the current one.', { errors: [{ path: '/body/new_password', message: 'must differ from the current password' }] })
      }
      await repos.auth.clearFailures(user.email, now)
      await assertPasswordAcceptable(next, 'body/new_password', { email: user.email, name: user.name })
      await repos.users.update(user.id, { password_hash: await passwords.hash(next), must_change_password: false, bumpSession: true }, {
        expect: { session_version: user.session_version, password_hash: user.password_hash }
      })
    }
  }
}

export type AuthService = ReturnType<typeof createAuthService>
