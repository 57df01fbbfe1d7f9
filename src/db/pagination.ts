import { createHmac, timingSafeEqual } from 'node:crypto'
import { DomainError } from '../domain/errors.js'

/**
 * Opaque, tamper-proof list cursors. A cursor carries DynamoDB's LastEvaluatedKey and a
 * fingerprint of the query it belongs to, signed with a server key: a cursor that was
 * edited, or that comes from a different query, is a 400 `invalid_cursor`, never a 500.
 */
const SIG_LENGTH = 22 // 16 bytes of HMAC-SHA256, base64url

export interface CursorCodec {
  encode: (key: Record<string, unknown>, query: unknown) => string
  decode: (cursor: string, query: unknown) => Record<string, unknown>
}

const stableStringify = (value: unknown): string => JSON.stringify(value, (_k, v: unknown) =>
  v && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : 1)))
    : v)

export function createCursorCodec (secret: string): CursorCodec {
  const key = createHmac('sha256', secret).update('list-cursor-v1').digest()
  const sign = (payload: string, query: unknown): string =>
    createHmac('sha256', key).update(payload).update('\n').update(stableStringify(query)).digest().subarray(0, 16).toString('base64url')
  const invalid = (): DomainError => new DomainError('invalid_cursor', 'The cursor is malformed, expired or belongs to another query.', {
    errors: [{ path: '/query/cursor', message: 'invalid cursor' }]
  })
  return {
    encode (lastKey, query) {
      const payload = Buffer.from(JSON.stringify(lastKey)).toString('base64url')
      return payload + sign(payload, query)
    },
    decode (cursor, query) {
      if (cursor.length <= SIG_LENGTH) throw invalid()
      const payload = cursor.slice(0, -SIG_LENGTH)
      const given = Buffer.from(cursor.slice(-SIG_LENGTH))
      const expected = Buffer.from(sign(payload, query))
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid()
      try {
        const parsed: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
        if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw invalid()
        return parsed as Record<string, unknown>
      } catch {
        throw invalid()
      }
    }
  }
}

export interface Page<T> { items: T[], next_cursor: string | null }

/** The same page with each item mapped (to its wire shape, usually). */
export const mapPage = <T, U>(page: Page<T>, map: (item: T) => U): Page<U> => ({ items: page.items.map(item => map(item)), next_cursor: page.next_cursor })

/** One round of a query: at most `limit` items read, starting after `startKey`. */
export type QueryRound<T> = (limit: number, startKey: Record<string, unknown> | undefined) =>
Promise<{ items: T[], lastKey: Record<string, unknown> | undefined }>

/**
 * Reads one page. Filter expressions apply after DynamoDB's Limit, so a round can come back
 * short; further rounds fill the page, bounded so that a very selective filter costs a few
 * reads and returns a short page with a cursor rather than walking the whole index.
 */
export async function readPage<T> (codec: CursorCodec, query: unknown, limit: number, cursor: string | undefined, round: QueryRound<T>, maxRounds = 5, bound?: PageBound<T>): Promise<Page<T>> {
  let startKey = cursor ? codec.decode(cursor, query) : undefined
  const items: T[] = []
  let bytes = 0
  for (let i = 0; i < maxRounds && items.length < limit; i++) {
    const res = await round(limit - items.length, startKey)
    startKey = res.lastKey
    for (const item of res.items) {
      const size = bound ? bound.sizeOf(item) : 0
      // A page ends before the item that would take it past the bound (never empty).
      if (bound && items.length > 0 && bytes + size > bound.maxBytes) {
        return { items, next_cursor: codec.encode(bound.keyOf(items[items.length - 1]!), query) }
      }
      items.push(item)
      bytes += size
    }
    if (!startKey) break
  }
  return { items, next_cursor: startKey ? codec.encode(startKey, query) : null }
}

/** A page's size bound: it ends before the item that would take it past `maxBytes`, and continues after `keyOf` the last item. */
export interface PageBound<T> {
  maxBytes: number
  sizeOf: (item: T) => number
  /** The key to continue after `item` (what DynamoDB's LastEvaluatedKey would be). */
  keyOf: (item: T) => Record<string, unknown>
}
