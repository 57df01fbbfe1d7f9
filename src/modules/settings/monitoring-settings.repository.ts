import dynamoose from 'dynamoose'
import { DomainError } from '../../domain/errors.js'
import { DEFAULT_MONITORING_SETTINGS, type MonitoringSettings } from '../../domain/monitoring-settings.js'
import { isConditionFailed } from '../../db/errors.js'
import type { MetaModel } from '../../db/meta.model.js'

const KEY = { pk: 'settings#monitoring' }
const EPOCH = '1970-01-01T00:00:00.000Z'

/**
 * The monitoring settings: one item, versioned. Ingestion reads them on every batch, so a
 * copy is kept for one second (a change applies within a second on every instance).
 */
export function createMonitoringSettingsRepository (meta: MetaModel, cacheMs = 1000) {
  let cached: { at: number, value: MonitoringSettings } | undefined

  async function read (): Promise<MonitoringSettings> {
    const item = await meta.get(KEY, { consistent: true })
    if (!item?.data) return { ...DEFAULT_MONITORING_SETTINGS, version: 1, updated_at: EPOCH, updated_by: null }
    return { ...DEFAULT_MONITORING_SETTINGS, updated_at: EPOCH, updated_by: null, ...(JSON.parse(item.data) as Partial<MonitoringSettings>), version: item.version ?? 1 }
  }

  return {
    get: read,

    async getCached (): Promise<MonitoringSettings> {
      const now = Date.now()
      if (!cached || now - cached.at > cacheMs) cached = { at: now, value: await read() }
      return cached.value
    },

    /** Writes the new settings if the stored version is still `expectedVersion`. */
    async put (next: Omit<MonitoringSettings, 'version'>, expectedVersion: number): Promise<MonitoringSettings> {
      const data = JSON.stringify(next)
      const version = expectedVersion + 1
      try {
        await meta.update(KEY, { $SET: { data, version, updated_at: next.updated_at } }, {
          // Version 1 is the implicit default: the item may not exist yet.
          condition: expectedVersion === 1
            ? new dynamoose.Condition('pk').not().exists().or().where('version').eq(1)
            : new dynamoose.Condition('version').eq(expectedVersion)
        })
      } catch (err) {
        if (isConditionFailed(err)) throw new DomainError('precondition_failed', 'The settings were changed by someone else (ETag mismatch).')
        throw err
      }
      cached = undefined
      return { ...next, version }
    }
  }
}

export type MonitoringSettingsRepository = ReturnType<typeof createMonitoringSettingsRepository>
