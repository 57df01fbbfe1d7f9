/**
 * Creates the first admin on demand (the server also does this on its first start):
 *   ADMIN_EMAIL=ops@example.com ADMIN_PASSWORD='…' npm run seed:admin
 * Without ADMIN_PASSWORD a password is generated and printed once. Does nothing when an
 * admin already exists.
 */
import { ensureFirstAdmin } from '../src/modules/users/first-admin.js'
import { withApp } from './lib/with-app.js'

await withApp(async (app, config) => {
  const result = await ensureFirstAdmin(app.db.repos.users, app.passwords, config.admin, app.stats)
  if (!result.created) console.log('An admin already exists; nothing to do.')
  else if (result.generatedPassword) console.log(`Created admin ${result.email}\nTemporary password: ${result.generatedPassword}\n(shown once; it must be changed at first login)`)
  else console.log(`Created admin ${result.email} with the password from ADMIN_PASSWORD.`)
})
