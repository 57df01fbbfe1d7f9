import type { MonitoringSettings, Severity } from '../../openapi/generated/schemas.js'

export type { MonitoringSettings, Severity }

/** What ingestion uses until an admin changes it. */
export const DEFAULT_MONITORING_SETTINGS: Omit<MonitoringSettings, 'version' | 'updated_at' | 'updated_by'> = {
  enabled_sources: ['aws.cloudwatch', 'aws.guardduty', 'aws.securityhub', 'aws.health'],
  min_severity: 'info',
  cloudwatch_default_severity: 'medium',
  health_category_severities: { issue: 'high', accountNotification: 'low', scheduledChange: 'medium', investigation: 'high' },
  retention_days: 365
}

const RANK: Record<Severity, number> = { info: 0, low: 1, medium: 2, high: 3, critical: 4 }

export const severityRank = (s: Severity): number => RANK[s]

export const meetsMinSeverity = (severity: Severity, min: Severity): boolean => RANK[severity] >= RANK[min]
