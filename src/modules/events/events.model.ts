import dynamoose from 'dynamoose'
import type { Item } from 'dynamoose/dist/Item.js'
import { MODEL_OPTIONS } from '../../db/model-options.js'

/**
 * Table `<prefix>events`: one item per monitoring event (an alarm, a finding, a notice).
 * Index range keys are `<timestamp>#<id>`: newest first, unique, and `from`/`to` become
 * key conditions (`between(from, to)` is exactly [from, to) on these keys).
 *
 * | access pattern                 | key / index                                          |
 * | ------------------------------ | ---------------------------------------------------- |
 * | getById                        | table: id                                            |
 * | listAll by occurred_at         | GSI `entity-occurred-index`: entity = 'event', occurred_sk |
 * | listAll by last_seen_at        | GSI `entity-seen-index`: entity = 'event', seen_sk    |
 * | listBySeverity / Source / Account / Status | GSIs `<attr>-occurred-index`: attr, occurred_sk |
 * | open event of a dedup key      | claim `dedup#<sha256>` in the meta table → event id  |
 * | envelope already ingested      | claim `envelope#<account>#<envelope id>` in the meta table |
 * | other filters                  | filter expressions on the pages read (and deleted)    |
 *
 * `ttl` (epoch seconds) is the last write + the retention days of the monitoring settings: real
 * DynamoDB deletes expired events (enable TTL on the table); reads hide them everywhere.
 *
 * The table has a stream of old images (`EVENTS_STREAM`): the infrastructure's expiry consumer
 * (src/lambda-streams.ts) takes each event TTL deleted off the dashboard counters. The embedded
 * stand-in has no TTL and no streams (it ignores the stream setting): there the retention sweep
 * (expiry.service.ts) deletes expired events and takes them off the counters the same way.
 *
 * `labels` and `raw` are stored as JSON text: AWS payloads are arbitrary JSON and are
 * returned as they came, never interpreted by the database.
 */
export interface EventItem extends Item {
  id: string
  entity: 'event'
  dedup_key: string
  source: string
  detail_type: string
  account_id: string
  region: string
  resources: string[]
  resource_count?: number
  title: string
  description?: string
  severity: string
  native_severity?: string
  source_state: string
  status: string
  occurrence_count: number
  occurred_at: string
  last_seen_at: string
  occurred_sk: string
  seen_sk: string
  resolved_at?: string
  task_id?: string
  labels: string
  raw: string
  version: number
  ttl: number
  created_at: string
  updated_at: string
  deleted_at?: string
  deleted_by?: string
}

const byOccurred = (name: string) => ({ name, type: 'global' as const, rangeKey: 'occurred_sk' })

const schema = new dynamoose.Schema({
  id: { type: String, hashKey: true },
  entity: {
    type: String,
    index: [byOccurred('entity-occurred-index'), { name: 'entity-seen-index', type: 'global', rangeKey: 'seen_sk' }]
  },
  dedup_key: { type: String, required: true },
  source: { type: String, required: true, index: byOccurred('source-occurred-index') },
  detail_type: { type: String, required: true },
  account_id: { type: String, required: true, index: byOccurred('account-occurred-index') },
  region: { type: String, required: true },
  resources: { type: Array, schema: [String] },
  resource_count: Number,
  title: { type: String, required: true },
  description: String,
  severity: { type: String, required: true, index: byOccurred('severity-occurred-index') },
  native_severity: String,
  source_state: { type: String, required: true },
  status: { type: String, required: true, index: byOccurred('status-occurred-index') },
  occurrence_count: { type: Number, required: true },
  occurred_at: { type: String, required: true },
  last_seen_at: { type: String, required: true },
  occurred_sk: { type: String, required: true },
  seen_sk: { type: String, required: true },
  resolved_at: String,
  task_id: String,
  labels: { type: String, required: true },
  raw: { type: String, required: true },
  version: { type: Number, required: true },
  ttl: { type: Number, required: true },
  created_at: { type: String, required: true },
  updated_at: { type: String, required: true },
  deleted_at: String,
  deleted_by: String
})

/** What a removal record needs: the item as it was (REMOVE records carry the old image). */
export const EVENTS_STREAM = { enabled: true, type: 'OLD_IMAGE' } as const

export const defineEventsModel = (prefix: string) =>
  dynamoose.model<EventItem>(`${prefix}events`, schema, { ...MODEL_OPTIONS, streamOptions: EVENTS_STREAM })

export type EventsModel = ReturnType<typeof defineEventsModel>
