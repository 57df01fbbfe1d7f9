import { DomainError } from './errors.js'

/**
 * Timestamps are stored in one canonical form (UTC, milliseconds, 4-digit year) so that they
 * compare as strings. RFC 3339 admits values JavaScript cannot represent that way (a leap
 * second `:60`, offsets pushing 9999-12-31 into year 10000): those are a 400, never stored.
 */
export function canonicalTime (value: string, path: string): string {
  const ms = Date.parse(value)
  const iso = Number.isNaN(ms) ? '' : new Date(ms).toISOString()
  if (!/^\d{4}-/.test(iso)) {
    throw new DomainError('validation_failed', `${path.split('/').pop() ?? 'time'} is not a time this service can store (years 0000–9999, no leap second).`, {
      errors: [{ path, message: 'unsupported date-time' }]
    })
  }
  return iso
}
