import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { routes } from '../../../openapi/generated/routes.js'
import { toProfile } from '../../domain/users.js'
import { noContent } from '../../lib/http.js'
import { etagOf, versionFromIfMatch, withEtag } from '../../lib/etag.js'
import type { Config } from '../../config.js'
import type { UsersRepository } from './users.repository.js'
import { createUsersService } from './users.service.js'
import { mapPage } from '../../db/pagination.js'

/** `config`: TEMP_PASSWORD_TTL_HOURS (without it, the default lifetime). */
const usersModule: FastifyPluginAsyncTypebox<{ users: UsersRepository, config?: Pick<Config, 'temporaryPasswordTtlHours'> }> = async (app, opts) => {
  const service = createUsersService(opts.users, app.passwords, app.stats, {
    temporaryPasswordTtlHours: opts.config?.temporaryPasswordTtlHours
  })

  app.route({
    ...routes.listUsers,
    handler: async (request) => {
      const { limit = 20, cursor, role, is_active: isActive, search } = request.query
      const page = await service.list({ limit, cursor, role, is_active: isActive, search })
      return mapPage(page, toProfile)
    }
  })

  app.route({
    ...routes.getUser,
    handler: async (request, reply) => withEtag(reply, await service.get(request.actor!, request.params.id), toProfile)
  })

  app.route({
    ...routes.createUser,
    handler: async (request, reply) => {
      const { user, temporaryPassword } = await service.create(request.body)
      reply.code(201).header('etag', etagOf(user.version)).header('location', `/api/users/${user.id}`)
      return { user: toProfile(user), ...(temporaryPassword ? { temporary_password: temporaryPassword } : {}) }
    }
  })

  app.route({
    ...routes.updateUser,
    handler: async (request, reply) => {
      const expected = versionFromIfMatch(request.headers['if-match'])
      return withEtag(reply, await service.update(request.actor!, request.params.id, request.body, expected), toProfile)
    }
  })

  app.route({
    ...routes.deactivateUser,
    handler: async (request, reply) => {
      await service.deactivate(request.actor!, request.params.id)
      return noContent(reply)
    }
  })

  app.route({
    ...routes.resetUserPassword,
    handler: async (request) => ({ temporary_password: await service.resetPassword(request.params.id) })
  })
}

export default usersModule
