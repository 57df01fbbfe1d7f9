import { dictionary } from '@zxcvbn-ts/language-common'
import { DomainError } from './errors.js'

/**
 * Password policy after NIST SP 800-63B: length 12–128, no composition rules,
 * and a block-list of common passwords (and trivial variations of them).
 */
export const PASSWORD_MIN_LENGTH = 12
export const PASSWORD_MAX_LENGTH = 128

const COMMON = new Set(dictionary['passwords-common'].map(p => p.toLowerCase()))

/** Why a password is refused, or null when it is acceptable. */
export function passwordWeakness (password: string, context: { email?: string, name?: string } = {}): string | null {
  const length = [...password].length
  if (length < PASSWORD_MIN_LENGTH) return `must be at least ${PASSWORD_MIN_LENGTH} characters`
  if (length > PASSWORD_MAX_LENGTH) return `must be at most ${PASSWORD_MAX_LENGTH} characters`
  const lower = password.toLowerCase()
  if (new Set(lower).size < 4) return 'is too repetitive'
  // A common password, the same repeated, or with digits and symbols appended, is still common.
  const stem = lower.replace(/[\d\W_]+$/u, '')
  if (COMMON.has(lower) || (stem.length >= 4 && COMMON.has(stem))) return 'is too common'
  for (let size = 1; size <= lower.length / 2; size++) {
    if (lower.length % size === 0 && lower.slice(0, size).repeat(lower.length / size) === lower) {
      if (size < 6 || COMMON.has(lower.slice(0, size))) return 'is too repetitive'
    }
  }
  const email = context.email?.toLowerCase()
  const local = email?.split('@')[0]
  if ((email && lower.includes(email)) || (local && local.length >= 4 && lower.includes(local))) return 'must not contain the e-mail address'
  const name = context.name?.toLowerCase().trim()
  if (name && name.length >= 4 && lower.includes(name)) return 'must not contain the user name'
  return null
}

export function assertPasswordAcceptable (password: string, field: string, context: { email?: string, name?: string } = {}): void {
  const weakness = passwordWeakness(password, context)
  if (weakness) {
    throw new DomainError('password_policy', `The password ${weakness}.`, { errors: [{ path: `/${field}`, message: `password ${weakness}` }] })
  }
}
