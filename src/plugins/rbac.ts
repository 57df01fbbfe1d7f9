import fp from 'fastify-plugin'
import type { RouteOptions } from 'fastify'
import { DomainError } from '../domain/errors.js'
import type { RoutePolicy } from '../../openapi/generated/routes.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** From the spec: x-roles, x-public or x-api-key. Every route must declare one. */
    policy?: RoutePolicy
    operationId?: string
  }
  interface FastifyInstance {
    /** Every route registered, with its declared operation (for boot checks and tests). */
    routeCatalog: () => Array<{ method: string, url: string, operationId: string | undefined }>
    /** Authenticates an ingestion request by its API key (provided by the events module). */
    authenticateApiKey?: (request: FastifyRequest) => Promise<void>
  }
}

/** Operations only admins may call: their 403s are audited (docs/audit.md). */
const adminOnly = (roles: readonly string[]): boolean => roles.length === 1 && roles[0] === 'admin'

/** What a user with a temporary password may still do. */
const WHILE_PASSWORD_MUST_CHANGE = new Set(['getMe', 'changePassword', 'logout'])

/**
 * Enforces each route's policy from the spec. Boot fails when a route declares none:
 * nothing is exempted by URL.
 */
export default fp(async (app) => {
  const routes: RouteOptions[] = []
  app.addHook('onRoute', (route) => { routes.push(route) })
  app.decorate('routeCatalog', () => routes.flatMap(r => (Array.isArray(r.method) ? r.method : [r.method])
    .map(method => ({ method: String(method), url: r.url, operationId: r.config?.operationId }))))
  app.addHook('onReady', async () => {
    const missing = routes.filter(r => !r.config?.policy).map(r => `${String(r.method)} ${r.url}`)
    if (missing.length) throw new Error(`Routes without an access policy (x-roles / x-public / x-api-key): ${missing.join(', ')}`)
  })

  app.addHook('onRequest', async (request, reply) => {
    const policy = request.routeOptions.config.policy
    if (!policy) {
      if (request.is404) return
      throw new Error(`route ${request.routeOptions.url} has no access policy`)
    }
    if (policy.kind === 'public') return
    if (policy.kind === 'apiKey') {
      if (!app.authenticateApiKey) throw new Error('API-key authentication is not configured')
      return app.authenticateApiKey(request)
    }
    await app.authenticate(request)
    // The response log line comes from reply.log: let it carry the user id too.
    reply.log = request.log
    const actor = request.actor
    if (!actor || !policy.roles.includes(actor.role)) {
      // A denied attempt at an admin-only operation is audited (rate-bounded by the audit port;
      // best effort: a broken audit store never turns a 403 into a 5xx).
      if (adminOnly(policy.roles) && app.hasDecorator('audit')) await app.audit.denied(request)
      throw new DomainError('forbidden', 'Your role may not perform this operation.')
    }
    if (request.currentUser?.must_change_password && !WHILE_PASSWORD_MUST_CHANGE.has(request.routeOptions.config.operationId ?? '')) {
      throw new DomainError('password_change_required', 'Change your temporary password first (POST /api/auth/change-password).')
    }
  })
}, { name: 'rbac', dependencies: ['auth', 'errors'] })
