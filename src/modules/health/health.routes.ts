import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { routes } from '../../../openapi/generated/routes.js'

const startedAt = Date.now()
const VERSION = process.env.npm_package_version ?? '0.1.0'

/** Liveness and database readiness; 503 (same body) when the database does not answer. */
const healthModule: FastifyPluginAsyncTypebox = async (app) => {
  app.route({
    ...routes.getHealth,
    logLevel: 'warn',
    handler: async (_request, reply) => {
      let database: { status: 'ok' | 'unavailable', latency_ms: number }
      try {
        database = { status: 'ok', latency_ms: Math.round((await app.db.ping()) * 100) / 100 }
      } catch (err) {
        app.log.warn({ err }, 'database health check failed')
        database = { status: 'unavailable', latency_ms: 0 }
      }
      const ok = database.status === 'ok'
      return reply.code(ok ? 200 : 503).send({
        status: ok ? 'ok' : 'degraded',
        database,
        version: VERSION,
        uptime_seconds: Math.round((Date.now() - startedAt) / 1000)
      })
    }
  })
}

export default healthModule
