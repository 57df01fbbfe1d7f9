import { attr, entity, type ItemOf } from '../../db/entity.js'

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
export const AwsAccounts = entity('aws-accounts', {
  id: attr.string().hashKey(),
  entity: attr.string<'aws_account'>().required().gsi('entity-id-index', 'id'),
  account_id: attr.string().required(),
  name: attr.string().required(),
  role_arn: attr.string().required(),
  external_id: attr.string(),
  regions: attr.list(attr.string()).required(),
  enabled: attr.boolean().required(),
  api_key_hash: attr.string().required(),
  api_key_prefix: attr.string().required(),
  /** JSON of the last ConnectionTestResult. */
  last_connection_test: attr.string(),
  version: attr.number().required(),
  created_at: attr.string().required(),
  updated_at: attr.string().required(),
  deleted_at: attr.string()
})

export type AwsAccountItem = ItemOf<typeof AwsAccounts>
