import type { AttributeValue, DynamoDB } from '@aws-sdk/client-dynamodb'
import { unmarshall } from '@aws-sdk/util-dynamodb'
import type { IngestionCounts, IngestionHealth, IngestionProblem, IngestionWindow, IngestResult } from '../../../openapi/generated/schemas.js'
import { DETAIL_TYPES } from '../../domain/event-adapters.js'
import type { RawClient } from '../../db/raw.js'

/**
 * Per monitored account, counters of ingestion results per UTC hour, in the meta table:
 *
 * | item                                  | attributes                                                    |
 * | ------------------------------------- | ------------------------------------------------------------- |
 * | `ingest#<account>#<YYYY-MM-DDTHH>`    | `n|<detail-type>|<action>` counters (atomic ADD), `last_delivery_at`, `last_problem` (JSON), `ttl` |
 *
 * One UpdateItem per delivery (its results summed); reading 7 days is one BatchGetItem of 168
 * hour items (two requests). Detail-types without an adapter count as `other`, so an item holds
 * a bounded set of attributes whatever envelopes arrive.
 */
const HOURS_24 = 24
const HOURS_7D = 168
/** Hour items outlive the 7-day window by a day, then real DynamoDB's TTL removes them. */
const KEEP_S = 8 * 24 * 3600
const OTHER = 'other'
const ACTIONS = ['created', 'updated', 'resolved', 'ignored', 'duplicate', 'rejected'] as const
const SUPPORTED = new Set(Object.values(DETAIL_TYPES).flat())
const HOUR_MS = 3600_000

/** One result to count: its action and, for ignored/rejected ones, why. */
export interface IngestionRecord {
  detailType: string | null
  result: Pick<IngestResult, 'action' | 'reason' | 'error' | 'envelope_id'>
}

const hourOf = (ms: number): string => new Date(ms).toISOString().slice(0, 13)
const pk = (account: string, hour: string): string => `ingest#${account}#${hour}`
const bucket = (detailType: string | null): string => detailType !== null && SUPPORTED.has(detailType) ? detailType : OTHER
const zero = (): IngestionCounts => ({ created: 0, updated: 0, resolved: 0, ignored: 0, duplicate: 0, rejected: 0 })

export function createIngestionHealthRepository (client: DynamoDB, raw: RawClient, metaTable: string) {
  return {
    /**
     * Counts one delivery's results in the hour of `at` (epoch ms); `sign` -1 takes back what was
     * counted for a delivery that failed after all (its last delivery and problem stay).
     */
    async record (account: string, at: number, records: IngestionRecord[], sign: 1 | -1 = 1): Promise<void> {
      if (records.length === 0) return
      const counts = new Map<string, number>()
      let problem: IngestionProblem | undefined
      for (const { detailType, result } of records) {
        const name = `n|${bucket(detailType)}|${result.action}`
        counts.set(name, (counts.get(name) ?? 0) + 1)
        if (result.action === 'ignored' || result.action === 'rejected') {
          problem = {
            at: new Date(at).toISOString(),
            action: result.action,
            reason: (result.action === 'ignored' ? result.reason : result.error?.code) ?? 'unknown',
            detail_type: detailType?.slice(0, 128) ?? null,
            envelope_id: result.envelope_id
          }
        }
      }
      await raw.updateItem(metaTable, { pk: pk(account, hourOf(at)) }, {
        add: Object.fromEntries([...counts].map(([name, n]) => [name, sign * n])),
        set: { last_delivery_at: new Date(at).toISOString(), ttl: Math.ceil(at / 1000) + KEEP_S, last_problem: problem ? JSON.stringify(problem) : undefined }
      })
    },

    /** The last 24 hours and 7 days of `account`, up to `now` (epoch ms). */
    async read (account: string, now: number): Promise<IngestionHealth> {
      const hours = Array.from({ length: HOURS_7D }, (_, i) => hourOf(now - i * HOUR_MS))
      const items = new Map<string, Record<string, unknown>>()
      const chunks = [hours.slice(0, 100), hours.slice(100)]
      await Promise.all(chunks.map(async (chunk) => {
        let keys: Array<Record<string, AttributeValue>> = chunk.map(h => ({ pk: { S: pk(account, h) } }))
        for (let attempt = 0; keys.length && attempt < 8; attempt++) {
          const res = await client.batchGetItem({ RequestItems: { [metaTable]: { Keys: keys, ConsistentRead: true } } })
          for (const item of res.Responses?.[metaTable] ?? []) {
            const plain = unmarshall(item)
            items.set(String(plain.pk), plain)
          }
          keys = res.UnprocessedKeys?.[metaTable]?.Keys ?? []
        }
        if (keys.length) throw Object.assign(new Error('BatchGetItem left keys unprocessed'), { name: 'ThrottlingException' })
      }))
      const window = (n: number): IngestionWindow => {
        const totals = zero()
        const byType = new Map<string, IngestionCounts>()
        for (const hour of hours.slice(0, n)) {
          const item = items.get(pk(account, hour))
          if (!item) continue
          for (const [name, value] of Object.entries(item)) {
            const [tag, detailType, action] = name.split('|')
            if (tag !== 'n' || detailType === undefined || !ACTIONS.includes(action as typeof ACTIONS[number]) || typeof value !== 'number') continue
            const key = action as keyof IngestionCounts
            const counts = byType.get(detailType) ?? zero()
            counts[key] += value
            totals[key] += value
            byType.set(detailType, counts)
          }
        }
        const sum = (c: IngestionCounts): number => ACTIONS.reduce((a, k) => a + c[k], 0)
        return {
          from: new Date(Date.parse(`${hours[n - 1]}:00:00.000Z`)).toISOString(),
          totals,
          by_detail_type: [...byType].map(([detailType, counts]) => ({ detail_type: detailType, counts }))
            .sort((a, b) => sum(b.counts) - sum(a.counts) || a.detail_type.localeCompare(b.detail_type))
        }
      }
      let lastDelivery: string | null = null
      let lastProblem: IngestionProblem | null = null
      for (const item of items.values()) {
        if (typeof item.last_delivery_at === 'string' && (lastDelivery === null || item.last_delivery_at > lastDelivery)) lastDelivery = item.last_delivery_at
        if (typeof item.last_problem === 'string') {
          const problem = JSON.parse(item.last_problem) as IngestionProblem
          if (lastProblem === null || problem.at > lastProblem.at) lastProblem = problem
        }
      }
      return { account_id: account, last_delivery_at: lastDelivery, last_24h: window(HOURS_24), last_7d: window(HOURS_7D), last_problem: lastProblem }
    }
  }
}

export type IngestionHealthRepository = ReturnType<typeof createIngestionHealthRepository>
