import { attr, entity, type ItemOf } from '../../db/entity.js'
import { MARK_ATTRIBUTES } from '../../db/marks.js'

/** What a removal record needs: the item as it was (REMOVE records carry the old image). */
export const EVENTS_STREAM = { enabled: true, type: 'OLD_IMAGE' } as const

/**
 * Table `<prefix>events`: one item per monitoring event (an alarm, a finding, a notice).
 * Index range keys are `<timestamp>#<id>`: newest first, unique, and `from`/`to` become
 * key conditions (`between(from, to)` is exactly [from, to) on these keys).
 *
 * | access pattern                 | key / index                                          |
 * | ------------------------------ | ---------------------------------------------------- |
 * | getById                        | table: id                                            |
 * | listAll by occurred_at         | GSI `entity-occurred-index`: entity = 'event#0' … 'event#7' (and 'event'), occurred_sk; the partitions read together and merged |
 * | listAll by last_seen_at        | GSI `entity-seen-index`: the same partitions, seen_sk  |
 * | listBySeverity / Source / Status | GSIs `<attr>-occurred-index`: attr = '<value>#0' … '<value>#7' (and '<value>'), occurred_sk; merged |
 * | listByAccount                  | GSI `account-occurred-index`: account_id, occurred_sk |
 * | open event of a dedup key      | claim `dedup#<sha256>` in the meta table → event id  |
 * | envelope already ingested      | claim `envelope#<account>#<envelope id>` in the meta table |
 * | other filters                  | filter expressions on the pages read (and deleted)    |
 * | changes to notify (the worker) | GSI `notify-index` (sparse, keys only): notify_shard  |
 *
 * `ttl` (epoch seconds) is the last write + the retention days of the monitoring settings: real
 * DynamoDB deletes expired events (enable TTL on the table); reads hide them everywhere.
 *
 * The table has a stream of old images (`EVENTS_STREAM`): the infrastructure's expiry consumer
 * (src/lambda-streams.ts) takes each event TTL deleted off the dashboard counters. The embedded
 * stand-in has no TTL and no streams (it ignores the stream setting): there the retention sweep
 * (expiry.service.ts) deletes expired events and takes them off the counters the same way.
 *
 * `entity` is write-sharded: `event#<k>`, k from the event id (8 values, fixed for the item's
 * life), so the two indexes every event write goes to have 8 partition keys instead of one
 * (one key takes 1,000 write units a second: docs/capacity.md); items written before carry
 * `event` and stay listed (the lists read that partition too). `status`, `source` and
 * `severity`, which key their own indexes, are stored the same way: `<value>#<k>` (`open#3`);
 * the repository's mappers return the bare value, its conditions and filters match either form
 * (items written before hold the bare value until an update rewrites it).
 *
 * `labels` and `raw` are stored as JSON text: AWS payloads are arbitrary JSON and are
 * returned as they came, never interpreted by the database.
 */
export const Events = entity('events', {
  id: attr.string().hashKey(),
  entity: attr.string<'event' | `event#${number}`>().required().gsi('entity-occurred-index', 'occurred_sk').gsi('entity-seen-index', 'seen_sk'),
  dedup_key: attr.string().required(),
  source: attr.string().required().gsi('source-occurred-index', 'occurred_sk'),
  detail_type: attr.string().required(),
  account_id: attr.string().required().gsi('account-occurred-index', 'occurred_sk'),
  region: attr.string().required(),
  resources: attr.list(attr.string()).required(),
  resource_count: attr.number(),
  title: attr.string().required(),
  description: attr.string(),
  severity: attr.string().required().gsi('severity-occurred-index', 'occurred_sk'),
  native_severity: attr.string(),
  source_state: attr.string().required(),
  status: attr.string().required().gsi('status-occurred-index', 'occurred_sk'),
  occurrence_count: attr.number().required(),
  occurred_at: attr.string().required(),
  last_seen_at: attr.string().required(),
  occurred_sk: attr.string().required(),
  seen_sk: attr.string().required(),
  resolved_at: attr.string(),
  task_id: attr.string(),
  labels: attr.string().required(),
  raw: attr.string().required(),
  version: attr.number().required(),
  ttl: attr.number().required(),
  created_at: attr.string().required(),
  updated_at: attr.string().required(),
  deleted_at: attr.string(),
  deleted_by: attr.string(),
  ...MARK_ATTRIBUTES
}, { stream: EVENTS_STREAM })

export type EventItem = ItemOf<typeof Events>
