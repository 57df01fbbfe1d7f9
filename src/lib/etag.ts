import type { FastifyReply } from 'fastify'
import { DomainError } from '../domain/errors.js'

/** Strong ETag of a versioned resource. */
export const etagOf = (version: number): string => `"v${version}"`

/** The answer of a versioned resource: its ETag on the reply, `toDto(resource)` as the body. */
export function withEtag<R extends { version: number }, D> (reply: FastifyReply, resource: R, toDto: (resource: R) => D): D {
  reply.header('etag', etagOf(resource.version))
  return toDto(resource)
}

/**
 * The version an `If-Match` header asks for: undefined when absent or `*` (any), a number
 * for one of our ETags. A list of ETags, or one we never issued, can never match: 412.
 */
export function versionFromIfMatch (header: string | undefined): number | undefined {
  if (header === undefined) return undefined
  const value = header.trim()
  if (value === '*') return undefined
  // If-Match uses the strong comparison (RFC 9110): a weak ETag never matches.
  // Exactly the form we issue: no leading zeros (`"v03"` is not `"v3"`).
  const match = /^"v([1-9]\d{0,9})"$/.exec(value)
  if (!match?.[1]) throw new DomainError('precondition_failed', 'If-Match does not match the current ETag of the resource.')
  return Number(match[1])
}
