/**
 * The benchmark suite: `npm run bench` (about 8 minutes on 2 cores), `BENCH_QUICK=1 npm run bench`
 * (a smoke run of about a minute; its report goes to the temporary directory, not to docs/).
 *
 * autocannon, in this process, drives real servers in child processes on 127.0.0.1, each with
 * the embedded DynamoDB stand-in on disk (as `npm start` runs it). Every figure is a ratio of
 * two measurements of the same run, taken alternately where they compete for the machine.
 * The `dialect` phase needs no server: it compares the data layer's two dialects (Dynamoose
 * and the bare SDK client of src/db/raw.ts) on the hot paths, in this process, on its own
 * stand-in (scripts/bench/lib/dialect.ts; the decision it informs: docs/architecture.md).
 * Results: a table on stdout and docs/performance.md (see scripts/bench/notes.md for the
 * analysis that goes with it).
 *
 * Options (environment): BENCH_QUICK=1 smoke run; BENCH_ONLY=size,memory,overhead,login,ingest,mixed,startup,dialect,roundtrips,audit
 * some phases only (the report then goes to the temporary directory; `BENCH_ONLY=dialect`
 * starts no server and takes about a minute and a half); BENCH_PROFILE=always|never
 * CPU-profile every scenario / none (default: the scenarios whose target is missed); BENCH_KEEP=1
 * keep the temporary directory's databases too.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { DynamoDB } from '@aws-sdk/client-dynamodb'
import argon2 from 'argon2'
import { loadConfig } from '../../src/config.js'
import { freePort, serverEnv, sleep, startServerChild, timeToFirst200, type ServerChild } from './lib/child.js'
import { roundTripRows, roundTripTable, type RoundTripRow } from './lib/round-trip-report.js'
import { envelopes, event, load, task, type LoadResult as DataLoad } from './lib/data.js'
import { median, run, type LoadOptions, type LoadResult } from './lib/load.js'
import { summarizeProfile, type ProfileSummary } from './lib/profile.js'
import { dialectTable, measureDialects, type DialectResult } from './lib/dialect.js'
import { measureAudit } from './lib/audit.js'
import { earlierRunsSection } from './lib/earlier-runs.js'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'

const QUICK = process.env.BENCH_QUICK === '1'
const PROFILE = process.env.BENCH_PROFILE ?? (QUICK ? 'never' : 'missed')
const PHASES = ['size', 'memory', 'overhead', 'login', 'ingest', 'mixed', 'startup', 'dialect', 'roundtrips', 'audit'] as const
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map(p => p.trim())) : undefined
const want = (phase: typeof PHASES[number]): boolean => !ONLY || ONLY.has(phase)
for (const phase of ONLY ?? []) if (!(PHASES as readonly string[]).includes(phase)) throw new Error(`BENCH_ONLY: unknown phase ${phase} (known: ${PHASES.join(', ')})`)
const root = findRoot(path.dirname(fileURLToPath(import.meta.url)))

/** Sizes and durations: full run, and the smoke run. */
const P = QUICK
  ? { auditSizes: [1000, 2000] as [number, number], auditSamples: 50, small: 1000, mid: 2000, bigTasks: 4000, bigEvents: 4000, seconds: 1.5, pairs: 1, overheadPairs: 1, connections: 8, latencyConnections: 2, memSeconds: 3, loginSeconds: 4, loginUsers: 8, ingestBatches: 4, rawItems: 1500, startups: 1, profileSeconds: 3, control: false, dialectItems: 200, dialectRounds: 2, dialectSeconds: 0.5, dialectConcurrency: 4, roundTripSamples: 5, contractRuns: 1 }
  : { auditSizes: [1000, 20000] as [number, number], auditSamples: 200, small: 1000, mid: 20000, bigTasks: 100000, bigEvents: 100000, seconds: 4, pairs: 2, overheadPairs: 3, connections: 8, latencyConnections: 2, memSeconds: 20, loginSeconds: 10, loginUsers: 16, ingestBatches: 16, rawItems: 6000, startups: 3, profileSeconds: 6, control: true, dialectItems: 400, dialectRounds: 4, dialectSeconds: 1.5, dialectConcurrency: 4, roundTripSamples: 21, contractRuns: 2 }

const ADMIN = { email: 'admin@example.com', password: 'Saffron ledger 42 quiet harbor' }

interface Row { figure: string, value: string, ratio: number | null, target: string, pass: boolean | null }
const rows: Row[] = []
const details: string[] = []
const profiles: Array<{ title: string, summary: ProfileSummary, file: string }> = []
const dialect: DialectResult[] = []
const roundTrips: RoundTripRow[] = []
/** The fixed delay on every DynamoDB call in the `roundtrips` phase (a round trip to DynamoDB in the same region). */
const DELAY_MS = 5
/** Mixed load: the steady ingestion of docs/capacity.md, 100 events/s, as batches of 100 per second. */
const MIXED_STEADY_BATCHES = 1
const started = Date.now()

function findRoot (from: string): string {
  for (let dir = from; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'docs', 'api-specification.yaml')) && existsSync(path.join(dir, 'package.json'))) return dir
  }
  throw new Error('repository root not found')
}

const log = (message: string): void => { process.stdout.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s] ${message}\n`) }
const ms = (v: number): string => `${v.toFixed(v < 10 ? 2 : 1)} ms`
const fmt = (v: number, digits = 0): string => v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
const byThread = (r: LoadResult): string => r.cpuByThread ? ` (API thread ${fmt(r.cpuByThread.main)}, stand-in thread ${fmt(r.cpuByThread.standIn)}, other threads ${fmt(r.cpuByThread.other)})` : ''
const describe = (r: LoadResult): string => `${fmt(r.rps)} req/s, p50 ${ms(r.p50)}, p99 ${ms(r.p99)}${Number.isFinite(r.cpuPerRequest) ? `, server CPU ${fmt(r.cpuPerRequest)} µs/req${byThread(r)}` : ''}${r.failed || r.errors ? `, ${r.failed} non-2xx (${JSON.stringify(r.statusCodes)}), ${r.errors} errors` : ''}`

// ---------------------------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------------------------

async function api<T = any> (base: string, method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number, body: T }> {
  const res = await fetch(base + url, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {})
  })
  const text = await res.text()
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T }
}

async function expectOk<T = any> (what: string, p: Promise<{ status: number, body: T }>): Promise<T> {
  const res = await p
  if (res.status >= 300) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`)
  return res.body
}

async function login (base: string, email: string, password: string): Promise<string> {
  const body = await expectOk<{ access_token: string }>(`login ${email}`, api(base, 'POST', '/api/auth/login', { email, password }))
  return body.access_token
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

function dbClient (endpoint: string): DynamoDB {
  return new DynamoDB({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' }, maxAttempts: 5 })
}

// ---------------------------------------------------------------------------------------------
// Measurement helpers
// ---------------------------------------------------------------------------------------------

/**
 * Runs each scenario `pairs` times, alternating (A B A B …), after one warm-up run each, and
 * returns the runs of each: two servers or two routes measured in the same minutes share the
 * machine's noise.
 */
async function alternate (scenarios: Record<string, LoadOptions>, pairs = P.pairs): Promise<Record<string, LoadResult[]>> {
  const out: Record<string, LoadResult[]> = {}
  for (const [name, opts] of Object.entries(scenarios)) {
    await run({ ...opts, seconds: 1 })
    out[name] = []
  }
  for (let i = 0; i < pairs; i++) {
    for (const [name, opts] of Object.entries(scenarios)) out[name]!.push(await run(opts))
  }
  return out
}

const medianOf = (runs: LoadResult[], key: 'rps' | 'p50' | 'p99' | 'cpuPerRequest'): number => median(runs.map(r => r[key]))

function checkClean (label: string, runs: LoadResult[]): void {
  for (const r of runs) {
    if (r.failed > 0 || r.errors > 0) details.push(`- **warning** ${label}: ${r.failed} non-2xx responses ${JSON.stringify(r.statusCodes)}, ${r.errors} errors/timeouts`)
  }
}

/** CPU profile of the server while `scenario` runs (the V8 sampling profiler, as --cpu-prof). */
async function profiled (title: string, server: ServerChild, file: string, scenario: () => Promise<unknown>): Promise<void> {
  if (PROFILE === 'never') return
  await server.profileStart()
  await scenario()
  await server.profileStop(file)
  const summary = await summarizeProfile(file)
  profiles.push({ title, summary, file })
  log(`profile "${title}": top ${summary.top.slice(0, 3).map(t => `${t.frame} ${(t.share * 100).toFixed(1)}%`).join('; ')}`)
}

const shouldProfile = (pass: boolean | null): boolean => PROFILE === 'always' || (PROFILE !== 'never' && pass === false)

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/** Compiles what changed, with the build step of `npm start` (scripts/start.mjs). */
function buildIfStale (): void {
  const outputs = ['dist/src/server.js', 'dist/scripts/bench/server-child.js', 'dist/scripts/bench/bare-server.js'].map(f => path.join(root, f))
  const before = Math.min(...outputs.map(f => (existsSync(f) ? statSync(f).mtimeMs : 0)))
  try {
    execFileSync(process.execPath, [path.join(root, 'scripts/start.mjs'), '--build-only'], { cwd: root, stdio: 'pipe' })
  } catch (err) {
    // tsc emits despite type errors (someone else's work in progress); only missing output is fatal.
    if (!outputs.every(f => existsSync(f) && statSync(f).mtimeMs > before)) throw err
    log(`warning: tsc reported errors but emitted the build:\n${String((err as { stdout?: Buffer }).stdout ?? '').slice(0, 1000)}`)
  }
}

/** What the phases share: the two servers, their database clients and admin tokens. */
interface Ctx {
  work: string
  small: ServerChild
  big: ServerChild
  smallDb: DynamoDB
  bigDb: DynamoDB
  smallToken: string
  bigToken: string
  hashMs: number
  poolRate: number
}

const table = (s: ServerChild, t: string): string => `${s.ready.tablePrefix}${t}`
const taskIds = Array.from({ length: 50 }, (_, i) => task(i * 13).item.id!.S!)
const ENDPOINTS = {
  'GET /api/tasks?status=open&limit=20': '/api/tasks?status=open&limit=20',
  'GET /api/events?severity=high&limit=20': '/api/events?severity=high&limit=20',
  'GET /api/dashboard/overview': '/api/dashboard/overview'
} as const
const loads: string[] = []
const sizes = { bigTasks: P.small, bigEvents: P.small }
const K = (n: number): string => `${fmt(n / 1000)}k`

async function grow (s: ServerChild, db: DynamoDB, what: 'tasks' | 'events', from: number, to: number): Promise<void> {
  if (to <= from) return
  const r: DataLoad = await load(db, table(s, what), table(s, 'stats'), what === 'tasks' ? task : event, from, to)
  loads.push(`${fmt(r.items)} ${what} in ${r.seconds.toFixed(1)} s (${fmt(r.perSecond)} items/s)`)
  log(`loaded ${loads[loads.length - 1]}`)
}

const getMany = (base: string, urls: string[], token: string, connections: number, seconds: number): LoadOptions =>
  ({ url: base, connections, seconds, requests: urls.map(u => ({ method: 'GET', path: u, headers: bearer(token) })) })

/** p50 of one read on the big server against the small one, alternately. */
async function compareSizes (c: Ctx, label: string, endpoint: keyof typeof ENDPOINTS, bigLabel: string): Promise<Row> {
  const runs = await alternate({
    small: getMany(c.small.url, [ENDPOINTS[endpoint]], c.smallToken, P.latencyConnections, P.seconds),
    big: getMany(c.big.url, [ENDPOINTS[endpoint]], c.bigToken, P.latencyConnections, P.seconds)
  })
  checkClean(label, [...runs.small!, ...runs.big!])
  const a = medianOf(runs.small!, 'p50')
  const b = medianOf(runs.big!, 'p50')
  details.push(`- ${label}: 1k ${runs.small!.map(describe).join(' | ')}; ${bigLabel} ${runs.big!.map(describe).join(' | ')}`)
  const row = { figure: label, value: `${ms(a)} → ${ms(b)}`, ratio: b / a, target: '≤ 1.3', pass: b / a <= 1.3 }
  rows.push(row)
  log(`${label}: ${row.value} (×${row.ratio.toFixed(2)})`)
  return row
}

/** 2. Cost independent of data size; the big server grows in place between the measurements. */
async function phaseSize (c: Ctx): Promise<void> {
  const measure = want('size')
  if (measure && P.control) {
    const row = await compareSizes(c, 'Control: task list p50, 1k vs the same 1k on the second server', 'GET /api/tasks?status=open&limit=20', '1k')
    row.target = '≈ 1 (noise)'
    row.pass = null
  }
  await grow(c.big, c.bigDb, 'tasks', P.small, P.mid)
  if (measure) await compareSizes(c, `Task list p50, ${K(P.mid)} vs 1k tasks`, 'GET /api/tasks?status=open&limit=20', K(P.mid))
  await grow(c.big, c.bigDb, 'tasks', P.mid, P.bigTasks)
  await grow(c.big, c.bigDb, 'events', P.small, P.bigEvents)
  sizes.bigTasks = P.bigTasks
  sizes.bigEvents = P.bigEvents
  const overview = await expectOk<{ tasks: { total: number }, events: { total: number } }>('overview', api(c.big.url, 'GET', '/api/dashboard/overview', undefined, bearer(c.bigToken)))
  if (overview.tasks.total !== P.bigTasks || overview.events.total !== P.bigEvents) {
    throw new Error(`loaded data and counters disagree: the overview says ${overview.tasks.total} tasks, ${overview.events.total} events`)
  }
  if (!measure) return
  const dataRows: Row[] = []
  for (const endpoint of Object.keys(ENDPOINTS) as Array<keyof typeof ENDPOINTS>) {
    dataRows.push(await compareSizes(c, `${endpoint} p50, ${K(P.bigTasks)} vs 1k items`, endpoint, K(P.bigTasks)))
  }
  if (dataRows.some(r => shouldProfile(r.pass))) {
    await profiled(`the three reads at ${K(P.bigTasks)} items`, c.big, path.join(c.work, 'data-size.cpuprofile'),
      () => run(getMany(c.big.url, Object.values(ENDPOINTS), c.bigToken, P.latencyConnections, P.profileSeconds)))
  }
}

/** 6. RSS after the big load, then three runs of mixed reads (leak check). */
async function phaseMemory (c: Ctx): Promise<void> {
  const mixed = getMany(c.big.url, [...taskIds.slice(0, 5).map(id => `/api/tasks/${id}`), ...Object.values(ENDPOINTS), '/api/health'], c.bigToken, 4, P.memSeconds)
  const m0 = await c.big.memory()
  const mem: Array<{ rss: number, heapUsed: number, load: LoadResult }> = []
  for (let i = 0; i < 3; i++) {
    const r = await run(mixed)
    checkClean(`memory run ${i + 1}`, [r])
    const m = await c.big.memory()
    mem.push({ rss: m.rss, heapUsed: m.heapUsed, load: r })
    log(`memory run ${i + 1}: RSS ${fmt(m.rss / 2 ** 20)} MB, heap after GC ${fmt(m.heapUsed / 2 ** 20, 1)} MB (${describe(r)})`)
  }
  const mb = (b: number): string => `${fmt(b / 2 ** 20)} MB`
  const [r1, r2, r3] = mem as [typeof mem[0], typeof mem[0], typeof mem[0]]
  rows.push({ figure: `RSS after ${K(sizes.bigEvents)} events + ${3 * P.memSeconds} s of load (3 runs)`, value: `${mb(r3.rss)} (heap ${mb(r3.heapUsed)}; after loading ${mb(m0.rss)})`, ratio: r3.rss / m0.rss, target: 'report', pass: null })
  rows.push({ figure: 'Leak check: heap after GC, run 3 vs run 1', value: `${mb(r1.heapUsed)} → ${mb(r2.heapUsed)} → ${mb(r3.heapUsed)}`, ratio: r3.heapUsed / r1.heapUsed, target: '≤ 1.10', pass: r3.heapUsed / r1.heapUsed <= 1.1 })
  rows.push({ figure: 'Leak check: RSS, run 3 vs run 1', value: `${mb(r1.rss)} → ${mb(r2.rss)} → ${mb(r3.rss)}`, ratio: r3.rss / r1.rss, target: '≤ 1.10', pass: r3.rss / r1.rss <= 1.1 })
  details.push(`- memory load runs (4 connections, ${P.memSeconds} s each; task reads, the three lists, health in turn): ${mem.map(m => describe(m.load)).join(' | ')}`)
}

/** 1. Our GET /api/tasks/{id} against one GetItem, in the same process, on the same table. */
async function phaseOverhead (c: Ctx): Promise<void> {
  const byId = (base: string, prefix: string, headers: Record<string, string>, seconds = P.seconds): LoadOptions => ({
    url: base, connections: P.connections, seconds, cpu: c.small.cpu, requests: taskIds.map(id => ({ method: 'GET', path: `${prefix}${id}`, headers }))
  })
  const o = await alternate({
    ours: byId(c.small.url, '/api/tasks/', bearer(c.smallToken)),
    bare: byId(c.small.bareUrl, '/tasks/', {}),
    plain: byId(c.small.url, '/bench/plain/', {})
  }, P.overheadPairs)
  checkClean('framework overhead', [...o.ours!, ...o.bare!, ...o.plain!])
  const ours = medianOf(o.ours!, 'rps')
  const bare = medianOf(o.bare!, 'rps')
  const plain = medianOf(o.plain!, 'rps')
  const row: Row = { figure: 'GET /api/tasks/{id} throughput vs bare Fastify + one GetItem (same process)', value: `${fmt(ours)} vs ${fmt(bare)} req/s`, ratio: ours / bare, target: '≥ 0.75', pass: ours / bare >= 0.75 }
  rows.push(row)
  const cpuOurs = medianOf(o.ours!, 'cpuPerRequest')
  const cpuBare = medianOf(o.bare!, 'cpuPerRequest')
  rows.push({ figure: '  same, as server CPU time per request (bare ÷ ours; less sensitive to a busy machine)', value: `${fmt(cpuOurs)} vs ${fmt(cpuBare)} µs`, ratio: cpuBare / cpuOurs, target: 'info', pass: null })
  rows.push({ figure: '  same, vs a plain route on our app (global hooks, no auth/validation)', value: `${fmt(ours)} vs ${fmt(plain)} req/s`, ratio: ours / plain, target: 'info', pass: null })
  rows.push({ figure: '  plain route on our app vs bare Fastify (cost of the global hooks)', value: `${fmt(plain)} vs ${fmt(bare)} req/s`, ratio: plain / bare, target: 'info', pass: null })
  details.push(`- framework overhead (${P.connections} connections, ${P.seconds} s × ${P.overheadPairs}, alternating): ours ${o.ours!.map(describe).join(' | ')}; bare ${o.bare!.map(describe).join(' | ')}; plain ${o.plain!.map(describe).join(' | ')}`)
  log(`framework overhead: ${row.value} (×${row.ratio!.toFixed(2)}); plain route ${fmt(plain)} req/s`)
  if (shouldProfile(row.pass)) {
    await profiled('GET /api/tasks/{id}', c.small, path.join(c.work, 'get-task.cpuprofile'), () => run(byId(c.small.url, '/api/tasks/', bearer(c.smallToken), P.profileSeconds)))
  }
}

/** 3. A flood of logins at the configured argon2 parameters; /api/health probed meanwhile. */
async function phaseLogin (c: Ctx): Promise<void> {
  const users: Array<{ email: string, password: string }> = []
  for (let i = 0; i < P.loginUsers; i++) {
    const u = { email: `bench-login-${i}@example.com`, password: `Quartz meadow ${i} lantern orbit` }
    await expectOk('create user', api(c.small.url, 'POST', '/api/users', { email: u.email, name: `Bench Login ${i}`, role: 'user', password: u.password }, bearer(c.smallToken)))
    users.push(u)
  }
  const probe = (seconds: number): LoadOptions => ({ url: c.small.url, connections: 2, overallRate: 40, seconds, requests: [{ method: 'GET', path: '/api/health' }] })
  const idle = await run(probe(Math.max(3, P.seconds)))
  let next = 0
  const flood = (seconds: number): LoadOptions => ({
    url: c.small.url,
    connections: 8,
    seconds,
    cpu: c.small.cpu,
    requests: [{
      method: 'POST',
      path: '/api/auth/login',
      headers: { 'content-type': 'application/json' },
      setupRequest: (req) => ({ ...req, body: JSON.stringify(users[next++ % users.length]) })
    }]
  })
  const [logins, busy] = await Promise.all([run(flood(P.loginSeconds)), sleep(1000).then(() => run(probe(P.loginSeconds - 2)))])
  checkClean('login flood', [logins])
  checkClean('health during the flood', [busy])
  const cores = os.cpus().length
  const capacity = cores / (c.hashMs / 1000)
  const health: Row = { figure: 'GET /api/health p99 during a login flood', value: `${ms(busy.p99)} (idle ${ms(idle.p99)})`, ratio: busy.p99 / idle.p99, target: 'p99 < 50 ms', pass: busy.p99 < 50 }
  const login: Row = { figure: 'Login throughput vs cores ÷ single-hash time', value: `${fmt(logins.rps, 1)}/s vs ${cores} ÷ ${ms(c.hashMs)} = ${fmt(capacity, 1)}/s`, ratio: logins.rps / capacity, target: '≥ 0.80', pass: logins.rps / capacity >= 0.8 }
  rows.push(health, login)
  rows.push({ figure: '  argon2 verifies/s in the bench process alone (what the machine gives now)', value: `${fmt(c.poolRate, 1)}/s`, ratio: c.poolRate / capacity, target: 'info', pass: null })
  rows.push({ figure: '  server CPU per login, all threads (one hash ÷ it: the share that is hashing)', value: `${ms(logins.cpuPerRequest / 1000)} vs ${ms(c.hashMs)}`, ratio: c.hashMs / (logins.cpuPerRequest / 1000), target: 'info', pass: null })
  const t = logins.cpuByThread
  if (t) rows.push({ figure: '  the same by thread: API, stand-in, other (argon2 on libuv\'s pool, V8 helpers)', value: `${ms(t.main / 1000)}, ${ms(t.standIn / 1000)}, ${ms(t.other / 1000)}`, ratio: null, target: 'info', pass: null })
  details.push(`- login flood (8 connections, ${P.loginSeconds} s, ${users.length} users in turn): ${describe(logins)}; health during it (40 req/s): ${describe(busy)}; health idle: ${describe(idle)}`)
  log(`logins: ${login.value} (×${login.ratio!.toFixed(2)}); health p99 ${health.value}`)
  if (shouldProfile(login.pass) || shouldProfile(health.pass)) {
    await profiled('login flood', c.small, path.join(c.work, 'login.cpuprofile'), () => run(flood(P.profileSeconds)))
  }
}

/**
 * Batches of 100 new CloudWatch alarms to the *big* server (each opens an event), 4 in flight
 * as fast as it takes them, or `batchesPerSecond`: `amount` batches, or for `seconds`.
 */
function ingestBatches (c: Ctx, apiKey: string, account: string, runId: string, limit: { amount: number } | { seconds: number }, batchesPerSecond?: number): LoadOptions {
  let batch = 0
  return {
    url: c.big.url,
    connections: batchesPerSecond ? 2 : 4,
    ...(batchesPerSecond ? { overallRate: batchesPerSecond } : {}),
    cpu: c.big.cpu,
    timeout: 300,
    ...('amount' in limit ? { seconds: 0, amount: limit.amount } : { seconds: limit.seconds }),
    requests: [{
      method: 'POST',
      path: '/api/events/ingest',
      headers: { 'content-type': 'application/json', 'x-api-key': apiKey },
      setupRequest: (req) => ({ ...req, body: JSON.stringify({ events: envelopes(account, runId, 100 * batch++, 100) }) })
    }]
  }
}

/** A monitored account of the server at `base` to ingest for (its ingestion key). */
async function benchAccount (base: string, token: string, accountId: string, name: string): Promise<string> {
  const account = await expectOk<{ api_key: string }>('create AWS account', api(base, 'POST', '/api/config/aws-accounts', { account_id: accountId, name, role_arn: `arn:aws:iam::${accountId}:role/bench` }, bearer(token)))
  return account.api_key
}

/** 4. Batches of 100 envelopes against raw BatchWriteItem on the same stand-in. */
async function phaseIngest (c: Ctx): Promise<void> {
  const apiKey = await benchAccount(c.big.url, c.bigToken, '999999999999', 'Bench ingestion')
  const runId = `b${Date.now().toString(36)}`
  const sample = await expectOk<{ accepted: number }>('ingest', api(c.big.url, 'POST', '/api/events/ingest', { events: envelopes('999999999999', `${runId}-check`, 0, 100) }, { 'x-api-key': apiKey }))
  if (sample.accepted !== 100) throw new Error(`ingestion accepted ${sample.accepted} of 100`)
  const ingest = (prefix: string, batches: number): LoadOptions => ingestBatches(c, apiKey, '999999999999', `${runId}-${prefix}`, { amount: batches })
  const r = await run(ingest('m', P.ingestBatches))
  checkClean('ingestion', [r])
  const raw = await load(c.bigDb, table(c.big, 'events'), null, event, 10_000_000, 10_000_000 + P.rawItems, 4)
  const perSecond = (r.ok * 100) / r.seconds
  const row: Row = { figure: 'Ingestion events/s (batches of 100) vs raw BatchWriteItem items/s', value: `${fmt(perSecond)} vs ${fmt(raw.perSecond)}/s`, ratio: perSecond / raw.perSecond, target: '≥ 0.5', pass: perSecond / raw.perSecond >= 0.5 }
  rows.push(row)
  rows.push({ figure: '  server CPU per ingested event, all threads', value: `${ms(r.cpuPerRequest / 100 / 1000)}`, ratio: null, target: 'info', pass: null })
  details.push(`- ingestion (4 connections, ${P.ingestBatches} batches of 100 new CloudWatch alarms, each creates an event): ${fmt(r.ok * 100)} events in ${r.seconds.toFixed(1)} s; per batch p50 ${ms(r.p50)}, p99 ${ms(r.p99)}${r.failed ? `, ${r.failed} failed` : ''}. Raw BatchWriteItem: ${fmt(raw.items)} event items in ${raw.seconds.toFixed(1)} s, 25 per call, 4 calls in flight`)
  log(`ingestion: ${row.value} (×${row.ratio!.toFixed(3)})`)
  if (shouldProfile(row.pass)) await profiled('ingestion', c.big, path.join(c.work, 'ingest.cpuprofile'), () => run(ingest('p', Math.max(4, P.ingestBatches / 2))))

  // As an EventBridge API destination delivers: one envelope per request, many in flight (8
  // connections, as fast as answered: the server saturated). Every third envelope is a new
  // occurrence of an alarm delivered before (an update), the rest open new events.
  let delivery = 0
  const single = await run({
    url: c.big.url,
    connections: 8,
    cpu: c.big.cpu,
    seconds: P.seconds * 2,
    timeout: 30,
    requests: [{
      method: 'POST',
      path: '/api/events/ingest',
      headers: { 'content-type': 'application/json', 'x-api-key': apiKey },
      setupRequest: (req) => {
        const n = delivery++
        const [envelope] = envelopes('999999999999', `${runId}-d`, n % 3 === 2 ? n - 2 : n, 1) as Array<Record<string, unknown>>
        return { ...req, body: JSON.stringify({ ...envelope, id: `${runId}-d-delivery-${n}` }) }
      }
    }]
  })
  checkClean('single-envelope deliveries', [single])
  rows.push({ figure: 'Ingest delivery p99 (one envelope per request, 8 in flight)', value: `${ms(single.p99)} (p50 ${ms(single.p50)}, ${fmt(single.rps)} deliveries/s)`, ratio: single.p99 / 5000, target: 'p99 < 1 s (EventBridge times out at 5 s)', pass: single.p99 < 1000 })
  details.push(`- single-envelope deliveries (8 connections, ${P.seconds * 2} s, two new alarms for each occurrence of an earlier one): ${describe(single)}`)
  log(`ingest delivery: p99 ${ms(single.p99)}, p50 ${ms(single.p50)}, ${fmt(single.rps)}/s`)
}

/**
 * 10. Mixed load: each console read (the three lists and the dashboard of ENDPOINTS) on the
 * *big* server, quiet, while new events arrive at the steady rate of docs/capacity.md (100/s:
 * a batch of 100 each second), and while batches arrive as fast as the server takes them (its
 * peak on this machine), in turn. The reads hit the keys the writes move: new events are open
 * and of high severity, and every one moves the dashboard's counters.
 */
async function phaseMixed (c: Ctx): Promise<void> {
  const apiKey = await benchAccount(c.big.url, c.bigToken, '999999999997', 'Bench mixed load')
  const runId = `x${Date.now().toString(36)}`
  let round = 0
  const summary: string[] = []
  const p99 = (runs: LoadResult[]): string => ms(medianOf(runs, 'p99'))
  for (const endpoint of Object.keys(ENDPOINTS) as Array<keyof typeof ENDPOINTS>) {
    const read = getMany(c.big.url, [ENDPOINTS[endpoint]], c.bigToken, P.latencyConnections, P.seconds)
    await run({ ...read, seconds: 1 })
    const quiet: LoadResult[] = []
    const busy = { steady: [] as LoadResult[], peak: [] as LoadResult[] }
    const rates = { steady: [] as number[], peak: [] as number[] }
    for (let i = 0; i < P.pairs; i++) {
      quiet.push(await run(read))
      for (const load of ['steady', 'peak'] as const) {
        // The writes start first and outlast the reads: the reads see ingestion in full swing.
        const writes = run(ingestBatches(c, apiKey, '999999999997', `${runId}-${round++}`, { seconds: P.seconds + 2 }, load === 'steady' ? MIXED_STEADY_BATCHES : undefined))
        await sleep(1000)
        busy[load].push(await run(read))
        const w = await writes
        checkClean(`mixed load: ${load} ingestion during ${endpoint}`, [w])
        rates[load].push((w.ok * 100) / w.seconds)
      }
    }
    checkClean(`mixed load: ${endpoint}`, [quiet, busy.steady, busy.peak].flat())
    const q = medianOf(quiet, 'p99')
    const b = medianOf(busy.peak, 'p99')
    rows.push({
      figure: `Mixed load: ${endpoint} p99 quiet → new events at 100/s → at peak`,
      value: `${ms(q)} → ${p99(busy.steady)} → ${ms(b)} (peak ${fmt(median(rates.peak))} events/s; p50 ${ms(medianOf(quiet, 'p50'))} → ${ms(medianOf(busy.steady, 'p50'))} → ${ms(medianOf(busy.peak, 'p50'))})`,
      ratio: b / q,
      target: 'report',
      pass: null
    })
    summary.push(`${endpoint}: quiet ${quiet.map(describe).join(' | ')}; at 100 events/s ${busy.steady.map(describe).join(' | ')} (ingested ${rates.steady.map(r => fmt(r)).join(', ')}/s); at peak ${busy.peak.map(describe).join(' | ')} (ingested ${rates.peak.map(r => fmt(r)).join(', ')}/s)`)
    log(`mixed load, ${endpoint}: p99 ${ms(q)} quiet, ${p99(busy.steady)} at 100 events/s, ${ms(b)} at peak (${fmt(median(rates.peak))} events/s)`)
  }
  details.push(`- mixed load (*big* server, ${K(sizes.bigEvents)} events; each read ${P.latencyConnections} connections × ${P.seconds} s, ${P.pairs} rounds of quiet, steady and peak in turn; steady: one batch of 100 new high-severity alarms per second; peak: 4 connections post such batches as fast as answered; the writes run ${P.seconds + 2} s, the reads start 1 s in): ${summary.join('; ')}`)
}

/** 5. src/server.ts on the existing (big) database against a bare Fastify process. */
async function phaseStartup (work: string): Promise<void> {
  const real: number[] = []
  const bare: number[] = []
  for (let i = 0; i < P.startups; i++) {
    const port = await freePort()
    real.push(await timeToFirst200(path.join(root, 'dist/src/server.js'), serverEnv(path.join(work, 'big'), port), port, '/api/health', path.join(work, 'startup.log')))
    const barePort = await freePort()
    bare.push(await timeToFirst200(path.join(root, 'dist/scripts/bench/bare-server.js'), serverEnv(path.join(work, 'bare'), barePort), barePort, '/api/health', path.join(work, 'startup-bare.log')))
  }
  const a = median(real)
  const b = median(bare)
  const row: Row = { figure: `Start-up to first 200 of /api/health (existing database, ${K(sizes.bigTasks)} tasks + ${K(sizes.bigEvents)} events)`, value: `${fmt(a)} ms (bare Fastify ${fmt(b)} ms)`, ratio: a / b, target: '≤ 1500 ms', pass: a <= 1500 }
  rows.push(row)
  // `npm start` as a user runs it again on an unchanged checkout: the build step finds nothing
  // to compile (the run's build left its stamp), then the server starts in the same process.
  const restarts: number[] = []
  for (let i = 0; i < P.startups; i++) {
    const port = await freePort()
    restarts.push(await timeToFirst200(path.join(root, 'scripts/start.mjs'), serverEnv(path.join(work, 'big'), port), port, '/api/health', path.join(work, 'startup.log')))
  }
  const r = median(restarts)
  rows.push({ figure: '`npm start` on an unchanged checkout to first 200 (node scripts/start.mjs)', value: `${fmt(r)} ms`, ratio: r / a, target: '≤ 2000 ms', pass: r <= 2000 })
  details.push(`- npm start on an unchanged checkout (node scripts/start.mjs, its build step finding nothing to compile), median of ${P.startups}: ${restarts.map(v => fmt(v)).join(', ')} ms`)
  if (shouldProfile(row.pass)) {
    // One more start under node --cpu-prof (the profile is written when the process exits).
    const dir = path.join(work, 'startup-profile')
    await mkdir(dir, { recursive: true })
    const port = await freePort()
    await timeToFirst200(path.join(root, 'dist/src/server.js'), serverEnv(path.join(work, 'big'), port), port, '/api/health', path.join(work, 'startup.log'), ['--cpu-prof', '--cpu-prof-dir', dir])
    const file = readdirSync(dir).find(f => f.endsWith('.cpuprofile'))
    if (file) {
      const summary = await summarizeProfile(path.join(dir, file))
      profiles.push({ title: 'start-up (node --cpu-prof dist/src/server.js, whole process)', summary, file: path.join(dir, file) })
    }
  }
  details.push(`- start-up (node dist/src/server.js vs node dist/scripts/bench/bare-server.js, median of ${P.startups}): ${real.map(v => fmt(v)).join(', ')} ms vs ${bare.map(v => fmt(v)).join(', ')} ms`)
  log(`start-up: ${fmt(a)} ms vs bare ${fmt(b)} ms`)
}

/**
 * The phases that measure servers: argon2 timing in this process, then two servers ("small"
 * and "big") in child processes, the data they start with, and the phases that use them.
 * `servers` collects the children started, for the caller to stop whatever happens.
 */
async function serverRun (work: string, childScript: string, servers: ServerChild[]): Promise<void> {
  // argon2 at the configured parameters: one verify at a time, then as many as the pool runs.
  const params = loadConfig({}).argon2
  const hash = await argon2.hash('bench password for timing', { type: argon2.argon2id, ...params })
  for (let i = 0; i < 3; i++) await argon2.verify(hash, 'bench password for timing')
  const singles: number[] = []
  for (let i = 0; i < 12; i++) {
    const t0 = performance.now()
    await argon2.verify(hash, 'bench password for timing')
    singles.push(performance.now() - t0)
  }
  const hashMs = median(singles)
  const parallel = 4 * os.cpus().length
  const t0 = performance.now()
  await Promise.all(Array.from({ length: parallel }, () => argon2.verify(hash, 'bench password for timing')))
  const poolRate = parallel / ((performance.now() - t0) / 1000)
  log(`argon2id m=${params.memoryCost} KiB t=${params.timeCost} p=${params.parallelism}: ${ms(hashMs)} per verify; ${fmt(poolRate)} verifies/s with ${parallel} at once`)

  // Two servers: "small" keeps 1k tasks and 1k events, "big" grows; identical otherwise.
  const start = async (name: string): Promise<ServerChild> => {
    const port = await freePort()
    const env = serverEnv(path.join(work, name), port, { ADMIN_EMAIL: ADMIN.email, ADMIN_PASSWORD: ADMIN.password, ACCESS_TOKEN_TTL_SECONDS: '3600' })
    const s = await startServerChild(childScript, env, path.join(work, `${name}.log`))
    servers.push(s)
    return s
  }
  const [small, big] = await Promise.all([start('small'), start('big')])
  const c: Ctx = {
    work,
    small,
    big,
    smallDb: dbClient(small.ready.endpoint),
    bigDb: dbClient(big.ready.endpoint),
    smallToken: await login(small.url, ADMIN.email, ADMIN.password),
    bigToken: await login(big.url, ADMIN.email, ADMIN.password),
    hashMs,
    poolRate
  }
  await Promise.all([
    grow(small, c.smallDb, 'tasks', 0, P.small), grow(small, c.smallDb, 'events', 0, P.small),
    grow(big, c.bigDb, 'tasks', 0, P.small), grow(big, c.bigDb, 'events', 0, P.small)
  ])
  if (want('size') || want('memory') || want('startup')) await phaseSize(c)
  if (want('memory')) await phaseMemory(c)
  if (want('overhead')) await phaseOverhead(c)
  if (want('login')) await phaseLogin(c)
  if (want('ingest')) await phaseIngest(c)
  if (want('mixed')) await phaseMixed(c)
  details.push(`- data loading (BatchWriteItem, 25 per call, 4 in flight, counters added): ${loads.join('; ')}`)
  c.smallDb.destroy()
  c.bigDb.destroy()
  await Promise.all(servers.map(s => s.stop()))
  servers.length = 0
  if (want('startup')) await phaseStartup(work)
}

/**
 * 7. The data layer's two dialects on the hot paths: Dynamoose against the bare SDK client
 * calls of src/db/raw.ts, in this process (no server), on a stand-in of its own on disk.
 */
async function phaseDialect (work: string): Promise<void> {
  const measured = await measureDialects({
    dir: path.join(work, 'dialect'),
    rounds: P.dialectRounds,
    seconds: P.dialectSeconds,
    concurrency: P.dialectConcurrency,
    tasks: P.dialectItems,
    events: P.dialectItems,
    log
  })
  dialect.push(...measured.results)
  for (const r of measured.results) {
    const { dynamoose: d, bare: b } = r
    rows.push({
      figure: `Dialect, ${r.operation}: CPU per call (all threads), Dynamoose vs bare SDK client`,
      value: `${fmt(d.cpu)} vs ${fmt(b.cpu)} µs (main thread ${fmt(d.main)} vs ${fmt(b.main)} µs; ${fmt(d.perSecond)} vs ${fmt(b.perSecond)} calls/s)`,
      ratio: d.cpu / b.cpu,
      target: 'info',
      pass: null
    })
    log(`dialect, ${r.operation}: CPU ${fmt(d.cpu)} vs ${fmt(b.cpu)} µs per call (×${(d.cpu / b.cpu).toFixed(2)}), main thread ${fmt(d.main)} vs ${fmt(b.main)} µs (×${(d.main / b.main).toFixed(2)})`)
  }
  details.push(`- data-layer dialect (${P.dialectConcurrency} calls in flight, ${P.dialectRounds} rounds of ${P.dialectSeconds} s per operation and dialect, alternating): ${measured.notes.join('; ')}; ` +
    measured.results.map(r => `${r.operation}: ${fmt(r.dynamoose.calls)} Dynamoose calls, ${fmt(r.bare.calls)} bare calls`).join('; '))
}

/**
 * 8. Round trips: a server whose every DynamoDB call waits DELAY_MS (BENCH_DB_DELAY_MS) and
 * counts each request's calls. The contract run (scripts/test-contract.ts, every operation it
 * reaches) and sequences of the hot paths drive it; the table has, per operation of the spec,
 * the sequential round trips and the p50 under that delay.
 */
async function phaseRoundTrips (work: string, childScript: string, servers: ServerChild[]): Promise<void> {
  const port = await freePort()
  const env = serverEnv(path.join(work, 'delayed'), port, { ADMIN_EMAIL: ADMIN.email, ADMIN_PASSWORD: ADMIN.password, ACCESS_TOKEN_TTL_SECONDS: '3600', BENCH_DB_DELAY_MS: String(DELAY_MS) })
  const s = await startServerChild(childScript, env, path.join(work, 'delayed.log'))
  servers.push(s)
  const token = await login(s.url, ADMIN.email, ADMIN.password)
  const auth = bearer(token)
  for (let i = 0; i < P.contractRuns; i++) {
    execFileSync(process.execPath, ['--import', 'tsx', path.join(root, 'scripts/test-contract.ts'), '--base-url', s.url, '--with-accounts'], {
      cwd: root,
      env: { ...process.env, CONTRACT_ADMIN_EMAIL: ADMIN.email, CONTRACT_ADMIN_PASSWORD: ADMIN.password },
      stdio: 'pipe'
    })
  }
  // The hot paths, one request at a time (the caller stays cached between them).
  const apiKey = await benchAccount(s.url, token, '999999999998', 'Bench round trips')
  const subject = await expectOk<{ id: string }>('create task', api(s.url, 'POST', '/api/tasks', { title: 'Round-trip task', priority: 'medium' }, auth))
  const seeded = await expectOk<{ results: Array<{ event_id: string }> }>('ingest', api(s.url, 'POST', '/api/events/ingest', envelopes('999999999998', 'rt-seed', 0, 1)[0], { 'x-api-key': apiKey }))
  const eventId = seeded.results[0]!.event_id
  const runId = `rt${Date.now().toString(36)}`
  const steps: Array<[string, (i: number) => Promise<unknown>]> = [
    ['getTask', () => expectOk('get task', api(s.url, 'GET', `/api/tasks/${subject.id}`, undefined, auth))],
    ['listTasks', () => expectOk('list tasks', api(s.url, 'GET', '/api/tasks?limit=20', undefined, auth))],
    ['getEvent', () => expectOk('get event', api(s.url, 'GET', `/api/events/${eventId}`, undefined, auth))],
    ['listEvents', () => expectOk('list events', api(s.url, 'GET', '/api/events?limit=20', undefined, auth))],
    ['getDashboardOverview', () => expectOk('overview', api(s.url, 'GET', '/api/dashboard/overview', undefined, auth))],
    ['createTask', (i) => expectOk('create task', api(s.url, 'POST', '/api/tasks', { title: `Round-trip task ${i}`, priority: 'low' }, auth))],
    // The priority changes every time: the update moves the dashboard counters too.
    ['updateTask', (i) => expectOk('update task', api(s.url, 'PUT', `/api/tasks/${subject.id}`, { description: `round ${i}`, priority: i % 2 === 0 ? 'high' : 'low' }, auth))],
    ['updateTaskStatus', (i) => expectOk('status', api(s.url, 'PUT', `/api/tasks/${subject.id}/status`, { status: i % 2 === 0 ? 'in_progress' : 'open' }, auth))],
    ['ingestEvents', (i) => expectOk('ingest', api(s.url, 'POST', '/api/events/ingest', envelopes('999999999998', runId, 1 + i, 1)[0], { 'x-api-key': apiKey }))],
    ['login', () => expectOk('login', api(s.url, 'POST', '/api/auth/login', { email: ADMIN.email, password: ADMIN.password }))]
  ]
  for (const [, step] of steps) {
    for (let i = 0; i < P.roundTripSamples; i++) await step(i)
  }
  const table = roundTripRows(await s.roundTrips())
  roundTrips.push(...table)
  for (const [operation] of steps) {
    const r = table.find(x => x.operation === operation)!
    rows.push({ figure: `Round trips, \`${operation}\` (sequential DynamoDB calls; p50 with ${DELAY_MS} ms per call)`, value: `${r.sequential} (p50 ${ms(r.p50Ms)})`, ratio: null, target: `≤ ${r.target}`, pass: r.pass })
  }
  const missed = table.filter(r => r.pass === false).map(r => `${r.operation} ${r.sequential}`)
  details.push(`- round trips (${DELAY_MS} ms before every DynamoDB call of the server; ${P.contractRuns} contract runs with --with-accounts, then ${P.roundTripSamples} sequential requests of each hot path): ${table.filter(r => r.samples > 0).length} of ${table.length} operations exercised; above target: ${missed.length ? missed.join(', ') : 'none'}`)
  log(`round trips: ${table.filter(r => r.samples > 0).length} operations measured; above target: ${missed.length ? missed.join(', ') : 'none'}`)
  await s.stop()
  servers.splice(servers.indexOf(s), 1)
}

/**
 * 9. The audit log (issue 20): GET /api/audit-log's p50 at two sizes of the log (the newest page
 * without filters, an actor's, an action's), through the app built in this process
 * (scripts/bench/lib/audit.ts). Index-backed lists must not slow down as the log grows.
 */
async function phaseAudit (work: string): Promise<void> {
  const [small, big] = await measureAudit({ dir: path.join(work, 'audit'), sizes: P.auditSizes, samples: P.auditSamples, log })
  if (!small || !big) throw new Error('audit phase: missing measurement')
  for (const list of Object.keys(small.p50)) {
    const ratio = big.p50[list]! / small.p50[list]!
    rows.push({
      figure: `Audit log list (${list === 'newest' ? 'newest page, no filter' : `${list} filter`}): p50 at ${fmt(big.size)} ÷ at ${fmt(small.size)} records`,
      value: `${ms(big.p50[list]!)} vs ${ms(small.p50[list]!)}`,
      ratio,
      target: '≤ 1.5',
      pass: ratio <= 1.5
    })
  }
  details.push(`- audit log: the app built in the bench process on a stand-in on disk, the log filled through the audit service (16 writers); ${P.auditSamples} sequential \`inject\` requests per list and log after 20 warm-up ones, in 4 rounds alternating the two logs (each in its own tables), p50 at ${fmt(small.size)} and ${fmt(big.size)} records`)
}

async function main (): Promise<void> {
  const loadBefore = os.loadavg()
  const work = await mkdtemp(path.join(os.tmpdir(), 'cmc-bench-'))
  log(`${QUICK ? 'QUICK smoke run' : 'full run'}${ONLY ? ` (only ${[...ONLY].join(', ')})` : ''}; scratch ${work}; load average ${loadBefore.map(l => l.toFixed(2)).join(' ')}`)
  // Every phase but `dialect` measures servers: without them, nothing to build or start.
  const serverPhases = PHASES.some(p => p !== 'dialect' && p !== 'audit' && want(p))
  const measuredPhases = PHASES.some(p => p !== 'dialect' && p !== 'roundtrips' && p !== 'audit' && want(p))
  if (serverPhases) buildIfStale()
  const commit = commitOf()
  const childScript = path.join(root, 'dist/scripts/bench/server-child.js')
  const servers: ServerChild[] = []

  try {
    if (measuredPhases) await serverRun(work, childScript, servers)
    if (want('roundtrips')) await phaseRoundTrips(work, childScript, servers)
    if (want('dialect')) await phaseDialect(work)
    if (want('audit')) await phaseAudit(work)
  } finally {
    await Promise.all(servers.map(s => s.stop().catch(() => {})))
  }

  const meta: Meta = {
    quick: QUICK,
    only: ONLY ? [...ONLY] : null,
    date: new Date().toISOString(),
    seconds: (Date.now() - started) / 1000,
    loadBefore,
    loadAfter: os.loadavg(),
    work,
    commit,
    machine: `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), ${fmt(os.totalmem() / 2 ** 30, 1)} GiB, ${os.type()} ${os.release()}, Node ${process.version}`,
    p: P
  }
  await writeFile(path.join(work, 'results.json'), JSON.stringify({ meta, rows, details, profiles, dialect, roundTrips }, null, 2))
  process.stdout.write(`\n${renderTable(rows).text}\n`)
  if (dialect.length) process.stdout.write(`\nData-layer dialect:\n\n${dialectTable(dialect)}\n`)
  const target = QUICK || ONLY ? path.join(work, 'performance.md') : path.join(root, 'docs', 'performance.md')
  await writeFile(target, await renderDoc(meta, rows, details, profiles, dialect, roundTrips, await previousReport(target)))
  log(`report written to ${target} (${meta.seconds.toFixed(0)} s in all)`)
  if (process.env.BENCH_KEEP === '1') {
    log(`kept ${work} (data, server logs, CPU profiles, results.json)`)
  } else {
    // Keep the profiles, logs and results; drop the databases (hundreds of MB).
    await Promise.all(['small', 'big', 'bare', 'dialect', 'delayed', 'audit'].map(d => rm(path.join(work, d), { recursive: true, force: true })))
    log(`profiles, logs and results.json kept in ${work}`)
  }
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

interface Meta { quick: boolean, only: string[] | null, date: string, seconds: number, loadBefore: number[], loadAfter: number[], work: string, machine: string, commit: string, p: typeof P }

/** The commit measured, and whether src/ or openapi/ had uncommitted changes at build time. */
function commitOf (): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'openapi'], { cwd: root, encoding: 'utf8' }).trim()
    return dirty ? `${head} + uncommitted changes in src/ or openapi/` : head
  } catch {
    return 'unknown (not a git checkout)'
  }
}

function renderTable (rows: Row[]): { text: string, markdown: string } {
  const verdict = (r: Row): string => (r.pass === null ? '—' : r.pass ? 'PASS' : 'FAIL')
  const ratio = (r: Row): string => (r.ratio === null ? '—' : `×${r.ratio.toFixed(r.ratio < 0.1 ? 3 : 2)}`)
  const cells = rows.map(r => [r.figure, r.value, ratio(r), r.target, verdict(r)])
  const head = ['figure', 'value', 'ratio', 'target', 'result']
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map(c => c[i]!.length)))
  const line = (c: string[]): string => c.map((v, i) => v.padEnd(widths[i]!)).join('  ')
  const text = [line(head), widths.map(w => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n')
  const esc = (v: string): string => v.replace(/\|/g, '\\|')
  const markdown = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...cells.map(c => `| ${c.map(esc).join(' | ')} |`)].join('\n')
  return { text, markdown }
}

/** The report a new one replaces (docs/performance.md of a full run), for its earlier runs. */
async function previousReport (target: string): Promise<string | undefined> {
  return await readFile(target, 'utf8').catch(() => undefined)
}

async function renderDoc (meta: Meta, rows: Row[], details: string[], profiles: Array<{ title: string, summary: ProfileSummary, file: string }>, dialect: DialectResult[] = [], trips: RoundTripRow[] = [], previous?: string): Promise<string> {
  const { p: P, work } = meta
  const QUICK = meta.quick
  const notes = await readFile(path.join(root, 'scripts', 'bench', 'notes.md'), 'utf8').catch(() => '')
  const profileText = profiles.map(({ title, summary, file }) => [
    `### ${title}`,
    '',
    `Busy time ${fmt(summary.totalMs)} ms (\`${path.basename(file)}\`), self time by group: ${summary.groups.map(g => `**${g.group}** ${(g.share * 100).toFixed(1)}%`).join(', ')}.`,
    '',
    `By package: ${summary.areas.slice(0, 10).map(a => `${a.area} ${(a.share * 100).toFixed(1)}%`).join(', ')}.`,
    '',
    '| self time | share | function | area |',
    '| ---: | ---: | --- | --- |',
    ...summary.top.map(t => `| ${fmt(t.ms)} ms | ${(t.share * 100).toFixed(1)}% | \`${t.frame.replace(/\|/g, '\\|')}\` | ${t.area} |`),
    ''
  ].join('\n')).join('\n')
  return [
    '# Performance',
    '',
    '<!-- Generated by `npm run bench` (scripts/bench/index.ts); the notes come from scripts/bench/notes.md. Do not edit by hand. -->',
    '',
    `- **Command:** \`${QUICK ? 'BENCH_QUICK=1 ' : ''}${meta.only ? `BENCH_ONLY=${meta.only.join(',')} ` : ''}npm run bench\` (${fmt(meta.seconds)} s from start to report)`,
    `- **Date:** ${meta.date}; **commit** ${meta.commit}`,
    `- **Machine:** ${meta.machine}`,
    `- **Load average** (1/5/15 min) before: ${meta.loadBefore.map(l => l.toFixed(2)).join(' / ')}, after: ${meta.loadAfter.map(l => l.toFixed(2)).join(' / ')}.` +
      ' The machine is shared with other engineers\' test runs: absolute numbers are noisy, which is why every figure is a ratio of two measurements taken alternately in the same minutes.',
    '',
    '## Results',
    '',
    renderTable(rows).markdown,
    '',
    'Ratios: the first value divided by the second (for latencies: large data ÷ small data; for throughput: ours ÷ reference).',
    '',
    ...(dialect.length
      ? [
          '## Data-layer dialect',
          '',
          `The same requests on the hot paths through Dynamoose and through the bare SDK client calls of \`src/db/raw.ts\`, in the bench process (${P.dialectConcurrency} calls in flight, ${P.dialectRounds} alternating rounds of ${P.dialectSeconds} s each). The decision it informs is in docs/architecture.md.`,
          '',
          dialectTable(dialect),
          '',
          ...dialect.map(r => `- ${r.operation}: ${r.request}.`),
          ''
        ]
      : []),
    ...(trips.length
      ? [
          '## Round trips per operation',
          '',
          `Every DynamoDB call of the server waits ${DELAY_MS} ms first (what a call to DynamoDB in the same region costs), so each sequential round trip shows in the latency. *Sequential* counts the calls that started while no other call of the same request was in flight: calls made together count once. Targets (issue 21): every read (GET) 1 with the caller cached; task create, update and status change ≤ 2; one new ingested event ≤ 2; login ≤ 3 plus the hash. Operations the run did not reach say so.`,
          '',
          roundTripTable(trips, DELAY_MS),
          ''
        ]
      : []),
    '## How it is measured',
    '',
    '- The servers are the compiled build (`tsc -p tsconfig.build.json`, as `npm start`), each in its own process, on 127.0.0.1, with the embedded DynamoDB stand-in **on disk** in its own data directory, `LOG_LEVEL=warn`, rate limits raised out of the way. autocannon 9 runs in the bench process; latencies are the exact per-response times it reports (not its 1 ms buckets).',
    '- Two servers run side by side with identical configuration: *small* keeps 1k tasks and 1k events; *big* is grown in place with BatchWriteItem (deterministic generated items in the repositories\' shapes, with the dashboard counters) to the sizes in the table. Each comparison alternates the two servers: a warm-up run each, then ' + P.pairs + ' measured runs of ' + P.seconds + ' s each, medians; ' + P.latencyConnections + ' connections for latencies.',
    '- Framework overhead: in the *small* server\'s process, `GET /api/tasks/{id}` (admin token) against `GET /tasks/{id}` of a bare Fastify instance and `GET /bench/plain/{id}` on our app (global hooks only), each doing one strongly consistent `GetItem` on the same table; ' + P.connections + ' connections, 50 task ids in turn.',
    '- Logins: 8 connections post correct credentials of ' + P.loginUsers + ' users in turn; `/api/health` is probed at 40 req/s meanwhile. The single-hash time is the median of 12 sequential `argon2.verify` at the configured parameters, measured in the bench process before the servers start.',
    '- Ingestion: 4 connections post ' + P.ingestBatches + ' batches of 100 new CloudWatch alarm envelopes (each creates an event) to the *big* server; the reference writes ' + P.rawItems + ' event items to the same table with `BatchWriteItem` (25 per call, 4 calls in flight) through the same stand-in, right after.',
    '- Mixed load: each of the three reads above on the *big* server, ' + P.latencyConnections + ' connections, ' + P.seconds + ' s, in turn quiet, while one batch of 100 new high-severity alarms arrives each second (the steady 100 events/s of docs/capacity.md), and while 4 connections post such batches as fast as the server answers (its peak here); the reads start 1 s into the ingestion and end before it; ' + P.pairs + ' rounds, medians of the p99.',
    '- Memory: the *big* server\'s `process.memoryUsage()` after two forced GCs (`--expose-gc`), after the data load and after each of three ' + P.memSeconds + ' s runs of mixed reads.',
    '- Data-layer dialect: no server; in the bench process, the embedded stand-in on disk in its own worker thread and directory, the app\'s client (src/db/client.ts) and models (`getModels` of src/data.ts, tables by `initializeTables`), ' + P.dialectItems + ' generated tasks and as many events written through the models. Each operation runs ' + P.dialectConcurrency + ' calls in flight for ' + P.dialectSeconds + ' s per dialect, after a warm-up, in ' + P.dialectRounds + ' rounds whose dialect order alternates; both dialects are first checked to answer and write the same. CPU per call: `process.cpuUsage()` (all threads, the stand-in\'s included) and the main thread\'s own CPU (Linux per-thread counters, 10 ms ticks: the client side, where the dialects differ).',
    '- Start-up: `node dist/src/server.js` on the *big* data directory, from spawn to the first 200 of `/api/health` (polled every 5 ms), against `node dist/scripts/bench/bare-server.js`; median of ' + P.startups + '.',
    '- Server CPU per request: the server process\'s `process.cpuUsage()` (all its threads: event loop, libuv pool, LevelDB) around a run, divided by the responses. It is much less sensitive to other processes than throughput.',
    '- CPU profiles: the V8 sampling profiler (what `--cpu-prof` writes; start-up: `node --cpu-prof` itself) attached to the server\'s main thread during a separate run of each scenario whose target was missed (`BENCH_PROFILE=always|never`). Self time is grouped by package; native frames are charged to their JavaScript caller. Profiles are kept in ' + (QUICK ? 'the scratch directory' : `\`${work}\``) + ' (open them in Chrome DevTools).',
    '',
    '### Raw measurements',
    '',
    ...details,
    '',
    profiles.length ? '## CPU profiles (this run)\n' : '',
    profileText,
    notes ? notes.trim() : '',
    '',
    earlierRunsSection(previous, meta.date)
  ].join('\n')
}

/** BENCH_RENDER=<results.json>: writes docs/performance.md again from a run's results (after editing notes.md). */
async function rerender (file: string): Promise<void> {
  const saved = JSON.parse(await readFile(file, 'utf8')) as { meta: Meta, rows: Row[], details: string[], profiles: Array<{ title: string, summary: ProfileSummary, file: string }>, dialect?: DialectResult[], roundTrips?: RoundTripRow[] }
  const target = saved.meta.quick || saved.meta.only ? path.join(path.dirname(file), 'performance.md') : path.join(root, 'docs', 'performance.md')
  await writeFile(target, await renderDoc(saved.meta, saved.rows, saved.details, saved.profiles, saved.dialect, saved.roundTrips, await previousReport(target)))
  process.stdout.write(`${renderTable(saved.rows).text}\n\nreport written to ${target}\n`)
}

;(process.env.BENCH_RENDER ? rerender(process.env.BENCH_RENDER) : main()).catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
