import type { TaskPriority, TaskStatus } from '../../domain/tasks.js'
import { attr, entity, type ItemOf } from '../../db/entity.js'
import { MARK_ATTRIBUTES } from '../../db/marks.js'

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
 * | changes to notify         | GSI `notify-index` (sparse, keys only): notify_shard (the worker) |
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
/** A status change as the task item keeps it (one of its 20 most recent). */
const historyEntry = attr.map({
  from: attr.string().required(),
  to: attr.string().required(),
  changed_by: attr.string().required(),
  changed_at: attr.string().required(),
  comment: attr.string(),
  /** The entry's key in the history table (absent on entries of a legacy list). */
  seq: attr.string()
})

export const Tasks = entity('tasks', {
  id: attr.string().hashKey(),
  entity: attr.string<'task'>().required().gsi('entity-id-index', 'id'),
  title: attr.string().required(),
  description: attr.string(),
  status: attr.string<TaskStatus>().required().gsi('status-id-index', 'id'),
  priority: attr.string<TaskPriority>().required(),
  assigned_to: attr.string().gsi('assignee-id-index', 'id'),
  created_by: attr.string().required().gsi('creator-id-index', 'id'),
  event_id: attr.string().gsi('event-id-index', 'id'),
  due_at: attr.string(),
  closed_at: attr.string(),
  first_action_at: attr.string(),
  version: attr.number().required(),
  /** Comments written for the task (never below the truth; absent on items older than it). */
  comment_count: attr.number(),
  status_history: attr.list(historyEntry).required(),
  created_at: attr.string().required(),
  updated_at: attr.string().required(),
  deleted_at: attr.string(),
  deleted_by: attr.string(),
  ...MARK_ATTRIBUTES
})

export const Comments = entity('task-comments', {
  task_id: attr.string().hashKey(),
  id: attr.string().rangeKey(),
  author_id: attr.string().required(),
  body: attr.string().required(),
  created_at: attr.string().required()
})

export const TaskHistory = entity('task-history', {
  task_id: attr.string().hashKey(),
  seq: attr.string().rangeKey(),
  from: attr.string().required(),
  to: attr.string().required(),
  changed_by: attr.string().required(),
  changed_at: attr.string().required(),
  comment: attr.string()
})

export type TaskItem = ItemOf<typeof Tasks>
export type HistoryItem = TaskItem['status_history'][number]
export type CommentItem = ItemOf<typeof Comments>
export type HistoryRecordItem = ItemOf<typeof TaskHistory>
