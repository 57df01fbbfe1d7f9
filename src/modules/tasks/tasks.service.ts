import { decodeTime } from 'ulid'
import type { CreateTaskRequest, UpdateTaskRequest, UpdateTaskStatusRequest } from '../../../openapi/generated/schemas.js'
import { DomainError } from '../../domain/errors.js'
import {
  assertCanDeleteTask, assertCanModifyTask, assertTransition, canonicalTime, statusEffects, writeGuard, type Task
} from '../../domain/tasks.js'
import type { Actor, UserLookup } from '../../domain/users.js'
import { newId } from '../../lib/ids.js'
import type { Comment, TaskListQuery, TasksRepository } from './tasks.repository.js'

/** Comments shown with a task; the rest through GET /api/tasks/{id}/comments. */
export const FIRST_COMMENTS = 50
/** Status history entries shown with a task (the most recent ones). */
export const HISTORY_SHOWN = 100

export function createTasksService (repo: TasksRepository, users: UserLookup) {
  /** An assignee must be an existing, active user. */
  async function assertAssignable (userId: string | null | undefined): Promise<void> {
    if (!userId) return
    const user = await users.getById(userId)
    if (!user || !user.is_active) {
      throw new DomainError('invalid_assignee', 'assigned_to must be an active user.', { errors: [{ path: '/body/assigned_to', message: 'unknown or inactive user' }] })
    }
  }

  const time = (value: string | null | undefined): string | null | undefined => (value ? canonicalTime(value) : value)

  return {
    async list (actor: Actor, query: TaskListQuery) {
      const q = { ...query }
      if (q.assigned_to === 'me') q.assigned_to = actor.id
      for (const k of ['created_from', 'created_to', 'due_from', 'due_to'] as const) if (q[k]) q[k] = canonicalTime(q[k])
      return repo.list(q)
    },

    async get (id: string): Promise<{ task: Task, comments: Comment[], commentsCursor: string | null }> {
      const task = await repo.getLive(id)
      const page = await repo.listComments(id, FIRST_COMMENTS)
      return { task: { ...task, status_history: task.status_history.slice(-HISTORY_SHOWN) }, comments: page.items, commentsCursor: page.next_cursor }
    },

    /** Creates an open task by the caller; `eventId` links it to an event (create-task). */
    async create (actor: Actor, input: CreateTaskRequest, eventId: string | null = null): Promise<Task> {
      await assertAssignable(input.assigned_to)
      const id = newId()
      const now = new Date(decodeTime(id)).toISOString()
      const task: Task = {
        id,
        title: input.title,
        description: input.description ?? null,
        status: 'open',
        priority: input.priority ?? 'medium',
        assigned_to: input.assigned_to ?? null,
        created_by: actor.id,
        event_id: eventId,
        due_at: time(input.due_at) ?? null,
        closed_at: null,
        version: 1,
        created_at: now,
        updated_at: now,
        status_history: [],
        first_action_at: null,
        deleted_at: null,
        deleted_by: null
      }
      return repo.create(task)
    },

    /** Partial update: only the named fields are written (no read-modify-write of the item). */
    async update (actor: Actor, id: string, patch: UpdateTaskRequest, expectedVersion: number | undefined): Promise<Task> {
      const task = await repo.getLive(id)
      assertCanModifyTask(actor, task)
      if (expectedVersion !== undefined && expectedVersion !== task.version) {
        throw new DomainError('precondition_failed', 'The task was changed by someone else (ETag mismatch).')
      }
      if (patch.assigned_to !== undefined) await assertAssignable(patch.assigned_to)
      return repo.update(id, {
        title: patch.title,
        description: patch.description,
        priority: patch.priority,
        assigned_to: patch.assigned_to,
        due_at: time(patch.due_at)
      }, { expectedVersion, actor: writeGuard(actor, 'modify') })
    },

    /**
     * Moves the task along the transition table. The write is conditional on the status it
     * was decided from, so of concurrent changes from one status exactly one succeeds and
     * the history (appended in the same write) matches the responses.
     */
    async changeStatus (actor: Actor, id: string, input: UpdateTaskStatusRequest, expectedVersion: number | undefined): Promise<Task> {
      const task = await repo.getLive(id)
      assertCanModifyTask(actor, task)
      if (expectedVersion !== undefined && expectedVersion !== task.version) {
        throw new DomainError('precondition_failed', 'The task was changed by someone else (ETag mismatch).')
      }
      assertTransition(task.status, input.status)
      const now = new Date().toISOString()
      const effects = statusEffects(task, input.status, now)
      return repo.update(id, { status: input.status, ...effects }, {
        expectedVersion,
        expectedStatus: task.status,
        actor: writeGuard(actor, 'modify')
      }, { from: task.status, to: input.status, changed_by: actor.id, changed_at: now, comment: input.comment ?? null })
    },

    async remove (actor: Actor, id: string): Promise<Task> {
      const task = await repo.getLive(id)
      assertCanDeleteTask(actor, task)
      return repo.softDelete(id, actor.id, { actor: writeGuard(actor, 'delete') })
    },

    async addComment (actor: Actor, taskId: string, body: string): Promise<Comment> {
      await repo.getLive(taskId)
      const id = newId()
      return repo.addComment({ id, task_id: taskId, author_id: actor.id, body, created_at: new Date(decodeTime(id)).toISOString() })
    },

    async listComments (taskId: string, limit: number, cursor: string | undefined) {
      await repo.getLive(taskId)
      return repo.listComments(taskId, limit, cursor)
    }
  }
}

export type TasksService = ReturnType<typeof createTasksService>
