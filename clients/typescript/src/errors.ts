import type { components } from './api-types.js'

/** RFC 9457 problem details, as every error response of the API carries them. */
export type Problem = components['schemas']['Problem']

/**
 * The stable machine-readable error codes this client was built with. The API may add codes in a
 * minor version, so `ApiError.code` may also be a string outside this list: treat an unknown code
 * by its `status`.
 */
export type ProblemCode = Problem['code']

/** What openapi-fetch returns from `GET`, `POST`, …: data on success, the parsed body on error. */
export interface ResultLike<T = unknown> {
  data?: T
  error?: unknown
  response: Response
}

function isProblem (body: unknown): body is Problem {
  return typeof body === 'object' && body !== null &&
    typeof (body as { code?: unknown }).code === 'string' &&
    typeof (body as { status?: unknown }).status === 'number'
}

/** Milliseconds a `Retry-After` header value (delta-seconds or HTTP-date) asks to wait, or undefined. */
export function parseRetryAfter (value: string | null | undefined, now = Date.now()): number | undefined {
  if (value == null) return undefined
  const v = value.trim()
  if (/^\d+$/.test(v)) return Number(v) * 1000
  const at = Date.parse(v)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

/**
 * An error answer of the API. `code` is the problem's stable code (branch on it), `problem` the
 * whole problem body, `status` the HTTP status. The request body (which may hold a password) is
 * never kept: only the method and the URL path.
 */
export class ApiError extends Error {
  override readonly name = 'ApiError'
  readonly status: number
  readonly code: ProblemCode | (string & {}) | undefined
  /** The problem details; undefined when the body was not a problem (e.g. a proxy's HTML page). */
  readonly problem: Problem | undefined
  /** The parsed body when it is not a problem, for diagnosis. */
  readonly body: unknown
  readonly method: string | undefined
  readonly path: string | undefined
  /** What `Retry-After` asked for (429, 503), in milliseconds. */
  readonly retryAfterMs: number | undefined
  /** The `X-Request-Id` of the response, to quote when reporting a problem. */
  readonly requestId: string | undefined

  constructor (status: number, body: unknown, init: { method?: string, url?: string, headers?: Headers } = {}) {
    const problem = isProblem(body) ? body : undefined
    let path: string | undefined
    try { path = init.url ? new URL(init.url).pathname : undefined } catch { path = undefined }
    const where = init.method && path ? ` (${init.method} ${path})` : ''
    super(problem
      ? `${status} ${problem.code}: ${problem.detail ?? problem.title}${where}`
      : `HTTP ${status}${where}`)
    this.status = status
    this.problem = problem
    this.code = problem?.code
    this.body = problem ? undefined : body
    this.method = init.method
    this.path = path
    this.retryAfterMs = parseRetryAfter(init.headers?.get('retry-after'))
    this.requestId = init.headers?.get('x-request-id') ?? undefined
  }

  /** The error of an openapi-fetch result (call it only when `!result.response.ok`). */
  static from (result: ResultLike, method?: string): ApiError {
    const { response } = result
    return new ApiError(response.status, result.error, { method, url: response.url, headers: response.headers })
  }
}

/** True when `err` is an ApiError (with this `code`, when given). */
export function isApiError (err: unknown, code?: ProblemCode): err is ApiError {
  return err instanceof ApiError && (code === undefined || err.code === code)
}

/**
 * The data of an openapi-fetch result, or an ApiError thrown for an error status:
 * `const task = await unwrap(api.GET('/api/tasks/{id}', { params: { path: { id } } }))`.
 */
export async function unwrap<T> (result: ResultLike<T> | Promise<ResultLike<T>>): Promise<T> {
  const r = await result
  if (!r.response.ok) throw ApiError.from(r)
  return r.data as T
}
