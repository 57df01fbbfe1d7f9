import fp from 'fastify-plugin'
import type { MonitoringEvent } from '../domain/events.js'
import { eventDeltas, eventFacts, recount, taskDeltas, taskFacts, userDeltas, userFacts, type Deltas } from '../domain/stats.js'
import type { Task } from '../domain/tasks.js'
import type { User } from '../domain/users.js'

/**
 * Keeps the dashboard counters in step with the data: services report each write as the
 * item before and after it, and the difference is applied with atomic ADDs. A failure here
 * never fails the request (the item write is the truth); `npm run recount-stats` repairs
 * counters after such a failure or a crash between the two writes.
 */
export interface StatsRecorder {
  event: (before: MonitoringEvent | null, after: MonitoringEvent | null) => Promise<void>
  task: (before: Task | null, after: Task | null) => Promise<void>
  user: (before: User | null, after: User | null) => Promise<void>
  /** A recorder of many event writes (an ingested batch) that applies their sum once. */
  batch: () => StatsBatch
}

/**
 * Event writes recorded as they happen and applied together by `flush`: one ADD per counter
 * item whatever the number of writes. Flush also after a failure (the writes that were made
 * stay made); like every counter update, a failed flush is logged, never thrown.
 */
export interface StatsBatch {
  event: (before: MonitoringEvent | null, after: MonitoringEvent | null) => void
  flush: () => Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    stats: StatsRecorder
  }
}

// The item before or after a write (null: none) as what the counters look at.
const ofEvent = (e: MonitoringEvent | null) => e && eventFacts(e)
const ofTask = (t: Task | null) => t && taskFacts(t)
const ofUser = (u: User | null) => u && userFacts(u)

export interface StatsPluginOptions {
  /** Where the counters live (the dashboard module's repository). */
  store: { apply: (pk: string, deltas: Deltas) => Promise<void> }
}

export default fp<StatsPluginOptions>(async (app, opts) => {
  const stats = opts.store
  const apply = async (items: Array<[string, Deltas]>): Promise<void> => {
    try {
      await Promise.all(items.map(([pk, d]) => stats.apply(pk, d)))
    } catch (err) {
      app.log.error({ err, counters: items.map(([pk]) => pk) }, 'dashboard counters not updated; run npm run recount-stats')
    }
  }
  app.decorate('stats', {
    event: (before, after) => apply([['events', eventDeltas(ofEvent(before), ofEvent(after))]]),
    task: (before, after) => {
      const { global, perUser } = taskDeltas(ofTask(before), ofTask(after))
      return apply([['tasks', global], ...Object.entries(perUser).map(([id, d]): [string, Deltas] => [`user#${id}`, d])])
    },
    user: (before, after) => apply([['users', userDeltas(ofUser(before), ofUser(after))]]),
    batch: () => {
      let pending: Deltas[] = []
      return {
        event: (before, after) => { pending.push(eventDeltas(ofEvent(before), ofEvent(after))) },
        flush: async () => {
          const sum = recount(pending, d => d)
          pending = []
          if (Object.keys(sum).length) await apply([['events', sum]])
        }
      }
    }
  } satisfies StatsRecorder)
}, { name: 'stats', dependencies: ['dynamo'] })
