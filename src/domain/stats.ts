/**
 * Dashboard counters. Every write that changes what the dashboard counts also applies the
 * difference between the item before and after it as atomic ADDs, so reading the dashboard
 * costs a handful of item reads whatever the number of events and tasks.
 *
 * Counter names: `total`, `active`, `<dimension>:<value>` (e.g. `severity:high`), the task
 * timing sums `first_action:sum`/`first_action:n` and `close:sum`/`close:n` (seconds), and
 * per user `open` (open and in-progress tasks assigned to the user).
 */
import type { MonitoringEvent } from './events.js'
import type { Task } from './tasks.js'
import type { User } from './users.js'

export type Deltas = Record<string, number>

export interface EventFacts { severity: string, source: string, status: string, deleted: boolean }
export interface TaskFacts { status: string, priority: string, assigned_to: string | null, deleted: boolean, created_at: string, first_action_at: string | null, closed_at: string | null }
export interface UserFacts { role: string, is_active: boolean }

/** What the counters look at of an event, a task, a user. */
export const eventFacts = (e: MonitoringEvent): EventFacts => ({ severity: e.severity, source: e.source, status: e.status, deleted: e.deleted_at !== null })
export const taskFacts = (t: Task): TaskFacts => ({
  status: t.status,
  priority: t.priority,
  assigned_to: t.assigned_to,
  deleted: t.deleted_at !== null,
  created_at: t.created_at,
  first_action_at: t.first_action_at,
  closed_at: t.closed_at
})
export const userFacts = (u: User): UserFacts => ({ role: u.role, is_active: u.is_active })

/** A counter's name. Dots would read as nested paths in DynamoDB update expressions. */
export const counterKey = (dimension: string, value: string): string => `${dimension}:${value.replace(/\./g, '_')}`

function add (d: Deltas, key: string, n: number): void {
  d[key] = (d[key] ?? 0) + n
  if (d[key] === 0) delete d[key]
}

/** What one live item contributes, as counter → count. */
const eventCounts = (e: EventFacts | null): Deltas => {
  const d: Deltas = {}
  if (!e || e.deleted) return d
  add(d, 'total', 1)
  add(d, counterKey('severity', e.severity), 1)
  add(d, counterKey('source', e.source), 1)
  add(d, counterKey('status', e.status), 1)
  return d
}

const seconds = (from: string, to: string): number => Math.max(0, Math.round((Date.parse(to) - Date.parse(from)) / 1000))

/**
 * Time to first action: from creation until the task first left `open`. Time to close:
 * from creation until `closed_at`, over the tasks that are closed now (reopening takes a
 * task's contribution back), so that a recount from the items gives the same sums.
 */
const taskCounts = (t: TaskFacts | null): Deltas => {
  const d: Deltas = {}
  if (!t || t.deleted) return d
  add(d, 'total', 1)
  add(d, counterKey('status', t.status), 1)
  add(d, counterKey('priority', t.priority), 1)
  if (t.first_action_at) {
    add(d, 'first_action:sum', seconds(t.created_at, t.first_action_at))
    add(d, 'first_action:n', 1)
  }
  if (t.status === 'closed' && t.closed_at) {
    add(d, 'close:sum', seconds(t.created_at, t.closed_at))
    add(d, 'close:n', 1)
  }
  return d
}

const userCounts = (u: UserFacts | null): Deltas => {
  const d: Deltas = {}
  if (!u) return d
  add(d, 'total', 1)
  if (u.is_active) add(d, 'active', 1)
  add(d, counterKey('role', u.role), 1)
  return d
}

function diff (before: Deltas, after: Deltas): Deltas {
  const d: Deltas = {}
  for (const [k, v] of Object.entries(after)) add(d, k, v)
  for (const [k, v] of Object.entries(before)) add(d, k, -v)
  return d
}

export const eventDeltas = (before: EventFacts | null, after: EventFacts | null): Deltas => diff(eventCounts(before), eventCounts(after))
export const userDeltas = (before: UserFacts | null, after: UserFacts | null): Deltas => diff(userCounts(before), userCounts(after))

/** A task's open work for its assignee: assigned, live and not closed. */
const openFor = (t: TaskFacts | null): string | null => (t && !t.deleted && t.status !== 'closed' ? t.assigned_to : null)

/** Task counters (with the timing sums), and the per-assignee open-task counters. */
export function taskDeltas (before: TaskFacts | null, after: TaskFacts | null): { global: Deltas, perUser: Record<string, Deltas> } {
  const global = diff(taskCounts(before), taskCounts(after))
  const perUser: Record<string, Deltas> = {}
  const was = openFor(before)
  const now = openFor(after)
  if (was !== now) {
    if (was) perUser[was] = { open: -1 }
    if (now) perUser[now] = { open: 1 }
  }
  return { global, perUser }
}

/** What one task contributes to its assignee's open-task counter (for the recount). */
export const openTaskOf = (t: TaskFacts): string | null => openFor(t)

/** What one live item contributes (for the recount). */
export { eventCounts, taskCounts, userCounts }

/** Reads a counter (missing counters are zero, negative ones a repair away). */
export const count = (counters: Record<string, number>, key: string): number => Math.max(0, counters[key] ?? 0)

/** The counters a set of items adds up to (for the recount). */
export function recount<T> (items: Iterable<T>, deltas: (item: T) => Deltas): Deltas {
  const total: Deltas = {}
  for (const item of items) for (const [k, v] of Object.entries(deltas(item))) add(total, k, v)
  return total
}
