import dynamoose from 'dynamoose'
import type { Item } from 'dynamoose/dist/Item.js'
import { MODEL_OPTIONS } from '../../db/model-options.js'

/**
 * Table `<prefix>auth`: everything about sessions that must be shared by all instances.
 * Expiry is checked in code (the embedded stand-in never deletes expired items); `ttl`
 * (epoch seconds) lets real DynamoDB clean up once TTL is enabled on the table.
 *
 * | item              | access pattern                                                      |
 * | ----------------- | ------------------------------------------------------------------- |
 * | `rf#<family id>`  | refresh-token family: rotate (conditional on the current token hash), revoke |
 * | `deny#<jti>`      | access token denylisted at logout, until it expires                  |
 * | `lock#<email>`    | failed-login counter and lockout window for one e-mail              |
 */
export interface AuthItem extends Item {
  pk: string
  user_id?: string
  token_hash?: string
  session_version?: number
  revoked?: boolean
  revoked_reason?: string
  failures?: number
  window_started_at?: number
  locked_until?: number
  expires_at?: number
  max_expires_at?: number
  created_at?: string
  updated_at?: string
  ttl?: number
}

const schema = new dynamoose.Schema({
  pk: { type: String, hashKey: true },
  user_id: String,
  token_hash: String,
  session_version: Number,
  revoked: Boolean,
  revoked_reason: String,
  failures: Number,
  window_started_at: Number,
  locked_until: Number,
  expires_at: Number,
  max_expires_at: Number,
  created_at: String,
  updated_at: String,
  ttl: Number
})

export const defineAuthModel = (prefix: string) =>
  dynamoose.model<AuthItem>(`${prefix}auth`, schema, MODEL_OPTIONS)

export type AuthModel = ReturnType<typeof defineAuthModel>
