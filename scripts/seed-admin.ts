/**
 * Makes sure an admin can log in, from any state of the database:
 *   ADMIN_EMAIL=ops@example.com ADMIN_PASSWORD='…' npm run seed:admin
 * First recomputes the set of active admins (the last-admin guard) from the users. If no admin
 * is active then, the user with ADMIN_EMAIL becomes an active admin again (reactivated,
 * promoted, its sessions ended, its lockout lifted) or is created, with ADMIN_PASSWORD or a
 * temporary password printed once (valid TEMP_PASSWORD_TTL_HOURS; to be changed at first login).
 * Otherwise it changes no user.
 */
import { seedAdmin } from '../src/modules/users/recovery.js'
import { recoveryDeps, withApp } from './lib/with-app.js'

await withApp(async (app, config) => {
  const result = await seedAdmin(recoveryDeps(app, config), config.admin)
  const what = result.created ? 'Created admin' : result.restored ? 'No admin was active: made this user an active admin again:' : undefined
  if (!what) {
    console.log(`An active admin already exists (${result.activeAdmins} active); the set of active admins is repaired. Nothing else to do.`)
  } else if (result.generatedPassword) {
    console.log(`${what} ${result.email}\nTemporary password: ${result.generatedPassword}\n(shown once; valid ${config.temporaryPasswordTtlHours} h; it must be changed at first login)`)
  } else {
    console.log(`${what} ${result.email} with the password from ADMIN_PASSWORD.`)
  }
})
