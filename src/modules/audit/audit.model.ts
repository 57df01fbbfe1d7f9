import { attr, entity, type ItemOf } from '../../db/entity.js'

/**
 * Table `<prefix>audit`: the audit trail (issue 20, docs/audit.md). Append-only: the service
 * has no update or delete of a record (only the outbox items below are deleted).
 *
 * | item kind   | pk                            | sk                     | access pattern (key)                                       |
 * | ----------- | ----------------------------- | ---------------------- | ---------------------------------------------------------- |
 * | record      | `chain#<yyyy-mm-dd>#<shard>`  | `<seq>` (10 digits)    | append: put at the next seq, only if that position is free; chain head: Query pk descending, Limit 1; verify: Query pk ascending |
 * | record      | index `day-id-index`          | day → id               | newest first, all actors: Query per day, descending ids     |
 * | record      | index `actor-id-index`        | actor_key → id         | `actor` filter                                             |
 * | record      | index `action-id-index`       | action → id            | `action` filter                                            |
 * | record      | index `target-id-index`       | target_key → id        | `target_type` + `target_id` filter (`type#id`)             |
 * | record      | index `target-type-id-index`  | target_type → id       | `target_type` filter alone                                 |
 * | day         | `days`                        | `<yyyy-mm-dd>`         | the days that have records: Query pk = 'days' descending (the unfiltered list walks them) |
 * | outbox item | `outbox`                      | `<record id>`          | recovery: Query pk = 'outbox', sk < id of (now − grace)     |
 *
 * Every index is sorted by the record id (a ULID), so a `from`/`to` range is a key condition
 * on `id`. Day and outbox items carry no index attribute (not in any index). `ttl` (epoch seconds):
 * the end of the record's day plus the retention, so a day's chains expire together; on real
 * DynamoDB TTL deletes them, reads hide expired items (the stand-in never deletes them). No
 * pattern needs a Scan.
 */
export const Audit = entity('audit', {
  pk: attr.string().hashKey(),
  sk: attr.string().rangeKey(),
  kind: attr.string<'record' | 'day' | 'outbox'>().required(),
  id: attr.string().required(),
  day: attr.string().gsi('day-id-index', 'id'),
  actor_key: attr.string().gsi('actor-id-index', 'id'),
  action: attr.string().gsi('action-id-index', 'id'),
  target_key: attr.string().gsi('target-id-index', 'id'),
  target_type: attr.string().gsi('target-type-id-index', 'id'),
  ttl: attr.number()
}, { saveUnknown: true })

export type AuditItemKeys = ItemOf<typeof Audit>
