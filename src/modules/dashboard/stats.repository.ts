import type { RawClient } from '../../db/raw.js'
import type { Deltas } from '../../domain/stats.js'
import type { StatsModel } from './stats.model.js'

export type Counters = Record<string, number>

const numbers = (item: Record<string, unknown> | undefined): Counters => {
  const out: Counters = {}
  for (const [k, v] of Object.entries(item ?? {})) if (typeof v === 'number') out[k] = v
  return out
}

export function createStatsRepository (stats: StatsModel, raw: RawClient) {
  const table = stats.table().name
  return {
    /** Applies counter changes atomically (concurrent writers never lose an increment). */
    async apply (pk: string, deltas: Deltas): Promise<void> {
      const entries = Object.entries(deltas)
      if (entries.length === 0) return
      // Counter names such as `source:aws_cloudwatch` are aliased, never written into the expression.
      await raw.update(table, { pk }, {
        update: `ADD ${entries.map((_, i) => `#c${i} :c${i}`).join(', ')}`,
        names: Object.fromEntries(entries.map(([name], i) => [`#c${i}`, name])),
        values: Object.fromEntries(entries.map(([, delta], i) => [`:c${i}`, delta]))
      })
    },

    /** Reads several counter items in one request. */
    async read (pks: string[]): Promise<Record<string, Counters>> {
      const items = await stats.batchGet(pks.map(pk => ({ pk })))
      const out: Record<string, Counters> = Object.fromEntries(pks.map(pk => [pk, {}]))
      for (const item of items) {
        const plain = item.toJSON() as Record<string, unknown>
        out[String(plain.pk)] = numbers(plain)
      }
      return out
    },

    /** Replaces an item's counters (the recount). */
    async replace (pk: string, counters: Counters): Promise<void> {
      await stats.create({ pk, ...counters }, { overwrite: true })
    },

    async keys (): Promise<string[]> {
      const res = await stats.scan().attributes(['pk']).all().exec()
      return res.map(i => String(i.pk))
    }
  }
}

export type StatsRepository = ReturnType<typeof createStatsRepository>
