import type { MonitoringEvent as MonitoringEventDto, MonitoringEventListItem, MonitoringEventSummary } from '../../openapi/generated/schemas.js'
import { severityRank, type Severity } from './monitoring-settings.js'
import type { NormalizedEvent } from './event-adapters.js'

/** An event as stored: the public fields plus concurrency and deletion marks. */
export interface MonitoringEvent extends MonitoringEventDto {
  version: number
  /** When retention ends (epoch seconds): the last write + retention days. */
  ttl: number
  deleted_at: string | null
  deleted_by: string | null
}

export type EventStatus = MonitoringEventDto['status']

/** An event as lists read it: everything but `raw` (the envelope, up to ~350 KB). */
export type ListedEvent = Omit<MonitoringEvent, 'raw'>

/**
 * A new occurrence of an unresolved event: the latest severity wins, and a rise in
 * severity reopens an event that operators had acknowledged.
 */
export function occurrenceChanges (current: Pick<MonitoringEvent, 'status' | 'severity' | 'last_seen_at'>, incoming: { severity: Severity, time: string }): {
  severity: Severity
  status: EventStatus
  last_seen_at: string
} {
  const rose = severityRank(incoming.severity) > severityRank(current.severity)
  return {
    severity: incoming.severity,
    status: current.status === 'acknowledged' && rose ? 'open' : current.status,
    last_seen_at: incoming.time > current.last_seen_at ? incoming.time : current.last_seen_at
  }
}

/**
 * A new open event of account `account` from what an adapter made of an envelope (`raw`: the
 * envelope as stored), created at `createdAt`, kept `retentionDays` from then.
 */
export function newEvent (id: string, account: string, ev: NormalizedEvent, raw: Record<string, unknown>, createdAt: string, retentionDays: number): MonitoringEvent {
  return {
    id,
    dedup_key: ev.dedup_key,
    source: ev.source,
    detail_type: ev.detail_type,
    account_id: account,
    region: ev.region,
    resources: ev.resources,
    resource_count: ev.resource_count,
    title: ev.title,
    description: ev.description,
    severity: ev.severity,
    native_severity: ev.native_severity,
    source_state: ev.source_state,
    status: 'open',
    occurrence_count: 1,
    occurred_at: ev.occurred_at,
    last_seen_at: ev.occurred_at,
    resolved_at: null,
    task_id: null,
    labels: ev.labels,
    raw,
    created_at: createdAt,
    updated_at: createdAt,
    version: 1,
    ttl: retentionEnd(Date.parse(createdAt), retentionDays),
    deleted_at: null,
    deleted_by: null
  }
}

/**
 * The end of an event's retention, in epoch seconds: counted from when we last wrote it (not
 * from the AWS event time, so a replayed old event is not dropped on arrival).
 */
export const retentionEnd = (writtenAtMs: number, retentionDays: number): number =>
  Math.ceil(writtenAtMs / 1000) + retentionDays * 86400

export const isExpired = (e: Pick<MonitoringEvent, 'ttl'>, nowMs = Date.now()): boolean => e.ttl * 1000 <= nowMs

export const toEventListItem = (e: ListedEvent): MonitoringEventListItem => ({
  id: e.id,
  dedup_key: e.dedup_key,
  source: e.source,
  detail_type: e.detail_type,
  account_id: e.account_id,
  region: e.region,
  resources: e.resources,
  resource_count: e.resource_count,
  title: e.title,
  description: e.description,
  severity: e.severity,
  native_severity: e.native_severity,
  source_state: e.source_state,
  status: e.status,
  occurrence_count: e.occurrence_count,
  occurred_at: e.occurred_at,
  last_seen_at: e.last_seen_at,
  resolved_at: e.resolved_at,
  task_id: e.task_id,
  labels: e.labels,
  created_at: e.created_at,
  updated_at: e.updated_at
})

export const toEventDto = (e: MonitoringEvent): MonitoringEventDto => ({ ...toEventListItem(e), raw: e.raw })

export const toEventSummary = (e: ListedEvent): MonitoringEventSummary => ({
  id: e.id,
  title: e.title,
  severity: e.severity,
  source: e.source,
  account_id: e.account_id,
  status: e.status,
  occurred_at: e.occurred_at,
  last_seen_at: e.last_seen_at
})
