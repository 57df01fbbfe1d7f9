/**
 * The composition of the data layer (outer ring, like app.ts): every module's tables and
 * repositories, put together here and nowhere else. The shared ring (src/db, src/plugins)
 * imports no module; each module defines its own models and repository; app.ts hands each
 * module and plugin the narrow ports it needs from these repositories.
 */
import type { DataContext } from './plugins/dynamo.js'
import { Meta } from './db/meta.model.js'
import { Users } from './modules/users/users.model.js'
import { createUsersRepository, type UsersRepository } from './modules/users/users.repository.js'
import { Auth } from './modules/auth/auth.model.js'
import { createAuthRepository, type AuthRepository } from './modules/auth/auth.repository.js'
import { Comments, TaskHistory, Tasks } from './modules/tasks/tasks.model.js'
import { createTasksRepository, type TasksRepository } from './modules/tasks/tasks.repository.js'
import { Events } from './modules/events/events.model.js'
import { createEventsRepository, type EventsRepository } from './modules/events/events.repository.js'
import { createIngestionHealthRepository, type IngestionHealthRepository } from './modules/events/ingestion-health.repository.js'
import { AwsAccounts } from './modules/settings/settings.model.js'
import { createAwsAccountsRepository, type AwsAccountsRepository } from './modules/settings/aws-accounts.repository.js'
import { createMonitoringSettingsRepository, type MonitoringSettingsRepository } from './modules/settings/monitoring-settings.repository.js'
import { Stats } from './modules/dashboard/stats.model.js'
import { createStatsRepository, type StatsRepository } from './modules/dashboard/stats.repository.js'
import { Notifications } from './modules/notifications/notifications.model.js'
import { createNotificationsRepository, type NotificationsRepository } from './modules/notifications/notifications.repository.js'
import { createRulesRepository, type RulesRepository } from './modules/notifications/rules.repository.js'
import { createDeliveryRepository, type DeliveryRepository } from './modules/notifications/delivery.repository.js'
import { Audit } from './modules/audit/audit.model.js'
import { createAuditRepository, type AuditRepository } from './modules/audit/audit.repository.js'

/**
 * Every table of the service, as Dynamoose models. Dynamoose keeps a process-wide model
 * registry, so each prefix is defined once and reused when the app is built again.
 */
const cache = new Map<string, ReturnType<typeof define>>()

function define (prefix: string) {
  return {
    users: Users.model(prefix),
    auth: Auth.model(prefix),
    meta: Meta.model(prefix),
    tasks: Tasks.model(prefix),
    comments: Comments.model(prefix),
    taskHistory: TaskHistory.model(prefix),
    events: Events.model(prefix),
    awsAccounts: AwsAccounts.model(prefix),
    stats: Stats.model(prefix),
    notifications: Notifications.model(prefix),
    audit: Audit.model(prefix)
  }
}

export type Models = ReturnType<typeof define>

export function getModels (prefix: string): Models {
  let models = cache.get(prefix)
  if (!models) {
    models = define(prefix)
    cache.set(prefix, models)
  }
  return models
}

export interface Repositories {
  users: UsersRepository
  auth: AuthRepository
  tasks: TasksRepository
  events: EventsRepository
  ingestionHealth: IngestionHealthRepository
  awsAccounts: AwsAccountsRepository
  settings: MonitoringSettingsRepository
  stats: StatsRepository
  notifications: NotificationsRepository
  notificationRules: RulesRepository
  notificationDeliveries: DeliveryRepository
  audit: AuditRepository
}

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The repositories, for the composition root, the operator scripts and the tests. Modules
     * and plugins never read it: app.ts passes each the ports it needs.
     */
    repos: Repositories
  }
}

/** The repositories over the tables of `models`. */
export function createRepositories (db: DataContext, models: Models, authCache: { ttlMs: number, settleMs: number }, audit: { retentionDays: number } = { retentionDays: 400 }): Repositories {
  const { client, raw, cursors } = db
  return {
    users: createUsersRepository(models.users, models.meta, cursors, raw, authCache),
    auth: createAuthRepository(models.auth, raw, authCache),
    tasks: createTasksRepository(models.tasks, models.comments, cursors, raw, models.taskHistory, client),
    events: createEventsRepository(models.events, models.meta, cursors, client, raw),
    ingestionHealth: createIngestionHealthRepository(client, raw, models.meta.table().name),
    awsAccounts: createAwsAccountsRepository(models.awsAccounts, models.meta, cursors, raw, authCache),
    settings: createMonitoringSettingsRepository(models.meta, raw),
    stats: createStatsRepository(models.stats, raw, client),
    notifications: createNotificationsRepository(models.notifications, cursors, raw),
    notificationRules: createRulesRepository(models.notifications.table().name, cursors, raw),
    notificationDeliveries: createDeliveryRepository(models.notifications.table().name, cursors, raw),
    audit: createAuditRepository(models.audit, cursors, raw, audit)
  }
}
