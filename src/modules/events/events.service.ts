import { decodeTime } from 'ulid'
import type { CreateTaskFromEventRequest } from '../../../openapi/generated/schemas.js'
import { assertRange, DomainError } from '../../domain/errors.js'
import { assertAssignable, newTask, priorityForSeverity, type Task } from '../../domain/tasks.js'
import { canonicalTime } from '../../domain/time.js'
import type { MonitoringEvent } from '../../domain/events.js'
import type { Actor, UserLookup } from '../../domain/users.js'
import { newId } from '../../lib/ids.js'
import type { StatsRecorder } from '../../plugins/stats.js'
import { assignedMarks, NOTIFY_NOTHING, type NotifyGate } from '../../domain/notification-delivery.js'
import type { EventListQuery, EventsRepository } from './events.repository.js'

/** What events need from the tasks side: storing a task created from an event. */
export interface TaskStore {
  /** `marks`: the task's notification marks (an assignment). */
  create: (task: Task, marks?: string[]) => Promise<Task>
}

/** Attempts at linking a task to an event that keeps changing (occurrences). */
const MAX_ATTEMPTS = 60

/** Reading, deleting and working monitoring events (ingestion is ingestion.service.ts). */
export function createEventsService (repo: EventsRepository, tasks: TaskStore, users: UserLookup, stats: Pick<StatsRecorder, 'event' | 'task'>, notify: NotifyGate = NOTIFY_NOTHING) {
  return {
    list (q: EventListQuery) {
      const from = q.from && canonicalTime(q.from, '/query/from')
      const to = q.to && canonicalTime(q.to, '/query/to')
      assertRange(from, to, ['from', 'to'])
      return repo.list({ ...q, from, to })
    },

    get: (id: string) => repo.getLive(id),

    async remove (actor: Actor, id: string): Promise<MonitoringEvent> {
      const deleted = await repo.softDelete(id, actor.id)
      await stats.event({ ...deleted, deleted_at: null }, deleted)
      return deleted
    },

    /**
     * Creates the event's task. The link is claimed on the event first (conditional write),
     * so of two concurrent calls exactly one creates a task; the other gets 409 with its id.
     */
    async createTask (actor: Actor, eventId: string, input: CreateTaskFromEventRequest | null | undefined): Promise<Task> {
      let event = await repo.getLive(eventId)
      const body = input ?? {}
      await assertAssignable(users, body.assigned_to)
      const id = newId()
      const task = newTask(id, new Date(decodeTime(id)).toISOString(), actor, {
        title: body.title ?? event.title.slice(0, 200),
        description: body.description !== undefined ? body.description : event.description?.slice(0, 10000) ?? null,
        priority: body.priority ?? priorityForSeverity(event.severity),
        assigned_to: body.assigned_to ?? null,
        due_at: body.due_at ?? null
      }, event.id)
      for (let attempt = 0; ; attempt++) {
        if (event.task_id) throw new DomainError('event_has_task', 'This event already has a task.', { taskId: event.task_id })
        const attached = await repo.attachTask(event, task.id)
        if (attached) {
          await stats.event(event, attached)
          break
        }
        if (attempt >= MAX_ATTEMPTS) throw new DomainError('conflict', 'The event is changing too often; retry.')
        event = await repo.getLive(eventId)
      }
      try {
        const created = await tasks.create(task, await assignedMarks(notify, 1, task.assigned_to, actor.id))
        await stats.task(null, created)
        return created
      } catch (err) {
        await repo.detachTask(event.id, task.id)
        throw err
      }
    }
  }
}

export type EventsService = ReturnType<typeof createEventsService>
