import { STATUS_CODES } from 'node:http'
import fp from 'fastify-plugin'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { isDomainError, type ErrorCode, type ErrorDetails } from '../domain/errors.js'
import { pathMethods } from '../../openapi/generated/routes.js'
import { isTransientDbError } from '../db/errors.js'

/** How long a client should wait after a transient database failure. */
const TRANSIENT_RETRY_AFTER_S = 5

/**
 * Every error becomes an RFC 9457 problem (application/problem+json). Domain errors carry a
 * stable code and no HTTP status: this table is the one place that maps codes to statuses.
 */
type ProblemCode = ErrorCode | 'malformed_json' | 'payload_too_large' | 'unsupported_media_type' | 'method_not_allowed' | 'internal_error' | 'service_unavailable'

export const STATUS_BY_CODE: Record<ProblemCode, number> = {
  validation_failed: 400,
  malformed_json: 400,
  invalid_cursor: 400,
  invalid_assignee: 400,
  unsafe_url: 400,
  password_policy: 400,
  invalid_credentials: 401,
  invalid_api_key: 401,
  token_invalid: 401,
  token_expired: 401,
  token_revoked: 401,
  forbidden: 403,
  password_change_required: 403,
  account_mismatch: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  aws_account_exists: 409,
  email_taken: 409,
  last_admin: 409,
  invalid_transition: 409,
  event_has_task: 409,
  precondition_failed: 412,
  payload_too_large: 413,
  unsupported_media_type: 415,
  account_locked: 429,
  rate_limited: 429,
  internal_error: 500,
  service_unavailable: 503
}

export interface Problem {
  type: string
  title: string
  status: number
  code: string
  detail?: string
  instance?: string
  errors?: Array<{ path: string, message: string }>
  task_id?: string
}

/** Fastify's own error codes that are the client's fault. */
const FASTIFY_CODES: Record<string, ProblemCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'malformed_json',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'malformed_json',
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'validation_failed',
  FST_ERR_CTP_INVALID_TYPE: 'unsupported_media_type',
  FST_ERR_VALIDATION: 'validation_failed',
  FST_ERR_BAD_URL: 'not_found',
  FST_ERR_ASYNC_CONSTRAINT: 'validation_failed'
}

declare module 'fastify' {
  interface FastifyReply {
    /** Sends a problem response for `code`. */
    problem: (code: ProblemCode, detail: string, details?: ErrorDetails) => FastifyReply
  }
}

export function sendProblem (request: FastifyRequest, reply: FastifyReply, code: ProblemCode, detail: string, details: ErrorDetails = {}): FastifyReply {
  const status = STATUS_BY_CODE[code]
  // Never longer than the spec allows, whatever the request contained.
  const body: Problem = {
    type: 'about:blank',
    title: STATUS_CODES[status] ?? 'Error',
    status,
    code,
    detail: detail.slice(0, 2000),
    instance: (request.url.split('?')[0] ?? '/').slice(0, 2048)
  }
  if (details.errors?.length) body.errors = details.errors.slice(0, 100).map(e => ({ path: e.path.slice(0, 512), message: e.message.slice(0, 512) }))
  if (details.taskId) body.task_id = details.taskId
  if (details.retryAfterSeconds !== undefined) reply.header('retry-after', String(Math.max(1, Math.ceil(details.retryAfterSeconds))))
  if (status === 401) {
    const error = code === 'invalid_credentials' ? '' : `, error="invalid_token", error_description="${detail.replace(/"/g, "'")}"`
    const missing = code === 'token_invalid' && !request.headers.authorization
    reply.header('www-authenticate', code === 'invalid_api_key'
      ? 'ApiKey realm="ingestion", header="X-Api-Key"'
      : missing ? 'Bearer realm="api"' : `Bearer realm="api"${error}`)
  }
  return reply.code(status).type('application/problem+json').send(body)
}

interface AjvError { instancePath?: string, message?: string, keyword?: string, params?: Record<string, unknown> }

/** The request part names the spec uses in error paths. */
const PART: Record<string, string> = { body: 'body', querystring: 'query', params: 'path', headers: 'headers' }

function validationErrors (err: FastifyError): Array<{ path: string, message: string }> {
  const raw = (err as FastifyError & { validationContext?: string }).validationContext ?? 'body'
  const context = PART[raw] ?? raw
  return ((err.validation ?? []) as AjvError[]).map(v => {
    let path = v.instancePath ?? ''
    const extra = v.params?.additionalProperty ?? v.params?.missingProperty
    if (typeof extra === 'string') path += `/${extra.replace(/~/g, '~0').replace(/\//g, '~1')}`
    return { path: `/${context}${path}`, message: v.message ?? 'is invalid' }
  })
}

export default fp(async (app) => {
  app.decorateReply('problem', function (this: FastifyReply, code: ProblemCode, detail: string, details?: ErrorDetails) {
    return sendProblem(this.request, this, code, detail, details)
  })

  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (isDomainError(err)) return sendProblem(request, reply, err.code, err.message, err.details)
    if (err.validation) {
      return sendProblem(request, reply, 'validation_failed', 'The request is not valid.', { errors: validationErrors(err) })
    }
    const mapped = err.code ? FASTIFY_CODES[err.code] : undefined
    if (mapped) return sendProblem(request, reply, mapped, err.message)
    if (err.statusCode === 429) {
      const retry = Number(reply.getHeader('retry-after'))
      return sendProblem(request, reply, 'rate_limited', 'Too many requests; retry later.', Number.isFinite(retry) ? { retryAfterSeconds: retry } : {})
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      // A client error from a plugin we did not map: keep its status, never leak internals.
      const code = (Object.entries(STATUS_BY_CODE).find(([, s]) => s === err.statusCode)?.[0] ?? 'validation_failed') as ProblemCode
      return sendProblem(request, reply, code, err.message)
    }
    if (isTransientDbError(err)) {
      request.log.warn({ err }, 'transient database failure')
      return sendProblem(request, reply, 'service_unavailable', 'The database is temporarily unavailable; retry later.', { retryAfterSeconds: TRANSIENT_RETRY_AFTER_S })
    }
    request.log.error({ err }, 'unhandled error')
    return sendProblem(request, reply, 'internal_error', 'An unexpected error occurred. It has been logged.')
  })

  app.setNotFoundHandler((request, reply) => sendProblem(request, reply, 'not_found', `No route for ${request.method} ${request.url.split('?')[0]}.`))

  // The spec knows every path; a method it does not list is 405 with `Allow`, not 404.
  const ALL = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH'] as const
  for (const [url, methods] of Object.entries(pathMethods)) {
    const missing = ALL.filter(m => !methods.includes(m))
    const allow = methods.includes('GET') ? [...methods, 'HEAD'] : methods
    if (missing.length === 0) continue
    app.route({
      method: methods.includes('GET') ? [...missing] : [...missing, 'HEAD'],
      url,
      config: { policy: { kind: 'public' }, operationId: 'methodNotAllowed' },
      handler: (request, reply) => {
        reply.header('allow', allow.join(', '))
        return sendProblem(request, reply, 'method_not_allowed', `${request.method} is not supported on this path; use ${allow.join(', ')}.`)
      }
    })
  }
}, { name: 'errors' })
