import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { routes } from '../../../openapi/generated/routes.js'
import type { EventBridgeEnvelope, IngestResult } from '../../../openapi/generated/schemas.js'
import { DomainError, type ErrorCode } from '../../domain/errors.js'
import { toEventDto } from '../../domain/events.js'
import { toTaskDto } from '../../domain/tasks.js'
import { etagOf } from '../../lib/etag.js'
import { noContent } from '../../lib/http.js'
import { createEventsService } from './events.service.js'

/** One EventBridge event can be 256 KB; a batch of them needs more than the default limit. */
const INGEST_BODY_LIMIT = 1024 * 1024

const eventsModule: FastifyPluginAsyncTypebox = async (app) => {
  const { events, tasks, users, settings } = app.db.repos
  const service = createEventsService(events, tasks, users, app.stats)

  app.route({
    ...routes.ingestEvents,
    bodyLimit: INGEST_BODY_LIMIT,
    handler: async (request, reply) => {
      const account = request.awsAccount!
      const body = request.body
      const batch: EventBridgeEnvelope[] = 'events' in body ? body.events : [body]
      const current = await settings.getCached()
      const results = await service.ingestBatch(account, batch, current)
      const single = !('events' in body) ? results[0] : undefined
      if (single?.action === 'rejected' && single.error) {
        // 429: the same envelope is in flight elsewhere; EventBridge retries a 429 later.
        throw new DomainError(single.error.code as ErrorCode, single.error.detail, single.error.status === 429 ? { retryAfterSeconds: 5 } : {})
      }
      const count = (...actions: Array<IngestResult['action']>) => results.filter(r => actions.includes(r.action)).length
      return reply.code(202).send({
        accepted: count('created', 'updated', 'resolved', 'ignored'),
        duplicates: count('duplicate'),
        rejected: count('rejected'),
        results
      })
    }
  })

  app.route({
    ...routes.listEvents,
    handler: async (request) => {
      const { limit = 20, time_field: timeField = 'occurred_at', ...filters } = request.query
      const page = await service.list({ ...filters, limit, time_field: timeField })
      return { items: page.items.map(toEventDto), next_cursor: page.next_cursor }
    }
  })

  app.route({
    ...routes.getEvent,
    handler: async (request) => toEventDto(await service.get(request.params.id))
  })

  app.route({
    ...routes.deleteEvent,
    handler: async (request, reply) => {
      await service.remove(request.actor!, request.params.id)
      return noContent(reply)
    }
  })

  app.route({
    ...routes.createTaskFromEvent,
    handler: async (request, reply) => {
      const task = await service.createTask(request.actor!, request.params.id, request.body)
      reply.code(201).header('etag', etagOf(task.version)).header('location', `/api/tasks/${task.id}`)
      return toTaskDto(task)
    }
  })
}

export default eventsModule
