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
  const api: Api = await build(t, { AWS_STS_ENDPOINT: 'http://127.0.0.1:9' })
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
    getMonitoringSettings: async () => ({ method: 'GET', url: '/api/config/monitoring' }),
    updateMonitoringSettings: async () => ({ method: 'PUT', url: '/api/config/monitoring', payload: { retention_days: 100 + (++n % 50) } })
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
  t.ok(ratio > 0.4 && ratio < 2.5, `similar timing: median ${median(unknown).toFixed(1)} ms vs ${median(wrong).toFixed(1)} ms (both pay one argon2 verify)`)
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
