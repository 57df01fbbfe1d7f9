/**
 * Domain errors carry a stable machine-readable `code` and no HTTP status:
 * src/plugins/errors.ts maps each code to a problem response in one table.
 */
export const ErrorCodes = [
  'validation_failed',
  'invalid_cursor',
  'invalid_credentials',
  'invalid_api_key',
  'token_invalid',
  'token_expired',
  'token_revoked',
  'account_locked',
  'password_policy',
  'forbidden',
  'account_mismatch',
  'password_change_required',
  'not_found',
  'conflict',
  'aws_account_exists',
  'email_taken',
  'last_admin',
  'invalid_transition',
  'invalid_assignee',
  'unsafe_url',
  'event_has_task',
  'precondition_failed',
  'rate_limited',
  /** A dependency the request cannot do without is unavailable (the audit trail of a change: fail closed). */
  'service_unavailable'
] as const

export type ErrorCode = typeof ErrorCodes[number]

export interface ErrorDetails {
  /** Field-level problems, `path` as a JSON pointer into the request. */
  errors?: Array<{ path: string, message: string }>
  /** For rate limits and lockouts: when the caller may try again. */
  retryAfterSeconds?: number
  /** For event_has_task: the task that already exists. */
  taskId?: string
}

export class DomainError extends Error {
  readonly code: ErrorCode
  readonly details: ErrorDetails

  constructor (code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message)
    this.name = 'DomainError'
    this.code = code
    this.details = details
  }
}

/** A time range's start must not come after its end (`from` inclusive, `to` exclusive: equal is empty). */
export function assertRange (from: string | undefined, to: string | undefined, names: [string, string]): void {
  if (from && to && Date.parse(from) > Date.parse(to)) {
    throw new DomainError('validation_failed', `${names[0]} must not be after ${names[1]}.`, { errors: [{ path: `/query/${names[1]}`, message: `must not be before ${names[0]}` }] })
  }
}

export const isDomainError = (err: unknown): err is DomainError => err instanceof DomainError
