import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { looksLikeApiKey, type AwsAccount } from '../domain/aws-accounts.js'
import { DomainError } from '../domain/errors.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The monitored AWS account an ingestion request authenticated as. */
    awsAccount: AwsAccount | null
  }
}

/**
 * Ingestion authenticates with the `X-Api-Key` of a registered AWS account (EventBridge API
 * destinations send a static header). Keys are stored hashed; a rotated, deleted or
 * disabled account's key stops working at once.
 */
export default fp(async (app) => {
  app.decorateRequest('awsAccount', null)
  app.decorate('authenticateApiKey', async (request: FastifyRequest) => {
    const key = request.headers['x-api-key']
    if (typeof key !== 'string' || !looksLikeApiKey(key)) throw new DomainError('invalid_api_key', 'Send the AWS account\'s ingestion key in X-Api-Key.')
    const account = await app.db.repos.awsAccounts.findByApiKey(key)
    if (!account) throw new DomainError('invalid_api_key', 'The API key is not valid.')
    // As the spec says: a disabled account's key is not a valid credential for now.
    if (!account.enabled) throw new DomainError('invalid_api_key', 'Ingestion is disabled for this AWS account.')
    request.awsAccount = account
    request.log = request.log.child({ aws_account: account.account_id })
  })
}, { name: 'api-key', dependencies: ['dynamo', 'errors'] })
