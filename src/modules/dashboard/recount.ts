import { isExpired } from '../../domain/events.js'
import { eventCounts, eventFacts, openTaskOf, recount, taskCounts, taskFacts, userCounts, userFacts, type Deltas } from '../../domain/stats.js'
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
  // The same facts the writes count (domain/stats.ts); an expired event counts as deleted.
  const eventsCounted = events.map(e => ({ ...eventFacts(e), deleted: e.deleted_at !== null || isExpired(e, now) }))
  const tasksCounted = tasks.map(taskFacts)
  const counters: Record<string, Deltas> = {
    events: recount(eventsCounted, eventCounts),
    tasks: recount(tasksCounted, taskCounts),
    users: recount(users.map(userFacts), userCounts)
  }
  for (const t of tasksCounted) {
    const assignee = openTaskOf(t)
    if (assignee) counters[`user#${assignee}`] = { open: (counters[`user#${assignee}`]?.open ?? 0) + 1 }
  }
  // Users whose open-task counter should now be zero.
  for (const pk of await repos.stats.keys()) if (!counters[pk]) counters[pk] = {}
  for (const [pk, c] of Object.entries(counters)) await repos.stats.replace(pk, c)
  return counters
}
