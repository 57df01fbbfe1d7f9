import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { routes } from '../../../openapi/generated/routes.js'
import { toAwsAccountDto } from '../../domain/aws-accounts.js'
import { etagOf, versionFromIfMatch, withEtag } from '../../lib/etag.js'
import { noContent } from '../../lib/http.js'
import type { ConnectionTestOptions } from './connection-test.js'
import type { IngestionHealth } from '../../../openapi/generated/schemas.js'
import type { OnboardingService } from '../../domain/onboarding.js'
import type { AwsAccountsRepository } from './aws-accounts.repository.js'
import type { MonitoringSettingsRepository } from './monitoring-settings.repository.js'
import { createSettingsService } from './settings.service.js'
import { mapPage } from '../../db/pagination.js'
import { changedFields } from '../../domain/audit.js'
import type { AwsAccount as AwsAccountDto, MonitoringSettings } from '../../../openapi/generated/schemas.js'

/** What the audit trail records of an AWS account's changes (never its key, hash or external id). */
const ACCOUNT_FIELDS: Array<keyof AwsAccountDto & string> = ['account_id', 'name', 'role_arn', 'regions', 'enabled']
const SETTINGS_FIELDS: Array<keyof MonitoringSettings & string> = ['enabled_sources', 'min_severity', 'cloudwatch_default_severity', 'health_category_severities', 'retention_days']
const accountTarget = (id: string | null) => ({ type: 'aws_account' as const, id })

/** The module's repositories, the options of the connection test (STS, EventBridge, the public URL) and of onboarding (what the member stack gets), and the events module's ingestion health. */
export interface SettingsModuleOptions {
  awsAccounts: AwsAccountsRepository
  settings: MonitoringSettingsRepository
  ingestionHealth: { read: (accountId: string, now: number) => Promise<IngestionHealth> }
  connectionTest: ConnectionTestOptions
  onboarding: OnboardingService
}

/** Configuration: the monitored AWS accounts and the monitoring settings. */
const settingsModule: FastifyPluginAsyncTypebox<SettingsModuleOptions> = async (app, opts) => {
  const service = createSettingsService(opts.awsAccounts, opts.settings, opts.connectionTest, opts.onboarding)

  app.route({
    ...routes.listAwsAccounts,
    handler: async (request) => {
      const { limit = 20, cursor, enabled } = request.query
      const page = await service.listAccounts({ limit, cursor, enabled })
      return mapPage(page, toAwsAccountDto)
    }
  })

  app.route({
    ...routes.createAwsAccount,
    handler: async (request, reply) => {
      const { account, apiKey } = await app.audit.guard(request, { action: 'aws_account.create', target: accountTarget(null) }, async () => {
        const created = await service.createAccount(request.body)
        return { result: created, target: accountTarget(created.account.id), change: changedFields(null, toAwsAccountDto(created.account), ACCOUNT_FIELDS) }
      })
      reply.code(201).header('etag', etagOf(account.version)).header('location', `/api/config/aws-accounts/${account.id}`)
      return { account: toAwsAccountDto(account), api_key: apiKey }
    }
  })

  app.route({
    ...routes.getAwsAccount,
    handler: async (request, reply) => {
      const account = await service.getAccount(request.params.id)
      return withEtag(reply, account, toAwsAccountDto)
    }
  })

  app.route({
    ...routes.updateAwsAccount,
    handler: async (request, reply) => {
      const before = toAwsAccountDto(await service.getAccount(request.params.id))
      const account = await app.audit.guard(request, { action: 'aws_account.update', target: accountTarget(before.id) }, async () => {
        const after = await service.updateAccount(request.params.id, request.body, versionFromIfMatch(request.headers['if-match']))
        return { result: after, change: changedFields(before, toAwsAccountDto(after), ACCOUNT_FIELDS) }
      })
      return withEtag(reply, account, toAwsAccountDto)
    }
  })

  app.route({
    ...routes.deleteAwsAccount,
    handler: async (request, reply) => {
      const before = toAwsAccountDto(await service.getAccount(request.params.id))
      await app.audit.guard(request, { action: 'aws_account.delete', target: accountTarget(before.id) }, async () => {
        await service.deleteAccount(request.params.id)
        return { result: undefined, change: changedFields(before, null, ACCOUNT_FIELDS) }
      })
      return noContent(reply)
    }
  })

  app.route({
    ...routes.rotateAwsAccountKey,
    handler: async (request) => {
      // The new key is the response's secret: the record says that it was rotated, not to what.
      const { account, apiKey } = await app.audit.guard(request, { action: 'aws_account.rotate_key', target: accountTarget(request.params.id) }, async () => ({
        result: await service.rotateKey(request.params.id)
      }))
      return { api_key: apiKey, api_key_prefix: account.api_key_prefix }
    }
  })

  app.route({
    ...routes.getAwsAccountIngestionHealth,
    handler: async (request) => {
      const now = Date.now()
      return service.byAccountNumber(request.params.id, (accountId) => opts.ingestionHealth.read(accountId, now))
    }
  })

  app.route({
    ...routes.getAwsAccountOnboarding,
    handler: async (request) => service.onboarding(request.params.id)
  })

  app.route({
    ...routes.testAwsAccountConnection,
    handler: async (request) => {
      const result = await service.testAccount(request.params.id)
      // A test changes nothing but the last result: recorded best effort, with its outcome.
      await app.audit.note(request, { action: 'aws_account.test_connection', outcome: result.ok ? 'success' : 'failure', target: accountTarget(request.params.id), reason: result.ok ? null : 'connection_failed' })
      return result
    }
  })

  app.route({
    ...routes.getMonitoringSettings,
    handler: async (_request, reply) => {
      const settings = await service.getSettings()
      reply.header('etag', etagOf(settings.version))
      return settings
    }
  })

  app.route({
    ...routes.updateMonitoringSettings,
    handler: async (request, reply) => {
      const before = await service.getSettings()
      const settings = await app.audit.guard(request, { action: 'monitoring_settings.update', target: { type: 'monitoring_settings', id: 'monitoring' } }, async () => {
        const after = await service.updateSettings(request.actor!, request.body, versionFromIfMatch(request.headers['if-match']))
        return { result: after, change: changedFields(before, after, SETTINGS_FIELDS) }
      })
      reply.header('etag', etagOf(settings.version))
      return settings
    }
  })
}

export default settingsModule
