import type { UsersRepository } from './users.repository.js'
import { createUsersService } from './users.service.js'
import type { PasswordHasher } from '../../plugins/passwords.js'
import type { StatsRecorder } from '../../plugins/stats.js'
import { DomainError } from '../../domain/errors.js'

export interface FirstAdminResult {
  created: boolean
  email: string
  /** Only when generated: shown once, and the admin must change it at first login. */
  generatedPassword?: string
}

/**
 * With no admin in the database, creates one from ADMIN_EMAIL / ADMIN_PASSWORD, or with a
 * generated password. Safe to run from several instances at once: the e-mail claim lets
 * exactly one create it.
 */
export async function ensureFirstAdmin (repo: UsersRepository, passwords: PasswordHasher, admin: { email: string, password: string | undefined }, stats: Pick<StatsRecorder, 'user'>): Promise<FirstAdminResult> {
  if (await repo.hasAnyAdmin()) {
    await repo.repairAdminSet()
    return { created: false, email: admin.email }
  }
  const service = createUsersService(repo, passwords, stats)
  try {
    const { user, temporaryPassword } = await service.create({
      email: admin.email,
      name: 'Administrator',
      role: 'admin',
      ...(admin.password ? { password: admin.password } : {})
    })
    return { created: true, email: user.email, ...(temporaryPassword ? { generatedPassword: temporaryPassword } : {}) }
  } catch (err) {
    if (err instanceof DomainError && err.code === 'email_taken') return { created: false, email: admin.email }
    throw err
  }
}
