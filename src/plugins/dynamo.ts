import fp from 'fastify-plugin'
import dynamoose from 'dynamoose'
import type { DynamoDB } from '@aws-sdk/client-dynamodb'
import { createDynamoClient } from '../db/client.js'
import { initializeTables, getModels } from '../db/tables.js'
import { createCursorCodec } from '../db/pagination.js'
import { createRawClient } from '../db/raw.js'
import { createUsersRepository, type UsersRepository } from '../modules/users/users.repository.js'
import { createAuthRepository, type AuthRepository } from '../modules/auth/auth.repository.js'
import { createTasksRepository, type TasksRepository } from '../modules/tasks/tasks.repository.js'
import { createEventsRepository, type EventsRepository } from '../modules/events/events.repository.js'
import { createIngestionHealthRepository, type IngestionHealthRepository } from '../modules/events/ingestion-health.repository.js'
import { createAwsAccountsRepository, type AwsAccountsRepository } from '../modules/settings/aws-accounts.repository.js'
import { createMonitoringSettingsRepository, type MonitoringSettingsRepository } from '../modules/settings/monitoring-settings.repository.js'
import { createStatsRepository, type StatsRepository } from '../modules/dashboard/stats.repository.js'

export interface Repositories {
  users: UsersRepository
  auth: AuthRepository
  tasks: TasksRepository
  events: EventsRepository
  ingestionHealth: IngestionHealthRepository
  awsAccounts: AwsAccountsRepository
  settings: MonitoringSettingsRepository
  stats: StatsRepository
}

declare module 'fastify' {
  interface FastifyInstance {
    db: {
      client: DynamoDB
      repos: Repositories
      /** Round-trip time of a cheap read, or throws when the database is unreachable. */
      ping: () => Promise<number>
    }
  }
}

export interface DynamoPluginOptions {
  /** A DynamoDB-compatible endpoint URL, or 'aws'. */
  endpoint: string
  region: string
  tablePrefix: string
  /** Create missing tables at start-up (the default for anything but real AWS). */
  createTables: boolean
  /** Signs list cursors. */
  cursorSecret: string
  /** The caller cache of the users and auth repositories (see Config['authCache']). */
  authCache: { ttlMs: number, settleMs: number }
}

export default fp<DynamoPluginOptions>(async (app, opts) => {
  const client = createDynamoClient(opts.endpoint, opts.region)
  // Dynamoose's client is process-wide; the app owns it for its lifetime.
  dynamoose.aws.ddb.set(client)
  const models = getModels(opts.tablePrefix)
  const created = await initializeTables(client, models, { create: opts.createTables })
  if (created.length) app.log.info({ tables: created }, 'created tables')
  const cursors = createCursorCodec(opts.cursorSecret)
  const pingTable = models.meta.table().name
  const raw = createRawClient(client)
  app.decorate('db', {
    client,
    repos: {
      users: createUsersRepository(models.users, models.meta, cursors, raw, opts.authCache),
      auth: createAuthRepository(models.auth, raw, opts.authCache),
      tasks: createTasksRepository(models.tasks, models.comments, cursors, raw, models.taskHistory, client),
      events: createEventsRepository(models.events, models.meta, cursors, client, raw),
      ingestionHealth: createIngestionHealthRepository(client, raw, models.meta.table().name),
      awsAccounts: createAwsAccountsRepository(models.awsAccounts, models.meta, cursors),
      settings: createMonitoringSettingsRepository(models.meta),
      stats: createStatsRepository(models.stats, raw)
    },
    async ping () {
      const started = performance.now()
      await client.describeTable({ TableName: pingTable })
      return performance.now() - started
    }
  })
  app.addHook('onClose', async () => {
    client.destroy()
  })
}, { name: 'dynamo', dependencies: ['errors'] })
