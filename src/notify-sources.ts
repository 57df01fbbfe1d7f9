import { decodeTime } from 'ulid'
import type { Repositories } from './data.js'
import { eventNotification, parseMark, taskNotification, type ChangeKind } from './domain/notification-delivery.js'
import type { MarkSource } from './modules/notifications/worker.js'

/**
 * Where the notification worker finds marked changes: the events and tasks tables (the marks
 * are written by ingestion and the tasks module: src/db/marks.ts). Composition root: it reads
 * other modules' repositories for the notifications module, which imports none of them.
 */

/** A comment mark whose comment is not stored yet waits this long (the comment is written right after its count). */
const COMMENT_WAIT_MS = 30_000

export function notifySources (repos: Pick<Repositories, 'events' | 'tasks'>, consoleUrl: string | null): MarkSource[] {
  const events: MarkSource = {
    name: 'event',
    marked: (shard, limit) => repos.events.marked(shard, limit),
    clear: (id, marks) => repos.events.clearMarks(id, marks),
    async read (id) {
      const found = await repos.events.withMarks(id)
      if (!found) return []
      const { event, marks } = found
      return marks.map((mark) => {
        const m = parseMark(mark)
        if (!m || !m.kind.startsWith('event.') || event.deleted_at) return { mark, change: null }
        const at = m.kind === 'event.created' ? event.created_at : m.kind === 'event.resolved' ? event.resolved_at ?? event.updated_at : event.last_seen_at
        return {
          mark,
          change: {
            notification: eventNotification(m.kind as Parameters<typeof eventNotification>[0], event, at, consoleUrl),
            facts: { kind: m.kind, severity: event.severity, source: event.source, account_id: event.account_id }
          }
        }
      })
    }
  }
  const tasks: MarkSource = {
    name: 'task',
    marked: (shard, limit) => repos.tasks.marked(shard, limit),
    clear: (id, marks) => repos.tasks.clearMarks(id, marks),
    async read (id) {
      const found = await repos.tasks.withMarks(id)
      if (!found) return []
      const { task, marks } = found
      return Promise.all(marks.map(async (mark) => {
        const m = parseMark(mark)
        if (!m || !m.kind.startsWith('task.') || task.deleted_at) return { mark, change: null }
        const facts = { kind: m.kind as ChangeKind }
        if (m.kind !== 'task.commented') return { mark, change: { notification: taskNotification(m, task, task.updated_at, consoleUrl), facts } }
        const comment = await repos.tasks.getComment(id, m.ref)
        if (!comment) {
          let age = Infinity
          try { age = Date.now() - decodeTime(m.ref) } catch { /* not a ULID: never stored */ }
          return { mark, change: age < COMMENT_WAIT_MS ? 'wait' as const : null }
        }
        return { mark, change: { notification: taskNotification(m, task, comment.created_at, consoleUrl, comment), facts } }
      }))
    }
  }
  return [events, tasks]
}
