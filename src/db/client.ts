import { DynamoDB } from '@aws-sdk/client-dynamodb'
import { NodeHttpHandler } from '@smithy/node-http-handler'

/**
 * One DynamoDB client per process. `endpoint` is a URL (embedded stand-in or any
 * DynamoDB-compatible endpoint) or 'aws' for real DynamoDB via the standard credential chain.
 * Short timeouts: a database that does not answer is an error, not a hung request.
 */
export function createDynamoClient (endpoint: string, region: string): DynamoDB {
  const local = endpoint !== 'aws'
  return new DynamoDB({
    region,
    maxAttempts: 3,
    requestHandler: new NodeHttpHandler({ connectionTimeout: 2000, requestTimeout: 5000 }),
    ...(local
      ? { endpoint, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }
      : {})
  })
}
