/**
 * `npm run ingest:check -- <dir> [options]`: delivers every captured EventBridge envelope
 * (`*.json`, recursively, in order of relative path) to the ingestion endpoint, one envelope per
 * request as an API destination does, and prints per file the outcome and the mapping (source,
 * severity, status, title, account, region, resources, occurred_at). Exits 1 on a refusal (a
 * 4xx/5xx, or a `rejected` result) or on a mismatch with an expectations file.
 *
 * Target: by default an embedded, empty, in-memory database (AWS accounts are registered as the
 * envelopes need them); `--base-url URL` for a deployment, with `--api-key <account>=<key>` per
 * AWS account and `--email`/`--password` of a user who may read events (envelopes then get fresh
 * ids, so that a second run is not all duplicates).
 *
 * Expectations: `<dir>/expectations.json`, `--expect FILE`, and the project's own
 * `test/fixtures/aws-events.expectations.json` (for the shared corpus), keyed by path relative to
 * `<dir>` and applied only to a file whose SHA-256 matches. An envelope whose id an earlier file
 * already used is a duplicate; it is delivered again with a fresh id to check its mapping.
 */
import { createHash, randomUUID } from 'node:crypto'
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { parseArgs } from 'node:util'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'
process.env.AWS_EC2_METADATA_DISABLED = 'true'

type Json = Record<string, any>
interface Expected extends Json { action: string }
interface Expectation { sha256: string, results: Expected[], duplicate_of?: string, note?: string }
interface Reply { status: number, body: Json }
interface Target {
  ingest: (account: string, envelope: unknown) => Promise<Reply>
  event: (id: string) => Promise<Json | null>
  close: () => Promise<void>
}

const PROJECT_EXPECTATIONS = new URL('../test/fixtures/aws-events.expectations.json', import.meta.url)
const MAPPED = ['source', 'severity', 'status', 'source_state', 'account_id', 'region', 'resources', 'resource_count', 'occurred_at'] as const

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'base-url': { type: 'string' },
    'api-key': { type: 'string', multiple: true },
    email: { type: 'string' },
    password: { type: 'string' },
    expect: { type: 'string', multiple: true },
    quiet: { type: 'boolean' }
  }
})

function files (dir: string): string[] {
  const out: string[] = []
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const full = join(d, name)
      if (statSync(full).isDirectory()) walk(full)
      else if (name.endsWith('.json') && name !== 'expectations.json' && !name.endsWith('.expectations.json')) out.push(full)
    }
  }
  walk(dir)
  return out.sort((a, b) => relative(dir, a) < relative(dir, b) ? -1 : 1)
}

function loadExpectations (dir: string): Map<string, Expectation> {
  const byKey = new Map<string, Expectation>()
  const sources = [PROJECT_EXPECTATIONS.pathname, join(dir, 'expectations.json'), ...(opts.expect ?? [])]
  for (const file of sources) {
    if (!existsSync(file)) continue
    for (const [path, e] of Object.entries(JSON.parse(readFileSync(file, 'utf8')) as Record<string, Expectation>)) {
      byKey.set(`${path}|${e.sha256}`, e)
    }
  }
  return byKey
}

async function embeddedTarget (): Promise<Target> {
  const [{ buildApp }, { loadConfig }, { startEmbeddedDynamo }, { ensureFirstAdmin }] = await Promise.all([
    import('../src/app.js'), import('../src/config.js'), import('../src/embedded-dynamodb.js'), import('../src/modules/users/first-admin.js')
  ])
  const db = await startEmbeddedDynamo()
  try {
    return await embeddedApp(db, { buildApp, loadConfig, ensureFirstAdmin })
  } catch (err) {
    await db.close()
    throw err
  }
}

async function embeddedApp (
  db: { endpoint: string, close: () => Promise<void> },
  { buildApp, loadConfig, ensureFirstAdmin }: { buildApp: typeof import('../src/app.js').buildApp, loadConfig: typeof import('../src/config.js').loadConfig, ensureFirstAdmin: typeof import('../src/modules/users/first-admin.js').ensureFirstAdmin }
): Promise<Target> {
  const config = loadConfig({ LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent', ADMIN_EMAIL: 'ingest-check@example.com', ADMIN_PASSWORD: `${randomUUID()} ${randomUUID()}`, TABLE_PREFIX: 'ingest-check-' })
  const app = await buildApp(config, { jwtSecret: randomUUID() + randomUUID(), dynamodbEndpoint: db.endpoint })
  await app.ready()
  await ensureFirstAdmin(app.repos.users, app.passwords, config.admin, app.stats)
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: config.admin.email, password: config.admin.password } })
  const auth = { authorization: `Bearer ${login.json().access_token as string}` }
  const keys = new Map<string, string>()
  const keyOf = async (account: string): Promise<string> => {
    const number = /^\d{12}$/.test(account) ? account : '000000000000'
    let key = keys.get(number)
    if (!key) {
      const res = await app.inject({ method: 'POST', url: '/api/config/aws-accounts', headers: auth, payload: { account_id: number, name: `ingest-check ${number}`, role_arn: `arn:aws:iam::${number}:role/ingest-check` } })
      if (res.statusCode !== 201) throw new Error(`registering AWS account ${number}: ${res.statusCode} ${res.body}`)
      key = res.json().api_key as string
      keys.set(number, key)
    }
    return key
  }
  return {
    async ingest (account, envelope) {
      const res = await app.inject({ method: 'POST', url: '/api/events/ingest', headers: { 'x-api-key': await keyOf(account), 'content-type': 'application/json' }, payload: JSON.stringify(envelope) })
      return { status: res.statusCode, body: res.json() }
    },
    async event (id) {
      const res = await app.inject({ method: 'GET', url: `/api/events/${id}`, headers: auth })
      return res.statusCode === 200 ? res.json() : null
    },
    async close () {
      await app.close()
      await db.close()
    }
  }
}

async function remoteTarget (baseUrl: string): Promise<Target> {
  const keys = new Map((opts['api-key'] ?? []).map(pair => pair.split('=', 2) as [string, string]))
  let auth: Record<string, string> | undefined
  if (opts.email && opts.password) {
    const res = await fetch(new URL('/api/auth/login', baseUrl), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: opts.email, password: opts.password }) })
    if (res.status !== 200) throw new Error(`login failed: ${res.status}`)
    auth = { authorization: `Bearer ${(await res.json() as Json).access_token as string}` }
  }
  return {
    async ingest (account, envelope) {
      const key = keys.get(account)
      if (!key) return { status: 0, body: { detail: `no --api-key for AWS account ${account}` } }
      const res = await fetch(new URL('/api/events/ingest', baseUrl), { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify(envelope) })
      return { status: res.status, body: await res.json().catch(() => ({})) as Json }
    },
    async event (id) {
      if (!auth) return null
      const res = await fetch(new URL(`/api/events/${id}`, baseUrl), { headers: auth })
      return res.status === 200 ? await res.json() as Json : null
    },
    async close () {}
  }
}

const show = (v: unknown): string => JSON.stringify(v)

/** The mismatches between what was expected and what came out, one line each. */
function compare (expected: Expected[], got: Array<{ result: Json, event: Json | null }>, remote: boolean): string[] {
  const problems: string[] = []
  if (expected.length !== got.length) problems.push(`expected ${expected.length} result(s), got ${got.length}`)
  for (const [i, want] of expected.entries()) {
    const have = got[i]
    if (!have) break
    const sameAction = want.action === have.result.action || (remote && ['created', 'updated'].includes(want.action) && ['created', 'updated'].includes(have.result.action))
    if (!sameAction) problems.push(`[${i}] action: expected ${want.action}, got ${have.result.action}`)
    if ('reason' in want && want.reason !== have.result.reason) problems.push(`[${i}] reason: expected ${show(want.reason)}, got ${show(have.result.reason)}`)
    if (!have.event) continue
    for (const field of MAPPED) {
      if (!(field in want)) continue
      if (show(want[field]) !== show(have.event[field])) problems.push(`[${i}] ${field}: expected ${show(want[field])}, got ${show(have.event[field])}`)
    }
    if (typeof want.title_includes === 'string' && !String(have.event.title).includes(want.title_includes)) {
      problems.push(`[${i}] title: expected to include ${show(want.title_includes)}, got ${show(have.event.title)}`)
    }
  }
  return problems
}

async function main (): Promise<number> {
  const dir = positionals[0]
  if (!dir || !existsSync(dir)) {
    console.error('usage: npm run ingest:check -- <dir> [--base-url URL --api-key ACCOUNT=KEY ... --email E --password P] [--expect FILE]')
    return 2
  }
  const root = resolve(dir)
  const remote = opts['base-url'] !== undefined
  const expectations = loadExpectations(root)
  const target = remote ? await remoteTarget(opts['base-url']!) : await embeddedTarget()
  const sent = new Map<string, string>()
  let refused = 0
  let mismatched = 0
  let checked = 0
  const list = files(root)
  try {
    for (const file of list) {
      const rel = relative(root, file).split('\\').join('/')
      const bytes = readFileSync(file)
      const sha256 = createHash('sha256').update(bytes).digest('hex')
      let envelope: Json
      try {
        envelope = JSON.parse(bytes.toString('utf8'))
      } catch (err) {
        console.log(`✘ ${rel}: not JSON (${(err as Error).message})`)
        refused++
        continue
      }
      // A sanitised sample, or a tool that kept the account as a number, lost its leading zeros.
      if (typeof envelope?.account === 'string' && /^\d{1,11}$/.test(envelope.account)) {
        envelope = { ...envelope, account: envelope.account.padStart(12, '0') }
        console.log(`  ${rel}: account padded to 12 digits (${envelope.account})`)
      }
      const account = String(envelope?.account ?? '')
      const id = typeof envelope?.id === 'string' ? envelope.id : undefined
      let delivered = remote ? { ...envelope, id: `ingest-check-${randomUUID()}` } : envelope
      let reply = await target.ingest(account, delivered)
      let note = ''
      const earlier = id !== undefined ? sent.get(id) : undefined
      if (!remote && earlier && reply.status === 202 && reply.body.results?.every((r: Json) => r.action === 'duplicate')) {
        note = ` (duplicate of ${earlier}: delivered again with a fresh id)`
        delivered = { ...envelope, id: `ingest-check-${randomUUID()}` }
        reply = await target.ingest(account, delivered)
      }
      if (id !== undefined && !sent.has(id)) sent.set(id, rel)
      if (reply.status !== 202) {
        refused++
        console.log(`✘ ${rel}: HTTP ${reply.status} ${reply.body.code ?? ''} ${reply.body.detail ?? ''}${note}`)
        for (const e of reply.body.errors ?? []) console.log(`    ${e.path} ${e.message}`)
        continue
      }
      const got: Array<{ result: Json, event: Json | null }> = []
      for (const result of reply.body.results as Json[]) {
        got.push({ result, event: result.event_id && result.action !== 'duplicate' ? await target.event(result.event_id) : null })
      }
      const rejected = got.filter(g => g.result.action === 'rejected')
      refused += rejected.length ? 1 : 0
      const expectation = expectations.get(`${rel}|${sha256}`)
      const problems = expectation ? compare(expectation.results, got, remote) : []
      if (expectation) checked++
      if (problems.length) mismatched++
      const mark = rejected.length || problems.length ? '✘' : '✔'
      console.log(`${mark} ${rel}${note}${expectation ? '' : ' (no expectation)'}`)
      for (const { result, event } of got) {
        const head = `    [${result.index}.${result.item}] ${result.action}${result.reason ? ` (${result.reason})` : ''}${result.error ? ` ${result.error.code}: ${result.error.detail}` : ''}`
        if (!event || opts.quiet) {
          console.log(head)
          continue
        }
        console.log(`${head} ${event.source} ${event.severity} ${event.status}/${event.source_state} ${show(event.title)}`)
        console.log(`        account ${event.account_id} region ${event.region} occurred_at ${event.occurred_at} resources ${event.resources.length}/${event.resource_count}${event.resources[0] ? ` ${event.resources[0]}${event.resources.length > 1 ? ' …' : ''}` : ''}`)
      }
      for (const p of problems) console.log(`    MISMATCH ${p}`)
    }
  } finally {
    await target.close()
  }
  console.log(`\ningest:check: ${list.length} files, ${checked} with expectations; ${refused} refused, ${mismatched} mismatched`)
  return refused || mismatched ? 1 : 0
}

main().then(code => { process.exitCode = code }, (err: unknown) => {
  console.error(err)
  process.exit(2)
})
