import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'

export interface RateLimitOptions {
  max: number
  windowMs: number
  /** Stricter limit for credential endpoints (login, refresh), per client. */
  authMax: number
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** 'credentials': the strict per-client limit of login, refresh and password change. */
    rateLimitClass?: 'credentials'
  }
}

/**
 * A per-client limit on every request (404s, 405s and refused tokens included), and a
 * stricter one for the credential routes (route config `rateLimitClass: 'credentials'`). Exceeding either is a 429
 * problem with `Retry-After`. The store is in-process: with several instances each one
 * counts for itself.
 */
export default fp<RateLimitOptions>(async (app, opts) => {
  await app.register(rateLimit, {
    // Applied below as the first onRequest hook, so that requests refused later (401, 404,
    // 405) are counted too, and an over-limit request costs no database read.
    global: false,
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
  const general = app.rateLimit({ max: opts.max, timeWindow: opts.windowMs })
  const credentials = app.rateLimit({ max: opts.authMax, timeWindow: opts.windowMs })
  app.addHook('onRequest', async function (request, reply) {
    const limiter = request.routeOptions.config.rateLimitClass === 'credentials' ? credentials : general
    await limiter.call(this, request, reply)
  })
}, { name: 'rate-limit', dependencies: ['errors'] })
