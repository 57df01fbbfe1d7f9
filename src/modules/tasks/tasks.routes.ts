import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { routes } from '../../../openapi/generated/routes.js'
import { toTaskDto } from '../../domain/tasks.js'
import { versionFromIfMatch, withEtag } from '../../lib/etag.js'
import { noContent } from '../../lib/http.js'
import type { UserLookup } from '../../domain/users.js'
import type { TasksRepository } from './tasks.repository.js'
import { createTasksService, type EventLinks } from './tasks.service.js'
import { mapPage } from '../../db/pagination.js'
import type { NotifyGate } from '../../domain/notification-delivery.js'

/** The module's repository, and the ports to the users and events modules (given by app.ts). */
export interface TasksModuleOptions {
  tasks: TasksRepository
  users: UserLookup
  events: EventLinks
  /** Whether a change needs notifying (the notifications module's rules). */
  notify: NotifyGate
}

const tasksModule: FastifyPluginAsyncTypebox<TasksModuleOptions> = async (app, opts) => {
  const service = createTasksService(opts.tasks, opts.users, opts.events, app.stats, opts.notify)

  app.route({
    ...routes.listTasks,
    handler: async (request) => {
      const { limit = 20, ...filters } = request.query
      const page = await service.list(request.actor!, { limit, ...filters })
      return mapPage(page, toTaskDto)
    }
  })

  app.route({
    ...routes.getTask,
    handler: async (request, reply) => {
      const { task, history, comments, commentsCursor } = await service.get(request.params.id)
      return { ...withEtag(reply, task, toTaskDto), comments, comments_next_cursor: commentsCursor, status_history: history }
    }
  })

  app.route({
    ...routes.createTask,
    handler: async (request, reply) => {
      const task = await service.create(request.actor!, request.body)
      reply.code(201).header('location', `/api/tasks/${task.id}`)
      return withEtag(reply, task, toTaskDto)
    }
  })

  app.route({
    ...routes.updateTask,
    handler: async (request, reply) =>
      withEtag(reply, await service.update(request.actor!, request.params.id, request.body, versionFromIfMatch(request.headers['if-match'])), toTaskDto)
  })

  app.route({
    ...routes.updateTaskStatus,
    handler: async (request, reply) =>
      withEtag(reply, await service.changeStatus(request.actor!, request.params.id, request.body, versionFromIfMatch(request.headers['if-match'])), toTaskDto)
  })

  app.route({
    ...routes.deleteTask,
    handler: async (request, reply) => {
      await app.audit.guard(request, { action: 'task.delete', target: { type: 'task', id: request.params.id } }, async () => {
        const deleted = await service.remove(request.actor!, request.params.id)
        return { result: undefined, change: { deleted_at: { from: null, to: deleted.deleted_at ?? null } } }
      })
      return noContent(reply)
    }
  })

  app.route({
    ...routes.listTaskStatusHistory,
    handler: async (request) => {
      const { limit = 20, cursor } = request.query
      return service.listHistory(request.params.id, limit, cursor)
    }
  })

  app.route({
    ...routes.listTaskComments,
    handler: async (request) => {
      const { limit = 20, cursor } = request.query
      return service.listComments(request.params.id, limit, cursor)
    }
  })

  app.route({
    ...routes.addTaskComment,
    handler: async (request, reply) => {
      const comment = await service.addComment(request.actor!, request.params.id, request.body.body)
      reply.code(201).header('location', `/api/tasks/${comment.task_id}/comments`)
      return comment
    }
  })
}

export default tasksModule
