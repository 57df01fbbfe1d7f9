import type { DynamoDB, WriteRequest } from '@aws-sdk/client-dynamodb'
import { encodeTime } from 'ulid'
import { DomainError } from '../../domain/errors.js'
import {
  explainTaskRefusal, RECENT_HISTORY, toStatusHistoryDto,
  type StatusChange, type StatusHistoryEntry, type Task, type TaskPriority, type TaskRefusal, type TaskStatus, type TaskWriteRule
} from '../../domain/tasks.js'
import { readIndexPage, writeOrExplain, type WriteOutcome } from '../../db/access.js'
import { where, type Condition, type KeyCondition } from '../../db/expressions.js'
import { itemSize, MAX_ITEM_BYTES } from '../../db/item-size.js'
import { clearMarks, markAttributes, markedKeys, withMarks } from '../../db/marks.js'
import { mapPage, readPage, type CursorCodec, type Page } from '../../db/pagination.js'
import { toAttributes, type RawClient } from '../../db/raw.js'
import type { TableModel } from '../../db/tables.js'
import type { CommentItem, HistoryItem, HistoryRecordItem, TaskItem } from './tasks.model.js'
import { together } from '../../lib/together.js'

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

/** A conditional write of a task: the task written, or why its write rule refused it. */
export type TaskWrite = WriteOutcome<Task, TaskRefusal>

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

/**
 * The task as an item, as `create` and the writes store it (absent rather than null); the
 * bench data builds its items with it too. `commentCount`: at its largest to weigh the item.
 */
export function taskItem (task: Task, commentCount = 0): TaskItem {
  const item: Record<string, unknown> = { entity: 'task', comment_count: commentCount }
  for (const [k, v] of Object.entries(task)) {
    if (v === null || v === undefined) continue
    item[k] = k === 'status_history' ? (v as StatusChange[]).map(toHistoryItem) : v
  }
  return item as TaskItem
}

/** Every write that could make an item exceed DynamoDB's limit is refused here, as a 400, before it is sent. */
function assertFits (task: Task): void {
  const size = itemSize(taskItem(task, Number.MAX_SAFE_INTEGER))
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

/** What every function of this repository works with. */
interface Context {
  raw: RawClient
  /** For the one batch write (history entries moved out of a legacy item). */
  client: DynamoDB
  cursors: CursorCodec
  tables: { tasks: string, comments: string, history: string }
}

// ---------------------------------------------------------------------------------------------
// Reads of one task

const getItem = (ctx: Context, id: string): Promise<TaskItem | null> => ctx.raw.getItem<TaskItem>(ctx.tables.tasks, { id })

const live = (item: TaskItem | null): TaskItem => {
  if (!item || item.deleted_at) throw new DomainError('not_found', 'Task not found.')
  return item
}

/** The task as stored (deleted or not), or null. */
async function getById (ctx: Context, id: string): Promise<Task | null> {
  const item = await getItem(ctx, id)
  return item ? toTask(item) : null
}

/** A task that exists and is not deleted, or a `not_found` domain error. */
async function getLive (ctx: Context, id: string): Promise<Task> {
  return toTask(live(await getItem(ctx, id)))
}

/**
 * A live task with its first page of comments. The task item counts its comments (counted
 * before each comment is written, so the count is never below the truth): a task without
 * comments costs one read. Items written before the count existed are queried.
 */
async function getLiveWithComments (ctx: Context, id: string, limit: number): Promise<{ task: Task, comments: Page<Comment> }> {
  const item = live(await getItem(ctx, id))
  const comments = item.comment_count === 0 ? { items: [], next_cursor: null } : await listComments(ctx, id, limit)
  return { task: toTask(item), comments }
}

/** Maintenance only (recounts, exports): every item. Never on a request path. */
async function * scanAll (ctx: Context): AsyncGenerator<Task> {
  for await (const item of ctx.raw.scanAll<TaskItem>(ctx.tables.tasks)) yield toTask(item)
}

// ---------------------------------------------------------------------------------------------
// Writes of a task

async function create (ctx: Context, task: Task, marks?: string[]): Promise<Task> {
  assertFits(task)
  const { deleted_at: _at, deleted_by: _by, ...item } = taskItem(task)
  await ctx.raw.putItem(ctx.tables.tasks, { ...item, ...markAttributes(marks) }, { condition: where.notExists('id') })
  return task
}

/**
 * A task's write rule (domain/tasks.ts) as the write's condition: the item exists, is not
 * deleted, and satisfies every part of the rule. `explainTaskRefusal` reads the same parts.
 */
function conditionOf (rule: TaskWriteRule): Condition {
  const w = rule.writer
  return where.and(
    where.exists('id'),
    where.notExists('deleted_at'),
    w && ('creator' in w
      ? where.eq('created_by', w.creator)
      : where.or(where.eq('created_by', w.creatorOrAssignee), where.eq('assigned_to', w.creatorOrAssignee))),
    rule.version !== undefined && where.eq('version', rule.version),
    rule.status !== undefined && where.eq('status', rule.status)
  )
}

/** Why a write conditioned on `rule` was refused: the rule, on the item as it is now. */
async function explain (ctx: Context, id: string, rule: TaskWriteRule): Promise<TaskRefusal> {
  const current = await getItem(ctx, id)
  return explainTaskRefusal(rule, current && toTask(current))
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
 * version `base` was read at (whatever `rule` says of the version), so the history it writes
 * is computed from exactly the list it replaces. Crash safety without transactions: an entry
 * leaves the item only after it was stored in the history table (before this write), and the
 * reader merges the item's entries with the table, so stopping between the two writes loses
 * nothing and a retry rewrites the same keys. A refusal comes back as the rule explains it.
 */
async function write (ctx: Context, base: Task, fields: TaskFields, rule: TaskWriteRule, change?: StatusChange, extra: Record<string, unknown> = {}, marks?: string[]): Promise<TaskWrite> {
  const pinned: TaskWriteRule = { ...rule, version: base.version }
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
  // Entries this write drops must be in the history table before it (crash safety). Entries it
  // keeps may be stored at the same time as the write: if that store fails or the process dies,
  // they are still in the item, and a later write stores them before dropping them (it knows
  // what is stored only from `storedHistory`, read with the task; otherwise it stores first).
  const known = storedHistory.get(base)
  const kept = new Set(history?.list.map(e => e.key))
  const first = (known ? history?.store.filter(e => !known.has(e.key) && !kept.has(e.key)) : history?.store) ?? []
  // With what is stored known: every entry the item keeps that is not stored yet (normally the
  // latest read; more after a store that failed), except the change being made.
  const alongside = known && history ? history.list.filter(e => e.key !== change?.key && !known.has(e.key)) : []
  if (first.length) await storeHistory(ctx, base.id, [...first, ...alongside])
  // The item can be ~200 KB, and the result need not come back (the write is pinned to
  // `base`, so the stored task is exactly `next`).
  const writing = writeOrExplain(async () => {
    await ctx.raw.updateItem(ctx.tables.tasks, { id: base.id }, withMarks({ set: { ...set, version: base.version + 1 }, remove }, marks), { condition: conditionOf(pinned) })
    return next
  }, () => explain(ctx, base.id, pinned))
  if (!first.length && alongside.length) {
    // Only entries the write keeps: stored beside it (idempotent keys; a failure only leaves
    // them for the next write to store, see above), so a status change is one round trip.
    const [outcome] = await Promise.allSettled([writing, storeHistory(ctx, base.id, alongside)])
    if (outcome.status === 'rejected') throw outcome.reason
    return outcome.value
  }
  return writing
}

/**
 * Which keys of a task's recent history are known to be in the history table, per task object
 * as read by `getForChange` (a read made with the task, in the same round trip). A task object
 * read otherwise has no entry: its writes store what they drop first, as before.
 */
const storedHistory = new WeakMap<Task, Set<string>>()

/**
 * The task as stored (deleted or not), or null, with what its next status change needs to know:
 * which of its recent history entries are already in the history table (the newest of them,
 * read in the same round trip, strongly consistent). With it, the change writes the item and
 * the history entries at once (one round trip) instead of one after the other.
 */
async function getForChange (ctx: Context, id: string): Promise<Task | null> {
  const [item, stored] = await together(getItem(ctx, id), ctx.raw.queryPage<Pick<HistoryRecordItem, 'seq'>>({
    table: ctx.tables.history,
    key: { partition: ['task_id', id] },
    forward: false,
    consistent: true,
    // One more than the item keeps: every entry of a bounded list is among them if stored.
    limit: RECENT_HISTORY + 1,
    attributes: ['seq']
  }))
  if (!item) return null
  const task = toTask(item)
  storedHistory.set(task, new Set(stored.items.map(r => r.seq)))
  return task
}

/**
 * Partial update of the task's own fields (nulls are removed), in one conditional write
 * pinned to the version `base` was read at.
 */
const update = (ctx: Context, base: Task, fields: TaskFields, rule: TaskWriteRule, marks?: string[]): Promise<TaskWrite> => write(ctx, base, fields, rule, undefined, {}, marks)

/**
 * Moves the status and records the change, in one conditional write pinned to the version
 * (and status) `base` was read at: the new recent history (the last RECENT_HISTORY - 1
 * entries of `base` plus this one) is computed from exactly what the write replaces.
 * The change's key is the version it produces.
 */
const changeStatus = (ctx: Context, base: Task, fields: TaskFields, rule: TaskWriteRule, change: StatusHistoryEntry, marks?: string[]): Promise<TaskWrite> =>
  write(ctx, base, fields, { ...rule, status: base.status }, { ...change, key: changeKey(base.version + 1) }, {}, marks)

/** Soft delete: marks the task; lists skip it, reads answer 404. */
function softDelete (ctx: Context, base: Task, by: string, rule: TaskWriteRule): Promise<TaskWrite> {
  const now = new Date().toISOString()
  return write(ctx, base, {}, rule, undefined, { deleted_at: now, deleted_by: by, updated_at: now })
}

/**
 * Bounds a legacy item's history without changing the task (no version bump: the stored
 * representation changes, not the task), for writes that do not read the item first.
 * Pinned to the version read, so a concurrent writer computes the same list.
 */
async function compact (ctx: Context, id: string): Promise<void> {
  const base = toTask(live(await getItem(ctx, id)))
  const history = nextHistory(base, undefined)
  if (!history) return
  await storeHistory(ctx, id, history.store)
  // Refused: someone else wrote the task meanwhile (and bounded its history the same way).
  await writeOrExplain(
    () => ctx.raw.updateItem(ctx.tables.tasks, { id }, { set: { status_history: history.list.map(toHistoryItem) } }, { condition: conditionOf({ writer: null, version: base.version }) }),
    async () => 'written meanwhile'
  )
}

// ---------------------------------------------------------------------------------------------
// Comments

/** Comments oldest first; the cursor of the first page (GET task) works on the comments list too. */
function listComments (ctx: Context, taskId: string, limit: number, cursor?: string): Promise<Page<Comment>> {
  return readIndexPage(ctx.raw, ctx.cursors, {
    table: ctx.tables.comments,
    key: { partition: ['task_id', taskId] },
    forward: true,
    map: toComment,
    cursorScope: { list: 'comments', task_id: taskId },
    limit,
    cursor
  })
}

/**
 * Counts a comment on its task: one ADD on the live item (the condition has no other part, so
 * a refusal means the task is gone). Only a legacy item (an unbounded status history) can be
 * too large to take the count: it is bounded, once.
 */
async function countComment (ctx: Context, taskId: string, marks?: string[]): Promise<WriteOutcome<unknown, TaskRefusal>> {
  const count = () => writeOrExplain(
    () => ctx.raw.updateItem(ctx.tables.tasks, { id: taskId }, withMarks({ add: { comment_count: 1 } }, marks), { condition: conditionOf({ writer: null }) }),
    async (): Promise<TaskRefusal> => ({ reason: 'not_found' })
  )
  try {
    return await count()
  } catch (err) {
    if (!isItemTooLarge(err)) throw err
  }
  await compact(ctx, taskId)
  try {
    return await count()
  } catch (err) {
    if (!isItemTooLarge(err)) throw err
    throw new DomainError('validation_failed', 'The task is too large to take another comment.', { errors: [{ path: '/body', message: 'the stored task would exceed the item size limit' }] })
  }
}

/** Counts the comment on its live task, then stores it; refused (`not_found`) when the task is gone. */
async function addComment (ctx: Context, comment: Comment, marks?: string[]): Promise<WriteOutcome<Comment, TaskRefusal>> {
  const counted = await countComment(ctx, comment.task_id, marks)
  if (!counted.ok) return counted
  await ctx.raw.putItem(ctx.tables.comments, { ...comment }, { condition: where.notExists('id') })
  return { ok: true, value: comment }
}

// ---------------------------------------------------------------------------------------------
// The whole status history

/**
 * Idempotent writes into the history table (deterministic keys: writing an entry again
 * changes nothing): one put, or batches (a status change stores the entry it drops and the
 * latest one; moving a legacy list out stores hundreds).
 */
async function storeHistory (ctx: Context, taskId: string, entries: StatusChange[]): Promise<void> {
  const records = entries.map(e => ({
    task_id: taskId,
    seq: e.key,
    from: e.from,
    to: e.to,
    changed_by: e.changed_by,
    changed_at: e.changed_at,
    ...(e.comment ? { comment: e.comment } : {})
  }))
  if (records.length === 1) await ctx.raw.putItem(ctx.tables.history, records[0]!)
  else await batchPut(ctx.client, ctx.tables.history, records)
}

/** Unconditional puts in batches of 25, retrying what a batch left unprocessed (backing off). */
async function batchPut (client: DynamoDB, table: string, items: Array<Record<string, unknown>>): Promise<void> {
  for (let i = 0; i < items.length; i += 25) {
    let requests: WriteRequest[] = items.slice(i, i + 25).map(item => ({ PutRequest: { Item: toAttributes(item) } }))
    for (let round = 0; requests.length; round++) {
      if (round > 8) throw new Error(`The table ${table} keeps leaving writes unprocessed.`)
      if (round > 0) await new Promise(resolve => setTimeout(resolve, Math.min(1000, 25 * 2 ** round)))
      const res = await client.batchWriteItem({ RequestItems: { [table]: requests } })
      requests = res.UnprocessedItems?.[table] ?? []
    }
  }
}

/**
 * A page of the whole history, oldest first: the history table merged with the item's
 * recent entries (the newest may not be in the table yet; a legacy list not at all), without
 * duplicates (same key, same entry). The cursor is the last key returned. (Not a
 * `readIndexPage`: each round is merged with the item's entries before it is paged.)
 */
async function listHistory (ctx: Context, taskId: string, limit: number, cursor?: string): Promise<Page<StatusHistoryEntry>> {
  // The task item (its recent entries) and the first page of the history table are read at
  // the same time: one round trip. A missing task is a 404 whatever the cursor said.
  const task = getItem(ctx, taskId).then(live)
  const reading = readPage(ctx.cursors, { list: 'history', task_id: taskId }, limit, cursor, async (n, startKey) => {
    const seq = startKey?.seq
    if (startKey && typeof seq !== 'string') throw new DomainError('invalid_cursor', 'The cursor is malformed, expired or belongs to another query.', { errors: [{ path: '/query/cursor', message: 'invalid cursor' }] })
    const after = typeof seq === 'string' ? seq : undefined
    const [current, res] = await together(task, ctx.raw.queryPage<HistoryRecordItem>({
      table: ctx.tables.history,
      key: { partition: ['task_id', taskId], sort: after === undefined ? undefined : { name: 'seq', op: '>', value: after } },
      forward: true,
      // One more than needed: tells whether anything follows this page.
      limit: n + 1
    }))
    const inItem = (current.status_history ?? []).map((h, i) => toHistory(h, i))
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
  const [, page] = await together(task, reading)
  return mapPage(page, toStatusHistoryDto)
}

// ---------------------------------------------------------------------------------------------
// Lists of tasks (tasks.model.ts: one GSI per access pattern, each ranged by the ULID id)

/** The filters a list query may combine, besides the one its index answers. */
const EQUALITY_FILTERS = ['event_id', 'assigned_to', 'created_by', 'status', 'priority'] as const

/** Created-date bounds as a key condition on the ULID id: [from, to). */
function createdRange (from: string | undefined, to: string | undefined): KeyCondition['sort'] {
  const lo = from ? idFrom(Date.parse(from)) : undefined
  const hi = to ? idBefore(Date.parse(to)) : undefined
  if (lo && hi) return { name: 'id', op: 'between', value: lo, to: hi }
  if (lo) return { name: 'id', op: '>=', value: lo }
  if (hi) return { name: 'id', op: '<=', value: hi }
  return undefined
}

/**
 * A page of tasks of one index, newest first: `attr = value` and the created-date range are
 * the key condition, the other filters apply to the pages read. The cursor is bound to the
 * list and all its filters.
 */
function readTasks (ctx: Context, index: string, attr: string, value: string, q: TaskListQuery): Promise<Page<Task>> {
  const { limit, cursor, ...filters } = q
  // [from, to) with from = to is empty (and not a valid key range).
  if (q.created_from && q.created_to && Date.parse(q.created_from) >= Date.parse(q.created_to)) return Promise.resolve({ items: [], next_cursor: null })
  return readIndexPage(ctx.raw, ctx.cursors, {
    table: ctx.tables.tasks,
    index,
    key: { partition: [attr, value], sort: createdRange(q.created_from, q.created_to) },
    filter: where.and(
      where.notExists('deleted_at'),
      ...EQUALITY_FILTERS.map(f => f !== attr && q[f] !== undefined && where.eq(f, q[f])),
      q.due_from ? where.ge('due_at', q.due_from) : undefined,
      q.due_to ? where.lt('due_at', q.due_to) : undefined
    ),
    map: toTask,
    cursorScope: { list: 'tasks', ...filters },
    limit,
    cursor
  })
}

const listByEvent = (ctx: Context, eventId: string, q: TaskListQuery) => readTasks(ctx, 'event-id-index', 'event_id', eventId, q)
const listByAssignee = (ctx: Context, userId: string, q: TaskListQuery) => readTasks(ctx, 'assignee-id-index', 'assigned_to', userId, q)
const listByCreator = (ctx: Context, userId: string, q: TaskListQuery) => readTasks(ctx, 'creator-id-index', 'created_by', userId, q)
const listByStatus = (ctx: Context, status: string, q: TaskListQuery) => readTasks(ctx, 'status-id-index', 'status', status, q)
const listAll = (ctx: Context, q: TaskListQuery) => readTasks(ctx, 'entity-id-index', 'entity', 'task', q)

/** The access pattern of each indexed filter, most selective first. */
const BY_FILTER = [
  ['event_id', listByEvent],
  ['assigned_to', listByAssignee],
  ['created_by', listByCreator],
  ['status', listByStatus]
] as const

/** Tasks newest first: the most selective indexed filter picks the access pattern, else all. */
function list (ctx: Context, q: TaskListQuery): Promise<Page<Task>> {
  for (const [filter, read] of BY_FILTER) {
    const value = q[filter]
    if (value !== undefined) return read(ctx, value, q)
  }
  return listAll(ctx, q)
}

// ---------------------------------------------------------------------------------------------

export function createTasksRepository (tasks: TableModel, comments: TableModel, cursors: CursorCodec, raw: RawClient, history: TableModel, client: DynamoDB) {
  const ctx: Context = { raw, client, cursors, tables: { tasks: tasks.table().name, comments: comments.table().name, history: history.table().name } }
  return {
    scanAll: () => scanAll(ctx),
    getById: (id: string) => getById(ctx, id),
    getForChange: (id: string) => getForChange(ctx, id),
    getLive: (id: string) => getLive(ctx, id),
    getLiveWithComments: (id: string, limit: number) => getLiveWithComments(ctx, id, limit),
    create: (task: Task, marks?: string[]) => create(ctx, task, marks),
    update: (base: Task, fields: TaskFields, rule: TaskWriteRule, marks?: string[]) => update(ctx, base, fields, rule, marks),
    changeStatus: (base: Task, fields: TaskFields, rule: TaskWriteRule, change: StatusHistoryEntry, marks?: string[]) => changeStatus(ctx, base, fields, rule, change, marks),
    softDelete: (base: Task, by: string, rule: TaskWriteRule) => softDelete(ctx, base, by, rule),
    listHistory: (taskId: string, limit: number, cursor?: string) => listHistory(ctx, taskId, limit, cursor),
    list: (q: TaskListQuery) => list(ctx, q),
    listAll: (q: TaskListQuery) => listAll(ctx, q),
    listByEvent: (eventId: string, q: TaskListQuery) => listByEvent(ctx, eventId, q),
    listByAssignee: (userId: string, q: TaskListQuery) => listByAssignee(ctx, userId, q),
    listByCreator: (userId: string, q: TaskListQuery) => listByCreator(ctx, userId, q),
    listByStatus: (status: TaskStatus, q: TaskListQuery) => listByStatus(ctx, status, q),
    addComment: (comment: Comment, marks?: string[]) => addComment(ctx, comment, marks),
    listComments: (taskId: string, limit: number, cursor?: string) => listComments(ctx, taskId, limit, cursor),
    /** Notification marks (src/db/marks.ts): the ids of marked tasks in a shard, a task with its marks, a comment, and clearing them. */
    marked: async (shard: string, limit: number) => (await markedKeys<{ id: string }>(ctx.raw, ctx.tables.tasks, shard, limit)).map(k => k.id),
    withMarks: async (id: string) => {
      const item = await getItem(ctx, id)
      return item ? { task: toTask(item), marks: [...(item.notify ?? [])] } : null
    },
    getComment: async (taskId: string, id: string) => {
      const item = await ctx.raw.getItem<CommentItem>(ctx.tables.comments, { task_id: taskId, id })
      return item ? toComment(item) : null
    },
    clearMarks: (id: string, marks: string[]) => clearMarks(ctx.raw, ctx.tables.tasks, { id }, marks)
  }
}

export type TasksRepository = ReturnType<typeof createTasksRepository>
