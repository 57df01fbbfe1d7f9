/**
 * Security suite (OWASP API Security Top 10, 2023): object- and function-level authorization
 * driven by test/security/access-matrix.yaml (checked against the spec and docs/rbac.md),
 * enumeration resistance, security headers, CORS.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { build, assertProblem, ADMIN_EMAIL, ADMIN_PASSWORD, type Api } from './helper.js'
import { operations } from './contract.js'

type Cell = 'all' | 'none' | string[]
type Row = { object: 'none' | 'user' | 'task', admin: Cell, manager: Cell, user: Cell }
const matrix = parse(readFileSync(new URL('./security/access-matrix.yaml', import.meta.url), 'utf8')) as Record<string, Row>
const ROLES = ['admin', 'manager', 'user'] as const
const RELATIONS = { none: [null], user: ['self', 'other'], task: ['creator', 'assignee', 'unrelated'] } as const

t.test('the access matrix agrees with the spec and docs/rbac.md', async t => {
  const bearerOps = operations.filter(o => o.op['x-roles'])
  t.same(Object.keys(matrix).sort(), bearerOps.map(o => o.operationId).sort(), 'one row per bearer operation')
  const rbac = readFileSync(new URL('../docs/rbac.md', import.meta.url), 'utf8')
  for (const o of bearerOps) {
    const row = matrix[o.operationId]!
    const allowed = ROLES.filter(r => row[r] !== 'none')
    t.same(allowed, o.op['x-roles'], `${o.operationId}: roles with access = x-roles`)
    const line = rbac.split('\n').find(l => l.startsWith(`| \`${o.operationId}\` |`))
    t.ok(line, `docs/rbac.md has ${o.operationId}`)
    const marks = line!.split('|').slice(3, 6).map(c => c.trim())
    t.same(marks, ROLES.map(r => (row[r] === 'none' ? '—' : '✓')), `docs/rbac.md marks for ${o.operationId}`)
    const narrowed = ROLES.filter(r => Array.isArray(row[r]))
    if (narrowed.length) t.ok((o.op['x-object-rules'] ?? []).length > 0, `${o.operationId}: object rules are documented in the spec`)
  }
})

t.test('BOLA and BFLA: every operation × role × relation', async t => {
  // Test notifications go to a closed loopback port: an answer with ok: false, at once.
  const api: Api = await build(t, { AWS_STS_ENDPOINT: 'http://127.0.0.1:9', NOTIFICATION_ALLOW_LOOPBACK: 'true' })
  process.env.AWS_ACCESS_KEY_ID = 'AKIAEXAMPLE'
  process.env.AWS_SECRET_ACCESS_KEY = 'example'
  t.teardown(() => { delete process.env.AWS_ACCESS_KEY_ID; delete process.env.AWS_SECRET_ACCESS_KEY })
  const admin = await api.adminToken()
  let n = 0
  const post = async (url: string, token: string | null, payload: object = {}, headers: Record<string, string> = {}) =>
    (await api.request({ method: 'POST', url, headers: { ...(token ? api.auth(token) : {}), ...headers }, payload })).json()
  const account = await post('/api/config/aws-accounts', admin, { account_id: '123456789012', name: 'acct', role_arn: 'arn:aws:iam::123456789012:role/R' })
  const event = async () => {
    const env = JSON.parse(readFileSync(new URL('./fixtures/events/guardduty-finding.json', import.meta.url), 'utf8'))
    env.id = `sec-${++n}`
    env.detail.arn = `arn:aws:guardduty:us-east-1:123456789012:detector/d/finding/${n}`
    return (await post('/api/events/ingest', null, env, { 'x-api-key': account.api_key })).results[0].event_id as string
  }
  const awsAccount = async () => {
    const id = `7${String(++n).padStart(11, '0')}`
    return (await post('/api/config/aws-accounts', admin, { account_id: id, name: 'x', role_arn: `arn:aws:iam::${id}:role/R` })).account.id as string
  }
  const channel = async () => (await post('/api/config/notification-channels', admin, { name: `channel ${++n}`, type: 'webhook', url: 'http://127.0.0.1:9/hook' })).channel.id as string
  const rule = async () => (await post('/api/config/notification-rules', admin, { name: `rule ${++n}`, channel_ids: [await channel()], kinds: ['event.created'] })).id as string
  /** A fresh actor per role and cell, so that destructive calls never affect other cells. */
  const actor = async (role: typeof ROLES[number]) => {
    if (role === 'admin') {
      const a = await api.userWithRole('admin')
      return a
    }
    return api.userWithRole(role)
  }
  const target = async (object: Row['object'], relation: string | null, me: { id: string, token: string }) => {
    if (object === 'user') return relation === 'self' ? me.id : (await api.userWithRole('user')).id
    if (object === 'task') {
      const creator = relation === 'creator' ? me.token : admin
      const task = await post('/api/tasks', creator, { title: `task ${++n}`, ...(relation === 'assignee' ? { assigned_to: me.id } : {}) })
      return task.id as string
    }
    return null
  }
  const requests: Record<string, (id: string | null, me: { id: string, token: string, password: string }) => Promise<{ method: string, url: string, payload?: object }>> = {
    logout: async () => ({ method: 'POST', url: '/api/auth/logout' }),
    getMe: async () => ({ method: 'GET', url: '/api/auth/me' }),
    changePassword: async (_id, me) => ({ method: 'POST', url: '/api/auth/change-password', payload: { current_password: me.password, new_password: `fresh passphrase ${++n} here` } }),
    listUsers: async () => ({ method: 'GET', url: '/api/users' }),
    createUser: async () => ({ method: 'POST', url: '/api/users', payload: { email: `m${++n}@example.com`, name: 'Matrix', role: 'user' } }),
    getUser: async (id) => ({ method: 'GET', url: `/api/users/${id}` }),
    updateUser: async (id) => ({ method: 'PUT', url: `/api/users/${id}`, payload: { name: `Renamed ${++n}` } }),
    deactivateUser: async (id) => ({ method: 'DELETE', url: `/api/users/${id}` }),
    resetUserPassword: async (id) => ({ method: 'POST', url: `/api/users/${id}/reset-password` }),
    listEvents: async () => ({ method: 'GET', url: '/api/events' }),
    getEvent: async () => ({ method: 'GET', url: `/api/events/${await event()}` }),
    deleteEvent: async () => ({ method: 'DELETE', url: `/api/events/${await event()}` }),
    createTaskFromEvent: async () => ({ method: 'POST', url: `/api/events/${await event()}/create-task` }),
    listTasks: async () => ({ method: 'GET', url: '/api/tasks' }),
    createTask: async () => ({ method: 'POST', url: '/api/tasks', payload: { title: 'matrix' } }),
    getTask: async (id) => ({ method: 'GET', url: `/api/tasks/${id}` }),
    updateTask: async (id) => ({ method: 'PUT', url: `/api/tasks/${id}`, payload: { priority: 'high' } }),
    deleteTask: async (id) => ({ method: 'DELETE', url: `/api/tasks/${id}` }),
    listTaskComments: async (id) => ({ method: 'GET', url: `/api/tasks/${id}/comments` }),
    listTaskStatusHistory: async (id) => ({ method: 'GET', url: `/api/tasks/${id}/history` }),
    addTaskComment: async (id) => ({ method: 'POST', url: `/api/tasks/${id}/comments`, payload: { body: 'hi' } }),
    updateTaskStatus: async (id) => ({ method: 'PUT', url: `/api/tasks/${id}/status`, payload: { status: 'in_progress' } }),
    getDashboardOverview: async () => ({ method: 'GET', url: '/api/dashboard/overview' }),
    getEventsStats: async () => ({ method: 'GET', url: '/api/dashboard/events-stats' }),
    getTasksStats: async () => ({ method: 'GET', url: '/api/dashboard/tasks-stats' }),
    getUsersStats: async () => ({ method: 'GET', url: '/api/dashboard/users-stats' }),
    listAwsAccounts: async () => ({ method: 'GET', url: '/api/config/aws-accounts' }),
    createAwsAccount: async () => { const id = `6${String(++n).padStart(11, '0')}`; return { method: 'POST', url: '/api/config/aws-accounts', payload: { account_id: id, name: 'x', role_arn: `arn:aws:iam::${id}:role/R` } } },
    getAwsAccount: async () => ({ method: 'GET', url: `/api/config/aws-accounts/${await awsAccount()}` }),
    updateAwsAccount: async () => ({ method: 'PUT', url: `/api/config/aws-accounts/${await awsAccount()}`, payload: { name: 'renamed' } }),
    deleteAwsAccount: async () => ({ method: 'DELETE', url: `/api/config/aws-accounts/${await awsAccount()}` }),
    testAwsAccountConnection: async () => ({ method: 'POST', url: `/api/config/aws-accounts/${await awsAccount()}/test-connection` }),
    rotateAwsAccountKey: async () => ({ method: 'POST', url: `/api/config/aws-accounts/${await awsAccount()}/rotate-key` }),
    getAwsAccountIngestionHealth: async () => ({ method: 'GET', url: `/api/config/aws-accounts/${await awsAccount()}/ingestion-health` }),
    getAwsAccountOnboarding: async () => ({ method: 'GET', url: `/api/config/aws-accounts/${await awsAccount()}/onboarding` }),
    getMonitoringSettings: async () => ({ method: 'GET', url: '/api/config/monitoring' }),
    updateMonitoringSettings: async () => ({ method: 'PUT', url: '/api/config/monitoring', payload: { retention_days: 100 + (++n % 50) } }),
    listNotificationChannels: async () => ({ method: 'GET', url: '/api/config/notification-channels' }),
    createNotificationChannel: async () => ({ method: 'POST', url: '/api/config/notification-channels', payload: { name: `matrix ${++n}`, type: 'webhook', url: 'https://hooks.example.com/matrix' } }),
    getNotificationChannel: async () => ({ method: 'GET', url: `/api/config/notification-channels/${await channel()}` }),
    updateNotificationChannel: async () => ({ method: 'PUT', url: `/api/config/notification-channels/${await channel()}`, payload: { name: 'renamed' } }),
    deleteNotificationChannel: async () => ({ method: 'DELETE', url: `/api/config/notification-channels/${await channel()}` }),
    rotateNotificationChannelSecret: async () => ({ method: 'POST', url: `/api/config/notification-channels/${await channel()}/rotate-secret` }),
    testNotificationChannel: async () => ({ method: 'POST', url: `/api/config/notification-channels/${await channel()}/test` }),
    listNotificationDeliveries: async () => ({ method: 'GET', url: `/api/config/notification-channels/${await channel()}/deliveries` }),
    listNotificationRules: async () => ({ method: 'GET', url: '/api/config/notification-rules' }),
    createNotificationRule: async () => ({ method: 'POST', url: '/api/config/notification-rules', payload: { name: `matrix ${++n}`, channel_ids: [await channel()], kinds: ['task.assigned'] } }),
    getNotificationRule: async () => ({ method: 'GET', url: `/api/config/notification-rules/${await rule()}` }),
    updateNotificationRule: async () => ({ method: 'PUT', url: `/api/config/notification-rules/${await rule()}`, payload: { enabled: false } }),
    deleteNotificationRule: async () => ({ method: 'DELETE', url: `/api/config/notification-rules/${await rule()}` }),
    listAuditLog: async () => ({ method: 'GET', url: '/api/audit-log' }),
    verifyAuditLog: async () => ({ method: 'GET', url: '/api/audit-log/verify' }),
    exportAuditLog: async () => ({ method: 'GET', url: '/api/audit-log/export' })
  }
  let cells = 0
  for (const [op, row] of Object.entries(matrix)) {
    const build = requests[op]
    t.ok(build, `a request is defined for ${op}`)
    if (!build) continue
    for (const role of ROLES) {
      for (const relation of RELATIONS[row.object]) {
        const me = await actor(role)
        const id = await target(row.object, relation, me)
        const req = await build(id, me)
        const cell = row[role]
        const allowed = cell === 'all' || (Array.isArray(cell) && cell.includes(relation as string))
        const res = await api.request({ method: req.method as 'GET', url: req.url, headers: api.auth(me.token), ...(req.payload ? { payload: req.payload } : {}) })
        cells++
        if (allowed) t.ok(res.statusCode < 300, `${op} as ${role}${relation ? ` (${relation})` : ''}: allowed (${res.statusCode} ${res.body.slice(0, 120)})`)
        else assertProblem(t, res, 403, 'forbidden', `${op} as ${role}${relation ? ` (${relation})` : ''}: refused`)
      }
    }
  }
  t.comment(`${cells} access cells checked`)
})

t.test('no enumeration: unknown e-mail and wrong password look and take the same', async t => {
  const api = await build(t, { LOCKOUT_THRESHOLD: '100' })
  const users = await Promise.all(Array.from({ length: 3 }, () => api.userWithRole('user')))
  const time = async (email: string) => {
    const started = process.hrtime.bigint()
    const res = await api.request({ method: 'POST', url: '/api/auth/login', payload: { email, password: 'definitely wrong password' } })
    return { ms: Number(process.hrtime.bigint() - started) / 1e6, res }
  }
  const unknown: number[] = []
  const wrong: number[] = []
  for (let i = 0; i < 8; i++) {
    const a = await time(`nobody-${i}@example.com`)
    const b = await time(users[i % 3]!.email)
    t.same(a.res.json(), { ...b.res.json() }, 'same body')
    t.equal(a.res.statusCode, b.res.statusCode)
    unknown.push(a.ms)
    wrong.push(b.ms)
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!
  const ratio = median(unknown) / median(wrong)
  // The failure paths do the same work (test/auth.test.ts counts database and argon2 calls per branch); wall time within ±60 %.
  t.ok(ratio > 0.6 && ratio < 1.6, `similar timing: median ${median(unknown).toFixed(1)} ms vs ${median(wrong).toFixed(1)} ms (both pay the same argon2 and database work)`)
  // A deactivated account answers like a wrong password too.
  await api.request({ method: 'DELETE', url: `/api/users/${users[0]!.id}`, headers: api.auth(await api.adminToken()) })
  const inactive = await api.request({ method: 'POST', url: '/api/auth/login', payload: { email: users[0]!.email, password: users[0]!.password } })
  assertProblem(t, inactive, 401, 'invalid_credentials')
})

t.test('security headers on every kind of response; CORS never a wildcard', async t => {
  const api = await build(t, { CORS_ORIGINS: 'https://console.example.com' })
  const token = await api.adminToken()
  const responses = [
    await api.request({ method: 'POST', url: '/api/auth/login', payload: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } }),
    await api.request({ method: 'GET', url: '/api/users', headers: api.auth(token) }),
    await api.request({ method: 'GET', url: '/api/nothing-here' }),
    await api.request({ method: 'PATCH', url: '/api/users' }),
    await api.request({ method: 'GET', url: '/api/health' })
  ]
  for (const res of responses) {
    t.equal(res.headers['x-content-type-options'], 'nosniff')
    t.equal(res.headers['cache-control'], 'no-store', 'API responses are never cached (they carry tokens and personal data)')
    t.match(String(res.headers['content-security-policy']), /default-src 'none'/, 'JSON responses forbid any active content')
    t.equal(res.headers['x-frame-options'], 'DENY')
    t.equal(res.headers['referrer-policy'], 'no-referrer')
    t.notOk(res.headers['x-powered-by'])
    t.notOk(res.headers.server)
  }
  const pre = await api.app.inject({ method: 'OPTIONS', url: '/api/users', headers: { origin: 'https://console.example.com', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'authorization,if-match,content-type' } })
  t.equal(pre.headers['access-control-allow-origin'], 'https://console.example.com')
  t.notOk(pre.headers['access-control-allow-credentials'], 'no credentialed CORS (tokens travel in headers, not cookies)')
  const evil = await api.app.inject({ method: 'OPTIONS', url: '/api/users', headers: { origin: 'https://evil.example.com', 'access-control-request-method': 'GET' } })
  t.notOk(evil.headers['access-control-allow-origin'], 'other origins get nothing')
  t.not(pre.headers['access-control-allow-origin'], '*')
})

// ---------------------------------------------------------------------------------------------
// Findings of outside testing (issue 15): response sizes, input text, contract edges.

const FIXTURE = (name: string) => JSON.parse(readFileSync(new URL(`./fixtures/events/${name}.json`, import.meta.url), 'utf8'))

t.test('lists never ship raw envelopes, and an events page stays under 1 MiB', async t => {
  const api = await build(t)
  const admin = api.auth(await api.adminToken())
  const account = await api.request({ method: 'POST', url: '/api/config/aws-accounts', headers: admin, payload: { account_id: '123456789012', name: 'Sizes', role_arn: 'arn:aws:iam::123456789012:role/R' } })
  const key = { 'x-api-key': account.json().api_key as string }
  // 16 events as big as the mapped fields allow (resources, labels, description) and a ~250 KB detail each.
  const big = (i: number) => {
    const e = FIXTURE('cloudwatch-alarm')
    const name = `sizes-${i}`
    e.id = `sizes-envelope-${i}`
    e.resources = [`arn:aws:cloudwatch:us-east-1:123456789012:alarm:${name}`, ...Array.from({ length: 60 }, (_, r) => `arn:aws:s3:::bucket-${i}-${r}-${'x'.repeat(1200)}`)]
    e.detail.alarmName = name
    e.detail.configuration.description = `${'d'.repeat(9000)} [severity:high]`
    e.detail.configuration.tags = Object.fromEntries(Array.from({ length: 60 }, (_, k) => [`tag-${k}-${'k'.repeat(120)}`, 'v'.repeat(300)]))
    e.detail.padding = 'p'.repeat(250_000)
    return e
  }
  for (let i = 0; i < 16; i++) {
    const res = await api.request({ method: 'POST', url: '/api/events/ingest', headers: key, payload: big(i) })
    t.equal(res.statusCode, 202, `big event ${i} ingested`)
  }
  const seen = new Set<string>()
  let cursor: string | null = null
  let pages = 0
  do {
    const res = await api.request({ method: 'GET', url: `/api/events?limit=100${cursor ? `&cursor=${cursor}` : ''}`, headers: admin })
    t.equal(res.statusCode, 200)
    t.ok(Buffer.byteLength(res.body) <= 1024 * 1024 + 4096, `page ${pages} is ${Buffer.byteLength(res.body)} bytes: within 1 MiB`)
    const body = res.json()
    for (const item of body.items) {
      t.notOk('raw' in item, 'list items carry no raw envelope')
      t.notOk(seen.has(item.id), 'no item twice across pages')
      seen.add(item.id)
    }
    cursor = body.next_cursor
    pages++
  } while (cursor && pages < 20)
  t.equal(seen.size, 16, 'every event, once, across the pages')
  t.ok(pages > 1, `the 1 MiB bound cut the list into ${pages} pages`)
  const one = await api.request({ method: 'GET', url: `/api/events/${[...seen][0]}`, headers: admin })
  t.ok(one.json().raw, 'GET /api/events/{id} still returns raw')
  const dashboard = await api.request({ method: 'GET', url: '/api/dashboard/events-stats', headers: admin })
  for (const recent of dashboard.json().recent) t.notOk('raw' in recent, 'dashboard recent events carry no raw')
})

t.test('request text: null bodies, unpaired surrogates, disguised names, ETags as issued', async t => {
  const api = await build(t)
  const { token } = await api.userWithRole('user')
  const user = api.auth(token)
  const admin = api.auth(await api.adminToken())
  const json = { 'content-type': 'application/json' }

  assertProblem(t, await api.request({ method: 'POST', url: '/api/auth/logout', headers: { ...user, ...json }, payload: 'null' }), 400, 'validation_failed', 'logout with a JSON null body')
  const stillValid = await api.request({ method: 'GET', url: '/api/auth/me', headers: user })
  t.equal(stillValid.statusCode, 200, 'the refused logout revoked nothing')

  const account = await api.request({ method: 'POST', url: '/api/config/aws-accounts', headers: admin, payload: { account_id: '123456789012', name: 'Edges', role_arn: 'arn:aws:iam::123456789012:role/R' } })
  const ingest = await api.request({ method: 'POST', url: '/api/events/ingest', headers: { 'x-api-key': account.json().api_key }, payload: { ...FIXTURE('cloudwatch-alarm'), id: 'edges-1' } })
  const eventId = ingest.json().results[0].event_id as string
  assertProblem(t, await api.request({ method: 'POST', url: `/api/events/${eventId}/create-task`, headers: { ...user, ...json }, payload: 'null' }), 400, 'validation_failed', 'create-task with a JSON null body')
  t.equal((await api.request({ method: 'POST', url: `/api/events/${eventId}/create-task`, headers: user })).statusCode, 201, 'create-task without a body still works')

  const lone = '{"title":"broken \\ud800 title"}'
  assertProblem(t, await api.request({ method: 'POST', url: '/api/tasks', headers: { ...user, ...json }, payload: lone }), 400, 'validation_failed', 'a task title with an unpaired surrogate')
  assertProblem(t, await api.request({ method: 'POST', url: '/api/tasks', headers: { ...user, ...json }, payload: '{"title":"key","description":"x","\\udc00":1}' }), 400, 'validation_failed', 'an unpaired surrogate in a key')
  t.equal((await api.request({ method: 'POST', url: '/api/tasks', headers: { ...user, ...json }, payload: '{"title":"emoji \\ud83d\\ude00 pairs are fine"}' })).statusCode, 201, 'a surrogate pair is well-formed')

  for (const [name, what] of [['Mallory\u202Egnp.exe', 'a right-to-left override'], ['Eve\u2066hidden\u2069', 'an isolate'], ['Bell\u0007', 'a control character'], ['Tab\tname', 'a tab'], ['Line\nbreak', 'a newline'], ['Mark\u200Fname', 'a direction mark']] as const) {
    assertProblem(t, await api.request({ method: 'POST', url: '/api/users', headers: admin, payload: { email: `n${name.length}${what.length}@example.com`, name, role: 'user' } }), 400, 'validation_failed', `a user name with ${what}`)
  }
  const created = await api.request({ method: 'POST', url: '/api/users', headers: admin, payload: { email: 'zoe@example.com', name: 'Zoë Ångström-Łukasiewicz 李', role: 'user' } })
  t.equal(created.statusCode, 201, 'letters of every script are fine')
  const userId = created.json().user.id as string
  assertProblem(t, await api.request({ method: 'PUT', url: `/api/users/${userId}`, headers: admin, payload: { name: 'x\u202Ey' } }), 400, 'validation_failed', 'renaming to a disguised name')
  assertProblem(t, await api.request({ method: 'PUT', url: `/api/config/aws-accounts/${account.json().account.id}`, headers: admin, payload: { name: 'prod\u202Edorp' } }), 400, 'validation_failed', 'an AWS account name with an override')

  // If-Match: exactly the ETag as issued.
  const task = await api.request({ method: 'POST', url: '/api/tasks', headers: user, payload: { title: 'etag' } })
  const etag = String(task.headers.etag)
  t.equal(etag, '"v1"')
  for (const variant of ['"v01"', '"v001"', 'W/"v1"', 'v1', '"V1"', '"v1 "']) {
    assertProblem(t, await api.request({ method: 'PUT', url: `/api/tasks/${task.json().id}`, headers: { ...user, 'if-match': variant }, payload: { title: 'changed' } }), 412, 'precondition_failed', `If-Match ${variant}`)
  }
  assertProblem(t, await api.request({ method: 'PUT', url: `/api/users/${userId}`, headers: { ...admin, 'if-match': '"v01"' }, payload: { name: 'Zoe' } }), 412, 'precondition_failed', 'users: If-Match "v01"')
  t.equal((await api.request({ method: 'PUT', url: `/api/tasks/${task.json().id}`, headers: { ...user, 'if-match': etag }, payload: { title: 'changed' } })).statusCode, 200, 'the ETag as issued matches')
})
