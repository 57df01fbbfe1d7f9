import { isRetryable, refusalError, type UserRefusal, type UsersRepository } from './users.repository.js'
import { createUsersService, generateTemporaryPassword } from './users.service.js'
import type { PasswordHasher } from '../../plugins/passwords.js'
import type { StatsRecorder } from '../../plugins/stats.js'
import { assertPasswordAcceptable } from '../../domain/password-policy.js'
import { DEFAULT_TEMPORARY_PASSWORD_TTL_HOURS, isActiveAdmin, normalizeEmail, temporaryPasswordExpiry, type User } from '../../domain/users.js'

export interface FirstAdminResult {
  /** A new admin user was created. */
  created: boolean
  /** (`restore` only) the existing user with the admin e-mail was made an active admin again. */
  restored: boolean
  email: string
  /** Only when generated: shown once, and the admin must change it at first login. */
  generatedPassword?: string
  /** Active admins afterwards. */
  activeAdmins: number
}

export interface FirstAdminOptions {
  /**
   * When no admin is active: make the user with the admin e-mail an active admin again
   * (reactivated, promoted, with ADMIN_PASSWORD or a new temporary password; its sessions end),
   * or create it. Without it (server start-up) an admin is only created when none exists at all.
   */
  restore?: boolean
  /** Lifetime of a generated (temporary) password; TEMP_PASSWORD_TTL_HOURS. */
  temporaryPasswordTtlHours?: number
}

/**
 * Repairs the set of active admins (from whatever state it is in), then, with no admin in the
 * database, creates one from ADMIN_EMAIL / ADMIN_PASSWORD, or with a generated password; with
 * `restore`, also when admins exist but none is active. Safe to run from several instances at
 * once: the e-mail claim lets exactly one create it, the user's admin epoch exactly one restore it.
 */
export async function ensureFirstAdmin (
  repo: UsersRepository,
  passwords: PasswordHasher,
  admin: { email: string, password: string | undefined },
  stats: Pick<StatsRecorder, 'user'>,
  opts: FirstAdminOptions = {},
  attempt = 1
): Promise<FirstAdminResult> {
  // Another instance got there first (created or restored the admin): look again, a few times.
  const again = (refusal: UserRefusal): Promise<FirstAdminResult> => {
    if (attempt >= 5) throw refusalError(refusal)
    return ensureFirstAdmin(repo, passwords, admin, stats, opts, attempt + 1)
  }
  const email = normalizeEmail(admin.email)
  const ttlHours = opts.temporaryPasswordTtlHours ?? DEFAULT_TEMPORARY_PASSWORD_TTL_HOURS
  const none = (activeAdmins: number): FirstAdminResult => ({ created: false, restored: false, email, activeAdmins })
  const active = await repo.repairAdminSet()
  if (active > 0) return none(active)
  if (opts.restore) {
    const existing = await repo.getByEmail(email)
    if (existing) return restore(existing)
  } else if (await repo.hasAnyAdmin()) {
    return none(0)
  }
  const service = createUsersService(repo, passwords, stats, { temporaryPasswordTtlHours: ttlHours })
  const created = await service.tryCreate({
    email,
    name: 'Administrator',
    role: 'admin',
    ...(admin.password ? { password: admin.password } : {})
  })
  if (created.ok) {
    const { user, temporaryPassword } = created.value
    return { created: true, restored: false, email: user.email, ...(temporaryPassword ? { generatedPassword: temporaryPassword } : {}), activeAdmins: 1 }
  }
  if (created.refusal.reason !== 'email_taken') throw refusalError(created.refusal)
  return opts.restore ? again(created.refusal) : none(await repo.repairAdminSet())

  async function restore (user: User): Promise<FirstAdminResult> {
    if (isActiveAdmin(user)) return none(await repo.repairAdminSet())
    if (admin.password) await assertPasswordAcceptable(admin.password, 'ADMIN_PASSWORD', { email: user.email, name: user.name })
    const generated = admin.password ? undefined : await generateTemporaryPassword()
    const written = await repo.tryUpdateAccess(user, {
      role: 'admin',
      is_active: true,
      password_hash: await passwords.hash(admin.password ?? generated!),
      must_change_password: generated !== undefined,
      temporary_password_expires_at: generated ? temporaryPasswordExpiry(Date.now(), ttlHours) : null,
      bumpSession: true
    })
    if (!written.ok) {
      // Changed by another instance meanwhile (restored it too): look again.
      if (isRetryable(written.refusal)) return again(written.refusal)
      throw refusalError(written.refusal)
    }
    const updated = written.value
    await stats.user(user, updated)
    return { created: false, restored: true, email: user.email, ...(generated ? { generatedPassword: generated } : {}), activeAdmins: await repo.repairAdminSet() }
  }
}
