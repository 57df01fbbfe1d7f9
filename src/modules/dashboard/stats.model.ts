import { attr, entity, type ItemOf } from '../../db/entity.js'

/**
 * Table `<prefix>stats`: the dashboard counters, a handful of items updated with atomic ADD
 * by the writes that change what they count (see src/domain/stats.ts).
 *
 * | item         | counters                                                               |
 * | ------------ | ---------------------------------------------------------------------- |
 * | `events`, `events#0` … `events#7` | total, severity:*, source:*, status:* (summed on read: write shards, stats.repository.ts `SHARDS`) |
 * | `tasks`      | total, status:*, priority:*, first_action:sum/n, close:sum/n           |
 * | `users`      | total, active, role:*                                                  |
 * | `user#<id>`  | open: open and in-progress tasks assigned to the user                 |
 */
export const Stats = entity('stats', { pk: attr.string().hashKey() }, { saveUnknown: true })

/** The counters are attributes named at run time (saveUnknown). */
export type StatsItem = ItemOf<typeof Stats> & Record<string, unknown>
