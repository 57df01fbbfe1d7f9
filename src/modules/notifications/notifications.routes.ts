import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { routes } from '../../../openapi/generated/routes.js'
import { toNotificationChannelDto } from '../../domain/notifications.js'
import { etagOf, versionFromIfMatch, withEtag } from '../../lib/etag.js'
import { noContent } from '../../lib/http.js'
import type { NotificationsService } from './notifications.service.js'
import type { RulesService } from './rules.service.js'
import { toDeliveryDto, type DeliveryRepository } from './delivery.repository.js'
import { mapPage } from '../../db/pagination.js'

/** The channels and rules services and the delivery log (created by app.ts, which also runs the worker). */
export interface NotificationsModuleOptions {
  channels: NotificationsService
  rules: RulesService
  deliveries: Pick<DeliveryRepository, 'deliveries'>
}

/** Notification channels (CRUD, secret rotation, test notifications, delivery log) and rules (issue 19). */
const notificationsModule: FastifyPluginAsyncTypebox<NotificationsModuleOptions> = async (app, opts) => {
  const { channels: service, rules } = opts

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

  app.route({
    ...routes.listNotificationDeliveries,
    handler: async (request) => {
      const { limit = 20, cursor } = request.query
      await service.get(request.params.id)
      return mapPage(await opts.deliveries.deliveries(request.params.id, { limit, cursor }), toDeliveryDto)
    }
  })

  app.route({
    ...routes.listNotificationRules,
    handler: async (request) => {
      const { limit = 20, cursor } = request.query
      return rules.list({ limit, cursor })
    }
  })

  app.route({
    ...routes.createNotificationRule,
    handler: async (request, reply) => {
      const rule = await rules.create(request.body)
      reply.code(201).header('etag', etagOf(rule.version)).header('location', `/api/config/notification-rules/${rule.id}`)
      return rule
    }
  })

  app.route({
    ...routes.getNotificationRule,
    handler: async (request, reply) => withEtag(reply, await rules.get(request.params.id), r => r)
  })

  app.route({
    ...routes.updateNotificationRule,
    handler: async (request, reply) => withEtag(reply, await rules.update(request.params.id, request.body, versionFromIfMatch(request.headers['if-match'])), r => r)
  })

  app.route({
    ...routes.deleteNotificationRule,
    handler: async (request, reply) => {
      await rules.remove(request.params.id)
      return noContent(reply)
    }
  })
}

export default notificationsModule
