import { attr, entity, type ItemOf } from '../../db/entity.js'

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
export const Auth = entity('auth', {
  pk: attr.string().hashKey(),
  user_id: attr.string(),
  token_hash: attr.string(),
  session_version: attr.number(),
  revoked: attr.boolean(),
  revoked_reason: attr.string(),
  failures: attr.number(),
  window_started_at: attr.number(),
  locked_until: attr.number(),
  expires_at: attr.number(),
  max_expires_at: attr.number(),
  created_at: attr.string(),
  updated_at: attr.string(),
  ttl: attr.number()
})

export type AuthItem = ItemOf<typeof Auth>
