import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'

export interface RateLimitOptions {
  max: number
  windowMs: number
  /** Stricter limit for credential endpoints (login, refresh), per client. */
  authMax: number
  /** Ingestion: per API key (every monitored account delivers from AWS's shared addresses). */
  ingestMax: number
  /** Shared store: the counters live in this Redis, so every instance counts together. */
  redisUrl?: string | undefined
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * 'credentials': the strict per-client limit of login, refresh and password change;
     * 'ingest': per API key (the `X-Api-Key` header's hash), not per client address.
     */
    rateLimitClass?: 'credentials' | 'ingest'
  }
}

/** Prefix of every rate-limit key in Redis. */
export const REDIS_NAMESPACE = 'monitoring-rl:'
/** How long start-up waits for Redis before going on without it. */
const REDIS_CONNECT_TIMEOUT_MS = 2000
/** A Redis that accepts the connection but does not answer must not hold requests up. */
const REDIS_COMMAND_TIMEOUT_MS = 1000

/**
 * A per-client limit on every request (404s, 405s and refused tokens included), a
 * stricter one for the credential routes (route config `rateLimitClass: 'credentials'`), and a
 * per-API-key one for ingestion (`rateLimitClass: 'ingest'`: all monitored accounts deliver from
 * AWS's address ranges, so a per-address limit would let one account throttle the others).
 * Exceeding any is a 429 problem with `Retry-After`.
 *
 * Store: without `redisUrl` it is in-process, so with several instances each one counts for
 * itself (the effective limit is the limit times the number of instances). With `redisUrl`
 * (REDIS_URL) the counters live in Redis under `monitoring-rl:` and all instances share them.
 * When Redis is down or slow the API stays up: `skipOnError` lets requests through
 * unlimited (fail open) and the outage is logged once, with its recovery, until it is back.
 */
export default fp<RateLimitOptions>(async (app, opts) => {
  const redis = opts.redisUrl ? await connectRedis(app, opts.redisUrl) : undefined
  await app.register(rateLimit, {
    // Applied below as the first onRequest hook, so that requests refused later (401, 404,
    // 405) are counted too, and an over-limit request costs no database read.
    global: false,
    max: opts.max,
    timeWindow: opts.windowMs,
    hook: 'onRequest',
    keyGenerator: (request) => request.ip,
    ...(redis ? { redis, nameSpace: REDIS_NAMESPACE, skipOnError: true } : {}),
    addHeadersOnExceeding: { 'x-ratelimit-limit': true, 'x-ratelimit-remaining': true, 'x-ratelimit-reset': true },
    addHeaders: { 'x-ratelimit-limit': true, 'x-ratelimit-remaining': true, 'x-ratelimit-reset': true, 'retry-after': true },
    errorResponseBuilder: (_request, context) => {
      const err = new Error(`Rate limit exceeded: retry in ${Math.ceil(context.ttl / 1000)} s.`) as Error & { statusCode: number }
      err.statusCode = 429
      return err
    }
  })
  // Each class counts under its own key: the Redis store gives both limiters the same key
  // prefix (the in-process store gives each its own map), so the class is part of the key.
  const general = app.rateLimit({ max: opts.max, timeWindow: opts.windowMs, keyGenerator: (request) => `general:${request.ip}` })
  const credentials = app.rateLimit({ max: opts.authMax, timeWindow: opts.windowMs, keyGenerator: (request) => `credentials:${request.ip}` })
  // A key is counted by its hash (never stored or logged as such); no key counts per client.
  const ingest = app.rateLimit({
    max: opts.ingestMax,
    timeWindow: opts.windowMs,
    keyGenerator: (request) => {
      const key = request.headers['x-api-key']
      return typeof key === 'string' ? `ingest:${createHash('sha256').update(key).digest('base64url')}` : `ingest-nokey:${request.ip}`
    }
  })
  const limiters = { credentials, ingest }
  app.addHook('onRequest', async function (request, reply) {
    const cls = request.routeOptions.config.rateLimitClass
    await (cls ? limiters[cls] : general).call(this, request, reply)
  })
}, { name: 'rate-limit', dependencies: ['errors'] })

/**
 * Connects to the shared store. Start-up waits up to 2 s for it and goes on without it
 * (logged) rather than refusing to serve; ioredis keeps reconnecting in the background.
 * The URL is never logged (it may carry a password). The client is loaded only here: a
 * server without REDIS_URL never loads ioredis (~60 ms of start-up).
 */
async function connectRedis (app: FastifyInstance, url: string): Promise<Redis> {
  const { Redis } = await import('ioredis')
  const redis = new Redis(url, {
    connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 1,
    // Fail fast while disconnected instead of queueing every request's counter update.
    enableOfflineQueue: false
  })
  let available = true
  redis.on('error', (err: Error) => {
    if (!available) return
    available = false
    app.log.error({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code } }, 'rate-limit store (Redis) unavailable: requests are not rate limited until it is back')
  })
  redis.on('ready', () => {
    if (!available) app.log.info('rate-limit store (Redis) available again')
    available = true
  })
  app.addHook('onClose', async () => {
    if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect())
    else redis.disconnect()
  })
  if (redis.status !== 'ready') {
    await new Promise<void>(resolve => {
      const done = () => {
        clearTimeout(timer)
        redis.off('ready', done)
        resolve()
      }
      const timer = setTimeout(done, REDIS_CONNECT_TIMEOUT_MS)
      redis.once('ready', done)
    })
  }
  return redis
}
