import dynamoose from 'dynamoose'
import type { Item } from 'dynamoose/dist/Item.js'
import { MODEL_OPTIONS } from '../../db/model-options.js'

/**
 * Table `<prefix>tasks`: one item per task. The item holds its 20 most recent status changes
 * (`status_history`), rewritten by the same conditional write that changes the status, so the
 * item has a size bound whatever the number of changes. Every GSI has the ULID `id` as range key: newest first, and created-date
 * ranges become key conditions (`id` between the ULIDs of two instants).
 *
 * | access pattern            | key / index                                   |
 * | ------------------------- | --------------------------------------------- |
 * | getById                   | table: id                                     |
 * | listAll                   | GSI `entity-id-index`: entity = 'task', id    |
 * | listByStatus              | GSI `status-id-index`: status, id             |
 * | listByAssignee (incl. me) | GSI `assignee-id-index`: assigned_to, id (sparse: unassigned tasks absent) |
 * | listByCreator             | GSI `creator-id-index`: created_by, id        |
 * | listByEvent               | GSI `event-id-index`: event_id, id (sparse)   |
 * | other filters             | filter expressions on the pages read (priority, due dates, deleted) |
 *
 * Table `<prefix>task-comments`: hash task_id, range id (oldest first); append-only, so
 * parallel comments never conflict and a task with thousands of comments reads one page.
 *
 * Table `<prefix>task-history`: every status change of a task, hash task_id, range seq
 * (oldest first). `seq` is deterministic, so writing an entry again is harmless:
 * `v<version>` (the task version the change produced, 10 digits) for changes written by this
 * version, `a<index>#<changed_at>` for entries of a legacy `status_history` list (written
 * before the bound, position in that append-only list). 'a' < 'v': legacy entries come first.
 *
 * | access pattern            | key                                           |
 * | ------------------------- | --------------------------------------------- |
 * | listHistory (oldest first, after a seq) | table: task_id, seq > :after    |
 *
 * An entry reaches that table before any write drops it from the task item (see
 * tasks.repository.ts, `changeStatus`), and the history reader merges the item's recent
 * entries with the table: no entry is lost if the process stops between the two writes.
 */
export interface HistoryItem {
  from: string
  to: string
  changed_by: string
  changed_at: string
  comment?: string
  /** The entry's key in the history table (absent on entries of a legacy list). */
  seq?: string
}

export interface HistoryRecordItem extends Item {
  task_id: string
  seq: string
  from: string
  to: string
  changed_by: string
  changed_at: string
  comment?: string
}

export interface TaskItem extends Item {
  id: string
  entity: 'task'
  title: string
  description?: string
  status: 'open' | 'in_progress' | 'closed'
  priority: 'critical' | 'high' | 'medium' | 'low'
  assigned_to?: string
  created_by: string
  event_id?: string
  due_at?: string
  closed_at?: string
  first_action_at?: string
  version: number
  /** Comments written for the task (never below the truth; absent on items older than it). */
  comment_count?: number
  status_history: HistoryItem[]
  created_at: string
  updated_at: string
  deleted_at?: string
  deleted_by?: string
}

export interface CommentItem extends Item {
  task_id: string
  id: string
  author_id: string
  body: string
  created_at: string
}

const gsi = (name: string) => ({ name, type: 'global' as const, rangeKey: 'id' })

const taskSchema = new dynamoose.Schema({
  id: { type: String, hashKey: true },
  entity: { type: String, index: gsi('entity-id-index') },
  title: { type: String, required: true },
  description: String,
  status: { type: String, required: true, index: gsi('status-id-index') },
  priority: { type: String, required: true },
  assigned_to: { type: String, index: gsi('assignee-id-index') },
  created_by: { type: String, required: true, index: gsi('creator-id-index') },
  event_id: { type: String, index: gsi('event-id-index') },
  due_at: String,
  closed_at: String,
  first_action_at: String,
  version: { type: Number, required: true },
  comment_count: Number,
  status_history: {
    type: Array,
    schema: [{
      type: Object,
      schema: { from: String, to: String, changed_by: String, changed_at: String, comment: String, seq: String }
    }]
  },
  created_at: { type: String, required: true },
  updated_at: { type: String, required: true },
  deleted_at: String,
  deleted_by: String
})

const commentSchema = new dynamoose.Schema({
  task_id: { type: String, hashKey: true },
  id: { type: String, rangeKey: true },
  author_id: { type: String, required: true },
  body: { type: String, required: true },
  created_at: { type: String, required: true }
})

const historySchema = new dynamoose.Schema({
  task_id: { type: String, hashKey: true },
  seq: { type: String, rangeKey: true },
  from: { type: String, required: true },
  to: { type: String, required: true },
  changed_by: { type: String, required: true },
  changed_at: { type: String, required: true },
  comment: String
})

const options = MODEL_OPTIONS

export const defineTasksModel = (prefix: string) => dynamoose.model<TaskItem>(`${prefix}tasks`, taskSchema, options)
export const defineCommentsModel = (prefix: string) => dynamoose.model<CommentItem>(`${prefix}task-comments`, commentSchema, options)

export const defineTaskHistoryModel = (prefix: string) => dynamoose.model<HistoryRecordItem>(`${prefix}task-history`, historySchema, options)

export type TasksModel = ReturnType<typeof defineTasksModel>
export type CommentsModel = ReturnType<typeof defineCommentsModel>
export type TaskHistoryModel = ReturnType<typeof defineTaskHistoryModel>
