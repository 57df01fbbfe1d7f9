import { timingSafeEqual } from 'node:crypto'
import dynamoose from 'dynamoose'
import { DomainError } from '../../domain/errors.js'
import { hashApiKey, type AwsAccount, type ConnectionTestResult } from '../../domain/aws-accounts.js'
import { isConditionFailed } from '../../db/errors.js'
import type { MetaModel } from '../../db/meta.model.js'
import { readPage, type CursorCodec, type Page } from '../../db/pagination.js'
import type { AwsAccountItem, AwsAccountsModel } from './settings.model.js'

const numberClaim = (accountId: string): string => `awsaccount#${accountId}`
const keyClaim = (hash: string): string => `apikey#${hash}`

export type AwsAccountFields = Partial<Pick<AwsAccount, 'name' | 'role_arn' | 'external_id' | 'regions' | 'enabled' | 'last_connection_test' | 'api_key_hash' | 'api_key_prefix'>>

const toAccount = (item: AwsAccountItem): AwsAccount => ({
  id: item.id,
  account_id: item.account_id,
  name: item.name,
  role_arn: item.role_arn,
  external_id: item.external_id ?? null,
  regions: item.regions ?? [],
  enabled: item.enabled,
  api_key_prefix: item.api_key_prefix,
  api_key_hash: item.api_key_hash,
  last_connection_test: item.last_connection_test ? JSON.parse(item.last_connection_test) as ConnectionTestResult : null,
  version: item.version,
  created_at: item.created_at,
  updated_at: item.updated_at,
  deleted_at: item.deleted_at ?? null
})

export function createAwsAccountsRepository (accounts: AwsAccountsModel, meta: MetaModel, cursors: CursorCodec) {
  const get = async (id: string): Promise<AwsAccount | null> => {
    const item = await accounts.get({ id }, { consistent: true })
    return item ? toAccount(item) : null
  }

  async function update (id: string, fields: AwsAccountFields, expectedVersion?: number, expectedKeyHash?: string): Promise<AwsAccount> {
    const set: Record<string, unknown> = { updated_at: new Date().toISOString() }
    const remove: string[] = []
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue
      if (v === null) remove.push(k)
      else set[k] = k === 'last_connection_test' ? JSON.stringify(v) : v
    }
    let condition = new dynamoose.Condition('id').exists().and().where('deleted_at').not().exists()
    if (expectedVersion !== undefined) condition = condition.and().where('version').eq(expectedVersion)
    if (expectedKeyHash !== undefined) condition = condition.and().where('api_key_hash').eq(expectedKeyHash)
    try {
      const updated = await accounts.update({ id }, { $SET: set, $ADD: { version: 1 }, ...(remove.length ? { $REMOVE: remove } : {}) } as never, {
        condition,
        returnValues: 'ALL_NEW'
      })
      return toAccount(updated)
    } catch (err) {
      if (!isConditionFailed(err)) throw err
      const current = await get(id)
      if (!current || current.deleted_at) throw new DomainError('not_found', 'AWS account not found.')
      if (expectedKeyHash !== undefined && current.api_key_hash !== expectedKeyHash) throw new DomainError('conflict', 'The key was rotated concurrently; retry.')
      throw new DomainError('precondition_failed', 'The AWS account was changed by someone else (ETag mismatch).')
    }
  }

  return {
    async getLive (id: string): Promise<AwsAccount> {
      const account = await get(id)
      if (!account || account.deleted_at) throw new DomainError('not_found', 'AWS account not found.')
      return account
    },

    /** Registers an account: its number is unique among live accounts (claim item). */
    async create (account: AwsAccount): Promise<AwsAccount> {
      try {
        await meta.create({ pk: numberClaim(account.account_id), ref: account.id, created_at: account.created_at }, { overwrite: false })
      } catch (err) {
        if (isConditionFailed(err)) throw new DomainError('aws_account_exists', `AWS account ${account.account_id} is already registered.`)
        throw err
      }
      try {
        await meta.create({ pk: keyClaim(account.api_key_hash), ref: account.id, created_at: account.created_at }, { overwrite: false })
        const { external_id: externalId, last_connection_test: lastTest, deleted_at: _deleted, ...rest } = account
        await accounts.create({
          ...rest,
          entity: 'aws_account',
          ...(externalId ? { external_id: externalId } : {}),
          ...(lastTest ? { last_connection_test: JSON.stringify(lastTest) } : {})
        }, { overwrite: false })
      } catch (err) {
        await meta.delete({ pk: numberClaim(account.account_id) }).catch(() => {})
        await meta.delete({ pk: keyClaim(account.api_key_hash) }).catch(() => {})
        throw err
      }
      return account
    },

    update,

    async list (q: { enabled?: boolean, limit: number, cursor?: string }): Promise<Page<AwsAccount>> {
      return readPage(cursors, { list: 'aws-accounts', enabled: q.enabled }, q.limit, q.cursor, async (n, startKey) => {
        let query = accounts.query('entity').eq('aws_account').using('entity-id-index').and().where('deleted_at').not().exists()
        if (q.enabled !== undefined) query = query.and().where('enabled').eq(q.enabled)
        query = query.sort('descending').limit(n)
        if (startKey) query = query.startAt(startKey as never)
        const res = await query.exec()
        return { items: res.map(toAccount), lastKey: res.lastKey as Record<string, unknown> | undefined }
      })
    },

    /** Replaces the ingestion key; the old one stops working at once (its hash no longer matches). */
    async rotateKey (account: AwsAccount, next: { hash: string, prefix: string }): Promise<AwsAccount> {
      await meta.create({ pk: keyClaim(next.hash), ref: account.id, created_at: new Date().toISOString() }, { overwrite: false })
      let updated: AwsAccount
      try {
        // Of two concurrent rotations only one replaces the key it read; the other is a 409.
        updated = await update(account.id, { api_key_hash: next.hash, api_key_prefix: next.prefix }, undefined, account.api_key_hash)
      } catch (err) {
        await meta.delete({ pk: keyClaim(next.hash) }).catch(() => {})
        throw err
      }
      await meta.delete({ pk: keyClaim(account.api_key_hash) }).catch(() => {})
      return updated
    },

    /** Soft delete: the key stops working and the account number may be registered again. */
    async softDelete (account: AwsAccount): Promise<void> {
      const now = new Date().toISOString()
      try {
        await accounts.update({ id: account.id }, { $SET: { deleted_at: now, updated_at: now, enabled: false }, $ADD: { version: 1 } } as never, {
          condition: new dynamoose.Condition('id').exists().and().where('deleted_at').not().exists()
        })
      } catch (err) {
        if (isConditionFailed(err)) throw new DomainError('not_found', 'AWS account not found.')
        throw err
      }
      await meta.delete({ pk: keyClaim(account.api_key_hash) }).catch(() => {})
      await meta.delete({ pk: numberClaim(account.account_id) }, { condition: new dynamoose.Condition('ref').eq(account.id) }).catch(() => {})
    },

    /** The live, enabled account an ingestion key belongs to, or null. */
    async findByApiKey (key: string): Promise<AwsAccount | null> {
      const hash = hashApiKey(key)
      const claim = await meta.get({ pk: keyClaim(hash) }, { consistent: true })
      if (!claim?.ref) return null
      const account = await get(claim.ref)
      if (!account || account.deleted_at) return null
      const stored = Buffer.from(account.api_key_hash)
      const given = Buffer.from(hash)
      return stored.length === given.length && timingSafeEqual(stored, given) ? account : null
    }
  }
}

export type AwsAccountsRepository = ReturnType<typeof createAwsAccountsRepository>
