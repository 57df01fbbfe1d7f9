import { attr, entity, type ItemOf } from '../../db/entity.js'

/**
 * Table `<prefix>notifications`: every item of the notifications module, in one table with
 * generic keys (`pk`, `sk`) so that the kinds still to come need no new table.
 *
 * | item kind           | pk                      | sk                        | access pattern (key)                         |
 * | ------------------- | ----------------------- | ------------------------- | -------------------------------------------- |
 * | channel             | `channel`               | `<channel id>` (ULID)     | getById: pk + sk; list newest first: Query pk = 'channel', descending |
 * | rule                | `rule`                  | `<rule id>` (ULID)        | getById; list newest first; all enabled ones (the worker, the writers' cache): Query pk = 'rule' |
 * | queued notification | `q#<channel id>`        | `<change key>`            | one per (change, channel): the key makes queuing idempotent; a channel's due ones: GSI `due-index` (sparse: `due` = channel id, `due_sk` = queued at + key, only while not delivered) |
 * | delivery (message)  | `d#<channel id>`        | `<message id>` (msg_ULID) | the delivery log, newest first: Query pk; one message's state: pk + sk |
 * | lease               | `lease`                 | `<channel id>`            | who delivers to the channel now (`until`, `owner`) |
 *
 * No pattern needs a Scan. `ttl` (epoch seconds) is the table's TTL attribute on real DynamoDB:
 * queued notifications and deliveries expire 30 days after they are done; reads hide expired
 * items themselves (the stand-in never deletes them).
 */
export const Notifications = entity('notifications', {
  pk: attr.string().hashKey(),
  sk: attr.string().rangeKey(),
  kind: attr.string<'channel' | 'rule' | 'queued' | 'delivery' | 'lease'>().required(),
  ttl: attr.number(),
  /** queued: the channel, while the notification is not delivered (the sparse index's key). */
  due: attr.string().gsi('due-index', 'due_sk'),
  due_sk: attr.string(),
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
  updated_at: attr.string(),
  // rule
  channel_ids: attr.list(attr.string()),
  kinds: attr.list(attr.string()),
  min_severity: attr.string(),
  sources: attr.list(attr.string()),
  account_ids: attr.list(attr.string()),
  // queued
  /** JSON of the Notification (domain/notification-delivery.ts). */
  notification: attr.string(),
  occurred_at: attr.string(),
  /** The message it is (to be) sent in, once named. */
  message_id: attr.string(),
  // queued and delivery
  status: attr.string<'pending' | 'retrying' | 'delivered' | 'dead' | 'skipped'>(),
  // delivery
  msg_type: attr.string(),
  summary: attr.string(),
  notification_count: attr.number(),
  attempts: attr.number(),
  last_status_code: attr.number(),
  last_error_code: attr.string(),
  last_error: attr.string(),
  last_attempt_at: attr.string(),
  next_attempt_at: attr.string(),
  /** The keys of the queued notifications the message carries. */
  change_keys: attr.list(attr.string()),
  /** JSON of the WebhookNotification sent, the same on every attempt. */
  body: attr.string(),
  // lease
  until: attr.number(),
  owner: attr.string()
})

export type NotificationItem = ItemOf<typeof Notifications>
