import { DomainError } from './errors.js'

/** RFC 3339 date-time as the spec's `format: date-time` accepts it (`t`/space separator, `z`, `+hhmm` offsets too). */
const DATE_TIME = /^(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d):(\d\d)(\.\d+)?(?:([Zz])|([+-]\d\d)(?::?(\d\d))?)$/

/**
 * An RFC 3339 date-time as canonical ISO UTC with milliseconds (`new Date(x).toISOString()`), or
 * undefined for anything that is not an RFC 3339 date-time `Date` can represent with a four-digit
 * year. A leap second (`:60`, which RFC 3339 allows and `Date` does not) counts as `:59.999`.
 * The one rule for every time the service reads: query filters, request bodies and envelope times.
 */
export function parseTime (value: unknown): string | undefined {
  const match = typeof value === 'string' ? DATE_TIME.exec(value) : null
  if (match === null) return undefined
  const [, date = '', hoursMinutes, seconds = '', fraction, zulu, offsetHours, offsetMinutes] = match
  // `Date.parse` rolls 2024-02-30 over to March: reject days the month does not have.
  const [year = 0, month = 0, day = 0] = date.split('-').map(Number)
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] ?? 0
  if (day < 1 || day > days) return undefined
  const [hours = 0, minutes = 0] = (hoursMinutes ?? '').split(':').map(Number)
  if (hours > 23 || minutes > 59 || Number(seconds) > 60) return undefined
  const time = seconds === '60' ? `${hoursMinutes}:59.999` : `${hoursMinutes}:${seconds}${fraction ?? ''}`
  const ms = Date.parse(`${date}T${time}${zulu !== undefined ? 'Z' : `${offsetHours}:${offsetMinutes ?? '00'}`}`)
  if (Number.isNaN(ms)) return undefined
  const iso = new Date(ms).toISOString()
  return /^\d{4}-/.test(iso) ? iso : undefined
}

/**
 * Timestamps are stored in one canonical form (UTC, milliseconds, 4-digit year) so that they
 * compare as strings. A leap second (`:60`) is read as `:59.999` (see `parseTime`); values
 * JavaScript cannot represent that way (offsets pushing 9999-12-31 into year 10000) are a 400,
 * never stored.
 */
export function canonicalTime (value: string, path: string): string {
  const iso = parseTime(value)
  if (iso === undefined) {
    throw new DomainError('validation_failed', `${path.split('/').pop() ?? 'time'} is not a time this service can store (RFC 3339, years 0000–9999).`, {
      errors: [{ path, message: 'unsupported date-time' }]
    })
  }
  return iso
}
