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

export interface ApiKeyOptions {
  /** The registered AWS accounts (the settings module's repository). */
  accounts: { findByApiKey: (key: string) => Promise<AwsAccount | null> }
  /** Failed API keys (missing, malformed, unknown, disabled) per client address and window. */
  invalidKeyMax: number
  windowMs: number
}

/** Client addresses whose failures are remembered at most (the oldest windows are dropped first). */
const MAX_TRACKED_CLIENTS = 10_000

/**
 * Failed keys per client address, in fixed windows, in this process. Counted apart from the
 * per-key limit of valid deliveries: past the limit a failure is `429` instead of `401`, and a
 * valid key from the same address still gets through (AWS delivers every account's events from
 * shared addresses, so refusing an address would refuse other accounts' alerts).
 */
function createFailureCounter ({ invalidKeyMax, windowMs }: ApiKeyOptions) {
  const windows = new Map<string, { count: number, resetAt: number }>()
  return {
    /** Counts a failure; the seconds to wait when the address is over its limit, else undefined. */
    fail (client: string, now = Date.now()): number | undefined {
      let w = windows.get(client)
      if (!w || w.resetAt <= now) {
        windows.delete(client)
        if (windows.size >= MAX_TRACKED_CLIENTS) {
          for (const [k, v] of windows) if (v.resetAt <= now || windows.size >= MAX_TRACKED_CLIENTS) windows.delete(k)
        }
        w = { count: 0, resetAt: now + windowMs }
        windows.set(client, w)
      }
      w.count++
      return w.count > invalidKeyMax ? Math.ceil((w.resetAt - now) / 1000) : undefined
    }
  }
}

/**
 * Ingestion authenticates with the `X-Api-Key` of a registered AWS account (EventBridge API
 * destinations send a static header). Keys are stored hashed; a rotated, deleted or
 * disabled account's key stops working at once.
 */
export default fp<ApiKeyOptions>(async (app, opts) => {
  const failures = createFailureCounter(opts)
  app.decorateRequest('awsAccount', null)

  async function accountOf (key: unknown): Promise<AwsAccount | string> {
    if (typeof key !== 'string' || !looksLikeApiKey(key)) return 'Send the AWS account\'s ingestion key in X-Api-Key.'
    const account = await opts.accounts.findByApiKey(key)
    if (!account) return 'The API key is not valid.'
    // As the spec says: a disabled account's key is not a valid credential for now.
    if (!account.enabled) return 'Ingestion is disabled for this AWS account.'
    return account
  }

  app.decorate('authenticateApiKey', async (request: FastifyRequest) => {
    const account = await accountOf(request.headers['x-api-key'])
    if (typeof account === 'string') {
      const wait = failures.fail(request.ip)
      if (wait !== undefined) throw new DomainError('rate_limited', 'Too many requests with an invalid API key from this address; retry later.', { retryAfterSeconds: wait })
      throw new DomainError('invalid_api_key', account)
    }
    request.awsAccount = account
    request.log = request.log.child({ aws_account: account.account_id })
  })
}, { name: 'api-key', dependencies: ['dynamo', 'errors'] })
