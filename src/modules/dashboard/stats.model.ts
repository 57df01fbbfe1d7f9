import dynamoose from 'dynamoose'
import type { Item } from 'dynamoose/dist/Item.js'
import { MODEL_OPTIONS } from '../../db/model-options.js'

/**
 * Table `<prefix>stats`: the dashboard counters, a handful of items updated with atomic ADD
 * by the writes that change what they count (see src/domain/stats.ts).
 *
 * | item         | counters                                                               |
 * | ------------ | ---------------------------------------------------------------------- |
 * | `events`     | total, severity:*, source:*, status:*                                  |
 * | `tasks`      | total, status:*, priority:*, first_action:sum/n, close:sum/n           |
 * | `users`      | total, active, role:*                                                  |
 * | `user#<id>`  | open: open and in-progress tasks assigned to the user                 |
 */
export interface StatsItem extends Item {
  pk: string
  [counter: string]: unknown
}

const schema = new dynamoose.Schema({ pk: { type: String, hashKey: true } }, { saveUnknown: true })

export const defineStatsModel = (prefix: string) =>
  dynamoose.model<StatsItem>(`${prefix}stats`, schema, MODEL_OPTIONS)

export type StatsModel = ReturnType<typeof defineStatsModel>
