import type { DynamoDB } from '@aws-sdk/client-dynamodb'
import { defineMetaModel } from './meta.model.js'
import { defineUsersModel } from '../modules/users/users.model.js'
import { defineAuthModel } from '../modules/auth/auth.model.js'
import { defineCommentsModel, defineTaskHistoryModel, defineTasksModel } from '../modules/tasks/tasks.model.js'
import { defineEventsModel } from '../modules/events/events.model.js'
import { defineAwsAccountsModel } from '../modules/settings/settings.model.js'
import { defineStatsModel } from '../modules/dashboard/stats.model.js'

/**
 * Every table of the service, as Dynamoose models. Dynamoose keeps a process-wide model
 * registry, so each prefix is defined once and reused when the app is built again.
 */
const cache = new Map<string, ReturnType<typeof define>>()

function define (prefix: string) {
  return {
    users: defineUsersModel(prefix),
    auth: defineAuthModel(prefix),
    meta: defineMetaModel(prefix),
    tasks: defineTasksModel(prefix),
    comments: defineCommentsModel(prefix),
    taskHistory: defineTaskHistoryModel(prefix),
    events: defineEventsModel(prefix),
    awsAccounts: defineAwsAccountsModel(prefix),
    stats: defineStatsModel(prefix)
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

/**
 * Makes the models usable: creates the tables that do not exist yet (when `create`), waits
 * until they are active, and initializes Dynamoose's table objects without further calls.
 */
export async function initializeTables (client: DynamoDB, models: Models, opts: { create: boolean }): Promise<string[]> {
  const created: string[] = []
  // Independent tables: check (and create) them in parallel, it shortens start-up.
  await Promise.all(Object.values(models).map(async (model) => {
    const table = model.table()
    if (opts.create && !(await tableExists(client, table.name))) {
      try {
        await table.create()
        created.push(table.name)
      } catch (err) {
        // Another instance created it in the meantime.
        if ((err as { name?: string }).name !== 'ResourceInUseException') throw err
      }
      for (let i = 0; i < 600; i++) {
        const { Table } = await client.describeTable({ TableName: table.name })
        if (Table?.TableStatus === 'ACTIVE' && (Table.GlobalSecondaryIndexes ?? []).every(g => g.IndexStatus === 'ACTIVE')) break
        await new Promise(resolve => setTimeout(resolve, 100))
      }
    }
    await table.initialize()
  }))
  return created
}

async function tableExists (client: DynamoDB, name: string): Promise<boolean> {
  try {
    await client.describeTable({ TableName: name })
    return true
  } catch (err) {
    if ((err as { name?: string }).name === 'ResourceNotFoundException') return false
    throw err
  }
}
