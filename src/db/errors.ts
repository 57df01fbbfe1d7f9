/** True when DynamoDB refused a write because its condition did not hold. */
export function isConditionFailed (err: unknown): boolean {
  const e = err as { name?: string, code?: string } | null
  return e?.name === 'ConditionalCheckFailedException' || e?.code === 'ConditionalCheckFailedException'
}

/** DynamoDB's answers for "too much, or not now": retrying later is expected to work. */
const TRANSIENT_NAMES = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'RequestLimitExceeded',
  'LimitExceededException',
  'InternalServerError',
  'ServiceUnavailable',
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException'
])
/** Network failures of the connection to the database. */
const TRANSIENT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])

/**
 * True when the database (or the network to it) failed in a way that a later retry can get
 * past: throttling, a 5xx, a time-out, a refused or reset connection. Such a failure is a
 * `503` with `Retry-After`, never a 4xx (a client would not retry it) nor a 500 (it is no bug).
 */
export function isTransientDbError (err: unknown, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 4) return false
  const e = err as { name?: string, code?: string, $retryable?: unknown, $metadata?: { httpStatusCode?: number }, errors?: unknown[], cause?: unknown }
  if ((e.name && TRANSIENT_NAMES.has(e.name)) || (e.code && TRANSIENT_CODES.has(e.code)) || e.$retryable) return true
  const status = e.$metadata?.httpStatusCode
  if (status !== undefined && status >= 500) return true
  if (Array.isArray(e.errors) && e.errors.some(inner => isTransientDbError(inner, depth + 1))) return true
  return isTransientDbError(e.cause, depth + 1)
}
