import dynamoose from 'dynamoose'
import type { Item } from 'dynamoose/dist/Item.js'
import { MODEL_OPTIONS } from '../../db/model-options.js'

/**
 * Table `<prefix>notifications`: every item of the notifications module, in one table with
 * generic keys (`pk`, `sk`) so that the kinds still to come need no new table.
 *
 * | item kind          | pk                     | sk                         | access pattern (key)                         |
 * | ------------------ | ---------------------- | -------------------------- | -------------------------------------------- |
 * | channel            | `channel`              | `<channel id>` (ULID)      | getById: pk + sk; list newest first: Query pk = 'channel', descending |
 * | rule (next)        | `rule`                 | `<rule id>`                | list: Query pk = 'rule'                      |
 * | outbox item (next) | `outbox#<shard>`       | `<due at>#<delivery id>`   | due deliveries: Query pk, sk <= now          |
 * | delivery log (next)| `delivery#<channel id>`| `<attempt id>` (ULID)      | a channel's log, newest first: Query pk; `ttl` expires old entries |
 *
 * No pattern needs a Scan. `ttl` (epoch seconds) is the table's TTL attribute on real DynamoDB;
 * reads hide expired items themselves (the stand-in never deletes them).
 */
export interface NotificationItem extends Item {
  pk: string
  sk: string
  kind: 'channel'
  ttl?: number
  name?: string
  type?: 'webhook' | 'slack'
  url?: string
  url_sealed?: string
  url_shown?: string
  enabled?: boolean
  secret_sealed?: string
  secret_prefix?: string
  previous_secret_sealed?: string
  previous_secret_expires_at?: string
  /** JSON of the last NotificationTestResult. */
  last_test?: string
  version?: number
  created_at?: string
  updated_at?: string
}

const schema = new dynamoose.Schema({
  pk: { type: String, hashKey: true },
  sk: { type: String, rangeKey: true },
  kind: { type: String, required: true },
  ttl: Number,
  name: String,
  type: String,
  url: String,
  url_sealed: String,
  url_shown: String,
  enabled: Boolean,
  secret_sealed: String,
  secret_prefix: String,
  previous_secret_sealed: String,
  previous_secret_expires_at: String,
  last_test: String,
  version: Number,
  created_at: String,
  updated_at: String
})

export const defineNotificationsModel = (prefix: string) =>
  dynamoose.model<NotificationItem>(`${prefix}notifications`, schema, MODEL_OPTIONS)

export type NotificationsModel = ReturnType<typeof defineNotificationsModel>
