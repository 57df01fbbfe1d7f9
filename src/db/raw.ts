import type { AttributeValue, DynamoDB, QueryCommandInput } from '@aws-sdk/client-dynamodb'
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb'

/**
 * Reads through the bare SDK client, for the paths every request takes. Dynamoose costs
 * 1.1–1.5 ms of CPU per call (item conversion, and it formats a log message of every request
 * and response) against ~0.45 ms for the SDK alone (docs/performance.md). The items are
 * the ones the Dynamoose models write; each repository maps them with its own `to…`.
 */
export interface RawReader {
  /** Strongly consistent GetItem; null when absent. */
  get: <T>(table: string, key: Record<string, unknown>) => Promise<T | null>
  /** One Query call; the key to continue from, unmarshalled (as Dynamoose's `lastKey`). */
  query: <T>(input: Omit<QueryCommandInput, 'ExclusiveStartKey' | 'ExpressionAttributeValues'> & {
    values: Record<string, unknown>
    startKey?: Record<string, unknown>
  }) => Promise<{ items: T[], lastKey: Record<string, unknown> | undefined }>
}

export function createRawReader (client: DynamoDB): RawReader {
  const key = (k: Record<string, unknown>): Record<string, AttributeValue> => marshall(k, { removeUndefinedValues: true })
  return {
    async get<T> (table: string, k: Record<string, unknown>): Promise<T | null> {
      const { Item } = await client.getItem({ TableName: table, Key: key(k), ConsistentRead: true })
      return Item ? unmarshall(Item) as T : null
    },
    async query<T> ({ values, startKey, ...input }: Parameters<RawReader['query']>[0]) {
      const res = await client.query({
        ...input,
        ExpressionAttributeValues: key(values),
        ...(startKey ? { ExclusiveStartKey: key(startKey) } : {})
      })
      return {
        items: (res.Items ?? []).map(item => unmarshall(item) as T),
        lastKey: res.LastEvaluatedKey ? unmarshall(res.LastEvaluatedKey) : undefined
      }
    }
  }
}
