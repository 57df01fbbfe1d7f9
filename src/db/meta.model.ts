import dynamoose from 'dynamoose'
import type { Item } from 'dynamoose/dist/Item.js'

/**
 * Table `<prefix>meta`: small items that enforce invariants without transactions.
 *
 * | item                      | purpose                                                   |
 * | ------------------------- | --------------------------------------------------------- |
 * | `email#<email>`           | uniqueness claim: conditional put; `ref` = the user id     |
 * | `counter#<name>`          | atomic counters (`ADD`), e.g. active admins for the last-admin guard |
 */
export interface MetaItem extends Item {
  pk: string
  ref?: string
  n?: number
  created_at?: string
  updated_at?: string
}

const schema = new dynamoose.Schema({
  pk: { type: String, hashKey: true },
  ref: String,
  n: Number,
  created_at: String,
  updated_at: String
})

export const defineMetaModel = (prefix: string) =>
  dynamoose.model<MetaItem>(`${prefix}meta`, schema, { create: false, waitForActive: false, initialize: false, throughput: 'ON_DEMAND' })

export type MetaModel = ReturnType<typeof defineMetaModel>
