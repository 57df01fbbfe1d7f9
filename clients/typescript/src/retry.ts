import { parseRetryAfter } from './errors.js'

/** The fetch the client calls: one Request in, one Response out (globalThis.fetch fits). */
export type FetchLike = (request: Request) => Promise<Response>

export interface RetryOptions {
  /** Attempts in all, the first included (default 3; 1 turns retrying off). */
  maxAttempts?: number
  /** Longest wait between two attempts, in ms (default 30 000): a longer `Retry-After` is cut to it. */
  maxDelayMs?: number
  /** Wait when a 429/503 has no usable `Retry-After`: `baseDelayMs * 2^(attempt-1)` (default 500). */
  baseDelayMs?: number
  /**
   * Retry POST (and PATCH) too: they are not idempotent, so by default they are not retried.
   * `true` for all, or a predicate, e.g. ingestion (deduplicated by envelope id):
   * `request => new URL(request.url).pathname.endsWith('/api/events/ingest')`.
   * One call can also opt in with `{ retryPost: true }` in its options.
   */
  retryPost?: boolean | ((request: Request) => boolean)
}

/** Per-call options the retrying fetch understands (read off the Request openapi-fetch builds). */
export interface RetryCallOptions {
  retryPost?: boolean
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS'])
const RETRYABLE_STATUS = new Set([429, 503])

/** Waits `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep (ms: number, signal?: AbortSignal | null): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) { reject(signal.reason); return }
    const onAbort = (): void => { clearTimeout(timer); reject(signal?.reason) }
    const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** Whether this request may be sent again after a 429/503. */
export function isRetryable (request: Request, options: RetryOptions, call: RetryCallOptions = {}): boolean {
  const method = request.method.toUpperCase()
  if (IDEMPOTENT.has(method)) return true
  if (call.retryPost === true) return true
  const { retryPost } = options
  return typeof retryPost === 'function' ? retryPost(request) : retryPost === true
}

/**
 * Wraps a fetch so that a `429` or `503` answer is retried after the `Retry-After` it names
 * (delta-seconds or HTTP-date; capped by `maxDelayMs`), up to `maxAttempts` attempts in all.
 * Only idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS) are retried, plus POST/PATCH when
 * opted in. No other status is retried. The last answer (a 429/503 too) is returned as is.
 * The wait is cut short when the request's signal aborts.
 */
export function withRetryAfter (fetch: FetchLike, options: RetryOptions = {}): (request: Request, call?: RetryCallOptions) => Promise<Response> {
  const maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? 3))
  const maxDelayMs = Math.max(0, options.maxDelayMs ?? 30_000)
  const baseDelayMs = Math.max(0, options.baseDelayMs ?? 500)
  return async (request, call = {}) => {
    const retryable = maxAttempts > 1 && isRetryable(request, options, call)
    if (!retryable) return fetch(request)
    for (let attempt = 1; ; attempt++) {
      const last = attempt >= maxAttempts
      // A body can be read once: each attempt but the last sends a copy.
      const response = await fetch(last ? request : request.clone())
      if (last || !RETRYABLE_STATUS.has(response.status)) return response
      const asked = parseRetryAfter(response.headers.get('retry-after'))
      const delay = Math.min(asked ?? baseDelayMs * 2 ** (attempt - 1), maxDelayMs)
      await response.body?.cancel().catch(() => {})
      await sleep(delay, request.signal)
    }
  }
}

/**
 * Wraps a fetch so that each attempt is aborted after `timeoutMs` (headers and body), on top of
 * the request's own signal.
 */
export function withTimeout (fetch: FetchLike, timeoutMs: number | undefined): FetchLike {
  if (!timeoutMs) return fetch
  return request => fetch(new Request(request, { signal: AbortSignal.any([request.signal, AbortSignal.timeout(timeoutMs)]) }))
}
