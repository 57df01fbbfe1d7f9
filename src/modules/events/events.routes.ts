import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { routes } from '../../../openapi/generated/routes.js'
import { toEventDto, toEventListItem } from '../../domain/events.js'
import { toTaskDto } from '../../domain/tasks.js'
import type { UserLookup } from '../../domain/users.js'
import { etagOf } from '../../lib/etag.js'
import { noContent } from '../../lib/http.js'
import type { EventsRepository } from './events.repository.js'
import { createEventsService, type TaskStore } from './events.service.js'
import { mapPage } from '../../db/pagination.js'
import type { NotifyGate } from '../../domain/notification-delivery.js'

/** The module's repository, and the ports to other modules it uses (given by app.ts). */
export interface EventsModuleOptions {
  events: EventsRepository
  tasks: TaskStore
  users: UserLookup
  /** Whether a change needs notifying (the notifications module's rules). */
  notify: NotifyGate
}

/** Reading, deleting and working events; ingestion is ingestion.routes.ts. */
const eventsModule: FastifyPluginAsyncTypebox<EventsModuleOptions> = async (app, { events, tasks, users, notify }) => {
  const service = createEventsService(events, tasks, users, app.stats, notify)

  app.route({
    ...routes.listEvents,
    handler: async (request) => {
      const { limit = 20, time_field: timeField = 'occurred_at', ...filters } = request.query
      const page = await service.list({ ...filters, limit, time_field: timeField })
      return mapPage(page, toEventListItem)
    }
  })

  app.route({
    ...routes.getEvent,
    handler: async (request) => toEventDto(await service.get(request.params.id))
  })

  app.route({
    ...routes.deleteEvent,
    handler: async (request, reply) => {
      await app.audit.guard(request, { action: 'event.delete', target: { type: 'event', id: request.params.id } }, async () => {
        const deleted = await service.remove(request.actor!, request.params.id)
        return { result: undefined, change: { deleted_at: { from: null, to: deleted.deleted_at } } }
      })
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
