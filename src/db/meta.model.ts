import dynamoose from 'dynamoose'
import type { Item } from 'dynamoose/dist/Item.js'
import { MODEL_OPTIONS } from './model-options.js'

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
 * | `envelope#<acct>#<id>`    | EventBridge envelope seen (idempotency; `state` processing/done) |
 * | `dedup#<acct>#<sha256>`   | the open event of a dedup key (`ref`); `by_envelope`: the envelope that created it |
 * | `expired#<event id>`      | an event removed by expiry, taken off the counters once (modules/events/expiry.service.ts) |
 */
export interface MetaItem extends Item {
  pk: string
  ref?: string
  n?: number
  ids?: Set<string>
  data?: string
  state?: string
  version?: number
  claimed_at?: number
  by_envelope?: string
  created_at?: string
  updated_at?: string
  ttl?: number
}

const schema = new dynamoose.Schema({
  pk: { type: String, hashKey: true },
  ref: String,
  n: Number,
  ids: { type: Set, schema: [String] },
  data: String,
  state: String,
  version: Number,
  claimed_at: Number,
  by_envelope: String,
  created_at: String,
  updated_at: String,
  ttl: Number
})

export const defineMetaModel = (prefix: string) =>
  dynamoose.model<MetaItem>(`${prefix}meta`, schema, MODEL_OPTIONS)

export type MetaModel = ReturnType<typeof defineMetaModel>
