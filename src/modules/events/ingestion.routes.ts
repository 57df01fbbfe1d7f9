import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { routes } from '../../../openapi/generated/routes.js'
import type { MonitoringSettings } from '../../domain/monitoring-settings.js'
import type { EventsRepository } from './events.repository.js'
import type { IngestionHealthRepository } from './ingestion-health.repository.js'
import { createIngestionService } from './ingestion.service.js'
import type { NotifyGate } from '../../domain/notification-delivery.js'

/** One EventBridge event can be 256 KB; a batch of them needs more than the default limit. */
const INGEST_BODY_LIMIT = 1024 * 1024

/** The events and ingestion-health repositories, and the settings module's monitoring settings (given by app.ts). */
export interface IngestionModuleOptions {
  events: EventsRepository
  ingestionHealth: IngestionHealthRepository
  settings: { getCached: () => Promise<MonitoringSettings> }
  /** Whether a change needs notifying (the notifications module's rules). */
  notify: NotifyGate
}

/**
 * `POST /api/events/ingest`, authenticated with an AWS account's API key. It has its own JSON
 * parser (this plugin is encapsulated): AWS's `detail` is data, and keys such as `__proto__` (a
 * legal tag key) are kept as own properties, never refused. JSON.parse defines own properties
 * and never touches a prototype.
 */
const ingestionModule: FastifyPluginAsyncTypebox<IngestionModuleOptions> = async (app, opts) => {
  const service = createIngestionService({
    repo: opts.events,
    health: opts.ingestionHealth,
    settings: opts.settings,
    stats: app.stats,
    onHealthError: (err, account) => app.log.warn({ err, aws_account: account }, 'ingestion health counters not updated'),
    notify: opts.notify
  })

  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: INGEST_BODY_LIMIT }, (_request, body, done) => {
    const text = body as string
    if (text.trim() === '') return done(null, undefined)
    try {
      done(null, JSON.parse(text))
    } catch (err) {
      done(Object.assign(new Error(`Body is not valid JSON: ${(err as Error).message}`), { statusCode: 400, code: 'FST_ERR_CTP_INVALID_JSON_BODY' }), undefined)
    }
  })

  // The service checks the body against the schema its shape calls for (see `ingest`).
  const { body: _union, ...schema } = routes.ingestEvents.schema
  app.route({
    ...routes.ingestEvents,
    schema,
    config: { ...routes.ingestEvents.config, rateLimitClass: 'ingest' },
    bodyLimit: INGEST_BODY_LIMIT,
    handler: async (request, reply) => {
      const receivedAt = Date.now()
      return reply.code(202).send(await service.ingest(request.awsAccount!, request.body, receivedAt))
    }
  })
}

export default ingestionModule
