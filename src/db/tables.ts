import type { DynamoDB } from '@aws-sdk/client-dynamodb'

/** What table initialisation needs of a Dynamoose model. */
export interface TableModel {
  table: () => { name: string, create: () => Promise<unknown>, initialize: () => Promise<unknown> }
}

/**
 * Makes the models usable: creates the tables that do not exist yet (when `create`), waits
 * until they are active, and initializes Dynamoose's table objects without further calls.
 */
export async function initializeTables (client: DynamoDB, models: Record<string, TableModel>, opts: { create: boolean }): Promise<string[]> {
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
