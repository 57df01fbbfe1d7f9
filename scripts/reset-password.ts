/**
 * Operator recovery: gives a user a new temporary password, reactivates them and lifts a
 * login lockout, e.g. when the only admin forgot their password:
 *   npm run user:reset-password -- ops@example.com
 * Prints the temporary password once (valid TEMP_PASSWORD_TTL_HOURS); it must be changed at the
 * next login. Every existing session of the user ends. Also recomputes the set of active admins
 * (the last-admin guard) from the users, and says when no admin is active (then run seed:admin).
 */
import { resetPasswordByEmail } from '../src/modules/users/recovery.js'
import { recoveryDeps, withApp } from './lib/with-app.js'

const email = process.argv[2]
if (!email) {
  console.error('usage: npm run user:reset-password -- <email>')
  process.exit(2)
}

await withApp(async (app, config) => {
  const result = await resetPasswordByEmail(recoveryDeps(app, config), email)
  if (!result) {
    console.error(`No user with the e-mail ${email}.`)
    process.exitCode = 1
    return
  }
  const { user, temporaryPassword, activeAdmins } = result
  console.log(`Reset ${user.email} (${user.role}).\nTemporary password: ${temporaryPassword}\n(shown once; valid ${config.temporaryPasswordTtlHours} h; it must be changed at the next login)`)
  if (activeAdmins === 0) console.log('No admin is active: run `npm run seed:admin` (ADMIN_EMAIL) to make one.')
})
