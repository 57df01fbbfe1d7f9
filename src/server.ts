import './env.js'
import path from 'node:path'
import { ConfigError, loadConfig } from './config.js'
import { startEmbeddedDynamo } from './embedded-dynamodb.js'

/** Process entry: config, embedded database if needed, first admin, listen, graceful close. */
async function main (): Promise<void> {
  const config = loadConfig()
  // The embedded database starts in its own thread while this one loads the app's modules
  // (most of the start-up): the two overlap instead of following each other.
  const starting = config.dynamodbEndpoint ? undefined : startEmbeddedDynamo({ path: path.join(config.dataDir, 'dynamodb') })
  starting?.catch(() => {}) // awaited below; not an unhandled rejection meanwhile
  const [{ buildApp }, { resolveJwtSecret }, { ensureFirstAdmin }] = await Promise.all([
    import('./app.js'), import('./secrets.js'), import('./modules/users/first-admin.js')
  ])
  const embedded = await starting
  const app = await buildApp(config, {
    jwtSecret: await resolveJwtSecret(config),
    dynamodbEndpoint: config.dynamodbEndpoint ?? embedded!.endpoint
  })
  app.addHook('onClose', async () => { await embedded?.close() })

  const admin = await ensureFirstAdmin(app.repos.users, app.passwords, config.admin, app.stats, { temporaryPasswordTtlHours: config.temporaryPasswordTtlHours })
  if (admin.created) {
    app.log.info({ email: admin.email }, 'created the first admin')
    if (admin.generatedPassword) {
      // Printed once, outside the structured log; it must be changed at first login.
      process.stdout.write(`\n  First admin: ${admin.email}\n  Temporary password: ${admin.generatedPassword}\n  (shown once; you will be asked to change it)\n\n`)
    }
  }

  let closing = false
  const shutdown = (signal: string) => {
    if (closing) return
    closing = true
    app.log.info({ signal }, 'shutting down: finishing in-flight requests')
    const force = setTimeout(() => process.exit(1), 10000)
    force.unref()
    app.close().then(() => process.exit(0), (err: unknown) => {
      app.log.error({ err }, 'error during shutdown')
      process.exit(1)
    })
  }
  process.on('SIGTERM', shutdown)
  process.on('SIGINT', shutdown)

  const address = await app.listen({ port: config.port, host: config.host })
  const where = embedded ? `embedded DynamoDB in ${path.resolve(config.dataDir, 'dynamodb')}` : `DynamoDB at ${config.dynamodbEndpoint}`
  app.log.info(`API at ${address}/api, docs at ${address}/docs, console at ${address}/console/ (${where})`)
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    console.error(err.message)
  } else {
    console.error(err)
  }
  process.exit(1)
})
