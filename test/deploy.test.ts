/**
 * Operations: the CloudFormation template equals the models, the IAM policy is least
 * privilege, the Lambda entry serves API Gateway events, the server shuts down gracefully
 * and leaves its data directory reusable, and the container and task definition keep
 * their essentials.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse } from 'yaml'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { getModels } from '../src/data.js'
import { ensureFirstAdmin } from '../src/modules/users/first-admin.js'
import { modelAttributes, SCANNED_TABLES, SERVICE_ACTIONS, templatePath, policyPath } from '../scripts/generate-cloudformation.js'
import { database, ADMIN_EMAIL, ADMIN_PASSWORD, JWT_SECRET } from './helper.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const run = promisify(execFile)

type Json = Record<string, any>

const byName = <T extends Json>(items: T[] | undefined, key: string): T[] => [...(items ?? [])].sort((a, b) => String(a[key]).localeCompare(String(b[key])))

t.test('the CloudFormation template has exactly the tables of the models', async t => {
  const template = parse(await readFile(templatePath, 'utf8')) as Json
  const resources = template.Resources as Record<string, Json>
  const tables = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::DynamoDB::Table')
  const prefix = 'deploy-test-'
  const models = getModels(prefix)
  t.equal(tables.length, Object.keys(models).length, 'one table per model, no leftovers')
  t.match(template.Parameters.TablePrefix, { Type: 'String', Default: 'monitoring-' }, 'a TablePrefix parameter defaulting to TABLE_PREFIX\'s default')

  const withTtl: string[] = []
  for (const [key, model] of Object.entries(models)) {
    const request = await model.table().create({ return: 'request' }) as unknown as Json
    const suffix = String(request.TableName).slice(prefix.length)
    const found = tables.find(([, r]) => r.Properties.TableName?.['Fn::Sub'] === `\${TablePrefix}${suffix}`)
    if (!found) {
      t.fail(`model ${key}: no table named \${TablePrefix}${suffix}`)
      continue
    }
    const [id, resource] = found
    const p = resource.Properties as Json
    t.same(p.KeySchema, request.KeySchema, `${key}: key schema (order matters: HASH, RANGE)`)
    t.same(byName(p.AttributeDefinitions, 'AttributeName'), byName(request.AttributeDefinitions, 'AttributeName'), `${key}: attribute definitions`)
    t.same(byName(p.GlobalSecondaryIndexes, 'IndexName'), byName(request.GlobalSecondaryIndexes, 'IndexName'), `${key}: GSI names, keys and projections`)
    // Every index projects ALL (a list reads one index page), except the sparse notify-index of
    // events and tasks: keys only (the notification worker reads each marked item itself).
    for (const gsi of p.GlobalSecondaryIndexes ?? []) {
      const projection = gsi.IndexName === 'notify-index' ? 'KEYS_ONLY' : 'ALL'
      t.same(gsi.Projection, { ProjectionType: projection }, `${key}: ${gsi.IndexName} projects ${projection}`)
    }
    t.notOk(request.LocalSecondaryIndexes, `${key}: no LSIs`)
    t.equal(p.BillingMode, 'PAY_PER_REQUEST', `${key}: on demand`)
    t.same(p.PointInTimeRecoverySpecification, { PointInTimeRecoveryEnabled: true }, `${key}: PITR`)
    t.same(p.SSESpecification, { SSEEnabled: true }, `${key}: SSE`)
    t.equal(resource.DeletionPolicy, 'Retain', `${key}: DeletionPolicy Retain`)
    t.equal(resource.UpdateReplacePolicy, 'Retain', `${key}: UpdateReplacePolicy Retain`)
    const hasTtl = modelAttributes(model).has('ttl')
    if (hasTtl) withTtl.push(key)
    t.same(p.TimeToLiveSpecification, hasTtl ? { AttributeName: 'ttl', Enabled: true } : undefined, `${key}: TTL ${hasTtl ? 'on ttl' : 'absent'}`)
    t.same(template.Outputs[`${id}Name`]?.Value, { Ref: id }, `${key}: name output`)
    t.same(template.Outputs[`${id}Arn`]?.Value, { 'Fn::GetAtt': [id, 'Arn'] }, `${key}: ARN output`)
  }
  t.ok(withTtl.includes('auth') && withTtl.includes('meta'), `the models with a ttl attribute include auth and meta (${withTtl.join(', ')})`)
})

t.test('the IAM policy: least privilege, Scan only where the maintenance scripts scan', async t => {
  const template = parse(await readFile(templatePath, 'utf8')) as Json
  const policy = template.Resources.ServicePolicy as Json
  t.equal(policy.Type, 'AWS::IAM::ManagedPolicy')
  const statements = policy.Properties.PolicyDocument.Statement as Json[]
  const tableIds = Object.entries(template.Resources as Record<string, Json>).filter(([, r]) => r.Type === 'AWS::DynamoDB::Table')
  const [rw, scan] = statements
  t.same(rw!.Action, SERVICE_ACTIONS)
  t.notOk(statements.some(s => s.Effect !== 'Allow'), 'allows only')
  t.notOk(JSON.stringify(statements).includes('"*"') || JSON.stringify(statements).includes('dynamodb:*'), 'no wildcard action or resource')
  for (const [id, table] of tableIds) {
    t.ok(rw!.Resource.some((r: Json) => r['Fn::GetAtt']?.[0] === id), `${id}: read/write on the table`)
    const hasGsi = Boolean(table.Properties.GlobalSecondaryIndexes?.length)
    t.equal(rw!.Resource.some((r: Json) => r['Fn::Sub'] === `\${${id}.Arn}/index/*`), hasGsi, `${id}: ${hasGsi ? 'and on its indexes' : 'no index resource (none exist)'}`)
  }
  t.same(scan!.Action, ['dynamodb:Scan'])
  t.same(scan!.Resource.map((r: Json) => r['Fn::GetAtt'][0]).sort(), ['EventsTable', 'StatsTable', 'TasksTable', 'UsersTable'])

  // The Scan list follows the code: every `<model>.scan(`, `scanAll(<model>, …)` or toolkit
  // `raw.scanAll<…>(ctx.<table>)` / `(ctx.tables.<table>)` / `(ctx.<table>Table)` in src/ is on a listed table.
  const scanned = new Set<string>()
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name)
      if (entry.isDirectory()) await walk(file)
      else if (entry.name.endsWith('.ts')) {
        for (const m of (await readFile(file, 'utf8')).matchAll(/\b(\w+)\.scan\(|\bscanAll\((\w+),|\.scanAll<\w+>\(\s*ctx\.(?:tables\.)?(\w+?)(?:Table)?\b/g)) {
          const name = m[1] ?? m[2] ?? m[3]!
          if (name !== 'model' && name !== 'client') scanned.add(name) // the generic helpers' own (src/db)
        }
      }
    }
  }
  await walk(path.join(root, 'src'))
  t.same([...scanned].sort(), [...SCANNED_TABLES].sort(), 'the tables scanned in src/ are exactly the ones granted Scan')

  const plain = JSON.parse(await readFile(policyPath, 'utf8')) as Json
  t.same(plain.Statement.map((s: Json) => s.Action), statements.map(s => s.Action), 'deploy/iam/service-policy.json grants the same actions')
})

t.test('generate:cfn --check passes on the committed files', async t => {
  const res = await run(process.execPath, ['--import', 'tsx', 'scripts/generate-cloudformation.ts', '--check'], { cwd: root })
  t.match(res.stdout, /up to date/)
})

/** An API Gateway HTTP API (payload format 2.0) event. */
function httpApiEvent (method: string, rawPath: string, body?: unknown): Json {
  const now = Date.now()
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString: '',
    headers: {
      accept: 'application/json',
      host: 'abc123.execute-api.eu-west-1.amazonaws.com',
      'user-agent': 'tap',
      'x-forwarded-for': '198.51.100.7',
      ...(body === undefined ? {} : { 'content-type': 'application/json' })
    },
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      domainName: 'abc123.execute-api.eu-west-1.amazonaws.com',
      domainPrefix: 'abc123',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '198.51.100.7', userAgent: 'tap' },
      requestId: `req-${now}`,
      routeKey: '$default',
      stage: '$default',
      time: new Date(now).toUTCString(),
      timeEpoch: now
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    isBase64Encoded: false
  }
}

t.test('Lambda: the handler serves API Gateway HTTP API events', async t => {
  const { endpoint } = await database()
  const env = { TABLE_PREFIX: 'lambda-', LOG_LEVEL: 'silent', ADMIN_EMAIL, ADMIN_PASSWORD }
  // Seed an admin the way an operator would (`npm run seed:admin`) before the function runs.
  const seedConfig = loadConfig(env)
  const seed = await buildApp(seedConfig, { jwtSecret: JWT_SECRET, dynamodbEndpoint: endpoint, logger: false })
  await seed.ready()
  await ensureFirstAdmin(seed.repos.users, seed.passwords, seedConfig.admin, seed.stats)
  await seed.close()

  const saved = { ...process.env }
  t.teardown(() => { process.env = saved })
  Object.assign(process.env, env, { DYNAMODB_ENDPOINT: endpoint })
  delete process.env.JWT_SECRET
  const lambda = await import('../src/lambda.js')
  t.teardown(() => lambda.close())
  const context = { awsRequestId: 'test', functionName: 'cloud-monitoring-api' }

  await t.rejects(lambda.handler(httpApiEvent('GET', '/api/health'), context), /JWT_SECRET is required/, 'no JWT_SECRET: the start fails loudly')

  process.env.JWT_SECRET = JWT_SECRET
  const started = performance.now()
  const health = await lambda.handler(httpApiEvent('GET', '/api/health'), context)
  t.comment(`cold start (app built on the first invocation, local database): ${Math.round(performance.now() - started)} ms`)
  t.equal(health.statusCode, 200, 'a failed start is retried by the next invocation')
  t.match(JSON.parse(health.body), { status: 'ok', database: { status: 'ok' } })
  t.match(String(health.headers['content-type']), /^application\/json/)
  t.ok(health.headers['x-request-id'])

  const bad = await lambda.handler(httpApiEvent('POST', '/api/auth/login', { email: ADMIN_EMAIL, password: 'not the password at all' }), context)
  t.equal(bad.statusCode, 401, 'a bad login is a 401')
  t.match(String(bad.headers['content-type']), /^application\/problem\+json/, 'as problem+json')
  t.match(JSON.parse(bad.body), { status: 401, code: 'invalid_credentials' })

  const good = await lambda.handler(httpApiEvent('POST', '/api/auth/login', { email: ADMIN_EMAIL, password: ADMIN_PASSWORD }), context)
  t.equal(good.statusCode, 200, 'the seeded admin logs in')
  const token = JSON.parse(good.body).access_token as string
  t.ok(token)
  const me = await lambda.handler({ ...httpApiEvent('GET', '/api/auth/me'), headers: { ...httpApiEvent('GET', '/api/auth/me').headers, authorization: `Bearer ${token}` } }, context)
  t.equal(me.statusCode, 200, 'the token works on the next invocation (same container, same app)')
  t.equal(JSON.parse(me.body).email ?? JSON.parse(me.body).user?.email, ADMIN_EMAIL)
})

// ---- the real server process ----

async function freePort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise(resolve => server.close(resolve))
  return port
}

interface Reply { status: number, headers: http.IncomingHttpHeaders, body: string }

function request (port: number, method: string, urlPath: string, body?: unknown, agent: http.Agent | false = false): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, agent, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {} }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(payload)
  })
}

interface Server {
  child: ChildProcess
  port: number
  output: () => string
  /** Resolves when a stdout line matches. */
  waitFor: (re: RegExp, ms?: number) => Promise<string>
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null, at: number }>
}

async function startServer (dataDir: string): Promise<Server> {
  const port = await freePort()
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: 'development',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATA_DIR: dataDir,
      LOG_LEVEL: 'info',
      ADMIN_EMAIL,
      ADMIN_PASSWORD,
      // A slower hash keeps a login in flight long enough to be caught by SIGTERM.
      ARGON2_MEMORY_KIB: '65536',
      ARGON2_TIME_COST: '6',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true'
    }
  })
  let out = ''
  const waiters: Array<{ re: RegExp, resolve: (line: string) => void }> = []
  child.stdout!.setEncoding('utf8')
  child.stderr!.setEncoding('utf8')
  child.stderr!.on('data', (chunk: string) => { out += chunk })
  child.stdout!.on('data', (chunk: string) => {
    out += chunk
    for (const w of [...waiters]) {
      const line = out.split('\n').find(l => w.re.test(l))
      if (line) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(line)
      }
    }
  })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null, at: number }>(resolve => child.once('exit', (code, signal) => resolve({ code, signal, at: performance.now() })))
  const waitFor = (re: RegExp, ms = 15000) => new Promise<string>((resolve, reject) => {
    const line = out.split('\n').find(l => re.test(l))
    if (line) return resolve(line)
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}; output:\n${out.slice(-2000)}`)), ms)
    waiters.push({ re, resolve: l => { clearTimeout(timer); resolve(l) } })
  })
  const server: Server = { child, port, output: () => out, waitFor, exited }
  // Ready when health answers 200.
  const deadline = performance.now() + 20000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${out}`)
    try {
      if ((await request(port, 'GET', '/api/health')).status === 200) return server
    } catch {}
    if (performance.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`server not healthy within 20 s:\n${out}`)
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

t.test('graceful shutdown: in-flight requests finish, the process exits 0, the data directory reopens', async t => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'monitoring-shutdown-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))

  const first = await startServer(dataDir)
  t.teardown(() => { if (first.child.exitCode === null) first.child.kill('SIGKILL') })

  // An idle keep-alive connection must not hold the shutdown up.
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => keepAlive.destroy())
  t.equal((await request(first.port, 'GET', '/api/health', undefined, keepAlive)).status, 200)
  const idle = Object.values(keepAlive.freeSockets).flat()[0]
  t.ok(idle, 'an idle keep-alive socket is open')
  const idleClosed = new Promise<void>(resolve => idle!.once('close', () => resolve()))

  // A slow request (argon2 verify) in flight when SIGTERM arrives.
  const inFlight = request(first.port, 'POST', '/api/auth/login', { email: ADMIN_EMAIL, password: ADMIN_PASSWORD })
  await first.waitFor(/"url":"\/api\/auth\/login".*incoming request|incoming request.*"url":"\/api\/auth\/login"/)
  const signalled = performance.now()
  first.child.kill('SIGTERM')

  const login = await inFlight
  t.equal(login.status, 200, 'the in-flight login completes normally')
  t.ok(JSON.parse(login.body).access_token, 'with its tokens')
  const { code, signal, at } = await first.exited
  t.equal(code, 0, `exit code 0 (signal ${signal})`)
  t.ok(at - signalled < 5000, `exited ${Math.round(at - signalled)} ms after SIGTERM (< 5 s; the forced exit is at 10 s)`)
  await idleClosed
  t.pass('the idle keep-alive connection was closed by the server')
  const log = first.output()
  const shutdownAt = log.indexOf('shutting down: finishing in-flight requests')
  t.ok(shutdownAt >= 0, 'the server logged the shutdown')
  t.ok(log.lastIndexOf('"statusCode":200') > shutdownAt && log.lastIndexOf('request completed') > shutdownAt, 'the login completed after the shutdown began (it really was in flight)')
  await t.rejects(request(first.port, 'GET', '/api/health'), { code: 'ECONNREFUSED' }, 'new connections are refused')

  // dynalite closed its LevelDB cleanly: a second server opens the same directory.
  const second = await startServer(dataDir)
  t.teardown(() => { if (second.child.exitCode === null) second.child.kill('SIGKILL') })
  t.equal((await request(second.port, 'GET', '/api/health')).status, 200, 'the restarted server is healthy on the same DATA_DIR')
  const again = await request(second.port, 'POST', '/api/auth/login', { email: ADMIN_EMAIL, password: ADMIN_PASSWORD })
  t.equal(again.status, 200, 'and the data survived (the admin logs in)')
  t.notMatch(second.output(), /created the first admin/, 'no second first admin')
  second.child.kill('SIGTERM')
  t.equal((await second.exited).code, 0, 'the second server also exits 0')
})

// ---- container and task definition ----

t.test('Dockerfile essentials', async t => {
  const text = await readFile(path.join(root, 'Dockerfile'), 'utf8')
  // One entry per instruction: comments dropped, continuation lines joined.
  const lines = text.split('\n').filter(l => !l.trim().startsWith('#')).join('\n').replace(/\\\n\s*/g, ' ').split('\n').map(l => l.trim()).filter(Boolean)
  const froms = lines.map((l, i) => [l, i] as const).filter(([l]) => /^FROM\s/i.test(l))
  t.ok(froms.length >= 2, 'multi-stage')
  const final = lines.slice(froms.at(-1)![1])
  const has = (re: RegExp) => final.some(l => re.test(l))
  t.ok(has(/^RUN\s.*npm ci\b.*--omit=dev/), 'the final stage installs production dependencies only')
  t.notOk(final.some(l => /^RUN\s.*npm (ci|install)\b/.test(l) && !/--omit=dev/.test(l)), 'and nothing else')
  const users = final.filter(l => /^USER\s/i.test(l))
  t.ok(users.length > 0, 'USER is set')
  t.notMatch(users.at(-1)!, /^USER\s+(root|0)(:|\s|$)/i, 'and it is not root')
  t.ok(has(/^HEALTHCHECK\s.*\/api\/health/), 'HEALTHCHECK on /api/health')
  t.ok(has(/^EXPOSE\s+3000\b/), 'EXPOSE 3000')
  t.match(text, /HOST=0\.0\.0\.0/, 'listens on all interfaces in the container')
  t.notMatch(text, /^\s*(ENV|ARG)\b[^\n]*(JWT_SECRET|ADMIN_PASSWORD|AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID)/m, 'no secret baked in')
  const ignore = (await readFile(path.join(root, '.dockerignore'), 'utf8')).split('\n').map(l => l.trim())
  for (const entry of ['node_modules', 'data', '.env', '.git']) t.ok(ignore.includes(entry), `.dockerignore excludes ${entry}`)

  const lint = await run(path.join(root, 'node_modules/.bin/dockerfilelint'), ['Dockerfile'], { cwd: root }).then(r => ({ code: 0, out: r.stdout }), (err: { code: number, stdout: string }) => ({ code: err.code, out: err.stdout }))
  t.equal(lint.code, 0, `dockerfilelint passes${lint.code ? `:\n${lint.out}` : ''}`)
})

t.test('the ECS task definition example', async t => {
  const def = JSON.parse(await readFile(path.join(root, 'deploy/ecs/task-definition.json'), 'utf8')) as Json
  const c = def.containerDefinitions[0] as Json
  const env = Object.fromEntries((c.environment as Json[]).map(e => [e.name, e.value]))
  t.equal(env.DYNAMODB_ENDPOINT, 'aws', 'real DynamoDB')
  t.ok(env.TRUST_PROXY && env.TRUST_PROXY !== 'true', 'trusts exactly the ALB hop, not every hop')
  t.notOk('JWT_SECRET' in env, 'JWT_SECRET is not plain environment')
  t.ok((c.secrets as Json[]).some(s => s.name === 'JWT_SECRET' && /^arn:aws:(secretsmanager|ssm):/.test(s.valueFrom)), 'JWT_SECRET comes from Secrets Manager or SSM')
  t.match(c.healthCheck.command.join(' '), /\/api\/health/)
  t.ok(c.stopTimeout > 10, 'stopTimeout exceeds the server\'s 10 s forced exit')
  t.same(c.portMappings[0].containerPort, 3000)
})
