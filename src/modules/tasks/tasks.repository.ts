import type { DynamoDB, WriteRequest } from '@aws-sdk/client-dynamodb'
import dynamoose from 'dynamoose'
import { encodeTime } from 'ulid'
import { DomainError } from '../../domain/errors.js'
import { RECENT_HISTORY, toStatusHistoryDto, type StatusChange, type StatusHistoryEntry, type Task, type TaskPriority, type TaskStatus } from '../../domain/tasks.js'
import { isConditionFailed } from '../../db/errors.js'
import { itemSize, MAX_ITEM_BYTES } from '../../db/item-size.js'
import { readPage, scanAll, type CursorCodec, type Page } from '../../db/pagination.js'
import { toAttributes, type RawClient } from '../../db/raw.js'
import type { CommentItem, CommentsModel, HistoryItem, HistoryRecordItem, TaskHistoryModel, TaskItem, TasksModel } from './tasks.model.js'

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

/**
 * What a task item may weigh after a write, in DynamoDB's measure (UTF-8; the embedded
 * stand-in counts UTF-16 units and would accept more). Below the 400 KB limit by a margin for
 * attributes the estimate does not know of (items written by other versions). With the API's
 * bounds (20 changes × 2,000-character comments, a 10,000-character description, a
 * 200-character title; 4 UTF-8 bytes per character at worst) a task weighs about 210 KB, so
 * this refuses only items no request can build (legacy ones), as a 400 instead of a 500.
 */
export const TASK_ITEM_BUDGET = MAX_ITEM_BYTES - 1024

const pad = (n: number, width: number): string => String(n).padStart(width, '0')
/** The history key of the status change that produced task version `version` (sorts numerically). */
export const changeKey = (version: number): string => `v${pad(version, 10)}`
/** The history key of entry `index` of a legacy list (append-only, so positions are stable); before every `v` key. */
const legacyKey = (index: number, changedAt: string): string => `a${pad(index, 6)}#${changedAt}`

const toHistory = (h: HistoryItem, index: number): StatusChange => ({
  from: h.from as TaskStatus,
  to: h.to as TaskStatus,
  changed_by: h.changed_by,
  changed_at: h.changed_at,
  comment: h.comment ?? null,
  key: h.seq ?? legacyKey(index, h.changed_at)
})

const toHistoryItem = (c: StatusChange): HistoryItem => ({
  from: c.from,
  to: c.to,
  changed_by: c.changed_by,
  changed_at: c.changed_at,
  ...(c.comment ? { comment: c.comment } : {}),
  seq: c.key
})

const fromRecord = (r: HistoryRecordItem): StatusChange => ({
  from: r.from as TaskStatus,
  to: r.to as TaskStatus,
  changed_by: r.changed_by,
  changed_at: r.changed_at,
  comment: r.comment ?? null,
  key: r.seq
})

/** The task as an item (for its size): what `create` and the writes store, the comment counter at its largest. */
function itemOf (task: Task): Record<string, unknown> {
  const item: Record<string, unknown> = { entity: 'task', comment_count: Number.MAX_SAFE_INTEGER }
  for (const [k, v] of Object.entries(task)) {
    if (v === null || v === undefined) continue
    item[k] = k === 'status_history' ? (v as StatusChange[]).map(toHistoryItem) : v
  }
  return item
}

/** Every write that could make an item exceed DynamoDB's limit is refused here, as a 400, before it is sent. */
function assertFits (task: Task): void {
  const size = itemSize(itemOf(task))
  if (size > TASK_ITEM_BUDGET) {
    throw new DomainError('validation_failed', `The task would take ${size} bytes of storage, more than a task may (${TASK_ITEM_BUDGET}); shorten its text.`, {
      errors: [{ path: '/body', message: 'the stored task would exceed the item size limit' }]
    })
  }
}

/** DynamoDB refused a write because the item would exceed its size limit. */
const isItemTooLarge = (err: unknown): boolean => {
  const e = err as { name?: string, message?: string } | null
  return e?.name === 'ValidationException' && /item size/i.test(e.message ?? '')
}

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
  status_history: (item.status_history ?? []).map((h, i) => toHistory(h, i)),
  first_action_at: item.first_action_at ?? null,
  deleted_at: item.deleted_at ?? null,
  deleted_by: item.deleted_by ?? null
})

const toComment = (c: CommentItem): Comment => ({ id: c.id, task_id: c.task_id, author_id: c.author_id, body: c.body, created_at: c.created_at })

/** The largest ULID of the millisecond before `ms`: `id <= idBefore(t)` means "created before t". */
const idBefore = (ms: number): string => `${encodeTime(Math.max(0, ms - 1), 10)}ZZZZZZZZZZZZZZZZ`
const idFrom = (ms: number): string => `${encodeTime(Math.max(0, ms), 10)}0000000000000000`

export function createTasksRepository (tasks: TasksModel, comments: CommentsModel, cursors: CursorCodec, raw: RawClient, history: TaskHistoryModel, client: DynamoDB) {
  const table = tasks.table().name
  const commentsTable = comments.table().name
  const historyTable = history.table().name
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

  /**
   * The write condition of a guard, as a condition expression with its names and values (and
   * `explainRefusal`, when the write is refused, says why in domain terms).
   */
  function conditionFor (guard: WriteGuard): { condition: string, names: Record<string, string>, values: Record<string, unknown> } {
    const parts = ['attribute_exists(#c_id)', 'attribute_not_exists(#c_deleted)']
    const names: Record<string, string> = { '#c_id': 'id', '#c_deleted': 'deleted_at' }
    const values: Record<string, unknown> = {}
    if (guard.expectedVersion !== undefined) {
      parts.push('#c_version = :c_version')
      names['#c_version'] = 'version'
      values[':c_version'] = guard.expectedVersion
    }
    if (guard.expectedStatus) {
      parts.push('#c_status = :c_status')
      names['#c_status'] = 'status'
      values[':c_status'] = guard.expectedStatus
    }
    const actor = guard.actor
    if (actor) {
      names['#c_creator'] = 'created_by'
      values[':c_actor'] = actor.actorId
      if (actor.asAssignee) {
        names['#c_assignee'] = 'assigned_to'
        parts.push('(#c_creator = :c_actor OR #c_assignee = :c_actor)')
      } else {
        parts.push('#c_creator = :c_actor')
      }
    }
    return { condition: parts.join(' AND '), names, values }
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

  /**
   * Idempotent writes into the history table (deterministic keys: writing an entry again
   * changes nothing): one put, or batches of up to 25 (a status change stores the entry it drops
   * and the latest one; moving a legacy list out stores hundreds), retrying what a batch left
   * unprocessed.
   */
  async function storeHistory (taskId: string, entries: StatusChange[]): Promise<void> {
    const records = entries.map(e => ({
      task_id: taskId,
      seq: e.key,
      from: e.from,
      to: e.to,
      changed_by: e.changed_by,
      changed_at: e.changed_at,
      ...(e.comment ? { comment: e.comment } : {})
    }))
    if (records.length === 1) {
      await raw.put(historyTable, records[0]!)
      return
    }
    for (let i = 0; i < records.length; i += 25) {
      let requests: WriteRequest[] = records.slice(i, i + 25).map(r => ({ PutRequest: { Item: toAttributes(r) } }))
      for (let round = 0; requests.length; round++) {
        if (round > 8) throw new Error('The history table keeps leaving writes unprocessed.')
        if (round > 0) await new Promise(resolve => setTimeout(resolve, Math.min(1000, 25 * 2 ** round)))
        const res = await client.batchWriteItem({ RequestItems: { [historyTable]: requests } })
        requests = res.UnprocessedItems?.[historyTable] ?? []
      }
    }
  }

  /**
   * The recent history a write leaves in the item, and what must reach the history table
   * before it: the entries the write drops and the latest entry read. A status change keeps
   * the last RECENT_HISTORY - 1 entries and appends its own; any other write leaves a bounded
   * list alone and trims a legacy (unbounded) one. Undefined: the list stays as it is.
   */
  function nextHistory (base: Task, change: StatusChange | undefined): { list: StatusChange[], store: StatusChange[] } | undefined {
    const listed = base.status_history
    if (!change && listed.length <= RECENT_HISTORY) return undefined
    const list = change ? [...listed.slice(-(RECENT_HISTORY - 1)), change] : listed.slice(-RECENT_HISTORY)
    const kept = new Set(list.map(e => e.key))
    const store = listed.filter(e => !kept.has(e.key))
    const latest = listed.at(-1)
    if (latest && kept.has(latest.key)) store.push(latest)
    return { list, store }
  }

  /**
   * The one conditional write of a task: sets `fields` and `extra`, removes nulled fields,
   * bumps the version, and writes the recent history when it changes. It is pinned to the
   * version `base` was read at, so the history it writes is computed from exactly the list it
   * replaces. Crash safety without transactions: an entry leaves the item only after it was
   * stored in the history table (before this write), and the reader merges the item's entries
   * with the table, so stopping between the two writes loses nothing and a retry rewrites the
   * same keys.
   */
  async function write (base: Task, fields: TaskFields, guard: WriteGuard, change?: StatusChange, extra: Record<string, unknown> = {}): Promise<Task> {
    const pinned: WriteGuard = { ...guard, expectedVersion: base.version }
    const now = new Date().toISOString()
    const set: Record<string, unknown> = { updated_at: now, ...extra }
    const remove: string[] = []
    const after: Record<string, unknown> = { ...base, ...extra, updated_at: set.updated_at, version: base.version + 1 }
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue
      after[k] = v
      if (v === null && NULLABLE.has(k)) remove.push(k)
      else set[k] = v
    }
    const history = nextHistory(base, change)
    if (history) {
      after.status_history = history.list
      set.status_history = history.list.map(toHistoryItem)
    }
    const next = after as unknown as Task
    assertFits(next)
    if (history?.store.length) await storeHistory(base.id, history.store)
    // One UpdateItem through the bare client: the item can be ~200 KB, and its result need not
    // come back (the write is pinned to `base`, so the stored task is exactly `next`).
    const guarded = conditionFor(pinned)
    const names: Record<string, string> = { ...guarded.names, '#version': 'version' }
    const values: Record<string, unknown> = { ...guarded.values, ':version': base.version + 1 }
    const assignments = ['#version = :version']
    Object.entries(set).forEach(([k, v], i) => {
      names[`#s${i}`] = k
      values[`:s${i}`] = v
      assignments.push(`#s${i} = :s${i}`)
    })
    remove.forEach((k, i) => { names[`#r${i}`] = k })
    const update = `SET ${assignments.join(', ')}${remove.length ? ` REMOVE ${remove.map((_, i) => `#r${i}`).join(', ')}` : ''}`
    try {
      await raw.update(table, { id: base.id }, { update, condition: guarded.condition, names, values })
      return next
    } catch (err) {
      if (isConditionFailed(err)) return explainRefusal(base.id, pinned, fields.status ?? undefined)
      throw err
    }
  }

  /**
   * Bounds a legacy item's history without changing the task (no version bump: the stored
   * representation changes, not the task), for writes that do not read the item first.
   * Pinned to the version read, so a concurrent writer computes the same list.
   */
  async function compact (id: string): Promise<void> {
    const base = toTask(live(await getItem(id)))
    const history = nextHistory(base, undefined)
    if (!history) return
    await storeHistory(id, history.store)
    try {
      await raw.update(table, { id }, {
        update: 'SET #h = :h',
        condition: 'attribute_exists(id) AND attribute_not_exists(deleted_at) AND #v = :v',
        names: { '#h': 'status_history', '#v': 'version' },
        values: { ':h': history.list.map(toHistoryItem), ':v': base.version }
      })
    } catch (err) {
      // Someone else wrote the task meanwhile (and bounded its history the same way).
      if (!isConditionFailed(err)) throw err
    }
  }

  /**
   * A page of the whole history, oldest first: the history table merged with the item's
   * recent entries (the newest may not be in the table yet; a legacy list not at all), without
   * duplicates (same key, same entry). The cursor is the last key returned.
   */
  async function listHistory (taskId: string, limit: number, cursor?: string): Promise<Page<StatusHistoryEntry>> {
    const recent = live(await getItem(taskId)).status_history ?? []
    const inItem = recent.map((h, i) => toHistory(h, i))
    const page = await readPage(cursors, { list: 'history', task_id: taskId }, limit, cursor, async (n, startKey) => {
      const seq = startKey?.seq
      if (startKey && typeof seq !== 'string') throw new DomainError('invalid_cursor', 'The cursor is malformed, expired or belongs to another query.', { errors: [{ path: '/query/cursor', message: 'invalid cursor' }] })
      const after = typeof seq === 'string' ? seq : undefined
      const res = await raw.query<HistoryRecordItem>({
        TableName: historyTable,
        KeyConditionExpression: after === undefined ? 'task_id = :t' : 'task_id = :t AND #s > :after',
        ...(after === undefined ? {} : { ExpressionAttributeNames: { '#s': 'seq' } }),
        values: { ':t': taskId, ...(after === undefined ? {} : { ':after': after }) },
        ScanIndexForward: true,
        // One more than needed: tells whether anything follows this page.
        Limit: n + 1
      })
      const fromTable = res.items.map(fromRecord)
      // While the table has more, only keys up to the last one read are known in full.
      const bound = res.lastKey ? (fromTable.at(-1)?.key ?? after ?? '') : undefined
      const merged = new Map<string, StatusChange>()
      for (const e of fromTable) merged.set(e.key, e)
      for (const e of inItem) {
        if ((after === undefined || e.key > after) && (bound === undefined || e.key <= bound)) merged.set(e.key, e)
      }
      const sorted = [...merged.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      const items = sorted.slice(0, n)
      const more = sorted.length > n || res.lastKey !== undefined
      const last = items.at(-1)
      return { items, lastKey: more && last ? { task_id: taskId, seq: last.key } : undefined }
    })
    return { items: page.items.map(toStatusHistoryDto), next_cursor: page.next_cursor }
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
      assertFits(task)
      const item = itemOf(task)
      item.comment_count = 0
      delete item.deleted_at
      delete item.deleted_by
      await tasks.create(item as Partial<TaskItem>, { overwrite: false })
      return task
    },

    /**
     * Partial update of the task's own fields (nulls are removed), in one conditional write
     * pinned to the version `base` was read at.
     */
    update: (base: Task, fields: TaskFields, guard: WriteGuard): Promise<Task> => write(base, fields, guard),

    /**
     * Moves the status and records the change, in one conditional write pinned to the version
     * (and status) `base` was read at: the new recent history (the last RECENT_HISTORY - 1
     * entries of `base` plus this one) is computed from exactly what the write replaces.
     * The change's key is the version it produces.
     */
    changeStatus: (base: Task, fields: TaskFields, guard: WriteGuard, change: StatusHistoryEntry): Promise<Task> =>
      write(base, fields, { ...guard, expectedStatus: base.status }, { ...change, key: changeKey(base.version + 1) }),

    /** Soft delete: marks the task; lists skip it, reads answer 404. */
    softDelete (base: Task, by: string, guard: WriteGuard): Promise<Task> {
      const now = new Date().toISOString()
      return write(base, {}, guard, undefined, { deleted_at: now, deleted_by: by, updated_at: now })
    },

    /** Every status change of a live task, oldest first, in pages. */
    listHistory,

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
      const count = () => tasks.update({ id: comment.task_id }, { $ADD: { comment_count: 1 } } as never, {
        condition: new dynamoose.Condition('id').exists().and().where('deleted_at').not().exists()
      })
      try {
        try {
          await count()
        } catch (err) {
          // Only a legacy item (an unbounded status history) can be this large: bound it, once.
          if (!isItemTooLarge(err)) throw err
          await compact(comment.task_id)
          await count()
        }
      } catch (err) {
        if (isConditionFailed(err)) throw new DomainError('not_found', 'Task not found.')
        if (isItemTooLarge(err)) throw new DomainError('validation_failed', 'The task is too large to take another comment.', { errors: [{ path: '/body', message: 'the stored task would exceed the item size limit' }] })
        throw err
      }
      await comments.create(comment, { overwrite: false })
      return comment
    },

    listComments
  }
}

export type TasksRepository = ReturnType<typeof createTasksRepository>
