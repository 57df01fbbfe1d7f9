import { randomBytes } from 'node:crypto'
import { newId } from '../../lib/ids.js'
import type { CreateUserRequest, UpdateUserRequest } from '../../../openapi/generated/schemas.js'
import { DomainError } from '../../domain/errors.js'
import { assertPasswordAcceptable, passwordWeakness } from '../../domain/password-policy.js'
import {
  addsActiveAdmin, assertCanDeactivateUser, assertCanUpdateUser, assertCanViewUser,
  normalizeEmail, removesActiveAdmin, type Actor, type User
} from '../../domain/users.js'
import type { PasswordHasher } from '../../plugins/passwords.js'
import type { StatsRecorder } from '../../plugins/stats.js'
import type { UserListQuery, UsersRepository } from './users.repository.js'

/** A random password that satisfies the policy, shown to the admin once. */
export function generateTemporaryPassword (): string {
  for (;;) {
    const candidate = randomBytes(18).toString('base64url')
    if (!passwordWeakness(candidate)) return candidate
  }
}

export function createUsersService (repo: UsersRepository, passwords: PasswordHasher, stats: Pick<StatsRecorder, 'user'>) {
  async function load (id: string): Promise<User> {
    const user = await repo.getById(id)
    if (!user) throw new DomainError('not_found', 'User not found.')
    return user
  }

  /**
   * Applies an update that may take an active admin away. The admin leaves the active-admin
   * set first (refused when it is the last one) and comes back if the write fails.
   */
  async function guardedUpdate (before: User, patch: Parameters<UsersRepository['update']>[1], expectedVersion: number | undefined): Promise<User> {
    const after = { role: patch.role ?? before.role, is_active: patch.is_active ?? before.is_active }
    const removal = removesActiveAdmin(before, after) ? await repo.reserveAdminRemoval(before.id) : undefined
    let updated: User
    try {
      updated = await repo.update(before.id, patch, {
        expectedVersion,
        // The decision above was made on `before`: write only if it still holds.
        expect: { role: before.role, is_active: before.is_active }
      })
    } catch (err) {
      if (removal === 'removed') await repo.addActiveAdmin(before.id)
      throw err
    }
    if (addsActiveAdmin(before, after)) await repo.addActiveAdmin(before.id)
    await stats.user(before, updated)
    return updated
  }

  return {
    list: (query: UserListQuery) => repo.list(query),

    async get (actor: Actor, id: string): Promise<User> {
      assertCanViewUser(actor, id)
      return load(id)
    },

    async create (input: CreateUserRequest): Promise<{ user: User, temporaryPassword?: string }> {
      const email = normalizeEmail(input.email)
      const name = input.name.trim()
      if (!name) throw new DomainError('validation_failed', 'The name must not be blank.', { errors: [{ path: '/body/name', message: 'must not be blank' }] })
      let password = input.password
      if (password !== undefined) assertPasswordAcceptable(password, 'body/password', { email, name })
      const temporaryPassword = password === undefined ? generateTemporaryPassword() : undefined
      password ??= temporaryPassword as string
      const now = new Date().toISOString()
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
        created_at: now,
        updated_at: now,
        last_login_at: null
      }
      await repo.create(user)
      await stats.user(null, user)
      return temporaryPassword ? { user, temporaryPassword } : { user }
    },

    async update (actor: Actor, id: string, patch: UpdateUserRequest, expectedVersion: number | undefined): Promise<User> {
      const before = await load(id)
      assertCanUpdateUser(actor, before, patch)
      if (expectedVersion !== undefined && expectedVersion !== before.version) {
        throw new DomainError('precondition_failed', 'The user was changed by someone else (ETag mismatch).')
      }
      const name = patch.name?.trim()
      if (patch.name !== undefined && !name) throw new DomainError('validation_failed', 'The name must not be blank.', { errors: [{ path: '/body/name', message: 'must not be blank' }] })
      const deactivating = patch.is_active === false && before.is_active
      return guardedUpdate(before, {
        ...(name !== undefined ? { name } : {}),
        ...(patch.role !== undefined ? { role: patch.role } : {}),
        ...(patch.is_active !== undefined ? { is_active: patch.is_active } : {}),
        // Deactivation ends every session of the user at once.
        ...(deactivating ? { bumpSession: true } : {})
      }, expectedVersion)
    },

    /** DELETE deactivates (users are never hard-deleted); repeating it is harmless. */
    async deactivate (actor: Actor, id: string): Promise<void> {
      assertCanDeactivateUser(actor, id)
      const before = await load(id)
      // Already deactivated (maybe by a request still waiting for other instances): answer
      // no sooner than that request would.
      if (!before.is_active) return repo.settled(before)
      try {
        await guardedUpdate(before, { is_active: false, bumpSession: true }, undefined)
      } catch (err) {
        // A concurrent DELETE of the same user got there first: DELETE is idempotent.
        if (!(err instanceof DomainError && err.code === 'conflict')) throw err
        const current = await load(id)
        if (current.is_active) throw err
        await repo.settled(current)
      }
    },

    async resetPassword (id: string): Promise<string> {
      const before = await load(id)
      const temporaryPassword = generateTemporaryPassword()
      await repo.update(before.id, { password_hash: await passwords.hash(temporaryPassword), must_change_password: true, bumpSession: true })
      return temporaryPassword
    }
  }
}

export type UsersService = ReturnType<typeof createUsersService>
