/** User management (Phase 4): RBAC per role, validation, pagination, concurrency, invariants. */
import t from 'tap'
import type { Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { build, assertProblem, database, ADMIN_EMAIL, ADMIN_PASSWORD, type Api } from './helper.js'
import type { RawClient } from '../src/db/raw.js'
import type { Update } from '../src/db/expressions.js'
import { createCursorCodec } from '../src/db/pagination.js'
import { getModels } from '../src/data.js'
import { isActiveAdmin, temporaryPasswordExpired, type User } from '../src/domain/users.js'
import { createUsersRepository } from '../src/modules/users/users.repository.js'
import { createUsersService } from '../src/modules/users/users.service.js'
import { resetPasswordByEmail, seedAdmin, type RecoveryDeps } from '../src/modules/users/recovery.js'

const MISSING_ID = '01JDQ2Z5Y3K4M5N6P7Q8R9S0TV'
const HOUR = 3_600_000
/** The cheapest argon2 the config allows: the randomised tests log in often. */
const FAST_HASHING = { ARGON2_MEMORY_KIB: '1024', ARGON2_TIME_COST: '1' }

/**
 * The stored set of active admins next to the truth recomputed from every user item, and the
 * users whose entry in the set holds another admin epoch than the user item (none at rest).
 */
async function adminSetAndTruth (api: Api): Promise<{ set: string[], truth: string[], stale: string[] }> {
  const repo = api.app.repos.users
  const users: User[] = []
  for await (const u of repo.scanAll()) users.push(u)
  const stored = await repo.adminSet()
  return {
    set: stored.ids,
    truth: users.filter(isActiveAdmin).map(u => u.id).sort(),
    stale: users.filter(u => stored.epochs[u.id] !== undefined && stored.epochs[u.id] !== u.admin_epoch).map(u => u.id)
  }
}

/** The set equals the truth, holds every user's epoch, and someone is an active admin. */
async function assertAdminSetExact (t: Test, api: Api, label: string): Promise<string[]> {
  const { set, truth, stale } = await adminSetAndTruth(api)
  t.same(set, truth, `${label}: the set of active admins is exactly the active admins`)
  t.same(stale, [], `${label}: every entry holds its user's admin epoch`)
  t.ok(truth.length > 0, `${label}: an active admin remains`)
  return truth
}

/** A raw client that holds the first matching UpdateItem until `open()` (to force an interleaving). */
/** An app, its users repository and toolkit, the two tables the admin set lives in, and the first admin. */
async function adminSetFixture (t: Test) {
  const api = await build(t)
  const root = await api.adminToken()
  const rootId: string = (await api.request({ method: 'GET', url: '/api/auth/me', headers: api.auth(root) })).json().id
  return { api, repo: api.app.repos.users, raw: api.app.db.raw, metaTable: `${api.config.tablePrefix}meta`, usersTable: `${api.config.tablePrefix}users`, root, rootId }
}

function gated (raw: RawClient, match: (table: string, change: Update) => boolean) {
  let arrive!: () => void
  let release!: () => void
  const reached = new Promise<void>(resolve => { arrive = resolve })
  const opened = new Promise<void>(resolve => { release = resolve })
  let armed = true
  const client: RawClient = {
    ...raw,
    async updateItem (table, key, change, opts) {
      if (armed && match(table, change)) {
        armed = false
        arrive()
        await opened
      }
      return raw.updateItem(table, key, change, opts)
    }
  }
  return { client, reached, open: release }
}

/** A second users repository on the app's tables, over `raw` (e.g. a gated one), without caches. */
function repoOver (api: Api, raw: RawClient) {
  const models = getModels(api.config.tablePrefix)
  return createUsersRepository(models.users, models.meta, createCursorCodec('test'), raw, { ttlMs: 0, settleMs: 0 })
}

const recoveryDeps = (api: Api, extra: Partial<RecoveryDeps> = {}): RecoveryDeps => ({
  users: api.app.repos.users,
  passwords: api.app.passwords,
  stats: api.app.stats,
  unlock: email => api.app.repos.auth.unlock(email),
  ...extra
})

/** Small seeded PRNG (mulberry32), so that a failing run can be repeated with its seed. */
function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

async function actors (api: Api) {
  const admin = await api.adminToken()
  const manager = await api.userWithRole('manager')
  const user = await api.userWithRole('user')
  const target = await api.userWithRole('user')
  return { admin, manager, user, target }
}

t.test('RBAC: every users operation for every role', async t => {
  const api = await build(t)
  const a = await actors(api)
  const tokens: Record<string, string | undefined> = { admin: a.admin, manager: a.manager.token, user: a.user.token, anonymous: undefined }
  let n = 0
  const ops: Array<{ name: string, expect: Record<string, number>, req: () => { method: string, url: string, payload?: unknown } }> = [
    { name: 'listUsers', expect: { admin: 200, manager: 200, user: 403, anonymous: 401 }, req: () => ({ method: 'GET', url: '/api/users' }) },
    { name: 'getUser (other)', expect: { admin: 200, manager: 200, user: 403, anonymous: 401 }, req: () => ({ method: 'GET', url: `/api/users/${a.target.id}` }) },
    { name: 'getUser (self)', expect: { admin: 200, manager: 200, user: 200, anonymous: 401 }, req: () => ({ method: 'GET', url: `/api/users/${a.user.id}` }) },
    { name: 'createUser', expect: { admin: 201, manager: 403, user: 403, anonymous: 401 }, req: () => ({ method: 'POST', url: '/api/users', payload: { email: `rbac${++n}@example.com`, name: 'RBAC', role: 'user', password: 'a fine long passphrase' } }) },
    { name: 'updateUser name', expect: { admin: 200, manager: 200, user: 403, anonymous: 401 }, req: () => ({ method: 'PUT', url: `/api/users/${a.target.id}`, payload: { name: `Renamed ${++n}` } }) },
    { name: 'updateUser role', expect: { admin: 200, manager: 403, user: 403, anonymous: 401 }, req: () => ({ method: 'PUT', url: `/api/users/${a.target.id}`, payload: { role: 'user' } }) },
    { name: 'resetUserPassword', expect: { admin: 200, manager: 403, user: 403, anonymous: 401 }, req: () => ({ method: 'POST', url: `/api/users/${a.target.id}/reset-password` }) },
    { name: 'deactivateUser', expect: { admin: 204, manager: 403, user: 403, anonymous: 401 }, req: () => ({ method: 'DELETE', url: `/api/users/${a.target.id}` }) }
  ]
  // Admin last, so that a destructive admin call does not change what the others see.
  for (const op of ops) {
    for (const role of ['anonymous', 'user', 'manager', 'admin']) {
      const token = tokens[role]
      const res = await api.request({ ...op.req(), headers: token ? api.auth(token) : {} } as never)
      t.equal(res.statusCode, op.expect[role], `${op.name} as ${role} → ${op.expect[role]} (${res.body.slice(0, 120)})`)
      if (res.statusCode === 403) t.equal(res.json().code, 'forbidden')
    }
  }
})

t.test('create users: validation, uniqueness, temporary passwords', async t => {
  const api = await build(t)
  const admin = api.auth(await api.adminToken())
  const create = (payload: object) => api.request({ method: 'POST', url: '/api/users', headers: admin, payload })

  const res = await create({ email: 'Grace.Hopper@Example.com', name: '  Grace Hopper ', role: 'manager', password: 'a fine long passphrase' })
  t.equal(res.statusCode, 201)
  const user = res.json().user
  t.equal(user.email, 'grace.hopper@example.com', 'e-mail stored normalised')
  t.equal(user.name, 'Grace Hopper', 'name trimmed')
  t.equal(user.must_change_password, false)
  t.equal(user.last_login_at, null)
  t.notOk(res.json().temporary_password, 'no temporary password when one was given')
  t.equal(res.headers.location, `/api/users/${user.id}`)
  t.equal(res.headers.etag, '"v1"')
  t.notMatch(res.body, /argon2|hash/)

  assertProblem(t, await create({ email: 'GRACE.HOPPER@example.com', name: 'Dup', role: 'user', password: 'a fine long passphrase' }), 409, 'email_taken')
  assertProblem(t, await create({ email: ADMIN_EMAIL, name: 'Dup', role: 'user' }), 409, 'email_taken')

  const temp = await create({ email: 'temp@example.com', name: 'Temp', role: 'user' })
  t.equal(temp.statusCode, 201)
  t.match(temp.json().temporary_password, /^[A-Za-z0-9_-]{20,}$/)
  t.equal(temp.json().user.must_change_password, true)

  // Bad input: 400, never 5xx, and nothing is created.
  const bad: Array<[string, object]> = [
    ['missing email', { name: 'X', role: 'user' }],
    ['bad email', { email: 'nope', name: 'X', role: 'user' }],
    ['unknown role', { email: 'x1@example.com', name: 'X', role: 'root' }],
    ['blank name', { email: 'x2@example.com', name: '   ', role: 'user' }],
    ['empty name', { email: 'x3@example.com', name: '', role: 'user' }],
    ['long name', { email: 'x4@example.com', name: 'n'.repeat(101), role: 'user' }],
    ['mass assignment: id', { email: 'x5@example.com', name: 'X', role: 'user', id: '01JDQ2Z5Y3K4M5N6P7Q8R9S0TV' }],
    ['mass assignment: is_active', { email: 'x6@example.com', name: 'X', role: 'user', is_active: false }],
    ['mass assignment: must_change_password', { email: 'x7@example.com', name: 'X', role: 'user', must_change_password: false }],
    ['short password', { email: 'x8@example.com', name: 'X', role: 'user', password: 'short' }],
    ['wrong types', { email: ['a'], name: 5, role: true }],
    ['not an object', [1, 2, 3]]
  ]
  for (const [name, payload] of bad) {
    const r = await create(payload)
    t.equal(r.statusCode, 400, name)
  }
  assertProblem(t, await create({ email: 'x9@example.com', name: 'X', role: 'user', password: 'password123456' }), 400, 'password_policy')
  const list = await api.request({ method: 'GET', url: '/api/users?limit=100', headers: admin })
  t.equal(list.json().items.length, 3, 'only the valid users exist (admin, grace, temp)')

  // Concurrent creates of one e-mail: exactly one wins.
  const results = await Promise.all(Array.from({ length: 6 }, (_, i) => create({ email: 'race@example.com', name: `Racer ${i}`, role: 'user' })))
  t.equal(results.filter(r => r.statusCode === 201).length, 1, 'exactly one 201')
  t.equal(results.filter(r => r.statusCode === 409).length, 5, 'the others 409')
})

t.test('get users: self, others, unknown and malformed ids', async t => {
  const api = await build(t)
  const { admin, user, target } = await actors(api)
  const self = await api.request({ method: 'GET', url: `/api/users/${user.id}`, headers: api.auth(user.token) })
  t.equal(self.statusCode, 200)
  t.equal(self.json().email, user.email)
  t.match(String(self.headers.etag), /^"v\d+"$/)
  assertProblem(t, await api.request({ method: 'GET', url: `/api/users/${target.id}`, headers: api.auth(user.token) }), 403, 'forbidden')
  assertProblem(t, await api.request({ method: 'GET', url: `/api/users/${MISSING_ID}`, headers: api.auth(admin) }), 404, 'not_found')
  assertProblem(t, await api.request({ method: 'GET', url: '/api/users/not-a-ulid', headers: api.auth(admin) }), 400, 'validation_failed')
  assertProblem(t, await api.request({ method: 'GET', url: `/api/users/${'x'.repeat(300)}`, headers: api.auth(admin) }), 400)
})

t.test('list users: filters and pagination', async t => {
  const api = await build(t)
  const admin = api.auth(await api.adminToken())
  const made: string[] = []
  for (let i = 0; i < 23; i++) {
    const role = i % 3 === 0 ? 'manager' : 'user'
    const res = await api.request({ method: 'POST', url: '/api/users', headers: admin, payload: { email: `person${i}@example.com`, name: i === 7 ? 'Ada Lovelace' : `Person ${i}`, role, password: 'a fine long passphrase' } })
    made.push(res.json().user.id)
  }
  await api.request({ method: 'DELETE', url: `/api/users/${made[1]}`, headers: admin })

  // Walk all pages: newest first, no duplicates, none missing.
  const seen: string[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const res = await api.request({ method: 'GET', url: `/api/users?limit=5${cursor ? `&cursor=${cursor}` : ''}`, headers: admin })
    t.equal(res.statusCode, 200)
    const body = res.json()
    t.ok(body.items.length <= 5)
    seen.push(...body.items.map((u: { id: string }) => u.id))
    cursor = body.next_cursor
    pages++
  } while (cursor && pages < 20)
  t.equal(seen.length, 24, 'every user once (23 + admin)')
  t.equal(new Set(seen).size, 24, 'no duplicates')
  t.same(seen, [...seen].sort().reverse(), 'newest first')

  const managers = (await api.request({ method: 'GET', url: '/api/users?role=manager&limit=100', headers: admin })).json().items
  t.equal(managers.length, 8)
  t.ok(managers.every((u: { role: string }) => u.role === 'manager'))
  const inactive = (await api.request({ method: 'GET', url: '/api/users?is_active=false', headers: admin })).json().items
  t.same(inactive.map((u: { id: string }) => u.id), [made[1]])
  const activeUsers = (await api.request({ method: 'GET', url: '/api/users?role=user&is_active=true&limit=100', headers: admin })).json().items
  t.equal(activeUsers.length, 14)
  const found = (await api.request({ method: 'GET', url: '/api/users?search=LOVELACE', headers: admin })).json().items
  t.same(found.map((u: { name: string }) => u.name), ['Ada Lovelace'], 'search by name, case-insensitive')
  const byEmail = (await api.request({ method: 'GET', url: '/api/users?search=person12%40', headers: admin })).json().items
  t.same(byEmail.map((u: { email: string }) => u.email), ['person12@example.com'], 'search by e-mail')

  // Filtered pagination walks too.
  const filtered: string[] = []
  cursor = null
  do {
    const body: { items: Array<{ id: string }>, next_cursor: string | null } = (await api.request({ method: 'GET', url: `/api/users?role=user&limit=4${cursor ? `&cursor=${cursor}` : ''}`, headers: admin })).json()
    filtered.push(...body.items.map((u: { id: string }) => u.id))
    cursor = body.next_cursor
  } while (cursor)
  t.equal(new Set(filtered).size, 15)

  // Bad list input.
  const first = (await api.request({ method: 'GET', url: '/api/users?limit=2', headers: admin })).json()
  assertProblem(t, await api.request({ method: 'GET', url: `/api/users?role=manager&cursor=${first.next_cursor}`, headers: admin }), 400, 'invalid_cursor')
  assertProblem(t, await api.request({ method: 'GET', url: `/api/users?cursor=${first.next_cursor.slice(0, -3)}abc`, headers: admin }), 400, 'invalid_cursor')
  assertProblem(t, await api.request({ method: 'GET', url: '/api/users?cursor=!!!', headers: admin }), 400, 'validation_failed')
  for (const q of ['limit=0', 'limit=101', 'limit=abc', 'role=root', 'is_active=maybe', 'unknown=1', `search=${'s'.repeat(101)}`]) {
    assertProblem(t, await api.request({ method: 'GET', url: `/api/users?${q}`, headers: admin }), 400, 'validation_failed')
  }
})

t.test('update users: fields per role, ETags, concurrency', async t => {
  const api = await build(t)
  const { admin, manager, target } = await actors(api)
  const put = (token: string, id: string, payload: object, headers: Record<string, string> = {}) =>
    api.request({ method: 'PUT', url: `/api/users/${id}`, headers: { ...api.auth(token), ...headers }, payload })

  const renamed = await put(manager.token, target.id, { name: 'Renamed By Manager' })
  t.equal(renamed.statusCode, 200)
  t.equal(renamed.json().name, 'Renamed By Manager')
  const managerRole = await put(manager.token, target.id, { name: 'x', role: 'admin' })
  assertProblem(t, managerRole, 403, 'forbidden')
  t.match(managerRole.json().errors, [{ path: '/body/role' }])
  assertProblem(t, await put(manager.token, target.id, { is_active: false }), 403, 'forbidden')
  assertProblem(t, await put(manager.token, manager.id, { role: 'admin' }), 403, 'forbidden', 'no self-promotion')

  assertProblem(t, await put(admin, target.id, {}), 400, 'validation_failed')
  assertProblem(t, await put(admin, target.id, { email: 'new@example.com' }), 400, 'validation_failed')
  assertProblem(t, await put(admin, target.id, { password_hash: 'x' }), 400, 'validation_failed')
  assertProblem(t, await put(admin, target.id, { role: 'superuser' }), 400, 'validation_failed')
  assertProblem(t, await put(admin, MISSING_ID, { name: 'Nobody' }), 404, 'not_found')

  // If-Match: the current ETag passes, a stale one is 412 and changes nothing.
  const current = await api.request({ method: 'GET', url: `/api/users/${target.id}`, headers: api.auth(admin) })
  const etag = String(current.headers.etag)
  const ok = await put(admin, target.id, { name: 'With ETag' }, { 'if-match': etag })
  t.equal(ok.statusCode, 200)
  t.not(ok.headers.etag, etag, 'a new ETag')
  assertProblem(t, await put(admin, target.id, { name: 'Stale' }, { 'if-match': etag }), 412, 'precondition_failed')
  assertProblem(t, await put(admin, target.id, { name: 'Garbage' }, { 'if-match': '"nope"' }), 412, 'precondition_failed')
  t.equal((await api.request({ method: 'GET', url: `/api/users/${target.id}`, headers: api.auth(admin) })).json().name, 'With ETag')

  // Parallel updates of different fields both survive (no read-modify-write of the item).
  const [a, b] = await Promise.all([put(admin, target.id, { name: 'Parallel Name' }), put(admin, target.id, { role: 'manager' })])
  t.equal(a.statusCode, 200)
  t.equal(b.statusCode, 200)
  const after = (await api.request({ method: 'GET', url: `/api/users/${target.id}`, headers: api.auth(admin) })).json()
  t.equal(after.name, 'Parallel Name')
  t.equal(after.role, 'manager')

  // Parallel If-Match updates at one version: exactly one wins.
  const v = String((await api.request({ method: 'GET', url: `/api/users/${target.id}`, headers: api.auth(admin) })).headers.etag)
  const racers = await Promise.all(Array.from({ length: 5 }, (_, i) => put(admin, target.id, { name: `Racer ${i}` }, { 'if-match': v })))
  t.equal(racers.filter(r => r.statusCode === 200).length, 1, 'one winner')
  t.equal(racers.filter(r => r.statusCode === 412).length, 4, 'the rest 412')
})

t.test('the last active admin can be neither deactivated nor demoted', async t => {
  const api = await build(t)
  const root = await api.adminToken()
  const rootId = (await api.request({ method: 'GET', url: '/api/auth/me', headers: api.auth(root) })).json().id
  assertProblem(t, await api.request({ method: 'PUT', url: `/api/users/${rootId}`, headers: api.auth(root), payload: { role: 'user' } }), 403, 'forbidden')
  assertProblem(t, await api.request({ method: 'DELETE', url: `/api/users/${rootId}`, headers: api.auth(root) }), 403, 'forbidden')

  // Two admins demote each other at the same moment: at most one can succeed.
  for (let round = 0; round < 3; round++) {
    const second = await api.userWithRole('admin')
    const rootNow = (await api.login(ADMIN_EMAIL, ADMIN_PASSWORD)).token
    const [x, y] = await Promise.all([
      api.request({ method: 'PUT', url: `/api/users/${second.id}`, headers: api.auth(rootNow), payload: { role: 'user' } }),
      api.request({ method: 'PUT', url: `/api/users/${rootId}`, headers: api.auth(second.token), payload: { role: 'user' } })
    ])
    const ok = [x, y].filter(r => r.statusCode === 200).length
    t.equal(ok, 1, `round ${round}: exactly one demotion succeeds (${x.statusCode}, ${y.statusCode})`)
    for (const r of [x, y]) if (r.statusCode !== 200) t.ok(['last_admin', 'forbidden'].includes(r.json().code), `refused with ${r.json().code}`)
    const admins = (await api.request({ method: 'GET', url: '/api/users?role=admin&is_active=true', headers: api.auth(x.statusCode === 200 ? rootNow : second.token) })).json().items
    t.equal(admins.length, 1, 'one active admin remains')
    if (y.statusCode === 200) {
      // The second admin won: give the root its role back for the next round.
      await api.request({ method: 'PUT', url: `/api/users/${rootId}`, headers: api.auth(second.token), payload: { role: 'admin' } })
      await api.request({ method: 'DELETE', url: `/api/users/${second.id}`, headers: api.auth((await api.login(ADMIN_EMAIL, ADMIN_PASSWORD)).token) })
    }
  }

  // The guard itself: the last member cannot leave the set, even through the repository.
  const repo = api.app.repos.users
  const rootUser = (await repo.getById(rootId))!
  await t.rejects(repo.updateAccess(rootUser, { role: 'user' }), { code: 'last_admin' }, 'the set never loses its last active admin')
  t.same((await repo.adminSet()).ids, [rootId])
  t.equal(await repo.repairAdminSet(), 1)

  // Concurrent DELETEs of one admin: idempotent, all 204, and the other admin remains.
  const extra = await api.userWithRole('admin')
  const root2 = (await api.login(ADMIN_EMAIL, ADMIN_PASSWORD)).token
  const dels = await Promise.all(Array.from({ length: 3 }, () => api.request({ method: 'DELETE', url: `/api/users/${extra.id}`, headers: api.auth(root2) })))
  t.same(dels.map(r => r.statusCode), [204, 204, 204], 'concurrent deletes of one admin are all 204')
  await t.rejects(repo.updateAccess((await repo.getById(rootId))!, { is_active: false }), { code: 'last_admin' }, 'the root is the last admin again')
  t.same(await assertAdminSetExact(t, api, 'after concurrent deletes'), [rootId])
})

t.test('deactivate and reset password', async t => {
  const api = await build(t)
  const { admin, target } = await actors(api)
  const del = await api.request({ method: 'DELETE', url: `/api/users/${target.id}`, headers: api.auth(admin) })
  t.equal(del.statusCode, 204)
  t.equal(del.body, '')
  t.equal((await api.request({ method: 'DELETE', url: `/api/users/${target.id}`, headers: api.auth(admin) })).statusCode, 204, 'idempotent')
  const got = (await api.request({ method: 'GET', url: `/api/users/${target.id}`, headers: api.auth(admin) })).json()
  t.equal(got.is_active, false, 'deactivated, not deleted')
  assertProblem(t, await api.request({ method: 'DELETE', url: `/api/users/${MISSING_ID}`, headers: api.auth(admin) }), 404, 'not_found')

  const other = await api.userWithRole('user')
  const reset = await api.request({ method: 'POST', url: `/api/users/${other.id}/reset-password`, headers: api.auth(admin) })
  t.equal(reset.statusCode, 200)
  const temp = reset.json().temporary_password
  t.match(temp, /^[A-Za-z0-9_-]{20,}$/)
  assertProblem(t, await api.request({ method: 'GET', url: '/api/auth/me', headers: api.auth(other.token) }), 401, 'token_revoked', 'old sessions end')
  assertProblem(t, await api.request({ method: 'POST', url: '/api/auth/login', payload: { email: other.email, password: other.password } }), 401, 'invalid_credentials')
  const { body } = await api.login(other.email, temp)
  t.equal(body.user.must_change_password, true)
  assertProblem(t, await api.request({ method: 'POST', url: `/api/users/${MISSING_ID}/reset-password`, headers: api.auth(admin) }), 404, 'not_found')
})

t.test('issue 15: promoted and deactivated within the revocation wait, then two admins demote each other', async t => {
  // DYNAMODB_ENDPOINT set: role changes wait out the other instances' caches before answering.
  const api = await build(t, { DYNAMODB_ENDPOINT: (await database()).endpoint, AUTH_CACHE_MS: '300' })
  t.equal(api.config.authCache.settleMs, 300)
  const repo = api.app.repos.users
  const root = await api.adminToken()
  const rootId = (await api.request({ method: 'GET', url: '/api/auth/me', headers: api.auth(root) })).json().id
  const second = await api.userWithRole('admin')
  const x = await api.userWithRole('user')

  const promoting = api.request({ method: 'PUT', url: `/api/users/${x.id}`, headers: api.auth(root), payload: { role: 'admin' } })
  while ((await repo.getById(x.id))!.role !== 'admin') await sleep(2)
  // The promotion is written but not answered yet: deactivate X meanwhile.
  const deactivating = api.request({ method: 'DELETE', url: `/api/users/${x.id}`, headers: api.auth(second.token) })
  t.equal((await promoting).statusCode, 200)
  t.equal((await deactivating).statusCode, 204)
  t.same(await assertAdminSetExact(t, api, 'after promote + deactivate'), [rootId, second.id].sort(), 'X is not counted')

  const [a, b] = await Promise.all([
    api.request({ method: 'PUT', url: `/api/users/${second.id}`, headers: api.auth(root), payload: { role: 'user' } }),
    api.request({ method: 'PUT', url: `/api/users/${rootId}`, headers: api.auth(second.token), payload: { role: 'user' } })
  ])
  t.same([a.statusCode, b.statusCode].sort(), [200, 409], 'exactly one demotion succeeds')
  t.equal([a, b].find(r => r.statusCode === 409)!.json().code, 'last_admin')
  t.equal((await assertAdminSetExact(t, api, 'after the mutual demotion')).length, 1)
})

t.test('interleavings of the admin set protocol, forced', async t => {
  const { api, repo, raw, metaTable, usersTable, root, rootId } = await adminSetFixture(t)

  // A late add: the promotion's set update arrives after the user was deactivated.
  const x = await api.userWithRole('user')
  const lateAdd = gated(raw, (table, change) => table === metaTable && change.add?.ids !== undefined)
  const promoting = repoOver(api, lateAdd.client).updateAccess((await repo.getById(x.id))!, { role: 'admin' })
  await lateAdd.reached
  t.equal((await repo.getById(x.id))!.role, 'admin', 'the promotion is written, its set update held')
  t.equal((await api.request({ method: 'DELETE', url: `/api/users/${x.id}`, headers: api.auth(root) })).statusCode, 204)
  lateAdd.open()
  await promoting
  t.same(await assertAdminSetExact(t, api, 'late add'), [rootId], 'the late add cannot put back a deactivated user')

  // A removal whose user write is refused (a stale If-Match): its reservation is given back.
  const y = await api.userWithRole('admin')
  const held = gated(raw, table => table === usersTable)
  const yBefore = (await repo.getById(y.id))!
  const demoting = repoOver(api, held.client).updateAccess(yBefore, { role: 'user' }, { expectedVersion: yBefore.version })
  await held.reached
  t.same((await repo.adminSet()).ids, [rootId], 'reserved: out of the set before the user write')
  await repo.update(y.id, { name: 'Renamed meanwhile' })
  held.open()
  await t.rejects(demoting, { code: 'precondition_failed' })
  t.same(await assertAdminSetExact(t, api, 'refused removal'), [rootId, y.id].sort(), 'back in the set')

  // A removal abandoned between its two writes (a crash): the repair fences it off.
  const abandoned = gated(raw, table => table === usersTable)
  const yNow = (await repo.getById(y.id))!
  const crashed = repoOver(api, abandoned.client).updateAccess(yNow, { is_active: false })
  await abandoned.reached
  t.equal(await repo.repairAdminSet(), 2, 'the repair counts the user that is still an active admin')
  t.ok((await repo.getById(y.id))!.admin_epoch! > yNow.admin_epoch!, 'fenced: its epoch moved past the reservation')
  abandoned.open()
  await t.rejects(crashed, { code: 'conflict' }, 'the late user write of the abandoned removal is refused')
  t.equal((await repo.getById(y.id))!.is_active, true)
  t.same(await assertAdminSetExact(t, api, 'after the fence'), [rootId, y.id].sort())

  // Two removals of one admin at once: one reserves, the other is told to retry.
  const yAgain = (await repo.getById(y.id))!
  const outcomes = await Promise.allSettled([repo.updateAccess(yAgain, { role: 'manager' }), repo.updateAccess(yAgain, { is_active: false })])
  t.equal(outcomes.filter(o => o.status === 'fulfilled').length, 1, 'one wins')
  t.match(outcomes.find(o => o.status === 'rejected'), { reason: { code: 'conflict' } })
  t.same(await assertAdminSetExact(t, api, 'concurrent removals'), [rootId])
})

/**
 * Many rounds of random concurrent promotions, demotions, deactivations and reactivations
 * through the API among a handful of users (the admins among them acting), each round
 * checked against the truth recomputed from the user items.
 */
async function churn (t: Test, apis: Api[], rounds: number, seed: number): Promise<void> {
  const [api] = apis as [Api, ...Api[]]
  const rand = prng(seed)
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!
  const settleMs = api.config.authCache.settleMs
  const rootToken = await api.adminToken()
  const rootId = (await api.request({ method: 'GET', url: '/api/auth/me', headers: api.auth(rootToken) })).json().id
  const people = [
    { id: rootId, email: ADMIN_EMAIL, password: ADMIN_PASSWORD, token: rootToken },
    ...await Promise.all((['admin', 'admin', 'manager', 'user'] as const).map(role => api.userWithRole(role)))
  ].map(p => ({ ...p, sessionEnded: false }))
  const kinds: Record<string, (target: string) => { method: 'PUT' | 'DELETE', url: string, payload?: object }> = {
    promote: id => ({ method: 'PUT', url: `/api/users/${id}`, payload: { role: 'admin' } }),
    demote: id => ({ method: 'PUT', url: `/api/users/${id}`, payload: { role: rand() < 0.5 ? 'manager' : 'user' } }),
    deactivate: id => ({ method: 'PUT', url: `/api/users/${id}`, payload: { is_active: false } }),
    delete: id => ({ method: 'DELETE', url: `/api/users/${id}` }),
    reactivate: id => ({ method: 'PUT', url: `/api/users/${id}`, payload: { is_active: true } }),
    'promote+reactivate': id => ({ method: 'PUT', url: `/api/users/${id}`, payload: { role: 'admin', is_active: true } })
  }
  const outcomes = new Map<string, number>()
  const failures: string[] = []
  for (let round = 0; round < rounds && !failures.length; round++) {
    const { set, truth, stale } = await adminSetAndTruth(api)
    if (JSON.stringify(set) !== JSON.stringify(truth) || stale.length || !truth.length) {
      failures.push(`before round ${round}: set ${set}, truth ${truth}, stale ${stale}`)
      break
    }
    // The active admins act; a deactivation ended their earlier sessions.
    const admins = people.filter(p => truth.includes(p.id))
    for (const p of admins.filter(a => a.sessionEnded)) {
      p.token = (await api.login(p.email, p.password)).token
      p.sessionEnded = false
    }
    // Overlapping rounds: most calls aim at one user, so that its changes overlap (within the
    // revocation wait too). Draining rounds: mostly the admins leave and others join, so that
    // the last-admin guard is reached. Calls spread over the wait.
    const overlapping = rand() < 0.5
    const hot = [pick(people)]
    const others = people.filter(p => !truth.includes(p.id))
    const ops = Array.from({ length: 8 }, () => {
      const leaving = rand() < 0.6
      const kind = overlapping ? pick(Object.keys(kinds)) : pick(leaving ? ['demote', 'deactivate', 'delete'] : ['promote', 'reactivate', 'promote+reactivate'])
      const target = overlapping
        ? (rand() < 0.85 ? pick(hot) : pick(people))
        : (rand() < 0.8 ? pick(leaving || !others.length ? admins : others) : pick(people))
      return { kind, target, actor: rand() < 0.9 ? pick(admins) : pick(people), via: pick(apis), delay: Math.floor(rand() * (settleMs + 4)) }
    })
    if (!overlapping && admins.length >= 2) {
      // Two admins remove each other at once (the guard's hardest case).
      const a = pick(admins)
      const b = pick(admins.filter(p => p !== a))
      ops[0] = { ...ops[0]!, kind: pick(['demote', 'deactivate', 'delete']), actor: a, target: b, delay: 0 }
      ops[1] = { ...ops[1]!, kind: pick(['demote', 'deactivate', 'delete']), actor: b, target: a, delay: 0 }
    }
    const results = await Promise.all(ops.map(async op => {
      await sleep(op.delay)
      const req = kinds[op.kind]!(op.target.id)
      return op.via.request({ ...req, headers: op.via.auth(op.actor.token) })
    }))
    results.forEach((r, i) => {
      const key = `${ops[i]!.kind} → ${r.statusCode}${r.statusCode >= 400 ? ` ${r.json().code}` : ''}`
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1)
      if (r.statusCode >= 500 || ![200, 204, 401, 403, 409].includes(r.statusCode)) failures.push(`round ${round}: ${key} ${r.body}`)
      if (r.statusCode < 300 && /^(deactivate|delete)$/.test(ops[i]!.kind)) ops[i]!.target.sessionEnded = true
    })
  }
  t.same(failures, [], `seed ${seed}: no inconsistency and no unexpected status`)
  const truth = await assertAdminSetExact(t, api, `seed ${seed}, after ${rounds} rounds`)
  t.equal(await api.app.repos.users.repairAdminSet(), truth.length, 'the repair finds nothing else')
  t.same((await adminSetAndTruth(api)).set, truth, 'and leaves the set as it was')
  const count = (re: RegExp) => [...outcomes].filter(([k]) => re.test(k)).reduce((n, [, v]) => n + v, 0)
  t.ok(count(/^(promote|reactivate|promote\+reactivate) → 200/) > 0 && count(/^(demote|deactivate) → 200|^delete → 204/) > 0, 'admins joined and left')
  t.ok(count(/last_admin/) > 0, 'the last-admin guard was reached')
  t.comment(JSON.stringify(Object.fromEntries([...outcomes].sort())))
}

t.test('randomised concurrent role and status changes keep the admin set exact (no revocation wait)', async t => {
  const seed = Number(process.env.CHURN_SEED ?? Date.now() % 100000)
  const api = await build(t, FAST_HASHING)
  t.equal(api.config.authCache.settleMs, 0)
  await churn(t, [api], 24, seed)
})

t.test('randomised concurrent role and status changes keep the admin set exact (two instances, revocation wait)', async t => {
  const seed = Number(process.env.CHURN_SEED ?? Date.now() % 100000) + 1
  const env = { ...FAST_HASHING, DYNAMODB_ENDPOINT: (await database()).endpoint, AUTH_CACHE_MS: '40', TABLE_PREFIX: `churn${seed}-` }
  const apis = [await build(t, env), await build(t, env)]
  t.equal(apis[0]!.config.authCache.settleMs, 40)
  await churn(t, apis, 24, seed)
})

t.test('seed:admin and reset-password recover from a corrupted admin set and from no active admin', async t => {
  const { api, repo, raw, metaTable, usersTable, root, rootId } = await adminSetFixture(t)
  const second = await api.userWithRole('admin')
  const plain = await api.userWithRole('user')
  const setItem = (ids: string[], extra: Record<string, unknown> = {}) =>
    raw.putItem(metaTable, { pk: 'admins#active', ...(ids.length ? { ids: new Set(ids) } : {}), ...extra })
  const setUser = (id: string, fields: { is_active?: boolean, role?: string }) =>
    raw.updateItem(usersTable, { id }, { set: fields })

  // 1. A wrong set (a plain user and an unknown id in it, an admin missing, an epoch far ahead,
  //    a count of an older version): repaired from the users, nobody's account touched.
  await setItem([plain.id, MISSING_ID], { n: 7, [`v#${rootId}`]: 999, [`v#${MISSING_ID}`]: 3 })
  const repaired = await seedAdmin(recoveryDeps(api), api.config.admin)
  t.match(repaired, { created: false, restored: false, activeAdmins: 2 })
  t.same(await assertAdminSetExact(t, api, 'repaired'), [rootId, second.id].sort())
  t.equal((await repo.getById(rootId))!.admin_epoch, 999, 'the epoch the set was ahead with is fenced into the user')
  const stored = await raw.getItem<Record<string, unknown>>(metaTable, { pk: 'admins#active' })
  t.notOk(stored && ('n' in stored || `v#${MISSING_ID}` in stored), 'no leftovers')
  t.equal((await api.request({ method: 'PUT', url: `/api/users/${second.id}`, headers: api.auth(root), payload: { role: 'manager' } })).statusCode, 200, 'the guard works on the repaired set')
  await t.rejects(repo.updateAccess((await repo.getById(rootId))!, { is_active: false }), { code: 'last_admin' })

  // 2. The set missing altogether: recreated.
  await api.app.db.client.deleteItem({ TableName: metaTable, Key: { pk: { S: 'admins#active' } } })
  t.match(await seedAdmin(recoveryDeps(api), api.config.admin), { created: false, restored: false, activeAdmins: 1 })
  t.same(await assertAdminSetExact(t, api, 'recreated'), [rootId])

  // 3. No active admin (the issue's end state), while the set still counts two: the admin
  //    e-mail's user is made an active admin again, with ADMIN_PASSWORD, its lockout lifted.
  await setUser(rootId, { is_active: false, role: 'user' })
  await setItem([rootId, second.id])
  for (let i = 0; i < api.config.lockout.threshold; i++) {
    await api.request({ method: 'POST', url: '/api/auth/login', payload: { email: ADMIN_EMAIL, password: 'wrong wrong wrong wrong' } })
  }
  const restored = await seedAdmin(recoveryDeps(api), api.config.admin)
  t.match(restored, { created: false, restored: true, email: ADMIN_EMAIL, activeAdmins: 1 })
  t.notOk(restored.generatedPassword, 'ADMIN_PASSWORD is used')
  t.same(await assertAdminSetExact(t, api, 'restored'), [rootId])
  const back = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD)
  t.equal(back.body.user.role, 'admin')
  t.equal(back.body.user.must_change_password, false)

  // 4. No active admin and no user with the admin e-mail: one is created, with a temporary password.
  await setUser(rootId, { is_active: false })
  const fresh = await seedAdmin(recoveryDeps(api, { temporaryPasswordTtlHours: 2 }), { email: 'Fresh.Admin@example.com', password: undefined })
  t.match(fresh, { created: true, restored: false, email: 'fresh.admin@example.com', activeAdmins: 1 })
  const freshUser = (await repo.getByEmail('fresh.admin@example.com'))!
  t.ok(Math.abs(Date.parse(freshUser.temporary_password_expires_at!) - (Date.now() + 2 * HOUR)) < 60_000, 'its temporary password lives TEMP_PASSWORD_TTL_HOURS')
  t.equal((await api.login('fresh.admin@example.com', fresh.generatedPassword!)).body.user.must_change_password, true)
  t.same(await assertAdminSetExact(t, api, 'created'), [freshUser.id])

  // 5. reset-password on a deactivated admin, with a set that is ahead of it: reactivated, counted.
  await setUser(freshUser.id, { is_active: false })
  await setItem([], { [`v#${freshUser.id}`]: 50 })
  const reset = await resetPasswordByEmail(recoveryDeps(api), 'FRESH.ADMIN@example.com')
  t.ok(reset)
  t.equal(reset!.activeAdmins, 1)
  t.equal(reset!.user.is_active, true)
  t.ok(reset!.user.temporary_password_expires_at, 'a temporary password with a lifetime')
  t.same(await assertAdminSetExact(t, api, 'after reset-password'), [freshUser.id])
  t.equal((await api.login('fresh.admin@example.com', reset!.temporaryPassword)).body.user.must_change_password, true)
  t.equal(await resetPasswordByEmail(recoveryDeps(api), 'nobody@example.com'), null)

  // 6. reset-password of a plain user while no admin is active reports it (seed:admin is next).
  await setUser(freshUser.id, { is_active: false })
  t.equal((await resetPasswordByEmail(recoveryDeps(api), plain.email))!.activeAdmins, 0)
  t.same(await adminSetAndTruth(api), { set: [], truth: [], stale: [] }, 'the set is empty, as the truth')
  t.match(await seedAdmin(recoveryDeps(api), api.config.admin), { restored: true, activeAdmins: 1 })
})

t.test('temporary passwords expire (TEMP_PASSWORD_TTL_HOURS)', async t => {
  const api = await build(t)
  const repo = api.app.repos.users
  const admin = api.auth(await api.adminToken())
  const near = (iso: string | null | undefined, expected: number) => Boolean(iso) && Math.abs(Date.parse(iso!) - expected) < 60_000

  t.equal(api.config.temporaryPasswordTtlHours, 72, 'default 72 h')
  t.equal(temporaryPasswordExpired({ temporary_password_expires_at: null }, Date.now()), false)
  t.equal(temporaryPasswordExpired({ temporary_password_expires_at: '2030-01-01T00:00:00.000Z' }, Date.parse('2029-12-31T23:59:59.999Z')), false)
  t.equal(temporaryPasswordExpired({ temporary_password_expires_at: '2030-01-01T00:00:00.000Z' }, Date.parse('2030-01-01T00:00:00.000Z')), true)

  // Issued with a lifetime: a user created without a password, and by a reset.
  const created = await api.request({ method: 'POST', url: '/api/users', headers: admin, payload: { email: 'temp1@example.com', name: 'Temp', role: 'user' } })
  const id = created.json().user.id
  t.ok(near((await repo.getById(id))!.temporary_password_expires_at, Date.now() + 72 * HOUR), 'created: expires in 72 h')
  const given = await api.request({ method: 'POST', url: '/api/users', headers: admin, payload: { email: 'given@example.com', name: 'Given', role: 'user', password: 'a fine long passphrase' } })
  t.equal((await repo.getById(given.json().user.id))!.temporary_password_expires_at, null, 'a chosen password does not expire')
  const reset = await api.request({ method: 'POST', url: `/api/users/${id}/reset-password`, headers: admin })
  t.ok(near((await repo.getById(id))!.temporary_password_expires_at, Date.now() + 72 * HOUR), 'reset: expires in 72 h')

  // Changing the password ends the temporary one's lifetime.
  const session = await api.login('temp1@example.com', reset.json().temporary_password)
  t.equal((await api.request({ method: 'POST', url: '/api/auth/change-password', headers: api.auth(session.token), payload: { current_password: reset.json().temporary_password, new_password: 'my own long passphrase' } })).statusCode, 204)
  t.equal((await repo.getById(id))!.temporary_password_expires_at, null, 'cleared by the change')

  // Past its lifetime (issued 73 h ago with the default 72 h): login answers as for a wrong password.
  const past = createUsersService(repo, api.app.passwords, api.app.stats, { now: () => Date.now() - 73 * HOUR })
  const old = await past.create({ email: 'stale@example.com', name: 'Stale', role: 'user' })
  t.ok(temporaryPasswordExpired((await repo.getById(old.user.id))!, Date.now()))
  const login = (password: string) => api.request({ method: 'POST', url: '/api/auth/login', payload: { email: 'stale@example.com', password } })
  const expired = await login(old.temporaryPassword!)
  const wrong = await login('not the password at all')
  assertProblem(t, expired, 401, 'invalid_credentials')
  const strip = (r: typeof expired) => { const { instance, request_id: rid, ...rest } = r.json(); return rest }
  t.same(strip(expired), strip(wrong), 'the same answer as a wrong password')
  t.equal((await repo.getById(old.user.id))!.last_login_at, null, 'no session was started')

  // An admin must reset it: the new temporary password works, for its own lifetime.
  const again = await api.request({ method: 'POST', url: `/api/users/${old.user.id}/reset-password`, headers: admin })
  t.equal((await login(again.json().temporary_password)).statusCode, 200)

  // A short lifetime through the service (what TEMP_PASSWORD_TTL_HOURS sets): expires on time.
  const short = createUsersService(repo, api.app.passwords, api.app.stats, { temporaryPasswordTtlHours: 0.1 / 3600 })
  const brief = await short.create({ email: 'brief@example.com', name: 'Brief', role: 'user' })
  await sleep(150)
  assertProblem(t, await api.request({ method: 'POST', url: '/api/auth/login', payload: { email: 'brief@example.com', password: brief.temporaryPassword } }), 401, 'invalid_credentials')
})

t.test('TEMP_PASSWORD_TTL_HOURS reaches the users routes', async t => {
  const api = await build(t, { TEMP_PASSWORD_TTL_HOURS: '0.5' })
  t.equal(api.config.temporaryPasswordTtlHours, 0.5)
  const res = await api.request({ method: 'POST', url: '/api/users', headers: api.auth(await api.adminToken()), payload: { email: 'half@example.com', name: 'Half', role: 'user' } })
  const expires = (await api.app.repos.users.getById(res.json().user.id))!.temporary_password_expires_at
  t.ok(expires && Math.abs(Date.parse(expires) - (Date.now() + HOUR / 2)) < 60_000, 'expires in 30 min')
})
