/** User management (Phase 4): RBAC per role, validation, pagination, concurrency, invariants. */
import t from 'tap'
import { build, assertProblem, ADMIN_EMAIL, ADMIN_PASSWORD, type Api } from './helper.js'

const MISSING_ID = '01JDQ2Z5Y3K4M5N6P7Q8R9S0TV'

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

  // The guard itself: the last id cannot leave the set; an id not in it is 'absent'.
  const repo = api.app.db.repos.users
  await t.rejects(repo.reserveAdminRemoval(rootId), { code: 'last_admin' }, 'the set never loses its last active admin')
  t.equal(await repo.reserveAdminRemoval('01JDQ2Z5Y3K4M5N6P7Q8R9S0TV'), 'absent')
  t.equal(await repo.repairAdminSet(), 1)

  // Concurrent DELETEs of one admin: idempotent, all 204, and the other admin remains.
  const extra = await api.userWithRole('admin')
  const root2 = (await api.login(ADMIN_EMAIL, ADMIN_PASSWORD)).token
  const dels = await Promise.all(Array.from({ length: 3 }, () => api.request({ method: 'DELETE', url: `/api/users/${extra.id}`, headers: api.auth(root2) })))
  t.same(dels.map(r => r.statusCode), [204, 204, 204], 'concurrent deletes of one admin are all 204')
  await t.rejects(repo.reserveAdminRemoval(rootId), { code: 'last_admin' }, 'the root is the last admin again')
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
