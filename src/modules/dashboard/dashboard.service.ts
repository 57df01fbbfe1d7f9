import { count, counterKey } from '../../domain/stats.js'
import { toEventSummary, type ListedEvent } from '../../domain/events.js'
import type { Actor } from '../../domain/users.js'
import type { Counters, StatsRepository } from './stats.repository.js'

const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'] as const
const SOURCES = ['aws.cloudwatch', 'aws.guardduty', 'aws.securityhub', 'aws.health'] as const
const EVENT_STATUSES = ['open', 'acknowledged', 'resolved', 'suppressed'] as const
const TASK_STATUSES = ['open', 'in_progress', 'closed'] as const
const PRIORITIES = ['critical', 'high', 'medium', 'low'] as const
const ROLES = ['admin', 'manager', 'user'] as const

const by = <K extends string>(c: Counters, dimension: string, values: readonly K[]): Record<K, number> =>
  Object.fromEntries(values.map(v => [v, count(c, counterKey(dimension, v))])) as Record<K, number>

const mean = (c: Counters, name: string): number | null => {
  const n = count(c, `${name}:n`)
  return n > 0 ? Math.round((count(c, `${name}:sum`) / n) * 10) / 10 : null
}

/**
 * The dashboard reads counters (a few items, fetched together) and, for `recent`, one index
 * query with a small limit: its cost does not grow with the number of events or tasks.
 */
export function createDashboardService (stats: StatsRepository, recentEvents: (limit: number) => Promise<ListedEvent[]>) {
  const staff = (actor: Actor): boolean => actor.role === 'admin' || actor.role === 'manager'
  const eventsSummary = (c: Counters) => ({ total: count(c, 'total'), open: count(c, counterKey('status', 'open')) + count(c, counterKey('status', 'acknowledged')), by_severity: by(c, 'severity', SEVERITIES) })
  const usersStats = (c: Counters) => ({ total: count(c, 'total'), active: count(c, 'active'), by_role: by(c, 'role', ROLES) })

  return {
    async overview (actor: Actor) {
      const c = await stats.read(['events', 'tasks', `user#${actor.id}`, ...(staff(actor) ? ['users'] : [])])
      const users = c.users ? usersStats(c.users) : null
      return {
        events: eventsSummary(c.events ?? {}),
        tasks: { total: count(c.tasks ?? {}, 'total'), by_status: by(c.tasks ?? {}, 'status', TASK_STATUSES), my_open_tasks: count(c[`user#${actor.id}`] ?? {}, 'open') },
        users: users && { total: users.total, active: users.active },
        generated_at: new Date().toISOString()
      }
    },

    async eventsStats () {
      const [c, recent] = await Promise.all([stats.read(['events']), recentEvents(10)])
      const e = c.events ?? {}
      return {
        total: count(e, 'total'),
        by_severity: by(e, 'severity', SEVERITIES),
        by_source: by(e, 'source', SOURCES),
        by_status: by(e, 'status', EVENT_STATUSES),
        recent: recent.map(toEventSummary)
      }
    },

    async tasksStats (actor: Actor) {
      const c = await stats.read(['tasks', `user#${actor.id}`])
      const t = c.tasks ?? {}
      return {
        total: count(t, 'total'),
        by_status: by(t, 'status', TASK_STATUSES),
        by_priority: by(t, 'priority', PRIORITIES),
        my_open_tasks: count(c[`user#${actor.id}`] ?? {}, 'open'),
        mean_time_to_first_action_seconds: mean(t, 'first_action'),
        mean_time_to_close_seconds: mean(t, 'close')
      }
    },

    async usersStats () {
      return usersStats((await stats.read(['users'])).users ?? {})
    }
  }
}
