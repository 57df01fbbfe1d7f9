import { DEFAULT_MONITORING_SETTINGS, type MonitoringSettings } from '../../domain/monitoring-settings.js'
import { writeOrExplain, type WriteOutcome } from '../../db/access.js'
import { where } from '../../db/expressions.js'
import type { MetaItem } from '../../db/meta.model.js'
import type { RawClient } from '../../db/raw.js'
import type { TableModel } from '../../db/tables.js'

const KEY = { pk: 'settings#monitoring' }
const EPOCH = '1970-01-01T00:00:00.000Z'

/** Why the settings were not written: they are no longer at the version the write was decided on. */
export interface SettingsRefusal { reason: 'stale' }

/** What every function of this repository works with. */
interface Context {
  raw: RawClient
  table: string
}

async function read (ctx: Context): Promise<MonitoringSettings> {
  const item = await ctx.raw.getItem<MetaItem>(ctx.table, KEY)
  if (!item?.data) return { ...DEFAULT_MONITORING_SETTINGS, version: 1, updated_at: EPOCH, updated_by: null }
  return { ...DEFAULT_MONITORING_SETTINGS, updated_at: EPOCH, updated_by: null, ...(JSON.parse(item.data) as Partial<MonitoringSettings>), version: item.version ?? 1 }
}

/** Writes the new settings if the stored version is still `expectedVersion`. */
function put (ctx: Context, next: Omit<MonitoringSettings, 'version'>, expectedVersion: number): Promise<WriteOutcome<MonitoringSettings, SettingsRefusal>> {
  const version = expectedVersion + 1
  return writeOrExplain(async () => {
    await ctx.raw.updateItem(ctx.table, KEY, { set: { data: JSON.stringify(next), version, updated_at: next.updated_at } }, {
      // Version 1 is the implicit default: the item may not exist yet.
      condition: expectedVersion === 1 ? where.or(where.notExists('pk'), where.eq('version', 1)) : where.eq('version', expectedVersion)
    })
    return { ...next, version }
  }, async (): Promise<SettingsRefusal> => ({ reason: 'stale' }))
}

/**
 * The monitoring settings: one item, versioned. Ingestion reads them on every batch, so a
 * copy is kept for one second (a change applies within a second on every instance).
 */
export function createMonitoringSettingsRepository (meta: TableModel, raw: RawClient, cacheMs = 1000) {
  const ctx: Context = { raw, table: meta.table().name }
  let cached: { at: number, value: MonitoringSettings } | undefined
  return {
    get: () => read(ctx),

    async getCached (): Promise<MonitoringSettings> {
      const now = Date.now()
      if (!cached || now - cached.at > cacheMs) cached = { at: now, value: await read(ctx) }
      return cached.value
    },

    /** Writes the new settings if the stored version is still `expectedVersion` (else refused: `stale`). */
    async put (next: Omit<MonitoringSettings, 'version'>, expectedVersion: number): Promise<WriteOutcome<MonitoringSettings, SettingsRefusal>> {
      const written = await put(ctx, next, expectedVersion)
      if (written.ok) cached = undefined
      return written
    }
  }
}

export type MonitoringSettingsRepository = ReturnType<typeof createMonitoringSettingsRepository>
