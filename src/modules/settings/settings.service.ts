import type { CreateAwsAccountRequest, UpdateAwsAccountRequest, UpdateMonitoringSettingsRequest } from '../../../openapi/generated/schemas.js'
import { assertRoleInAccount, generateApiKey, type AwsAccount } from '../../domain/aws-accounts.js'
import { DomainError } from '../../domain/errors.js'
import type { MonitoringSettings } from '../../domain/monitoring-settings.js'
import { buildOnboarding, type CfnTemplate, type OnboardingService } from '../../domain/onboarding.js'
import type { Actor } from '../../domain/users.js'
import { newId } from '../../lib/ids.js'
import { together } from '../../lib/together.js'
import type { AwsAccountRefusal, AwsAccountsRepository, AwsAccountWrite } from './aws-accounts.repository.js'
import type { MonitoringSettingsRepository } from './monitoring-settings.repository.js'
import { testConnection, type ConnectionTestOptions } from './connection-test.js'
// The member-account stack's template, synthesised at build time (npm run generate:member): the
// service never runs the CDK. A JSON import, so the Lambda bundle and `tsc` output carry it.
import memberTemplate from './member-template.json' with { type: 'json' }

const MEMBER_TEMPLATE = memberTemplate as unknown as CfnTemplate

/** The domain error of a refused account write (the one place refusals become errors). */
function refusalError (refusal: AwsAccountRefusal): DomainError {
  switch (refusal.reason) {
    case 'not_found': return new DomainError('not_found', 'AWS account not found.')
    case 'number_taken': return new DomainError('aws_account_exists', `AWS account ${refusal.accountId} is already registered.`)
    case 'key_rotated': return new DomainError('conflict', 'The key was rotated concurrently; retry.')
    case 'stale': return new DomainError('precondition_failed', 'The AWS account was changed by someone else (ETag mismatch).')
  }
}

/** What an account write produced, or its refusal as a domain error. */
function written<T> (outcome: AwsAccountWrite<T>): T {
  if (!outcome.ok) throw refusalError(outcome.refusal)
  return outcome.value
}

export function createSettingsService (accounts: AwsAccountsRepository, settings: MonitoringSettingsRepository, connectionTest: ConnectionTestOptions, onboarding: OnboardingService) {
  return {
    listAccounts: (q: { enabled?: boolean, limit: number, cursor?: string }) => accounts.list(q),

    getAccount: (id: string) => accounts.getLive(id),

    /**
     * A read keyed by the account's number (its ingestion health), for a live account: with the
     * number known (the account was read before: it never changes), in the same round trip as
     * the account's read; a missing account is still a 404 whatever the other read said.
     */
    async byAccountNumber<T> (id: string, read: (accountId: string) => Promise<T>): Promise<T> {
      const number = accounts.knownNumber(id)
      if (number === undefined) return read((await accounts.getLive(id)).account_id)
      const [, value] = await together(accounts.getLive(id), read(number))
      return value
    },

    /** Registers an account; its ingestion key is returned here only. */
    async createAccount (input: CreateAwsAccountRequest): Promise<{ account: AwsAccount, apiKey: string }> {
      assertRoleInAccount(input.role_arn, input.account_id)
      const key = generateApiKey()
      const now = new Date().toISOString()
      const account: AwsAccount = {
        id: newId(),
        account_id: input.account_id,
        name: input.name.trim() || input.account_id,
        role_arn: input.role_arn,
        external_id: input.external_id ?? null,
        regions: input.regions ?? [],
        enabled: input.enabled ?? true,
        api_key_prefix: key.prefix,
        api_key_hash: key.hash,
        last_connection_test: null,
        version: 1,
        created_at: now,
        updated_at: now,
        deleted_at: null
      }
      return { account: written(await accounts.create(account)), apiKey: key.key }
    },

    async updateAccount (id: string, patch: UpdateAwsAccountRequest, expectedVersion: number | undefined): Promise<AwsAccount> {
      const current = await accounts.getLive(id)
      if (patch.role_arn) assertRoleInAccount(patch.role_arn, current.account_id)
      return written(await accounts.update(id, {
        name: patch.name?.trim() || undefined,
        role_arn: patch.role_arn,
        external_id: patch.external_id,
        regions: patch.regions,
        enabled: patch.enabled
      }, expectedVersion))
    },

    async deleteAccount (id: string): Promise<void> {
      written(await accounts.softDelete(await accounts.getLive(id)))
    },

    async rotateKey (id: string): Promise<{ account: AwsAccount, apiKey: string }> {
      const current = await accounts.getLive(id)
      const key = generateApiKey()
      return { account: written(await accounts.rotateKey(current, key)), apiKey: key.key }
    },

    /** Runs the connection test (STS, then the EventBridge wiring per region) and keeps the result on the account. */
    async testAccount (id: string) {
      const current = await accounts.getLive(id)
      const result = await testConnection(current, connectionTest)
      written(await accounts.update(id, { last_connection_test: result }))
      return result
    },

    /** The account's onboarding kit: the member template with its values, links, commands, steps. */
    async onboarding (id: string) {
      return buildOnboarding(await accounts.getLive(id), onboarding, MEMBER_TEMPLATE)
    },

    getSettings: () => settings.get(),

    /** Without If-Match a concurrent change of other fields is merged (read again, retry). */
    async updateSettings (actor: Actor, patch: UpdateMonitoringSettingsRequest, expectedVersion: number | undefined): Promise<MonitoringSettings> {
      for (let round = 0; ; round++) {
        const current = await settings.get()
        const { version: _v, ...rest } = current
        const put = await settings.put({ ...rest, ...patch, updated_at: new Date().toISOString(), updated_by: actor.id }, expectedVersion ?? current.version)
        if (put.ok) return put.value
        // The one refusal is `stale`.
        if (expectedVersion !== undefined || round >= 10) throw new DomainError('precondition_failed', 'The settings were changed by someone else (ETag mismatch).')
      }
    }
  }
}
