import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { routes } from '../../../openapi/generated/routes.js'
import { toNotificationChannelDto } from '../../domain/notifications.js'
import { etagOf, versionFromIfMatch, withEtag } from '../../lib/etag.js'
import { noContent } from '../../lib/http.js'
import type { NotificationsService } from './notifications.service.js'
import type { RulesService } from './rules.service.js'
import { toDeliveryDto, type DeliveryRepository } from './delivery.repository.js'
import { mapPage } from '../../db/pagination.js'
import { changedFields } from '../../domain/audit.js'
import type { NotificationChannel as ChannelDto, NotificationRule } from '../../../openapi/generated/schemas.js'

/** What the audit trail records of a channel's changes: from its public form (a Slack URL masked, no secret). */
const CHANNEL_FIELDS: Array<keyof ChannelDto & string> = ['name', 'type', 'url', 'enabled']
const channelTarget = (id: string | null) => ({ type: 'notification_channel' as const, id })
/** What it records of a rule's changes (a rule holds no secret). */
const RULE_FIELDS: Array<keyof NotificationRule & string> = ['name', 'enabled', 'channel_ids', 'kinds', 'min_severity', 'sources', 'account_ids']
const ruleTarget = (id: string | null) => ({ type: 'notification_rule' as const, id })

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
      const { channel, signingSecret } = await app.audit.guard(request, { action: 'notification_channel.create', target: channelTarget(null) }, async () => {
        const created = await service.create(request.body)
        return { result: created, target: channelTarget(created.channel.id), change: changedFields(null, toNotificationChannelDto(created.channel), CHANNEL_FIELDS) }
      })
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
      const before = toNotificationChannelDto(await service.get(request.params.id))
      const channel = await app.audit.guard(request, { action: 'notification_channel.update', target: channelTarget(before.id) }, async () => {
        const after = await service.update(request.params.id, request.body, versionFromIfMatch(request.headers['if-match']))
        return { result: after, change: changedFields(before, toNotificationChannelDto(after), CHANNEL_FIELDS) }
      })
      return withEtag(reply, channel, toNotificationChannelDto)
    }
  })

  app.route({
    ...routes.deleteNotificationChannel,
    handler: async (request, reply) => {
      const before = toNotificationChannelDto(await service.get(request.params.id))
      await app.audit.guard(request, { action: 'notification_channel.delete', target: channelTarget(before.id) }, async () => {
        await service.remove(request.params.id)
        return { result: undefined, change: changedFields(before, null, CHANNEL_FIELDS) }
      })
      return noContent(reply)
    }
  })

  app.route({
    ...routes.rotateNotificationChannelSecret,
    handler: async (request, reply) => {
      // The new secret is the response's: the record says that it was rotated, not to what.
      const { channel, signingSecret } = await app.audit.guard(request, { action: 'notification_channel.rotate_secret', target: channelTarget(request.params.id) }, async () => ({
        result: await service.rotateSecret(request.params.id)
      }))
      reply.header('etag', etagOf(channel.version)).header('cache-control', 'no-store')
      return { signing_secret: signingSecret, secret_prefix: channel.secret_prefix ?? signingSecret.slice(0, 12), previous_secret_expires_at: channel.previous_secret_expires_at ?? channel.updated_at }
    }
  })

  app.route({
    ...routes.testNotificationChannel,
    handler: async (request) => {
      const result = await service.test(request.params.id)
      await app.audit.note(request, { action: 'notification_channel.test', outcome: result.ok ? 'success' : 'failure', target: channelTarget(request.params.id), reason: result.ok ? null : result.error_code ?? 'failed' })
      return result
    }
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
      const rule = await app.audit.guard(request, { action: 'notification_rule.create', target: ruleTarget(null) }, async () => {
        const created = await rules.create(request.body)
        return { result: created, target: ruleTarget(created.id), change: changedFields(null, created, RULE_FIELDS) }
      })
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
    handler: async (request, reply) => {
      const before = await rules.get(request.params.id)
      const rule = await app.audit.guard(request, { action: 'notification_rule.update', target: ruleTarget(before.id) }, async () => {
        const after = await rules.update(request.params.id, request.body, versionFromIfMatch(request.headers['if-match']))
        return { result: after, change: changedFields(before, after, RULE_FIELDS) }
      })
      return withEtag(reply, rule, r => r)
    }
  })

  app.route({
    ...routes.deleteNotificationRule,
    handler: async (request, reply) => {
      const before = await rules.get(request.params.id)
      await app.audit.guard(request, { action: 'notification_rule.delete', target: ruleTarget(before.id) }, async () => {
        await rules.remove(request.params.id)
        return { result: undefined, change: changedFields(before, null, RULE_FIELDS) }
      })
      return noContent(reply)
    }
  })
}

export default notificationsModule
