import type { AttributeValue, DynamoDB, QueryCommandInput, ReturnValue } from '@aws-sdk/client-dynamodb'
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb'

/**
 * Reads (and a few hot writes) through the bare SDK client, for the paths every request takes. Dynamoose costs
 * 1.1–1.5 ms of CPU per call (item conversion, and it formats a log message of every request
 * and response) against ~0.45 ms for the SDK alone (docs/performance.md). The items are
 * the ones the Dynamoose models write; each repository maps them with its own `to…`.
 */
export interface RawClient {
  /** Strongly consistent GetItem; null when absent. */
  get: <T>(table: string, key: Record<string, unknown>) => Promise<T | null>
  /** One Query call; the key to continue from, unmarshalled (as Dynamoose's `lastKey`). */
  query: <T>(input: Omit<QueryCommandInput, 'ExclusiveStartKey' | 'ExpressionAttributeValues'> & {
    values: Record<string, unknown>
    startKey?: Record<string, unknown>
  }) => Promise<{ items: T[], lastKey: Record<string, unknown> | undefined }>
  /**
   * One UpdateItem. `names` are the expression's `#name`s (DynamoDB reserved words), `values`
   * its `:value`s. A false condition throws ConditionalCheckFailedException (see db/errors).
   */
  update: <T = Record<string, unknown>>(table: string, key: Record<string, unknown>, input: {
    update: string
    condition?: string
    names?: Record<string, string>
    values: Record<string, unknown>
    returnValues?: ReturnValue
  }) => Promise<T | undefined>
  /** One PutItem, conditional when `condition` is given. */
  put: (table: string, item: Record<string, unknown>, condition?: string) => Promise<void>
}

/** Plain values → attribute values, as Dynamoose stores them (undefined attributes left out). */
export const toAttributes = (item: Record<string, unknown>): Record<string, AttributeValue> => marshall(item, { removeUndefinedValues: true })

export function createRawClient (client: DynamoDB): RawClient {
  const key = toAttributes
  return {
    async get<T> (table: string, k: Record<string, unknown>): Promise<T | null> {
      const { Item } = await client.getItem({ TableName: table, Key: key(k), ConsistentRead: true })
      return Item ? unmarshall(Item) as T : null
    },
    async query<T> ({ values, startKey, ...input }: Parameters<RawClient['query']>[0]) {
      const res = await client.query({
        ...input,
        ExpressionAttributeValues: key(values),
        ...(startKey ? { ExclusiveStartKey: key(startKey) } : {})
      })
      return {
        items: (res.Items ?? []).map(item => unmarshall(item) as T),
        lastKey: res.LastEvaluatedKey ? unmarshall(res.LastEvaluatedKey) : undefined
      }
    },
    async update<T> (table: string, k: Record<string, unknown>, input: Parameters<RawClient['update']>[2]) {
      const res = await client.updateItem({
        TableName: table,
        Key: key(k),
        UpdateExpression: input.update,
        ...(input.condition ? { ConditionExpression: input.condition } : {}),
        ...(input.names ? { ExpressionAttributeNames: input.names } : {}),
        ExpressionAttributeValues: key(input.values),
        ...(input.returnValues ? { ReturnValues: input.returnValues } : {})
      })
      return res.Attributes ? unmarshall(res.Attributes) as T : undefined
    },
    async put (table: string, item: Record<string, unknown>, condition?: string) {
      await client.putItem({ TableName: table, Item: key(item), ...(condition ? { ConditionExpression: condition } : {}) })
    }
  }
}
