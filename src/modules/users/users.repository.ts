import { setTimeout as sleep } from 'node:timers/promises'
import dynamoose from 'dynamoose'
import type { Role } from '../../../openapi/generated/schemas.js'
import { DomainError } from '../../domain/errors.js'
import { isActiveAdmin, type User } from '../../domain/users.js'
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

export type UserPatch = Partial<Pick<User, 'name' | 'role' | 'is_active' | 'must_change_password' | 'password_hash' | 'last_login_at' | 'temporary_password_expires_at'>>
/** A patch that leaves role and is_active alone; those change through `updateAccess`. */
export type PlainPatch = Omit<UserPatch, 'role' | 'is_active'>

/**
 * The set of active admins: meta item `admins#active`, the last-admin guard. Without
 * transactions the set and a user item are two writes; they are ordered so that the set never
 * counts anyone who is not an active admin (it may miss one for the moment between the two
 * writes, never the other way round), and every user's entry is versioned:
 *
 * - `ids`: the members; `v#<user id>`: the user's `admin_epoch` the set last heard of (kept
 *   after the user leaves); `rev`: bumped by every write of the item (the repair's lock).
 * - Leaving (demote, deactivate): the set first. `reserveRemoval` takes the user out and sets
 *   `v#id = epoch + 1`, atomically refused when nobody else would remain in the set and when the
 *   set has heard of a newer epoch. Then the user write, only at that epoch, which bumps it.
 *   If that write is refused, the reservation is given back (`undoRemoval`).
 * - Joining (promote, reactivate, create): the user write first (bumping the epoch), then
 *   `addMember`, only if the set's `v#id` is older: a late or stale adder (e.g. a promotion whose
 *   user was deactivated meanwhile) can never put back someone who has left since.
 * - `repairAdminSet` recomputes the item from the user items, from any state.
 */
const ACTIVE_ADMINS = 'admins#active'
const STALE_CLAIM_MS = 60_000
const REPAIR_ATTEMPTS = 10
const emailClaim = (email: string): string => `email#${email}`
const epochKey = (id: string): string => `v#${id}`
const epochOf = (u: Pick<User, 'admin_epoch'>): number => u.admin_epoch ?? 0

/** The admin set item as stored (plus `v#<id>` numbers); `n` only on items of older versions. */
type AdminSetItem = { pk: string, ids?: Set<string>, rev?: number, n?: number } & Record<string, unknown>

interface WriteConditions {
  /** If-Match: only at this version. */
  expectedVersion?: number
  /** Only while these fields still hold these values. */
  expect?: Partial<Pick<User, 'role' | 'is_active' | 'session_version' | 'password_hash'>>
  /** Only at this admin epoch; `bumpEpoch`: the write moves the user into or out of the active admins. */
  epoch?: number
  bumpEpoch?: boolean
}

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
  last_login_at: item.last_login_at ?? null,
  temporary_password_expires_at: item.temporary_password_expires_at ?? null,
  admin_epoch: item.admin_epoch ?? 0
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

  /**
   * One conditional UpdateItem of the named fields (no read-modify-write); bumps `version`.
   * null removes a field. A new password that is not given a lifetime ends the temporary one.
   */
  async function write (id: string, patch: UserPatch & { bumpSession?: boolean }, c: WriteConditions): Promise<User> {
    const { bumpSession, ...fields } = patch
    const set: Record<string, unknown> = { updated_at: new Date().toISOString() }
    const remove = new Set<string>()
    for (const [k, v] of Object.entries(fields)) {
      if (v === null) remove.add(k)
      else if (v !== undefined) set[k] = v
    }
    if (typeof fields.name === 'string') set.name_lc = fields.name.toLowerCase()
    if (fields.password_hash !== undefined && fields.temporary_password_expires_at === undefined) remove.add('temporary_password_expires_at')
    const names: Record<string, string> = { '#id': 'id' }
    const values: Record<string, unknown> = { ':one': 1 }
    const ref = (attr: string): string => { names[`#${attr}`] = attr; return `#${attr}` }
    const assignments = Object.entries(set).map(([k, v]) => { values[`:${k}`] = v; return `${ref(k)} = :${k}` })
    const counters = ['version', ...(bumpSession ? ['session_version'] : []), ...(c.bumpEpoch ? ['admin_epoch'] : [])].map(k => `${ref(k)} :one`)
    const removals = [...remove].map(ref)
    const conditions = ['attribute_exists(#id)']
    if (c.expectedVersion !== undefined) {
      values[':c_version'] = c.expectedVersion
      conditions.push(`${ref('version')} = :c_version`)
    }
    for (const [k, v] of Object.entries(c.expect ?? {})) {
      values[`:c_${k}`] = v
      conditions.push(`${ref(k)} = :c_${k}`)
    }
    if (c.epoch !== undefined) {
      values[':c_epoch'] = c.epoch
      const epoch = ref('admin_epoch')
      conditions.push(c.epoch === 0 ? `(attribute_not_exists(${epoch}) OR ${epoch} = :c_epoch)` : `${epoch} = :c_epoch`)
    }
    try {
      const item = await raw.update<UserItem>(table, { id }, {
        update: `SET ${assignments.join(', ')} ADD ${counters.join(', ')}${removals.length ? ` REMOVE ${removals.join(', ')}` : ''}`,
        condition: conditions.join(' AND '),
        names,
        values,
        returnValues: 'ALL_NEW'
      })
      // Forget, do not store: responses to two writes can arrive out of order, and a load
      // started now sees both (an entry counts from when its load started).
      callers.evict(id)
      return toUser(item!)
    } catch (err) {
      callers.evict(id)
      if (!isConditionFailed(err)) throw err
      const current = await getById(id)
      if (!current) throw new DomainError('not_found', 'User not found.')
      if (c.expectedVersion !== undefined && current.version !== c.expectedVersion) {
        throw new DomainError('precondition_failed', 'The user was changed by someone else (ETag mismatch).')
      }
      throw new DomainError('conflict', 'The user was changed concurrently; retry the request.')
    }
  }

  /** A write that ends sessions or changes a role answers once other instances' copies expired. */
  async function settle (patch: UserPatch & { bumpSession?: boolean }): Promise<void> {
    const revokes = patch.bumpSession || patch.is_active === false || patch.role !== undefined
    if (revokes && cache.settleMs > 0) await sleep(cache.settleMs)
  }

  const setNames = { '#ids': 'ids', '#rev': 'rev' }
  const readAdminSet = (): Promise<AdminSetItem | null> => raw.get<AdminSetItem>(metaTable, { pk: ACTIVE_ADMINS })

  /**
   * Takes `id` (at admin epoch `epoch`) out of the set before the user write that makes it leave.
   * Refused atomically when nobody else would remain in the set (`last_admin`), or when the set
   * has heard of a newer epoch of the user (`conflict`: someone else is changing it).
   */
  async function reserveRemoval (id: string, epoch: number): Promise<void> {
    try {
      await raw.update(metaTable, { pk: ACTIVE_ADMINS }, {
        update: 'SET #v = :next DELETE #ids :id_set ADD #rev :one',
        condition: '(attribute_not_exists(#v) OR #v <= :epoch) AND (size(#ids) > :one OR (size(#ids) = :one AND NOT contains(#ids, :id)))',
        names: { ...setNames, '#v': epochKey(id) },
        values: { ':next': epoch + 1, ':epoch': epoch, ':id_set': new Set([id]), ':id': id, ':one': 1 }
      })
    } catch (err) {
      if (!isConditionFailed(err)) throw err
      const heard = (await readAdminSet())?.[epochKey(id)]
      if (typeof heard === 'number' && heard > epoch) throw new DomainError('conflict', 'The user\'s role or status is being changed concurrently; retry the request.')
      throw new DomainError('last_admin', 'The last active admin can be neither deactivated nor demoted.')
    }
  }

  /**
   * Gives a reservation back after its user write was refused, if the user is still the active
   * admin it was at `epoch`: nothing else can have moved it meanwhile (the reservation holds the
   * set's entry one epoch ahead, so any other change of that epoch is refused).
   */
  async function undoRemoval (id: string, epoch: number): Promise<void> {
    const user = await getById(id)
    if (!user || !isActiveAdmin(user) || epochOf(user) !== epoch) return
    try {
      await raw.update(metaTable, { pk: ACTIVE_ADMINS }, {
        update: 'SET #v = :epoch ADD #ids :id_set, #rev :one',
        condition: '#v = :next AND NOT contains(#ids, :id)',
        names: { ...setNames, '#v': epochKey(id) },
        values: { ':epoch': epoch, ':next': epoch + 1, ':id_set': new Set([id]), ':id': id, ':one': 1 }
      })
    } catch (err) {
      if (!isConditionFailed(err)) throw err
    }
  }

  /** Puts `id`, an active admin at `epoch`, into the set, unless the set has heard of that epoch or a later one. */
  async function addMember (id: string, epoch: number): Promise<void> {
    try {
      await raw.update(metaTable, { pk: ACTIVE_ADMINS }, {
        update: 'SET #v = :epoch ADD #ids :id_set, #rev :one',
        condition: 'attribute_not_exists(#v) OR #v < :epoch',
        names: { ...setNames, '#v': epochKey(id) },
        values: { ':epoch': epoch, ':id_set': new Set([id]), ':one': 1 }
      })
    } catch (err) {
      if (!isConditionFailed(err)) throw err
    }
  }

  /**
   * The repair's fence: the set holds an epoch of the user that the user item has not reached
   * (a removal between its two writes, abandoned by a crash, or a corrupted set). Moving the user
   * to that epoch makes any late user write of that removal fail; undefined if the user changed.
   */
  async function fence (user: User, epoch: number): Promise<User | undefined> {
    try {
      const item = await raw.update<UserItem>(table, { id: user.id }, {
        update: 'SET #e = :to',
        condition: epochOf(user) === 0 ? '(attribute_not_exists(#e) OR #e = :from)' : '#e = :from',
        names: { '#e': 'admin_epoch' },
        values: { ':to': epoch, ':from': epochOf(user) },
        returnValues: 'ALL_NEW'
      })
      callers.evict(user.id)
      return toUser(item!)
    } catch (err) {
      if (isConditionFailed(err)) return undefined
      throw err
    }
  }

  /** Ids of every user with the admin role, active or not (the role index: maintenance only). */
  async function adminIds (): Promise<string[]> {
    const ids: string[] = []
    let startKey: Record<string, unknown> | undefined
    do {
      const res = await raw.query<UserItem>({
        TableName: table,
        IndexName: 'role-id-index',
        KeyConditionExpression: '#r = :r',
        ExpressionAttributeNames: { '#r': 'role' },
        values: { ':r': 'admin' },
        ...(startKey ? { startKey } : {})
      })
      ids.push(...res.items.map(u => u.id))
      startKey = res.lastKey
    } while (startKey)
    return ids
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
     * password check relied on has changed since (session, hash, still active) and the password
     * is not a temporary one past its lifetime (see `temporaryPasswordExpired`); else `conflict`.
     */
    async recordLogin (user: User, at: string, rehash?: string): Promise<User> {
      try {
        const item = await raw.update<UserItem>(table, { id: user.id }, {
          update: `SET last_login_at = :at, updated_at = :now${rehash ? ', password_hash = :rehash' : ''} ADD version :one`,
          condition: 'attribute_exists(id) AND session_version = :sv AND password_hash = :hash AND is_active = :active' +
            ' AND (attribute_not_exists(temporary_password_expires_at) OR temporary_password_expires_at > :at)',
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
        const { last_login_at: lastLogin, temporary_password_expires_at: expires, ...rest } = user
        await users.create({
          ...rest,
          ...(lastLogin ? { last_login_at: lastLogin } : {}),
          ...(expires ? { temporary_password_expires_at: expires } : {}),
          admin_epoch: epochOf(user),
          entity: 'user',
          name_lc: user.name.toLowerCase()
        }, { overwrite: false })
      } catch (err) {
        await meta.delete({ pk: emailClaim(user.email) }, { condition: new dynamoose.Condition('ref').eq(user.id) }).catch(() => {})
        throw err
      }
      if (isActiveAdmin(user)) await addMember(user.id, epochOf(user))
      return { ...user, admin_epoch: epochOf(user) }
    },

    /**
     * Writes only the named fields (no read-modify-write), bumps `version`, and, when
     * `expectedVersion` is given, only if the stored version still matches (If-Match).
     * `expect` adds conditions on the stored item. Role and status change through `updateAccess`.
     */
    async update (id: string, patch: PlainPatch & { bumpSession?: boolean }, opts: { expectedVersion?: number, expect?: WriteConditions['expect'] } = {}): Promise<User> {
      // The type says so; this says it to callers that cast (the set of active admins depends on it).
      if ('role' in patch || 'is_active' in patch) throw new TypeError('role and is_active change through updateAccess')
      const user = await write(id, patch, { expectedVersion: opts.expectedVersion, expect: opts.expect })
      await settle(patch)
      return user
    },

    /**
     * An update that may change role or is_active, decided on `before` and written only while
     * the user is still as in `before` (role, status, admin epoch; the version with If-Match),
     * keeping the set of active admins in step (see the set's comment above): a user who
     * leaves the active admins leaves the set first, refused for the last one (`last_admin`);
     * one who joins is added right after the user write.
     */
    async updateAccess (before: User, patch: UserPatch & { bumpSession?: boolean }, opts: { expectedVersion?: number } = {}): Promise<User> {
      const after = { role: patch.role ?? before.role, is_active: patch.is_active ?? before.is_active }
      const leaves = isActiveAdmin(before) && !isActiveAdmin(after)
      const joins = !isActiveAdmin(before) && isActiveAdmin(after)
      const epoch = epochOf(before)
      if (leaves) await reserveRemoval(before.id, epoch)
      let user: User
      try {
        user = await write(before.id, patch, {
          expectedVersion: opts.expectedVersion,
          expect: { role: before.role, is_active: before.is_active },
          epoch,
          bumpEpoch: leaves || joins
        })
      } catch (err) {
        // Refused by its condition (a DomainError): the write did not happen, give the place back.
        // Any other failure may still have written: the set stays short of the user (the safe
        // side) until the next repair.
        if (leaves && err instanceof DomainError) await undoRemoval(before.id, epoch).catch(() => {})
        throw err
      }
      // At once, not after the settle wait. Should it fail, the set only misses an admin
      // (the safe side) until the next repair; the user write stands.
      if (joins) await addMember(user.id, epochOf(user)).catch(() => {})
      await settle(patch)
      return user
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

    /** The set of active admins as stored: the members, and the admin epoch it holds per user. */
    async adminSet (): Promise<{ ids: string[], epochs: Record<string, number> }> {
      const item = await readAdminSet()
      const epochs: Record<string, number> = {}
      for (const [k, v] of Object.entries(item ?? {})) if (k.startsWith('v#') && typeof v === 'number') epochs[k.slice(2)] = v
      return { ids: [...(item?.ids ?? [])].sort(), epochs }
    },

    /**
     * Recomputes the set of active admins from the user items, whatever state it is in (lagging,
     * corrupted, missing, or of an older version): every user the set names and every user with
     * the admin role is read (consistently); members are exactly the active admins; each entry's
     * epoch is the user's, after fencing off any removal the set is ahead of. Written in one
     * update conditioned on the set's `rev`: a concurrent change makes it start over.
     * Start-up, seed:admin and the operator scripts run it. Returns the number of active admins.
     */
    async repairAdminSet (): Promise<number> {
      for (let attempt = 0; attempt < REPAIR_ATTEMPTS; attempt++) {
        const item = await readAdminSet()
        const heard = new Map<string, number>()
        for (const [k, v] of Object.entries(item ?? {})) if (k.startsWith('v#') && typeof v === 'number') heard.set(k.slice(2), v)
        const candidates = new Set([...(item?.ids ?? []), ...heard.keys(), ...await adminIds()])
        const entries = await Promise.all([...candidates].map(async id => {
          const user = await getById(id)
          const seen = heard.get(id)
          if (!user || seen === undefined || seen <= epochOf(user)) return { id, user }
          return { id, user: await fence(user, seen) ?? 'changed' as const }
        }))
        if (entries.some(e => e.user === 'changed')) continue
        const names: Record<string, string> = { ...setNames }
        const values: Record<string, unknown> = { ':rev': (item?.rev ?? 0) + 1 }
        const assignments = ['#rev = :rev']
        const removals: string[] = []
        const members = entries.flatMap(e => (e.user && e.user !== 'changed' && isActiveAdmin(e.user) ? [e.id] : []))
        if (members.length) {
          values[':ids'] = new Set(members)
          assignments.push('#ids = :ids')
        } else {
          removals.push('#ids')
        }
        entries.forEach((e, i) => {
          names[`#v${i}`] = epochKey(e.id)
          if (e.user && e.user !== 'changed') {
            values[`:v${i}`] = epochOf(e.user)
            assignments.push(`#v${i} = :v${i}`)
          } else {
            removals.push(`#v${i}`) // no such user
          }
        })
        if (item && 'n' in item) {
          names['#n'] = 'n'
          removals.push('#n')
        }
        let condition: string
        if (!item) {
          names['#pk'] = 'pk'
          condition = 'attribute_not_exists(#pk)'
        } else if (item.rev === undefined) {
          condition = 'attribute_not_exists(#rev)'
        } else {
          values[':prev'] = item.rev
          condition = '#rev = :prev'
        }
        try {
          await raw.update(metaTable, { pk: ACTIVE_ADMINS }, {
            update: `SET ${assignments.join(', ')}${removals.length ? ` REMOVE ${removals.join(', ')}` : ''}`,
            condition,
            names,
            values
          })
          return members.length
        } catch (err) {
          if (!isConditionFailed(err)) throw err
        }
      }
      throw new DomainError('conflict', 'The set of active admins kept changing during its repair; run it again.')
    },

    async hasAnyAdmin (): Promise<boolean> {
      const res = await users.query('role').eq('admin').using('role-id-index').limit(1).exec()
      return res.length > 0 || Boolean(res.lastKey)
    }
  }
}

export type UsersRepository = ReturnType<typeof createUsersRepository>
