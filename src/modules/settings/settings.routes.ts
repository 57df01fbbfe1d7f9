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
      const { account, apiKey } = await service.createAccount(request.body)
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
      const account = await service.updateAccount(request.params.id, request.body, versionFromIfMatch(request.headers['if-match']))
      return withEtag(reply, account, toAwsAccountDto)
    }
  })

  app.route({
    ...routes.deleteAwsAccount,
    handler: async (request, reply) => {
      await service.deleteAccount(request.params.id)
      return noContent(reply)
    }
  })

  app.route({
    ...routes.rotateAwsAccountKey,
    handler: async (request) => {
      const { account, apiKey } = await service.rotateKey(request.params.id)
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
    handler: async (request) => service.testAccount(request.params.id)
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
      const settings = await service.updateSettings(request.actor!, request.body, versionFromIfMatch(request.headers['if-match']))
      reply.header('etag', etagOf(settings.version))
      return settings
    }
  })
}

export default settingsModule
