import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { newId } from '../../lib/ids.js'
import type { CreateUserRequest, UpdateUserRequest } from '../../../openapi/generated/schemas.js'
import { DomainError } from '../../domain/errors.js'
import { assertPasswordAcceptable, passwordWeakness } from '../../domain/password-policy.js'
import {
  assertCanDeactivateUser, assertCanUpdateUser, assertCanViewUser, DEFAULT_TEMPORARY_PASSWORD_TTL_HOURS,
  normalizeEmail, temporaryPasswordExpiry, type Actor, type User
} from '../../domain/users.js'
import type { PasswordHasher } from '../../plugins/passwords.js'
import type { StatsRecorder } from '../../plugins/stats.js'
import { isRetryable, orThrow, refusalError, type UserListQuery, type UserOutcome, type UserPatch, type UsersRepository } from './users.repository.js'

export interface UsersServiceOptions {
  /** Lifetime of the temporary passwords it issues (TEMP_PASSWORD_TTL_HOURS). */
  temporaryPasswordTtlHours?: number
  /** The clock (tests). */
  now?: () => number
}

/** How often a DELETE waits for a concurrent change of the same user before it gives up. */
const DEACTIVATE_ATTEMPTS = 20

/** A random password that satisfies the policy, shown to the admin once. */
export async function generateTemporaryPassword (): Promise<string> {
  for (;;) {
    const candidate = randomBytes(18).toString('base64url')
    if (!(await passwordWeakness(candidate))) return candidate
  }
}

export function createUsersService (repo: UsersRepository, passwords: PasswordHasher, stats: Pick<StatsRecorder, 'user'>, opts: UsersServiceOptions = {}) {
  const ttlHours = opts.temporaryPasswordTtlHours ?? DEFAULT_TEMPORARY_PASSWORD_TTL_HOURS
  const now = opts.now ?? Date.now

  async function load (id: string): Promise<User> {
    const user = await repo.getById(id)
    if (!user) throw new DomainError('not_found', 'User not found.')
    return user
  }

  /**
   * An update decided on `before`, or the repository's refusal. Role and status changes go
   * through the repository's `updateAccess`, which keeps the set of active admins exact (and
   * refuses to lose the last).
   */
  async function apply (before: User, patch: UserPatch & { bumpSession?: boolean }, expectedVersion: number | undefined): Promise<UserOutcome<User>> {
    const { role, is_active: isActive, ...plain } = patch
    const written = role !== undefined || isActive !== undefined
      ? await repo.tryUpdateAccess(before, patch, { expectedVersion })
      : await repo.tryUpdate(before.id, plain, { expectedVersion })
    if (written.ok) await stats.user(before, written.value)
    return written
  }

  /** Creates a user, or the repository's refusal (`email_taken`). */
  async function tryCreate (input: CreateUserRequest): Promise<UserOutcome<{ user: User, temporaryPassword?: string }>> {
    const email = normalizeEmail(input.email)
    const name = input.name.trim()
    if (!name) throw new DomainError('validation_failed', 'The name must not be blank.', { errors: [{ path: '/body/name', message: 'must not be blank' }] })
    let password = input.password
    if (password !== undefined) await assertPasswordAcceptable(password, 'body/password', { email, name })
    const temporaryPassword = password === undefined ? await generateTemporaryPassword() : undefined
    password ??= temporaryPassword as string
    const at = now()
    const created = new Date(at).toISOString()
    const user: User = {
      id: newId(),
      email,
      name,
      role: input.role,
      is_active: true,
      must_change_password: temporaryPassword !== undefined,
      password_hash: await passwords.hash(password),
      session_version: 1,
      version: 1,
      created_at: created,
      updated_at: created,
      last_login_at: null,
      temporary_password_expires_at: temporaryPassword !== undefined ? temporaryPasswordExpiry(at, ttlHours) : null
    }
    const written = await repo.tryCreate(user)
    if (!written.ok) return written
    await stats.user(null, user)
    return { ok: true, value: temporaryPassword ? { user, temporaryPassword } : { user } }
  }

  return {
    list: (query: UserListQuery) => repo.list(query),

    async get (actor: Actor, id: string): Promise<User> {
      assertCanViewUser(actor, id)
      return load(id)
    },

    async create (input: CreateUserRequest): Promise<{ user: User, temporaryPassword?: string }> {
      return orThrow(await tryCreate(input))
    },

    tryCreate,

    async update (actor: Actor, id: string, patch: UpdateUserRequest, expectedVersion: number | undefined): Promise<User> {
      const before = await load(id)
      assertCanUpdateUser(actor, before, patch)
      if (expectedVersion !== undefined && expectedVersion !== before.version) {
        throw refusalError({ reason: 'stale' })
      }
      const name = patch.name?.trim()
      if (patch.name !== undefined && !name) throw new DomainError('validation_failed', 'The name must not be blank.', { errors: [{ path: '/body/name', message: 'must not be blank' }] })
      const deactivating = patch.is_active === false && before.is_active
      return orThrow(await apply(before, {
        ...(name !== undefined ? { name } : {}),
        ...(patch.role !== undefined ? { role: patch.role } : {}),
        ...(patch.is_active !== undefined ? { is_active: patch.is_active } : {}),
        // Deactivation ends every session of the user at once.
        ...(deactivating ? { bumpSession: true } : {})
      }, expectedVersion))
    },

    /** DELETE deactivates (users are never hard-deleted); repeating it is harmless. */
    async deactivate (actor: Actor, id: string): Promise<void> {
      assertCanDeactivateUser(actor, id)
      for (let attempt = 1; ; attempt++) {
        const before = await load(id)
        // Already deactivated (maybe by a request still waiting for other instances): answer
        // no sooner than that request would.
        if (!before.is_active) return repo.settled(before)
        const written = await apply(before, { is_active: false, bumpSession: true }, undefined)
        if (written.ok) return
        // Someone else is changing the user (a concurrent DELETE, whose writes may be half
        // done): look again, DELETE is idempotent.
        if (!isRetryable(written.refusal) || attempt >= DEACTIVATE_ATTEMPTS) throw refusalError(written.refusal)
        await sleep(5 * attempt)
      }
    },

    async resetPassword (id: string): Promise<string> {
      const before = await load(id)
      const temporaryPassword = await generateTemporaryPassword()
      await repo.update(before.id, {
        password_hash: await passwords.hash(temporaryPassword),
        must_change_password: true,
        temporary_password_expires_at: temporaryPasswordExpiry(now(), ttlHours),
        bumpSession: true
      })
      return temporaryPassword
    }
  }
}

export type UsersService = ReturnType<typeof createUsersService>
