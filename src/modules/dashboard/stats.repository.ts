import type { AttributeValue, DynamoDB } from '@aws-sdk/client-dynamodb'
import { unmarshall } from '@aws-sdk/util-dynamodb'
import { toAttributes, type RawClient } from '../../db/raw.js'
import type { TableModel } from '../../db/tables.js'
import type { Deltas } from '../../domain/stats.js'
import type { StatsItem } from './stats.model.js'

export type Counters = Record<string, number>

const numbers = (item: Record<string, unknown> | undefined): Counters => {
  const out: Counters = {}
  for (const [k, v] of Object.entries(item ?? {})) if (typeof v === 'number') out[k] = v
  return out
}

/** What every function of this repository works with. */
interface Context {
  raw: RawClient
  /** For the one batch read (the dashboard reads a few counter items in one request). */
  client: DynamoDB
  statsTable: string
}

/**
 * Counter items written by every ingested event are split into shards (`events#0` …
 * `events#7`): one item takes at most 1,000 write units a second in DynamoDB, which the peak of
 * ingestion (1,000 events a second, one ADD each) would reach (docs/capacity.md). A write adds
 * to one shard at random; a read sums the item and all its shards (one BatchGetItem, so still
 * one round trip); the recount puts the totals in the item and zeroes the shards. The item
 * itself (`events`) keeps what was counted before sharding, so no migration is needed.
 */
export const SHARDS: Readonly<Record<string, number>> = { events: 8 }

const shardsOf = (pk: string): string[] => Array.from({ length: SHARDS[pk] ?? 0 }, (_, i) => `${pk}#${i}`)

/** Applies counter changes atomically (concurrent writers never lose an increment). */
async function apply (ctx: Context, pk: string, deltas: Deltas): Promise<void> {
  if (Object.keys(deltas).length === 0) return
  const shards = SHARDS[pk]
  const target = shards ? `${pk}#${Math.floor(Math.random() * shards)}` : pk
  // Counter names such as `source:aws_cloudwatch` are aliased by the toolkit, never written into the expression.
  await ctx.raw.updateItem(ctx.statsTable, { pk: target }, { add: deltas })
}

/** Reads several counter items in one request (a sharded one as the sum of its item and shards). */
async function read (ctx: Context, pks: string[]): Promise<Record<string, Counters>> {
  const out: Record<string, Counters> = Object.fromEntries(pks.map(pk => [pk, {}]))
  const owner = new Map<string, string>()
  for (const pk of pks) for (const key of [pk, ...shardsOf(pk)]) owner.set(key, pk)
  for (const item of await batchGet(ctx.client, ctx.statsTable, [...owner.keys()].map(pk => ({ pk })))) {
    const sum = out[owner.get(String(item.pk))!]!
    for (const [k, v] of Object.entries(numbers(item))) sum[k] = (sum[k] ?? 0) + v
  }
  return out
}

/** Replaces an item's counters (the recount); a sharded item's shards are zeroed. */
async function replace (ctx: Context, pk: string, counters: Counters): Promise<void> {
  await ctx.raw.putItem(ctx.statsTable, { ...counters, pk })
  await Promise.all(shardsOf(pk).map(shard => ctx.raw.putItem(ctx.statsTable, { pk: shard })))
}

/** Maintenance only (the recount): the key of every counter item. */
async function keys (ctx: Context): Promise<string[]> {
  const out: string[] = []
  for await (const item of ctx.raw.scanAll<StatsItem>(ctx.statsTable, { attributes: ['pk'] })) out.push(String(item.pk))
  return out
}

/** Items by key (eventually consistent; at most 100 keys), re-asking for what a round left unprocessed. */
async function batchGet (client: DynamoDB, table: string, keys: Array<Record<string, unknown>>): Promise<Array<Record<string, unknown>>> {
  const items: Array<Record<string, unknown>> = []
  let pending: Array<Record<string, AttributeValue>> = keys.map(key => toAttributes(key))
  for (let round = 0; pending.length; round++) {
    if (round > 8) throw new Error(`The table ${table} keeps leaving reads unprocessed.`)
    if (round > 0) await new Promise(resolve => setTimeout(resolve, Math.min(1000, 25 * 2 ** round)))
    const res = await client.batchGetItem({ RequestItems: { [table]: { Keys: pending } } })
    for (const item of res.Responses?.[table] ?? []) items.push(unmarshall(item))
    pending = res.UnprocessedKeys?.[table]?.Keys ?? []
  }
  return items
}

export function createStatsRepository (stats: TableModel, raw: RawClient, client: DynamoDB) {
  const ctx: Context = { raw, client, statsTable: stats.table().name }
  return {
    apply: (pk: string, deltas: Deltas) => apply(ctx, pk, deltas),
    read: (pks: string[]) => read(ctx, pks),
    replace: (pk: string, counters: Counters) => replace(ctx, pk, counters),
    keys: () => keys(ctx)
  }
}

export type StatsRepository = ReturnType<typeof createStatsRepository>
