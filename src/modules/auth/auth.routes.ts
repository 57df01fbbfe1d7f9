import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { routes } from '../../../openapi/generated/routes.js'
import type { Config } from '../../config.js'
import { toProfile } from '../../domain/users.js'
import { noContent } from '../../lib/http.js'
import { etagOf } from '../../lib/etag.js'
import type { AuthRepository } from './auth.repository.js'
import { createAuthService, type AuthUsers, type Session } from './auth.service.js'

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
  // Login, refresh and password change get the stricter per-client rate limit.
  const credentialRoute = { rateLimitClass: 'credentials' as const }

  app.route({
    ...routes.login,
    config: { ...routes.login.config, ...credentialRoute },
    handler: async (request) => tokenResponse(await service.login(request.body.email, request.body.password))
  })

  app.route({
    ...routes.refreshToken,
    config: { ...routes.refreshToken.config, ...credentialRoute },
    handler: async (request) => tokenResponse(await service.refresh(request.body.refresh_token))
  })

  app.route({
    ...routes.logout,
    handler: async (request, reply) => {
      await service.logout(request.user, request.body?.refresh_token)
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
      await service.changePassword(request.currentUser!, request.body.current_password, request.body.new_password)
      return noContent(reply)
    }
  })
}

export default authModule
