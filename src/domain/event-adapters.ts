/**
 * Source adapters of event ingestion: each maps one Amazon EventBridge envelope of a supported
 * AWS source to a normalised monitoring event (see "Events and ingestion" in the API conventions).
 *
 * Pure functions: no I/O, no clock, no framework. The envelope `detail` is free-form JSON whose
 * shape AWS owns, so every field is read defensively; no input shape makes an adapter throw.
 */
import { createHash } from 'node:crypto'
import type { EventBridgeEnvelope, IgnoreReason, MonitoringSettings, Severity } from '../../openapi/generated/schemas.js'
import { parseTime } from './time.js'

export type AdapterSettings = Pick<MonitoringSettings, 'cloudwatch_default_severity' | 'health_category_severities'>

export type AdapterSource = 'aws.cloudwatch' | 'aws.guardduty' | 'aws.securityhub' | 'aws.health'

export interface NormalizedEvent {
  source: AdapterSource
  /** The envelope `detail-type`, truncated to 128 characters. */
  detail_type: string
  /** The envelope `region` (any token AWS uses, e.g. `global`), or `unknown` when it has none. */
  region: string
  /** At most 1024 characters. */
  dedup_key: string
  /** 1 to 512 characters. */
  title: string
  /** At most 8192 characters. */
  description: string | null
  severity: Severity
  /** The source's own severity as text (GuardDuty score, Security Hub label, alarm tag…), at most 64 characters. */
  native_severity: string | null
  source_state: 'active' | 'resolved' | 'pending'
  /** The envelope `time` as canonical ISO UTC with milliseconds. */
  occurred_at: string
  /** At most 50 ARNs, each at most 2048 characters. */
  resources: string[]
  /** How many resources the envelope listed (`resources.length` when they came from `detail`). */
  resource_count: number
  /** At most 50 entries; keys 1 to 128 characters, values at most 256. */
  labels: Record<string, string>
}

/**
 * What one item of an envelope (the envelope itself, or one Security Hub finding of it) maps
 * to: an event, or a reason to ignore it (`detail` says more, for logs and `ingest:check`).
 * `item` is the position of the finding in `detail.findings`, 0 for one-event envelopes.
 */
export type AdapterResult =
  | { kind: 'event', item: number, event: NormalizedEvent }
  | { kind: 'ignored', item: number, reason: IgnoreReason, detail: string }

/** Maps an envelope to one result per item; `receivedAt` (epoch ms) bounds the envelope time. */
export type Adapter = (envelope: EventBridgeEnvelope, settings: AdapterSettings, receivedAt?: number) => AdapterResult[]

export const DEFAULT_ADAPTER_SETTINGS: AdapterSettings = {
  cloudwatch_default_severity: 'medium',
  health_category_severities: { issue: 'high', accountNotification: 'low', scheduledChange: 'medium', investigation: 'high' }
}

/** Limits of the wire contract (`MonitoringEvent`). */
export const EVENT_LIMITS = {
  detailType: 128,
  dedupKey: 1024,
  title: 512,
  description: 8192,
  nativeSeverity: 64,
  resources: 50,
  resource: 2048,
  resourceBytes: 65536,
  labels: 50,
  labelKey: 128,
  labelValue: 256
} as const

/** The detail-types each source's adapter reads; any other detail-type is `unsupported_detail_type`. */
export const DETAIL_TYPES: Readonly<Record<AdapterSource, readonly string[]>> = {
  'aws.cloudwatch': ['CloudWatch Alarm State Change'],
  'aws.guardduty': ['GuardDuty Finding'],
  'aws.securityhub': ['Security Hub Findings - Imported', 'Security Hub Findings - Custom Action'],
  'aws.health': ['AWS Health Event', 'AWS Health Abuse Event']
}

/** An envelope time further ahead of the receiving clock than this is clamped to the time of receipt. */
export const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000
/** Findings of one Security Hub envelope mapped to events; the rest is one `too_many_findings` result. */
export const MAX_FINDINGS = 100

const SEVERITIES: readonly Severity[] = ['critical', 'high', 'medium', 'low', 'info']

/** Severity of a GuardDuty finding or Security Hub finding whose severity is missing or unreadable. */
const UNKNOWN_FINDING_SEVERITY: Severity = 'medium'
/** Length of the state reason kept in a CloudWatch title (the full reason is in the description). */
const CLOUDWATCH_TITLE_REASON = 160
/** Only this much of an alarm description is scanned for a `[severity:…]` marker. */
const SEVERITY_MARKER_SCAN = 4096

// ---------------------------------------------------------------------------------------------
// Defensive readers of free-form JSON
// ---------------------------------------------------------------------------------------------

type Json = Record<string, unknown>

const isRecord = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** Own property only: a `detail` key such as `constructor` never reaches the prototype. */
const prop = (value: unknown, key: string): unknown =>
  isRecord(value) && Object.hasOwn(value, key) ? value[key] : undefined

const path = (value: unknown, ...keys: string[]): unknown => {
  let current = value
  for (const key of keys) current = prop(current, key)
  return current
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

/** Lone UTF-16 surrogates (valid in JSON, not in UTF-8 storage) become U+FFFD. */
const wellFormed = (value: string): string => value.replace(LONE_SURROGATE, '\uFFFD')

/** A non-blank, well-formed string (trimmed), or undefined. */
const text = (value: unknown): string | undefined => {
  if (typeof value !== 'string') return undefined
  const trimmed = wellFormed(value).trim()
  return trimmed === '' ? undefined : trimmed
}

/** A non-blank string, or a finite number / boolean as text. */
const scalarText = (value: unknown): string | undefined => {
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : undefined
  if (typeof value === 'boolean') return String(value)
  return text(value)
}

/** A finite number, also from a numeric string (some producers send `"8.0"`). */
const numeric = (value: unknown): number | undefined => {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined
  const s = text(value)
  if (s === undefined || s.length > 64 || !/^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/.test(s)) return undefined
  const n = Number(s)
  return Number.isFinite(n) ? n : undefined
}

const list = (value: unknown): unknown[] => Array.isArray(value) ? value : []

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

/** The first `length` UTF-16 units of `value`, one less rather than half a surrogate pair. */
const head = (value: string, length: number): string => {
  if (value.length <= length) return value
  const last = value.charCodeAt(length - 1)
  return value.slice(0, last >= 0xd800 && last <= 0xdbff ? length - 1 : length)
}

/** Cuts `value` to at most `max` UTF-16 units (so also at most `max` code points), ending in `…`, never splitting a surrogate pair. */
export function truncate (value: string, max: number): string {
  if (value.length <= max) return value
  if (max <= 0) return ''
  return head(value, max - 1).trimEnd() + '…'
}

/** One line of readable text: control characters and whitespace runs become one space. */
const oneLine = (value: string, max: number): string =>
  // Cut first so that normalising a huge string stays cheap.
  // eslint-disable-next-line no-control-regex
  truncate(head(value, max * 4).replace(/[\s\u0000-\u001f\u007f]+/g, ' ').trim(), max)

const titleOf = (candidate: string | undefined, fallback: string): string => {
  const title = candidate === undefined ? '' : oneLine(candidate, EVENT_LIMITS.title)
  return title === '' ? oneLine(fallback, EVENT_LIMITS.title) : title
}

const descriptionOf = (...parts: Array<string | undefined>): string | null => {
  const joined = parts.filter((p): p is string => p !== undefined).join('\n\n')
  return joined === '' ? null : truncate(joined, EVENT_LIMITS.description)
}

const nativeSeverityOf = (value: string | undefined): string | null =>
  value === undefined ? null : oneLine(value, EVENT_LIMITS.nativeSeverity) || null

/** Keys longer than 1024 characters keep a readable prefix and end in the SHA-256 of the whole key. */
export function boundedKey (key: string): string {
  if (key.length <= EVENT_LIMITS.dedupKey) return key
  const hash = createHash('sha256').update(key, 'utf8').digest('hex')
  const suffix = `|sha256:${hash}`
  return head(key, EVENT_LIMITS.dedupKey - suffix.length) + suffix
}

/**
 * Unique non-blank strings of at most 2048 characters (longer ARNs are dropped, not cut), at most 50
 * and 64 KB of UTF-8 together (the event item must stay under DynamoDB's 400 KB).
 */
const resourcesOf = (candidates: readonly unknown[]): string[] => {
  const out: string[] = []
  let bytes = 0
  for (const candidate of candidates) {
    if (out.length >= EVENT_LIMITS.resources) break
    const s = text(candidate)
    if (s === undefined || s.length > EVENT_LIMITS.resource || out.includes(s)) continue
    bytes += Buffer.byteLength(s)
    if (bytes > EVENT_LIMITS.resourceBytes) break
    out.push(s)
  }
  return out
}

/** The envelope's resources as stored (the first 50 distinct) and how many it listed. */
const envelopeResources = (envelope: Json): { resources: string[], count: number } =>
  ({ resources: resourcesOf(list(envelope.resources)), count: list(envelope.resources).length })

/** The envelope's resources, or (when it lists none) those the adapter found in `detail`. */
const resourcesWithFallback = (envelope: Json, fallback: () => readonly unknown[]): { resources: string[], resource_count: number } => {
  const listed = envelopeResources(envelope)
  if (listed.resources.length > 0) return { resources: listed.resources, resource_count: listed.count }
  const candidates = fallback()
  return { resources: resourcesOf(candidates), resource_count: Math.max(countOf(candidates), listed.count) }
}

/** How many distinct non-blank strings `candidates` holds (resources before the 50 kept). */
const countOf = (candidates: readonly unknown[]): number => new Set(candidates.map(text).filter(s => s !== undefined)).size

/** Collects labels in insertion order; the first value of a key wins; at most 50. */
class Labels {
  private readonly entries = new Map<string, string>()

  add (key: string, value: unknown): this {
    if (this.entries.size >= EVENT_LIMITS.labels) return this
    const k = truncate(wellFormed(key).trim(), EVENT_LIMITS.labelKey)
    const v = scalarText(value)
    if (k === '' || v === undefined || this.entries.has(k)) return this
    this.entries.set(k, truncate(v, EVENT_LIMITS.labelValue))
    return this
  }

  /** A plain object; a key such as `__proto__` stays an own property. */
  toObject (): Record<string, string> {
    return Object.fromEntries(this.entries)
  }
}

// ---------------------------------------------------------------------------------------------
// Severity mappings
// ---------------------------------------------------------------------------------------------

const isSeverity = (value: unknown): value is Severity =>
  typeof value === 'string' && (SEVERITIES as readonly string[]).includes(value)

const SEVERITY_WORDS: Readonly<Record<string, Severity>> = {
  critical: 'critical',
  high: 'high',
  medium: 'medium',
  moderate: 'medium',
  low: 'low',
  info: 'info',
  informational: 'info'
}

/** A severity word (case-insensitive): the five levels plus `moderate` and `informational`. */
export function severityFromWord (value: unknown): Severity | undefined {
  const word = text(value)?.toLowerCase()
  return word !== undefined && Object.hasOwn(SEVERITY_WORDS, word) ? SEVERITY_WORDS[word] : undefined
}

/** GuardDuty: 9.0+ critical, 7.0+ high, 4.0+ medium, else low. */
export function guardDutySeverity (score: number): Severity {
  if (score >= 9) return 'critical'
  if (score >= 7) return 'high'
  if (score >= 4) return 'medium'
  return 'low'
}

const SECURITY_HUB_LABELS: Readonly<Record<string, Severity>> = {
  CRITICAL: 'critical',
  HIGH: 'high',
  MEDIUM: 'medium',
  LOW: 'low',
  INFORMATIONAL: 'info'
}

/** Security Hub `Severity.Normalized` (0–100): 90+ critical, 70+ high, 40+ medium, 1+ low, else info. */
export function securityHubNormalizedSeverity (normalized: number): Severity {
  if (normalized >= 90) return 'critical'
  if (normalized >= 70) return 'high'
  if (normalized >= 40) return 'medium'
  if (normalized >= 1) return 'low'
  return 'info'
}

// ---------------------------------------------------------------------------------------------
// Shared envelope checks
// ---------------------------------------------------------------------------------------------

interface Checked {
  envelope: Json
  detail: Json
  detailType: string
  occurredAt: string
  region: string
  /** The envelope time as sent, when it was not used as `occurredAt` (clamped or unreadable). */
  envelopeTime: string | undefined
}

/** The envelope `time` as canonical ISO UTC with milliseconds: the service's one rule for times (`parseTime`). */
export const canonicalTime = (value: unknown): string | undefined => parseTime(value)

/**
 * When the event occurred: the envelope time, unless it is unreadable or more than
 * `MAX_CLOCK_SKEW_MS` ahead of `receivedAt` (a wrong clock, or an attempt to pin an event to the
 * top of every list): then the time of receipt.
 */
export function occurredAt (value: unknown, receivedAt: number): { occurredAt: string, clamped: boolean } {
  const time = canonicalTime(value)
  if (time !== undefined && Date.parse(time) <= receivedAt + MAX_CLOCK_SKEW_MS) return { occurredAt: time, clamped: false }
  return { occurredAt: new Date(receivedAt).toISOString(), clamped: true }
}

const quote = (value: unknown): string => {
  if (typeof value !== 'string') return `(${value === null ? 'null' : typeof value})`
  return JSON.stringify(truncate(value, 100))
}

const ignored = (reason: IgnoreReason, detail: string, item = 0): AdapterResult => ({ kind: 'ignored', item, reason, detail })

function check (source: AdapterSource, raw: unknown, receivedAt: number): Checked | AdapterResult {
  if (!isRecord(raw)) return ignored('detail_unreadable', 'the envelope is not an object')
  if (raw.source !== source) return ignored('unsupported_source', `source ${quote(raw.source)} is not ${source}`)
  const detailType = raw['detail-type']
  if (typeof detailType !== 'string' || !DETAIL_TYPES[source].includes(detailType)) {
    return ignored('unsupported_detail_type', `detail-type ${quote(detailType)} of source ${source} has no adapter (supported: ${DETAIL_TYPES[source].map(d => `"${d}"`).join(', ')})`)
  }
  if (!isRecord(raw.detail)) return ignored('detail_unreadable', `detail of ${source} "${detailType}" is not an object`)
  const time = occurredAt(raw.time, receivedAt)
  return {
    envelope: raw,
    detail: raw.detail,
    detailType: truncate(detailType, EVENT_LIMITS.detailType),
    occurredAt: time.occurredAt,
    region: text(raw.region) ?? 'unknown',
    envelopeTime: time.clamped ? scalarText(raw.time) ?? '(none)' : undefined
  }
}

/** The label that keeps an envelope time that was not used (see `occurredAt`). */
const ENVELOPE_TIME_LABEL = 'envelope_time'

/**
 * Runs an adapter body so that no input (nor a bug on an unforeseen shape) escapes as an
 * exception: what cannot be read is `detail_unreadable`.
 */
function guarded (source: AdapterSource, body: (c: Checked, settings: AdapterSettings) => AdapterResult[]): Adapter {
  return (envelope, settings, receivedAt = Date.now()) => {
    try {
      const checked = check(source, envelope, receivedAt)
      if ('kind' in checked) return [checked]
      const results = body(checked, settings)
      if (checked.envelopeTime !== undefined) {
        for (const r of results) {
          if (r.kind === 'event' && Object.keys(r.event.labels).length < EVENT_LIMITS.labels) {
            r.event.labels = { ...r.event.labels, [ENVELOPE_TIME_LABEL]: truncate(checked.envelopeTime, EVENT_LIMITS.labelValue) }
          }
        }
      }
      return results
    } catch (err) {
      return [ignored('detail_unreadable', `${source} event could not be read: ${truncate(String(err), 200)}`)]
    }
  }
}

const event = (e: NormalizedEvent, item = 0): AdapterResult => ({ kind: 'event', item, event: e })

const partitionOf = (region: string): string =>
  region.startsWith('cn-') ? 'aws-cn' : region.startsWith('us-gov-') ? 'aws-us-gov' : 'aws'

// ---------------------------------------------------------------------------------------------
// aws.cloudwatch — CloudWatch Alarm State Change
// ---------------------------------------------------------------------------------------------

const ALARM_ARN = /^arn:[a-z-]+:cloudwatch:[^:]*:[^:]*:alarm:(.+)$/s

/** Alarm tags as key/value pairs: an object, or an array of `{Key, Value}` (any key case). */
function tagsOf (value: unknown): Array<[string, unknown]> {
  if (Array.isArray(value)) {
    const out: Array<[string, unknown]> = []
    for (const tag of value) {
      const key = text(prop(tag, 'Key') ?? prop(tag, 'key'))
      if (key !== undefined) out.push([key, prop(tag, 'Value') ?? prop(tag, 'value')])
    }
    return out
  }
  return isRecord(value) ? Object.entries(value) : []
}

const SEVERITY_MARKER = /\[\s*severity\s*[:=]\s*([a-z]+)\s*\]/i

export const adaptCloudWatchAlarm: Adapter = guarded('aws.cloudwatch', ({ envelope, detail, detailType, occurredAt, region }, settings) => {
  // An AWS enum: compared exactly, not trimmed or case-folded.
  const rawState = path(detail, 'state', 'value')
  const stateValue = typeof rawState === 'string' ? rawState : undefined
  if (stateValue === 'INSUFFICIENT_DATA') return [ignored('insufficient_data', 'INSUFFICIENT_DATA never opens an event')]
  if (stateValue !== 'ALARM' && stateValue !== 'OK') {
    return [ignored('detail_unreadable', `CloudWatch alarm state ${quote(path(detail, 'state', 'value'))} is not ALARM, OK or INSUFFICIENT_DATA`)]
  }

  const listed = envelopeResources(envelope)
  const account = text(envelope.account)
  let alarmName = text(detail.alarmName)
  let alarmArn = listed.resources.find(r => ALARM_ARN.test(r))
  if (alarmArn === undefined && alarmName !== undefined && region !== 'unknown' && account !== undefined) {
    alarmArn = `arn:${partitionOf(region)}:cloudwatch:${region}:${account}:alarm:${alarmName}`
  }
  if (alarmArn === undefined) {
    return [ignored('detail_unreadable', 'CloudWatch alarm event has neither an alarm ARN in resources nor detail.alarmName with the envelope region and account')]
  }
  alarmName ??= ALARM_ARN.exec(alarmArn)?.[1] ?? alarmArn

  const configuration = prop(detail, 'configuration')
  const tags = [...tagsOf(prop(configuration, 'tags')), ...tagsOf(detail.tags)]
  const alarmDescription = text(prop(configuration, 'description')) ?? text(detail.description)
  const reason = text(path(detail, 'state', 'reason'))

  // Severity: a `severity` tag, else a `[severity:x]` marker in the alarm description, else the default.
  let severity: Severity | undefined
  let nativeSeverity: string | undefined
  for (const [key, value] of tags) {
    if (key.trim().toLowerCase() !== 'severity') continue
    const mapped = severityFromWord(value)
    if (mapped !== undefined) {
      severity = mapped
      nativeSeverity = scalarText(value)
      break
    }
  }
  if (severity === undefined && alarmDescription !== undefined) {
    const marker = SEVERITY_MARKER.exec(head(alarmDescription, SEVERITY_MARKER_SCAN))?.[1]
    severity = severityFromWord(marker)
    if (severity !== undefined) nativeSeverity = marker
  }
  if (severity === undefined) {
    severity = isSeverity(settings?.cloudwatch_default_severity) ? settings.cloudwatch_default_severity : DEFAULT_ADAPTER_SETTINGS.cloudwatch_default_severity
    nativeSeverity = stateValue
  }

  const metric = path(list(prop(configuration, 'metrics'))[0], 'metricStat', 'metric')
  const labels = new Labels()
    .add('alarm_name', alarmName)
    .add('state', stateValue)
    .add('previous_state', path(detail, 'previousState', 'value'))
    .add('namespace', prop(metric, 'namespace'))
    .add('metric_name', prop(metric, 'name'))
  for (const [name, value] of tagsOf(prop(metric, 'dimensions'))) labels.add(`dimension:${name}`, value)
  for (const [key, value] of tags) labels.add(key, value)

  // The title keeps the reason without its datapoint lists ("… datapoints [93.2 (14/05/24 09:16:00)] were …").
  const shortReason = reason === undefined
    ? stateValue
    : oneLine(head(reason, 16 * CLOUDWATCH_TITLE_REASON).replace(/ ?\[[^[\]]*\]/g, ''), CLOUDWATCH_TITLE_REASON) || stateValue
  const { resources, resource_count: resourceCount } = resourcesWithFallback(envelope, () => [alarmArn])
  return [event({
    source: 'aws.cloudwatch',
    detail_type: detailType,
    region,
    dedup_key: boundedKey(alarmArn),
    title: titleOf(`${alarmName}: ${shortReason}`, `CloudWatch alarm ${stateValue}`),
    description: descriptionOf(alarmDescription, reason),
    severity,
    native_severity: nativeSeverityOf(nativeSeverity),
    source_state: stateValue === 'ALARM' ? 'active' : 'resolved',
    occurred_at: occurredAt,
    resources,
    resource_count: resourceCount,
    labels: labels.toObject()
  })]
})

// ---------------------------------------------------------------------------------------------
// aws.guardduty — GuardDuty Finding
// ---------------------------------------------------------------------------------------------

/** ARNs of the resource a GuardDuty finding is about, where the finding names them. */
function guardDutyResourceArns (detail: Json, region: string | undefined): string[] {
  const resource = prop(detail, 'resource')
  const out: unknown[] = []
  const instanceId = text(path(resource, 'instanceDetails', 'instanceId'))
  const account = text(detail.accountId)
  const findingRegion = text(detail.region) ?? region
  if (instanceId !== undefined && account !== undefined && findingRegion !== undefined) {
    const partition = text(detail.partition) ?? partitionOf(findingRegion)
    out.push(`arn:${partition}:ec2:${findingRegion}:${account}:instance/${instanceId}`)
  }
  for (const bucket of list(prop(resource, 's3BucketDetails'))) out.push(prop(bucket, 'arn'))
  out.push(path(resource, 'eksClusterDetails', 'arn'))
  out.push(path(resource, 'ecsClusterDetails', 'arn'))
  out.push(path(resource, 'lambdaDetails', 'functionArn'))
  out.push(path(resource, 'rdsDbInstanceDetails', 'dbInstanceArn'))
  return out.filter((a): a is string => text(a)?.startsWith('arn:') === true)
}

export const adaptGuardDutyFinding: Adapter = guarded('aws.guardduty', ({ envelope, detail, detailType, occurredAt, region }) => {
  const arn = text(detail.arn)
  if (arn === undefined) return [ignored('detail_unreadable', 'GuardDuty finding has no detail.arn')]

  const score = numeric(detail.severity)
  const type = text(detail.type)
  const resource = prop(detail, 'resource')
  const service = prop(detail, 'service')
  const labels = new Labels()
    .add('finding_type', type)
    .add('finding_id', detail.id)
    .add('resource_type', prop(resource, 'resourceType'))
    .add('instance_id', path(resource, 'instanceDetails', 'instanceId'))
    .add('access_key_id', path(resource, 'accessKeyDetails', 'accessKeyId'))
    .add('user_name', path(resource, 'accessKeyDetails', 'userName'))
    .add('finding_region', detail.region)
    .add('finding_account', detail.accountId)
    .add('detector_id', prop(service, 'detectorId'))
    .add('action_type', path(service, 'action', 'actionType'))
    .add('count', prop(service, 'count'))

  const { resources, resource_count: resourceCount } = resourcesWithFallback(envelope, () => [arn, ...guardDutyResourceArns(detail, text(envelope.region))])
  return [event({
    source: 'aws.guardduty',
    detail_type: detailType,
    region,
    dedup_key: boundedKey(arn),
    title: titleOf(text(detail.title), type === undefined ? 'GuardDuty finding' : `GuardDuty finding ${type}`),
    description: descriptionOf(text(detail.description)),
    severity: score === undefined ? UNKNOWN_FINDING_SEVERITY : guardDutySeverity(score),
    native_severity: nativeSeverityOf(scalarText(detail.severity)),
    source_state: prop(service, 'archived') === true ? 'resolved' : 'active',
    occurred_at: occurredAt,
    resources,
    resource_count: resourceCount,
    labels: labels.toObject()
  })]
})

// ---------------------------------------------------------------------------------------------
// aws.securityhub — Security Hub Findings - Imported (ASFF)
// ---------------------------------------------------------------------------------------------

const RESOLVED_WORKFLOW = new Set(['RESOLVED', 'SUPPRESSED'])

/** One ASFF finding (position `item` in `detail.findings`) as an event. */
function securityHubFinding (finding: unknown, item: number, several: boolean, { envelope, detailType, occurredAt, region }: Checked): AdapterResult {
  if (!isRecord(finding)) return ignored('detail_unreadable', `Security Hub detail.findings[${item}] is not an object`, item)
  const productArn = text(finding.ProductArn)
  const id = text(finding.Id)
  if (productArn === undefined || id === undefined) {
    return ignored('detail_unreadable', `Security Hub finding detail.findings[${item}] lacks ProductArn or Id`, item)
  }

  const label = text(path(finding, 'Severity', 'Label'))?.toUpperCase()
  const normalized = numeric(path(finding, 'Severity', 'Normalized'))
  let severity: Severity = UNKNOWN_FINDING_SEVERITY
  let nativeSeverity: string | undefined
  if (label !== undefined && Object.hasOwn(SECURITY_HUB_LABELS, label)) {
    severity = SECURITY_HUB_LABELS[label] ?? severity
    nativeSeverity = label
  } else if (normalized !== undefined) {
    severity = securityHubNormalizedSeverity(normalized)
    nativeSeverity = String(normalized)
  }

  // Workflow.Status (or the legacy WorkflowState), RecordState and Compliance.Status decide the state.
  const workflow = text(path(finding, 'Workflow', 'Status'))?.toUpperCase() ?? text(finding.WorkflowState)?.toUpperCase()
  const recordState = text(finding.RecordState)?.toUpperCase()
  const compliance = text(path(finding, 'Compliance', 'Status'))?.toUpperCase()
  const resolved = (workflow !== undefined && RESOLVED_WORKFLOW.has(workflow)) || recordState === 'ARCHIVED' || compliance === 'PASSED'

  const firstResource = list(finding.Resources)[0]
  const labels = new Labels()
    .add('product_name', finding.ProductName)
    .add('company_name', finding.CompanyName)
    .add('finding_type', list(finding.Types)[0])
    .add('generator_id', finding.GeneratorId)
    .add('control_id', path(finding, 'Compliance', 'SecurityControlId') ?? path(finding, 'ProductFields', 'ControlId'))
    .add('compliance_status', compliance)
    .add('workflow_status', workflow)
    .add('record_state', recordState)
    .add('resource_type', prop(firstResource, 'Type'))
    .add('finding_account', finding.AwsAccountId)
    .add('finding_region', finding.Region)

  // The envelope's resources belong to the envelope: with several findings, each finding's own.
  const own = () => [id, ...list(finding.Resources).map(r => prop(r, 'Id'))]
  const { resources, resource_count: resourceCount } = several
    ? { resources: resourcesOf(own()), resource_count: countOf(own()) }
    : resourcesWithFallback(envelope, own)
  const fallbackTitle = text(list(finding.Types)[0]) ?? 'Security Hub finding'
  return event({
    source: 'aws.securityhub',
    detail_type: detailType,
    region,
    dedup_key: boundedKey(`${productArn}|${id}`),
    title: titleOf(text(finding.Title), fallbackTitle),
    description: descriptionOf(text(finding.Description)),
    severity,
    native_severity: nativeSeverityOf(nativeSeverity),
    source_state: resolved ? 'resolved' : 'active',
    occurred_at: occurredAt,
    resources,
    resource_count: resourceCount,
    labels: labels.toObject()
  }, item)
}

/**
 * Security Hub *Findings - Imported* and *Findings - Custom Action*: one result per finding of
 * `detail.findings` (the same finding twice in one envelope counts once), at most `MAX_FINDINGS`.
 */
export const adaptSecurityHubFindings: Adapter = guarded('aws.securityhub', (checked) => {
  const findings = list(checked.detail.findings)
  if (findings.length === 0) return [ignored('no_findings', 'Security Hub event has no finding in detail.findings')]
  const results: AdapterResult[] = []
  const keys = new Set<string>()
  // Several *different* findings (a repeated one is the same finding).
  const distinct = new Set(findings.slice(0, MAX_FINDINGS).map(f => `${text(prop(f, 'ProductArn'))}|${text(prop(f, 'Id'))}`))
  for (const [item, finding] of findings.slice(0, MAX_FINDINGS).entries()) {
    const result = securityHubFinding(finding, item, distinct.size > 1, checked)
    if (result.kind === 'event') {
      if (keys.has(result.event.dedup_key)) continue
      keys.add(result.event.dedup_key)
    }
    results.push(result)
  }
  if (findings.length > MAX_FINDINGS) {
    results.push(ignored('too_many_findings', `${findings.length - MAX_FINDINGS} findings beyond the first ${MAX_FINDINGS} of this envelope were not read`, MAX_FINDINGS))
  }
  return results
})

// ---------------------------------------------------------------------------------------------
// aws.health — AWS Health Event
// ---------------------------------------------------------------------------------------------

const HEALTH_CATEGORIES = ['issue', 'accountNotification', 'scheduledChange', 'investigation'] as const
const ABUSE_MIN_SEVERITY: Severity = 'high'
const severityRank = (s: Severity): number => SEVERITIES.length - SEVERITIES.indexOf(s)

const HEALTH_STATES: Readonly<Record<string, NormalizedEvent['source_state']>> = {
  open: 'active',
  closed: 'resolved',
  upcoming: 'pending'
}

/** The `en_US` latest description, else the first one; a plain string is accepted too. */
function healthDescription (value: unknown): string | undefined {
  if (typeof value === 'string') return text(value)
  const descriptions = list(value)
  const english = descriptions.find(d => text(prop(d, 'language'))?.toLowerCase() === 'en_us')
  return text(prop(english, 'latestDescription')) ??
    descriptions.map(d => text(prop(d, 'latestDescription'))).find(d => d !== undefined)
}

export const adaptHealthEvent: Adapter = guarded('aws.health', ({ envelope, detail, detailType, occurredAt, region }, settings) => {
  const eventArn = text(detail.eventArn)
  if (eventArn === undefined) return [ignored('detail_unreadable', 'AWS Health event has no detail.eventArn')]
  const account = text(detail.affectedAccount) ?? text(envelope.account)
  if (account === undefined) return [ignored('detail_unreadable', 'AWS Health event has neither detail.affectedAccount nor an envelope account')]

  const category = text(detail.eventTypeCategory)
  // AWS writes the categories in camelCase; some producers lower-case them.
  const known = category === undefined ? undefined : HEALTH_CATEGORIES.find(c => c.toLowerCase() === category.toLowerCase())
  const fromSettings = known === undefined ? undefined : prop(settings?.health_category_severities, known)
  const fromDefaults = known === undefined ? undefined : prop(DEFAULT_ADAPTER_SETTINGS.health_category_severities, known)
  let severity: Severity = isSeverity(fromSettings) ? fromSettings : isSeverity(fromDefaults) ? fromDefaults : 'low'
  // An abuse report (compromised or misused resources, a copyright notice) needs someone's action.
  if (detailType === 'AWS Health Abuse Event' && severityRank(severity) < severityRank(ABUSE_MIN_SEVERITY)) severity = ABUSE_MIN_SEVERITY

  const statusCode = text(detail.statusCode)?.toLowerCase()
  const sourceState = statusCode !== undefined && Object.hasOwn(HEALTH_STATES, statusCode) ? HEALTH_STATES[statusCode] ?? 'active' : 'active'

  const service = text(detail.service)
  const eventTypeCode = text(detail.eventTypeCode)
  const labels = new Labels()
    .add('service', service)
    .add('event_type_code', eventTypeCode)
    .add('event_type_category', category)
    .add('event_scope_code', detail.eventScopeCode)
    .add('event_region', detail.eventRegion)
    .add('status_code', detail.statusCode)
    .add('affected_account', detail.affectedAccount)
    .add('start_time', detail.startTime)
    .add('end_time', detail.endTime)
    .add('communication_id', detail.communicationId)

  const { resources, resource_count: resourceCount } = resourcesWithFallback(envelope, () => list(detail.affectedEntities).map(e => prop(e, 'entityValue')))
  const title = [service, eventTypeCode].filter(p => p !== undefined).join(' ')
  return [event({
    source: 'aws.health',
    detail_type: detailType,
    region,
    dedup_key: boundedKey(`${account}|${eventArn}`),
    title: titleOf(title, 'AWS Health event'),
    description: descriptionOf(healthDescription(detail.eventDescription)),
    severity,
    native_severity: nativeSeverityOf(category),
    source_state: sourceState,
    occurred_at: occurredAt,
    resources,
    resource_count: resourceCount,
    labels: labels.toObject()
  })]
})

// ---------------------------------------------------------------------------------------------
// Dispatcher
// ---------------------------------------------------------------------------------------------

const ADAPTERS: Readonly<Record<AdapterSource, Adapter>> = {
  'aws.cloudwatch': adaptCloudWatchAlarm,
  'aws.guardduty': adaptGuardDutyFinding,
  'aws.securityhub': adaptSecurityHubFindings,
  'aws.health': adaptHealthEvent
}

/**
 * Maps an EventBridge envelope with the adapter of its `source`: one result per item (one, or one
 * per Security Hub finding). Never throws; an unknown source is `unsupported_source`.
 */
export function adaptEnvelope (envelope: EventBridgeEnvelope, settings: AdapterSettings, receivedAt = Date.now()): AdapterResult[] {
  let source: unknown
  try {
    if (!isRecord(envelope)) return [ignored('detail_unreadable', 'the envelope is not an object')]
    source = envelope.source
  } catch (err) {
    return [ignored('detail_unreadable', `the envelope could not be read: ${truncate(String(err), 200)}`)]
  }
  if (typeof source !== 'string' || !Object.hasOwn(ADAPTERS, source)) {
    return [ignored('unsupported_source', `source ${quote(source)} has no adapter (supported: ${Object.keys(ADAPTERS).join(', ')})`)]
  }
  return ADAPTERS[source as AdapterSource](envelope, settings, receivedAt)
}
