import type { PasswordHasher } from '../../plugins/passwords.js'
import type { StatsRecorder } from '../../plugins/stats.js'
import { DEFAULT_TEMPORARY_PASSWORD_TTL_HOURS, normalizeEmail, temporaryPasswordExpiry, type User } from '../../domain/users.js'
import { ensureFirstAdmin, type FirstAdminResult } from './first-admin.js'
import { isRetryable, refusalError, type UsersRepository } from './users.repository.js'
import { generateTemporaryPassword } from './users.service.js'

/**
 * Operator recovery (scripts/seed-admin.ts, scripts/reset-password.ts), run against the
 * database directly. Both repair the set of active admins from the user items first, whatever
 * state it is in. `unlock` lifts the login lockout of an e-mail (the auth module's repository).
 */
export interface RecoveryDeps {
  users: UsersRepository
  passwords: PasswordHasher
  stats: Pick<StatsRecorder, 'user'>
  unlock: (email: string) => Promise<void>
  temporaryPasswordTtlHours?: number
}

/**
 * `npm run seed:admin`: with an active admin, only the repair; with none, the user with the
 * admin e-mail becomes an active admin again (or is created), its lockout lifted.
 */
export async function seedAdmin (deps: RecoveryDeps, admin: { email: string, password: string | undefined }): Promise<FirstAdminResult> {
  const result = await ensureFirstAdmin(deps.users, deps.passwords, admin, deps.stats, {
    restore: true,
    temporaryPasswordTtlHours: deps.temporaryPasswordTtlHours
  })
  if (result.created || result.restored) await deps.unlock(result.email)
  return result
}

export interface ResetResult {
  user: User
  temporaryPassword: string
  /** Active admins afterwards: 0 means `npm run seed:admin` is needed. */
  activeAdmins: number
}

/**
 * `npm run user:reset-password -- <email>`: a new temporary password, the user reactivated
 * (through the admin set's protocol), every session ended, the lockout lifted. null: no such user.
 */
export async function resetPasswordByEmail (deps: RecoveryDeps, email: string): Promise<ResetResult | null> {
  const ttlHours = deps.temporaryPasswordTtlHours ?? DEFAULT_TEMPORARY_PASSWORD_TTL_HOURS
  const temporaryPassword = await generateTemporaryPassword()
  const hash = await deps.passwords.hash(temporaryPassword)
  let user: User | null = null
  for (let attempt = 1; !user; attempt++) {
    const before = await deps.users.getByEmail(normalizeEmail(email))
    if (!before) return null
    const patch = {
      password_hash: hash,
      must_change_password: true,
      temporary_password_expires_at: temporaryPasswordExpiry(Date.now(), ttlHours),
      bumpSession: true
    }
    const written = before.is_active
      ? await deps.users.tryUpdate(before.id, patch)
      : await deps.users.tryUpdateAccess(before, { ...patch, is_active: true })
    if (written.ok) {
      user = written.value
      if (!before.is_active) await deps.stats.user(before, user)
    } else if (!isRetryable(written.refusal) || attempt >= 5) {
      throw refusalError(written.refusal)
    }
    // Otherwise changed by someone else meanwhile (the server may be running): read it again.
  }
  await deps.unlock(user.email)
  return { user, temporaryPassword, activeAdmins: await deps.users.repairAdminSet() }
}
