import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { routes } from '../../../openapi/generated/routes.js'
import { toNotificationChannelDto } from '../../domain/notifications.js'
import { etagOf, versionFromIfMatch, withEtag } from '../../lib/etag.js'
import { noContent } from '../../lib/http.js'
import type { NotificationsRepository } from './notifications.repository.js'
import { createNotificationsService, type NotificationsOptions } from './notifications.service.js'
import { mapPage } from '../../db/pagination.js'

/** The module's repository and the options of its sender (key, loopback rule, time-out, console URL). */
export interface NotificationsModuleOptions extends NotificationsOptions {
  channels: NotificationsRepository
}

/** Notification channels: CRUD, secret rotation, test notifications (issue 19). */
const notificationsModule: FastifyPluginAsyncTypebox<NotificationsModuleOptions> = async (app, opts) => {
  const { channels, ...options } = opts
  const service = createNotificationsService(channels, options)

  app.route({
    ...routes.listNotificationChannels,
    handler: async (request) => {
      const { limit = 20, cursor } = request.query
      const page = await service.list({ limit, cursor })
      return mapPage(page, toNotificationChannelDto)
    }
  })

  app.route({
    ...routes.createNotificationChannel,
    handler: async (request, reply) => {
      const { channel, signingSecret } = await service.create(request.body)
      reply.code(201).header('etag', etagOf(channel.version)).header('location', `/api/config/notification-channels/${channel.id}`)
      return { channel: toNotificationChannelDto(channel), ...(signingSecret ? { signing_secret: signingSecret } : {}) }
    }
  })

  app.route({
    ...routes.getNotificationChannel,
    handler: async (request, reply) => {
      const channel = await service.get(request.params.id)
      return withEtag(reply, channel, toNotificationChannelDto)
    }
  })

  app.route({
    ...routes.updateNotificationChannel,
    handler: async (request, reply) => {
      const channel = await service.update(request.params.id, request.body, versionFromIfMatch(request.headers['if-match']))
      return withEtag(reply, channel, toNotificationChannelDto)
    }
  })

  app.route({
    ...routes.deleteNotificationChannel,
    handler: async (request, reply) => {
      await service.remove(request.params.id)
      return noContent(reply)
    }
  })

  app.route({
    ...routes.rotateNotificationChannelSecret,
    handler: async (request, reply) => {
      const { channel, signingSecret } = await service.rotateSecret(request.params.id)
      reply.header('etag', etagOf(channel.version)).header('cache-control', 'no-store')
      return { signing_secret: signingSecret, secret_prefix: channel.secret_prefix ?? signingSecret.slice(0, 12), previous_secret_expires_at: channel.previous_secret_expires_at ?? channel.updated_at }
    }
  })

  app.route({
    ...routes.testNotificationChannel,
    handler: async (request) => service.test(request.params.id)
  })
}

export default notificationsModule
