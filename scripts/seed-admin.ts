/**
 * Creates the first admin on demand (the server also does this on its first start):
 *   ADMIN_EMAIL=ops@example.com ADMIN_PASSWORD='…' npm run seed:admin
 * Without ADMIN_PASSWORD a password is generated and printed once. Does nothing when an
 * admin already exists. Stop the server first when it uses the embedded database.
 */
import path from 'node:path'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { startEmbeddedDynamo } from '../src/embedded-dynamodb.js'
import { resolveJwtSecret } from '../src/secrets.js'
import { ensureFirstAdmin } from '../src/modules/users/first-admin.js'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'

const config = loadConfig({ ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' })
const embedded = config.dynamodbEndpoint ? undefined : await startEmbeddedDynamo({ path: path.join(config.dataDir, 'dynamodb') })
const app = await buildApp(config, { jwtSecret: await resolveJwtSecret(config), dynamodbEndpoint: config.dynamodbEndpoint ?? embedded!.endpoint })
try {
  await app.ready()
  const result = await ensureFirstAdmin(app.db.repos.users, app.passwords, config.admin)
  if (!result.created) console.log('An admin already exists; nothing to do.')
  else if (result.generatedPassword) console.log(`Created admin ${result.email}\nTemporary password: ${result.generatedPassword}\n(shown once; it must be changed at first login)`)
  else console.log(`Created admin ${result.email} with the password from ADMIN_PASSWORD.`)
} finally {
  await app.close()
  await embedded?.close()
}
