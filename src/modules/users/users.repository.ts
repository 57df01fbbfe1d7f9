import { setTimeout as sleep } from 'node:timers/promises'
import type { Role } from '../../../openapi/generated/schemas.js'
import { DomainError } from '../../domain/errors.js'
import { isActiveAdmin, type User } from '../../domain/users.js'
import { applied, readIndexPage, writeOrExplain, type WriteOutcome } from '../../db/access.js'
import { where, type Condition, type Update } from '../../db/expressions.js'
import type { MetaItem } from '../../db/meta.model.js'
import type { CursorCodec, Page } from '../../db/pagination.js'
import type { RawClient } from '../../db/raw.js'
import type { TableModel } from '../../db/tables.js'
import { createTtlCache, type TtlCache } from '../../lib/ttl-cache.js'
import type { UserItem } from './users.model.js'

/**
 * The users module's data: the user items (users.model.ts), and in the meta table the e-mail
 * claims (`email#<email>`) and the set of active admins (`admins#active`). Sections below:
 * reads and lists, the e-mail claim, user writes, the set of active admins, the factory.
 */

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
 * Why a write was refused. Each reason is one domain answer (`refusalError`, the one place
 * they are mapped); `isRetryable` ones are worth a fresh read and another try.
 */
export type UserRefusal =
  /** No such user. */
  | { reason: 'not_found' }
  /** If-Match: the stored version is no longer the one expected. */
  | { reason: 'stale' }
  /** The user changed since the write was decided (role, status, session, password, epoch). */
  | { reason: 'changed' }
  /** The set of active admins has heard of a newer change of the user's role or status. */
  | { reason: 'access_changing' }
  /** Nobody else would remain an active admin. */
  | { reason: 'last_admin' }
  | { reason: 'email_taken' }
  /** The set of active admins kept changing during its repair. */
  | { reason: 'repair_contended' }

export type UserOutcome<T> = WriteOutcome<T, UserRefusal>

export const isRetryable = (r: UserRefusal): boolean => r.reason === 'changed' || r.reason === 'access_changing'

/** The domain error of a refusal, for the answer that ends the attempts. */
export function refusalError (r: UserRefusal): DomainError {
  switch (r.reason) {
    case 'not_found': return new DomainError('not_found', 'User not found.')
    case 'stale': return new DomainError('precondition_failed', 'The user was changed by someone else (ETag mismatch).')
    case 'changed': return new DomainError('conflict', 'The user was changed concurrently; retry the request.')
    case 'access_changing': return new DomainError('conflict', 'The user\'s role or status is being changed concurrently; retry the request.')
    case 'last_admin': return new DomainError('last_admin', 'The last active admin can be neither deactivated nor demoted.')
    case 'email_taken': return new DomainError('email_taken', 'A user with this e-mail already exists.')
    case 'repair_contended': return new DomainError('conflict', 'The set of active admins kept changing during its repair; run it again.')
  }
}

/** The value of a write, or its refusal's domain error. */
export function orThrow<T> (outcome: UserOutcome<T>): T {
  if (outcome.ok) return outcome.value
  throw refusalError(outcome.refusal)
}

/** A refusal on its own, whatever the value type of the outcome it came from. */
const refused = (refusal: UserRefusal): { ok: false, refusal: UserRefusal } => ({ ok: false, refusal })

/** A conditional write whose refusal needs no explanation: true when written, false when its condition did not hold. */

/** `where.and` of the present members; undefined when none is (an empty AND compiles to nothing). */
function allOf (...conditions: Array<Condition | undefined | false | null | ''>): Condition | undefined {
  const present = conditions.filter((c): c is Condition => Boolean(c))
  return present.length ? where.and(...present) : undefined
}

interface WriteConditions {
  /** If-Match: only at this version. */
  expectedVersion?: number
  /** Only while these fields still hold these values. */
  expect?: Partial<Pick<User, 'role' | 'is_active' | 'session_version' | 'password_hash'>>
  /** Only at this admin epoch; `bumpEpoch`: the write moves the user into or out of the active admins. */
  epoch?: number
  bumpEpoch?: boolean
}

/** What the functions of this repository work on. */
interface UsersContext {
  raw: RawClient
  cursors: CursorCodec
  tables: { users: string, meta: string }
  cache: { ttlMs: number, settleMs: number }
  /** Callers seen in the last `ttlMs`: frozen, shared by the requests of that second. */
  callers: TtlCache<User | null>
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

const epochOf = (u: Pick<User, 'admin_epoch'>): number => u.admin_epoch ?? 0

/** A new user as stored (the attributes of users.model.ts; absent rather than null). */
const toItem = (user: User): UserItem => ({
  id: user.id,
  entity: 'user',
  email: user.email,
  name: user.name,
  name_lc: user.name.toLowerCase(),
  role: user.role,
  is_active: user.is_active,
  must_change_password: user.must_change_password,
  password_hash: user.password_hash,
  session_version: user.session_version,
  version: user.version,
  created_at: user.created_at,
  updated_at: user.updated_at,
  last_login_at: user.last_login_at || undefined,
  temporary_password_expires_at: user.temporary_password_expires_at || undefined,
  admin_epoch: epochOf(user)
})

// Reads and lists.

async function getById (ctx: UsersContext, id: string): Promise<User | null> {
  const item = await ctx.raw.getItem<UserItem>(ctx.tables.users, { id })
  return item ? toUser(item) : null
}

/**
 * The user behind an access token, cached per process for `ttlMs` (every authenticated
 * request needs it). Writes through this repository drop the entry at once; a write
 * that ends sessions or changes a role waits `settleMs` before it returns, so that other
 * instances' copies have expired by the time anyone hears of the change.
 */
function getCaller (ctx: UsersContext, id: string): Promise<User | null> {
  return ctx.callers.get(id, async () => {
    const user = await getById(ctx, id)
    return user && Object.freeze(user)
  })
}

/** The user of an e-mail: its claim in the meta table names the user (both reads strongly consistent). */
async function getByEmail (ctx: UsersContext, email: string): Promise<User | null> {
  const claim = await ctx.raw.getItem<EmailClaim>(ctx.tables.meta, { pk: emailClaim(email) })
  if (!claim?.ref) return null
  const user = await getById(ctx, claim.ref)
  return user && user.email === email ? user : null
}

/** What a list's cursor is bound to (the list and its filters), as in the cursors issued so far. */
const listScope = (q: UserListQuery) => ({ role: q.role, is_active: q.is_active, search: q.search?.toLowerCase() })

/** The filters of a list on the pages read: is_active, and a search in the name or e-mail. */
function listFilter (q: UserListQuery): Condition | undefined {
  const search = q.search?.toLowerCase()
  return allOf(
    q.is_active !== undefined && where.eq('is_active', q.is_active),
    search && where.or(where.contains('name_lc', search), where.contains('email', search))
  )
}

/** Every user, newest first (GSI `entity-id-index`), filtered by `q`. */
function listAll (ctx: UsersContext, q: UserListQuery): Promise<Page<User>> {
  return readIndexPage(ctx.raw, ctx.cursors, {
    table: ctx.tables.users,
    index: 'entity-id-index',
    key: { partition: ['entity', 'user'] },
    filter: listFilter(q),
    map: toUser,
    cursorScope: listScope(q),
    limit: q.limit,
    cursor: q.cursor
  })
}

/** The users of one role, newest first (GSI `role-id-index`), filtered by `q`. */
function listByRole (ctx: UsersContext, role: Role, q: UserListQuery): Promise<Page<User>> {
  return readIndexPage(ctx.raw, ctx.cursors, {
    table: ctx.tables.users,
    index: 'role-id-index',
    key: { partition: ['role', role] },
    filter: listFilter(q),
    map: toUser,
    cursorScope: listScope(q),
    limit: q.limit,
    cursor: q.cursor
  })
}

/** GET /api/users: by role when given, else every user. */
function list (ctx: UsersContext, q: UserListQuery): Promise<Page<User>> {
  return q.role ? listByRole(ctx, q.role, q) : listAll(ctx, q)
}

/** Whether any user has the admin role, active or not (one read of the role index). */
async function hasAnyAdmin (ctx: UsersContext): Promise<boolean> {
  const page = await ctx.raw.queryPage<Pick<UserItem, 'id'>>({
    table: ctx.tables.users,
    index: 'role-id-index',
    key: { partition: ['role', 'admin'] },
    limit: 1,
    attributes: ['id']
  })
  return page.items.length > 0 || Boolean(page.lastKey)
}

/** Ids of every user with the admin role, active or not (the role index, every page: maintenance only). */
async function listAdminIds (ctx: UsersContext): Promise<string[]> {
  const ids: string[] = []
  let startKey: Record<string, unknown> | undefined
  do {
    const page = await ctx.raw.queryPage<Pick<UserItem, 'id'>>({
      table: ctx.tables.users,
      index: 'role-id-index',
      key: { partition: ['role', 'admin'] },
      startKey,
      attributes: ['id']
    })
    ids.push(...page.items.map(u => u.id))
    startKey = page.lastKey
  } while (startKey)
  return ids
}

/** Maintenance only (recounts, exports): every user. Never on a request path. */
async function * scanUsers (ctx: UsersContext): AsyncGenerator<User> {
  for await (const item of ctx.raw.scanAll<UserItem>(ctx.tables.users)) yield toUser(item)
}

// The e-mail claim: meta item `email#<email>`, `ref` the user id, `created_at` when taken.

interface EmailClaim { pk: string, ref?: string, created_at?: string }

const STALE_CLAIM_MS = 60_000
const emailClaim = (email: string): string => `email#${email}`

/**
 * Why an e-mail's claim could not be taken: a live one (`email_taken`), or one left behind by
 * a create that failed (`abandoned`: its user never appeared and its creator has surely given up).
 */
async function explainClaim (ctx: UsersContext, email: string, now: string): Promise<{ reason: 'email_taken' } | { reason: 'abandoned', ref: string | undefined }> {
  const claim = await ctx.raw.getItem<EmailClaim>(ctx.tables.meta, { pk: emailClaim(email) })
  const fresh = claim?.created_at && Date.parse(now) - Date.parse(claim.created_at) < STALE_CLAIM_MS
  if (fresh || (claim?.ref && (await getById(ctx, claim.ref)))) return { reason: 'email_taken' }
  return { reason: 'abandoned', ref: claim?.ref }
}

/** Takes the e-mail claim for `userId`; a claim left behind by a failed create is taken over. */
async function claimEmail (ctx: UsersContext, email: string, userId: string, now: string): Promise<UserOutcome<void>> {
  const key = { pk: emailClaim(email) }
  const taken = await writeOrExplain(
    () => ctx.raw.putItem(ctx.tables.meta, { ...key, ref: userId, created_at: now }, { condition: where.notExists('pk') }),
    () => explainClaim(ctx, email, now))
  if (taken.ok) return taken
  const found = taken.refusal
  if (found.reason === 'email_taken') return refused(found)
  // Taken over only while it is still the abandoned claim that was read.
  return writeOrExplain(
    async () => { await ctx.raw.updateItem(ctx.tables.meta, key, { set: { ref: userId, created_at: now } }, { condition: found.ref === undefined ? where.notExists('ref') : where.eq('ref', found.ref) }) },
    async (): Promise<UserRefusal> => ({ reason: 'email_taken' }))
}

// User writes.

/**
 * The change of a user write: the named fields (null removes one), `version` bumped (and
 * `session_version`, `admin_epoch` when asked). A new password that is not given a lifetime
 * ends the temporary one.
 */
function userChange (patch: UserPatch & { bumpSession?: boolean }, bumpEpoch: boolean | undefined): Update {
  const { bumpSession, ...fields } = patch
  const set: Record<string, unknown> = { updated_at: new Date().toISOString() }
  const remove = new Set<string>()
  for (const [k, v] of Object.entries(fields)) {
    if (v === null) remove.add(k)
    else if (v !== undefined) set[k] = v
  }
  if (typeof fields.name === 'string') set.name_lc = fields.name.toLowerCase()
  if (fields.password_hash !== undefined && fields.temporary_password_expires_at === undefined) remove.add('temporary_password_expires_at')
  return { set, add: { version: 1, session_version: bumpSession ? 1 : undefined, admin_epoch: bumpEpoch ? 1 : undefined }, remove }
}

/** The user's admin epoch is still `epoch` (absent counts as 0). */
const epochIs = (epoch: number): Condition =>
  epoch === 0 ? where.or(where.notExists('admin_epoch'), where.eq('admin_epoch', 0)) : where.eq('admin_epoch', epoch)

/** The user exists and is still as the write was decided on. */
function userGuard (c: WriteConditions): Condition {
  return where.and(
    where.exists('id'),
    c.expectedVersion !== undefined && where.eq('version', c.expectedVersion),
    ...Object.entries(c.expect ?? {}).filter(([, v]) => v !== undefined).map(([k, v]) => where.eq(k, v)),
    c.epoch !== undefined && epochIs(c.epoch)
  )
}

/** Why a user write was refused, from the user as it is now. */
async function explainUserWrite (ctx: UsersContext, id: string, expectedVersion: number | undefined): Promise<UserRefusal> {
  const current = await getById(ctx, id)
  if (!current) return { reason: 'not_found' }
  if (expectedVersion !== undefined && current.version !== expectedVersion) return { reason: 'stale' }
  return { reason: 'changed' }
}

/** One conditional UpdateItem of the named fields (no read-modify-write); bumps `version`. */
async function writeUser (ctx: UsersContext, id: string, patch: UserPatch & { bumpSession?: boolean }, c: WriteConditions): Promise<UserOutcome<User>> {
  try {
    return await writeOrExplain(
      async () => toUser((await ctx.raw.updateItem<UserItem>(ctx.tables.users, { id }, userChange(patch, c.bumpEpoch), {
        condition: userGuard(c),
        returnValues: 'ALL_NEW'
      }))!),
      () => explainUserWrite(ctx, id, c.expectedVersion))
  } finally {
    // Forget, do not store: responses to two writes can arrive out of order, and a load
    // started now sees both (an entry counts from when its load started).
    ctx.callers.evict(id)
  }
}

/** A write that ends sessions or changes a role answers once other instances' copies expired. */
async function settle (ctx: UsersContext, patch: UserPatch & { bumpSession?: boolean }): Promise<void> {
  const revokes = patch.bumpSession || patch.is_active === false || patch.role !== undefined
  if (revokes && ctx.cache.settleMs > 0) await sleep(ctx.cache.settleMs)
}

/**
 * For a request that finds its revocation already written (a repeated DELETE): returns
 * once the write is `settleMs` old, like the request that wrote it.
 */
async function settled (ctx: UsersContext, user: User): Promise<void> {
  const wait = Date.parse(user.updated_at) + ctx.cache.settleMs - Date.now()
  if (ctx.cache.settleMs > 0 && wait > 0) await sleep(wait)
}

/**
 * A successful login: sets last_login_at (and an upgraded hash), only if nothing that the
 * password check relied on has changed since (session, hash, still active) and the password
 * is not a temporary one past its lifetime (see `temporaryPasswordExpired`); else `changed`.
 */
async function recordLogin (ctx: UsersContext, user: User, at: string, rehash?: string): Promise<UserOutcome<User>> {
  const change: Update = { set: { last_login_at: at, updated_at: new Date().toISOString(), password_hash: rehash }, add: { version: 1 } }
  const unchanged = where.and(
    where.exists('id'),
    where.eq('session_version', user.session_version),
    where.eq('password_hash', user.password_hash),
    where.eq('is_active', true),
    where.or(where.notExists('temporary_password_expires_at'), where.gt('temporary_password_expires_at', at))
  )
  try {
    return await writeOrExplain(
      async () => toUser((await ctx.raw.updateItem<UserItem>(ctx.tables.users, { id: user.id }, change, { condition: unchanged, returnValues: 'ALL_NEW' }))!),
      async (): Promise<UserRefusal> => ({ reason: 'changed' }))
  } finally {
    ctx.callers.evict(user.id)
  }
}

/**
 * Creates a user. E-mail uniqueness is enforced by a conditional put of a claim item
 * (no transactions needed); the claim is released again if the user write fails.
 */
async function create (ctx: UsersContext, user: User): Promise<UserOutcome<User>> {
  const claim = await claimEmail(ctx, user.email, user.id, user.created_at)
  if (!claim.ok) return claim
  try {
    await ctx.raw.putItem(ctx.tables.users, toItem(user), { condition: where.notExists('id') })
  } catch (err) {
    await ctx.raw.deleteItem(ctx.tables.meta, { pk: emailClaim(user.email) }, { condition: where.eq('ref', user.id) }).catch(() => {})
    throw err
  }
  if (isActiveAdmin(user)) await addMember(ctx, user.id, epochOf(user))
  return { ok: true, value: { ...user, admin_epoch: epochOf(user) } }
}

/**
 * Writes only the named fields (no read-modify-write), bumps `version`, and, when
 * `expectedVersion` is given, only if the stored version still matches (If-Match).
 * `expect` adds conditions on the stored item. Role and status change through `updateAccess`.
 */
async function update (ctx: UsersContext, id: string, patch: PlainPatch & { bumpSession?: boolean }, opts: { expectedVersion?: number, expect?: WriteConditions['expect'] } = {}): Promise<UserOutcome<User>> {
  // The type says so; this says it to callers that cast (the set of active admins depends on it).
  if ('role' in patch || 'is_active' in patch) throw new TypeError('role and is_active change through updateAccess')
  const written = await writeUser(ctx, id, patch, { expectedVersion: opts.expectedVersion, expect: opts.expect })
  if (written.ok) await settle(ctx, patch)
  return written
}

/**
 * An update that may change role or is_active, decided on `before` and written only while
 * the user is still as in `before` (role, status, admin epoch; the version with If-Match),
 * keeping the set of active admins in step (see the set's section below): a user who
 * leaves the active admins leaves the set first, refused for the last one (`last_admin`);
 * one who joins is added right after the user write.
 */
async function updateAccess (ctx: UsersContext, before: User, patch: UserPatch & { bumpSession?: boolean }, opts: { expectedVersion?: number } = {}): Promise<UserOutcome<User>> {
  const after = { role: patch.role ?? before.role, is_active: patch.is_active ?? before.is_active }
  const leaves = isActiveAdmin(before) && !isActiveAdmin(after)
  const joins = !isActiveAdmin(before) && isActiveAdmin(after)
  const epoch = epochOf(before)
  if (leaves) {
    const reserved = await reserveRemoval(ctx, before.id, epoch)
    if (!reserved.ok) return reserved
  }
  // A failure other than a refusal may still have written: the set stays short of the user
  // (the safe side) until the next repair.
  const written = await writeUser(ctx, before.id, patch, {
    expectedVersion: opts.expectedVersion,
    expect: { role: before.role, is_active: before.is_active },
    epoch,
    bumpEpoch: leaves || joins
  })
  if (!written.ok) {
    // Refused by its condition: the write did not happen, give the place back.
    if (leaves) await undoRemoval(ctx, before.id, epoch).catch(() => {})
    return written
  }
  // At once, not after the settle wait. Should it fail, the set only misses an admin
  // (the safe side) until the next repair; the user write stands.
  if (joins) await addMember(ctx, written.value.id, epochOf(written.value)).catch(() => {})
  await settle(ctx, patch)
  return written
}

// The set of active admins: meta item `admins#active`, the last-admin guard.

/**
 * Without transactions the set and a user item are two writes; they are ordered so that the
 * set never counts anyone who is not an active admin (it may miss one for the moment between
 * the two writes, never the other way round), and every user's entry is versioned:
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
const ADMIN_SET = { pk: 'admins#active' }
const REPAIR_ATTEMPTS = 10
const epochKey = (id: string): string => `v#${id}`

/** The admin set item as stored (plus `v#<id>` numbers); `n` only on items of older versions. */
type AdminSetItem = Pick<MetaItem, 'pk' | 'ids' | 'rev' | 'n'> & Record<string, unknown>

const readAdminSet = (ctx: UsersContext): Promise<AdminSetItem | null> => ctx.raw.getItem<AdminSetItem>(ctx.tables.meta, ADMIN_SET)

/** The admin epoch the set last heard of, per user id. */
function heardEpochs (item: AdminSetItem | null): Map<string, number> {
  const heard = new Map<string, number>()
  for (const [k, v] of Object.entries(item ?? {})) if (k.startsWith('v#') && typeof v === 'number') heard.set(k.slice(2), v)
  return heard
}

/** The set of active admins as stored: the members, and the admin epoch it holds per user. */
async function adminSet (ctx: UsersContext): Promise<{ ids: string[], epochs: Record<string, number> }> {
  const item = await readAdminSet(ctx)
  return { ids: [...(item?.ids ?? [])].sort(), epochs: Object.fromEntries(heardEpochs(item)) }
}

/**
 * Takes `id` (at admin epoch `epoch`) out of the set before the user write that makes it leave.
 * Refused atomically when nobody else would remain in the set (`last_admin`), or when the set
 * has heard of a newer epoch of the user (`access_changing`: someone else is changing it).
 */
function reserveRemoval (ctx: UsersContext, id: string, epoch: number): Promise<UserOutcome<unknown>> {
  return writeOrExplain(
    () => ctx.raw.updateItem(ctx.tables.meta, ADMIN_SET, { set: { [epochKey(id)]: epoch + 1 }, delete: { ids: new Set([id]) }, add: { rev: 1 } }, {
      condition: where.and(
        where.absentOrLe(epochKey(id), epoch),
        where.or(where.size('ids', '>', 1), where.and(where.size('ids', '=', 1), where.not(where.contains('ids', id))))
      )
    }),
    async (): Promise<UserRefusal> => {
      const heard = (await readAdminSet(ctx))?.[epochKey(id)]
      return typeof heard === 'number' && heard > epoch ? { reason: 'access_changing' } : { reason: 'last_admin' }
    })
}

/**
 * Gives a reservation back after its user write was refused, if the user is still the active
 * admin it was at `epoch`: nothing else can have moved it meanwhile (the reservation holds the
 * set's entry one epoch ahead, so any other change of that epoch is refused).
 */
async function undoRemoval (ctx: UsersContext, id: string, epoch: number): Promise<void> {
  const user = await getById(ctx, id)
  if (!user || !isActiveAdmin(user) || epochOf(user) !== epoch) return
  await applied(ctx.raw.updateItem(ctx.tables.meta, ADMIN_SET, { set: { [epochKey(id)]: epoch }, add: { ids: new Set([id]), rev: 1 } }, {
    condition: where.and(where.eq(epochKey(id), epoch + 1), where.not(where.contains('ids', id)))
  }))
}

/** Puts `id`, an active admin at `epoch`, into the set, unless the set has heard of that epoch or a later one. */
async function addMember (ctx: UsersContext, id: string, epoch: number): Promise<void> {
  await applied(ctx.raw.updateItem(ctx.tables.meta, ADMIN_SET, { set: { [epochKey(id)]: epoch }, add: { ids: new Set([id]), rev: 1 } }, {
    condition: where.or(where.notExists(epochKey(id)), where.lt(epochKey(id), epoch))
  }))
}

/**
 * The repair's fence: the set holds an epoch of the user that the user item has not reached
 * (a removal between its two writes, abandoned by a crash, or a corrupted set). Moving the user
 * to that epoch makes any late user write of that removal fail; undefined if the user changed.
 */
async function fence (ctx: UsersContext, user: User, epoch: number): Promise<User | undefined> {
  try {
    const fenced = await writeOrExplain(
      async () => toUser((await ctx.raw.updateItem<UserItem>(ctx.tables.users, { id: user.id }, { set: { admin_epoch: epoch } }, {
        condition: epochIs(epochOf(user)),
        returnValues: 'ALL_NEW'
      }))!),
      async () => 'changed' as const)
    return fenced.ok ? fenced.value : undefined
  } finally {
    ctx.callers.evict(user.id)
  }
}

/** A user the repair looks at: as it is (null: no such user), after any fence; 'changed' when the fence was refused. */
interface RepairEntry { id: string, user: User | null | 'changed' }

async function repairEntry (ctx: UsersContext, id: string, heard: number | undefined): Promise<RepairEntry> {
  const user = await getById(ctx, id)
  if (!user || heard === undefined || heard <= epochOf(user)) return { id, user }
  return { id, user: await fence(ctx, user, heard) ?? 'changed' }
}

/** The repaired set: members exactly the active admins, each entry its user's epoch, leftovers removed. */
function repairedSet (item: AdminSetItem | null, entries: Array<{ id: string, user: User | null }>): { change: Update, members: number } {
  const members = entries.flatMap(e => (e.user && isActiveAdmin(e.user) ? [e.id] : []))
  const set: Record<string, unknown> = { rev: (item?.rev ?? 0) + 1 }
  const remove: string[] = []
  if (members.length) set.ids = new Set(members)
  else remove.push('ids')
  for (const e of entries) {
    if (e.user) set[epochKey(e.id)] = epochOf(e.user)
    else remove.push(epochKey(e.id)) // no such user
  }
  if (item && 'n' in item) remove.push('n')
  return { change: { set, remove }, members: members.length }
}

/** The set item is still the one read (the repair's lock). */
function sameRevision (item: AdminSetItem | null): Condition {
  if (!item) return where.notExists('pk')
  if (item.rev === undefined) return where.notExists('rev')
  return where.eq('rev', item.rev)
}

/**
 * Recomputes the set of active admins from the user items, whatever state it is in (lagging,
 * corrupted, missing, or of an older version): every user the set names and every user with
 * the admin role is read (consistently); members are exactly the active admins; each entry's
 * epoch is the user's, after fencing off any removal the set is ahead of. Written in one
 * update conditioned on the set's `rev`: a concurrent change makes it start over.
 * Start-up, seed:admin and the operator scripts run it. Returns the number of active admins.
 */
async function repairAdminSet (ctx: UsersContext): Promise<number> {
  for (let attempt = 0; attempt < REPAIR_ATTEMPTS; attempt++) {
    const item = await readAdminSet(ctx)
    const heard = heardEpochs(item)
    const candidates = new Set([...(item?.ids ?? []), ...heard.keys(), ...await listAdminIds(ctx)])
    const entries = await Promise.all([...candidates].map(id => repairEntry(ctx, id, heard.get(id))))
    const settledEntries = entries.filter((e): e is { id: string, user: User | null } => e.user !== 'changed')
    if (settledEntries.length < entries.length) continue
    const repaired = repairedSet(item, settledEntries)
    if (await applied(ctx.raw.updateItem(ctx.tables.meta, ADMIN_SET, repaired.change, { condition: sameRevision(item) }))) return repaired.members
  }
  throw refusalError({ reason: 'repair_contended' })
}

// The factory: the repository over the tables of `users` and `meta`.

export function createUsersRepository (users: TableModel, meta: TableModel, cursors: CursorCodec, raw: RawClient, cache: { ttlMs: number, settleMs: number }) {
  const ctx: UsersContext = {
    raw,
    cursors,
    tables: { users: users.table().name, meta: meta.table().name },
    cache,
    callers: createTtlCache<User | null>({ ttlMs: cache.ttlMs, max: 10_000 })
  }
  return {
    getById: (id: string) => getById(ctx, id),
    getCaller: (id: string) => getCaller(ctx, id),
    getByEmail: (email: string) => getByEmail(ctx, email),
    list: (q: UserListQuery) => list(ctx, q),
    hasAnyAdmin: () => hasAnyAdmin(ctx),
    scanAll: () => scanUsers(ctx),
    settled: (user: User) => settled(ctx, user),
    recordLogin: (user: User, at: string, rehash?: string) => recordLogin(ctx, user, at, rehash),
    /** `create`, refused with `email_taken` rather than throwing. */
    tryCreate: (user: User) => create(ctx, user),
    create: async (user: User): Promise<User> => orThrow(await create(ctx, user)),
    /** `update`, refused (`not_found`, `stale`, `changed`) rather than throwing. */
    tryUpdate: (id: string, patch: PlainPatch & { bumpSession?: boolean }, opts?: { expectedVersion?: number, expect?: WriteConditions['expect'] }) => update(ctx, id, patch, opts),
    update: async (id: string, patch: PlainPatch & { bumpSession?: boolean }, opts?: { expectedVersion?: number, expect?: WriteConditions['expect'] }): Promise<User> =>
      orThrow(await update(ctx, id, patch, opts)),
    /** `updateAccess`, refused (`last_admin`, `access_changing`, and those of `update`) rather than throwing. */
    tryUpdateAccess: (before: User, patch: UserPatch & { bumpSession?: boolean }, opts?: { expectedVersion?: number }) => updateAccess(ctx, before, patch, opts),
    updateAccess: async (before: User, patch: UserPatch & { bumpSession?: boolean }, opts?: { expectedVersion?: number }): Promise<User> =>
      orThrow(await updateAccess(ctx, before, patch, opts)),
    adminSet: () => adminSet(ctx),
    repairAdminSet: () => repairAdminSet(ctx)
  }
}

export type UsersRepository = ReturnType<typeof createUsersRepository>
