import type { Deltas } from '../../domain/stats.js'
import type { StatsModel } from './stats.model.js'

export type Counters = Record<string, number>

const numbers = (item: Record<string, unknown> | undefined): Counters => {
  const out: Counters = {}
  for (const [k, v] of Object.entries(item ?? {})) if (typeof v === 'number') out[k] = v
  return out
}

export function createStatsRepository (stats: StatsModel) {
  return {
    /** Applies counter changes atomically (concurrent writers never lose an increment). */
    async apply (pk: string, deltas: Deltas): Promise<void> {
      if (Object.keys(deltas).length === 0) return
      await stats.update({ pk }, { $ADD: deltas } as never)
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
