import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { routes } from '../../../openapi/generated/routes.js'
import { toProfile } from '../../domain/users.js'
import { noContent } from '../../lib/http.js'
import { etagOf, versionFromIfMatch, withEtag } from '../../lib/etag.js'
import type { Config } from '../../config.js'
import type { UsersRepository } from './users.repository.js'
import { createUsersService } from './users.service.js'
import { mapPage } from '../../db/pagination.js'
import { changedFields, type AuditAction } from '../../domain/audit.js'
import type { User } from '../../domain/users.js'

/** The fields of a user the audit trail records changes of (never the password or its hash). */
const AUDITED: Array<keyof User & string> = ['email', 'name', 'role', 'is_active', 'must_change_password']

/** The action a PUT is: a role change, a deactivation or reactivation, else an update. */
function updateAction (before: User, patch: { role?: string | undefined, is_active?: boolean | undefined }): AuditAction {
  if (patch.role !== undefined && patch.role !== before.role) return 'user.role_change'
  if (patch.is_active === false && before.is_active) return 'user.deactivate'
  if (patch.is_active === true && !before.is_active) return 'user.reactivate'
  return 'user.update'
}

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
      const { user, temporaryPassword } = await app.audit.guard(request, { action: 'user.create', target: { type: 'user', id: null } }, async () => {
        const created = await service.create(request.body)
        return { result: created, target: { type: 'user', id: created.user.id }, change: changedFields(null, created.user, AUDITED) }
      })
      reply.code(201).header('etag', etagOf(user.version)).header('location', `/api/users/${user.id}`)
      return { user: toProfile(user), ...(temporaryPassword ? { temporary_password: temporaryPassword } : {}) }
    }
  })

  app.route({
    ...routes.updateUser,
    handler: async (request, reply) => {
      const expected = versionFromIfMatch(request.headers['if-match'])
      const before = await service.get(request.actor!, request.params.id)
      const target = { type: 'user' as const, id: before.id }
      const user = await app.audit.guard(request, { action: updateAction(before, request.body), target }, async () => {
        const after = await service.update(request.actor!, request.params.id, request.body, expected)
        return { result: after, change: changedFields(before, after, AUDITED) }
      })
      return withEtag(reply, user, toProfile)
    }
  })

  app.route({
    ...routes.deactivateUser,
    handler: async (request, reply) => {
      const before = await service.get(request.actor!, request.params.id)
      await app.audit.guard(request, { action: 'user.deactivate', target: { type: 'user', id: before.id } }, async () => {
        await service.deactivate(request.actor!, request.params.id)
        return { result: undefined, change: changedFields(before, { ...before, is_active: false }, AUDITED) }
      })
      return noContent(reply)
    }
  })

  app.route({
    ...routes.resetUserPassword,
    handler: async (request) => {
      const before = await service.get(request.actor!, request.params.id)
      // The temporary password is the response's secret: never part of the record.
      const temporaryPassword = await app.audit.guard(request, { action: 'user.password_reset', target: { type: 'user', id: before.id } }, async () => ({
        result: await service.resetPassword(request.params.id),
        change: changedFields(before, { ...before, must_change_password: true }, AUDITED)
      }))
      return { temporary_password: temporaryPassword }
    }
  })
}

export default usersModule
