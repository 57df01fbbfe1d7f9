/**
 * Generated contract suite: for every operation of the spec, a positive request built from the
 * spec's examples and negative requests made by mutating them, sent over HTTP to a real
 * listening server on loopback. Every response: never 5xx, status documented, content type
 * right, body valid; invalid data rejected with 4xx; valid data accepted.
 */
import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormatsModule from 'ajv-formats'
import { build, ADMIN_EMAIL, ADMIN_PASSWORD, type Api } from './helper.js'
import { checkResponse, operations, spec, type Operation } from './contract.js'
import { specPath } from '../scripts/generate-openapi.js'

type Json = Record<string, any>
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => void
const ajv = new Ajv2020({ strict: false, allErrors: false })
addFormats(ajv)

process.env.AWS_ACCESS_KEY_ID = 'AKIAEXAMPLE'
process.env.AWS_SECRET_ACCESS_KEY = 'example'

function deref (schema: unknown): any {
  if (Array.isArray(schema)) return schema.map(deref)
  if (!schema || typeof schema !== 'object') return schema
  const s = schema as Json
  if (s.$ref) return deref(s.$ref.replace(/^#\//, '').split('/').reduce((o: Json, k: string) => o[k.replace(/~1/g, '/')], spec))
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, k === 'properties' ? Object.fromEntries(Object.entries(v as Json).map(([p, x]) => [p, deref(x)])) : deref(v)]))
}

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T

/** The object schema behind a body schema (first object member of an anyOf). */
const objectSchema = (schema: Json): Json | undefined =>
  schema.type === 'object' ? schema : (schema.anyOf as Json[] | undefined)?.map(objectSchema).find(Boolean)

/** Values of the wrong JSON type for a property schema. */
function wrongType (s: Json): unknown {
  const types = Array.isArray(s.type) ? s.type : [s.type]
  if (types.includes('string') || s.enum || s.$ref) return 12345
  if (types.includes('integer') || types.includes('number')) return 'not-a-number'
  if (types.includes('boolean')) return 'yes'
  if (types.includes('array')) return { not: 'an array' }
  if (types.includes('object')) return ['not', 'an', 'object']
  return Symbol.for('skip')
}

/** Named invalid variants of a valid body (each checked to be invalid against the spec). */
function mutations (body: Json, schema: Json): Array<{ name: string, body: unknown }> {
  const obj = objectSchema(schema)
  const out: Array<{ name: string, body: unknown }> = []
  if (!obj) return out
  const props = (obj.properties ?? {}) as Json
  for (const req of (obj.required ?? []) as string[]) {
    const b = clone(body)
    delete b[req]
    out.push({ name: `missing required ${req}`, body: b })
  }
  for (const [name, raw] of Object.entries(props)) {
    const s = raw as Json
    const w = wrongType(s)
    if (w !== Symbol.for('skip')) out.push({ name: `wrong type ${name}`, body: { ...clone(body), [name]: w } })
    const plain = s.anyOf ? (s.anyOf as Json[]).find(x => x.type !== 'null') ?? s : s
    if (plain.maxLength !== undefined) out.push({ name: `over-long ${name}`, body: { ...clone(body), [name]: 'x'.repeat(plain.maxLength + 1) } })
    if (plain.minLength !== undefined && plain.minLength > 0) out.push({ name: `too short ${name}`, body: { ...clone(body), [name]: '' } })
    if (plain.maximum !== undefined) out.push({ name: `above maximum ${name}`, body: { ...clone(body), [name]: plain.maximum + 1 } })
    if (plain.minimum !== undefined) out.push({ name: `below minimum ${name}`, body: { ...clone(body), [name]: plain.minimum - 1 } })
    if (plain.enum) out.push({ name: `bad enum ${name}`, body: { ...clone(body), [name]: 'no-such-value' } })
    if (plain.format) out.push({ name: `bad format ${name}`, body: { ...clone(body), [name]: 'not-a-valid-value' } })
    if (plain.pattern) out.push({ name: `bad pattern ${name}`, body: { ...clone(body), [name]: '!!invalid!!' } })
    if (plain.maxItems !== undefined) out.push({ name: `too many items ${name}`, body: { ...clone(body), [name]: Array.from({ length: plain.maxItems + 1 }, () => (plain.items?.enum?.[0] ?? 'x')) } })
  }
  if (obj.additionalProperties === false) out.push({ name: 'unexpected property', body: { ...clone(body), unexpected_property: true } })
  out.push({ name: 'array instead of object', body: [clone(body)] })
  const validate = ajv.compile(schema)
  // Keep only variants the spec itself rejects: the server must then answer 4xx.
  return out.filter(m => !validate(m.body))
}

/** Invalid values for a query parameter (checked against the parameter's schema). */
function queryMutations (param: Json): string[] {
  const s = deref(param.schema)
  const candidates = ['', 'not-a-valid-value', '-1', '0', '101', 'x'.repeat((s.maxLength ?? 100) + 1), '2026-13-45T99:99:99Z', 'true,false']
  const validate = ajv.compile(s)
  const coerce = (v: string): unknown => (s.type === 'integer' ? (/^-?\d+$/.test(v) ? Number(v) : v) : s.type === 'boolean' ? (v === 'true' ? true : v === 'false' ? false : v) : v)
  return candidates.filter(v => !validate(coerce(v))).slice(0, 4)
}

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
  const api: Api = await build(t, { AWS_STS_ENDPOINT: 'http://127.0.0.1:9' })
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
    const headers: Record<string, string> = {}
    res.headers.forEach((v, k) => { headers[k] = v })
    const violations = checkResponse(method, path, { statusCode: res.status, headers, body: text })
    t.same(violations, [], `${method} ${path.slice(0, 80)} → ${res.status} conforms`)
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
  const member = await newUser()
  const example = (op: Operation): Json => clone(op.op.requestBody?.content?.['application/json']?.example ?? {})
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
    getMonitoringSettings: async () => ({ headers: bearer(admin) }),
    updateMonitoringSettings: async (op) => ({ headers: bearer(admin), body: example(op) }),
    getHealth: async () => ({ headers: {} })
  }

  const summary: string[] = []
  for (const op of operations) {
    const prep = prepare[op.operationId]
    t.ok(prep, `a positive case is defined for ${op.operationId}`)
    if (!prep) continue
    let cases = 0
    const pathOf = (p: Prepared, params = p.path ?? {}) => op.path.replace(/\{(\w+)\}/g, (_m, k: string) => encodeURIComponent(params[k] ?? ''))
    const jsonHeaders = (p: Prepared) => ({ ...p.headers, 'content-type': 'application/json' })
    const bodySchema = op.op.requestBody ? deref(op.op.requestBody.content['application/json'].schema) : undefined
    const body = op.op.requestBody && op.op.requestBody.required === false ? { anyOf: [bodySchema, { type: 'null' }] } : bodySchema

    // Positive: valid data is accepted.
    const positive = await prep(op)
    const first2xx = Number(Object.keys(op.op.responses).find(s => s.startsWith('2')))
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
      const r = await call(op, pathOf(p, { id: 'not-a-ulid' }), { headers: p.body !== undefined ? jsonHeaders(p) : p.headers, body: p.body !== undefined ? JSON.stringify(p.body) : undefined })
      t.equal(r.res.status, 400, `${op.operationId}: malformed id → 400`)
      const missing = await call(op, pathOf(p, { id: '01JDQ2Z5Y3K4M5N6P7Q8R9S0TV' }), { headers: p.body !== undefined ? jsonHeaders(p) : p.headers, body: p.body !== undefined ? JSON.stringify(p.body) : undefined })
      t.ok([404, 400].includes(missing.res.status), `${op.operationId}: unknown id → 404 (${missing.res.status})`)
      cases += 2
    }
    const queryParams = ((op.op.parameters ?? []) as Json[]).map(deref).filter(p => p.in === 'query')
    if (op.method === 'GET') {
      const p = await prep(op)
      for (const param of queryParams) {
        for (const value of queryMutations(param)) {
          const r = await call(op, `${pathOf(p)}?${param.name}=${encodeURIComponent(value)}`, { headers: p.headers })
          cases++
          t.equal(r.res.status, 400, `${op.operationId}: ${param.name}=${value.slice(0, 20)} → 400`)
        }
      }
      const unknown = await call(op, `${pathOf(p)}?no_such_param=1`, { headers: p.headers })
      t.equal(unknown.res.status, 400, `${op.operationId}: unknown query parameter → 400`)
      cases++
    }

    // Authentication: missing or invalid credentials.
    if (op.op['x-roles']) {
      const p = await prep(op)
      const init = { body: p.body !== undefined ? JSON.stringify(p.body) : undefined }
      const none = await call(op, pathOf(p), { ...init, headers: p.body !== undefined ? { 'content-type': 'application/json' } : {} })
      t.equal(none.res.status, 401, `${op.operationId}: no Authorization → 401`)
      t.match(none.res.headers.get('www-authenticate'), /^Bearer/, `${op.operationId}: WWW-Authenticate: Bearer`)
      const bad = await call(op, pathOf(p), { ...init, headers: { authorization: 'Bearer a.b.c', ...(p.body !== undefined ? { 'content-type': 'application/json' } : {}) } })
      t.equal(bad.res.status, 401, `${op.operationId}: invalid token → 401`)
      cases += 2
    }
    summary.push(`${op.operationId.padEnd(28)} ${String(cases).padStart(3)} cases`)
  }

  // A method the path does not support: 405 with Allow (straight to the server: Prism knows
  // only the operations of the spec).
  for (const [path, methods] of Object.entries(spec.paths as Json)) {
    const supported = ['get', 'put', 'post', 'delete', 'patch'].filter(m => methods[m]).map(m => m.toUpperCase())
    const other = ['PATCH', 'PUT', 'DELETE', 'POST'].find(m => !supported.includes(m))
    if (!other) continue
    const url = path.replace(/\{id\}/g, '01JDQ2Z5Y3K4M5N6P7Q8R9S0TV')
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
