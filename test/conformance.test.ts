/**
 * Generated contract suite: for every operation of the spec, a positive request built from the
 * spec's examples and negative requests made by mutating them, sent over HTTP to a real
 * listening server on loopback. Every response: never 5xx, status documented, content type
 * right, body valid; invalid data rejected with 4xx; valid data accepted. The case generators
 * live in conformance-cases.ts, shared with `npm run test:contract` (scripts/test-contract.ts),
 * which the last test runs against a listening app and against a broken proxy in front of it.
 */
import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { build, ADMIN_EMAIL, ADMIN_PASSWORD, type Api } from './helper.js'
import { operations, type Operation } from './contract.js'
import {
  BAD_CREDENTIALS, MALFORMED_ID, UNKNOWN_ID, UNKNOWN_QUERY, deref, exampleBody, fillPath, firstSuccess,
  mutations, queryMutations, queryParameters, violationsOf, wrongMethods, type Json
} from './conformance-cases.js'
import { specPath } from '../scripts/generate-openapi.js'

process.env.AWS_ACCESS_KEY_ID = 'AKIAEXAMPLE'
process.env.AWS_SECRET_ACCESS_KEY = 'example'

interface Prepared {
  /** Path parameters, query string, headers and body of the positive request. */
  path?: Record<string, string>
  headers: Record<string, string>
  body?: unknown
  /** The expected success status (defaults to the operation's first 2xx). */
  expect?: number
  /** Checks after a successful positive request. */
  after?: (res: Response, json: any) => Promise<void>
}

/**
 * Through a validating proxy: with PRISM_CLI (Prism's cli.js) and PRISM_NODE (a Node able to
 * run it, ≥ 24.18) set, as `npm run test:clients` does, every request of this suite goes
 * through `prism proxy` (Stoplight's, not ours) in front of the server. Prism forwards it
 * and reports what it finds wrong in an `sl-violations` header: a response violation always
 * fails; a request violation fails on the requests meant to be valid. PRISM_SPEC gives Prism
 * another spec file (to prove the check fails: a copy with `Task.title` limited to 5 characters
 * gives 73 failures).
 */
async function startPrism (t: Test, upstream: string): Promise<string | undefined> {
  const cli = process.env.PRISM_CLI
  if (!cli) return undefined
  const port = 20000 + Math.floor(Math.random() * 20000)
  const child = spawn(process.env.PRISM_NODE ?? process.execPath, [cli, 'proxy', process.env.PRISM_SPEC ?? specPath, upstream, '--port', String(port), '--host', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill() })
  let log = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`prism did not start: ${log}`)), 90_000)
    const read = (chunk: Buffer) => {
      log += chunk.toString()
      if (log.includes('Prism is listening')) { clearTimeout(timer); resolve() }
    }
    child.stdout.on('data', read)
    child.stderr.on('data', read)
    child.on('exit', code => { clearTimeout(timer); reject(new Error(`prism exited (${code}): ${log}`)) })
  })
  child.removeAllListeners('exit')
  t.comment(`requests go through prism proxy on port ${port}`)
  return `http://127.0.0.1:${port}`
}

/** Prism's findings about one exchange (`sl-violations`), split by side. */
function prismViolations (res: Response): { request: string[], response: string[] } {
  const raw = res.headers.get('sl-violations')
  const out = { request: [] as string[], response: [] as string[] }
  if (!raw) return out
  // With very many findings Prism sends a sentence instead ("Too many violations…"): only a
  // wildly invalid request gets there; it counts as a request finding (our own check still
  // validates the response).
  if (!raw.startsWith('[')) {
    out.request.push(raw)
    return out
  }
  for (const v of JSON.parse(raw) as Array<{ location: string[], message: string, severity: string }>) {
    const text = `${v.severity} ${v.location.join('.')}: ${v.message}`
    if (v.location[0] === 'response') out.response.push(text)
    else out.request.push(text)
  }
  return out
}

t.test('every operation, positive and negative, over HTTP', async t => {
  // Test notifications go to a closed loopback port (an answer with ok: false, at once).
  const api: Api = await build(t, { AWS_STS_ENDPOINT: 'http://127.0.0.1:9', NOTIFICATION_ALLOW_LOOPBACK: 'true' })
  const upstream = await api.app.listen({ port: 0, host: '127.0.0.1' })
  const prism = await startPrism(t, upstream)
  const address = prism ?? upstream
  let prismExchanges = 0
  /** fetch, with a deadline that names the request when a proxy holds it. */
  const send = async (path: string, init: RequestInit, direct = false): Promise<Response> => {
    try {
      return await fetch(`${direct ? upstream : address}${path}`, { ...init, signal: AbortSignal.timeout(60_000) })
    } catch (err) {
      throw new Error(`${init.method ?? 'GET'} ${path.slice(0, 120)} (${String(init.body ?? '').slice(0, 80)}): ${String(err)}`)
    }
  }
  /** Checks Prism's report of an exchange; `valid` says whether the request was meant to be. */
  const throughPrism = (res: Response, what: string, valid: boolean): void => {
    if (!prism) return
    prismExchanges++
    const found = prismViolations(res)
    if (found.response.length) t.same(found.response, [], `prism: ${what}: response conforms`)
    if (valid && found.request.length) t.same(found.request, [], `prism: ${what}: request conforms`)
  }
  const admin = await api.adminToken()
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
  let n = 0
  const unique = () => `${Date.now().toString(36)}${++n}`

  const call = async (op: Operation, path: string, init: { headers?: Record<string, string>, body?: string, method?: string, direct?: boolean }, valid = false): Promise<{ res: Response, text: string }> => {
    const method = init.method ?? op.method
    const res = await send(path, { method, headers: init.headers, body: init.body }, init.direct)
    const text = await res.text()
    throughPrism(res, `${method} ${path.slice(0, 80)} → ${res.status}`, valid)
    t.same(violationsOf(method, path, res, text), [], `${method} ${path.slice(0, 80)} → ${res.status} conforms`)
    return { res, text }
  }
  const json = async (method: string, path: string, token: string | null, body?: unknown, extra: Record<string, string> = {}) => {
    const res = await send(path, { method, headers: { ...(token ? bearer(token) : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...extra }, body: body !== undefined ? JSON.stringify(body) : undefined })
    const text = await res.text()
    throughPrism(res, `setup ${method} ${path.slice(0, 80)} → ${res.status}`, true)
    return { status: res.status, body: text ? JSON.parse(text) : undefined }
  }

  // Fixtures the operations work on.
  const accountId = '123456789012'
  const { body: acct } = await json('POST', '/api/config/aws-accounts', admin, { account_id: accountId, name: 'conformance', role_arn: `arn:aws:iam::${accountId}:role/R` })
  const apiKey: string = acct.api_key
  const envelope = () => {
    const env = JSON.parse(readFileSync(new URL('./fixtures/events/guardduty-finding.json', import.meta.url), 'utf8'))
    env.id = `conf-${unique()}`
    env.account = accountId
    env.detail.arn = `arn:aws:guardduty:us-east-1:${accountId}:detector/d/finding/${unique()}`
    return env
  }
  const newEvent = async () => (await json('POST', '/api/events/ingest', null, envelope(), { 'x-api-key': apiKey })).body.results[0].event_id as string
  const newUser = async (role = 'user') => {
    const password = `staple horse battery ${unique()}`
    const email = `c-${unique()}@example.com`
    const { body } = await json('POST', '/api/users', admin, { email, name: 'Conformance', role, password })
    const session = (await json('POST', '/api/auth/login', null, { email, password })).body
    return { id: body.user.id as string, email, password, token: session.access_token as string, refresh: session.refresh_token as string }
  }
  const newTask = async (status = 'open') => {
    const { body } = await json('POST', '/api/tasks', admin, { title: `task ${unique()}` })
    if (status !== 'open') await json('PUT', `/api/tasks/${body.id}/status`, admin, { status: 'in_progress' })
    return body.id as string
  }
  const newAccount = async () => {
    const id = `9${String(++n).padStart(11, '0')}`
    return (await json('POST', '/api/config/aws-accounts', admin, { account_id: id, name: 'acct', role_arn: `arn:aws:iam::${id}:role/R` })).body.account.id as string
  }
  const newChannel = async (type: 'webhook' | 'slack' = 'webhook') =>
    (await json('POST', '/api/config/notification-channels', admin, { name: `channel ${unique()}`, type, url: 'http://127.0.0.1:9/hook' })).body.channel.id as string
  const newRule = async () =>
    (await json('POST', '/api/config/notification-rules', admin, { name: `rule ${unique()}`, channel_ids: [await newChannel()], kinds: ['event.created'] })).body.id as string
  const member = await newUser()
  const example = exampleBody
  const readable = (path: string, token = admin) => async () => {
    const res = await json('GET', path, token)
    t.equal(res.status, 200, `GET ${path} right after the write`)
  }

  const prepare: Record<string, (op: Operation) => Promise<Prepared>> = {
    login: async () => ({ headers: {}, body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } }),
    refreshToken: async () => ({ headers: {}, body: { refresh_token: (await newUser()).refresh } }),
    logout: async () => { const u = await newUser(); return { headers: bearer(u.token), body: { refresh_token: u.refresh } } },
    getMe: async () => ({ headers: bearer(member.token) }),
    changePassword: async () => { const u = await newUser(); return { headers: bearer(u.token), body: { current_password: u.password, new_password: `changed passphrase ${unique()}` } } },
    listUsers: async () => ({ headers: bearer(admin) }),
    createUser: async (op) => ({ headers: bearer(admin), body: { ...example(op), email: `new-${unique()}@example.com` }, after: async (_r, j) => readable(`/api/users/${j.user.id}`)() }),
    getUser: async () => ({ headers: bearer(admin), path: { id: member.id } }),
    updateUser: async (op) => ({ headers: bearer(admin), path: { id: (await newUser()).id }, body: example(op) }),
    deactivateUser: async () => { const id = (await newUser()).id; return { headers: bearer(admin), path: { id }, after: async () => { t.equal((await json('GET', `/api/users/${id}`, admin)).body.is_active, false, 'deactivated, still readable') } } },
    resetUserPassword: async () => ({ headers: bearer(admin), path: { id: (await newUser()).id } }),
    listEvents: async () => ({ headers: bearer(member.token) }),
    ingestEvents: async () => ({ headers: { 'x-api-key': apiKey }, body: envelope() }),
    getEvent: async () => ({ headers: bearer(member.token), path: { id: await newEvent() } }),
    deleteEvent: async () => { const id = await newEvent(); return { headers: bearer(admin), path: { id }, after: async () => { t.equal((await json('GET', `/api/events/${id}`, admin)).status, 404, 'after DELETE the event is 404') } } },
    createTaskFromEvent: async (op) => ({ headers: bearer(member.token), path: { id: await newEvent() }, body: { ...example(op), assigned_to: member.id }, after: async (_r, j) => readable(`/api/tasks/${j.id}`)() }),
    listTasks: async () => ({ headers: bearer(member.token) }),
    createTask: async (op) => ({ headers: bearer(member.token), body: example(op), after: async (_r, j) => readable(`/api/tasks/${j.id}`)() }),
    getTask: async () => ({ headers: bearer(member.token), path: { id: await newTask() } }),
    updateTask: async (op) => ({ headers: bearer(admin), path: { id: await newTask() }, body: example(op) }),
    deleteTask: async () => { const id = await newTask(); return { headers: bearer(admin), path: { id }, after: async () => { t.equal((await json('GET', `/api/tasks/${id}`, admin)).status, 404, 'after DELETE the task is 404') } } },
    listTaskComments: async () => ({ headers: bearer(member.token), path: { id: await newTask() } }),
    listTaskStatusHistory: async () => ({ headers: bearer(member.token), path: { id: await newTask() } }),
    addTaskComment: async (op) => { const id = await newTask(); return { headers: bearer(member.token), path: { id }, body: example(op), after: async (_r, j) => { t.ok((await json('GET', `/api/tasks/${id}/comments`, admin)).body.items.some((c: { id: string }) => c.id === j.id), 'the comment is listed right after POST') } } },
    updateTaskStatus: async (op) => ({ headers: bearer(admin), path: { id: await newTask('in_progress') }, body: example(op) }),
    getDashboardOverview: async () => ({ headers: bearer(member.token) }),
    getEventsStats: async () => ({ headers: bearer(member.token) }),
    getTasksStats: async () => ({ headers: bearer(member.token) }),
    getUsersStats: async () => ({ headers: bearer(admin) }),
    listAwsAccounts: async () => ({ headers: bearer(admin) }),
    createAwsAccount: async (op) => { const id = `8${String(++n).padStart(11, '0')}`; return { headers: bearer(admin), body: { ...example(op), account_id: id, role_arn: `arn:aws:iam::${id}:role/R` }, after: async (_r, j) => readable(`/api/config/aws-accounts/${j.account.id}`)() } },
    getAwsAccount: async () => ({ headers: bearer(admin), path: { id: await newAccount() } }),
    updateAwsAccount: async (op) => ({ headers: bearer(admin), path: { id: await newAccount() }, body: example(op) }),
    deleteAwsAccount: async () => { const id = await newAccount(); return { headers: bearer(admin), path: { id }, after: async () => { t.equal((await json('GET', `/api/config/aws-accounts/${id}`, admin)).status, 404, 'after DELETE the account is 404') } } },
    testAwsAccountConnection: async () => ({ headers: bearer(admin), path: { id: await newAccount() } }),
    rotateAwsAccountKey: async () => ({ headers: bearer(admin), path: { id: await newAccount() } }),
    getAwsAccountIngestionHealth: async () => ({ headers: bearer(admin), path: { id: await newAccount() } }),
    getAwsAccountOnboarding: async () => ({ headers: bearer(admin), path: { id: await newAccount() } }),
    listNotificationChannels: async () => ({ headers: bearer(admin) }),
    createNotificationChannel: async (op) => ({ headers: bearer(admin), body: example(op), after: async (_r, j) => { t.match(j.signing_secret, /^whsec_/, 'the signing secret, once'); await readable(`/api/config/notification-channels/${j.channel.id}`)() } }),
    getNotificationChannel: async () => ({ headers: bearer(admin), path: { id: await newChannel() } }),
    updateNotificationChannel: async (op) => ({ headers: bearer(admin), path: { id: await newChannel() }, body: example(op) }),
    deleteNotificationChannel: async () => { const id = await newChannel(); return { headers: bearer(admin), path: { id }, after: async () => { t.equal((await json('GET', `/api/config/notification-channels/${id}`, admin)).status, 404, 'after DELETE the channel is 404') } } },
    rotateNotificationChannelSecret: async () => ({ headers: bearer(admin), path: { id: await newChannel() } }),
    testNotificationChannel: async () => ({ headers: bearer(admin), path: { id: await newChannel('slack') }, after: async (_r, j) => { t.match(j, { ok: false, error_code: 'connection_error' }, 'a closed port is an answer, not an error') } }),
    listNotificationDeliveries: async () => ({ headers: bearer(admin), path: { id: await newChannel() } }),
    listNotificationRules: async () => { await newRule(); return { headers: bearer(admin) } },
    createNotificationRule: async (op) => ({ headers: bearer(admin), body: { ...example(op) as object, channel_ids: [await newChannel()] }, after: async (_r, j) => { await readable(`/api/config/notification-rules/${j.id}`)() } }),
    getNotificationRule: async () => ({ headers: bearer(admin), path: { id: await newRule() } }),
    updateNotificationRule: async (op) => ({ headers: bearer(admin), path: { id: await newRule() }, body: example(op) }),
    deleteNotificationRule: async () => { const id = await newRule(); return { headers: bearer(admin), path: { id }, after: async () => { t.equal((await json('GET', `/api/config/notification-rules/${id}`, admin)).status, 404, 'after DELETE the rule is 404') } } },
    getMonitoringSettings: async () => ({ headers: bearer(admin) }),
    updateMonitoringSettings: async (op) => ({ headers: bearer(admin), body: example(op) }),
    listAuditLog: async () => ({ headers: bearer(admin), after: async (_r, j) => { t.ok(j.items.length > 0, 'the fixtures\' actions are in the audit log') } }),
    verifyAuditLog: async () => ({ headers: bearer(admin), after: async (_r, j) => { t.equal(j.ok, true, 'the chains are intact') } }),
    exportAuditLog: async () => ({ headers: bearer(admin) }),
    getHealth: async () => ({ headers: {} })
  }

  const summary: string[] = []
  for (const op of operations) {
    const prep = prepare[op.operationId]
    t.ok(prep, `a positive case is defined for ${op.operationId}`)
    if (!prep) continue
    let cases = 0
    const pathOf = (p: Prepared, params = p.path ?? {}) => fillPath(op, params)
    const jsonHeaders = (p: Prepared) => ({ ...p.headers, 'content-type': 'application/json' })
    const bodySchema = op.op.requestBody ? deref(op.op.requestBody.content['application/json'].schema) : undefined
    const body = op.op.requestBody && op.op.requestBody.required === false ? { anyOf: [bodySchema, { type: 'null' }] } : bodySchema

    // Positive: valid data is accepted.
    const positive = await prep(op)
    const first2xx = firstSuccess(op)
    const { res, text } = await call(op, pathOf(positive), { headers: positive.body !== undefined ? jsonHeaders(positive) : positive.headers, body: positive.body !== undefined ? JSON.stringify(positive.body) : undefined }, true)
    cases++
    t.equal(res.status, positive.expect ?? first2xx, `${op.operationId}: the spec's example is accepted (${text.slice(0, 200)})`)
    if (res.status < 300 && positive.after) await positive.after(res, text ? JSON.parse(text) : undefined)

    // Negative bodies: every mutation the spec rejects, the server rejects with 4xx.
    if (body && positive.body !== undefined) {
      for (const m of mutations(positive.body as Json, body)) {
        const p = await prep(op)
        const r = await call(op, pathOf(p), { headers: jsonHeaders(p), body: JSON.stringify(m.body) })
        cases++
        t.ok(r.res.status >= 400 && r.res.status < 500, `${op.operationId}: ${m.name} → 4xx (${r.res.status})`)
      }
      const p = await prep(op)
      // Straight to the server: Prism 5.16 never answers a request whose JSON does not parse.
      const malformed = await call(op, pathOf(p), { headers: jsonHeaders(p), body: '{"broken": ', direct: true })
      t.equal(malformed.res.status, 400, `${op.operationId}: malformed JSON → 400`)
      const wrongType = await call(op, pathOf(p), { headers: { ...p.headers, 'content-type': 'text/plain' }, body: 'hello' })
      t.equal(wrongType.res.status, 415, `${op.operationId}: text/plain → 415`)
      cases += 2
    }

    // Negative path and query parameters.
    if (op.path.includes('{id}')) {
      const p = await prep(op)
      const r = await call(op, pathOf(p, { id: MALFORMED_ID }), { headers: p.body !== undefined ? jsonHeaders(p) : p.headers, body: p.body !== undefined ? JSON.stringify(p.body) : undefined })
      t.equal(r.res.status, 400, `${op.operationId}: malformed id → 400`)
      const missing = await call(op, pathOf(p, { id: UNKNOWN_ID }), { headers: p.body !== undefined ? jsonHeaders(p) : p.headers, body: p.body !== undefined ? JSON.stringify(p.body) : undefined })
      t.ok([404, 400].includes(missing.res.status), `${op.operationId}: unknown id → 404 (${missing.res.status})`)
      cases += 2
    }
    const queryParams = queryParameters(op)
    if (op.method === 'GET') {
      const p = await prep(op)
      for (const param of queryParams) {
        for (const value of queryMutations(param)) {
          const r = await call(op, `${pathOf(p)}?${param.name}=${encodeURIComponent(value)}`, { headers: p.headers })
          cases++
          t.equal(r.res.status, 400, `${op.operationId}: ${param.name}=${value.slice(0, 20)} → 400`)
        }
      }
      const unknown = await call(op, `${pathOf(p)}?${UNKNOWN_QUERY}`, { headers: p.headers })
      t.equal(unknown.res.status, 400, `${op.operationId}: unknown query parameter → 400`)
      cases++
    }

    // Authentication: missing or invalid credentials.
    if (op.op['x-roles']) {
      const p = await prep(op)
      const init = { body: p.body !== undefined ? JSON.stringify(p.body) : undefined }
      const [noAuth, badToken] = BAD_CREDENTIALS
      const none = await call(op, pathOf(p), { ...init, headers: { ...noAuth.headers, ...(p.body !== undefined ? { 'content-type': 'application/json' } : {}) } })
      t.equal(none.res.status, 401, `${op.operationId}: ${noAuth.name} → 401`)
      t.match(none.res.headers.get('www-authenticate'), /^Bearer/, `${op.operationId}: WWW-Authenticate: Bearer`)
      const bad = await call(op, pathOf(p), { ...init, headers: { ...badToken.headers, ...(p.body !== undefined ? { 'content-type': 'application/json' } : {}) } })
      t.equal(bad.res.status, 401, `${op.operationId}: ${badToken.name} → 401`)
      cases += 2
    }
    summary.push(`${op.operationId.padEnd(28)} ${String(cases).padStart(3)} cases`)
  }

  // A method the path does not support: 405 with Allow (straight to the server: Prism knows
  // only the operations of the spec).
  for (const { path, url, method: other, supported } of wrongMethods()) {
    const res = await fetch(`${upstream}${url}`, { method: other })
    t.equal(res.status, 405, `${other} ${path} → 405`)
    t.ok(supported.every(m => (res.headers.get('allow') ?? '').includes(m)), `Allow lists ${supported.join(', ')}`)
    t.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8')
  }
  // The suite sends about 760 requests through the proxy; far fewer means the check went blind.
  if (prism) t.ok(prismExchanges > 500, `prism checked ${prismExchanges} exchanges`)
  t.comment(`cases per operation:\n${summary.join('\n')}`)
  t.equal(summary.length, operations.length, 'every operation of the spec was exercised')
})

/** `node --import tsx scripts/test-contract.ts …` (npm run test:contract), to its end. */
function testContract (args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/test-contract.ts', ...args], { cwd: fileURLToPath(new URL('..', import.meta.url)), env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    child.on('error', reject)
    child.on('close', code => resolve({ code, stdout, stderr }))
  })
}

t.test('npm run test:contract proves a deployment, and fails a broken one', async t => {
  const { CONTRACT_BASE_URL: _base, CONTRACT_API_KEY: _key, ...inherited } = process.env
  const env = { ...inherited, CONTRACT_ADMIN_EMAIL: ADMIN_EMAIL, CONTRACT_ADMIN_PASSWORD: ADMIN_PASSWORD }

  const api: Api = await build(t, { AWS_STS_ENDPOINT: 'http://127.0.0.1:9' })
  const base = await api.app.listen({ port: 0, host: '127.0.0.1' })
  const good = await testContract(['--base-url', base, '--with-accounts'], env)
  t.equal(good.code, 0, 'exit 0 against the service')
  if (good.code !== 0) t.comment(`${good.stdout.split('\n').filter(l => !l.startsWith('ok ')).join('\n')}\n${good.stderr}`)
  t.match(good.stdout, /^\d+ passed, 0 failed$/m, 'the summary: 0 failed')
  t.ok(Number(/^(\d+) passed/m.exec(good.stdout)?.[1]) > 250, 'and the checks of both parts ran')
  for (const part of ['read-only part', 'a task', 'a user', 'an AWS account', 'ingestion with the new account\'s key']) t.match(good.stdout, part, `ran: ${part}`)
  t.notOk(good.stdout.includes(ADMIN_PASSWORD) || good.stdout.includes(ADMIN_EMAIL), 'the credentials are never printed')

  // The run left the deployment as it found it, and said so.
  const runId = /run (\d{8})/.exec(good.stdout)?.[1] ?? 'none'
  t.match(good.stdout, new RegExp(`^# {3}task \\w+ "contract-test ${runId} task": deleted$`, 'm'), 'listed: the task, deleted')
  t.match(good.stdout, new RegExp(`^# {3}user \\w+ contract-${runId}@example\\.invalid: deactivated`, 'm'), 'listed: the user, deactivated')
  t.match(good.stdout, new RegExp(`^# {3}AWS account 9999${runId} .*: deleted$`, 'm'), 'listed: the AWS account, deleted')
  t.match(good.stdout, /^# {3}event \w+ .*: deleted$/m, 'listed: the ingested event, deleted')
  const admin = api.auth(await api.adminToken())
  const tasks = (await api.request({ url: '/api/tasks?limit=100', headers: admin })).json().items as Array<{ title: string }>
  t.same(tasks.filter(x => x.title.includes(runId)), [], 'no task of the run is left')
  t.same((await api.request({ url: '/api/events?limit=100', headers: admin })).json().items, [], 'no event is left')
  const accounts = (await api.request({ url: '/api/config/aws-accounts?limit=100', headers: admin })).json().items as Array<{ account_id: string }>
  t.same(accounts.filter(a => a.account_id.startsWith('9999')), [], 'no AWS account is left')
  const users = (await api.request({ url: `/api/users?search=contract-${runId}`, headers: admin })).json().items as Array<{ is_active: boolean }>
  t.same(users.map(u => u.is_active), [false], 'the user of the run is deactivated')

  const usage = await testContract([], env)
  t.equal(usage.code, 2, 'no --base-url: a usage error')
  const onCommandLine = await testContract(['--base-url', base, '--api-key', 'cmk_x'], env)
  t.equal(onCommandLine.code, 2, 'a key on the command line: a usage error')

  // The service behind a proxy that breaks it: the health answer violates the spec, the login
  // answer carries a property the spec does not allow (its tokens in the violation's text), and
  // every task update is a 500. The run fails and names each violation, prints no token, stops
  // the task checks at the failed update, and still cleans up.
  const broken = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const path = req.url ?? '/'
      if (req.method === 'PUT' && /^\/api\/tasks\/\w+$/.test(path)) {
        res.writeHead(500, { 'content-type': 'application/problem+json', 'x-request-id': 'broken' })
        res.end(JSON.stringify({ type: 'about:blank', title: 'Internal Server Error', status: 500, detail: 'Broken on purpose.', code: 'internal_error' }))
        return
      }
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => !['host', 'connection', 'content-length'].includes(k))) as Record<string, string>
      fetch(`${base}${path}`, { method: req.method, headers, body: chunks.length ? Buffer.concat(chunks) : undefined, redirect: 'manual' }).then(async up => {
        let text = await up.text()
        if (path === '/api/health' && req.method === 'GET') text = JSON.stringify({ status: 'fine' })
        if (path === '/api/auth/login' && up.status === 200) text = JSON.stringify({ ...JSON.parse(text), leaked: true })
        const out: Record<string, string> = {}
        up.headers.forEach((v, k) => { if (!['content-length', 'transfer-encoding', 'connection', 'content-encoding'].includes(k)) out[k] = v })
        res.writeHead(up.status, out)
        res.end(req.method === 'HEAD' ? undefined : text)
      }, (err: unknown) => { res.destroy(err as Error) })
    })
  })
  await new Promise<void>(resolve => broken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { broken.close() })
  const bad = await testContract(['--base-url', `http://127.0.0.1:${(broken.address() as AddressInfo).port}`], env)
  t.equal(bad.code, 1, 'exit 1 against a broken deployment')
  t.match(bad.stdout, /^not ok \d+ getHealth: GET \/api\/health → 200 — body does not match the spec: .*status/m, 'the violation of getHealth is named')
  t.match(bad.stdout, /^not ok \d+ login as CONTRACT_ADMIN_EMAIL: POST \/api\/auth\/login → 200 — .*"access_token":"\*\*\*","refresh_token":"\*\*\*"/m, 'the bad login answer is shown, its tokens hidden')
  t.notOk(/eyJ[\w-]+\.eyJ/.test(bad.stdout), 'no token is printed')
  t.match(bad.stdout, /^not ok \d+ updateTask with If-Match: PUT \/api\/tasks\/\w+ → 500 — expected 200/m, 'the failed update is named')
  t.match(bad.stdout, /^# self-cleaning part: a task: stopped \(the update failed\)/m, 'the task checks stop there')
  const badRun = /run (\d{8})/.exec(bad.stdout)?.[1] ?? 'none'
  t.match(bad.stdout, new RegExp(`^# {3}task \\w+ "contract-test ${badRun} task": deleted$`, 'm'), 'and the task is deleted all the same')
  t.match(bad.stdout, new RegExp(`^# {3}user \\w+ contract-${badRun}@example\\.invalid: deactivated`, 'm'), 'the later parts ran and cleaned up')
  t.match(bad.stdout, /^\d+ passed, [1-9]\d* failed/m, 'the summary counts the failures')
  const left = (await api.request({ url: '/api/tasks?limit=100', headers: admin })).json().items as Array<{ title: string }>
  t.same(left.filter(x => x.title.includes(badRun)), [], 'no task of the failed run is left')
})
