import { attr, entity, type ItemOf } from './entity.js'

/**
 * Table `<prefix>meta`: small items that enforce invariants without transactions.
 *
 * | item                      | purpose                                                   |
 * | ------------------------- | --------------------------------------------------------- |
 * | `email#<email>`           | uniqueness claim: conditional put; `ref` = the user id     |
 * | `admins#active`           | the last-admin guard: active admin ids (`ids`), the admin epoch last heard of per user (`v#<id>`), `rev` (users.repository.ts) |
 * | `awsaccount#<number>`     | uniqueness claim of a monitored AWS account number        |
 * | `apikey#<sha256>`         | ingestion API key → AWS account record id                 |
 * | `settings#monitoring`     | the monitoring settings (`data` JSON, `version`)          |
 * | `envelope#<acct>#<id>`    | EventBridge envelope seen (idempotency; `state` processing/done; processing with `ref`: the new-event path, processed once event `ref` exists) |
 * | `dedup#<acct>#<sha256>`   | the open event of a dedup key (`ref`); `by_envelope`: the envelope that created it |
 * | `expired#<event id>`      | an event removed by expiry, taken off the counters once (modules/events/expiry.service.ts) |
 */
export const Meta = entity('meta', {
  pk: attr.string().hashKey(),
  ref: attr.string(),
  n: attr.number(),
  /** The active-admin set's revision (users.repository.ts); its `v#<id>` epochs are attributes named at run time. */
  rev: attr.number(),
  ids: attr.stringSet(),
  data: attr.string(),
  state: attr.string(),
  version: attr.number(),
  claimed_at: attr.number(),
  by_envelope: attr.string(),
  created_at: attr.string(),
  updated_at: attr.string(),
  ttl: attr.number()
})

export type MetaItem = ItemOf<typeof Meta>
