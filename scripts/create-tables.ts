/**
 * Creates the service's tables (with their GSIs) on any DynamoDB endpoint:
 *   DYNAMODB_ENDPOINT=http://localhost:8000 npm run create-tables
 *   DYNAMODB_ENDPOINT=aws AWS_REGION=eu-west-1 TABLE_PREFIX=prod- npm run create-tables
 * Without DYNAMODB_ENDPOINT it prepares the embedded database in DATA_DIR.
 */
import '../src/env.js'
import path from 'node:path'
import dynamoose from 'dynamoose'
import { loadConfig } from '../src/config.js'
import { createDynamoClient } from '../src/db/client.js'
import { initializeTables } from '../src/db/tables.js'
import { getModels } from '../src/data.js'
import { startEmbeddedDynamo } from '../src/embedded-dynamodb.js'

const config = loadConfig()
const embedded = config.dynamodbEndpoint ? undefined : await startEmbeddedDynamo({ path: path.join(config.dataDir, 'dynamodb') })
const client = createDynamoClient(config.dynamodbEndpoint ?? embedded!.endpoint, config.region)
dynamoose.aws.ddb.set(client)
try {
  const models = getModels(config.tablePrefix)
  const created = await initializeTables(client, models, { create: true })
  const all = Object.values(models).map(m => m.table().name)
  console.log(created.length ? `created: ${created.join(', ')}` : 'all tables exist')
  console.log(`tables: ${all.join(', ')}`)
} finally {
  client.destroy()
  await embedded?.close()
}
