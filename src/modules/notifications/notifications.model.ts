import { attr, entity, type ItemOf } from '../../db/entity.js'

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
export const Notifications = entity('notifications', {
  pk: attr.string().hashKey(),
  sk: attr.string().rangeKey(),
  kind: attr.string<'channel'>().required(),
  ttl: attr.number(),
  name: attr.string(),
  type: attr.string<'webhook' | 'slack'>(),
  url: attr.string(),
  url_sealed: attr.string(),
  url_shown: attr.string(),
  enabled: attr.boolean(),
  secret_sealed: attr.string(),
  secret_prefix: attr.string(),
  previous_secret_sealed: attr.string(),
  previous_secret_expires_at: attr.string(),
  /** JSON of the last NotificationTestResult. */
  last_test: attr.string(),
  version: attr.number(),
  created_at: attr.string(),
  updated_at: attr.string()
})

export type NotificationItem = ItemOf<typeof Notifications>
