import dynamoose from 'dynamoose'
import type { Item } from 'dynamoose/dist/Item.js'
import { MODEL_OPTIONS } from '../../db/model-options.js'

/**
 * Table `<prefix>aws-accounts`: the monitored AWS accounts.
 *
 * | access pattern         | key / index                                              |
 * | ---------------------- | -------------------------------------------------------- |
 * | getById                | table: id                                                |
 * | listAll (newest first) | GSI `entity-id-index`: entity = 'aws_account', id         |
 * | by API key             | claim `apikey#<sha256(key)>` in the meta table → id, then the stored hash must match |
 * | unique account number  | claim `awsaccount#<account_id>` in the meta table         |
 *
 * Monitoring settings are one item of the meta table (`settings#monitoring`).
 */
export interface AwsAccountItem extends Item {
  id: string
  entity: 'aws_account'
  account_id: string
  name: string
  role_arn: string
  external_id?: string
  regions: string[]
  enabled: boolean
  api_key_hash: string
  api_key_prefix: string
  last_connection_test?: string
  version: number
  created_at: string
  updated_at: string
  deleted_at?: string
}

const schema = new dynamoose.Schema({
  id: { type: String, hashKey: true },
  entity: { type: String, index: { name: 'entity-id-index', type: 'global', rangeKey: 'id' } },
  account_id: { type: String, required: true },
  name: { type: String, required: true },
  role_arn: { type: String, required: true },
  external_id: String,
  regions: { type: Array, schema: [String] },
  enabled: { type: Boolean, required: true },
  api_key_hash: { type: String, required: true },
  api_key_prefix: { type: String, required: true },
  // JSON of the last ConnectionTestResult.
  last_connection_test: String,
  version: { type: Number, required: true },
  created_at: { type: String, required: true },
  updated_at: { type: String, required: true },
  deleted_at: String
})

export const defineAwsAccountsModel = (prefix: string) =>
  dynamoose.model<AwsAccountItem>(`${prefix}aws-accounts`, schema, MODEL_OPTIONS)

export type AwsAccountsModel = ReturnType<typeof defineAwsAccountsModel>
