import dynamoose from 'dynamoose'
import type { Item } from 'dynamoose/dist/Item.js'
import { MODEL_OPTIONS } from '../../db/model-options.js'

/**
 * Table `<prefix>tasks`: one item per task; its status history lives in the item and is
 * appended in the same conditional write that changes the status (atomic without
 * transactions). Every GSI has the ULID `id` as range key: newest first, and created-date
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
 */
export interface HistoryItem {
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
      schema: { from: String, to: String, changed_by: String, changed_at: String, comment: String }
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

const options = MODEL_OPTIONS

export const defineTasksModel = (prefix: string) => dynamoose.model<TaskItem>(`${prefix}tasks`, taskSchema, options)
export const defineCommentsModel = (prefix: string) => dynamoose.model<CommentItem>(`${prefix}task-comments`, commentSchema, options)

export type TasksModel = ReturnType<typeof defineTasksModel>
export type CommentsModel = ReturnType<typeof defineCommentsModel>
