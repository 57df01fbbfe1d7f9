import fp from 'fastify-plugin'
import dynamoose from 'dynamoose'
import type { DynamoDB } from '@aws-sdk/client-dynamodb'
import { createDynamoClient } from '../db/client.js'
import { initializeTables, type TableModel } from '../db/tables.js'
import { createCursorCodec, type CursorCodec } from '../db/pagination.js'
import { createRawClient, type RawClient } from '../db/raw.js'

/** What a repository is built on: the client, the bare-client toolkit and the cursor codec. */
export interface DataContext {
  client: DynamoDB
  raw: RawClient
  cursors: CursorCodec
}

declare module 'fastify' {
  interface FastifyInstance {
    db: DataContext & {
      /** Round-trip time of a cheap read, or throws when the database is unreachable. */
      ping: () => Promise<number>
    }
  }
}

export interface DynamoPluginOptions {
  /** A DynamoDB-compatible endpoint URL, or 'aws'. */
  endpoint: string
  region: string
  /** Create missing tables at start-up (the default for anything but real AWS). */
  createTables: boolean
  /** Signs list cursors. */
  cursorSecret: string
  /** The tables of every module (src/data.ts), initialised (and created) at registration. */
  models: Record<string, TableModel>
  /** The table `ping` reads the description of. */
  pingModel: TableModel
}

/**
 * The database connection of the app. It knows no module: the composition root (src/data.ts)
 * gives it the modules' tables and builds their repositories on `app.db`.
 */
export default fp<DynamoPluginOptions>(async (app, opts) => {
  const client = createDynamoClient(opts.endpoint, opts.region)
  // Dynamoose's client is process-wide; the app owns it for its lifetime.
  dynamoose.aws.ddb.set(client)
  const created = await initializeTables(client, opts.models, { create: opts.createTables })
  if (created.length) app.log.info({ tables: created }, 'created tables')
  const pingTable = opts.pingModel.table().name
  app.decorate('db', {
    client,
    raw: createRawClient(client),
    cursors: createCursorCodec(opts.cursorSecret),
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
