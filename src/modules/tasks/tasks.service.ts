import { decodeTime } from 'ulid'
import type { CreateTaskRequest, UpdateTaskRequest, UpdateTaskStatusRequest } from '../../../openapi/generated/schemas.js'
import { assertRange } from '../../domain/errors.js'
import { canonicalTime } from '../../domain/time.js'
import {
  assertAssignable, assertTransition, checkTaskWrite, newTask, recentHistory, statusEffects, taskRefusalError, taskWriteRule,
  type StatusHistoryEntry, type Task, type TaskStatus, type TaskWriteRule
} from '../../domain/tasks.js'
import type { Actor, UserLookup } from '../../domain/users.js'
import { newId } from '../../lib/ids.js'
import type { StatsRecorder } from '../../plugins/stats.js'
import type { Comment, TaskListQuery, TasksRepository, TaskWrite } from './tasks.repository.js'
import { together } from '../../lib/together.js'
import { assignedMarks, marksFor, NOTIFY_NOTHING, taskMarkDetail, type NotifyGate } from '../../domain/notification-delivery.js'

/** Comments shown with a task; the rest through GET /api/tasks/{id}/comments. */
export const FIRST_COMMENTS = 50

/** What tasks need to tell the events module: a deleted task frees its event. */
export interface EventLinks {
  detachTask: (eventId: string, taskId: string) => Promise<void>
}

export function createTasksService (repo: TasksRepository, users: UserLookup, events: EventLinks, stats: Pick<StatsRecorder, 'task'>, notify: NotifyGate = NOTIFY_NOTHING) {
  /**
   * A write decided on the task as read. The actor's write rule (domain/tasks.ts) is checked on
   * the task read (with If-Match, when given, as the version), then made the write's condition
   * (the repository pins it to the version read, so the dashboard counters are computed from
   * exactly what the write replaced); a refused write comes back as the part of the rule the
   * task now fails. Without If-Match a `stale` refusal is not the client's problem: read again
   * and re-decide (the write still names only its fields). Every final refusal becomes its
   * domain error here. `next`: the status a status change moves to (for the error).
   */
  async function decided (actor: Actor, action: 'modify' | 'delete', id: string, ifMatch: number | undefined, attempt: (task: Task, rule: TaskWriteRule) => Promise<TaskWrite>, next?: TaskStatus, readTask: (id: string) => Promise<Task | null> = repo.getById): Promise<Task> {
    for (let round = 0; ; round++) {
      const read = checkTaskWrite(taskWriteRule(actor, action, { version: ifMatch }), await readTask(id))
      const outcome = read.ok ? await attempt(read.value, taskWriteRule(actor, action)) : read
      if (outcome.ok) return outcome.value
      const retry = outcome.refusal.reason === 'stale' && ifMatch === undefined && round < 20
      if (!retry) throw taskRefusalError(outcome.refusal, next)
    }
  }

  const time = (value: string | null | undefined, path: string): string | null | undefined => (value ? canonicalTime(value, path) : value)

  /**
   * A conditional task write with the dashboard counters moved at the same time (one round trip,
   * not two): what they count of the task after the write (`after`: status, priority, assignee,
   * closing and first-action times) is known before it, as the write is pinned to the version
   * read. A refused write, or one that fails with an error (taken as not made: the request
   * answers the error), takes its deltas back, so the counters end exact either way; as with
   * every counter update, a failure or a crash in between is logged and repaired by
   * `npm run recount-stats`.
   */
  async function counted (before: Task, after: Task, write: Promise<TaskWrite>): Promise<TaskWrite> {
    const [written] = await Promise.allSettled([write, stats.task(before, after)])
    if (written.status === 'rejected' || !written.value.ok) await stats.task(after, before)
    if (written.status === 'rejected') throw written.reason
    return written.value
  }

  return {
    async list (actor: Actor, query: TaskListQuery) {
      const q = { ...query }
      if (q.assigned_to === 'me') q.assigned_to = actor.id
      assertRange(q.created_from, q.created_to, ['created_from', 'created_to'])
      assertRange(q.due_from, q.due_to, ['due_from', 'due_to'])
      for (const k of ['created_from', 'created_to', 'due_from', 'due_to'] as const) if (q[k]) q[k] = canonicalTime(q[k], `/query/${k}`)
      return repo.list(q)
    },

    async get (id: string): Promise<{ task: Task, history: StatusHistoryEntry[], comments: Comment[], commentsCursor: string | null }> {
      const { task, comments } = await repo.getLiveWithComments(id, FIRST_COMMENTS)
      return { task, history: recentHistory(task), comments: comments.items, commentsCursor: comments.next_cursor }
    },

    async create (actor: Actor, input: CreateTaskRequest): Promise<Task> {
      await assertAssignable(users, input.assigned_to)
      const id = newId()
      const task = await repo.create(newTask(id, new Date(decodeTime(id)).toISOString(), actor, input, null), await assignedMarks(notify, 1, input.assigned_to, actor.id))
      await stats.task(null, task)
      return task
    },

    /**
     * Partial update: only the named fields are written (no read-modify-write of the item). Two
     * round trips: the new assignee's check runs beside the task's read (its refusal still comes
     * after the task's own: a missing task is a 404 whatever the assignee), and the counters move
     * with the write, as for a status change (`counted`).
     */
    async update (actor: Actor, id: string, patch: UpdateTaskRequest, expectedVersion: number | undefined): Promise<Task> {
      const assignable = patch.assigned_to === undefined
        ? Promise.resolve(null)
        : assertAssignable(users, patch.assigned_to).then(() => null, (err: unknown) => ({ err }))
      const fields = {
        title: patch.title,
        description: patch.description,
        priority: patch.priority,
        assigned_to: patch.assigned_to,
        due_at: time(patch.due_at, '/body/due_at')
      }
      try {
        return await decided(actor, 'modify', id, expectedVersion, async (task, rule) => {
          const refused = await assignable
          if (refused) throw refused.err
          const after: Task = { ...task }
          for (const [k, v] of Object.entries(fields)) if (v !== undefined) (after as unknown as Record<string, unknown>)[k] = v
          const reassigned = patch.assigned_to !== undefined && patch.assigned_to !== task.assigned_to
          const marks = reassigned ? await assignedMarks(notify, task.version + 1, patch.assigned_to, actor.id) : undefined
          return counted(task, after, repo.update(task, fields, rule, marks))
        })
      } finally {
        await assignable
      }
    },

    /**
     * Moves the task along the transition table. The write is conditional on the status and
     * version it was decided from, so of concurrent changes from one status exactly one
     * succeeds and the history (written in the same write) matches the responses.
     */
    changeStatus: (actor: Actor, id: string, input: UpdateTaskStatusRequest, expectedVersion: number | undefined): Promise<Task> =>
      decided(actor, 'modify', id, expectedVersion, async (task, rule) => {
        assertTransition(task.status, input.status)
        const now = new Date().toISOString()
        const effects = statusEffects(task, input.status, now)
        const marks = await marksFor(notify, { kind: 'task.status_changed' }, task.version + 1, taskMarkDetail([task.status, input.status, actor.id]))
        // The counters move with the write (`counted`).
        return counted(task, { ...task, status: input.status, ...effects }, repo.changeStatus(task, { status: input.status, ...effects }, rule,
          { from: task.status, to: input.status, changed_by: actor.id, changed_at: now, comment: input.comment ?? null }, marks))
      }, input.status, repo.getForChange),

    remove: (actor: Actor, id: string): Promise<Task> => decided(actor, 'delete', id, undefined, async (task, rule) => {
      const deleted = await repo.softDelete(task, actor.id, rule)
      if (!deleted.ok) return deleted
      await stats.task(task, deleted.value)
      // The event may get a new task once this one is gone.
      if (deleted.value.event_id) await events.detachTask(deleted.value.event_id, deleted.value.id)
      return deleted
    }),

    async addComment (actor: Actor, taskId: string, body: string): Promise<Comment> {
      const id = newId()
      const added = await repo.addComment({ id, task_id: taskId, author_id: actor.id, body, created_at: new Date(decodeTime(id)).toISOString() }, await marksFor(notify, { kind: 'task.commented' }, id))
      if (!added.ok) throw taskRefusalError(added.refusal)
      return added.value
    },

    /** The task's existence and the page of comments in one round trip; a missing task is a 404 whatever the cursor. */
    async listComments (taskId: string, limit: number, cursor: string | undefined) {
      const [, page] = await together(repo.getLive(taskId), repo.listComments(taskId, limit, cursor))
      return page
    },

    /** Every status change, oldest first (the task shows only its most recent ones). */
    listHistory: (taskId: string, limit: number, cursor: string | undefined) => repo.listHistory(taskId, limit, cursor)
  }
}

export type TasksService = ReturnType<typeof createTasksService>
