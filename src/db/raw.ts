import type { AttributeValue, DynamoDB, ReturnValue } from '@aws-sdk/client-dynamodb'
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb'
import { compile, type Condition, type KeyCondition, type Update } from './expressions.js'

/**
 * The data toolkit: every read and write of the repositories, through the bare SDK client.
 * Dynamoose defines the models (tables, keys, indexes); its I/O costs 3–14 times the CPU of
 * these calls (docs/architecture.md, the dialect bench). Every expression is a value of
 * src/db/expressions.ts, compiled here; the items are the ones the model files describe, and
 * each repository maps them with its own `to…`.
 */
export interface RawClient {

  /** GetItem (strongly consistent unless `consistent: false`); null when absent. */
  getItem: <T>(table: string, key: Record<string, unknown>, opts?: { consistent?: boolean, attributes?: string[] }) => Promise<T | null>
  /** One Query call (a page); `lastKey` to continue from, unmarshalled. */
  queryPage: <T>(input: {
    table: string
    index?: string | undefined
    key: KeyCondition
    filter?: Condition | undefined
    limit?: number | undefined
    /** Sort key descending (newest first) when false. */
    forward?: boolean | undefined
    startKey?: Record<string, unknown> | undefined
    consistent?: boolean | undefined
    attributes?: string[] | undefined
  }) => Promise<{ items: T[], lastKey: Record<string, unknown> | undefined }>
  /** PutItem; a false `condition` throws ConditionalCheckFailedException (db/errors). */
  putItem: (table: string, item: Record<string, unknown>, opts?: { condition?: Condition | undefined }) => Promise<void>
  /** UpdateItem; a false `condition` throws ConditionalCheckFailedException (db/errors). */
  updateItem: <T = Record<string, unknown>>(table: string, key: Record<string, unknown>, change: Update, opts?: { condition?: Condition | undefined, returnValues?: ReturnValue | undefined }) => Promise<T | undefined>
  /** DeleteItem; a false `condition` throws ConditionalCheckFailedException (db/errors). */
  deleteItem: (table: string, key: Record<string, unknown>, opts?: { condition?: Condition | undefined }) => Promise<void>
  /** Maintenance only (recounts, exports): every item of a table, page by page. Never on a request path. */
  scanAll: <T>(table: string, opts?: { attributes?: string[] }) => AsyncGenerator<T>
  /**
   * Maintenance only (the retention sweep of the embedded stand-in): one Scan call of at most
   * `limit` items read, `filter` applied to them (a page can be short or empty and still have
   * a `lastKey`). Never on a request path.
   */
  scanPage: <T>(table: string, opts: { filter?: Condition | undefined, limit: number, startKey?: Record<string, unknown> | undefined, attributes?: string[] | undefined }) => Promise<{ items: T[], lastKey: Record<string, unknown> | undefined }>
}

/** The alias maps of a compiled expression, as the SDK wants them (none when empty). */
function aliases (names: Record<string, string>, values: Record<string, unknown>) {
  return {
    ...(Object.keys(names).length ? { ExpressionAttributeNames: names } : {}),
    ...(Object.keys(values).length ? { ExpressionAttributeValues: toAttributes(values) } : {})
  }
}

/** Plain values → attribute values, as Dynamoose stores them (undefined attributes left out). */
export const toAttributes = (item: Record<string, unknown>): Record<string, AttributeValue> => marshall(item, { removeUndefinedValues: true })

export function createRawClient (client: DynamoDB): RawClient {
  const key = toAttributes
  return {
    async getItem<T> (table: string, k: Record<string, unknown>, opts: { consistent?: boolean, attributes?: string[] } = {}): Promise<T | null> {
      const projection = opts.attributes?.length ? compileProjection(opts.attributes) : undefined
      const { Item } = await client.getItem({
        TableName: table,
        Key: key(k),
        ConsistentRead: opts.consistent ?? true,
        ...(projection ? { ProjectionExpression: projection.expression, ExpressionAttributeNames: projection.names } : {})
      })
      return Item ? unmarshall(Item) as T : null
    },
    async queryPage<T> (input: Parameters<RawClient['queryPage']>[0]) {
      const c = compile({ key: input.key, condition: input.filter })
      const projection = input.attributes?.length ? compileProjection(input.attributes, c.names) : undefined
      const res = await client.query({
        TableName: input.table,
        ...(input.index ? { IndexName: input.index } : {}),
        KeyConditionExpression: c.key,
        ...(c.condition ? { FilterExpression: c.condition } : {}),
        ...(projection ? { ProjectionExpression: projection.expression } : {}),
        ...aliases(c.names, c.values),
        ...(input.limit !== undefined ? { Limit: input.limit } : {}),
        ...(input.forward === false ? { ScanIndexForward: false } : {}),
        ...(input.consistent ? { ConsistentRead: true } : {}),
        ...(input.startKey ? { ExclusiveStartKey: key(input.startKey) } : {})
      })
      return {
        items: (res.Items ?? []).map(item => unmarshall(item) as T),
        lastKey: res.LastEvaluatedKey ? unmarshall(res.LastEvaluatedKey) : undefined
      }
    },
    async putItem (table: string, item: Record<string, unknown>, opts: { condition?: Condition | undefined } = {}) {
      const c = opts.condition ? compile({ condition: opts.condition }) : undefined
      await client.putItem({ TableName: table, Item: key(item), ...(c ? { ConditionExpression: c.condition, ...aliases(c.names, c.values) } : {}) })
    },
    async updateItem<T> (table: string, k: Record<string, unknown>, change: Update, opts: { condition?: Condition | undefined, returnValues?: ReturnValue | undefined } = {}) {
      const c = compile({ update: change, condition: opts.condition })
      const res = await client.updateItem({
        TableName: table,
        Key: key(k),
        UpdateExpression: c.update,
        ...(c.condition ? { ConditionExpression: c.condition } : {}),
        ...aliases(c.names, c.values),
        ...(opts.returnValues ? { ReturnValues: opts.returnValues } : {})
      })
      return res.Attributes ? unmarshall(res.Attributes) as T : undefined
    },
    async * scanAll<T> (table: string, opts: { attributes?: string[] } = {}): AsyncGenerator<T> {
      const projection = opts.attributes?.length ? compileProjection(opts.attributes) : undefined
      let startKey: Record<string, AttributeValue> | undefined
      do {
        const res = await client.scan({
          TableName: table,
          Limit: 500,
          ...(projection ? { ProjectionExpression: projection.expression, ExpressionAttributeNames: projection.names } : {}),
          ...(startKey ? { ExclusiveStartKey: startKey } : {})
        })
        for (const item of res.Items ?? []) yield unmarshall(item) as T
        startKey = res.LastEvaluatedKey
      } while (startKey)
    },
    async scanPage<T> (table: string, opts: Parameters<RawClient['scanPage']>[1]) {
      const c = opts.filter ? compile({ condition: opts.filter }) : undefined
      const projection = opts.attributes?.length ? compileProjection(opts.attributes, c?.names) : undefined
      const res = await client.scan({
        TableName: table,
        Limit: opts.limit,
        ...(c ? { FilterExpression: c.condition } : {}),
        ...(projection ? { ProjectionExpression: projection.expression } : {}),
        ...aliases(c?.names ?? projection?.names ?? {}, c?.values ?? {}),
        ...(opts.startKey ? { ExclusiveStartKey: key(opts.startKey) } : {})
      })
      return {
        items: (res.Items ?? []).map(item => unmarshall(item) as T),
        lastKey: res.LastEvaluatedKey ? unmarshall(res.LastEvaluatedKey) : undefined
      }
    },
    async deleteItem (table: string, k: Record<string, unknown>, opts: { condition?: Condition | undefined } = {}) {
      const c = opts.condition ? compile({ condition: opts.condition }) : undefined
      await client.deleteItem({ TableName: table, Key: key(k), ...(c ? { ConditionExpression: c.condition, ...aliases(c.names, c.values) } : {}) })
    }
  }
}

/** A ProjectionExpression over `attributes`, aliased (into `names` when given). */
function compileProjection (attributes: string[], names: Record<string, string> = {}): { expression: string, names: Record<string, string> } {
  const expression = attributes.map((attr, i) => {
    const alias = `#p${i}`
    names[alias] = attr
    return alias
  }).join(', ')
  return { expression, names }
}
