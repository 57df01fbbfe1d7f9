import type { StatusHistoryEntry, Task as TaskDto, TaskPriority, TaskStatus } from '../../openapi/generated/schemas.js'
import { DomainError } from './errors.js'
import { canonicalTime } from './time.js'
import type { Actor, UserLookup } from './users.js'

/**
 * A status change as the task holds it. `key` places it in the task's whole history (the
 * history sorts by it; assigned by the repository, never shown).
 */
export interface StatusChange extends StatusHistoryEntry {
  key: string
}

/**
 * The task keeps its most recent status changes (so its stored size has a bound); the whole
 * history is listed page by page (`GET /api/tasks/{id}/history`).
 */
export const RECENT_HISTORY = 20

/** A task as stored, with what never leaves the server (deletion marks). */
export interface Task extends TaskDto {
  /** The most recent status changes, oldest first (at most RECENT_HISTORY once written by this version). */
  status_history: StatusChange[]
  /** When the task first left `open` (for the time-to-first-action statistic). */
  first_action_at: string | null
  deleted_at: string | null
  deleted_by: string | null
}

export type { TaskStatus, TaskPriority, StatusHistoryEntry }

/**
 * Which status may follow which: open → in_progress → closed, open → closed (a false positive
 * or a duplicate is closed directly), in_progress → open, closed → open.
 */
export const TRANSITIONS: Record<TaskStatus, readonly TaskStatus[]> = {
  open: ['in_progress', 'closed'],
  in_progress: ['closed', 'open'],
  closed: ['open']
}

export function assertTransition (from: TaskStatus, to: TaskStatus): void {
  if (!TRANSITIONS[from].includes(to)) {
    throw new DomainError('invalid_transition', `A task cannot move from ${from} to ${to}; allowed from ${from}: ${TRANSITIONS[from].join(', ') || 'none'}.`)
  }
}

/** Effects of a status change on the task's own fields. */
export function statusEffects (task: Pick<Task, 'first_action_at'>, to: TaskStatus, now: string): { closed_at: string | null, first_action_at?: string } {
  return {
    closed_at: to === 'closed' ? now : null,
    ...(task.first_action_at ? {} : { first_action_at: now })
  }
}

const isStaff = (actor: Actor): boolean => actor.role === 'admin' || actor.role === 'manager'

/** Update and status change: admins, managers, the creator and the assignee. */
export function assertCanModifyTask (actor: Actor, task: Pick<Task, 'created_by' | 'assigned_to'>): void {
  if (isStaff(actor) || task.created_by === actor.id || task.assigned_to === actor.id) return
  throw new DomainError('forbidden', 'Only the creator, the assignee, managers and admins may change this task.')
}

/** Delete: admins, managers and the creator. */
export function assertCanDeleteTask (actor: Actor, task: Pick<Task, 'created_by'>): void {
  if (isStaff(actor) || task.created_by === actor.id) return
  throw new DomainError('forbidden', 'Only the creator, managers and admins may delete this task.')
}

/**
 * Who the write itself must still allow (checked by the database at write time, so a
 * concurrent reassignment cannot let a former assignee through): undefined for staff.
 */
export const writeGuard = (actor: Actor, kind: 'modify' | 'delete'): { actorId: string, asAssignee: boolean } | undefined =>
  isStaff(actor) ? undefined : { actorId: actor.id, asAssignee: kind === 'modify' }

/** Priority of a task created from an event of this severity (info → low). */
export const priorityForSeverity = (severity: 'critical' | 'high' | 'medium' | 'low' | 'info'): TaskPriority =>
  severity === 'info' ? 'low' : severity

/** The public view of a status change. */
export const toStatusHistoryDto = ({ key: _, ...entry }: StatusChange): StatusHistoryEntry => entry

/** The status history a task shows: its most recent changes, oldest first. */
export const recentHistory = (t: Pick<Task, 'status_history'>): StatusHistoryEntry[] =>
  t.status_history.slice(-RECENT_HISTORY).map(toStatusHistoryDto)

/** The public view of a task. */
export const toTaskDto = (t: Task): TaskDto => ({
  id: t.id,
  title: t.title,
  description: t.description,
  status: t.status,
  priority: t.priority,
  assigned_to: t.assigned_to,
  created_by: t.created_by,
  event_id: t.event_id,
  due_at: t.due_at,
  closed_at: t.closed_at,
  version: t.version,
  created_at: t.created_at,
  updated_at: t.updated_at
})

/** An assignee must be an existing, active user. */
export async function assertAssignable (users: UserLookup, userId: string | null | undefined): Promise<void> {
  if (!userId) return
  const user = await users.getById(userId)
  if (!user || !user.is_active) {
    throw new DomainError('invalid_assignee', 'assigned_to must be an active user.', { errors: [{ path: '/body/assigned_to', message: 'unknown or inactive user' }] })
  }
}

export interface NewTaskInput {
  title: string
  description?: string | null
  priority?: TaskPriority
  assigned_to?: string | null
  due_at?: string | null
}

/** A new open task created by `actor` (with `eventId` when created from an event). */
export function newTask (id: string, now: string, actor: Actor, input: NewTaskInput, eventId: string | null): Task {
  return {
    id,
    title: input.title,
    description: input.description ?? null,
    status: 'open',
    priority: input.priority ?? 'medium',
    assigned_to: input.assigned_to ?? null,
    created_by: actor.id,
    event_id: eventId,
    due_at: input.due_at ? canonicalTime(input.due_at, '/body/due_at') : null,
    closed_at: null,
    version: 1,
    created_at: now,
    updated_at: now,
    status_history: [],
    first_action_at: null,
    deleted_at: null,
    deleted_by: null
  }
}
