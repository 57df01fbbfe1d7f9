/**
 * Test helper: `build(t)` returns a ready app on this file's in-process DynamoDB stand-in
 * (fresh tables per app), and registers teardown. Every response that goes through
 * `api.request` is checked against the spec (status documented, content type, body schema).
 */
import tap from 'tap'
import type { Test } from 'tap'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import { buildApp, type App } from '../src/app.js'
import { loadConfig, type Config } from '../src/config.js'
import { startEmbeddedDynamo, type EmbeddedDynamo } from '../src/embedded-dynamodb.js'
import { ensureFirstAdmin } from '../src/modules/users/first-admin.js'
import { checkResponse } from './contract.js'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'
// Tests never reach for cloud credentials (the SDK would otherwise probe the instance metadata service).
process.env.AWS_EC2_METADATA_DISABLED = 'true'

export const ADMIN_EMAIL = 'admin@example.com'
export const ADMIN_PASSWORD = 'correct horse battery staple'
export const JWT_SECRET = 'test-secret-that-is-long-enough-for-hs256-0123456789'

let db: Promise<EmbeddedDynamo> | undefined
let counter = 0

/** This test file's stand-in: one per process, in memory, closed when the file ends. */
export function database (): Promise<EmbeddedDynamo> {
  if (!db) {
    db = startEmbeddedDynamo()
    tap.teardown(async () => { await (await db!).close() })
  }
  return db
}

export type Response = LightMyRequestResponse & { json: <T = any>() => T }

export interface Api {
  app: App
  config: Config
  /** app.inject plus the contract check of the response. */
  request: (opts: InjectOptions) => Promise<Response>
  /** Logs in and returns the access token (and the whole body). */
  login: (email: string, password: string) => Promise<{ token: string, body: any }>
  /** Creates a user of `role` through the API (as the admin) and logs in as it. */
  userWithRole: (role: 'admin' | 'manager' | 'user', overrides?: { email?: string, name?: string }) => Promise<{ id: string, email: string, password: string, token: string }>
  adminToken: () => Promise<string>
  auth: (token: string) => { authorization: string }
}

export async function build (t: Test, env: Record<string, string> = {}): Promise<Api> {
  const { endpoint } = await database()
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    RATE_LIMIT_MAX: '100000',
    AUTH_RATE_LIMIT_MAX: '100000',
    // Tests run the notification worker themselves (app.notifier.drain()), when they need it.
    NOTIFICATION_POLL_MS: '0',
    TABLE_PREFIX: `t${++counter}-`,
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    ...env
  })
  const app = await buildApp(config, { jwtSecret: JWT_SECRET, dynamodbEndpoint: endpoint, logger: false })
  await app.ready()
  t.teardown(() => app.close())
  await ensureFirstAdmin(app.repos.users, app.passwords, config.admin, app.stats)

  const request = async (opts: InjectOptions): Promise<Response> => {
    const res = await app.inject(opts) as Response
    const violations = checkResponse(String(opts.method ?? 'GET'), String(opts.url ?? opts.path), res)
    if (violations.length) throw new Error(`Contract violation:\n${violations.join('\n')}`)
    return res
  }
  const auth = (token: string) => ({ authorization: `Bearer ${token}` })
  const login = async (email: string, password: string) => {
    const res = await request({ method: 'POST', url: '/api/auth/login', payload: { email, password } })
    if (res.statusCode !== 200) throw new Error(`login of ${email} failed: ${res.statusCode} ${res.body}`)
    const body = res.json()
    return { token: body.access_token as string, body }
  }
  let admin: string | undefined
  const adminToken = async () => (admin ??= (await login(ADMIN_EMAIL, ADMIN_PASSWORD)).token)
  let made = 0
  const userWithRole: Api['userWithRole'] = async (role, overrides = {}) => {
    const email = overrides.email ?? `${role}${++made}@example.com`
    const password = `correct staple ${made} battery horse`
    const res = await request({
      method: 'POST',
      url: '/api/users',
      headers: auth(await adminToken()),
      payload: { email, name: overrides.name ?? `${role} ${made}`, role, password }
    })
    if (res.statusCode !== 201) throw new Error(`creating ${role} failed: ${res.statusCode} ${res.body}`)
    const { token } = await login(email, password)
    return { id: res.json().user.id, email, password, token }
  }
  return { app, config, request, login, userWithRole, adminToken, auth }
}

/** Asserts a problem response with the given status and code. */
export function assertProblem (t: Test, res: Response, status: number, code?: string, message = ''): void {
  t.equal(res.statusCode, status, `${message ? `${message}: ` : ''}status ${status} (got ${res.statusCode}: ${res.body.slice(0, 300)})`)
  t.match(String(res.headers['content-type']), /^application\/problem\+json/, 'problem content type')
  if (code) t.equal(res.json().code, code, `code ${code}`)
}
