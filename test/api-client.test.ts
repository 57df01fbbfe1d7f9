/**
 * The ready client of clients/typescript/ against the running service (no mocks of our code):
 * lazy sign-in, refresh on 401 with rotation and fallback to login, single-flight renewal,
 * cursor iteration, ETag updates with retry on 412, Retry-After (on a tiny local server that
 * plays 429/503), and ApiError with the problem code.
 */
import t from 'tap'
import type { Test } from 'tap'
import { createHmac, randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { inspect } from 'node:util'
import { parse } from 'yaml'
import {
  API_VERSION, ApiError, CLIENT_VERSION, createApiClient, isApiError, parseRetryAfter, unwrap,
  type ApiClientOptions, type TokenSet
} from '../clients/typescript/src/index.js'
import { build, ADMIN_EMAIL, ADMIN_PASSWORD, JWT_SECRET } from './helper.js'

const root = new URL('../', import.meta.url)

/** A fetch that records what goes over the wire. */
function counting () {
  const calls: Array<{ method: string, path: string, auth: string | null, ua: string | null }> = []
  const fetch = (request: Request): Promise<Response> => {
    calls.push({ method: request.method, path: new URL(request.url).pathname, auth: request.headers.get('authorization'), ua: request.headers.get('user-agent') })
    return globalThis.fetch(request)
  }
  const count = (method: string, path: string) => calls.filter(c => c.method === method && c.path === path).length
  return { calls, fetch, count, logins: () => count('POST', '/api/auth/login'), refreshes: () => count('POST', '/api/auth/refresh') }
}

const b64url = (v: string | Buffer) => Buffer.from(v).toString('base64url')

/** A correctly signed access token of the same session that expired an hour ago. */
function expired (token: string): string {
  const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'))
  const now = Math.floor(Date.now() / 1000)
  const head = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify({ ...claims, jti: randomUUID(), iat: now - 7200, exp: now - 3600 }))}`
  return `${head}.${createHmac('sha256', JWT_SECRET).update(head).digest('base64url')}`
}

/** A well-formed token the server did not sign. */
const forged = (token: string) => token.slice(0, token.lastIndexOf('.') + 1) + b64url('not the signature')

t.test('the package ships the generated types byte for byte, and names its versions', async t => {
  const shipped = await readFile(new URL('clients/typescript/src/api-types.ts', root))
  const generated = await readFile(new URL('openapi/generated/api-types.ts', root))
  t.ok(shipped.equals(generated), 'clients/typescript/src/api-types.ts equals openapi/generated/api-types.ts')
  const spec = parse(await readFile(new URL('docs/api-specification.yaml', root), 'utf8'))
  t.equal(API_VERSION, spec.info.version, 'API_VERSION is the spec info.version')
  const pkg = JSON.parse(await readFile(new URL('clients/typescript/package.json', root), 'utf8'))
  t.equal(CLIENT_VERSION, pkg.version, 'CLIENT_VERSION is the package version')
})

t.test('against the service', async t => {
  const api = await build(t)
  const baseUrl = await api.app.listen({ port: 0, host: '127.0.0.1' })
  const credentials = { email: ADMIN_EMAIL, password: ADMIN_PASSWORD }
  const client = (extra: Partial<ApiClientOptions> = {}) => {
    const wire = counting()
    const persisted: Array<TokenSet | null> = []
    const c = createApiClient({ baseUrl, fetch: wire.fetch, onTokens: tokens => { persisted.push(tokens) }, ...extra })
    return { c, wire, persisted }
  }

  t.test('signs in lazily, once, and sends a User-Agent; public routes need no sign-in', async t => {
    const { c, wire, persisted } = client({ credentials })
    t.equal(wire.calls.length, 0, 'nothing is sent before the first call')
    t.equal((await c.GET('/api/health')).response.status, 200)
    t.equal(wire.logins(), 0, 'a public route does not sign in')
    t.equal(wire.calls[0]?.auth, null, 'and carries no token')

    const me = await c.GET('/api/auth/me')
    t.equal(me.data?.email, ADMIN_EMAIL)
    t.equal((await c.GET('/api/tasks')).response.status, 200)
    t.equal(wire.logins(), 1, 'one login for both calls')
    t.equal(persisted.length, 1, 'onTokens saw the new tokens')
    t.equal(persisted[0]?.access_token, c.getTokens()?.access_token)
    t.ok(persisted[0]?.expires_at && Date.parse(persisted[0].expires_at) > Date.now(), 'expires_at is in the future')
    t.match(wire.calls.at(-1)?.auth, /^Bearer /)
    t.equal(wire.calls.at(-1)?.ua, `@cloud-monitoring/api-client/${CLIENT_VERSION}`)

    // Concurrent first calls share one sign-in.
    const fresh = client({ credentials, userAgent: 'partner-sync/2.1' })
    const all = await Promise.all([1, 2, 3, 4, 5].map(() => fresh.c.GET('/api/auth/me')))
    t.same(all.map(r => r.response.status), [200, 200, 200, 200, 200])
    t.equal(fresh.wire.logins(), 1, 'five concurrent first calls, one login')
    t.equal(fresh.wire.calls.at(-1)?.ua, 'partner-sync/2.1')

    const shown = inspect(c, { depth: 10, showHidden: true }) + JSON.stringify(c)
    t.notMatch(shown, ADMIN_PASSWORD, 'the password is not on the client object')
  })

  t.test('refreshes on 401 (expired token), persists the rotated refresh token, and retries once', async t => {
    const session = (await api.login(ADMIN_EMAIL, ADMIN_PASSWORD)).body
    const stale = expired(session.access_token)
    const direct = await fetch(`${baseUrl}/api/auth/me`, { headers: { authorization: `Bearer ${stale}` } })
    t.equal((await direct.json() as { code?: string }).code, 'token_expired', 'the crafted token is an expired one')

    const { c, wire, persisted } = client({ tokens: { access_token: stale, refresh_token: session.refresh_token } })
    const me = await c.GET('/api/auth/me')
    t.equal(me.response.status, 200)
    t.equal(wire.refreshes(), 1)
    t.equal(wire.logins(), 0, 'no credentials needed')
    t.equal(wire.count('GET', '/api/auth/me'), 2, 'the call was retried once')
    t.equal(persisted.length, 1)
    const rotated = persisted[0]!
    t.not(rotated.refresh_token, session.refresh_token, 'the refresh token rotated')
    t.not(rotated.access_token, stale)

    // What onTokens persisted is what a restarted app resumes with.
    const resumed = client({ tokens: { access_token: forged(rotated.access_token), refresh_token: rotated.refresh_token } })
    t.equal((await resumed.c.GET('/api/auth/me')).response.status, 200)
    t.equal(resumed.wire.refreshes(), 1)

    // The spent refresh token: the server treats it as theft; without credentials the 401 comes back.
    const spent = client({ tokens: { access_token: stale, refresh_token: session.refresh_token } })
    const refused = await spent.c.GET('/api/auth/me')
    t.equal(refused.response.status, 401)
    t.equal(spent.wire.refreshes(), 1, 'one refresh attempt')
    t.equal(spent.wire.count('GET', '/api/auth/me'), 1, 'no retry without new tokens')
    t.same(spent.persisted, [null], 'onTokens(null): the session is gone')
    t.equal(spent.c.getTokens(), undefined)
  })

  t.test('falls back to a fresh login when the refresh fails', async t => {
    const session = (await api.login(ADMIN_EMAIL, ADMIN_PASSWORD)).body
    const logout = await fetch(`${baseUrl}/api/auth/logout`, {
      method: 'POST',
      headers: { authorization: `Bearer ${session.access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: session.refresh_token })
    })
    t.equal(logout.status, 204, 'the session is revoked')
    const { c, wire, persisted } = client({ credentials, tokens: { access_token: session.access_token, refresh_token: session.refresh_token } })
    const me = await c.GET('/api/auth/me')
    t.equal(me.response.status, 200)
    t.equal(wire.refreshes(), 1, 'tried the refresh token first')
    t.equal(wire.logins(), 1, 'then logged in')
    t.equal(persisted.length, 1)
    t.equal(persisted[0]?.access_token, c.getTokens()?.access_token)
  })

  t.test('concurrent 401s share one refresh', async t => {
    const session = (await api.login(ADMIN_EMAIL, ADMIN_PASSWORD)).body
    const { c, wire, persisted } = client({ credentials, tokens: { access_token: forged(session.access_token), refresh_token: session.refresh_token } })
    const results = await Promise.all([
      c.GET('/api/auth/me'), c.GET('/api/tasks'), c.GET('/api/events'),
      c.GET('/api/auth/me'), c.GET('/api/dashboard/overview'), c.GET('/api/tasks', { params: { query: { limit: 1 } } })
    ])
    t.same(results.map(r => r.response.status), [200, 200, 200, 200, 200, 200])
    t.equal(wire.refreshes(), 1, 'six 401s, one refresh')
    t.equal(wire.logins(), 0)
    t.equal(persisted.length, 1)
    t.equal(wire.calls.filter(c => !c.path.startsWith('/api/auth/refresh')).length, 12, 'each call sent twice')
  })

  t.test('a 401 that new tokens do not cure is not refreshed', async t => {
    const { c, wire } = client({ credentials })
    await c.signIn()
    const res = await c.POST('/api/auth/change-password', { body: { current_password: 'not the current one at all', new_password: 'another fine passphrase 42' } })
    t.equal(res.response.status, 401)
    t.equal(res.error?.code, 'invalid_credentials')
    t.equal(wire.refreshes(), 0)
    t.equal(wire.logins(), 1, 'only the explicit sign-in')
  })

  t.test('signIn, signOut and ApiError', async t => {
    const { c, wire, persisted } = client({ credentials })
    const signed = await c.signIn()
    t.equal(signed.user.email, ADMIN_EMAIL)
    const before = c.getTokens()!
    await c.signOut()
    t.equal(c.getTokens(), undefined)
    t.same(persisted.at(-1), null, 'onTokens(null) after sign-out')
    t.equal(wire.count('POST', '/api/auth/logout'), 1)
    const old = await fetch(`${baseUrl}/api/auth/me`, { headers: { authorization: `Bearer ${before.access_token}` } })
    t.equal((await old.json() as { code?: string }).code, 'token_revoked', 'the access token is revoked')
    const after = await c.GET('/api/auth/me')
    t.equal(after.response.status, 401, 'signed out: the credentials are forgotten too')
    t.equal(after.error?.code, 'token_invalid', 'no token sent')
    t.equal(wire.logins(), 1)

    const err = await c.signIn({ email: ADMIN_EMAIL, password: 'wrong password for sure' }).catch((e: unknown) => e)
    t.ok(isApiError(err, 'invalid_credentials'), 'sign-in failure is an ApiError')
    if (!(err instanceof ApiError)) throw err
    t.equal(err.status, 401)
    t.equal(err.problem?.status, 401)
    t.equal(err.method, 'POST')
    t.equal(err.path, '/api/auth/login')
    t.notMatch(err.message + inspect(err, { depth: 10 }), 'wrong password for sure', 'the password is in no error')
    t.equal((await c.GET('/api/auth/me')).response.status, 401, 'refused credentials are not kept')
    t.equal(wire.logins(), 2, 'no login with them')

    await c.signIn(credentials)
    t.equal((await c.GET('/api/auth/me')).response.status, 200, 'signed in again')
    const missing = await unwrap(c.GET('/api/tasks/{id}', { params: { path: { id: '01JDQ8M2P6R0T3W7Y1B5D9G2HJ' } } })).catch((e: unknown) => e)
    t.ok(missing instanceof ApiError)
    t.equal((missing as ApiError).code, 'not_found', 'unwrap throws the problem code')
    t.ok((missing as ApiError).requestId, 'with the request id')
  })

  t.test('paginate yields every item exactly once across pages', async t => {
    const { c, wire } = client({ credentials })
    const made = new Set<string>()
    for (let i = 0; i < 8; i++) {
      const task = await unwrap(c.POST('/api/tasks', { body: { title: `page test ${i}`, priority: i % 2 ? 'high' : 'low' } }))
      made.add(task.id)
    }
    const seen: string[] = []
    for await (const task of c.paginate('/api/tasks', { params: { query: { limit: 3 } } })) {
      if (task.title.startsWith('page test')) seen.push(task.id)
    }
    t.equal(seen.length, 8, 'every task')
    t.same(new Set(seen), made, 'each exactly once')
    t.ok(wire.count('GET', '/api/tasks') >= 3, `${wire.count('GET', '/api/tasks')} pages`)

    const high: string[] = []
    for await (const task of c.paginate('/api/tasks', { params: { query: { limit: 2, priority: 'high' } } })) high.push(task.priority)
    t.same(high, ['high', 'high', 'high', 'high'], 'filters apply to every page')

    const bad = await c.paginate('/api/tasks', { params: { query: { cursor: 'tampered' } } }).next().catch((e: unknown) => e)
    t.ok(isApiError(bad, 'invalid_cursor'), 'an error page throws ApiError with its code')
  })

  t.test('updateTask retries on 412 when another writer changed the task, and gives up after maxAttempts', async t => {
    const { c, wire } = client({ credentials })
    const task = await unwrap(c.POST('/api/tasks', { body: { title: 'etag test', priority: 'low' } }))
    const adminToken = (await api.login(ADMIN_EMAIL, ADMIN_PASSWORD)).token
    const other = async (description: string) => {
      const res = await api.request({ method: 'PUT', url: `/api/tasks/${task.id}`, headers: api.auth(adminToken), payload: { description } })
      t.equal(res.statusCode, 200, 'the other writer wrote')
    }
    const seen: Array<{ attempt: number, priority: string, description: string | null | undefined }> = []
    const updated = await c.updateTask(task.id, async (current, attempt) => {
      seen.push({ attempt, priority: current.priority, description: current.description })
      if (attempt === 1) await other('written in between')
      return { priority: current.priority === 'low' ? 'medium' : 'high' }
    })
    t.same(seen.map(s => s.attempt), [1, 2], 'applied twice')
    t.equal(seen[1]?.description, 'written in between', 'the second round saw the other write')
    t.equal(updated.priority, 'medium')
    t.equal(updated.description, 'written in between', 'the other write is kept')
    t.equal(wire.count('PUT', `/api/tasks/${task.id}`), 2, 'one 412, one success')

    let rounds = 0
    const err = await c.updateTask(task.id, async current => {
      rounds++
      await other(`interference ${rounds}`)
      return { title: `${current.title}!` }
    }, { maxAttempts: 2 }).catch((e: unknown) => e)
    t.equal(rounds, 2, 'gave up after maxAttempts')
    t.ok(isApiError(err, 'precondition_failed'), 'with the 412 as ApiError')
    t.equal((err as ApiError).status, 412)
    const final = await unwrap(c.GET('/api/tasks/{id}', { params: { path: { id: task.id } } }))
    t.equal(final.title, 'etag test', 'nothing of the refused rounds was written')

    const plain = await c.updateTask(task.id, { title: 'plain change' })
    t.equal(plain.title, 'plain change', 'a constant change works too')
  })
})

/** A tiny server that answers from a script, one entry per hit (the last one repeats). */
async function stub (t: Test, script: Array<(req: IncomingMessage, res: ServerResponse) => void>) {
  const hits: Array<{ method: string, url: string, at: number }> = []
  const server = createServer((req, res) => {
    hits.push({ method: req.method!, url: req.url!, at: Date.now() })
    req.resume()
    req.on('end', () => script[Math.min(hits.length, script.length) - 1]!(req, res))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits }
}

const problem = (status: number, code: string, headers: Record<string, string> = {}) => (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(status, { 'content-type': 'application/problem+json', ...headers })
  res.end(JSON.stringify({ type: 'about:blank', title: 'Error', status, code, detail: 'scripted' }))
}
const ok = (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ status: 'ok' }))
}
const tokens = { access_token: 'a.b.c', refresh_token: 'r' }

t.test('Retry-After on 429/503', async t => {
  t.test('waits the seconds it names, then succeeds', async t => {
    const s = await stub(t, [problem(429, 'rate_limited', { 'retry-after': '1' }), ok])
    const started = Date.now()
    const res = await createApiClient({ baseUrl: s.baseUrl }).GET('/api/health')
    t.equal(res.response.status, 200)
    t.equal(s.hits.length, 2)
    t.ok(s.hits[1]!.at - s.hits[0]!.at >= 950, `waited ${s.hits[1]!.at - s.hits[0]!.at} ms`)
    t.ok(Date.now() - started < 5000)
  })

  t.test('an HTTP-date and a 503 too; the wait is capped by maxDelayMs', async t => {
    t.equal(parseRetryAfter('120'), 120_000)
    t.ok(Math.abs((parseRetryAfter(new Date(Date.now() + 60_000).toUTCString()) ?? 0) - 60_000) <= 1000, 'HTTP-date')
    t.equal(parseRetryAfter('soon'), undefined)
    const s = await stub(t, [
      problem(503, 'service_unavailable', { 'retry-after': new Date(Date.now() + 3_600_000).toUTCString() }),
      problem(429, 'rate_limited', { 'retry-after': '3600' }),
      ok
    ])
    const started = Date.now()
    const res = await createApiClient({ baseUrl: s.baseUrl, retry: { maxDelayMs: 50 } }).GET('/api/health')
    t.equal(res.response.status, 200)
    t.equal(s.hits.length, 3)
    t.ok(Date.now() - started < 2000, 'an hour was cut to 50 ms')
  })

  t.test('at most 3 attempts by default; the last answer is returned', async t => {
    const s = await stub(t, [problem(429, 'rate_limited', { 'retry-after': '0' })])
    const c = createApiClient({ baseUrl: s.baseUrl, tokens })
    const res = await c.GET('/api/tasks')
    t.equal(res.response.status, 429)
    t.equal(s.hits.length, 3)
    const err = await unwrap(c.GET('/api/tasks')).catch((e: unknown) => e)
    t.ok(isApiError(err, 'rate_limited'))
    t.equal((err as ApiError).retryAfterMs, 0)
    t.equal(s.hits.length, 6)
  })

  t.test('idempotent PUT and DELETE are retried; other statuses are not', async t => {
    const s = await stub(t, [problem(503, 'service_unavailable', { 'retry-after': '0' }), ok])
    const c = createApiClient({ baseUrl: s.baseUrl, tokens })
    const res = await c.PUT('/api/tasks/{id}', { params: { path: { id: 'x' } }, body: { title: 'sent twice' } })
    t.equal(res.response.status, 200)
    t.same(s.hits.map(h => h.method), ['PUT', 'PUT'])
    for (const [status, code] of [[400, 'validation_failed'], [404, 'not_found'], [409, 'conflict'], [500, 'internal_error']] as const) {
      const one = await stub(t, [problem(status, code, { 'retry-after': '0' }), ok])
      const r = await createApiClient({ baseUrl: one.baseUrl, tokens }).DELETE('/api/tasks/{id}', { params: { path: { id: 'x' } } })
      t.equal(r.response.status, status)
      t.equal(r.error?.code, code)
      t.equal(one.hits.length, 1, `${status} is not retried`)
    }
  })

  t.test('POST is retried only when the caller opts in', async t => {
    const envelope = { events: [] } as never
    const s = await stub(t, [problem(429, 'rate_limited', { 'retry-after': '0' }), ok])
    const res = await createApiClient({ baseUrl: s.baseUrl }).POST('/api/events/ingest', { body: envelope })
    t.equal(res.response.status, 429)
    t.equal(s.hits.length, 1, 'POST: not retried')

    const per = await stub(t, [problem(429, 'rate_limited', { 'retry-after': '0' }), ok])
    const r1 = await createApiClient({ baseUrl: per.baseUrl }).POST('/api/events/ingest', { body: envelope, retryPost: true })
    t.equal(r1.response.status, 200)
    t.equal(per.hits.length, 2, 'one call opted in')

    const all = await stub(t, [problem(503, 'service_unavailable', { 'retry-after': '0' }), ok])
    const c = createApiClient({ baseUrl: all.baseUrl, tokens, retry: { retryPost: req => new URL(req.url).pathname === '/api/events/ingest' } })
    t.equal((await c.POST('/api/events/ingest', { body: envelope })).response.status, 200)
    t.equal(all.hits.length, 2, 'the client opted ingestion in')
    t.equal((await c.POST('/api/tasks', { body: { title: 'x' } })).response.status, 200, 'another POST (scripted 200)')

    const off = await stub(t, [problem(429, 'rate_limited', { 'retry-after': '0' }), ok])
    t.equal((await createApiClient({ baseUrl: off.baseUrl, retry: false }).GET('/api/health')).response.status, 429)
    t.equal(off.hits.length, 1, 'retry: false')
  })

  t.test('timeouts and the caller signal cut attempts and waits short', async t => {
    const s = await stub(t, [() => { /* never answers */ }])
    const started = Date.now()
    const err = await createApiClient({ baseUrl: s.baseUrl, timeoutMs: 100 }).GET('/api/health').catch((e: unknown) => e)
    t.equal((err as Error).name, 'TimeoutError')
    t.ok(Date.now() - started < 2000)

    const slow = await stub(t, [problem(429, 'rate_limited', { 'retry-after': '30' })])
    const aborted = await createApiClient({ baseUrl: slow.baseUrl }).GET('/api/health', { signal: AbortSignal.timeout(100) }).catch((e: unknown) => e)
    t.equal((aborted as Error).name, 'TimeoutError', 'the Retry-After wait ends with the signal')
    t.equal(slow.hits.length, 1)
  })
})
