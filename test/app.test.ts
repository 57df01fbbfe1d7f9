/** The app as a whole: health, docs, errors, policies at boot, logging, persistence, first start. */
import { mkdtemp, rm, readFile, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { startEmbeddedDynamo } from '../src/embedded-dynamodb.js'
import { ensureFirstAdmin } from '../src/modules/users/first-admin.js'
import { resolveJwtSecret } from '../src/secrets.js'
import { build, assertProblem, database, ADMIN_EMAIL, ADMIN_PASSWORD, JWT_SECRET } from './helper.js'
import { checkResponse } from './contract.js'
import { compile, where } from '../src/db/expressions.js'
import { isConditionFailed } from '../src/db/errors.js'
import { specPath } from '../src/spec-path.js'
import { loadSpecDocument, specCacheDirs } from '../src/spec-document.js'

t.test('health reports database readiness', async t => {
  const api = await build(t)
  const res = await api.request({ method: 'GET', url: '/api/health' })
  t.equal(res.statusCode, 200)
  t.match(res.json(), { status: 'ok', database: { status: 'ok' } })
  t.ok(res.headers['x-request-id'], 'every response carries a request id')
  const traced = await api.request({ method: 'GET', url: '/api/health', headers: { 'x-request-id': 'trace-123' } })
  t.equal(traced.headers['x-request-id'], 'trace-123', 'a caller\'s request id is kept')

  // The database goes away: 503 with the same body shape, not a crash.
  const doomed = await startEmbeddedDynamo()
  const app = await buildApp(loadConfig({ LOG_LEVEL: 'silent', TABLE_PREFIX: 'doomed-' }), { jwtSecret: JWT_SECRET, dynamodbEndpoint: doomed.endpoint, logger: false })
  t.teardown(() => app.close())
  await app.ready()
  await doomed.close()
  const down = await app.inject({ method: 'GET', url: '/api/health' })
  t.same(checkResponse('GET', '/api/health', down), [], 'the 503 is the documented one')
  t.equal(down.statusCode, 503)
  t.match(down.json(), { status: 'degraded', database: { status: 'unavailable' } })
})

t.test('docs serve the spec itself', async t => {
  const api = await build(t)
  const json = await api.app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(json.statusCode, 200)
  const served = json.json()
  const { spec } = await import('./contract.js')
  t.same(served.paths['/api/auth/login'].post.operationId, 'login')
  t.equal(Object.keys(served.paths).length, Object.keys(spec.paths).length, 'every path of the YAML file')
  t.equal(served.info.title, spec.info.title)
  const { parse } = await import('yaml')
  t.same(served, parse(await readFile(specPath, 'utf8')), 'exactly the YAML file, parsed')
  const ui = await api.app.inject({ method: 'GET', url: '/docs' })
  t.ok([200, 302].includes(ui.statusCode), 'the UI answers')
})

t.test('the parsed spec is cached by the content of the YAML file, and the cache never fails a start', async t => {
  const { parse } = await import('yaml')
  const dir = await mkdtemp(path.join(tmpdir(), 'spec-cache-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'spec.yaml')
  const cacheDir = path.join(dir, 'cache')
  const cacheFile = path.join(cacheDir, 'api-specification.cache.json')
  await writeFile(file, await readFile(specPath, 'utf8'))
  const parsed = parse(await readFile(file, 'utf8'))

  t.same(await loadSpecDocument(file, [cacheDir]), parsed, 'a miss parses the YAML')
  const entry = JSON.parse(await readFile(cacheFile, 'utf8'))
  t.same(entry.document, parsed, 'and stores the parse')
  // A hit reads the cache: marked, the marked document comes back.
  await writeFile(cacheFile, JSON.stringify({ ...entry, document: { ...entry.document, marked: true } }))
  t.equal((await loadSpecDocument(file, [cacheDir])).marked, true, 'same content: the cache is read')
  t.same(await loadSpecDocument(file, [path.join(dir, 'elsewhere'), cacheDir]), { ...parsed, marked: true }, 'the first directory that has it')

  await writeFile(file, 'openapi: 3.1.0\ninfo: { title: Edited, version: "1" }\npaths: {}\n')
  t.same(await loadSpecDocument(file, [cacheDir]), { openapi: '3.1.0', info: { title: 'Edited', version: '1' }, paths: {} }, 'an edited file is parsed again')
  t.equal(JSON.parse(await readFile(cacheFile, 'utf8')).document.info.title, 'Edited', 'and replaces the cache')

  await writeFile(cacheFile, '{ not json')
  t.equal(((await loadSpecDocument(file, [cacheDir])).info as { title: string }).title, 'Edited', 'a corrupt cache: parsed')
  const notADir = path.join(dir, 'spec.yaml', 'cache')
  t.equal(((await loadSpecDocument(file, [notADir])).info as { title: string }).title, 'Edited', 'an unwritable cache directory: parsed, no failure')
  await writeFile(file, 'openapi: 3.1.0\ninfo: { title: Dated, version: "1" }\npaths: {}\nx-when: !!timestamp 2026-01-01\n')
  t.ok((await loadSpecDocument(file, [cacheDir]))['x-when'] instanceof Date, 'a parse JSON cannot carry…')
  t.equal(JSON.parse(await readFile(cacheFile, 'utf8')).document.info.title, 'Edited', '…is not cached')
  t.ok(specCacheDirs(specPath).at(-1)!.startsWith(tmpdir()), 'the OS temp directory is the last resort')
})

t.test('unknown routes, wrong methods and bad requests are problems', async t => {
  const api = await build(t)
  const token = await api.adminToken()
  assertProblem(t, await api.request({ method: 'GET', url: '/api/nope' }), 404, 'not_found')
  assertProblem(t, await api.request({ method: 'GET', url: '/nope?x=1' }), 404, 'not_found')
  const wrong = await api.request({ method: 'PATCH', url: '/api/users' })
  assertProblem(t, wrong, 405, 'method_not_allowed')
  t.equal(wrong.headers.allow, 'GET, POST, HEAD')
  const wrongId = await api.request({ method: 'POST', url: '/api/users/01JDQ2Z5Y3K4M5N6P7Q8R9S0TV', headers: api.auth(token) })
  assertProblem(t, wrongId, 405, 'method_not_allowed')
  t.equal(wrongId.headers.allow, 'GET, PUT, DELETE, HEAD')
  const loginGet = await api.request({ method: 'GET', url: '/api/auth/login' })
  assertProblem(t, loginGet, 405, 'method_not_allowed')
  t.equal(loginGet.headers.allow, 'POST')
  const headLogin = await api.request({ method: 'HEAD', url: '/api/auth/login' })
  t.equal(headLogin.statusCode, 405, 'HEAD on a path without GET is 405')
  t.equal(headLogin.headers.allow, 'POST')
  t.equal((await api.request({ method: 'OPTIONS', url: '/api/users' })).statusCode, 404, 'OPTIONS without CORS_ORIGINS is 404, as the spec states')
  // Problems never leak internals.
  const res = await api.request({ method: 'POST', url: '/api/users', headers: { ...api.auth(token), 'content-type': 'application/json' }, payload: '{"email": "a@example.com", "name": "x", "role": "user", "__proto__": {"admin": true}}' })
  t.equal(res.statusCode, 400, 'prototype pollution attempt refused')
  t.notMatch(res.body, /at .*\.(ts|js):\d+/, 'no stack trace')
})

t.test('HEAD answers every GET route like the GET, without a body (spec: "Methods")', async t => {
  const api = await build(t)
  const token = await api.adminToken()
  const cases: Array<[string, Record<string, string>]> = [
    ['/api/health', {}],
    ['/api/users', api.auth(token)],
    ['/api/tasks?limit=2', api.auth(token)],
    ['/api/users', {}],
    ['/api/tasks?limit=0', api.auth(token)],
    ['/api/users/01JDQ2Z5Y3K4M5N6P7Q8R9S0TV', api.auth(token)]
  ]
  const me = (await api.request({ method: 'GET', url: '/api/auth/me', headers: api.auth(token) })).json()
  cases.push([`/api/users/${String(me.id)}`, api.auth(token)])
  for (const [url, headers] of cases) {
    const get = await api.request({ method: 'GET', url, headers })
    const head = await api.request({ method: 'HEAD', url, headers })
    t.equal(head.statusCode, get.statusCode, `HEAD ${url}: status of the GET (${get.statusCode})`)
    t.equal(head.body, '', `HEAD ${url}: no body`)
    t.equal(head.headers['content-type'], get.headers['content-type'], `HEAD ${url}: content type of the GET`)
    t.equal(head.headers.etag, get.headers.etag, `HEAD ${url}: ETag of the GET`)
  }
})

t.test('boot fails when a route declares no access policy', async t => {
  const { endpoint } = await database()
  const app = await buildApp(loadConfig({ LOG_LEVEL: 'silent', TABLE_PREFIX: 'policy-' }), { jwtSecret: JWT_SECRET, dynamodbEndpoint: endpoint, logger: false })
  t.teardown(() => app.close())
  app.get('/api/sneaky', async () => ({ ok: true }))
  await t.rejects(async () => { await app.ready() }, /without an access policy.*GET \/api\/sneaky/)
})

t.test('route schemas compile at first use, or all at boot with EAGER_SCHEMAS (the check that every one compiles)', async t => {
  // The safety net of lazy compilation: with EAGER_SCHEMAS every route's validators and
  // serializers are built at boot, so a schema that cannot compile fails here, not in production.
  const eager = await build(t, { EAGER_SCHEMAS: 'true' })
  const lazy = await build(t)
  const same = (a: { statusCode: number, body: string, headers: Record<string, unknown> }, b: typeof a, what: string) => {
    const strip = (body: string) => body.replace(/"(request_id|instance|id)":"[^"]*"/g, '"$1":"…"').replace(/"(timestamp|checked_at)":"[^"]*"/g, '"$1":"…"').replace(/"(latency_ms|uptime_seconds)":[0-9.]+/g, '"$1":0')
    t.equal(a.statusCode, b.statusCode, `${what}: same status`)
    t.equal(strip(a.body), strip(b.body), `${what}: same body`)
  }
  const requests: Array<{ method: 'GET' | 'POST', url: string, payload?: unknown, auth?: boolean }> = [
    { method: 'POST', url: '/api/auth/login', payload: { email: 'not-an-email', extra: 1 } },
    { method: 'POST', url: '/api/auth/login', payload: { email: ADMIN_EMAIL } },
    { method: 'GET', url: '/api/events?limit=abc&severity=nope', auth: true },
    { method: 'GET', url: '/api/events?limit=2', auth: true },
    { method: 'GET', url: '/api/users/me', auth: true },
    { method: 'GET', url: '/api/health' }
  ]
  const tokens = [await eager.adminToken(), await lazy.adminToken()]
  for (const r of requests) {
    const [a, b] = await Promise.all([eager, lazy].map((api, i) => api.request({ method: r.method, url: r.url, ...(r.payload ? { payload: r.payload } : {}), ...(r.auth ? { headers: api.auth(tokens[i]!) } : {}) })))
    same(a!, b!, `${r.method} ${r.url}`)
  }
  const failed = await lazy.request({ method: 'POST', url: '/api/auth/login', payload: { email: 'x' } })
  t.equal(failed.statusCode, 400, 'a lazy validator reports its errors (Fastify reads .errors after the call)')
  t.match(failed.body, /email/)

  // A schema that cannot compile: eager stops the boot; lazy fails that route's first request only.
  const { endpoint } = await database()
  for (const eagerSchemas of [true, false]) {
    const app = await buildApp(loadConfig({ LOG_LEVEL: 'silent', TABLE_PREFIX: `bad-schema-${eagerSchemas}-`, EAGER_SCHEMAS: String(eagerSchemas) }), { jwtSecret: JWT_SECRET, dynamodbEndpoint: endpoint, logger: false })
    t.teardown(() => app.close())
    app.post('/api/bad', { config: { policy: { kind: 'public' } }, schema: { body: { type: 'no-such-type' } } }, async () => ({ ok: true }))
    app.get('/api/bad-reply', { config: { policy: { kind: 'public' } }, schema: { response: { 200: { type: 'no-such-type' } } } }, async () => ({ ok: true }))
    if (eagerSchemas) {
      await t.rejects(async () => { await app.ready() }, { code: 'FST_ERR_SCH_VALIDATION_BUILD' }, 'EAGER_SCHEMAS: the boot fails')
    } else {
      await app.ready()
      for (const [method, url] of [['POST', '/api/bad'], ['GET', '/api/bad-reply']] as const) {
        const res = await app.inject({ method, url, payload: method === 'POST' ? {} : undefined })
        t.equal(res.statusCode, 500, `lazy: ${method} ${url} fails at its first request`)
        t.equal(res.json().code, 'internal_error', 'as the server error it is, not a client error')
      }
    }
  }
})

t.test('logs carry request and user ids but never secrets', async t => {
  const { endpoint } = await database()
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, done) { lines.push(String(chunk)); done() } })
  const config = loadConfig({ LOG_LEVEL: 'trace', TABLE_PREFIX: 'logs-', ADMIN_EMAIL, ADMIN_PASSWORD })
  const app = await buildApp(config, { jwtSecret: JWT_SECRET, dynamodbEndpoint: endpoint, logger: { stream } })
  t.teardown(() => app.close())
  await app.ready()
  await ensureFirstAdmin(app.repos.users, app.passwords, config.admin, app.stats)
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } })
  const { access_token: access, refresh_token: refresh } = login.json()
  const created = await app.inject({ method: 'POST', url: '/api/users', headers: { authorization: `Bearer ${access}` }, payload: { email: 'logged@example.com', name: 'Logged', role: 'user' } })
  const temp = created.json().temporary_password
  await app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refresh_token: refresh } })
  await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: ADMIN_EMAIL, password: 'a wrong password attempt' } })
  const log = lines.join('')
  t.ok(lines.length > 5, `${lines.length} log lines`)
  for (const secret of [ADMIN_PASSWORD, access, refresh, refresh.split('.')[1], temp, JWT_SECRET, 'a wrong password attempt', '$argon2id']) {
    t.notOk(log.includes(secret), `no ${secret.slice(0, 12)}… in the logs`)
  }
  const userLine = lines.map(l => JSON.parse(l)).find(l => l.user_id && l.reqId)
  t.ok(userLine, 'authenticated request lines carry user_id and reqId')
})

t.test('CORS only for configured origins', async t => {
  const api = await build(t, { CORS_ORIGINS: 'https://console.example.com' })
  const pre = await api.app.inject({ method: 'OPTIONS', url: '/api/users', headers: { origin: 'https://console.example.com', 'access-control-request-method': 'GET' } })
  t.equal(pre.statusCode, 204)
  t.equal(pre.headers['access-control-allow-origin'], 'https://console.example.com')
  const evil = await api.app.inject({ method: 'GET', url: '/api/health', headers: { origin: 'https://evil.example.com' } })
  t.notOk(evil.headers['access-control-allow-origin'])
  const plain = await build(t)
  const none = await plain.app.inject({ method: 'GET', url: '/api/health', headers: { origin: 'https://console.example.com' } })
  t.notOk(none.headers['access-control-allow-origin'], 'no CORS by default')
})

t.test('the embedded database keeps data on disk across restarts; first start creates the admin once', async t => {
  const dir = await mkdtemp(path.join(tmpdir(), 'monitoring-data-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const config = loadConfig({ LOG_LEVEL: 'silent', DATA_DIR: dir, ADMIN_EMAIL: 'first@example.com' })
  const secret = await resolveJwtSecret(config)
  t.equal(secret, await resolveJwtSecret(config), 'the generated JWT secret is kept')
  t.equal((await stat(path.join(dir, 'jwt-secret'))).mode & 0o777, 0o600, 'secret file is private')

  const start = async () => {
    const db = await startEmbeddedDynamo({ path: path.join(dir, 'dynamodb') })
    const app = await buildApp(config, { jwtSecret: secret, dynamodbEndpoint: db.endpoint, logger: false })
    await app.ready()
    return { app, stop: async () => { await app.close(); await db.close() } }
  }
  const one = await start()
  const first = await ensureFirstAdmin(one.app.repos.users, one.app.passwords, config.admin, one.app.stats)
  t.equal(first.created, true)
  t.match(first.generatedPassword, /^[A-Za-z0-9_-]{20,}$/, 'a generated password, printed once by the server')
  const login = await one.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'first@example.com', password: first.generatedPassword } })
  t.equal(login.statusCode, 200)
  t.equal(login.json().user.must_change_password, true)
  const token = login.json().access_token
  await one.stop()

  const two = await start()
  t.teardown(two.stop)
  const again = await ensureFirstAdmin(two.app.repos.users, two.app.passwords, config.admin, two.app.stats)
  t.equal(again.created, false, 'not created twice')
  const me = await two.app.inject({ method: 'GET', url: '/api/auth/me', headers: { authorization: `Bearer ${token}` } })
  t.equal(me.statusCode, 200, 'data and tokens survive the restart')
  t.same(checkResponse('GET', '/api/auth/me', me), [])
  t.ok((await readFile(path.join(dir, 'jwt-secret'), 'utf8')).trim().length >= 32)
})

t.test('concurrent first starts create exactly one admin', async t => {
  const { endpoint } = await database()
  const config = loadConfig({ LOG_LEVEL: 'silent', TABLE_PREFIX: 'race-' })
  const app = await buildApp(config, { jwtSecret: JWT_SECRET, dynamodbEndpoint: endpoint, logger: false })
  t.teardown(() => app.close())
  await app.ready()
  const admin = { email: 'racing@example.com', password: ADMIN_PASSWORD }
  const results = await Promise.all(Array.from({ length: 4 }, () => ensureFirstAdmin(app.repos.users, app.passwords, admin, app.stats)))
  t.equal(results.filter(r => r.created).length, 1, 'exactly one instance creates it')
  t.ok(await app.repos.users.hasAnyAdmin())
  t.equal(await app.repos.users.repairAdminSet(), 1, 'one admin in the end')
})

t.test('operator scripts: seed the first admin, then recover a forgotten password', async t => {
  const { execFile } = await import('node:child_process')
  const { promisify } = await import('node:util')
  const run = promisify(execFile)
  const dir = await mkdtemp(path.join(tmpdir(), 'monitoring-scripts-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const env = { ...process.env, DATA_DIR: dir, ADMIN_EMAIL: 'ops@example.com', LOG_LEVEL: 'silent' }
  const tsx = path.resolve('node_modules/.bin/tsx')
  const seeded = await run(tsx, ['scripts/seed-admin.ts'], { env })
  const first = /Temporary password: (\S+)/.exec(seeded.stdout)?.[1]
  t.ok(first, 'seed-admin prints a temporary password once')
  t.match((await run(tsx, ['scripts/seed-admin.ts'], { env })).stdout, /already exists/, 'and does nothing the second time')
  const reset = await run(tsx, ['scripts/reset-password.ts', 'OPS@example.com'], { env })
  const second = /Temporary password: (\S+)/.exec(reset.stdout)?.[1]
  t.ok(second && second !== first, 'reset-password prints a new temporary password')
  await t.rejects(run(tsx, ['scripts/reset-password.ts', 'nobody@example.com'], { env }), 'an unknown e-mail fails')

  const db = await startEmbeddedDynamo({ path: path.join(dir, 'dynamodb') })
  const config = loadConfig({ LOG_LEVEL: 'silent', DATA_DIR: dir })
  const app = await buildApp(config, { jwtSecret: await resolveJwtSecret(config), dynamodbEndpoint: db.endpoint, logger: false })
  t.teardown(async () => { await app.close(); await db.close() })
  await app.ready()
  const old = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'ops@example.com', password: first } })
  t.equal(old.statusCode, 401, 'the old password no longer works')
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'ops@example.com', password: second } })
  t.equal(login.statusCode, 200)
  t.equal(login.json().user.must_change_password, true)
})

t.test('hostile URLs and bodies stay within the contract; every request counts toward the rate limit', async t => {
  const api = await build(t)
  const token = await api.adminToken()
  assertProblem(t, await api.request({ method: 'GET', url: '/api/users/%ff', headers: api.auth(token) }), 400)
  assertProblem(t, await api.request({ method: 'GET', url: '/api/users/%', headers: api.auth(token) }), 400)
  assertProblem(t, await api.request({ method: 'GET', url: `/api/${'x'.repeat(3000)}` }), 404, 'not_found')
  const long = await api.request({ method: 'GET', url: `/api/users?${'p'.repeat(600)}=1`, headers: api.auth(token) })
  assertProblem(t, long, 400, 'validation_failed')
  t.ok(long.json().errors[0].path.length <= 512, 'error paths are cut to the spec limit')
  const odd = await api.request({ method: 'GET', url: '/api/users?a%2Fb~c=1', headers: api.auth(token) })
  t.equal(odd.json().errors[0].path, '/query/a~1b~0c', 'JSON pointer escaping')
  const other = await api.userWithRole('user')
  assertProblem(t, await api.request({ method: 'DELETE', url: `/api/users/${other.id}`, headers: { ...api.auth(token), 'content-type': 'text/plain' }, payload: 'x' }), 415)
  assertProblem(t, await api.request({ method: 'DELETE', url: `/api/users/${other.id}`, headers: { ...api.auth(token), 'content-type': 'application/json' }, payload: JSON.stringify({ pad: 'x'.repeat(200 * 1024) }) }), 413)

  const limited = await build(t, { RATE_LIMIT_MAX: '3' })
  for (const [name, req] of [
    ['404', { method: 'GET', url: '/api/nothing' }],
    ['401', { method: 'GET', url: '/api/users', headers: { authorization: 'Bearer x.y.z' } }],
    ['405', { method: 'PATCH', url: '/api/users' }]
  ] as const) {
    const fresh = await build(t, { RATE_LIMIT_MAX: '3' })
    const statuses: number[] = []
    for (let i = 0; i < 4; i++) statuses.push((await fresh.request(req as never)).statusCode)
    t.equal(statuses[3], 429, `${name}s are rate limited too (${statuses.join(', ')})`)
  }
  t.ok(limited)
})

t.test('the embedded database closes its query iterators (dynalite 4 + abstract-level 3 leak)', async t => {
  const { createRequire } = await import('node:module')
  const fromLevel = createRequire(createRequire(import.meta.url).resolve('classic-level'))
  const level = fromLevel('abstract-level') as Record<string, { prototype: Record<string, unknown> }>
  await database()
  for (const name of ['AbstractIterator', 'AbstractKeyIterator', 'AbstractValueIterator']) {
    t.type(level[name]!.prototype.return, 'function', `${name} can be ended the way dynalite ends it`)
  }
  // And queries still page correctly through the patched iterators.
  const api = await build(t)
  const admin = await api.adminToken()
  for (let i = 0; i < 3; i++) await api.request({ method: 'POST', url: '/api/tasks', headers: api.auth(admin), payload: { title: `iter ${i}` } })
  const first = (await api.request({ method: 'GET', url: '/api/tasks?limit=2', headers: api.auth(admin) })).json()
  const second = (await api.request({ method: 'GET', url: `/api/tasks?limit=2&cursor=${first.next_cursor}`, headers: api.auth(admin) })).json()
  t.equal(first.items.length + second.items.length, 3)

  // The stand-in runs in a thread of its own: it reports its heap, and closing it twice is harmless.
  const own = await startEmbeddedDynamo()
  t.ok(await own.heapUsed() > 0, 'the stand-in thread reports its heap')
  await own.close()
  await own.close()
  t.pass('closing a stopped stand-in returns')
})

t.test('database calls per request stay few (what the benchmark targets rest on)', async t => {
  const counted = async (env: Record<string, string>) => {
    const api = await build(t, env)
    const calls: string[] = []
    // The audit trail's writes (docs/audit.md) are counted apart: `auditCalls`.
    const auditCalls: string[] = []
    api.app.db.client.middlewareStack.add((next, context) => async (args) => {
      const table = (args.input as { TableName?: string }).TableName
      ;(table === api.app.repos.audit.table ? auditCalls : calls).push(String(context.commandName).replace(/Command$/, ''))
      return next(args)
    }, { step: 'initialize', name: 'countCalls' })
    const count = async (fn: () => Promise<unknown>): Promise<string[]> => {
      calls.length = 0
      auditCalls.length = 0
      await fn()
      return [...calls].sort()
    }
    const admin = await api.adminToken()
    const created = await api.request({ method: 'POST', url: '/api/tasks', headers: api.auth(admin), payload: { title: 'Counted' } })
    t.equal(created.statusCode, 201)
    const id = created.json().id as string
    const get = () => api.request({ method: 'GET', url: `/api/tasks/${id}`, headers: api.auth(admin) })
    const comment = () => api.request({ method: 'POST', url: `/api/tasks/${id}/comments`, headers: api.auth(admin), payload: { body: 'one' } })
    return { api, count, get, comment, auditCalls }
  }

  // A cache long enough that no pause of a busy machine lets it expire within the test.
  const cached = await counted({ AUTH_CACHE_MS: '10000' })
  await cached.get()
  t.same(await cached.count(cached.get), ['GetItem'], 'GET a task without comments: the task read only (caller and denylist cached)')
  t.equal((await cached.comment()).statusCode, 201)
  t.same(await cached.count(cached.get), ['GetItem', 'Query'], 'with comments: the task and its first page')
  const login = await cached.count(() => cached.api.login(ADMIN_EMAIL, ADMIN_PASSWORD))
  // Every login does the same work whatever its outcome (docs/auth.md): the user lookup, the
  // attempt reserved, the last login and the refresh family.
  t.ok(login.length <= 7, `a login: ${login.join(', ')}`)
  t.notOk(login.includes('Scan'), 'no scan')
  // Its audit record: one PutItem, written alongside the session's writes; the first record of a
  // chain in a process reads the chain's head, the first of a day registers the day.
  const audit = [...cached.auditCalls].sort()
  t.ok(audit.filter(c => c === 'PutItem').length >= 1 && audit.length <= 3 && audit.every(c => c === 'PutItem' || c === 'Query'), `the login's audit record: ${audit.join(', ')}`)

  const uncached = await counted({ AUTH_CACHE_MS: '0' })
  t.equal((await uncached.comment()).statusCode, 201)
  t.same(await uncached.count(uncached.get), ['GetItem', 'GetItem', 'GetItem', 'Query'], 'AUTH_CACHE_MS=0: caller, denylist, task, comments on every request')
})

t.test('the data toolkit: typed expressions compile with aliases and run on the stand-in', async t => {
  // Compilation: every name and value aliased, optional parts skipped, clauses in order.
  const c = compile({
    key: { partition: ['pk', 'admins#active'], sort: { name: 'sk', op: 'beginsWith', value: 'v#' } },
    update: { set: { status: 'open', skipped: undefined }, setIfAbsent: { created_at: 'now' }, add: { version: 1 }, remove: ['deleted_at'], delete: { ids: new Set(['a']) } },
    condition: where.and(where.exists('pk'), false, where.or(where.notExists('v#01'), where.le('v#01', 3)), where.not(where.contains('ids', 'b')), where.size('ids', '>', 0))
  })
  t.equal(c.key, '#n0 = :v0 AND begins_with(#n1, :v1)')
  t.equal(c.update, 'SET #n2 = :v2, #n3 = if_not_exists(#n3, :v3) ADD #n4 :v4 REMOVE #n5 DELETE #n6 :v5')
  t.equal(c.condition, 'attribute_exists(#n0) AND (attribute_not_exists(#n7) OR #n7 <= :v6) AND NOT contains(#n6, :v7) AND size(#n6) > :v8', 'parentheses only where precedence needs them')
  t.equal(compile({ condition: where.or(where.and(where.eq('a', 1), where.eq('b', 2)), where.or(where.eq('a', 3), where.eq('b', 4)), where.not(where.or(where.eq('a', 5), where.eq('b', 6)))) }).condition,
    '#n0 = :v0 AND #n1 = :v1 OR #n0 = :v2 OR #n1 = :v3 OR NOT (#n0 = :v4 OR #n1 = :v5)')
  t.equal(compile({ condition: where.not(where.and(where.eq('a', 1), where.not(where.eq('b', 2)))) }).condition, 'NOT (#n0 = :v0 AND NOT #n1 = :v1)')
  t.same(c.names, { '#n0': 'pk', '#n1': 'sk', '#n2': 'status', '#n3': 'created_at', '#n4': 'version', '#n5': 'deleted_at', '#n6': 'ids', '#n7': 'v#01' })
  t.same(Object.keys(c.values).length, 9, 'one value alias per use')
  t.throws(() => compile({ update: { set: { a: undefined } } }), /changes nothing/, 'an empty update is a bug, not a no-op request')
  t.throws(() => compile({ condition: where.and() }), /empty AND/)

  // On the stand-in, with reserved words (status, size) and odd names (v#01) as attributes.
  const api = await build(t)
  const { raw } = api.app.db
  const table = `${api.config.tablePrefix}meta`
  const key = { pk: `toolkit#${Date.now()}` }
  await raw.putItem(table, { ...key, status: 'open', size: 2, 'v#01': 1 }, { condition: where.notExists('pk') })
  const again = await raw.putItem(table, { ...key }, { condition: where.notExists('pk') }).then(() => 'written', (err: unknown) => isConditionFailed(err) ? 'refused' : String(err))
  t.equal(again, 'refused', 'a false condition is ConditionalCheckFailed')
  const updated = await raw.updateItem<Record<string, unknown>>(table, key, { set: { status: 'closed' }, add: { size: 1, ids: new Set(['x']) } }, { condition: where.and(where.eq('status', 'open'), where.le('v#01', 1)), returnValues: 'ALL_NEW' })
  t.match(updated, { status: 'closed', size: 3, 'v#01': 1 }, 'updated with reserved and odd names')
  t.same([...(updated?.ids as Set<string>)], ['x'])
  t.same(await raw.getItem(table, key, { attributes: ['status', 'v#01'] }), { status: 'closed', 'v#01': 1 }, 'projection with aliases')
  const stale = await raw.updateItem(table, key, { set: { status: 'open' } }, { condition: where.eq('status', 'open') }).then(() => 'written', (err: unknown) => isConditionFailed(err) ? 'refused' : String(err))
  t.equal(stale, 'refused')
  // Precedence as DynamoDB reads it (NOT, then AND, then OR): each of these would flip if a
  // needed pair of parentheses were missing.
  const holds = (condition: Parameters<typeof where.not>[0]): Promise<boolean> =>
    raw.updateItem(table, key, { set: { probe: 1 } }, { condition }).then(() => true, (err: unknown) => { if (isConditionFailed(err)) return false; throw err })
  t.equal(await holds(where.not(where.and(where.eq('status', 'closed'), where.eq('size', 9)))), true, 'NOT (a AND b)')
  t.equal(await holds(where.and(where.or(where.eq('status', 'closed'), where.eq('size', 9)), where.eq('size', 9))), false, '(a OR b) AND c')
  t.equal(await holds(where.or(where.and(where.eq('status', 'closed'), where.eq('size', 9)), where.eq('size', 3))), true, 'a AND b OR c')
  t.equal(await holds(where.and(where.not(where.eq('size', 9)), where.eq('size', 3))), true, 'NOT a AND b')
  await raw.deleteItem(table, key, { condition: where.eq('status', 'closed') })
  t.equal(await raw.getItem(table, key), null, 'deleted')
})
