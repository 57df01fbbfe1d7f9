import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'

export interface RateLimitOptions {
  max: number
  windowMs: number
  /** Stricter limit for credential endpoints (login, refresh), per client. */
  authMax: number
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Route-level rate-limit config for credential endpoints. */
    authRateLimit: { max: number, timeWindow: number }
  }
}

/**
 * A global per-client limit on every route (the 404 handler included), and a strict one
 * that credential routes opt into through their route config. Exceeding either is a 429
 * problem with `Retry-After`. The store is in-process: with several instances each one
 * counts for itself.
 */
export default fp<RateLimitOptions>(async (app, opts) => {
  await app.register(rateLimit, {
    global: true,
    max: opts.max,
    timeWindow: opts.windowMs,
    hook: 'onRequest',
    keyGenerator: (request) => request.ip,
    addHeadersOnExceeding: { 'x-ratelimit-limit': true, 'x-ratelimit-remaining': true, 'x-ratelimit-reset': true },
    addHeaders: { 'x-ratelimit-limit': true, 'x-ratelimit-remaining': true, 'x-ratelimit-reset': true, 'retry-after': true },
    errorResponseBuilder: (_request, context) => {
      const err = new Error(`Rate limit exceeded: retry in ${Math.ceil(context.ttl / 1000)} s.`) as Error & { statusCode: number }
      err.statusCode = 429
      return err
    }
  })
  app.decorate('authRateLimit', { max: opts.authMax, timeWindow: opts.windowMs })
}, { name: 'rate-limit', dependencies: ['errors'] })
