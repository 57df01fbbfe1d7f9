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

/**
 * Who may write a task, and what the write was decided on: the rule, stated once as data.
 * - the service checks it on the task it read (`checkTaskWrite`) before deciding anything;
 * - the repository makes it the write's condition, so the database checks it again at write
 *   time (a concurrent reassignment cannot let a former assignee through);
 * - when the database refuses the write, the same statement explains why on the re-read item
 *   (`explainTaskRefusal`).
 */
export interface TaskWriteRule {
  /**
   * Who must (still) be allowed: null for admins and managers (anyone); otherwise the creator,
   * or for changes (update, status change) the creator or the assignee.
   */
  writer: { creatorOrAssignee: string } | { creator: string } | null
  /** The version the write was decided on (If-Match; the repository pins every write to the version it read). */
  version?: number | undefined
  /** The status a status change was decided from. */
  status?: TaskStatus | undefined
}

/** Update and status change: admins, managers, the creator and the assignee. Delete: admins, managers and the creator. */
export function taskWriteRule (actor: Actor, action: 'modify' | 'delete', decidedOn: Pick<TaskWriteRule, 'version' | 'status'> = {}): TaskWriteRule {
  const writer = isStaff(actor) ? null : action === 'modify' ? { creatorOrAssignee: actor.id } : { creator: actor.id }
  return { writer, ...decidedOn }
}

/** Why a task write is refused: the part of its rule the task fails (checked in this order). */
export type TaskRefusal =
  | { reason: 'not_found' }
  | { reason: 'forbidden', writer: NonNullable<TaskWriteRule['writer']> }
  | { reason: 'stale' }
  | { reason: 'invalid_transition', status: TaskStatus }

/** What of a task its write rule looks at. */
export type TaskWriteState = Pick<Task, 'created_by' | 'assigned_to' | 'version' | 'status' | 'deleted_at'>

/** Whether `writer` may write `task`. */
const allows = (writer: TaskWriteRule['writer'], task: Pick<Task, 'created_by' | 'assigned_to'>): boolean =>
  writer === null ||
  ('creator' in writer
    ? task.created_by === writer.creator
    : task.created_by === writer.creatorOrAssignee || task.assigned_to === writer.creatorOrAssignee)

/**
 * The pre-check: the task (null when absent) if it satisfies every part of `rule`, else the
 * first part it fails (gone, then who, then the version, then the status).
 */
export function checkTaskWrite<T extends TaskWriteState> (rule: TaskWriteRule, task: T | null): { ok: true, value: T } | { ok: false, refusal: TaskRefusal } {
  const refused = (refusal: TaskRefusal) => ({ ok: false as const, refusal })
  if (!task || task.deleted_at) return refused({ reason: 'not_found' })
  if (rule.writer && !allows(rule.writer, task)) return refused({ reason: 'forbidden', writer: rule.writer })
  if (rule.version !== undefined && task.version !== rule.version) return refused({ reason: 'stale' })
  if (rule.status !== undefined && task.status !== rule.status) return refused({ reason: 'invalid_transition', status: task.status })
  return { ok: true, value: task }
}

/**
 * Why the database refused a write conditioned on `rule`, from the item re-read after the
 * refusal: the first part of the rule it fails. A re-read that satisfies every part can only
 * be a race (the item the write saw is not the one read after it): `stale`.
 */
export function explainTaskRefusal (rule: TaskWriteRule, current: TaskWriteState | null): TaskRefusal {
  const checked = checkTaskWrite(rule, current)
  return checked.ok ? { reason: 'stale' } : checked.refusal
}

/** The domain error of a refusal (`next`: the status a refused status change was moving to). */
export function taskRefusalError (refusal: TaskRefusal, next?: TaskStatus): DomainError {
  switch (refusal.reason) {
    case 'not_found': return new DomainError('not_found', 'Task not found.')
    case 'forbidden': return 'creator' in refusal.writer
      ? new DomainError('forbidden', 'Only the creator, managers and admins may delete this task.')
      : new DomainError('forbidden', 'Only the creator, the assignee, managers and admins may change this task.')
    case 'stale': return new DomainError('precondition_failed', 'The task was changed by someone else (ETag mismatch).')
    case 'invalid_transition': return new DomainError('invalid_transition', `The task is now ${refusal.status}${next ? `; it cannot move to ${next} from there` : ''}.`)
  }
}

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
