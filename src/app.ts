import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { DestinationStream } from 'pino'
import cors from '@fastify/cors'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { newId } from './lib/ids.js'
import type { Config } from './config.js'
import errorsPlugin, { sendProblem } from './plugins/errors.js'
import { createSerializerFactory, createValidatorCompiler } from './plugins/validation.js'
import dynamoPlugin from './plugins/dynamo.js'
import { createRepositories, getModels } from './data.js'
import passwordsPlugin from './plugins/passwords.js'
import authPlugin from './plugins/auth.js'
import rbacPlugin from './plugins/rbac.js'
import rateLimitPlugin from './plugins/rate-limit.js'
import docsPlugin from './plugins/docs.js'
import consolePlugin from './plugins/console.js'
import healthModule from './modules/health/health.routes.js'
import authModule from './modules/auth/auth.routes.js'
import usersModule from './modules/users/users.routes.js'
import tasksModule from './modules/tasks/tasks.routes.js'
import eventsModule from './modules/events/events.routes.js'
import ingestionModule from './modules/events/ingestion.routes.js'
import { createExpiryService } from './modules/events/expiry.service.js'
import retentionSweeper from './modules/events/expiry.sweeper.js'
import settingsModule from './modules/settings/settings.routes.js'
import dashboardModule from './modules/dashboard/dashboard.routes.js'
import apiKeyPlugin from './plugins/api-key.js'
import statsPlugin from './plugins/stats.js'
import notificationsModule from './modules/notifications/notifications.routes.js'
import { createNotificationsService } from './modules/notifications/notifications.service.js'
import { createRulesGate, createRulesService } from './modules/notifications/rules.service.js'
import { createNotificationWorker, type NotificationWorker } from './modules/notifications/worker.js'
import notificationPoller from './modules/notifications/poller.js'
import { notifySources } from './notify-sources.js'
import { createSecretBox, notificationKey } from './lib/secret-box.js'
import auditPlugin from './plugins/audit.js'
import auditModule from './modules/audit/audit.routes.js'
import { createAuditService } from './modules/audit/audit.service.js'

/** What buildApp needs beyond the environment: resolved by the server or the tests. */
export interface AppOptions {
  /** The JWT signing secret (required: the server resolves one from config or DATA_DIR). */
  jwtSecret: string
  /** A DynamoDB endpoint URL or 'aws' (the server starts the embedded stand-in first). */
  dynamodbEndpoint: string
  /** `false` silences logging; a stream receives the JSON log lines (tests, log shippers). */
  logger?: false | { stream: DestinationStream }
}

export type App = FastifyInstance

declare module 'fastify' {
  interface FastifyInstance {
    /** The notification worker (the poller runs it; tests and the scheduled Lambda call `drain`). */
    notifier: NotificationWorker
    /** NOTIFICATION_TIMEOUT_MS: how long one send may take (the scheduled worker's margin). */
    notifierTimeoutMs: number
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/

/** Headers every response carries: its request id (spec: X-Request-Id) and the security headers. */
function commonHeaders (request: FastifyRequest, reply: FastifyReply, problem = false): void {
  reply.header('x-request-id', request.id)
  reply.header('cache-control', reply.getHeader('cache-control') ?? 'no-store')
  reply.header('x-content-type-options', 'nosniff')
  reply.header('referrer-policy', 'no-referrer')
  reply.header('x-frame-options', reply.getHeader('x-frame-options') ?? 'DENY')
  // API responses are data: nothing in them may run or be framed (pages set their own policy).
  if ((problem || /json/.test(String(reply.getHeader('content-type') ?? ''))) && !reply.hasHeader('content-security-policy')) {
    reply.header('content-security-policy', "default-src 'none'; frame-ancestors 'none'")
  }
}

/** A 400 `validation_failed` from a body parser. */
const clientError = (message: string): Error => Object.assign(new Error(message), { statusCode: 400, code: 'FST_ERR_VALIDATION', validation: [{ instancePath: '', message }], validationContext: 'body' })

/** An unpaired UTF-16 surrogate: `u` mode matches a lone surrogate only, never half of a pair. */
const LONE_SURROGATE = /\p{Cs}/u

/** True when any string (key or value) in a parsed JSON value is not well-formed Unicode. */
function hasLoneSurrogate (value: unknown): boolean {
  const stack = [value]
  while (stack.length) {
    const v = stack.pop()
    if (typeof v === 'string') {
      if (LONE_SURROGATE.test(v)) return true
    } else if (v && typeof v === 'object') {
      for (const [k, child] of Object.entries(v)) {
        if (LONE_SURROGATE.test(k)) return true
        stack.push(child)
      }
    }
  }
  return false
}

/** The one place that creates the Fastify instance and registers everything. */
export async function buildApp (config: Config, opts: AppOptions): Promise<App> {
  const app = Fastify({
    logger: opts.logger === false
      ? false
      : {
          level: config.logLevel,
          ...(opts.logger?.stream ? { stream: opts.logger.stream } : {}),
          // Defence in depth: the default serializers log no headers or bodies at all.
          redact: {
            paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers.cookie', '*.password', '*.new_password', '*.current_password', '*.refresh_token', '*.access_token', '*.password_hash', '*.api_key', '*.signing_secret', '*.secret_sealed', '*.previous_secret_sealed', '*.url_sealed', 'req.headers["webhook-signature"]'],
            censor: '[redacted]'
          }
        },
    bodyLimit: config.bodyLimit,
    // A hop count is supported at run time; the overload's type omits it.
    trustProxy: config.trustProxy as boolean | string,
    requestTimeout: 30000,
    connectionTimeout: 60000,
    // Honour a caller's well-formed request id for tracing; otherwise make one.
    genReqId: (req) => {
      const given = req.headers['x-request-id']
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : newId()
    },
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 2048 },
    // Malformed URLs (bad percent-encoding, oversized parameters) are problems like the rest.
    // They are answered before routing, where no onSend hook runs: add the common headers here.
    frameworkErrors: (err, request, reply) => {
      commonHeaders(request, reply, true)
      return sendProblem(request, reply, err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'not_found' : 'validation_failed', err.message)
    },
    // Response serializers and request validators are built at each route's first use, not at
    // boot (EAGER_SCHEMAS: at boot, as Fastify does by default): src/plugins/validation.ts.
    schemaController: { compilersFactory: { buildSerializer: createSerializerFactory({ eager: config.eagerSchemas }) } }
  }).withTypeProvider<TypeBoxTypeProvider>()

  app.setValidatorCompiler(createValidatorCompiler({ eager: config.eagerSchemas }))

  app.addHook('onSend', async (request, reply) => { commonHeaders(request, reply) })

  // JSON only; an empty body counts as no body (then the schema decides), anything else is 415.
  // A JSON `null` is not "no body": every request body of the API is an object, so it is a 400.
  // Text with an unpaired UTF-16 surrogate (valid JSON escapes, not valid Unicode) is refused
  // too: it could not be stored as UTF-8 and would compare equal to other broken text.
  app.removeContentTypeParser(['text/plain'])
  const defaultJson = app.getDefaultJsonParser('error', 'error')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '' || (typeof body === 'string' && body.trim() === '')) return done(null, undefined)
    defaultJson(request, body as string, (err, parsed) => {
      if (err) return done(err, undefined)
      if (parsed === null) return done(clientError('The body must be a JSON object, not null; send no body to leave it out.'), undefined)
      if (hasLoneSurrogate(parsed)) return done(clientError('The body contains text that is not well-formed Unicode (an unpaired surrogate).'), undefined)
      done(null, parsed)
    })
  })

  await app.register(errorsPlugin)
  // The data layer: every module's tables (src/data.ts) on one connection, then the modules'
  // repositories. Plugins and modules get the ports they need from them, nothing more.
  const models = getModels(config.tablePrefix)
  await app.register(dynamoPlugin, {
    endpoint: opts.dynamodbEndpoint,
    region: config.region,
    createTables: opts.dynamodbEndpoint !== 'aws',
    cursorSecret: opts.jwtSecret,
    models,
    pingModel: models.meta
  })
  const repos = createRepositories(app.db, models, config.authCache, config.audit)
  app.decorate('repos', repos)
  // The audit trail (docs/audit.md): one service, written through the plugin's port by every
  // module (and by rbac for denials), read through the audit module's routes.
  const audit = createAuditService(repos.audit, { log: app.log })
  await app.register(auditPlugin, { writer: audit })
  await app.register(passwordsPlugin, config.argon2)
  await app.register(statsPlugin, { store: repos.stats })
  await app.register(authPlugin, {
    secret: opts.jwtSecret,
    issuer: config.jwt.issuer,
    audience: config.jwt.audience,
    accessTtlSeconds: config.jwt.accessTtlSeconds,
    revocations: repos.auth,
    callers: repos.users
  })
  await app.register(apiKeyPlugin, { accounts: repos.awsAccounts, invalidKeyMax: config.rateLimit.invalidKeyMax, windowMs: config.rateLimit.windowMs })
  await app.register(rateLimitPlugin, { ...config.rateLimit, redisUrl: config.redisUrl })
  await app.register(rbacPlugin)
  if (config.corsOrigins.length) {
    // Preflights carry no credentials (Fetch standard): the OPTIONS route @fastify/cors adds is public.
    app.addHook('onRoute', (route) => {
      if (route.method === 'OPTIONS' && !route.config?.policy) route.config = { ...route.config, policy: { kind: 'public' }, operationId: 'corsPreflight' }
    })
    await app.register(cors, {
      origin: config.corsOrigins,
      methods: ['GET', 'POST', 'PUT', 'DELETE'],
      allowedHeaders: ['Authorization', 'Content-Type', 'If-Match', 'X-Request-Id'],
      exposedHeaders: ['ETag', 'Location', 'Retry-After', 'X-Request-Id'],
      maxAge: 600
    })
  }
  await app.register(docsPlugin)
  await app.register(consolePlugin)

  // Notifications: the rules' gate goes to every writer of changes that notify (tasks,
  // ingestion, events); the worker queues and delivers what they marked (worker.ts).
  const notify = createRulesGate(() => repos.notificationRules.enabled())
  const channels = createNotificationsService(repos.notifications, {
    box: createSecretBox(notificationKey(config.notifications.key, opts.jwtSecret)),
    allowLoopback: config.notifications.allowLoopback,
    timeoutMs: config.notifications.timeoutMs,
    consoleUrl: config.publicBaseUrl ?? null
  })
  const notifier = createNotificationWorker({
    deliveries: repos.notificationDeliveries,
    channels: repos.notifications,
    rules: () => repos.notificationRules.enabled(),
    sources: notifySources(repos, config.publicBaseUrl ?? null),
    send: channels.send,
    retry: config.notifications.retry,
    groupWindowMs: config.notifications.groupWindowMs,
    timeoutMs: config.notifications.timeoutMs,
    consoleUrl: config.publicBaseUrl ?? null,
    log: app.log
  })
  app.decorate('notifier', notifier)
  app.decorate('notifierTimeoutMs', config.notifications.timeoutMs)

  await app.register(healthModule)
  await app.register(authModule, { config, auth: repos.auth, users: repos.users })
  await app.register(usersModule, { config, users: repos.users })
  await app.register(tasksModule, { tasks: repos.tasks, users: repos.users, events: repos.events, notify })
  await app.register(ingestionModule, { events: repos.events, ingestionHealth: repos.ingestionHealth, settings: repos.settings, notify })
  await app.register(eventsModule, { events: repos.events, tasks: repos.tasks, users: repos.users, notify })
  await app.register(dashboardModule, { stats: repos.stats, recentEvents: (limit) => repos.events.recent(limit) })
  // Expiry: the embedded stand-in has no TTL, so the app sweeps expired events itself (on real
  // DynamoDB, TTL deletes them and the stream consumer, src/lambda-streams.ts, counts them out).
  const expiry = createExpiryService({ events: repos.events, counters: repos.stats, log: app.log })
  await app.register(retentionSweeper, { intervalSeconds: config.retentionSweepSeconds, sweep: opts => expiry.sweep(opts) })
  await app.register(settingsModule, {
    awsAccounts: repos.awsAccounts,
    settings: repos.settings,
    ingestionHealth: repos.ingestionHealth,
    connectionTest: {
      region: config.region,
      ...(config.stsEndpoint ? { endpoint: config.stsEndpoint } : {}),
      ...(config.publicBaseUrl ? { publicBaseUrl: config.publicBaseUrl } : {})
    },
    onboarding: { ...config.onboarding, publicBaseUrl: config.publicBaseUrl, region: config.region }
  })
  await app.register(auditModule, { service: audit })
  await app.register(notificationsModule, {
    channels,
    rules: createRulesService(repos.notificationRules, repos.notifications, notify.invalidate),
    deliveries: repos.notificationDeliveries
  })
  await app.register(notificationPoller, { intervalMs: config.notifications.pollMs, drain: notifier.drain })
  return app
}
