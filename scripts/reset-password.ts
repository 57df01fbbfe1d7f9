/**
 * Operator recovery: gives a user a new temporary password, reactivates them and lifts a
 * login lockout, e.g. when the only admin forgot their password:
 *   npm run user:reset-password -- ops@example.com
 * Prints the temporary password once; it must be changed at the next login. Every existing
 * session of the user ends.
 */
import { normalizeEmail } from '../src/domain/users.js'
import { generateTemporaryPassword } from '../src/modules/users/users.service.js'
import { withApp } from './lib/with-app.js'

const email = process.argv[2]
if (!email) {
  console.error('usage: npm run user:reset-password -- <email>')
  process.exit(2)
}

await withApp(async (app) => {
  const { users, auth } = app.db.repos
  const user = await users.getByEmail(normalizeEmail(email))
  if (!user) {
    console.error(`No user with the e-mail ${email}.`)
    process.exitCode = 1
    return
  }
  const temporary = generateTemporaryPassword()
  await users.update(user.id, { password_hash: await app.passwords.hash(temporary), must_change_password: true, bumpSession: true })
  if (!user.is_active) {
    await users.update(user.id, { is_active: true })
    if (user.role === 'admin') await users.addActiveAdmin(user.id)
  }
  await auth.unlock(user.email)
  console.log(`Reset ${user.email} (${user.role}).\nTemporary password: ${temporary}\n(shown once; it must be changed at the next login)`)
})
