import type { Role, UpdateUserRequest, UserProfile } from '../../openapi/generated/schemas.js'
import { DomainError } from './errors.js'

/** A user as the domain sees it (the profile plus what never leaves the server). */
export interface User {
  id: string
  email: string
  name: string
  role: Role
  is_active: boolean
  must_change_password: boolean
  password_hash: string
  /** Bumped on password change, reset and deactivation: tokens of older sessions stop working. */
  session_version: number
  /** Optimistic-concurrency version (the ETag). */
  version: number
  created_at: string
  updated_at: string
  last_login_at: string | null
  /**
   * When the current password is a temporary one (issued at creation without a password, or
   * by a reset): the moment it stops working (ISO 8601). null/absent: not temporary, or
   * issued before temporary passwords had a lifetime. Cleared by any new password.
   */
  temporary_password_expires_at?: string | null
  /**
   * Orders the writes to the set of active admins: bumped exactly when the user joins or leaves
   * the active admins (and advanced by the set's repair to fence off an abandoned change).
   * Absent on items written before it existed (read as 0).
   */
  admin_epoch?: number
}

/** Who is acting: taken from a verified token and the current user record. */
export interface Actor {
  id: string
  role: Role
}

export const normalizeEmail = (email: string): string => email.trim().toLowerCase()

export function assertCanViewUser (actor: Actor, targetId: string): void {
  if (actor.role === 'user' && actor.id !== targetId) {
    throw new DomainError('forbidden', 'Users may only view their own record.')
  }
}

/**
 * Field-level rules of PUT /api/users/{id}: admins change any field, managers only
 * `name`; nobody changes their own role or deactivates themselves.
 */
export function assertCanUpdateUser (actor: Actor, target: Pick<User, 'id' | 'role' | 'is_active'>, patch: UpdateUserRequest): void {
  const fields = Object.keys(patch) as Array<keyof UpdateUserRequest>
  if (actor.role === 'user') throw new DomainError('forbidden', 'Only admins and managers may update users.')
  if (actor.role === 'manager') {
    const other = fields.filter(f => f !== 'name')
    if (other.length) {
      throw new DomainError('forbidden', 'Managers may only change a user\'s name.', {
        errors: other.map(f => ({ path: `/body/${f}`, message: 'managers may not change this field' }))
      })
    }
    return
  }
  if (actor.id === target.id) {
    if (patch.role !== undefined && patch.role !== target.role) throw new DomainError('forbidden', 'You cannot change your own role.')
    if (patch.is_active === false && target.is_active) throw new DomainError('forbidden', 'You cannot deactivate yourself.')
  }
}

export function assertCanDeactivateUser (actor: Actor, targetId: string): void {
  if (actor.role !== 'admin') throw new DomainError('forbidden', 'Only admins may deactivate users.')
  if (actor.id === targetId) throw new DomainError('forbidden', 'You cannot deactivate yourself.')
}

/** Whether the user counts toward the last-admin guard. */
export const isActiveAdmin = (u: Pick<User, 'role' | 'is_active'>): boolean => u.role === 'admin' && u.is_active

/** Whether an update takes an active admin away (so the last-admin guard must hold). */
export const removesActiveAdmin = (before: Pick<User, 'role' | 'is_active'>, after: Pick<User, 'role' | 'is_active'>): boolean =>
  before.role === 'admin' && before.is_active && !(after.role === 'admin' && after.is_active)

/** Whether an update adds an active admin. */
export const addsActiveAdmin = (before: Pick<User, 'role' | 'is_active'>, after: Pick<User, 'role' | 'is_active'>): boolean =>
  !(before.role === 'admin' && before.is_active) && after.role === 'admin' && after.is_active

/** How long a temporary password works when TEMP_PASSWORD_TTL_HOURS does not say. */
export const DEFAULT_TEMPORARY_PASSWORD_TTL_HOURS = 72

/** When a temporary password issued at `now` stops working. */
export const temporaryPasswordExpiry = (now: number, ttlHours: number): string =>
  new Date(now + Math.round(ttlHours * 3_600_000)).toISOString()

/**
 * Whether the user's password is a temporary one past its lifetime. Login must then answer as
 * for a wrong password (after the same password check), until an admin resets it again.
 */
export const temporaryPasswordExpired = (user: Pick<User, 'temporary_password_expires_at'>, now: number | Date): boolean =>
  user.temporary_password_expires_at != null && Date.parse(user.temporary_password_expires_at) <= +now

/** The public view of a user: never the hash or session data. */
export const toProfile = (u: User): UserProfile => ({
  id: u.id,
  email: u.email,
  name: u.name,
  role: u.role,
  is_active: u.is_active,
  must_change_password: u.must_change_password,
  created_at: u.created_at,
  updated_at: u.updated_at,
  last_login_at: u.last_login_at
})

/** What other modules may ask about users (implemented by the users repository). */
export interface UserLookup {
  getById: (id: string) => Promise<User | null>
}
