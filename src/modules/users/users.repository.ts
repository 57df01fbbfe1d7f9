import { setTimeout as sleep } from 'node:timers/promises'
import dynamoose from 'dynamoose'
import type { Role } from '../../../openapi/generated/schemas.js'
import { DomainError } from '../../domain/errors.js'
import type { User } from '../../domain/users.js'
import { isConditionFailed } from '../../db/errors.js'
import type { MetaModel } from '../../db/meta.model.js'
import { readPage, scanAll, type CursorCodec, type Page } from '../../db/pagination.js'
import type { RawClient } from '../../db/raw.js'
import { createTtlCache } from '../../lib/ttl-cache.js'
import type { UserItem, UsersModel } from './users.model.js'

export interface UserListQuery {
  role?: Role
  is_active?: boolean
  search?: string
  limit: number
  cursor?: string
}

export type UserPatch = Partial<Pick<User, 'name' | 'role' | 'is_active' | 'must_change_password' | 'password_hash' | 'last_login_at'>>

const ACTIVE_ADMINS = 'admins#active'
const STALE_CLAIM_MS = 60_000
const emailClaim = (email: string): string => `email#${email}`

const toUser = (item: UserItem): User => ({
  id: item.id,
  email: item.email,
  name: item.name,
  role: item.role,
  is_active: item.is_active,
  must_change_password: item.must_change_password,
  password_hash: item.password_hash,
  session_version: item.session_version,
  version: item.version,
  created_at: item.created_at,
  updated_at: item.updated_at,
  last_login_at: item.last_login_at ?? null
})

export function createUsersRepository (users: UsersModel, meta: MetaModel, cursors: CursorCodec, raw: RawClient, cache: { ttlMs: number, settleMs: number }) {
  const table = users.table().name
  const metaTable = meta.table().name
  const getById = async (id: string): Promise<User | null> => {
    const item = await raw.get<UserItem>(table, { id })
    return item ? toUser(item) : null
  }
  /** Callers seen in the last `ttlMs`: frozen, shared by the requests of that second. */
  const callers = createTtlCache<User | null>({ ttlMs: cache.ttlMs, max: 10_000 })

  /** Takes the e-mail claim for `userId`; a claim left behind by a failed create is taken over. */
  async function claimEmail (email: string, userId: string, now: string): Promise<void> {
    try {
      await meta.create({ pk: emailClaim(email), ref: userId, created_at: now }, { overwrite: false })
      return
    } catch (err) {
      if (!isConditionFailed(err)) throw err
    }
    const claim = await meta.get({ pk: emailClaim(email) }, { consistent: true })
    // A claim whose user never appeared is stale only once its creator has surely given up.
    const fresh = claim?.created_at && Date.parse(now) - Date.parse(claim.created_at) < STALE_CLAIM_MS
    if (fresh || (claim?.ref && (await getById(claim.ref)))) throw new DomainError('email_taken', 'A user with this e-mail already exists.')
    try {
      await meta.update({ pk: emailClaim(email) }, { ref: userId, created_at: now }, {
        condition: new dynamoose.Condition('ref').eq(claim?.ref)
      })
    } catch (err) {
      if (isConditionFailed(err)) throw new DomainError('email_taken', 'A user with this e-mail already exists.')
      throw err
    }
  }

  return {
    getById,

    /**
     * The user behind an access token, cached per process for `ttlMs` (every authenticated
     * request needs it). Writes through this repository drop the entry at once; a write
     * that ends sessions or changes a role waits `settleMs` before it returns, so that other
     * instances' copies have expired by the time anyone hears of the change.
     */
    getCaller: (id: string): Promise<User | null> => callers.get(id, async () => {
      const user = await getById(id)
      return user && Object.freeze(user)
    }),

    /** Maintenance only (recounts, exports): every item. Never on a request path. */
    scanAll: () => scanAll(users, toUser),

    /**
     * For a request that finds its revocation already written (a repeated DELETE): returns
     * once the write is `settleMs` old, like the request that wrote it.
     */
    async settled (user: User): Promise<void> {
      const wait = Date.parse(user.updated_at) + cache.settleMs - Date.now()
      if (cache.settleMs > 0 && wait > 0) await sleep(wait)
    },

    /**
     * A successful login: sets last_login_at (and an upgraded hash), only if nothing that the
     * password check relied on has changed since (session, hash, still active); else `conflict`.
     */
    async recordLogin (user: User, at: string, rehash?: string): Promise<User> {
      try {
        const item = await raw.update<UserItem>(table, { id: user.id }, {
          update: `SET last_login_at = :at, updated_at = :now${rehash ? ', password_hash = :rehash' : ''} ADD version :one`,
          condition: 'attribute_exists(id) AND session_version = :sv AND password_hash = :hash AND is_active = :active',
          values: {
            ':at': at,
            ':now': new Date().toISOString(),
            ':one': 1,
            ':sv': user.session_version,
            ':hash': user.password_hash,
            ':active': true,
            ...(rehash ? { ':rehash': rehash } : {})
          },
          returnValues: 'ALL_NEW'
        })
        const updated = toUser(item!)
        callers.evict(user.id)
        return updated
      } catch (err) {
        callers.evict(user.id)
        if (isConditionFailed(err)) throw new DomainError('conflict', 'The user changed while logging in.')
        throw err
      }
    },

    async getByEmail (email: string): Promise<User | null> {
      const claim = await raw.get<{ ref?: string }>(metaTable, { pk: emailClaim(email) })
      if (!claim?.ref) return null
      const user = await getById(claim.ref)
      return user && user.email === email ? user : null
    },

    /**
     * Creates a user. E-mail uniqueness is enforced by a conditional put of a claim item
     * (no transactions needed); the claim is released again if the user write fails.
     */
    async create (user: User): Promise<User> {
      await claimEmail(user.email, user.id, user.created_at)
      try {
        const { last_login_at: lastLogin, ...rest } = user
        await users.create({ ...rest, ...(lastLogin ? { last_login_at: lastLogin } : {}), entity: 'user', name_lc: user.name.toLowerCase() }, { overwrite: false })
      } catch (err) {
        await meta.delete({ pk: emailClaim(user.email) }, { condition: new dynamoose.Condition('ref').eq(user.id) }).catch(() => {})
        throw err
      }
      if (user.role === 'admin' && user.is_active) await this.addActiveAdmin(user.id)
      return user
    },

    /**
     * Writes only the named fields (no read-modify-write), bumps `version`, and, when
     * `expectedVersion` is given, only if the stored version still matches (If-Match).
     * `expect` adds conditions on the stored item (e.g. still an active admin).
     */
    async update (id: string, patch: UserPatch & { bumpSession?: boolean }, opts: { expectedVersion?: number, expect?: Partial<Pick<User, 'role' | 'is_active' | 'session_version' | 'password_hash'>> } = {}): Promise<User> {
      const { bumpSession, ...fields } = patch
      const set: Record<string, unknown> = { ...fields, updated_at: new Date().toISOString() }
      const remove: string[] = []
      if ('last_login_at' in fields && fields.last_login_at === null) {
        delete set.last_login_at
        remove.push('last_login_at')
      }
      if (fields.name !== undefined) set.name_lc = fields.name.toLowerCase()
      let condition = new dynamoose.Condition('id').exists()
      if (opts.expectedVersion !== undefined) condition = condition.and().where('version').eq(opts.expectedVersion)
      for (const [k, v] of Object.entries(opts.expect ?? {})) condition = condition.and().where(k).eq(v)
      try {
        const updated = await users.update({ id }, {
          $SET: set,
          $ADD: { version: 1, ...(bumpSession ? { session_version: 1 } : {}) },
          ...(remove.length ? { $REMOVE: remove } : {})
        } as never, { condition, returnValues: 'ALL_NEW' })
        const user = toUser(updated)
        // Forget, do not store: responses to two writes can arrive out of order, and a load
        // started now sees both (an entry counts from when its load started).
        callers.evict(id)
        const revokes = bumpSession || fields.is_active === false || fields.role !== undefined
        if (revokes && cache.settleMs > 0) await sleep(cache.settleMs)
        return user
      } catch (err) {
        callers.evict(id)
        if (!isConditionFailed(err)) throw err
        const current = await getById(id)
        if (!current) throw new DomainError('not_found', 'User not found.')
        if (opts.expectedVersion !== undefined && current.version !== opts.expectedVersion) {
          throw new DomainError('precondition_failed', 'The user was changed by someone else (ETag mismatch).')
        }
        throw new DomainError('conflict', 'The user was changed concurrently; retry the request.')
      }
    },

    /** Users newest first, by role when given; is_active and search filter the pages read. */
    async list (q: UserListQuery): Promise<Page<User>> {
      const fingerprint = { role: q.role, is_active: q.is_active, search: q.search?.toLowerCase() }
      const index = q.role ? { name: 'role-id-index', attr: 'role', value: q.role } : { name: 'entity-id-index', attr: 'entity', value: 'user' }
      const names: Record<string, string> = { '#k': index.attr }
      const values: Record<string, unknown> = { ':k': index.value }
      const filter: string[] = []
      if (q.is_active !== undefined) {
        names['#active'] = 'is_active'
        values[':active'] = q.is_active
        filter.push('#active = :active')
      }
      if (fingerprint.search) {
        Object.assign(names, { '#name': 'name_lc', '#email': 'email' })
        values[':search'] = fingerprint.search
        filter.push('(contains(#name, :search) OR contains(#email, :search))')
      }
      return readPage(cursors, fingerprint, q.limit, q.cursor, async (limit, startKey) => {
        const res = await raw.query<UserItem>({
          TableName: table,
          IndexName: index.name,
          KeyConditionExpression: '#k = :k',
          ...(filter.length ? { FilterExpression: filter.join(' AND ') } : {}),
          ExpressionAttributeNames: names,
          values,
          ScanIndexForward: false,
          Limit: limit,
          startKey
        })
        return { items: res.items.map(toUser), lastKey: res.lastKey }
      })
    },

    /**
     * Last-admin guard: the set of active admin ids, with its size kept in the same item.
     * Taking an admin out of the set succeeds only while more than one remains, so two
     * admins demoting each other at once can never both succeed. 'absent' means the id was
     * not in the set (already being removed): nothing to guard.
     */
    async reserveAdminRemoval (id: string): Promise<'removed' | 'absent'> {
      try {
        await meta.update({ pk: ACTIVE_ADMINS }, { $DELETE: { ids: [id] }, $ADD: { n: -1 } } as never, {
          condition: new dynamoose.Condition('ids').contains(id).and().where('n').gt(1)
        })
        return 'removed'
      } catch (err) {
        if (!isConditionFailed(err)) throw err
      }
      const item = await meta.get({ pk: ACTIVE_ADMINS }, { consistent: true })
      if (!item?.ids?.has(id)) return 'absent'
      throw new DomainError('last_admin', 'The last active admin can be neither deactivated nor demoted.')
    },

    /** Puts an admin (back) into the set; idempotent. */
    async addActiveAdmin (id: string): Promise<void> {
      try {
        await meta.update({ pk: ACTIVE_ADMINS }, { $ADD: { ids: [id], n: 1 } } as never, {
          condition: new dynamoose.Condition('ids').not().contains(id)
        })
      } catch (err) {
        if (!isConditionFailed(err)) throw err
      }
    },

    /**
     * Start-up repair: adds every active admin of the users table to the set (a crash between
     * a user write and the set update can only leave an admin out, never in). Returns the count.
     */
    async repairAdminSet (): Promise<number> {
      let lastKey: unknown
      let n = 0
      do {
        let query = users.query('role').eq('admin').using('role-id-index').and().where('is_active').eq(true)
        if (lastKey) query = query.startAt(lastKey as never)
        const res = await query.exec()
        for (const admin of res) await this.addActiveAdmin(admin.id)
        n += res.length
        lastKey = res.lastKey
      } while (lastKey)
      return n
    },

    async hasAnyAdmin (): Promise<boolean> {
      const res = await users.query('role').eq('admin').using('role-id-index').limit(1).exec()
      return res.length > 0 || Boolean(res.lastKey)
    }
  }
}

export type UsersRepository = ReturnType<typeof createUsersRepository>
