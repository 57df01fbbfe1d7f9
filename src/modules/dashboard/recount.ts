import { isExpired } from '../../domain/events.js'
import { eventCounts, openTaskOf, recount, taskCounts, userCounts, type Deltas } from '../../domain/stats.js'
import type { MonitoringEvent } from '../../domain/events.js'
import type { Task } from '../../domain/tasks.js'
import type { User } from '../../domain/users.js'
import type { StatsRepository } from './stats.repository.js'

async function collect<T> (items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const item of items) out.push(item)
  return out
}

/**
 * What a recount reads (every user, task and event: each repository's `scanAll`, a paged scan
 * through the data toolkit) and writes (the counters).
 */
export interface RecountSources {
  users: { scanAll: () => AsyncIterable<User> }
  tasks: { scanAll: () => AsyncIterable<Task> }
  /** `claimExpiry`: marks an expired event as no longer counted (its later removal changes nothing). */
  events: { scanAll: () => AsyncIterable<MonitoringEvent>, claimExpiry: (id: string) => Promise<boolean> }
  stats: Pick<StatsRepository, 'keys' | 'replace'>
}

/**
 * Rebuilds every dashboard counter from the tables (a full scan: maintenance only, for
 * repair after a crash between an item write and its counter update). Run it while writes
 * are quiet: a write that lands during the scan may be counted twice or not at all.
 */
export async function recountStats (repos: RecountSources): Promise<Record<string, Deltas>> {
  const [users, tasks, events] = await Promise.all([collect(repos.users.scanAll()), collect(repos.tasks.scanAll()), collect(repos.events.scanAll())])
  // Events past their retention no longer count (TTL or the retention sweep deletes them; reads
  // hide them until then). Their removal must then not be counted out again: claim it now, as
  // the expiry path would (modules/events/expiry.service.ts).
  const now = Date.now()
  const expired = events.filter(e => e.deleted_at === null && isExpired(e, now))
  for (const e of expired) await repos.events.claimExpiry(e.id)
  const eventFacts = events.map(e => ({ severity: e.severity, source: e.source, status: e.status, deleted: e.deleted_at !== null || isExpired(e, now) }))
  const taskFacts = tasks.map(t => ({ status: t.status, priority: t.priority, assigned_to: t.assigned_to, deleted: t.deleted_at !== null, created_at: t.created_at, first_action_at: t.first_action_at, closed_at: t.closed_at }))
  const counters: Record<string, Deltas> = {
    events: recount(eventFacts, eventCounts),
    tasks: recount(taskFacts, taskCounts),
    users: recount(users.map(u => ({ role: u.role, is_active: u.is_active })), userCounts)
  }
  for (const t of taskFacts) {
    const assignee = openTaskOf(t)
    if (assignee) counters[`user#${assignee}`] = { open: (counters[`user#${assignee}`]?.open ?? 0) + 1 }
  }
  // Users whose open-task counter should now be zero.
  for (const pk of await repos.stats.keys()) if (!counters[pk]) counters[pk] = {}
  for (const [pk, c] of Object.entries(counters)) await repos.stats.replace(pk, c)
  return counters
}
