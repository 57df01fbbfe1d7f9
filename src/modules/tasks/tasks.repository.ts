import dynamoose from 'dynamoose'
import { encodeTime } from 'ulid'
import type { Condition } from 'dynamoose/dist/Condition.js'
import { DomainError } from '../../domain/errors.js'
import type { StatusHistoryEntry, Task, TaskPriority, TaskStatus } from '../../domain/tasks.js'
import { isConditionFailed } from '../../db/errors.js'
import { readPage, scanAll, type CursorCodec, type Page } from '../../db/pagination.js'
import type { RawClient } from '../../db/raw.js'
import type { CommentItem, CommentsModel, HistoryItem, TaskItem, TasksModel } from './tasks.model.js'

export interface TaskListQuery {
  status?: TaskStatus
  priority?: TaskPriority
  assigned_to?: string
  created_by?: string
  event_id?: string
  created_from?: string
  created_to?: string
  due_from?: string
  due_to?: string
  limit: number
  cursor?: string
}

export interface Comment { id: string, task_id: string, author_id: string, body: string, created_at: string }

/** Fields of a task that an update may set (null clears a nullable one). */
export type TaskFields = Partial<Pick<Task, 'title' | 'description' | 'priority' | 'assigned_to' | 'due_at' | 'status' | 'closed_at' | 'first_action_at' | 'event_id'>>

export interface WriteGuard {
  /** If-Match: the stored version must still be this. */
  expectedVersion?: number
  /** For plain users: the caller must still be the creator (or the assignee, when allowed). */
  actor?: { actorId: string, asAssignee: boolean }
  /** For status changes: the status the transition was decided from. */
  expectedStatus?: TaskStatus
}

const NULLABLE = new Set(['description', 'assigned_to', 'due_at', 'closed_at', 'first_action_at', 'event_id'])

const toHistory = (h: HistoryItem): StatusHistoryEntry => ({
  from: h.from as TaskStatus,
  to: h.to as TaskStatus,
  changed_by: h.changed_by,
  changed_at: h.changed_at,
  comment: h.comment ?? null
})

export const toTask = (item: TaskItem): Task => ({
  id: item.id,
  title: item.title,
  description: item.description ?? null,
  status: item.status,
  priority: item.priority,
  assigned_to: item.assigned_to ?? null,
  created_by: item.created_by,
  event_id: item.event_id ?? null,
  due_at: item.due_at ?? null,
  closed_at: item.closed_at ?? null,
  version: item.version,
  created_at: item.created_at,
  updated_at: item.updated_at,
  status_history: (item.status_history ?? []).map(toHistory),
  first_action_at: item.first_action_at ?? null,
  deleted_at: item.deleted_at ?? null,
  deleted_by: item.deleted_by ?? null
})

const toComment = (c: CommentItem): Comment => ({ id: c.id, task_id: c.task_id, author_id: c.author_id, body: c.body, created_at: c.created_at })

/** The largest ULID of the millisecond before `ms`: `id <= idBefore(t)` means "created before t". */
const idBefore = (ms: number): string => `${encodeTime(Math.max(0, ms - 1), 10)}ZZZZZZZZZZZZZZZZ`
const idFrom = (ms: number): string => `${encodeTime(Math.max(0, ms), 10)}0000000000000000`

export function createTasksRepository (tasks: TasksModel, comments: CommentsModel, cursors: CursorCodec, raw: RawClient) {
  const table = tasks.table().name
  const commentsTable = comments.table().name
  const getItem = (id: string): Promise<TaskItem | null> => raw.get<TaskItem>(table, { id })
  const get = async (id: string): Promise<Task | null> => {
    const item = await getItem(id)
    return item ? toTask(item) : null
  }
  const live = (item: TaskItem | null): TaskItem => {
    if (!item || item.deleted_at) throw new DomainError('not_found', 'Task not found.')
    return item
  }

  /** Comments oldest first; the cursor of the first page (GET task) works on the comments list too. */
  const listComments = (taskId: string, limit: number, cursor?: string): Promise<Page<Comment>> =>
    readPage(cursors, { list: 'comments', task_id: taskId }, limit, cursor, async (n, startKey) => {
      const res = await raw.query<CommentItem>({
        TableName: commentsTable,
        KeyConditionExpression: 'task_id = :t',
        values: { ':t': taskId },
        ScanIndexForward: true,
        Limit: n,
        startKey
      })
      return { items: res.items.map(toComment), lastKey: res.lastKey }
    })

  /** Builds the write condition; and, when the write is refused, says why in domain terms. */
  function conditionFor (guard: WriteGuard): Condition {
    let c = new dynamoose.Condition('id').exists().and().where('deleted_at').not().exists()
    if (guard.expectedVersion !== undefined) c = c.and().where('version').eq(guard.expectedVersion)
    if (guard.expectedStatus) c = c.and().where('status').eq(guard.expectedStatus)
    const actor = guard.actor
    if (actor) {
      c = actor.asAssignee
        ? c.and().parenthesis(p => p.where('created_by').eq(actor.actorId).or().where('assigned_to').eq(actor.actorId))
        : c.and().where('created_by').eq(actor.actorId)
    }
    return c
  }

  async function explainRefusal (id: string, guard: WriteGuard, next?: TaskStatus): Promise<never> {
    const current = await get(id)
    if (!current || current.deleted_at) throw new DomainError('not_found', 'Task not found.')
    if (guard.expectedVersion !== undefined && current.version !== guard.expectedVersion) {
      throw new DomainError('precondition_failed', 'The task was changed by someone else (ETag mismatch).')
    }
    const a = guard.actor
    if (a && current.created_by !== a.actorId && !(a.asAssignee && current.assigned_to === a.actorId)) {
      throw new DomainError('forbidden', 'You may no longer change this task.')
    }
    if (guard.expectedStatus && current.status !== guard.expectedStatus) {
      throw new DomainError('invalid_transition', `The task is now ${current.status}${next ? `; it cannot move to ${next} from there` : ''}.`)
    }
    throw new DomainError('conflict', 'The task was changed concurrently; retry the request.')
  }

  return {
    /** Maintenance only (recounts, exports): every item. Never on a request path. */
    scanAll: () => scanAll(tasks, toTask),

    /** A task that exists and is not deleted, or a `not_found` domain error. */
    async getLive (id: string): Promise<Task> {
      return toTask(live(await getItem(id)))
    },

    /**
     * A live task with its first page of comments. The task item counts its comments (counted
     * before each comment is written, so the count is never below the truth): a task without
     * comments costs one read. Items written before the count existed are queried.
     */
    async getLiveWithComments (id: string, limit: number): Promise<{ task: Task, comments: Page<Comment> }> {
      const item = live(await getItem(id))
      const comments = item.comment_count === 0 ? { items: [], next_cursor: null } : await listComments(id, limit)
      return { task: toTask(item), comments }
    },

    async create (task: Task): Promise<Task> {
      const item: Record<string, unknown> = { entity: 'task', comment_count: 0 }
      for (const [k, v] of Object.entries(task)) {
        if (v !== null && k !== 'deleted_at' && k !== 'deleted_by') item[k] = v
      }
      await tasks.create(item as Partial<TaskItem>, { overwrite: false })
      return task
    },

    /**
     * Writes only the named fields (nulls are removed), bumps `version` and appends a history
     * entry when given, all in one conditional update: the write happens only if the task is
     * live and every guard still holds.
     */
    async update (id: string, fields: TaskFields, guard: WriteGuard, history?: StatusHistoryEntry): Promise<Task> {
      const set: Record<string, unknown> = { updated_at: new Date().toISOString() }
      const remove: string[] = []
      for (const [k, v] of Object.entries(fields)) {
        if (v === undefined) continue
        if (v === null && NULLABLE.has(k)) remove.push(k)
        else set[k] = v
      }
      const add: Record<string, unknown> = { version: 1 }
      if (history) {
        const entry: HistoryItem = { from: history.from, to: history.to, changed_by: history.changed_by, changed_at: history.changed_at }
        if (history.comment) entry.comment = history.comment
        add.status_history = [entry]
      }
      try {
        const updated = await tasks.update({ id }, { $SET: set, $ADD: add, ...(remove.length ? { $REMOVE: remove } : {}) } as never, {
          condition: conditionFor(guard),
          returnValues: 'ALL_NEW'
        })
        return toTask(updated)
      } catch (err) {
        if (isConditionFailed(err)) return explainRefusal(id, guard, fields.status)
        throw err
      }
    },

    /** Soft delete: marks the task; lists skip it, reads answer 404. */
    async softDelete (id: string, by: string, guard: WriteGuard): Promise<Task> {
      const now = new Date().toISOString()
      try {
        const updated = await tasks.update({ id }, { $SET: { deleted_at: now, deleted_by: by, updated_at: now }, $ADD: { version: 1 } } as never, {
          condition: conditionFor(guard),
          returnValues: 'ALL_NEW'
        })
        return toTask(updated)
      } catch (err) {
        if (isConditionFailed(err)) return explainRefusal(id, guard)
        throw err
      }
    },

    /**
     * Tasks newest first. The most selective indexed filter picks the index (event, assignee,
     * creator, status, else all); a created-date range is a key condition on the ULID id;
     * the other filters apply to the pages read.
     */
    async list (q: TaskListQuery): Promise<Page<Task>> {
      const { limit, cursor, ...filters } = q
      // [from, to) with from = to is empty (and not a valid key range).
      if (q.created_from && q.created_to && Date.parse(q.created_from) >= Date.parse(q.created_to)) return { items: [], next_cursor: null }
      const index = q.event_id
        ? { name: 'event-id-index', attr: 'event_id', value: q.event_id }
        : q.assigned_to
          ? { name: 'assignee-id-index', attr: 'assigned_to', value: q.assigned_to }
          : q.created_by
            ? { name: 'creator-id-index', attr: 'created_by', value: q.created_by }
            : q.status
              ? { name: 'status-id-index', attr: 'status', value: q.status }
              : { name: 'entity-id-index', attr: 'entity', value: 'task' }
      // Key condition on the index, filters on the pages read; every name aliased (`status` is reserved).
      const names: Record<string, string> = { '#k': index.attr, '#deleted': 'deleted_at' }
      const values: Record<string, unknown> = { ':k': index.value }
      let keyCondition = '#k = :k'
      const from = q.created_from ? idFrom(Date.parse(q.created_from)) : undefined
      const to = q.created_to ? idBefore(Date.parse(q.created_to)) : undefined
      if (from) values[':from'] = from
      if (to) values[':to'] = to
      if (from || to) names['#id'] = 'id'
      if (from && to) keyCondition += ' AND #id BETWEEN :from AND :to'
      else if (from) keyCondition += ' AND #id >= :from'
      else if (to) keyCondition += ' AND #id <= :to'
      const filter = ['attribute_not_exists(#deleted)']
      for (const attr of ['event_id', 'assigned_to', 'created_by', 'status', 'priority'] as const) {
        const value = q[attr]
        if (value === undefined || attr === index.attr) continue
        names[`#${attr}`] = attr
        values[`:${attr}`] = value
        filter.push(`#${attr} = :${attr}`)
      }
      if (q.due_from || q.due_to) names['#due'] = 'due_at'
      if (q.due_from) { values[':due_from'] = q.due_from; filter.push('#due >= :due_from') }
      if (q.due_to) { values[':due_to'] = q.due_to; filter.push('#due < :due_to') }
      return readPage(cursors, { list: 'tasks', ...filters }, limit, cursor, async (n, startKey) => {
        const res = await raw.query<TaskItem>({
          TableName: table,
          IndexName: index.name,
          KeyConditionExpression: keyCondition,
          FilterExpression: filter.join(' AND '),
          ExpressionAttributeNames: names,
          values,
          ScanIndexForward: false,
          Limit: n,
          startKey
        })
        return { items: res.items.map(toTask), lastKey: res.lastKey }
      })
    },

    async addComment (comment: Comment): Promise<Comment> {
      try {
        await tasks.update({ id: comment.task_id }, { $ADD: { comment_count: 1 } } as never, {
          condition: new dynamoose.Condition('id').exists().and().where('deleted_at').not().exists()
        })
      } catch (err) {
        if (isConditionFailed(err)) throw new DomainError('not_found', 'Task not found.')
        throw err
      }
      await comments.create(comment, { overwrite: false })
      return comment
    },

    listComments
  }
}

export type TasksRepository = ReturnType<typeof createTasksRepository>
