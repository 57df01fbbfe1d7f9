import { createHash, randomBytes } from 'node:crypto'
import type { AwsAccount as AwsAccountDto, ConnectionTestResult } from '../../openapi/generated/schemas.js'
import { DomainError } from './errors.js'

/** A monitored AWS account as stored: the public fields plus the hash of its ingestion key. */
export interface AwsAccount extends AwsAccountDto {
  api_key_hash: string
  deleted_at: string | null
}

export type { ConnectionTestResult }

const KEY_PREFIX = 'cmk_'

/** A new ingestion API key: shown once; only its SHA-256 is stored. */
export function generateApiKey (): { key: string, hash: string, prefix: string } {
  const key = `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`
  return { key, hash: hashApiKey(key), prefix: key.slice(0, 12) }
}

/** Keys have 256 random bits: a fast hash is enough (no dictionary to guess from). */
export const hashApiKey = (key: string): string => createHash('sha256').update(key).digest('hex')

export const looksLikeApiKey = (key: string): boolean => /^cmk_[A-Za-z0-9_-]{43}$/.test(key)

/** The role to assume must live in the monitored account. */
export function assertRoleInAccount (roleArn: string, accountId: string): void {
  const roleAccount = /^arn:aws[a-zA-Z-]*:iam::(\d{12}):role\//.exec(roleArn)?.[1]
  if (roleAccount !== accountId) {
    throw new DomainError('validation_failed', `The role must belong to account ${accountId}.`, {
      errors: [{ path: '/body/role_arn', message: `role ARN account ${roleAccount ?? '?'} differs from account_id ${accountId}` }]
    })
  }
}

export const toAwsAccountDto = (a: AwsAccount): AwsAccountDto => ({
  id: a.id,
  account_id: a.account_id,
  name: a.name,
  role_arn: a.role_arn,
  external_id: a.external_id,
  regions: a.regions,
  enabled: a.enabled,
  api_key_prefix: a.api_key_prefix,
  last_connection_test: a.last_connection_test,
  version: a.version,
  created_at: a.created_at,
  updated_at: a.updated_at
})
