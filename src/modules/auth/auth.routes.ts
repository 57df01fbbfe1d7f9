import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { routes } from '../../../openapi/generated/routes.js'
import type { Config } from '../../config.js'
import { normalizeEmail, toProfile } from '../../domain/users.js'
import { noContent } from '../../lib/http.js'
import { etagOf } from '../../lib/etag.js'
import type { AuthRepository } from './auth.repository.js'
import { createAuthService, type AuthObservation, type AuthUsers, type Session } from './auth.service.js'
import { isDomainError } from '../../domain/errors.js'
import type { FastifyRequest } from 'fastify'

const tokenResponse = (s: Session) => ({
  access_token: s.accessToken,
  refresh_token: s.refreshToken,
  token_type: 'Bearer' as const,
  expires_in: s.expiresIn,
  refresh_expires_in: s.refreshExpiresIn,
  user: toProfile(s.user)
})

/** The module's repository and the users module's port (given by app.ts). */
export interface AuthModuleOptions {
  config: Config
  auth: AuthRepository
  users: AuthUsers
}

const authModule: FastifyPluginAsyncTypebox<AuthModuleOptions> = async (app, { config, auth, users }) => {
  const service = createAuthService({ auth, users }, app.passwords, {
    refreshTtlSeconds: config.jwt.refreshTtlSeconds,
    familyMaxSeconds: config.jwt.familyMaxSeconds,
    lockout: config.lockout,
    issueAccessToken: app.issueAccessToken
  })
  // Authentication events are audited best effort (docs/audit.md): a broken audit store must
  // not turn a flood of bad logins into an outage. The password change fails closed.
  // The service reports lockouts and token reuse as they happen; their records are written
  // before the response (`settle`), which they never fail (`note` is best effort).
  const observer = (request: FastifyRequest) => {
    const notes: Array<Promise<void>> = []
    const observe = (o: AuthObservation): void => {
      notes.push(o.kind === 'login'
        ? app.audit.note(request, { action: 'auth.login', actor: { type: 'user', id: o.user.id, role: o.user.role, label: o.user.email }, target: { type: 'user', id: o.user.id } })
        : o.kind === 'lockout'
          ? app.audit.note(request, { action: 'auth.lockout', outcome: 'failure', actor: { type: 'anonymous', id: null, role: null, label: o.email }, reason: 'too_many_failures' })
          : app.audit.note(request, { action: 'auth.refresh_reuse', outcome: 'failure', actor: { type: 'anonymous', id: null, role: null, label: null }, target: o.userId ? { type: 'user', id: o.userId } : null, reason: 'refresh_token_reuse' }))
    }
    return { observe, settle: async () => { await Promise.all(notes) } }
  }

  // Login, refresh and password change get the stricter per-client rate limit.
  const credentialRoute = { rateLimitClass: 'credentials' as const }

  app.route({
    ...routes.login,
    config: { ...routes.login.config, ...credentialRoute },
    handler: async (request) => {
      let session: Session
      const { observe, settle } = observer(request)
      try {
        session = await service.login(request.body.email, request.body.password, observe)
      } catch (err) {
        if (isDomainError(err) && (err.code === 'invalid_credentials' || err.code === 'account_locked')) {
          // Who tried: the e-mail as given (normalised), never the password.
          await app.audit.note(request, { action: 'auth.login_failed', outcome: 'failure', actor: { type: 'anonymous', id: null, role: null, label: normalizeEmail(request.body.email) }, reason: err.code })
        }
        throw err
      } finally {
        await settle()
      }
      return tokenResponse(session)
    }
  })

  app.route({
    ...routes.refreshToken,
    config: { ...routes.refreshToken.config, ...credentialRoute },
    handler: async (request) => {
      const { observe, settle } = observer(request)
      try {
        return tokenResponse(await service.refresh(request.body.refresh_token, observe))
      } finally {
        await settle()
      }
    }
  })

  app.route({
    ...routes.logout,
    handler: async (request, reply) => {
      await service.logout(request.user, request.body?.refresh_token)
      await app.audit.note(request, { action: 'auth.logout', target: { type: 'user', id: request.user.sub } })
      return noContent(reply)
    }
  })

  app.route({
    ...routes.getMe,
    handler: async (request, reply) => {
      const user = request.currentUser!
      reply.header('etag', etagOf(user.version))
      return toProfile(user)
    }
  })

  app.route({
    ...routes.changePassword,
    config: { ...routes.changePassword.config, ...credentialRoute },
    handler: async (request, reply) => {
      const user = request.currentUser!
      const { observe, settle } = observer(request)
      try {
        await app.audit.guard(request, { action: 'auth.password_change', target: { type: 'user', id: user.id } }, async () => {
          await service.changePassword(user, request.body.current_password, request.body.new_password, observe)
          return { result: undefined, change: user.must_change_password ? { must_change_password: { from: true, to: false } } : null }
        })
      } finally {
        await settle()
      }
      return noContent(reply)
    }
  })
}

export default authModule
