/**
 * `npm run test:contract -- --base-url <url>`: the read-only and self-cleaning part of the
 * conformance suite against any deployment (a staging URL, a colleague's laptop). Every
 * response is checked against docs/api-specification.yaml with `checkResponse` (status
 * documented, content type, body schema, API headers), plus what each check expects.
 *
 * - Read-only part: every GET operation (lists with `limit`, the next page when there is one;
 *   a get-by-id with an id from its list, else an unknown id and its 404), `HEAD` on each,
 *   invalid and unknown query parameters (400), a malformed id (400), a missing or invalid
 *   token (401 with `WWW-Authenticate`), an unknown path (404), a method a path does not list
 *   (405 with `Allow`), ingestion with no or an unknown API key (401).
 * - Self-cleaning part (not with `--only read`): a task (update with If-Match, a stale If-Match,
 *   status, comment; deleted at the end), a user on `example.invalid` (temporary password,
 *   change, login, refresh, logout; deactivated at the end), with `--with-accounts` an AWS
 *   account `9999<run id>` (update, rotate key; deleted at the end), and with an ingestion key
 *   (CONTRACT_API_KEY, or the new account's) one marked event (redelivery, task from it;
 *   deleted at the end). Clean-up runs in `finally`, also after failed checks or Ctrl-C, and
 *   everything created is listed with its outcome.
 *
 * Credentials only from the environment (never on the command line, never printed):
 * CONTRACT_ADMIN_EMAIL / CONTRACT_ADMIN_PASSWORD of an admin of the deployment, CONTRACT_API_KEY.
 * One line per check (`ok` / `not ok`), a summary, exit 1 on any failure, 2 on a usage error.
 */
import { randomInt, randomUUID } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { operations, type Operation } from '../test/contract.js'
import {
  BAD_CREDENTIALS, MALFORMED_ID, UNKNOWN_ID, UNKNOWN_QUERY, exampleBody, fillPath, firstSuccess, queryMutations,
  queryParameters, violationsOf, wrongMethods, type Json
} from '../test/conformance-cases.js'

const USAGE = `usage: npm run test:contract -- --base-url <url> [--only read] [--with-accounts] [--timeout <seconds>]

  --base-url <url>     the deployment (http or https; also CONTRACT_BASE_URL)
  --only read          only the read-only part: nothing is written
  --with-accounts      also register an AWS account 9999<run id> (deleted at the end)
  --timeout <seconds>  per request (default 10)

environment (never on the command line):
  CONTRACT_ADMIN_EMAIL, CONTRACT_ADMIN_PASSWORD   an admin of the deployment (required)
  CONTRACT_API_KEY                                 an AWS account's ingestion key (optional;
                                                   without it the ingestion of an event is skipped
                                                   unless --with-accounts)`

class UsageError extends Error {}
/** A step the rest of a section needs has failed: the section stops (clean-up still runs). */
class Stop extends Error {}
/** The run cannot go on (the deployment does not answer, or Ctrl-C): straight to clean-up. */
class Abort extends Error {}

interface Options { base: URL, readOnly: boolean, withAccounts: boolean, timeoutMs: number, email: string, password: string, apiKey: string | undefined }

function options (argv: string[], env: NodeJS.ProcessEnv): Options | 'help' {
  const secret = argv.find(a => /^--(api-key|password|email|token)(=|$)/.test(a))
  if (secret) throw new UsageError(`${secret.split('=')[0]}: credentials are read from the environment only (CONTRACT_ADMIN_EMAIL, CONTRACT_ADMIN_PASSWORD, CONTRACT_API_KEY), never from the command line`)
  let values
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        'base-url': { type: 'string' },
        only: { type: 'string' },
        'with-accounts': { type: 'boolean' },
        timeout: { type: 'string' },
        help: { type: 'boolean', short: 'h' }
      }
    }))
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  if (values.help) return 'help'
  const raw = values['base-url'] ?? env.CONTRACT_BASE_URL
  if (!raw) throw new UsageError('--base-url (or CONTRACT_BASE_URL) is required')
  let base: URL
  try {
    base = new URL(raw)
  } catch {
    throw new UsageError(`--base-url ${raw}: not a URL`)
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new UsageError(`--base-url ${raw}: http or https only`)
  if (base.search || base.hash || base.username || base.password) throw new UsageError(`--base-url ${base.origin}: without query, fragment or credentials`)
  if (values.only !== undefined && values.only !== 'read') throw new UsageError(`--only ${values.only}: the only part that runs alone is "read"`)
  const readOnly = values.only === 'read'
  if (readOnly && values['with-accounts']) throw new UsageError('--with-accounts writes: it cannot go with --only read')
  const timeout = values.timeout === undefined ? 10 : Number(values.timeout)
  if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError(`--timeout ${values.timeout}: a number of seconds`)
  const email = env.CONTRACT_ADMIN_EMAIL
  const password = env.CONTRACT_ADMIN_PASSWORD
  if (!email || !password) throw new UsageError('CONTRACT_ADMIN_EMAIL and CONTRACT_ADMIN_PASSWORD (an admin of the deployment) must be set')
  return { base, readOnly, withAccounts: values['with-accounts'] === true, timeoutMs: timeout * 1000, email, password, apiKey: env.CONTRACT_API_KEY || undefined }
}

// ------------------------------------------------------------------ output

/** Values never printed: the credentials given and every token, password and key the run obtains. */
const secrets = new Set<string>()
/** Their values in any JSON text, also one cut short (a violation quotes at most 500 characters of a body). */
const SECRET_FIELDS = /"(access_token|refresh_token|api_key|temporary_password|password|current_password|new_password)"\s*:\s*"(?:[^"\\]|\\.)*"?/g

function redact (text: string): string {
  let out = text.replace(SECRET_FIELDS, '"$1":"***"').replace(/Bearer [A-Za-z0-9._~+/-]+=*/g, 'Bearer ***')
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join('***')
  return out
}

const SECRET_KEYS = new Set(['access_token', 'refresh_token', 'api_key', 'temporary_password'])

/** Every token, key and temporary password in an answer becomes a secret before anything is printed. */
function collectSecrets (value: unknown, depth = 0): void {
  if (!value || typeof value !== 'object' || depth > 4) return
  for (const [k, v] of Object.entries(value)) {
    if (SECRET_KEYS.has(k) && typeof v === 'string') secrets.add(v)
    else collectSecrets(v, depth + 1)
  }
}

const log = (line: string): void => { console.log(redact(line)) }
const tally = { passed: 0, failed: 0, skipped: 0, n: 0 }

function report (ok: boolean, name: string, problems: string[] = []): void {
  if (ok) tally.passed++
  else tally.failed++
  log(`${ok ? 'ok' : 'not ok'} ${++tally.n} ${name}${problems.length ? ` — ${problems.join('; ')}` : ''}`)
}

function skip (name: string, reason: string): void {
  tally.skipped++
  log(`ok ${++tally.n} ${name} # SKIP ${reason}`)
}

// ------------------------------------------------------------------ HTTP

interface Reply { method: string, path: string, status: number, headers: Headers, text: string, json: any, violations: string[], requestId: string }
interface Send { token?: string | null, body?: unknown, headers?: Record<string, string> }
interface Expect {
  status: number | number[]
  /** The problem `code` of an error answer. */
  code?: string
  /** Further problems with the reply (empty: fine). */
  also?: (r: Reply) => Array<string | false | undefined>
}

/** setTimeout's promise, cut short (rejected) by Ctrl-C. */
const sleep = (ms: number, signal: AbortSignal) => delay(ms, undefined, { signal })
const op = (id: string): Operation => {
  const found = operations.find(o => o.operationId === id)
  if (!found) throw new Error(`no operation ${id} in the spec`)
  return found
}
const shown = (path: string): string => path.length > 120 ? `${path.slice(0, 117)}…` : path

function client (opts: Options, runId: string) {
  const prefix = opts.base.pathname.replace(/\/+$/, '')
  let seq = 0
  let answered = 0
  let transportFailures = 0
  /**
   * Ctrl-C lets a request in flight finish (so that what it created is known and cleaned up),
   * cuts a wait for a rate limit short, and sends nothing more until the clean-up.
   */
  let interrupt = new AbortController()
  let cleaningUp = false

  async function send (method: string, path: string, init: Send): Promise<Reply> {
    for (let attempt = 1; ; attempt++) {
      if (interrupt.signal.aborted) throw new Abort('interrupted')
      const requestId = `contract-${runId}-${++seq}`
      const headers: Record<string, string> = { 'x-request-id': requestId, 'user-agent': 'cloud-monitoring-test-contract', ...(init.headers ?? {}) }
      if (init.token) headers.authorization = `Bearer ${init.token}`
      if (init.body !== undefined) headers['content-type'] = 'application/json'
      const res = await fetch(`${opts.base.origin}${prefix}${path}`, {
        method,
        headers,
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        redirect: 'manual',
        signal: AbortSignal.timeout(opts.timeoutMs)
      })
      const text = await res.text()
      const retryAfter = Number(res.headers.get('retry-after'))
      // A rate limit of the deployment is not a finding: wait as told, a few times.
      if (res.status === 429 && attempt < 4 && retryAfter > 0 && retryAfter <= 60) {
        log(`# ${method} ${shown(path)}: 429 ${safeJson(text)?.code ?? ''}, waiting ${retryAfter} s as Retry-After says`)
        await sleep(retryAfter * 1000, interrupt.signal)
        continue
      }
      const json = safeJson(text)
      collectSecrets(json)
      return { method, path, status: res.status, headers: res.headers, text, json, violations: violationsOf(method, path, res, text), requestId }
    }
  }

  /**
   * One check: the request, its contract check and what is expected of it, reported on one
   * line. Returns the reply (whatever its status), or undefined when nothing came back.
   */
  async function check (name: string, method: string, path: string, init: Send, expect: Expect): Promise<Reply | undefined> {
    let r: Reply
    try {
      r = await send(method, path, init)
    } catch (err) {
      if (err instanceof Abort) throw err
      const cause = (err as Error).name === 'TimeoutError' ? `no answer within ${opts.timeoutMs / 1000} s` : interrupt.signal.aborted ? 'interrupted' : `no answer: ${String((err as Error).cause ?? err)}`
      report(false, `${name}: ${method} ${shown(path)}`, [cause])
      transportFailures++
      if (!cleaningUp && (interrupt.signal.aborted || answered === 0 || transportFailures >= 3)) throw new Abort(cause)
      return undefined
    }
    answered++
    transportFailures = 0
    const statuses = Array.isArray(expect.status) ? expect.status : [expect.status]
    const problems: string[] = []
    if (!statuses.includes(r.status)) {
      problems.push(`expected ${statuses.join(' or ')}`)
      if (r.status >= 300 && r.status < 400) problems.push(`redirected to ${r.headers.get('location') ?? '?'} (use that address as --base-url)`)
      else if (r.json?.code) problems.push(`${r.json.code}: ${String(r.json.detail ?? '').slice(0, 200)}`)
    } else if (expect.code !== undefined && r.json?.code !== expect.code) {
      problems.push(`expected code ${expect.code}, got ${String(r.json?.code)}`)
    }
    const where = `${method} ${path} → ${r.status}: `
    problems.push(...r.violations.map(v => v.startsWith(where) ? v.slice(where.length) : v))
    if (statuses.includes(r.status) && expect.also) problems.push(...expect.also(r).filter((p): p is string => typeof p === 'string'))
    if (problems.length) problems.push(`x-request-id ${r.requestId}`)
    report(problems.length === 0, `${name}: ${method} ${shown(path)} → ${r.status}`, problems)
    return r
  }

  return {
    check,
    interrupt: () => { interrupt.abort() },
    /** From here on requests go out whatever happened before (a fresh signal; no abort on failures). */
    startCleanUp: () => { cleaningUp = true; interrupt = new AbortController() }
  }
}

function safeJson (text: string): any {
  try {
    return text ? JSON.parse(text) : undefined
  } catch {
    return undefined
  }
}

// ------------------------------------------------------------------ the run

type Check = ReturnType<typeof client>['check']
interface Session { token: string, refresh: string, userId: string | undefined, role: string | undefined, mustChange: boolean }
interface Created { what: string, outcome: string, cleanUp: () => Promise<string> }

const PAGE = 5
const bearerChallenge = (r: Reply) => [!/^Bearer\b/.test(r.headers.get('www-authenticate') ?? '') && `WWW-Authenticate is ${JSON.stringify(r.headers.get('www-authenticate'))}, expected Bearer …`]

async function login (check: Check, name: string, email: string, password: string, also?: Expect['also']): Promise<Session | undefined> {
  const r = await check(name, 'POST', '/api/auth/login', { body: { email, password } }, { status: 200, ...(also ? { also } : {}) })
  if (r?.status !== 200 || !r.json?.access_token) return undefined
  return { token: r.json.access_token, refresh: r.json.refresh_token, userId: r.json.user?.id, role: r.json.user?.role, mustChange: r.json.user?.must_change_password === true }
}

/** Runs one part; a Stop ends it (noted), anything else goes up. */
async function section (name: string, body: () => Promise<void>): Promise<void> {
  log(`# ${name}`)
  try {
    await body()
  } catch (err) {
    if (!(err instanceof Stop)) throw err
    log(`# ${name}: stopped (${err.message}); the checks after it did not run`)
  }
}

const need = <T>(value: T | undefined | null | false, what: string): T => {
  if (value === undefined || value === null || value === false) throw new Stop(what)
  return value
}

async function readOnlyPart (check: Check, admin: Session | undefined, runId: string): Promise<void> {
  /** The first id of each list (by path), to read one item by id. */
  const firstIds = new Map<string, string | null>()
  for (const o of operations.filter(x => x.method === 'GET')) {
    const roles = o.op['x-roles'] as string[] | undefined
    const token = roles ? admin?.token : null
    const withId = o.path.includes('{id}')
    let path = o.path
    let expected = firstSuccess(o)
    let note = ''
    if (withId) {
      const id = firstIds.get(o.path.slice(0, o.path.indexOf('/{id}')))
      path = fillPath(o, { id: id ?? UNKNOWN_ID })
      if (!id) { expected = 404; note = ' (no item to read: an unknown id)' }
    }
    const params = queryParameters(o)
    const list = params.some(p => p.name === 'limit')
    if (token === undefined) {
      skip(`${o.operationId}: GET ${o.path}`, roles?.includes('admin') ? 'no admin session' : 'not allowed to admins')
    } else {
      const first = list ? `${path}?limit=${PAGE}` : path
      const r = await check(`${o.operationId}${note}`, 'GET', first, { token }, {
        status: expected,
        also: r => list && r.status === 200 ? [!(Array.isArray(r.json?.items) && r.json.items.length <= PAGE) && `expected at most ${PAGE} items`] : []
      })
      if (list && r?.status === 200 && !withId) firstIds.set(o.path, r.json?.items?.[0]?.id ?? null)
      if (list && r?.status === 200 && typeof r.json?.next_cursor === 'string') {
        await check(`${o.operationId} next page`, 'GET', `${path}?limit=${PAGE}&cursor=${encodeURIComponent(r.json.next_cursor)}`, { token }, { status: 200 })
      }
      await check(`${o.operationId} HEAD`, 'HEAD', first, { token }, { status: r?.status ?? expected })
      for (const param of params) {
        for (const value of queryMutations(param)) {
          await check(`${o.operationId} invalid ${param.name}`, 'GET', `${path}?${param.name}=${encodeURIComponent(value)}`, { token }, { status: 400, code: 'validation_failed' })
        }
      }
      await check(`${o.operationId} unknown query parameter`, 'GET', `${path}?${UNKNOWN_QUERY}`, { token }, { status: 400, code: 'validation_failed' })
      if (withId) {
        await check(`${o.operationId} malformed id`, 'GET', fillPath(o, { id: MALFORMED_ID }), { token }, { status: 400 })
        if (expected !== 404) await check(`${o.operationId} unknown id`, 'GET', fillPath(o, { id: UNKNOWN_ID }), { token }, { status: 404, code: 'not_found' })
      }
    }
    if (roles) {
      for (const bad of BAD_CREDENTIALS) {
        await check(`${o.operationId} ${bad.name}`, 'GET', path, { headers: bad.headers }, { status: 401, also: bearerChallenge })
      }
    }
  }
  await check('ingestEvents without an API key', 'POST', '/api/events/ingest', { body: exampleBody(op('ingestEvents')) }, { status: 401, code: 'invalid_api_key' })
  await check('ingestEvents unknown API key', 'POST', '/api/events/ingest', { body: exampleBody(op('ingestEvents')), headers: { 'x-api-key': `cmc_contract${runId}x${'0'.repeat(30)}` } }, { status: 401, code: 'invalid_api_key' })
  await check('unknown path', 'GET', `/api/no-such-path-${runId}`, {}, { status: 404, code: 'not_found' })
  for (const w of wrongMethods()) {
    await check(`${w.method} on ${w.path}`, w.method, w.url, {}, {
      status: 405,
      code: 'method_not_allowed',
      also: r => w.supported.filter(m => !(r.headers.get('allow') ?? '').split(/,\s*/).includes(m)).map(m => `Allow (${r.headers.get('allow')}) does not list ${m}`)
    })
  }
}

async function tasksPart (check: Check, admin: Session, mark: string, created: Created[]): Promise<void> {
  const title = `${mark} task`
  const r = need(await check('createTask', 'POST', '/api/tasks', { token: admin.token, body: { ...exampleBody(op('createTask')), title } }, {
    status: 201,
    also: r => [r.json?.title !== title && 'the title is not the one sent', !r.headers.get('etag') && 'no ETag']
  }), 'no answer')
  const id: string = need(r.status === 201 && r.json?.id, 'the task was not created')
  const task = `/api/tasks/${id}`
  created.push({
    what: `task ${id} "${title}"`,
    outcome: 'not cleaned up',
    cleanUp: async () => {
      const del = await check('deleteTask (clean-up)', 'DELETE', task, { token: admin.token }, { status: 204 })
      const gone = await check('getTask after delete', 'GET', task, { token: admin.token }, { status: 404, code: 'not_found' })
      return del?.status === 204 && gone?.status === 404 ? 'deleted' : 'NOT deleted'
    }
  })
  const etag = r.headers.get('etag')
  const version = Number(r.json.version)
  const read = await check('getTask', 'GET', task, { token: admin.token }, { status: 200, also: r => [r.headers.get('etag') !== etag && 'the ETag differs from the one of the creation'] })
  const first = need(read?.headers.get('etag') ?? etag, 'no ETag to send in If-Match')
  const updated = await check('updateTask with If-Match', 'PUT', task, { token: admin.token, headers: { 'if-match': first }, body: exampleBody(op('updateTask')) }, {
    status: 200,
    also: r => [r.headers.get('etag') === first && 'the ETag did not change', r.json?.version !== version + 1 && `version ${r.json?.version}, expected ${version + 1}`]
  })
  await check('updateTask stale If-Match', 'PUT', task, { token: admin.token, headers: { 'if-match': first }, body: { description: `${mark}: a stale write` } }, { status: 412, code: 'precondition_failed' })
  const current = need(updated?.status === 200 && updated.headers.get('etag'), 'the update failed')
  const status = exampleBody(op('updateTaskStatus'))
  await check(`updateTaskStatus to ${status.status}`, 'PUT', `${task}/status`, { token: admin.token, headers: { 'if-match': current }, body: { ...status, comment: `${mark}: status change` } }, {
    status: 200,
    also: r => [r.json?.status !== status.status && `status ${r.json?.status}`]
  })
  const comment = await check('addTaskComment', 'POST', `${task}/comments`, { token: admin.token, body: exampleBody(op('addTaskComment')) }, { status: 201 })
  await check('listTaskComments', 'GET', `${task}/comments?limit=${PAGE}`, { token: admin.token }, {
    status: 200,
    also: r => [!r.json?.items?.some((c: Json) => c.id === comment?.json?.id) && 'the new comment is not listed']
  })
  await check('listTaskStatusHistory', 'GET', `${task}/history?limit=${PAGE}`, { token: admin.token }, {
    status: 200,
    also: r => [!r.json?.items?.some((h: Json) => h.to === status.status) && `no change to ${status.status} in the history`]
  })
}

async function usersPart (check: Check, admin: Session, runId: string, created: Created[]): Promise<void> {
  const email = `contract-${runId}@example.invalid`
  const name = `Contract test ${runId}`
  const r = need(await check('createUser without a password', 'POST', '/api/users', { token: admin.token, body: { ...exampleBody(op('createUser')), email, name, role: 'user' } }, {
    status: 201,
    also: r => [r.json?.user?.must_change_password !== true && 'must_change_password is not true', !r.json?.temporary_password && 'no temporary_password']
  }), 'no answer')
  const id: string = need(r.status === 201 && r.json?.user?.id, 'the user was not created')
  const temporary: string = need(r.json.temporary_password, 'no temporary password')
  const user = `/api/users/${id}`
  created.push({
    what: `user ${id} ${email}`,
    outcome: 'not cleaned up',
    cleanUp: async () => {
      const del = await check('deactivateUser (clean-up)', 'DELETE', user, { token: admin.token }, { status: 204 })
      const after = await check('getUser after deactivation', 'GET', user, { token: admin.token }, { status: 200, also: r => [r.json?.is_active !== false && 'still active'] })
      return del?.status === 204 && after?.json?.is_active === false ? 'deactivated (users are never deleted)' : 'NOT deactivated'
    }
  })
  const temp = need(await login(check, 'login with the temporary password', email, temporary, r => [r.json?.user?.must_change_password !== true && 'must_change_password is not true']), 'the temporary password does not log in')
  await check('listTasks before the password change', 'GET', `/api/tasks?limit=${PAGE}`, { token: temp.token }, { status: 403, code: 'password_change_required' })
  await check('getMe before the password change', 'GET', '/api/auth/me', { token: temp.token }, { status: 200 })
  const password = `contract ${randomUUID()}`
  secrets.add(password)
  need((await check('changePassword', 'POST', '/api/auth/change-password', { token: temp.token, body: { current_password: temporary, new_password: password } }, { status: 204 }))?.status === 204, 'the password did not change')
  await check('getMe with a token from before the change', 'GET', '/api/auth/me', { token: temp.token }, { status: 401, code: 'token_revoked' })
  const session = need(await login(check, 'login with the new password', email, password, r => [r.json?.user?.must_change_password !== false && 'must_change_password is not false']), 'the new password does not log in')
  await check('listTasks as the new user', 'GET', `/api/tasks?limit=${PAGE}`, { token: session.token }, { status: 200 })
  await check('listUsers as a user (role)', 'GET', `/api/users?limit=${PAGE}`, { token: session.token }, { status: 403, code: 'forbidden' })
  const refreshed = await check('refreshToken', 'POST', '/api/auth/refresh', { body: { refresh_token: session.refresh } }, { status: 200 })
  if (refreshed?.status === 200) {
    await check('logout', 'POST', '/api/auth/logout', { token: refreshed.json.access_token, body: { refresh_token: refreshed.json.refresh_token } }, { status: 204 })
  }
  const read = await check('getUser', 'GET', user, { token: admin.token }, { status: 200, also: r => [!r.headers.get('etag') && 'no ETag'] })
  const etag = need(read?.headers.get('etag'), 'no ETag to send in If-Match')
  await check('updateUser with If-Match', 'PUT', user, { token: admin.token, headers: { 'if-match': etag }, body: { ...exampleBody(op('updateUser')), name: `${name} renamed` } }, { status: 200 })
  await check('updateUser stale If-Match', 'PUT', user, { token: admin.token, headers: { 'if-match': etag }, body: { name: `${name} stale` } }, { status: 412, code: 'precondition_failed' })
}

/** Registers an AWS account `9999<run id>`; returns its number and ingestion key, and the key it had before a rotation. */
async function accountsPart (check: Check, admin: Session, runId: string, mark: string, created: Created[]): Promise<{ number: string, key: string, rotated?: string }> {
  const number = `9999${runId}`
  const r = need(await check('createAwsAccount', 'POST', '/api/config/aws-accounts', {
    token: admin.token,
    body: { ...exampleBody(op('createAwsAccount')), account_id: number, name: mark, role_arn: `arn:aws:iam::${number}:role/contract-test` }
  }, { status: 201, also: r => [!r.json?.api_key && 'no api_key'] }), 'no answer')
  const id: string = need(r.status === 201 && r.json?.account?.id, 'the AWS account was not created')
  let key: string = r.json.api_key
  const account = `/api/config/aws-accounts/${id}`
  created.push({
    what: `AWS account ${number} (${id}) "${mark}"`,
    outcome: 'not cleaned up',
    cleanUp: async () => {
      const del = await check('deleteAwsAccount (clean-up)', 'DELETE', account, { token: admin.token }, { status: 204 })
      const gone = await check('getAwsAccount after delete', 'GET', account, { token: admin.token }, { status: 404, code: 'not_found' })
      return del?.status === 204 && gone?.status === 404 ? 'deleted' : 'NOT deleted'
    }
  })
  const read = await check('getAwsAccount', 'GET', account, { token: admin.token }, { status: 200, also: r => [r.json?.account_id !== number && 'another account_id'] })
  const etag = read?.headers.get('etag')
  if (etag) {
    await check('updateAwsAccount with If-Match', 'PUT', account, { token: admin.token, headers: { 'if-match': etag }, body: exampleBody(op('updateAwsAccount')) }, { status: 200 })
    await check('updateAwsAccount stale If-Match', 'PUT', account, { token: admin.token, headers: { 'if-match': etag }, body: { name: `${mark} stale` } }, { status: 412, code: 'precondition_failed' })
  }
  await check('getAwsAccountIngestionHealth', 'GET', `${account}/ingestion-health`, { token: admin.token }, { status: 200 })
  await check('getAwsAccountOnboarding', 'GET', `${account}/onboarding`, { token: admin.token }, { status: 200, also: r => [r.text?.includes(key) && 'the API key in the onboarding kit'] })
  const rotated = await check('rotateAwsAccountKey', 'POST', `${account}/rotate-key`, { token: admin.token }, { status: 200, also: r => [!r.json?.api_key && 'no api_key'] })
  if (rotated?.status === 200 && rotated.json?.api_key) {
    const old = key
    key = rotated.json.api_key
    return { number, key, rotated: old }
  }
  return { number, key }
}

/** The AWS account of an ingestion key, from the accounts' `api_key_prefix`. */
async function accountOfKey (check: Check, admin: Session, key: string): Promise<string | undefined> {
  let cursor: string | undefined
  for (let page = 0; page < 20; page++) {
    const r = await check('listAwsAccounts (the account of CONTRACT_API_KEY)', 'GET', `/api/config/aws-accounts?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { token: admin.token }, { status: 200 })
    if (r?.status !== 200) return undefined
    const found = (r.json.items as Json[]).find(a => key.startsWith(a.api_key_prefix))
    if (found) return found.account_id
    cursor = r.json.next_cursor ?? undefined
    if (!cursor) return undefined
  }
  return undefined
}

async function ingestionPart (check: Check, admin: Session, runId: string, mark: string, target: { number: string, key: string, rotated?: string }, created: Created[]): Promise<void> {
  const { number, key } = target
  const name = `contract-test-${runId}`
  const base = exampleBody(op('ingestEvents'))
  const envelope = {
    ...base,
    id: `${name}-${randomUUID()}`,
    account: number,
    time: new Date().toISOString(),
    region: 'us-east-1',
    resources: [`arn:aws:cloudwatch:us-east-1:${number}:alarm:${name}`],
    detail: { ...base.detail, alarmName: name, configuration: { ...base.detail?.configuration, description: `${mark} [severity:critical]` } }
  }
  const ingest = (body: unknown, k = key) => ({ headers: { 'x-api-key': k }, body })
  const other = number === '000000000000' ? '111111111111' : '000000000000'
  await check('ingestEvents another account', 'POST', '/api/events/ingest', ingest({ ...envelope, id: `${envelope.id}-other`, account: other }), { status: 403, code: 'account_mismatch' })
  const { detail: _detail, ...invalid } = envelope
  await check('ingestEvents invalid envelope', 'POST', '/api/events/ingest', ingest({ ...invalid, id: `${envelope.id}-invalid` }), { status: 400, code: 'validation_failed' })
  if (target.rotated) await check('ingestEvents with the key before rotation', 'POST', '/api/events/ingest', ingest(envelope, target.rotated), { status: 401, code: 'invalid_api_key' })
  const r = need(await check('ingestEvents', 'POST', '/api/events/ingest', ingest(envelope), {
    status: 202,
    also: r => [!['created', 'updated', 'ignored'].includes(r.json?.results?.[0]?.action) && `action ${r.json?.results?.[0]?.action}`]
  }), 'no answer')
  const result = r.json?.results?.[0] as Json | undefined
  if (result?.action === 'ignored') {
    skip('getEvent of the ingested event', `the deployment ignored it (${result.reason}): its monitoring settings`)
    return
  }
  const id: string = need(r.status === 202 && result?.event_id, 'no event was stored')
  const event = `/api/events/${id}`
  created.push({
    what: `event ${id} (envelope ${envelope.id}, AWS account ${number})`,
    outcome: 'not cleaned up',
    cleanUp: async () => {
      const del = await check('deleteEvent (clean-up)', 'DELETE', event, { token: admin.token }, { status: 204 })
      const gone = await check('getEvent after delete', 'GET', event, { token: admin.token }, { status: 404, code: 'not_found' })
      return del?.status === 204 && gone?.status === 404 ? 'deleted' : 'NOT deleted'
    }
  })
  await check('getEvent', 'GET', event, { token: admin.token }, { status: 200, also: r => [r.json?.account_id !== number && 'another account_id'] })
  await check('ingestEvents redelivery', 'POST', '/api/events/ingest', ingest(envelope), { status: 202, also: r => [r.json?.results?.[0]?.action !== 'duplicate' && `action ${r.json?.results?.[0]?.action}, expected duplicate`] })
  await check('listEvents of the account', 'GET', `/api/events?account_id=${number}&limit=${PAGE}`, { token: admin.token }, { status: 200, also: r => [!r.json?.items?.some((e: Json) => e.id === id) && 'the event is not listed'] })
  const fromEvent = await check('createTaskFromEvent', 'POST', `${event}/create-task`, { token: admin.token, body: { ...exampleBody(op('createTaskFromEvent')), assigned_to: admin.userId } }, { status: 201 })
  if (fromEvent?.status === 201 && fromEvent.json?.id) {
    const task = `/api/tasks/${fromEvent.json.id as string}`
    created.push({
      what: `task ${fromEvent.json.id as string} (from event ${id})`,
      outcome: 'not cleaned up',
      cleanUp: async () => {
        const del = await check('deleteTask (clean-up)', 'DELETE', task, { token: admin.token }, { status: 204 })
        return del?.status === 204 ? 'deleted' : 'NOT deleted'
      }
    })
    await check('createTaskFromEvent again', 'POST', `${event}/create-task`, { token: admin.token, body: {} }, { status: 409, code: 'event_has_task' })
  }
}

async function run (opts: Options): Promise<number> {
  const runId = String(randomInt(0, 100_000_000)).padStart(8, '0')
  const mark = `contract-test ${runId}`
  for (const s of [opts.email, opts.password, opts.apiKey]) if (s) secrets.add(s)
  const http = client(opts, runId)
  const { check } = http
  const created: Created[] = []
  const notes: string[] = []
  let admin: Session | undefined
  const sessions: Session[] = []
  let interrupted = false
  const onSignal = () => {
    if (interrupted) process.exit(130)
    interrupted = true
    log('# interrupted: cleaning up (Ctrl-C again to leave at once)')
    http.interrupt()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  log(`# test:contract run ${runId} against ${opts.base.href}${opts.readOnly ? ' (read-only)' : ''}`)
  try {
    const session = await login(check, 'login as CONTRACT_ADMIN_EMAIL', opts.email, opts.password, r => [
      r.json?.user?.role !== 'admin' && `CONTRACT_ADMIN_EMAIL is not an admin (role ${r.json?.user?.role})`,
      r.json?.user?.must_change_password === true && 'the admin has a temporary password: change it first'
    ])
    // Logged out at the end whatever it is; the checks that need an admin run only with one.
    if (session) sessions.push(session)
    admin = session?.userId && session.role === 'admin' && !session.mustChange ? session : undefined
    await section('read-only part', () => readOnlyPart(check, admin, runId))
    if (opts.readOnly) {
      log('# self-cleaning part: not run (--only read)')
    } else if (!admin) {
      skip('self-cleaning part', 'no admin session')
    } else {
      const a = admin
      await section('self-cleaning part: a task', () => tasksPart(check, a, mark, created))
      await section('self-cleaning part: a user', () => usersPart(check, a, runId, created))
      let target: { number: string, key: string, rotated?: string } | undefined
      if (opts.withAccounts) {
        await section('self-cleaning part: an AWS account', async () => { target = await accountsPart(check, a, runId, mark, created) })
      }
      if (opts.apiKey) {
        const key = opts.apiKey
        await section('self-cleaning part: ingestion with CONTRACT_API_KEY', async () => {
          const number = need(await accountOfKey(check, a, key), 'CONTRACT_API_KEY is the key of no registered AWS account')
          await ingestionPart(check, a, runId, mark, { number, key }, created)
          notes.push(`the ingestion health of AWS account ${number} counts this run's deliveries`)
        })
      } else if (target) {
        const t = target
        await section('self-cleaning part: ingestion with the new account\'s key', () => ingestionPart(check, a, runId, mark, t, created))
      } else {
        skip('ingestion of an event', 'no CONTRACT_API_KEY (nor --with-accounts)')
      }
    }
  } catch (err) {
    if (!(err instanceof Abort)) throw err
    log(`# run stopped: ${err.message}`)
  } finally {
    http.startCleanUp()
    if (created.length) log('# clean-up')
    for (const c of [...created].reverse()) {
      try {
        c.outcome = await c.cleanUp()
      } catch (err) {
        c.outcome = `NOT cleaned up: ${(err as Error).message}`
        report(false, `clean-up of ${c.what}`, [(err as Error).message])
      }
    }
    for (const s of sessions) await check('logout (the admin session of this run)', 'POST', '/api/auth/logout', { token: s.token, body: { refresh_token: s.refresh } }, { status: 204 })
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
  if (created.length) {
    log('# created by this run:')
    for (const c of created) log(`#   ${c.what}: ${c.outcome}`)
  } else {
    log('# created by this run: nothing')
  }
  for (const n of notes) log(`# note: ${n}`)
  log(`\n${tally.passed} passed, ${tally.failed} failed${tally.skipped ? ` (${tally.skipped} skipped)` : ''}${interrupted ? ', interrupted' : ''}`)
  return tally.failed || interrupted ? 1 : 0
}

async function main (): Promise<number> {
  let opts: Options | 'help'
  try {
    opts = options(process.argv.slice(2), process.env)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    console.error(`test:contract: ${err.message}\n\n${USAGE}`)
    return 2
  }
  if (opts === 'help') {
    console.log(USAGE)
    return 0
  }
  return run(opts)
}

main().then(code => { process.exitCode = code }, (err: unknown) => {
  console.error(redact(String((err as Error)?.stack ?? err)))
  process.exitCode = 1
})
