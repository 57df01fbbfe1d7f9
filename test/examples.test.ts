/**
 * docs/examples.md is executable: its curl blocks run (real curl) in order against a real
 * listening app, its TypeScript client is type-checked against the generated types and run,
 * and every documented response or output is compared with what came back.
 *
 * And `npm run seed:demo` (scripts/seed-demo.ts) runs in its own process against a temporary
 * DATA_DIR; a fresh app on that data then shows a living dashboard; a second run refuses.
 *
 * Conventions of docs/examples.md (fenced code blocks, attributes in the info string):
 * - ```sh example=NAME status=CODE set=VAR:json.path,…``` runs with bash (cwd: a temporary
 *   directory shared by all blocks) with BASE and every VAR set so far; it must make one curl
 *   request. `set` takes variables for the next blocks from the JSON response.
 * - ```json response=NAME``` is that example's documented response: same keys everywhere, equal
 *   values, except that a ULID stands for any ULID, a timestamp for any timestamp, and a string
 *   with `…` for any string. It must also match the spec.
 * - ```ts example=client``` is the TypeScript client; ```text output=client``` its output
 *   (ULIDs stand for any ULID).
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import ts from 'typescript'
import { build, ADMIN_EMAIL, ADMIN_PASSWORD } from './helper.js'
import { checkResponse } from './contract.js'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { startEmbeddedDynamo } from '../src/embedded-dynamodb.js'
import { resolveJwtSecret } from '../src/secrets.js'

const run = promisify(execFile)
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const TSX = path.join(root, 'node_modules', '.bin', 'tsx')

interface Block { lang: string, attrs: Record<string, string>, code: string, line: number }

/** The fenced code blocks of a Markdown text, with the `key=value` attributes of their info string. */
export function codeBlocks (markdown: string): Block[] {
  const blocks: Block[] = []
  const fence = /^```([\w-]*)([^\n]*)\n([\s\S]*?)^```[ \t]*$/gm
  for (const m of markdown.matchAll(fence)) {
    const attrs: Record<string, string> = {}
    for (const a of (m[2] ?? '').trim().split(/\s+/).filter(Boolean)) {
      const [k, ...v] = a.split('=')
      attrs[k!] = v.join('=')
    }
    blocks.push({ lang: m[1] ?? '', attrs, code: m[3] ?? '', line: markdown.slice(0, m.index).split('\n').length })
  }
  return blocks
}

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/

/** Differences between an actual JSON value and the documented one (see the conventions above). */
export function differences (actual: unknown, documented: unknown, at = ''): string[] {
  if (typeof documented === 'string') {
    if (typeof actual !== 'string') return [`${at || '/'}: expected a string, got ${JSON.stringify(actual)}`]
    if (documented.includes('…')) return []
    if (ULID.test(documented)) return ULID.test(actual) ? [] : [`${at}: expected an id, got ${actual}`]
    if (TIME.test(documented)) return TIME.test(actual) ? [] : [`${at}: expected a timestamp, got ${actual}`]
    return actual === documented ? [] : [`${at}: documented ${JSON.stringify(documented)}, got ${JSON.stringify(actual)}`]
  }
  if (Array.isArray(documented)) {
    if (!Array.isArray(actual)) return [`${at}: expected an array, got ${JSON.stringify(actual)}`]
    if (actual.length !== documented.length) return [`${at}: documented ${documented.length} items, got ${actual.length}: ${JSON.stringify(actual)}`]
    return documented.flatMap((d, i) => differences(actual[i], d, `${at}/${i}`))
  }
  if (documented !== null && typeof documented === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return [`${at}: expected an object, got ${JSON.stringify(actual)}`]
    const keys = new Set([...Object.keys(documented), ...Object.keys(actual)])
    return [...keys].flatMap(k => {
      if (!(k in documented)) return [`${at}/${k}: not documented (value ${JSON.stringify((actual as Record<string, unknown>)[k])})`]
      if (!(k in actual)) return [`${at}/${k}: documented but absent`]
      return differences((actual as Record<string, unknown>)[k], (documented as Record<string, unknown>)[k], `${at}/${k}`)
    })
  }
  return actual === documented ? [] : [`${at || '/'}: documented ${JSON.stringify(documented)}, got ${JSON.stringify(actual)}`]
}

const pick = (value: unknown, dotted: string): unknown =>
  dotted.split('.').reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), value)

/** What curl reports after each transfer (through a .curlrc, so that the documented commands run unchanged). */
const MARK = '\n@@@curl '

t.test('docs/examples.md runs as documented', async t => {
  const markdown = await readFile(path.join(root, 'docs', 'examples.md'), 'utf8')
  const blocks = codeBlocks(markdown)
  const examples = blocks.filter(b => b.attrs.example)
  t.ok(examples.filter(b => b.lang === 'sh').length >= 8, 'the curl examples are there')
  t.ok(examples.some(b => b.lang === 'ts'), 'the TypeScript client example is there')

  const api = await build(t)
  const base = (await api.app.listen({ port: 0, host: '127.0.0.1' })).replace('localhost', '127.0.0.1')
  const work = await mkdtemp(path.join(tmpdir(), 'cmc-examples-'))
  t.teardown(() => rm(work, { recursive: true, force: true }))
  const curlHome = path.join(work, '.curl')
  await mkdir(curlHome)
  await writeFile(path.join(curlHome, '.curlrc'), `write-out = "${MARK.replace('\n', '\\n')}%{http_code} %{method} %{url_effective} %{content_type}"\n`)

  const vars: Record<string, string> = { BASE: base }
  const responses = new Map(blocks.filter(b => b.attrs.response).map(b => [b.attrs.response!, b]))

  for (const block of examples.filter(b => b.lang === 'sh')) {
    const name = block.attrs.example!
    const where = `${name} (docs/examples.md:${block.line})`
    const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', block.code], {
      cwd: work,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: work, CURL_HOME: curlHome, ...vars },
      timeout: 20000
    }).catch((err: { stderr?: string, stdout?: string }) => { throw new Error(`${where} failed: ${err.stderr ?? ''} ${err.stdout ?? ''}`) })
    const parts = stdout.split(MARK)
    t.equal(parts.length, 2, `${where}: one curl request`)
    const body = parts[0] ?? ''
    const [code, method, url, contentType = ''] = (parts[1] ?? '').trim().split(' ')
    const status = Number(code)
    t.equal(status, Number(block.attrs.status), `${where}: status ${block.attrs.status} (body: ${body.slice(0, 300)})`)
    const pathname = new URL(url!).pathname
    t.same(checkResponse(method!, pathname, { statusCode: status, headers: { 'content-type': contentType }, body }, { headers: false }), [], `${where}: the response conforms to the spec`)

    const documented = responses.get(name)
    if (documented) {
      const expected = JSON.parse(documented.code)
      t.same(differences(JSON.parse(body), expected), [], `${where}: the response is as documented`)
      t.same(checkResponse(method!, pathname, { statusCode: status, headers: { 'content-type': contentType }, body: JSON.stringify(expected) }, { headers: false }), [], `${where}: the documented response conforms to the spec`)
    } else {
      t.equal(body, '', `${where}: no body (none documented)`)
    }
    for (const assignment of (block.attrs.set ?? '').split(',').filter(Boolean)) {
      const [variable, jsonPath] = assignment.split(':')
      const value = pick(JSON.parse(body), jsonPath!)
      t.type(value, 'string', `${where}: ${variable} from ${jsonPath}`)
      vars[variable!] = String(value)
    }
  }
  t.same(Object.keys(vars).sort(), ['API_KEY', 'BASE', 'EVENT_ID', 'REFRESH_TOKEN', 'TASK_ID', 'TOKEN'], 'the variables the text announces')

  // The documented flows did what they say, seen through the API.
  const token = (await api.login(ADMIN_EMAIL, ADMIN_PASSWORD)).token
  const task = (await api.request({ method: 'GET', url: `/api/tasks/${vars.TASK_ID}`, headers: api.auth(token) })).json()
  t.match(task, { status: 'closed', comments: [{ body: /./ }], status_history: [{ from: 'open', to: 'in_progress' }, { from: 'in_progress', to: 'closed' }] }, 'the worked task: commented, in progress, closed')
  const event = (await api.request({ method: 'GET', url: `/api/events/${vars.EVENT_ID}`, headers: api.auth(token) })).json()
  t.match(event, { status: 'acknowledged', occurrence_count: 1, task_id: /^[0-9A-Z]{26}$/ }, 'the ingested event: one occurrence (the redelivery was a duplicate), acknowledged by its task')

  // The TypeScript client: type-checked against the generated types, then run against the server.
  const client = examples.find(b => b.lang === 'ts' && b.attrs.example === 'client')!
  const dir = path.join(work, 'project')
  await mkdir(path.join(dir, 'examples'), { recursive: true })
  await symlink(path.join(root, 'node_modules'), path.join(dir, 'node_modules'))
  await symlink(path.join(root, 'openapi'), path.join(dir, 'openapi'))
  await writeFile(path.join(dir, 'package.json'), '{ "type": "module" }\n')
  const file = path.join(dir, 'examples', 'client.ts')
  await writeFile(file, client.code)
  const tsconfig = ts.parseJsonConfigFileContent(ts.readConfigFile(path.join(root, 'tsconfig.json'), ts.sys.readFile).config, ts.sys, root)
  const program = ts.createProgram([file], { ...tsconfig.options, noEmit: true, rootDir: dir, sourceMap: false })
  const diagnostics = ts.getPreEmitDiagnostics(program).map(d => ts.flattenDiagnosticMessageText(d.messageText, '\n'))
  t.same(diagnostics, [], 'the client example type-checks against openapi/generated/api-types.ts')
  if (diagnostics.length) return
  const { stdout } = await run(TSX, [file], { cwd: dir, env: { ...process.env, BASE: base }, timeout: 30000 })
    .catch((err: { stderr?: string, stdout?: string }) => { throw new Error(`the client example failed: ${err.stderr ?? ''} ${err.stdout ?? ''}`) })
  const output = blocks.find(b => b.attrs.output === 'client')!
  const normalize = (s: string) => s.trim().split('\n').map(l => l.trimEnd().replace(/[0-9A-HJKMNP-TV-Z]{26}/g, '<id>'))
  t.same(normalize(stdout), normalize(output.code), 'the client prints what the text shows')
})

t.test('npm run seed:demo fills a database with a living dashboard, once', async t => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'cmc-seed-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  // Only what the run needs: a developer's DYNAMODB_ENDPOINT, TABLE_PREFIX or NODE_ENV stays out.
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, DATA_DIR: dataDir, LOG_LEVEL: 'warn', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' }
  const seed = (extra: Record<string, string> = {}) => run(TSX, ['scripts/seed-demo.ts'], { cwd: root, env: { ...env, ...extra }, timeout: 50000 })
    .then(r => ({ code: 0, ...r }), (err: { code: number, stdout: string, stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }))

  const noAdmin = await seed({ ADMIN_PASSWORD: '' })
  t.equal(noAdmin.code, 1, 'refuses on a database without an admin (the demo admin would stand in for the first one)')
  t.match(noAdmin.stderr, /no admin yet.*Nothing was changed/s)

  const first = await seed({ ADMIN_PASSWORD })
  t.equal(first.code, 0, `first run succeeds ${first.stderr}`)
  const password = /password for all: (\S+)\)/.exec(first.stdout)?.[1]
  t.ok(password, 'prints the demo password')
  t.match(first.stdout, /demo-manager@example\.com\s+manager/)
  t.match(first.stdout, /demo-alex@example\.com\s+user/)
  t.notMatch(first.stdout, ADMIN_PASSWORD, "never prints the admin's password")

  const second = await seed({ ADMIN_PASSWORD })
  t.equal(second.code, 1, 'a second run refuses')
  t.match(second.stderr, /Demo data already exists.*demo-manager@example\.com.*Nothing was changed/s)

  // A fresh app on that data directory, as `npm start` would open it.
  const config = loadConfig({ LOG_LEVEL: 'silent', DATA_DIR: dataDir })
  const db = await startEmbeddedDynamo({ path: path.join(dataDir, 'dynamodb') })
  t.teardown(() => db.close())
  const app = await buildApp(config, { jwtSecret: await resolveJwtSecret(config), dynamodbEndpoint: db.endpoint, logger: false })
  t.teardown(() => app.close())
  const get = async (url: string, token: string) => {
    const res = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } })
    t.same(checkResponse('GET', url, res), [], `${url} conforms to the spec`)
    t.equal(res.statusCode, 200, url)
    return res.json()
  }
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'demo-manager@example.com', password } })
  t.equal(login.statusCode, 200, 'the printed demo login works')
  const manager = login.json().access_token as string
  const alexLogin = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'demo-alex@example.com', password } })
  t.equal(alexLogin.statusCode, 200, 'so does a user login')

  const events = await get('/api/dashboard/events-stats', manager)
  for (const source of ['aws.cloudwatch', 'aws.guardduty', 'aws.securityhub', 'aws.health']) t.ok(events.by_source[source] > 0, `events from ${source}: ${events.by_source[source]}`)
  t.ok(Object.values(events.by_severity as Record<string, number>).filter(n => n > 0).length >= 4, `varied severities ${JSON.stringify(events.by_severity)}`)
  t.ok(events.by_status.resolved > 0 && events.by_status.open > 0 && events.by_status.acknowledged > 0, `open, acknowledged and resolved events ${JSON.stringify(events.by_status)}`)
  t.ok(events.recent.length > 0, 'recent events')
  const tasks = await get('/api/dashboard/tasks-stats', manager)
  for (const status of ['open', 'in_progress', 'closed']) t.ok(tasks.by_status[status] > 0, `tasks ${status}: ${tasks.by_status[status]}`)
  t.ok(tasks.my_open_tasks > 0, 'the manager has work of its own')
  const users = await get('/api/dashboard/users-stats', manager)
  for (const role of ['admin', 'manager', 'user']) t.ok(users.by_role[role] > 0, `users with role ${role}: ${users.by_role[role]}`)
  t.ok(users.active < users.total, 'and a deactivated one')
  t.equal(users.total, 6, 'the refused second run added nobody (first admin, demo admin, manager, three users)')

  const list = await get('/api/events?limit=100', manager)
  t.ok(list.items.some((e: { occurrence_count: number }) => e.occurrence_count > 1), 'repeated occurrences')
  t.ok(list.items.some((e: { source: string, status: string }) => e.source === 'aws.cloudwatch' && e.status === 'resolved'), 'a resolved alarm')
  const times = list.items.map((e: { occurred_at: string }) => Date.parse(e.occurred_at))
  t.ok(Math.max(...times) - Math.min(...times) > 3 * 86400_000, 'spread over the last days')
  t.ok(Math.max(...times) <= Date.now(), 'none in the future')
  const fromEvents = await get('/api/tasks?limit=100', manager)
  t.ok(fromEvents.items.filter((x: { event_id: string | null }) => x.event_id).length >= 3, 'tasks created from events')
  t.ok(fromEvents.items.filter((x: { assigned_to: string | null }) => x.assigned_to).length >= 3, 'assigned tasks')
  const closed = fromEvents.items.find((x: { status: string, event_id: string | null }) => x.status === 'closed' && x.event_id)
  const detail = await get(`/api/tasks/${closed.id}`, manager)
  t.ok(detail.comments.length >= 2, 'comments')
  t.same(detail.status_history.map((h: { to: string }) => h.to), ['in_progress', 'closed'], 'status history')
})
