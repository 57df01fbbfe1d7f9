import { decodeTime } from 'ulid'
import type { CreateTaskRequest, UpdateTaskRequest, UpdateTaskStatusRequest } from '../../../openapi/generated/schemas.js'
import { assertRange, DomainError } from '../../domain/errors.js'
import { canonicalTime } from '../../domain/time.js'
import {
  assertAssignable, assertCanDeleteTask, assertCanModifyTask, assertTransition, newTask, recentHistory, statusEffects, writeGuard,
  type StatusHistoryEntry, type Task
} from '../../domain/tasks.js'
import type { Actor, UserLookup } from '../../domain/users.js'
import { newId } from '../../lib/ids.js'
import type { StatsRecorder } from '../../plugins/stats.js'
import type { Comment, TaskListQuery, TasksRepository } from './tasks.repository.js'

/** Comments shown with a task; the rest through GET /api/tasks/{id}/comments. */
export const FIRST_COMMENTS = 50

/** What tasks need to tell the events module: a deleted task frees its event. */
export interface EventLinks {
  detachTask: (eventId: string, taskId: string) => Promise<void>
}

export function createTasksService (repo: TasksRepository, users: UserLookup, events: EventLinks, stats: Pick<StatsRecorder, 'task'>) {
  /** The live task, if the actor may change it and If-Match (when given) still matches. */
  async function loadForChange (actor: Actor, id: string, expectedVersion: number | undefined): Promise<Task> {
    const task = await repo.getLive(id)
    assertCanModifyTask(actor, task)
    if (expectedVersion !== undefined && expectedVersion !== task.version) {
      throw new DomainError('precondition_failed', 'The task was changed by someone else (ETag mismatch).')
    }
    return task
  }

  /**
   * Every write is pinned to the version it was decided on, so the dashboard counters are
   * computed from exactly what it replaced. Without If-Match a concurrent change is not the
   * client's problem: read again and re-decide (the write still names only its fields).
   */
  async function pinned<T> (expectedVersion: number | undefined, attempt: () => Promise<T>): Promise<T> {
    for (let round = 0; ; round++) {
      try {
        return await attempt()
      } catch (err) {
        const retry = expectedVersion === undefined && err instanceof DomainError && err.code === 'precondition_failed' && round < 20
        if (!retry) throw err
      }
    }
  }

  const time = (value: string | null | undefined, path: string): string | null | undefined => (value ? canonicalTime(value, path) : value)

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
      const task = await repo.create(newTask(id, new Date(decodeTime(id)).toISOString(), actor, input, null))
      await stats.task(null, task)
      return task
    },

    /** Partial update: only the named fields are written (no read-modify-write of the item). */
    update: (actor: Actor, id: string, patch: UpdateTaskRequest, expectedVersion: number | undefined): Promise<Task> => pinned(expectedVersion, async () => {
      const task = await loadForChange(actor, id, expectedVersion)
      if (patch.assigned_to !== undefined) await assertAssignable(users, patch.assigned_to)
      const updated = await repo.update(task, {
        title: patch.title,
        description: patch.description,
        priority: patch.priority,
        assigned_to: patch.assigned_to,
        due_at: time(patch.due_at, '/body/due_at')
      }, { expectedVersion: task.version, actor: writeGuard(actor, 'modify') })
      await stats.task(task, updated)
      return updated
    }),

    /**
     * Moves the task along the transition table. The write is conditional on the status and
     * version it was decided from, so of concurrent changes from one status exactly one
     * succeeds and the history (written in the same write) matches the responses.
     */
    changeStatus: (actor: Actor, id: string, input: UpdateTaskStatusRequest, expectedVersion: number | undefined): Promise<Task> => pinned(expectedVersion, async () => {
      const task = await loadForChange(actor, id, expectedVersion)
      assertTransition(task.status, input.status)
      const now = new Date().toISOString()
      const effects = statusEffects(task, input.status, now)
      const updated = await repo.changeStatus(task, { status: input.status, ...effects }, {
        expectedVersion: task.version,
        expectedStatus: task.status,
        actor: writeGuard(actor, 'modify')
      }, { from: task.status, to: input.status, changed_by: actor.id, changed_at: now, comment: input.comment ?? null })
      await stats.task(task, updated)
      return updated
    }),

    remove: (actor: Actor, id: string): Promise<Task> => pinned(undefined, async () => {
      const task = await repo.getLive(id)
      assertCanDeleteTask(actor, task)
      const deleted = await repo.softDelete(task, actor.id, { expectedVersion: task.version, actor: writeGuard(actor, 'delete') })
      await stats.task(task, deleted)
      // The event may get a new task once this one is gone.
      if (deleted.event_id) await events.detachTask(deleted.event_id, deleted.id)
      return deleted
    }),

    async addComment (actor: Actor, taskId: string, body: string): Promise<Comment> {
      const id = newId()
      return repo.addComment({ id, task_id: taskId, author_id: actor.id, body, created_at: new Date(decodeTime(id)).toISOString() })
    },

    async listComments (taskId: string, limit: number, cursor: string | undefined) {
      await repo.getLive(taskId)
      return repo.listComments(taskId, limit, cursor)
    },

    /** Every status change, oldest first (the task shows only its most recent ones). */
    listHistory: (taskId: string, limit: number, cursor: string | undefined) => repo.listHistory(taskId, limit, cursor)
  }
}

export type TasksService = ReturnType<typeof createTasksService>
