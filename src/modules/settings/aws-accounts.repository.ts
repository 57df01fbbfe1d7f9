import { timingSafeEqual } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { DomainError } from '../../domain/errors.js'
import { hashApiKey, type AwsAccount, type ConnectionTestResult } from '../../domain/aws-accounts.js'
import { readIndexPage, writeOrExplain, type WriteOutcome } from '../../db/access.js'
import { where } from '../../db/expressions.js'
import type { MetaItem } from '../../db/meta.model.js'
import type { CursorCodec, Page } from '../../db/pagination.js'
import type { RawClient } from '../../db/raw.js'
import type { TableModel } from '../../db/tables.js'
import { createTtlCache, type TtlCache } from '../../lib/ttl-cache.js'
import type { AwsAccountItem } from './settings.model.js'

const numberClaim = (accountId: string): string => `awsaccount#${accountId}`
const keyClaim = (hash: string): string => `apikey#${hash}`

export type AwsAccountFields = Partial<Pick<AwsAccount, 'name' | 'role_arn' | 'external_id' | 'regions' | 'enabled' | 'last_connection_test' | 'api_key_hash' | 'api_key_prefix'>>

/** Why a write of an account was refused. */
export type AwsAccountRefusal =
  | { reason: 'not_found' }
  /** Its number is registered already (a live account holds the claim). */
  | { reason: 'number_taken', accountId: string }
  /** The key it was decided on was replaced meanwhile. */
  | { reason: 'key_rotated' }
  /** If-Match: the account changed meanwhile. */
  | { reason: 'stale' }

export type AwsAccountWrite<T = AwsAccount> = WriteOutcome<T, AwsAccountRefusal>

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

/** What every function of this repository works with. */
interface Context {
  raw: RawClient
  cursors: CursorCodec
  tables: { accounts: string, meta: string }
  /**
   * Ingestion keys found (key hash → account), per process, for `ttlMs` (AUTH_CACHE_MS), like
   * the caller cache: an ingestion request then reads nothing to authenticate. A write of this
   * process that changes an account drops its key at once; a revoking write (disable, rotate,
   * delete) also waits `settleMs` before it answers (with a shared database: AUTH_CACHE_MS), so
   * that once it has answered no instance accepts the old key.
   */
  keys: TtlCache<AwsAccount | null>
  settleMs: number
  /**
   * Record id → AWS account number, of the accounts this process has read (a number never
   * changes for a record): reads keyed by the number need not wait for the account's read.
   */
  numbers: Map<string, string>
}

const MAX_KNOWN_NUMBERS = 10_000

/** Remembers an account's number (the oldest forgotten first beyond the bound). */
function known (ctx: Context, account: AwsAccount): AwsAccount {
  ctx.numbers.delete(account.id)
  ctx.numbers.set(account.id, account.account_id)
  if (ctx.numbers.size > MAX_KNOWN_NUMBERS) ctx.numbers.delete(ctx.numbers.keys().next().value as string)
  return account
}

/** After a revoking write: drop the key here, and answer once other instances' copies expired. */
async function revoked (ctx: Context, ...hashes: string[]): Promise<void> {
  for (const hash of hashes) ctx.keys.evict(hash)
  if (ctx.settleMs > 0) await sleep(ctx.settleMs)
}

/** The account (deleted or not), or null. */
async function getById (ctx: Context, id: string): Promise<AwsAccount | null> {
  const item = await ctx.raw.getItem<AwsAccountItem>(ctx.tables.accounts, { id })
  return item ? known(ctx, toAccount(item)) : null
}

async function getLive (ctx: Context, id: string): Promise<AwsAccount> {
  const account = await getById(ctx, id)
  if (!account || account.deleted_at) throw new DomainError('not_found', 'AWS account not found.')
  return account
}

/** The account exists and is not deleted. */
const isLive = where.and(where.exists('id'), where.notExists('deleted_at'))

/** Claims `pk` in the meta table for the account; false when someone holds it already. */
async function claim (ctx: Context, pk: string, accountId: string, at: string): Promise<boolean> {
  const claimed = await writeOrExplain(
    () => ctx.raw.putItem(ctx.tables.meta, { pk, ref: accountId, created_at: at }, { condition: where.notExists('pk') }),
    async () => 'held'
  )
  return claimed.ok
}

/** Lets go of a claim (best effort: a claim left behind is refused at its next use); only `owner`'s when given. */
async function release (ctx: Context, pk: string, owner?: string): Promise<void> {
  await ctx.raw.deleteItem(ctx.tables.meta, { pk }, { condition: owner === undefined ? undefined : where.eq('ref', owner) }).catch(() => {})
}

/** Registers an account: its number is unique among live accounts (claim item). */
async function create (ctx: Context, account: AwsAccount): Promise<AwsAccountWrite> {
  if (!await claim(ctx, numberClaim(account.account_id), account.id, account.created_at)) {
    return { ok: false, refusal: { reason: 'number_taken', accountId: account.account_id } }
  }
  try {
    // A random 256-bit key: its hash is never claimed already (if it were, this is a 500).
    await ctx.raw.putItem(ctx.tables.meta, { pk: keyClaim(account.api_key_hash), ref: account.id, created_at: account.created_at }, { condition: where.notExists('pk') })
    const { external_id: externalId, last_connection_test: lastTest, deleted_at: _deleted, ...rest } = account
    await ctx.raw.putItem(ctx.tables.accounts, {
      ...rest,
      entity: 'aws_account',
      ...(externalId ? { external_id: externalId } : {}),
      ...(lastTest ? { last_connection_test: JSON.stringify(lastTest) } : {})
    }, { condition: where.notExists('id') })
  } catch (err) {
    await release(ctx, numberClaim(account.account_id))
    await release(ctx, keyClaim(account.api_key_hash))
    throw err
  }
  return { ok: true, value: account }
}

/**
 * Sets `fields` (nulls removed) and bumps the version, if the account is live, still at
 * `expectedVersion` (If-Match) and still holds the key `expectedKeyHash` (key rotation).
 */
async function update (ctx: Context, id: string, fields: AwsAccountFields, expectedVersion?: number, expectedKeyHash?: string): Promise<AwsAccountWrite> {
  const set: Record<string, unknown> = { updated_at: new Date().toISOString() }
  const remove: string[] = []
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue
    if (v === null) remove.push(k)
    else set[k] = k === 'last_connection_test' ? JSON.stringify(v) : v
  }
  return writeOrExplain(async () => {
    const updated = await ctx.raw.updateItem<AwsAccountItem>(ctx.tables.accounts, { id }, { set, add: { version: 1 }, remove }, {
      condition: where.and(
        isLive,
        expectedVersion !== undefined && where.eq('version', expectedVersion),
        expectedKeyHash !== undefined && where.eq('api_key_hash', expectedKeyHash)
      ),
      returnValues: 'ALL_NEW'
    })
    const account = toAccount(updated!)
    ctx.keys.evict(account.api_key_hash)
    if (expectedKeyHash !== undefined) ctx.keys.evict(expectedKeyHash)
    if (fields.enabled === false) await revoked(ctx)
    return account
  }, async (): Promise<AwsAccountRefusal> => {
    const current = await getById(ctx, id)
    if (!current || current.deleted_at) return { reason: 'not_found' }
    if (expectedKeyHash !== undefined && current.api_key_hash !== expectedKeyHash) return { reason: 'key_rotated' }
    return { reason: 'stale' }
  })
}

/** Replaces the ingestion key; the old one stops working at once (its hash no longer matches). */
async function rotateKey (ctx: Context, account: AwsAccount, next: { hash: string, prefix: string }): Promise<AwsAccountWrite> {
  await ctx.raw.putItem(ctx.tables.meta, { pk: keyClaim(next.hash), ref: account.id, created_at: new Date().toISOString() }, { condition: where.notExists('pk') })
  let updated: AwsAccountWrite
  try {
    // Of two concurrent rotations only one replaces the key it read; the other is refused (`key_rotated`).
    updated = await update(ctx, account.id, { api_key_hash: next.hash, api_key_prefix: next.prefix }, undefined, account.api_key_hash)
  } catch (err) {
    await release(ctx, keyClaim(next.hash))
    throw err
  }
  await release(ctx, keyClaim(updated.ok ? account.api_key_hash : next.hash))
  if (updated.ok) await revoked(ctx, account.api_key_hash)
  return updated
}

/** Soft delete: the key stops working and the account number may be registered again. */
async function softDelete (ctx: Context, account: AwsAccount): Promise<AwsAccountWrite<void>> {
  const now = new Date().toISOString()
  const deleted = await writeOrExplain(
    () => ctx.raw.updateItem(ctx.tables.accounts, { id: account.id }, { set: { deleted_at: now, updated_at: now, enabled: false }, add: { version: 1 } }, { condition: isLive }),
    // The condition has no other part: refused, the account is gone.
    async (): Promise<AwsAccountRefusal> => ({ reason: 'not_found' })
  )
  if (!deleted.ok) return deleted
  await release(ctx, keyClaim(account.api_key_hash))
  await release(ctx, numberClaim(account.account_id), account.id)
  await revoked(ctx, account.api_key_hash)
  return { ok: true, value: undefined }
}

/** Live accounts, newest first (optionally only the enabled or the disabled ones). */
function listAll (ctx: Context, q: { enabled?: boolean, limit: number, cursor?: string }): Promise<Page<AwsAccount>> {
  return readIndexPage(ctx.raw, ctx.cursors, {
    table: ctx.tables.accounts,
    index: 'entity-id-index',
    key: { partition: ['entity', 'aws_account'] },
    filter: where.and(where.notExists('deleted_at'), q.enabled !== undefined && where.eq('enabled', q.enabled)),
    map: (item: AwsAccountItem) => known(ctx, toAccount(item)),
    cursorScope: { list: 'aws-accounts', enabled: q.enabled },
    limit: q.limit,
    cursor: q.cursor
  })
}

/** The live, enabled account an ingestion key belongs to, or null. */
async function findByApiKey (ctx: Context, key: string): Promise<AwsAccount | null> {
  const hash = hashApiKey(key)
  const found = await ctx.keys.get(hash, () => lookUpKey(ctx, hash))
  // Only keys that were found are kept (an unknown key is not worth a place, and may be registered next).
  if (!found) ctx.keys.evict(hash)
  return found
}

async function lookUpKey (ctx: Context, hash: string): Promise<AwsAccount | null> {
  const claimed = await ctx.raw.getItem<MetaItem>(ctx.tables.meta, { pk: keyClaim(hash) })
  if (!claimed?.ref) return null
  const account = await getById(ctx, claimed.ref)
  if (!account || account.deleted_at) return null
  const stored = Buffer.from(account.api_key_hash)
  const given = Buffer.from(hash)
  return stored.length === given.length && timingSafeEqual(stored, given) ? account : null
}

export function createAwsAccountsRepository (accounts: TableModel, meta: TableModel, cursors: CursorCodec, raw: RawClient, cache: { ttlMs: number, settleMs: number } = { ttlMs: 0, settleMs: 0 }) {
  const ctx: Context = { raw, cursors, tables: { accounts: accounts.table().name, meta: meta.table().name }, keys: createTtlCache({ ttlMs: cache.ttlMs, max: 10_000 }), settleMs: cache.settleMs, numbers: new Map() }
  return {
    getLive: (id: string) => getLive(ctx, id),
    create: (account: AwsAccount) => create(ctx, account),
    update: (id: string, fields: AwsAccountFields, expectedVersion?: number) => update(ctx, id, fields, expectedVersion),
    listAll: (q: { enabled?: boolean, limit: number, cursor?: string }) => listAll(ctx, q),
    list: (q: { enabled?: boolean, limit: number, cursor?: string }) => listAll(ctx, q),
    rotateKey: (account: AwsAccount, next: { hash: string, prefix: string }) => rotateKey(ctx, account, next),
    softDelete: (account: AwsAccount) => softDelete(ctx, account),
    findByApiKey: (key: string) => findByApiKey(ctx, key),
    /** The AWS account number of record `id`, when this process has read that account. */
    knownNumber: (id: string): string | undefined => ctx.numbers.get(id)
  }
}

export type AwsAccountsRepository = ReturnType<typeof createAwsAccountsRepository>
