import '../../src/env.js'
import path from 'node:path'
import { buildApp, type App } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import { startEmbeddedDynamo } from '../../src/embedded-dynamodb.js'
import { resolveJwtSecret } from '../../src/secrets.js'
import type { RecoveryDeps } from '../../src/modules/users/recovery.js'

/**
 * Runs an operator task against the configured database (the embedded one in DATA_DIR when
 * DYNAMODB_ENDPOINT is unset: stop the server first, one process per data directory).
 */
export async function withApp<T> (task: (app: App, config: Config) => Promise<T>): Promise<T> {
  const config = loadConfig({ ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' })
  const embedded = config.dynamodbEndpoint ? undefined : await startEmbeddedDynamo({ path: path.join(config.dataDir, 'dynamodb') })
  const app = await buildApp(config, { jwtSecret: await resolveJwtSecret(config), dynamodbEndpoint: config.dynamodbEndpoint ?? embedded!.endpoint })
  try {
    await app.ready()
    return await task(app, config)
  } finally {
    await app.close()
    await embedded?.close()
  }
}

/** What the users module's recovery operations (seed:admin, user:reset-password) need of the app. */
export const recoveryDeps = (app: App, config: Config): RecoveryDeps => ({
  users: app.repos.users,
  passwords: app.passwords,
  stats: app.stats,
  unlock: email => app.repos.auth.unlock(email),
  temporaryPasswordTtlHours: config.temporaryPasswordTtlHours
})
