/** Unit tests of the EventBridge source adapters (src/domain/event-adapters.ts) on AWS-shaped fixtures. */
import t from 'tap'
import type { Test } from 'tap'
import { readFileSync, readdirSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import {
  adaptEnvelope, adaptCloudWatchAlarm, adaptGuardDutyFinding, adaptSecurityHubFindings, adaptHealthEvent,
  canonicalTime, occurredAt, DEFAULT_ADAPTER_SETTINGS, DETAIL_TYPES, MAX_CLOCK_SKEW_MS, MAX_FINDINGS,
  type AdapterResult, type AdapterSettings, type NormalizedEvent
} from '../src/domain/event-adapters.js'
import type { EventBridgeEnvelope } from '../openapi/generated/schemas.js'
import { validateComponent } from './contract.js'

type Json = Record<string, any>

const fixtureDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'events')
const fixture = (name: string): EventBridgeEnvelope => JSON.parse(readFileSync(path.join(fixtureDir, name), 'utf8'))

/** A fixture changed by `edit`, which gets the envelope's detail and the envelope (both mutable copies). */
const variant = (name: string, edit: (detail: Json, envelope: Json) => void): EventBridgeEnvelope => {
  const envelope = fixture(name) as unknown as Json
  edit(envelope.detail, envelope)
  return envelope as EventBridgeEnvelope
}

const settings = DEFAULT_ADAPTER_SETTINGS

/** The receiving clock of most tests: after every fixture time, so no fixture time is clamped. */
const RECEIVED_AT = Date.parse('2025-01-01T00:00:00.000Z')

const ALARM_ARN = 'arn:aws:cloudwatch:us-east-1:123456789012:alarm:prod-api-high-cpu'
const GD_ARN = 'arn:aws:guardduty:us-east-1:123456789012:detector/5cc2a1e0b6d84f3e9a7b2c1d0e9f8a7b/finding/495a6814862ee4bdc1760d1363b21643'
const GD_ARCHIVED_ARN = 'arn:aws:guardduty:us-east-1:123456789012:detector/5cc2a1e0b6d84f3e9a7b2c1d0e9f8a7b/finding/562d9b87b9b38570b6f99bbfd2cd4073'
const SH_PRODUCT = 'arn:aws:securityhub:us-east-1::product/aws/securityhub'
const SH_ID = 'arn:aws:securityhub:us-east-1:123456789012:security-control/EC2.8/finding/3f6a1d2e-8b7c-4e5f-9a0b-1c2d3e4f5a6b'
const HEALTH_ISSUE_ARN = 'arn:aws:health:us-east-1::event/EC2/AWS_EC2_OPERATIONAL_ISSUE/AWS_EC2_OPERATIONAL_ISSUE_8F3C1A2B7D6E'

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Every violation of the NormalizedEvent limits of the brief / wire contract. */
function limitProblems (e: NormalizedEvent): string[] {
  const problems: string[] = []
  const str = (name: string, v: unknown, min: number, max: number): void => {
    if (typeof v !== 'string') problems.push(`${name} is not a string`)
    else if (v.length < min || v.length > max) problems.push(`${name} has length ${v.length}, not ${min}..${max}`)
    else if (LONE_SURROGATE.test(v)) problems.push(`${name} has a lone surrogate`)
  }
  if (!['aws.cloudwatch', 'aws.guardduty', 'aws.securityhub', 'aws.health'].includes(e.source)) problems.push(`source ${e.source}`)
  str('detail_type', e.detail_type, 1, 128)
  if (typeof e.region !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(e.region)) problems.push(`region ${String(e.region)} is not a region token`)
  str('dedup_key', e.dedup_key, 1, 1024)
  str('title', e.title, 1, 512)
  if (typeof e.title === 'string' && e.title.trim() !== e.title) problems.push('title has surrounding blanks')
  if (e.description !== null) str('description', e.description, 0, 8192)
  if (!['critical', 'high', 'medium', 'low', 'info'].includes(e.severity)) problems.push(`severity ${e.severity}`)
  if (e.native_severity !== null) str('native_severity', e.native_severity, 0, 64)
  if (!['active', 'resolved', 'pending'].includes(e.source_state)) problems.push(`source_state ${e.source_state}`)
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(e.occurred_at) || new Date(e.occurred_at).toISOString() !== e.occurred_at) {
    problems.push(`occurred_at ${e.occurred_at} is not canonical`)
  }
  if (!Array.isArray(e.resources) || e.resources.length > 50) problems.push('resources is not an array of at most 50')
  else {
    e.resources.forEach((r, i) => str(`resources[${i}]`, r, 1, 2048))
    if (new Set(e.resources).size !== e.resources.length) problems.push('resources has duplicates')
  }
  if (!Number.isInteger(e.resource_count) || e.resource_count < 0 || e.resource_count > 1_000_000) problems.push(`resource_count ${e.resource_count}`)
  else if (Array.isArray(e.resources) && e.resource_count < e.resources.length) {
    problems.push(`resource_count ${e.resource_count} is less than the ${e.resources.length} resources kept`)
  }
  if (Object.getPrototypeOf(e.labels) !== Object.prototype) problems.push('labels is not a plain object')
  const labels = Object.entries(e.labels)
  if (labels.length > 50) problems.push(`${labels.length} labels`)
  for (const [k, v] of labels) {
    str(`label key ${k.slice(0, 20)}`, k, 1, 128)
    str(`label ${k.slice(0, 20)}`, v, 0, 256)
  }
  return problems
}

/** The normalised event as the stored `MonitoringEvent` would carry it, to check it against the spec. */
const asMonitoringEvent = (e: NormalizedEvent, envelope: EventBridgeEnvelope): Json => ({
  id: '01HZX3K4M5N6P7Q8R9S0T1V2W3',
  ...e,
  account_id: envelope.account,
  status: 'open',
  occurrence_count: 1,
  last_seen_at: e.occurred_at,
  resolved_at: e.source_state === 'resolved' ? e.occurred_at : null,
  task_id: null,
  raw: envelope,
  created_at: e.occurred_at,
  updated_at: e.occurred_at
})

/** Asserts `result` is an event within every limit (also valid as a spec `MonitoringEvent`) and returns it. */
function eventOf (t: Test, result: AdapterResult, envelope: EventBridgeEnvelope, what = ''): NormalizedEvent {
  if (result.kind !== 'event') {
    t.fail(`${what} expected an event, got ${JSON.stringify(result)}`)
    throw new Error('not an event')
  }
  t.same(limitProblems(result.event), [], `${what} within the limits`.trim())
  t.same(validateComponent('MonitoringEvent', asMonitoringEvent(result.event, envelope)), [], `${what} a valid MonitoringEvent`.trim())
  return result.event
}

/** Asserts `results` is exactly one result, for item 0, and returns it. */
function single (t: Test, results: AdapterResult[], what = ''): AdapterResult {
  if (!Array.isArray(results) || results.length !== 1) {
    t.fail(`${what} expected one result, got ${JSON.stringify(results)?.slice(0, 500)}`.trim())
    throw new Error('not one result')
  }
  const [result] = results as [AdapterResult]
  t.equal(result.item, 0, `${what} item 0`.trim())
  return result
}

/** Maps `envelope` with the dispatcher and asserts it gives one event within every limit. */
const adapt = (t: Test, envelope: EventBridgeEnvelope, s: AdapterSettings = settings, what = '', receivedAt = RECEIVED_AT): NormalizedEvent =>
  eventOf(t, single(t, adaptEnvelope(envelope, s, receivedAt), what), envelope, what)

/** Asserts `result` is `ignored` with `reason` and a non-blank detail, and returns the detail. */
function ignoredOf (t: Test, result: AdapterResult | undefined, reason: string, what = ''): string {
  if (result?.kind !== 'ignored') {
    t.fail(`${what} expected ignored ${reason}, got ${JSON.stringify(result)?.slice(0, 500)}`.trim())
    return ''
  }
  t.equal(result.reason, reason, `${what} ignored: ${reason}`.trim())
  t.match(result.detail, /\S/, `${what} with a detail`.trim())
  return result.detail
}

/** Asserts `results` is one `ignored` result (item 0) with `reason`, and returns its detail. */
const ignoredOne = (t: Test, results: AdapterResult[], reason: string, what = ''): string =>
  ignoredOf(t, single(t, results, what), reason, what)

/** The events of `results`, each checked against the limits. */
const eventsOf = (t: Test, results: AdapterResult[], envelope: EventBridgeEnvelope): Array<{ item: number, event: NormalizedEvent }> =>
  results.filter(r => r.kind === 'event').map(r => ({ item: r.item, event: eventOf(t, r, envelope, `item ${r.item}`) }))

t.test('fixtures are complete EventBridge envelopes valid against the spec', async t => {
  // expectations.json describes the fixtures; it is not an envelope.
  const names = readdirSync(fixtureDir).filter(n => n.endsWith('.json') && n !== 'expectations.json').sort()
  for (const required of [
    'cloudwatch-alarm.json', 'cloudwatch-ok.json', 'cloudwatch-insufficient-data.json',
    'guardduty-finding.json', 'guardduty-finding-archived.json',
    'securityhub-finding.json', 'securityhub-finding-resolved.json',
    'health-issue.json', 'health-closed.json', 'health-scheduled-change.json'
  ]) t.ok(names.includes(required), `fixture ${required} exists`)
  const ids = new Set<string>()
  for (const name of names) {
    const envelope = fixture(name)
    t.same(validateComponent('EventBridgeEnvelope', envelope), [], `${name} is a valid EventBridgeEnvelope`)
    t.equal(envelope.version, '0', `${name} version`)
    t.match(envelope.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, `${name} id is a UUID`)
    t.equal(envelope.account, '123456789012', `${name} account`)
    t.notOk(ids.has(envelope.id), `${name} has its own envelope id`)
    ids.add(envelope.id)
  }
  t.same(validateComponent('EventBridgeEnvelope', variant('health-issue.json', (_d, e) => { e.resources = ['x'.repeat(8193)] })).length, 1,
    'the schema check can fail (a resource longer than 8192 characters)')
})

t.test('CloudWatch alarm in ALARM', async t => {
  const envelope = fixture('cloudwatch-alarm.json')
  const e = adapt(t, envelope)
  t.same(e, {
    source: 'aws.cloudwatch',
    detail_type: 'CloudWatch Alarm State Change',
    region: 'us-east-1',
    dedup_key: ALARM_ARN,
    title: 'prod-api-high-cpu: Threshold Crossed: 2 out of the last 2 datapoints were greater than the threshold (80.0) (minimum 2 datapoints for OK -> ALARM transition).',
    description: 'CPU of the production API instance above 80% for 10 minutes.\n\nThreshold Crossed: 2 out of the last 2 datapoints [93.1822540984154 (14/05/24 09:16:00), 91.0045106557377 (14/05/24 09:11:00)] were greater than the threshold (80.0) (minimum 2 datapoints for OK -> ALARM transition).',
    severity: 'medium',
    native_severity: 'ALARM',
    source_state: 'active',
    occurred_at: '2024-05-14T09:21:37.000Z',
    resources: [ALARM_ARN],
    resource_count: 1,
    labels: {
      alarm_name: 'prod-api-high-cpu',
      state: 'ALARM',
      previous_state: 'OK',
      namespace: 'AWS/EC2',
      metric_name: 'CPUUtilization',
      'dimension:InstanceId': 'i-0a1b2c3d4e5f60718'
    }
  })
  t.same(adaptCloudWatchAlarm(envelope, settings, RECEIVED_AT), adaptEnvelope(envelope, settings, RECEIVED_AT), 'the dispatcher delegates to the CloudWatch adapter')
})

t.test('occurred_at is the envelope time as canonical ISO UTC with milliseconds', async t => {
  const cases: Array<[string, string]> = [
    ['2024-05-14T09:21:37Z', '2024-05-14T09:21:37.000Z'],
    ['2024-05-14T09:21:37.5Z', '2024-05-14T09:21:37.500Z'],
    ['2024-05-14T11:21:37+02:00', '2024-05-14T09:21:37.000Z'],
    ['2024-05-14T04:21:37.123-0500', '2024-05-14T09:21:37.123Z'],
    ['2024-05-14t09:21:37z', '2024-05-14T09:21:37.000Z'],
    ['2024-05-14 09:21:37Z', '2024-05-14T09:21:37.000Z'],
    ['2024-05-14T23:30:00-01:00', '2024-05-15T00:30:00.000Z'],
    ['2024-02-29T00:00:00Z', '2024-02-29T00:00:00.000Z']
  ]
  for (const [time, expected] of cases) {
    t.equal(adapt(t, variant('cloudwatch-alarm.json', (_d, e) => { e.time = time }), settings, time).occurred_at, expected, `${time} → ${expected}`)
  }
})

t.test('CloudWatch alarm back to OK resolves; INSUFFICIENT_DATA is ignored', async t => {
  const e = adapt(t, fixture('cloudwatch-ok.json'))
  t.equal(e.dedup_key, ALARM_ARN, 'same key as the ALARM occurrence')
  t.equal(e.source_state, 'resolved')
  t.equal(e.severity, 'medium')
  t.equal(e.native_severity, 'OK')
  t.equal(e.occurred_at, '2024-05-14T09:46:37.000Z')
  t.equal(e.title, 'prod-api-high-cpu: Threshold Crossed: 2 out of the last 2 datapoints were not greater than the threshold (80.0) (minimum 1 datapoint for ALARM -> OK transition).')
  t.same(e.resources, [ALARM_ARN])
  t.equal(e.labels.previous_state, 'ALARM')

  t.same(adaptEnvelope(fixture('cloudwatch-insufficient-data.json'), settings),
    [{ kind: 'ignored', item: 0, reason: 'insufficient_data', detail: 'INSUFFICIENT_DATA never opens an event' }])
  ignoredOne(t, adaptEnvelope(variant('cloudwatch-insufficient-data.json', (_d, e) => { e.resources = [] }), settings), 'insufficient_data',
    'ignored even without an alarm ARN')
})

t.test('CloudWatch alarm ARN: from the resources, or built from region, account and alarm name', async t => {
  const built = adapt(t, variant('cloudwatch-alarm.json', (_d, e) => { e.resources = [] }))
  t.equal(built.dedup_key, ALARM_ARN, 'built when resources is empty')
  t.same(built.resources, [ALARM_ARN], 'the built ARN becomes the resource')

  const china = adapt(t, variant('cloudwatch-alarm.json', (_d, e) => { e.resources = []; e.region = 'cn-north-1' }))
  t.equal(china.dedup_key, 'arn:aws-cn:cloudwatch:cn-north-1:123456789012:alarm:prod-api-high-cpu', 'China partition')
  const gov = adapt(t, variant('cloudwatch-alarm.json', (_d, e) => { e.resources = []; e.region = 'us-gov-west-1' }))
  t.equal(gov.dedup_key, 'arn:aws-us-gov:cloudwatch:us-gov-west-1:123456789012:alarm:prod-api-high-cpu', 'GovCloud partition')

  const other = adapt(t, variant('cloudwatch-alarm.json', (_d, e) => { e.resources = ['arn:aws:sns:us-east-1:123456789012:ops', ALARM_ARN] }))
  t.equal(other.dedup_key, ALARM_ARN, 'the alarm ARN among other resources')
  t.same(other.resources, ['arn:aws:sns:us-east-1:123456789012:ops', ALARM_ARN], 'the envelope resources are kept as they are')

  const nameless = adapt(t, variant('cloudwatch-alarm.json', d => { delete d.alarmName }))
  t.equal(nameless.dedup_key, ALARM_ARN)
  t.equal(nameless.labels.alarm_name, 'prod-api-high-cpu', 'alarm name taken from the ARN')
  t.match(nameless.title, /^prod-api-high-cpu: Threshold Crossed/)

  const noReason = adapt(t, variant('cloudwatch-alarm.json', d => { delete d.state.reason }))
  t.equal(noReason.title, 'prod-api-high-cpu: ALARM', 'the state value when there is no reason')
  t.equal(noReason.description, 'CPU of the production API instance above 80% for 10 minutes.')

  const bare = adapt(t, variant('cloudwatch-alarm.json', d => { delete d.configuration; delete d.state.reason }))
  t.equal(bare.description, null, 'no description fields: null')
})

t.test('CloudWatch severity: severity tag, description marker, else the settings default', async t => {
  const alarm = (edit: (d: Json) => void, s: AdapterSettings = settings): NormalizedEvent => adapt(t, variant('cloudwatch-alarm.json', edit), s)

  let e = alarm(d => { d.configuration.tags = { severity: 'critical', team: 'payments' } })
  t.equal(e.severity, 'critical', 'tags object in configuration')
  t.equal(e.native_severity, 'critical')
  t.equal(e.labels.team, 'payments', 'tags become labels')
  t.equal(e.labels.severity, 'critical')

  e = alarm(d => { d.tags = [{ Key: 'Severity', Value: 'HIGH' }, { Key: 'env', Value: 'prod' }] })
  t.equal(e.severity, 'high', 'detail.tags as [{Key, Value}], any case')
  t.equal(e.native_severity, 'HIGH')
  t.equal(e.labels.env, 'prod')

  e = alarm(d => { d.configuration.tags = [{ key: 'severity', value: 'low' }] })
  t.equal(e.severity, 'low', '[{key, value}]')

  e = alarm(d => { d.configuration.tags = { severity: 'informational' } })
  t.equal(e.severity, 'info', 'informational is info')

  e = alarm(d => { d.configuration.description = 'Disk almost full [severity:high] – page on-call.' })
  t.equal(e.severity, 'high', 'marker in the alarm description')
  t.equal(e.native_severity, 'high')

  e = alarm(d => { d.configuration.description = 'Disk almost full [ Severity = Critical ]' })
  t.equal(e.severity, 'critical', 'marker with blanks, = and any case')

  e = alarm(d => { d.configuration.description = 'x [severity:low]'; d.configuration.tags = { severity: 'critical' } })
  t.equal(e.severity, 'critical', 'the tag wins over the marker')

  e = alarm(d => { d.configuration.tags = { severity: 'urgent' }; d.configuration.description = 'no marker' })
  t.equal(e.severity, 'medium', 'an unknown tag value falls back to the default')
  t.equal(e.native_severity, 'ALARM')
  t.equal(e.labels.severity, 'urgent', 'the tag is still a label')

  const custom: AdapterSettings = { ...settings, cloudwatch_default_severity: 'critical' }
  e = alarm(() => {}, custom)
  t.equal(e.severity, 'critical', 'default from settings')
  e = alarm(d => { d.configuration.tags = { severity: 'low' } }, custom)
  t.equal(e.severity, 'low', 'a tag beats the settings default')
  e = adapt(t, fixture('cloudwatch-ok.json'), { ...settings, cloudwatch_default_severity: 'info' })
  t.equal(e.severity, 'info', 'OK occurrences use the same default')

  e = alarm(d => { d.configuration.tags = { state: 'mine', alarm_name: 'mine too' } })
  t.equal(e.labels.state, 'ALARM', 'adapter labels are not overwritten by tags')
  t.equal(e.labels.alarm_name, 'prod-api-high-cpu')
})

t.test('GuardDuty finding', async t => {
  const envelope = fixture('guardduty-finding.json')
  const e = adapt(t, envelope)
  t.same(e, {
    source: 'aws.guardduty',
    detail_type: 'GuardDuty Finding',
    region: 'us-east-1',
    dedup_key: GD_ARN,
    title: 'Bitcoin-related domain name queried by EC2 instance i-0f9e8d7c6b5a43210.',
    description: 'EC2 instance i-0f9e8d7c6b5a43210 is querying a domain name that is associated with Bitcoin-related activity.',
    severity: 'high',
    native_severity: '8',
    source_state: 'active',
    occurred_at: '2024-06-03T14:27:52.000Z',
    resources: [GD_ARN, 'arn:aws:ec2:us-east-1:123456789012:instance/i-0f9e8d7c6b5a43210'],
    resource_count: 2,
    labels: {
      finding_type: 'CryptoCurrency:EC2/BitcoinTool.B!DNS',
      finding_id: '495a6814862ee4bdc1760d1363b21643',
      resource_type: 'Instance',
      instance_id: 'i-0f9e8d7c6b5a43210',
      finding_region: 'us-east-1',
      finding_account: '123456789012',
      detector_id: '5cc2a1e0b6d84f3e9a7b2c1d0e9f8a7b',
      action_type: 'DNS_REQUEST',
      count: '4'
    }
  })
  t.same(adaptGuardDutyFinding(envelope, settings, RECEIVED_AT), adaptEnvelope(envelope, settings, RECEIVED_AT), 'the dispatcher delegates to the GuardDuty adapter')

  const archived = adapt(t, fixture('guardduty-finding-archived.json'))
  t.equal(archived.dedup_key, GD_ARCHIVED_ARN)
  t.equal(archived.source_state, 'resolved', 'archived finding')
  t.equal(archived.severity, 'low')
  t.equal(archived.native_severity, '2')
  t.equal(archived.title, 'Unprotected port on EC2 instance i-0123456789abcdef0 is being probed.')
  t.equal(archived.occurred_at, '2024-06-04T07:05:13.000Z')
  t.same(archived.resources, [GD_ARCHIVED_ARN, 'arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0'])

  t.equal(adapt(t, variant('guardduty-finding-archived.json', d => { d.service.archived = 'true' })).source_state, 'active',
    'only archived === true resolves')
  t.same(adapt(t, variant('guardduty-finding.json', (_d, e) => { e.resources = ['arn:aws:ec2:us-east-1:123456789012:instance/i-1'] })).resources,
    ['arn:aws:ec2:us-east-1:123456789012:instance/i-1'], 'envelope resources win when present')
  const s3 = adapt(t, variant('guardduty-finding.json', d => {
    d.resource = { resourceType: 'S3Bucket', s3BucketDetails: [{ arn: 'arn:aws:s3:::audit-logs', name: 'audit-logs' }, { arn: 'not-an-arn' }] }
  }))
  t.same(s3.resources, [GD_ARN, 'arn:aws:s3:::audit-logs'], 'bucket ARNs of an S3 finding')
  const untitled = adapt(t, variant('guardduty-finding.json', d => { delete d.title; delete d.description }))
  t.equal(untitled.title, 'GuardDuty finding CryptoCurrency:EC2/BitcoinTool.B!DNS', 'fallback title from the finding type')
  t.equal(untitled.description, null)
})

t.test('GuardDuty severity boundaries', async t => {
  const cases: Array<[unknown, string]> = [
    [0, 'low'], [1, 'low'], [3.9, 'low'], [4, 'medium'], [4.0, 'medium'], [6.9, 'medium'], [6.99, 'medium'],
    [7, 'high'], [7.0, 'high'], [8.9, 'high'], [9, 'critical'], [9.0, 'critical'], [9.5, 'critical'], [10, 'critical'],
    ['8.5', 'high'], ['3.9', 'low'], [' 9.0 ', 'critical']
  ]
  for (const [score, expected] of cases) {
    const e = adapt(t, variant('guardduty-finding.json', d => { d.severity = score }), settings, `severity ${JSON.stringify(score)}`)
    t.equal(e.severity, expected, `${JSON.stringify(score)} → ${expected}`)
    t.equal(e.native_severity, String(score).trim(), `native severity of ${JSON.stringify(score)}`)
  }
  for (const score of [undefined, null, 'HIGH', {}, [8], '']) {
    const e = adapt(t, variant('guardduty-finding.json', d => { d.severity = score }))
    t.equal(e.severity, 'medium', `unreadable severity ${JSON.stringify(score)} → medium`)
  }
  t.equal(adapt(t, variant('guardduty-finding.json', d => { delete d.severity })).native_severity, null, 'no native severity without one')
})

t.test('Security Hub finding (ASFF)', async t => {
  const envelope = fixture('securityhub-finding.json')
  const e = adapt(t, envelope)
  t.same(e, {
    source: 'aws.securityhub',
    detail_type: 'Security Hub Findings - Imported',
    region: 'us-east-1',
    dedup_key: `${SH_PRODUCT}|${SH_ID}`,
    title: 'EC2 instances should use Instance Metadata Service Version 2 (IMDSv2)',
    description: 'This control checks whether your EC2 instance metadata version is configured with Instance Metadata Service Version 2 (IMDSv2). The control fails if HttpTokens is set to optional.',
    severity: 'high',
    native_severity: 'HIGH',
    source_state: 'active',
    occurred_at: '2024-07-09T11:42:06.000Z',
    resources: [SH_ID],
    resource_count: 1,
    labels: {
      product_name: 'Security Hub',
      company_name: 'AWS',
      finding_type: 'Software and Configuration Checks/Industry and Regulatory Standards',
      generator_id: 'security-control/EC2.8',
      control_id: 'EC2.8',
      compliance_status: 'FAILED',
      workflow_status: 'NEW',
      record_state: 'ACTIVE',
      resource_type: 'AwsEc2Instance',
      finding_account: '123456789012',
      finding_region: 'us-east-1'
    }
  })
  t.same(adaptSecurityHubFindings(envelope, settings, RECEIVED_AT), adaptEnvelope(envelope, settings, RECEIVED_AT), 'the dispatcher delegates to the Security Hub adapter')

  const resolved = adapt(t, fixture('securityhub-finding-resolved.json'))
  t.equal(resolved.dedup_key, `${SH_PRODUCT}|${SH_ID}`, 'same key as the active occurrence')
  t.equal(resolved.source_state, 'resolved')
  t.equal(resolved.severity, 'info')
  t.equal(resolved.native_severity, 'INFORMATIONAL')
  t.equal(resolved.occurred_at, '2024-07-10T03:18:44.000Z')

  const noEnvelopeResources = adapt(t, variant('securityhub-finding.json', (_d, e) => { e.resources = [] }))
  t.same(noEnvelopeResources.resources, [SH_ID, 'arn:aws:ec2:us-east-1:123456789012:instance/i-0f9e8d7c6b5a43210'],
    'finding Id and resource Ids when the envelope has none')

  const twoEnvelope = variant('securityhub-finding.json', d => {
    d.findings.push({ ...d.findings[0], Id: 'second', ProductArn: 'other', Title: 'second finding' })
  })
  const two = eventsOf(t, adaptEnvelope(twoEnvelope, settings, RECEIVED_AT), twoEnvelope)
  t.same(two.map(r => r.item), [0, 1], 'one result per finding')
  t.equal(two[0]?.event.dedup_key, `${SH_PRODUCT}|${SH_ID}`, 'findings[0] gives the first event')
  t.equal(two[1]?.event.dedup_key, 'other|second', 'findings[1] its own')
})

t.test('Security Hub severity: Label, else Normalized', async t => {
  const finding = (severity: unknown): NormalizedEvent =>
    adapt(t, variant('securityhub-finding.json', d => { d.findings[0].Severity = severity }), settings, JSON.stringify(severity))
  const labels: Array<[string, string]> = [['CRITICAL', 'critical'], ['HIGH', 'high'], ['MEDIUM', 'medium'], ['LOW', 'low'], ['INFORMATIONAL', 'info'], ['high', 'high']]
  for (const [label, expected] of labels) {
    const e = finding({ Label: label, Normalized: 50 })
    t.equal(e.severity, expected, `${label} → ${expected}`)
    t.equal(e.native_severity, label.toUpperCase())
  }
  const normalized: Array<[number, string]> = [[100, 'critical'], [90, 'critical'], [89, 'high'], [70, 'high'], [69, 'medium'], [40, 'medium'], [39, 'low'], [1, 'low'], [0, 'info']]
  for (const [value, expected] of normalized) {
    const e = finding({ Normalized: value, Original: 'whatever' })
    t.equal(e.severity, expected, `Normalized ${value} → ${expected}`)
    t.equal(e.native_severity, String(value))
  }
  t.equal(finding({ Label: 'SEVERE', Normalized: 95 }).severity, 'critical', 'an unknown label falls back to Normalized')
  t.equal(finding({ Label: 'LOW', Normalized: 95 }).severity, 'low', 'the label wins over Normalized')
  const none = finding({ Original: '9' })
  t.equal(none.severity, 'medium', 'neither Label nor Normalized → medium')
  t.equal(none.native_severity, null)
  t.equal(finding('HIGH').severity, 'medium', 'a Severity that is not an object is unreadable')
})

t.test('Security Hub source state', async t => {
  const state = (edit: (f: Json) => void): string => adapt(t, variant('securityhub-finding.json', d => edit(d.findings[0]))).source_state
  t.equal(state(f => { f.Workflow = { Status: 'NOTIFIED' } }), 'active', 'NOTIFIED')
  t.equal(state(f => { f.Workflow = { Status: 'NEW' } }), 'active', 'NEW')
  t.equal(state(f => { f.Workflow = { Status: 'RESOLVED' } }), 'resolved', 'RESOLVED')
  t.equal(state(f => { f.Workflow = { Status: 'SUPPRESSED' } }), 'resolved', 'SUPPRESSED')
  t.equal(state(f => { f.RecordState = 'ARCHIVED' }), 'resolved', 'RecordState ARCHIVED')
  t.equal(state(f => { f.Compliance.Status = 'PASSED' }), 'resolved', 'Compliance PASSED')
  t.equal(state(f => { f.Compliance.Status = 'WARNING' }), 'active', 'Compliance WARNING')
  t.equal(state(f => { delete f.Workflow; f.WorkflowState = 'RESOLVED' }), 'resolved', 'legacy WorkflowState')
  t.equal(state(f => { delete f.Workflow; delete f.WorkflowState; delete f.RecordState; delete f.Compliance }), 'active', 'nothing said: active')
})

t.test('AWS Health events', async t => {
  const envelope = fixture('health-issue.json')
  const issue = adapt(t, envelope)
  t.same(issue, {
    source: 'aws.health',
    detail_type: 'AWS Health Event',
    region: 'us-east-1',
    dedup_key: `123456789012|${HEALTH_ISSUE_ARN}`,
    title: 'EC2 AWS_EC2_OPERATIONAL_ISSUE',
    description: 'We are investigating increased API error rates and latencies for the EC2 APIs in the US-EAST-1 Region. Running instances are not affected. Some of your instances may be unreachable in a single Availability Zone (use1-az4).',
    severity: 'high',
    native_severity: 'issue',
    source_state: 'active',
    occurred_at: '2024-08-21T18:32:05.000Z',
    resources: ['i-0f9e8d7c6b5a43210', 'i-0a1b2c3d4e5f60718'],
    resource_count: 2,
    labels: {
      service: 'EC2',
      event_type_code: 'AWS_EC2_OPERATIONAL_ISSUE',
      event_type_category: 'issue',
      event_scope_code: 'ACCOUNT_SPECIFIC',
      event_region: 'us-east-1',
      status_code: 'open',
      affected_account: '123456789012',
      start_time: 'Wed, 21 Aug 2024 17:55:00 GMT',
      communication_id: '3c9d2e7f41a8b6055d1e0f9a2b7c4d6e8f1a3b5c-1'
    }
  })
  t.same(adaptHealthEvent(envelope, settings, RECEIVED_AT), adaptEnvelope(envelope, settings, RECEIVED_AT), 'the dispatcher delegates to the Health adapter')

  const closed = adapt(t, fixture('health-closed.json'))
  t.equal(closed.dedup_key, `123456789012|${HEALTH_ISSUE_ARN}`, 'same key as the open occurrence')
  t.equal(closed.source_state, 'resolved')
  t.equal(closed.occurred_at, '2024-08-21T21:07:52.000Z')
  t.match(closed.description, /^Between 10:55 AM and 1:58 PM PDT/)

  const scheduled = adapt(t, fixture('health-scheduled-change.json'))
  t.equal(scheduled.dedup_key, '123456789012|arn:aws:health:us-east-1::event/EC2/AWS_EC2_INSTANCE_REBOOT_MAINTENANCE_SCHEDULED/AWS_EC2_INSTANCE_REBOOT_MAINTENANCE_SCHEDULED_2D5E8F1A4B7C')
  t.equal(scheduled.source_state, 'pending')
  t.equal(scheduled.severity, 'medium')
  t.equal(scheduled.native_severity, 'scheduledChange')
  t.equal(scheduled.title, 'EC2 AWS_EC2_INSTANCE_REBOOT_MAINTENANCE_SCHEDULED')
  t.same(scheduled.resources, ['i-0123456789abcdef0'])

  const pub = adapt(t, fixture('health-public-issue.json'))
  t.equal(pub.dedup_key, '123456789012|arn:aws:health:eu-west-1::event/LAMBDA/AWS_LAMBDA_OPERATIONAL_ISSUE/AWS_LAMBDA_OPERATIONAL_ISSUE_5B2C9E1F7A3D',
    'no affectedAccount: the envelope account')
  t.same(pub.resources, [], 'a public event names no resources')
  t.equal(pub.labels.affected_account, undefined)

  const org = adapt(t, variant('health-issue.json', (_d, e) => { e.account = '210987654321' }))
  t.equal(org.dedup_key, `123456789012|${HEALTH_ISSUE_ARN}`, 'organizational view: the affected account, not the receiving one')

  const entities = adapt(t, variant('health-issue.json', (_d, e) => { e.resources = [] }))
  t.same(entities.resources, ['i-0f9e8d7c6b5a43210', 'i-0a1b2c3d4e5f60718'], 'affected entities when the envelope has no resources')

  const languages = adapt(t, variant('health-issue.json', d => {
    d.eventDescription = [{ language: 'fr_FR', latestDescription: 'Nous enquêtons.' }, { language: 'en_US', latestDescription: 'We are investigating.' }]
  }))
  t.equal(languages.description, 'We are investigating.', 'the en_US description is preferred')
  const french = adapt(t, variant('health-issue.json', d => { d.eventDescription = [{ language: 'fr_FR', latestDescription: 'Nous enquêtons.' }] }))
  t.equal(french.description, 'Nous enquêtons.', 'else the first one')

  const states: Array<[unknown, string]> = [['open', 'active'], ['closed', 'resolved'], ['upcoming', 'pending'], ['CLOSED', 'resolved'], ['unknown', 'active'], [undefined, 'active']]
  for (const [code, expected] of states) {
    t.equal(adapt(t, variant('health-issue.json', d => { d.statusCode = code })).source_state, expected, `statusCode ${String(code)} → ${expected}`)
  }
  const untitled = adapt(t, variant('health-issue.json', d => { delete d.service; delete d.eventTypeCode }))
  t.equal(untitled.title, 'AWS Health event', 'fallback title')
  t.equal(adapt(t, variant('health-issue.json', d => { delete d.service })).title, 'AWS_EC2_OPERATIONAL_ISSUE')
})

t.test('AWS Health severity from eventTypeCategory via the settings', async t => {
  const category = (value: unknown, s: AdapterSettings = settings): NormalizedEvent =>
    adapt(t, variant('health-issue.json', d => { d.eventTypeCategory = value }), s, `category ${String(value)}`)
  t.equal(category('issue').severity, 'high', 'default issue')
  t.equal(category('accountNotification').severity, 'low', 'default accountNotification')
  t.equal(category('scheduledChange').severity, 'medium', 'default scheduledChange')
  t.equal(category('investigation').severity, 'high', 'default investigation')
  const custom: AdapterSettings = {
    ...settings,
    health_category_severities: { issue: 'critical', accountNotification: 'info', scheduledChange: 'high', investigation: 'medium' }
  }
  t.equal(category('issue', custom).severity, 'critical', 'custom issue')
  t.equal(category('accountNotification', custom).severity, 'info', 'custom accountNotification')
  t.equal(category('scheduledChange', custom).severity, 'high', 'custom scheduledChange')
  t.equal(category('investigation', custom).severity, 'medium', 'custom investigation')
  t.equal(category('somethingNew', custom).severity, 'low', 'unknown category → low')
  t.equal(category('constructor', custom).severity, 'low', 'an Object.prototype name is an unknown category')
  t.equal(category('__proto__', custom).severity, 'low')
  const missing = category(undefined, custom)
  t.equal(missing.severity, 'low', 'missing category → low')
  t.equal(missing.native_severity, null)
  t.equal(category(['issue'], custom).severity, 'low', 'a non-string category → low')
})

t.test('unsupported sources and detail-types; unreadable details', async t => {
  t.same(DETAIL_TYPES, {
    'aws.cloudwatch': ['CloudWatch Alarm State Change'],
    'aws.guardduty': ['GuardDuty Finding'],
    'aws.securityhub': ['Security Hub Findings - Imported', 'Security Hub Findings - Custom Action'],
    'aws.health': ['AWS Health Event', 'AWS Health Abuse Event']
  }, 'the supported detail-types of each source')

  const source = adaptEnvelope(variant('cloudwatch-alarm.json', (_d, e) => { e.source = 'aws.ec2' }), settings)
  t.match(ignoredOne(t, source, 'unsupported_source'), /source "aws\.ec2" has no adapter/)
  ignoredOne(t, adaptEnvelope(variant('cloudwatch-alarm.json', (_d, e) => { e.source = 'constructor' }), settings), 'unsupported_source',
    'a source named like an Object.prototype member')
  ignoredOne(t, adaptEnvelope(variant('cloudwatch-alarm.json', (_d, e) => { e.source = '__proto__' }), settings), 'unsupported_source', '__proto__ source')

  const wrongTypes: Array<[string, string]> = [
    ['cloudwatch-alarm.json', 'CloudWatch Alarm Configuration Change'],
    ['guardduty-finding.json', 'GuardDuty Runtime Protection Unhealthy'],
    ['securityhub-finding.json', 'Security Hub Insight Results'],
    ['securityhub-finding.json', 'Findings Imported V2'],
    ['securityhub-finding.json', 'Security Hub Findings - Custom Action '],
    ['health-issue.json', 'AWS Health Abuse Events'],
    ['health-issue.json', 'aws health event']
  ]
  for (const [name, detailType] of wrongTypes) {
    const result = adaptEnvelope(variant(name, (_d, e) => { e['detail-type'] = detailType }), settings)
    t.match(ignoredOne(t, result, 'unsupported_detail_type', detailType), detailType, 'the message names the detail-type')
  }

  const mismatched = adaptGuardDutyFinding(fixture('cloudwatch-alarm.json'), settings)
  t.match(ignoredOne(t, mismatched, 'unsupported_source'), /source "aws\.cloudwatch" is not aws\.guardduty/, 'a source adapter refuses other sources')

  const missing: Array<[string, (d: Json, e: Json) => void, RegExp, string]> = [
    ['cloudwatch-alarm.json', (d, e) => { delete d.alarmName; e.resources = [] }, /neither an alarm ARN/, 'detail_unreadable'],
    ['cloudwatch-alarm.json', d => { delete d.state }, /state \(undefined\) is not ALARM/, 'detail_unreadable'],
    ['cloudwatch-alarm.json', d => { d.state.value = 'BROKEN' }, /state "BROKEN"/, 'detail_unreadable'],
    ['guardduty-finding.json', d => { delete d.arn }, /no detail\.arn/, 'detail_unreadable'],
    ['guardduty-finding.json', d => { d.arn = '  ' }, /no detail\.arn/, 'detail_unreadable'],
    ['securityhub-finding.json', d => { d.findings = [] }, /no finding/, 'no_findings'],
    ['securityhub-finding.json', d => { delete d.findings }, /no finding/, 'no_findings'],
    ['securityhub-finding.json', d => { delete d.findings[0].Id }, /lacks ProductArn or Id/, 'detail_unreadable'],
    ['securityhub-finding.json', d => { delete d.findings[0].ProductArn }, /lacks ProductArn or Id/, 'detail_unreadable'],
    ['securityhub-finding.json', d => { d.findings = [null] }, /findings\[0\] is not an object/, 'detail_unreadable'],
    ['health-issue.json', d => { delete d.eventArn }, /no detail\.eventArn/, 'detail_unreadable'],
    ['health-issue.json', (d, e) => { delete d.affectedAccount; delete e.account }, /neither detail\.affectedAccount nor an envelope account/, 'detail_unreadable']
  ]
  for (const [name, edit, message, reason] of missing) {
    const result = adaptEnvelope(variant(name, edit), settings)
    t.match(ignoredOne(t, result, reason, `${name} lacking a key field`), message)
  }
  for (const name of ['cloudwatch-alarm.json', 'guardduty-finding.json', 'securityhub-finding.json', 'health-issue.json']) {
    for (const detail of [null, 'detail', 42, [], [{}]]) {
      const result = adaptEnvelope(variant(name, (_d, e) => { e.detail = detail }), settings)
      t.match(ignoredOne(t, result, 'detail_unreadable', `${name} detail ${JSON.stringify(detail)}`), /is not an object/)
    }
  }
})

/** A deterministic pseudo-random generator (mulberry32), so a failure can be replayed. */
function random (seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6D2B79F5) | 0
    let r = Math.imul(a ^ (a >>> 15), 1 | a)
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296
  }
}

const KEYS = [
  'alarmName', 'state', 'value', 'reason', 'configuration', 'tags', 'description', 'metrics', 'Key', 'Value', 'severity',
  'arn', 'title', 'type', 'service', 'archived', 'resource', 'instanceDetails', 'instanceId', 's3BucketDetails',
  'findings', 'Id', 'ProductArn', 'Severity', 'Label', 'Normalized', 'Title', 'Workflow', 'Status', 'RecordState', 'Compliance', 'Resources',
  'eventArn', 'affectedAccount', 'eventTypeCategory', 'statusCode', 'eventDescription', 'latestDescription', 'affectedEntities', 'entityValue',
  '__proto__', 'constructor', 'toString'
]

function garbage (rnd: () => number, depth: number): unknown {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)] as T
  const kind = Math.floor(rnd() * (depth > 3 ? 6 : 9))
  switch (kind) {
    case 0: return null
    case 1: return rnd() < 0.5
    case 2: return pick([0, -1, 3.9, 9, 1e308, -0, 42.5])
    case 3: return pick(['', ' ', 'ALARM', 'OK', 'INSUFFICIENT_DATA', 'HIGH', 'issue', 'closed', 'arn:aws:x', '\u0000\n\t', '😀', '\uD800'])
    case 4: return 'x'.repeat(Math.floor(rnd() * 5000))
    case 5: return pick([[], {}, [null]])
    case 6: case 7: {
      const o: Json = {}
      const n = Math.floor(rnd() * 6)
      for (let i = 0; i < n; i++) Object.defineProperty(o, pick(KEYS), { value: garbage(rnd, depth + 1), enumerable: true, configurable: true, writable: true })
      return o
    }
    default: return Array.from({ length: Math.floor(rnd() * 4) }, () => garbage(rnd, depth + 1))
  }
}

/** Whether `detail` is an object with a non-empty own `findings` array (else a Security Hub envelope is `no_findings`). */
const hasFindings = (detail: unknown): boolean =>
  typeof detail === 'object' && detail !== null && !Array.isArray(detail) && Object.hasOwn(detail, 'findings') &&
  Array.isArray((detail as Json).findings) && (detail as Json).findings.length > 0

t.test('garbage details never throw and are ignored', async t => {
  const bases = ['cloudwatch-alarm.json', 'guardduty-finding.json', 'securityhub-finding.json', 'health-issue.json']
  const details: unknown[] = [
    null, undefined, 0, 'detail', true, [], [{}], {},
    { state: null }, { state: 'ALARM' }, { state: { value: 42 } }, { state: { value: ['ALARM'] } }, { state: { value: {} } },
    { alarmName: 'x', state: { value: 'ALARM ' } }, { state: { value: 'alarm' } },
    { arn: 42 }, { arn: {} }, { arn: ['arn:aws:guardduty:x'] }, { arn: '' },
    { findings: null }, { findings: {} }, { findings: [null] }, { findings: ['x'] }, { findings: [[]] },
    { findings: [{ Id: 1, ProductArn: [] }] }, { findings: [{ Id: 'x' }] }, { findings: { 0: { Id: 'x', ProductArn: 'y' } } },
    { eventArn: null }, { eventArn: 12 }, { eventArn: '' }, { eventArn: '   ' }, { eventArn: { arn: 'x' } },
    JSON.parse('{"__proto__": {"arn": "x", "eventArn": "y", "findings": [{"Id": "a", "ProductArn": "b"}]}, "constructor": {"prototype": 1}}')
  ]
  for (const name of bases) {
    for (const detail of details) {
      const envelope = variant(name, (_d, e) => { e.detail = detail })
      let results: AdapterResult[] = []
      t.doesNotThrow(() => { results = adaptEnvelope(envelope, settings, RECEIVED_AT) }, `${name} with detail ${JSON.stringify(detail)}`)
      const reason = name === 'securityhub-finding.json' && !Array.isArray(detail) && typeof detail === 'object' && detail !== null && !hasFindings(detail)
        ? 'no_findings'
        : 'detail_unreadable'
      ignoredOne(t, results, reason, `${name} with detail ${JSON.stringify(detail)}`)
    }
  }

  const envelopes: Array<[unknown, string]> = [
    [null, 'detail_unreadable'], [undefined, 'detail_unreadable'], ['envelope', 'detail_unreadable'], [42, 'detail_unreadable'], [[], 'detail_unreadable'],
    [{}, 'unsupported_source'], [{ source: 'aws.cloudwatch' }, 'unsupported_detail_type'], [{ source: ['aws.health'] }, 'unsupported_source'],
    [variant('guardduty-finding.json', (_d, e) => { e['detail-type'] = null }), 'unsupported_detail_type']
  ]
  for (const [envelope, reason] of envelopes) {
    let results: AdapterResult[] = []
    const what = `envelope ${JSON.stringify(envelope)?.slice(0, 80)}`
    t.doesNotThrow(() => { results = adaptEnvelope(envelope as EventBridgeEnvelope, settings, RECEIVED_AT) }, what)
    ignoredOne(t, results, reason, what)
  }

  // An unreadable envelope time is no reason to drop the event: it occurred when it was received.
  const receipt = new Date(RECEIVED_AT).toISOString()
  const times: unknown[] = [
    'yesterday', 1724265125000, '+275761-01-01T00:00:00Z', '9999-12-31T23:59:59-01:00',
    '1', '2024-08-21', 'Wed, 21 Aug 2024 18:32:05 GMT', '2024-02-30T10:00:00Z', '2023-02-29T10:00:00Z', '2024-13-01T10:00:00Z', '2024-08-21T25:00:00Z'
  ]
  for (const time of times) {
    const envelope = variant('health-issue.json', (_d, e) => { e.time = time })
    let results: AdapterResult[] = []
    t.doesNotThrow(() => { results = adaptEnvelope(envelope, settings, RECEIVED_AT) }, `time ${JSON.stringify(time)}`)
    const e = eventOf(t, single(t, results, `time ${JSON.stringify(time)}`), envelope, `time ${JSON.stringify(time)}`)
    t.equal(e.occurred_at, receipt, `time ${JSON.stringify(time)} is not an RFC 3339 date-time: the time of receipt`)
    t.equal(e.labels.envelope_time, String(time), 'the envelope time is kept as a label')
  }

  // Not JSON, but the last-resort guard also holds for objects whose reads throw.
  const throwing = variant('cloudwatch-alarm.json', (_d, e) => {
    Object.defineProperty(e.detail, 'alarmName', { enumerable: true, get () { throw new Error('boom') } })
  })
  let guarded: AdapterResult[] = []
  t.doesNotThrow(() => { guarded = adaptEnvelope(throwing, settings) }, 'a throwing detail getter')
  t.match(ignoredOne(t, guarded, 'detail_unreadable'), /aws\.cloudwatch event could not be read: Error: boom/)
  const throwingEnvelope = new Proxy({}, { get () { throw new Error('no access') } }) as EventBridgeEnvelope
  let proxied: AdapterResult[] = []
  t.doesNotThrow(() => { proxied = adaptEnvelope(throwingEnvelope, settings) }, 'a throwing envelope')
  t.match(ignoredOne(t, proxied, 'detail_unreadable'), /could not be read: Error: no access/)

  const noSettings = adapt(t, fixture('health-issue.json'), {} as AdapterSettings)
  t.equal(noSettings.severity, 'high', 'empty settings fall back to the defaults')
  const badSettings = adapt(t, fixture('cloudwatch-alarm.json'), { cloudwatch_default_severity: 'urgent' } as unknown as AdapterSettings)
  t.equal(badSettings.severity, 'medium', 'an invalid default severity falls back to medium')
})

t.test('wrong types in optional fields still give a well-formed event', async t => {
  const hostile = { title: {}, Title: [], description: 42, Description: { a: 1 }, severity: 'NaN', Severity: 'HIGH', tags: 'severity=high', configuration: [], service: 7, Workflow: null, Resources: 'x', eventDescription: 42, affectedEntities: [null, 1, { entityValue: {} }], eventTypeCategory: ['issue'], statusCode: 7, resource: 'i-1', previousState: 3 }
  const cases: Array<[string, (d: Json) => void, string]> = [
    ['cloudwatch-alarm.json', d => { Object.assign(d, hostile, { state: { value: 'ALARM', reason: ['x'] } }) }, 'prod-api-high-cpu: ALARM'],
    ['guardduty-finding.json', d => { for (const k of Object.keys(d)) if (k !== 'arn') delete d[k]; Object.assign(d, hostile) }, 'GuardDuty finding'],
    ['securityhub-finding.json', d => { d.findings = [{ Id: SH_ID, ProductArn: SH_PRODUCT, ...hostile, Types: [{}], Compliance: 'PASSED' }] }, 'Security Hub finding'],
    ['health-issue.json', d => { for (const k of Object.keys(d)) if (k !== 'eventArn') delete d[k]; Object.assign(d, hostile) }, 'AWS Health event']
  ]
  for (const [name, edit, title] of cases) {
    const envelope = variant(name, edit)
    let results: AdapterResult[] = []
    t.doesNotThrow(() => { results = adaptEnvelope(envelope, settings, RECEIVED_AT) }, name)
    const e = eventOf(t, single(t, results, name), envelope, name)
    t.equal(e.title, title, `${name} fallback title`)
    t.equal(e.description, null, `${name} no description`)
  }
})

t.test('random details never throw; any event produced is within the limits', async t => {
  const bases = ['cloudwatch-alarm.json', 'guardduty-finding.json', 'securityhub-finding.json', 'health-issue.json']
  const rnd = random(20240514)
  let events = 0
  let ignoredResults = 0
  let failures = 0
  for (let i = 0; i < 2000; i++) {
    const name = bases[i % bases.length] as string
    const envelope = variant(name, (d, e) => {
      if (i % 2 === 0) {
        e.detail = garbage(rnd, 0)
      } else {
        // Keep the key field, randomise the rest.
        const keep = ({ 'cloudwatch-alarm.json': ['alarmName', 'state'], 'guardduty-finding.json': ['arn'], 'securityhub-finding.json': ['findings'], 'health-issue.json': ['eventArn'] } as Json)[name] as string[]
        const extra = garbage(rnd, 1)
        e.detail = { ...(typeof extra === 'object' && extra !== null && !Array.isArray(extra) ? extra : {}), ...Object.fromEntries(keep.map(k => [k, d[k]])) }
        if (name === 'securityhub-finding.json') e.detail.findings = [{ ...(garbage(rnd, 1) as object), Id: SH_ID, ProductArn: SH_PRODUCT }]
      }
    })
    let results: AdapterResult[]
    try {
      results = adaptEnvelope(envelope, settings, RECEIVED_AT)
    } catch (err) {
      failures++
      t.fail(`threw on ${JSON.stringify(envelope.detail).slice(0, 200)}: ${String(err)}`)
      continue
    }
    if (!Array.isArray(results) || results.length === 0 || results.length > MAX_FINDINGS + 1) {
      failures++
      t.fail(`not 1..${MAX_FINDINGS + 1} results: ${JSON.stringify(results)?.slice(0, 200)}`)
      continue
    }
    for (const result of results) {
      if (!Number.isInteger(result.item) || result.item < 0 || result.item > MAX_FINDINGS) {
        failures++
        t.fail(`item ${String(result.item)} out of range`)
      }
      if (result.kind === 'event') {
        events++
        const problems = limitProblems(result.event)
        if (problems.length > 0) {
          failures++
          t.same(problems, [], `limits on ${JSON.stringify(envelope.detail).slice(0, 200)}`)
        }
      } else if (result.kind === 'ignored' && typeof result.detail === 'string' && /\S/.test(result.detail)) {
        ignoredResults++
      } else {
        failures++
        t.fail(`unexpected result ${JSON.stringify(result)}`)
      }
    }
  }
  t.equal(failures, 0, 'no input threw, broke a limit or gave an ignored result without detail')
  t.ok(events >= 500, `events were produced too (${events}), so the limits were exercised`)
  t.ok(ignoredResults >= 100, `ignored results too (${ignoredResults})`)
})

t.test('truncation of long titles, descriptions, labels and keys', async t => {
  const longTitle = adapt(t, variant('guardduty-finding.json', d => { d.title = 'A'.repeat(10_000); d.description = 'd'.repeat(20_000) }))
  t.equal(longTitle.title.length, 512, 'title cut to 512')
  t.equal(longTitle.title, 'A'.repeat(511) + '…', 'ends with an ellipsis')
  t.equal(longTitle.description?.length, 8192, 'description cut to 8192')
  t.equal(longTitle.description, 'd'.repeat(8191) + '…')

  const emoji = adapt(t, variant('securityhub-finding.json', d => { d.findings[0].Title = '😀'.repeat(600) }))
  t.ok(emoji.title.length <= 512, 'emoji title within 512 UTF-16 units')
  t.notMatch(emoji.title, LONE_SURROGATE, 'no surrogate pair is split')
  t.ok(emoji.title.endsWith('😀…'))

  const lone = adapt(t, variant('securityhub-finding.json', d => { d.findings[0].Title = '\uD800 lone \uDC00'; d.findings[0].Description = 'x\uDBFF' }))
  t.equal(lone.title, '\uFFFD lone \uFFFD', 'lone surrogates of the input become U+FFFD')
  t.equal(lone.description, 'x\uFFFD')
  const edge = adapt(t, variant('guardduty-finding.json', d => { d.title = ' '.repeat(2047) + '😀 tail' }))
  t.notMatch(edge.title, LONE_SURROGATE, 'no half pair where a long title is pre-cut')

  const multiline = adapt(t, variant('securityhub-finding.json', d => { d.findings[0].Title = '  Open\n\tport\r\n 22\u0000 ' }))
  t.equal(multiline.title, 'Open port 22', 'a title is one trimmed line')

  const blank = adapt(t, variant('securityhub-finding.json', d => { d.findings[0].Title = ' \n\t ' }))
  t.equal(blank.title, 'Software and Configuration Checks/Industry and Regulatory Standards', 'a blank title falls back to the finding type')

  const longReason = adapt(t, variant('cloudwatch-alarm.json', d => { d.state.reason = 'r'.repeat(50_000) }))
  t.equal(longReason.title, `prod-api-high-cpu: ${'r'.repeat(159)}…`, 'a CloudWatch title keeps the reason short')
  t.equal(longReason.description?.length, 8192)

  const tags: Json = {}
  for (let i = 0; i < 100; i++) tags[`tag${String(i).padStart(3, '0')}`] = `value ${i}`
  tags['k'.repeat(300)] = 'long key'
  const manyTags = adapt(t, variant('cloudwatch-alarm.json', d => { d.configuration.tags = tags }))
  t.equal(Object.keys(manyTags.labels).length, 50, 'at most 50 labels')
  t.equal(manyTags.labels.alarm_name, 'prod-api-high-cpu', 'adapter labels come first')

  const longLabel = adapt(t, variant('cloudwatch-alarm.json', d => { d.configuration.tags = { note: 'v'.repeat(1000), ['k'.repeat(300)]: 'x', '': 'empty key', ' ': 'blank key' } }))
  t.equal(longLabel.labels.note, 'v'.repeat(255) + '…', 'label value cut to 256')
  t.equal(longLabel.labels['k'.repeat(127) + '…'], 'x', 'label key cut to 128')
  t.equal(Object.keys(longLabel.labels).some(k => k.trim() === ''), false, 'no blank label keys')

  const proto = adapt(t, variant('cloudwatch-alarm.json', d => { d.configuration.tags = JSON.parse('{"__proto__": "polluted", "constructor": "c"}') }))
  t.equal(Object.hasOwn(proto.labels, '__proto__'), true, 'a __proto__ tag is an own label')
  t.equal(Object.getPrototypeOf(proto.labels), Object.prototype, 'the labels prototype is untouched')

  const native = adapt(t, variant('health-issue.json', d => { d.eventTypeCategory = 'c'.repeat(500) }))
  t.equal(native.native_severity?.length, 64, 'native severity cut to 64')
  t.equal(native.severity, 'low')

  const manyResources = adapt(t, variant('cloudwatch-alarm.json', (_d, e) => {
    e.resources = [ALARM_ARN, ALARM_ARN, ...Array.from({ length: 60 }, (_, i) => `arn:aws:ec2:us-east-1:123456789012:instance/i-${i}`), 'x'.repeat(3000), '', 7]
  }))
  t.equal(manyResources.resources.length, 50, 'at most 50 resources')
  t.equal(manyResources.resources.filter(r => r === ALARM_ARN).length, 1, 'duplicates removed')
  t.equal(manyResources.dedup_key, ALARM_ARN)

  const huge = adapt(t, variant('health-issue.json', (_d, e) => { e.resources = Array.from({ length: 200_000 }, (_, i) => `i-${i}`) }))
  t.same(huge.resources, Array.from({ length: 50 }, (_, i) => `i-${i}`), 'a huge resource list is cut to its first 50')
})

t.test('dedup keys longer than 1024 characters are hashed, keeping a readable prefix', async t => {
  const base = 'arn:aws:guardduty:us-east-1:123456789012:detector/5cc2a1e0b6d84f3e9a7b2c1d0e9f8a7b/finding/'
  const longArn = base + 'x'.repeat(3000)
  const e = adapt(t, variant('guardduty-finding.json', d => { d.arn = longArn }))
  const hash = createHash('sha256').update(longArn).digest('hex')
  t.ok(e.dedup_key.length <= 1024, `${e.dedup_key.length} ≤ 1024`)
  t.ok(e.dedup_key.startsWith(base + 'xxxx'), 'readable prefix')
  t.ok(e.dedup_key.endsWith(`|sha256:${hash}`), 'ends with the SHA-256 of the whole key')
  t.equal(e.dedup_key.length, 1024, 'the prefix uses the room left')

  const again = adapt(t, variant('guardduty-finding.json', d => { d.arn = longArn }))
  t.equal(again.dedup_key, e.dedup_key, 'deterministic')
  const other = adapt(t, variant('guardduty-finding.json', d => { d.arn = longArn.slice(0, -1) + 'y' }))
  t.not(other.dedup_key, e.dedup_key, 'keys that differ only past the prefix stay distinct')

  const exact = base + 'z'.repeat(1024 - base.length)
  t.equal(adapt(t, variant('guardduty-finding.json', d => { d.arn = exact })).dedup_key, exact, 'a 1024-character key is kept as is')

  const health = adapt(t, variant('health-issue.json', d => { d.eventArn = 'arn:aws:health:us-east-1::event/' + '😀'.repeat(800) }))
  t.ok(health.dedup_key.length <= 1024)
  t.notMatch(health.dedup_key, LONE_SURROGATE, 'the prefix does not split a surrogate pair')
  t.ok(health.dedup_key.startsWith('123456789012|arn:aws:health:us-east-1::event/😀'))
})

// ---------------------------------------------------------------------------------------------
// One result per item: Security Hub envelopes with several findings
// ---------------------------------------------------------------------------------------------

const SH_SECOND_ID = 'arn:aws:securityhub:us-east-1:123456789012:security-control/S3.5/finding/8d2e4f6a-1b3c-4d5e-8f9a-0b1c2d3e4f5a'
const GD_PRODUCT = 'arn:aws:securityhub:us-east-1::product/aws/guardduty'

/** A Security Hub envelope whose findings are `build(fixture finding)`. */
const findingsEnvelope = (build: (base: Json) => unknown[], edit: (e: Json) => void = () => {}): EventBridgeEnvelope =>
  variant('securityhub-finding.json', (d, e) => {
    const base = d.findings[0] as Json
    d.findings = build(base)
    edit(e)
  })

/** A deep copy of `finding` with `changes` applied on top. */
const findingLike = (finding: Json, changes: Json): Json => ({ ...structuredClone(finding), ...changes })

t.test('Security Hub: several different findings give one result per finding', async t => {
  const envelope = findingsEnvelope(base => [
    base,
    findingLike(base, {
      Id: SH_SECOND_ID,
      Title: 'S3 general purpose buckets should require requests to use SSL',
      Severity: { Label: 'CRITICAL', Normalized: 90 },
      Workflow: { Status: 'RESOLVED' },
      Resources: [{ Type: 'AwsS3Bucket', Id: 'arn:aws:s3:::audit-logs' }, { Type: 'AwsS3Bucket', Id: 'arn:aws:s3:::audit-logs-replica' }]
    }),
    null,
    findingLike(base, {
      ProductArn: GD_PRODUCT,
      Title: 'GuardDuty via Security Hub',
      Severity: { Normalized: 10 },
      Compliance: { Status: 'PASSED' },
      Resources: []
    })
  ])
  const results = adaptEnvelope(envelope, settings, RECEIVED_AT)
  t.same(results.map(r => [r.item, r.kind]), [[0, 'event'], [1, 'event'], [2, 'ignored'], [3, 'event']], 'one result per finding, in order, with its item')
  t.match(ignoredOf(t, results[2], 'detail_unreadable', 'findings[2] = null'), /findings\[2\] is not an object/)
  t.same(adaptSecurityHubFindings(envelope, settings, RECEIVED_AT), results, 'the dispatcher delegates to the Security Hub adapter')

  const events = eventsOf(t, results, envelope)
  const [first, second, third] = events.map(r => r.event) as [NormalizedEvent, NormalizedEvent, NormalizedEvent]

  t.equal(first.dedup_key, `${SH_PRODUCT}|${SH_ID}`, 'findings[0]: its own key')
  t.equal(first.severity, 'high')
  t.equal(first.native_severity, 'HIGH')
  t.equal(first.source_state, 'active')
  t.equal(first.title, 'EC2 instances should use Instance Metadata Service Version 2 (IMDSv2)')
  t.same(first.resources, [SH_ID, 'arn:aws:ec2:us-east-1:123456789012:instance/i-0f9e8d7c6b5a43210'], 'findings[0]: its own Id and resources, not the envelope list')
  t.equal(first.labels.resource_type, 'AwsEc2Instance')

  t.equal(second.dedup_key, `${SH_PRODUCT}|${SH_SECOND_ID}`, 'findings[1]: its own key')
  t.equal(second.severity, 'critical')
  t.equal(second.native_severity, 'CRITICAL')
  t.equal(second.source_state, 'resolved', 'findings[1] is resolved while findings[0] stays active')
  t.equal(second.title, 'S3 general purpose buckets should require requests to use SSL')
  t.same(second.resources, [SH_SECOND_ID, 'arn:aws:s3:::audit-logs', 'arn:aws:s3:::audit-logs-replica'], 'findings[1]: its own Id and resources')
  t.equal(second.labels.resource_type, 'AwsS3Bucket')

  t.equal(third.dedup_key, `${GD_PRODUCT}|${SH_ID}`, 'the same Id from another product is another finding')
  t.equal(third.severity, 'low', 'Normalized 10')
  t.equal(third.native_severity, '10')
  t.equal(third.source_state, 'resolved', 'Compliance PASSED')
  t.same(third.resources, [SH_ID], 'a finding without resources: its Id')

  for (const e of [first, second, third]) {
    t.equal(e.region, 'us-east-1', 'every event carries the envelope region')
    t.equal(e.occurred_at, '2024-07-09T11:42:06.000Z', 'every event carries the envelope time')
    t.equal(e.detail_type, 'Security Hub Findings - Imported')
  }

  // resource_count counts what the event's resources were taken from: a finding alone (the
  // envelope listing none) and the same finding among others report the same number.
  const alone = adapt(t, variant('securityhub-finding.json', (_d, e) => { e.resources = [] }))
  t.same(alone.resources, first.resources, 'alone, findings[0] has the same resources')
  t.equal(alone.resource_count, 2, 'alone: its Id and its one resource')
  t.equal(first.resource_count, alone.resource_count, 'among several: the same resource_count as alone')
  t.equal(second.resource_count, 3, 'findings[1]: its Id and its two resources')
  t.equal(third.resource_count, 1, 'findings[3]: its Id')
})

t.test('Security Hub: a finding repeated in one envelope counts once (the first kept)', async t => {
  const envelope = findingsEnvelope(base => [
    base,
    findingLike(base, { Id: SH_SECOND_ID, Title: 'second' }),
    findingLike(base, { Title: 'a later copy of findings[0]', Severity: { Label: 'LOW' } }),
    findingLike(base, { Id: SH_SECOND_ID, Title: 'a later copy of findings[1]' })
  ])
  const results = adaptEnvelope(envelope, settings, RECEIVED_AT)
  const events = eventsOf(t, results, envelope)
  t.equal(results.length, 2, 'two distinct findings, two results')
  t.same(events.map(r => r.item), [0, 1], 'the first occurrences are kept')
  t.same(events.map(r => r.event.dedup_key), [`${SH_PRODUCT}|${SH_ID}`, `${SH_PRODUCT}|${SH_SECOND_ID}`])
  t.equal(events[0]?.event.title, 'EC2 instances should use Instance Metadata Service Version 2 (IMDSv2)', 'the first copy decides')
  t.equal(events[0]?.event.severity, 'high')
  t.equal(events[1]?.event.title, 'second')

  const twice = findingsEnvelope(base => [base, structuredClone(base)])
  const once = eventsOf(t, adaptEnvelope(twice, settings, RECEIVED_AT), twice)
  t.equal(once.length, 1, 'the same finding twice: one event')
  t.equal(once[0]?.item, 0)
  t.equal(once[0]?.event.dedup_key, `${SH_PRODUCT}|${SH_ID}`)
})

t.test(`Security Hub: at most ${MAX_FINDINGS} findings, then too_many_findings`, async t => {
  t.equal(MAX_FINDINGS, 100)
  const many = (n: number): EventBridgeEnvelope => findingsEnvelope(base => Array.from({ length: n }, (_, i) =>
    findingLike(base, { Id: `${SH_ID}-${i}`, Title: `finding ${i}` })), e => { e.resources = [] })

  const hundred = adaptEnvelope(many(100), settings, RECEIVED_AT)
  t.equal(hundred.length, 100, '100 findings: 100 results')
  t.ok(hundred.every((r, i) => r.kind === 'event' && r.item === i), 'all events, items 0..99')

  for (const n of [101, 250]) {
    const envelope = many(n)
    const results = adaptEnvelope(envelope, settings, RECEIVED_AT)
    t.equal(results.length, 101, `${n} findings: 100 results and one more`)
    const events = results.slice(0, 100)
    t.ok(events.every((r, i) => r.kind === 'event' && r.item === i && r.event.dedup_key === `${SH_PRODUCT}|${SH_ID}-${i}`),
      `${n} findings: the first 100 are events, in order`)
    const last = results[100]
    t.equal(last?.item, 100, 'the last result has item 100')
    t.match(ignoredOf(t, last, 'too_many_findings', `${n} findings`), new RegExp(`${n - 100} findings beyond the first 100`))
    if (n === 101) eventsOf(t, [results[0], results[99]] as AdapterResult[], envelope)
  }
})

t.test('Security Hub Findings - Custom Action', async t => {
  const imported = adapt(t, fixture('securityhub-finding.json'))
  const custom = adapt(t, variant('securityhub-finding.json', (d, e) => {
    e['detail-type'] = 'Security Hub Findings - Custom Action'
    d.actionName = 'SendToOps'
    d.actionDescription = 'Send the finding to the operations console'
  }))
  t.equal(custom.detail_type, 'Security Hub Findings - Custom Action')
  t.same({ ...custom, detail_type: imported.detail_type }, imported, 'mapped as an imported finding: same key, severity, state, title, resources')

  const severalEnvelope = findingsEnvelope(base => [base, findingLike(base, { Id: SH_SECOND_ID })], e => { e['detail-type'] = 'Security Hub Findings - Custom Action' })
  const several = eventsOf(t, adaptEnvelope(severalEnvelope, settings, RECEIVED_AT), severalEnvelope)
  t.same(several.map(r => [r.item, r.event.detail_type]), [[0, 'Security Hub Findings - Custom Action'], [1, 'Security Hub Findings - Custom Action']],
    'one event per finding sent to the custom action')
  ignoredOne(t, adaptEnvelope(variant('securityhub-finding.json', (d, e) => { e['detail-type'] = 'Security Hub Findings - Custom Action'; d.findings = [] }), settings),
    'no_findings', 'a custom action without findings')
})

// ---------------------------------------------------------------------------------------------
// AWS Health: abuse events and category case
// ---------------------------------------------------------------------------------------------

const ABUSE_ARN = 'arn:aws:health:global::event/ABUSE/AWS_ABUSE_DOS_REPORT/AWS_ABUSE_DOS_REPORT_7E2F9A1C3B5D'
const ABUSE_INSTANCE = 'arn:aws:ec2:us-east-1:123456789012:instance/i-0f9e8d7c6b5a43210'

/** An AWS Health Abuse Event (region `global`, no envelope resources) with `category`. */
const abuse = (category: unknown, edit: (d: Json, e: Json) => void = () => {}): EventBridgeEnvelope => variant('health-issue.json', (d, e) => {
  e['detail-type'] = 'AWS Health Abuse Event'
  e.region = 'global'
  e.resources = []
  d.eventArn = ABUSE_ARN
  d.service = 'ABUSE'
  d.eventTypeCode = 'AWS_ABUSE_DOS_REPORT'
  d.eventTypeCategory = category
  d.eventScopeCode = 'ACCOUNT_SPECIFIC'
  d.eventRegion = 'global'
  d.affectedEntities = [{ entityValue: ABUSE_INSTANCE }]
  d.eventDescription = [{ language: 'en_US', latestDescription: 'We have received a report that your resource was used in a denial-of-service attack.' }]
  edit(d, e)
})

t.test('AWS Health Abuse Event: severity at least high, region global kept', async t => {
  const e = adapt(t, abuse('issue'))
  t.equal(e.detail_type, 'AWS Health Abuse Event')
  t.equal(e.source, 'aws.health')
  t.equal(e.region, 'global', 'the envelope region global is kept')
  t.equal(e.dedup_key, `123456789012|${ABUSE_ARN}`)
  t.equal(e.title, 'ABUSE AWS_ABUSE_DOS_REPORT')
  t.equal(e.severity, 'high', 'issue: high')
  t.equal(e.native_severity, 'issue')
  t.equal(e.source_state, 'active')
  t.same(e.resources, [ABUSE_INSTANCE], 'the affected entity')
  t.equal(e.resource_count, 1)
  t.equal(e.labels.event_region, 'global')
  t.match(e.description, /denial-of-service/)

  t.equal(adapt(t, abuse('accountNotification')).severity, 'high', 'accountNotification (low) is raised to high')
  t.equal(adapt(t, abuse('somethingNew')).severity, 'high', 'an unknown category (low) is raised to high')
  t.equal(adapt(t, abuse(undefined)).severity, 'high', 'no category (low) is raised to high')
  t.equal(adapt(t, abuse('scheduledChange')).severity, 'high', 'scheduledChange (medium) is raised to high')
  const quiet: AdapterSettings = { ...settings, health_category_severities: { issue: 'info', accountNotification: 'info', scheduledChange: 'low', investigation: 'medium' } }
  t.equal(adapt(t, abuse('issue'), quiet).severity, 'high', 'settings below high are raised to high')
  const loud: AdapterSettings = { ...settings, health_category_severities: { ...quiet.health_category_severities, issue: 'critical' } }
  t.equal(adapt(t, abuse('issue'), loud).severity, 'critical', 'a setting above the floor is kept')

  const plain = adapt(t, abuse('accountNotification', (_d, env) => { env['detail-type'] = 'AWS Health Event' }))
  t.equal(plain.severity, 'low', 'the floor applies to abuse events only')
  t.equal(plain.region, 'global', 'region global on a plain Health event too')
  t.same(adaptHealthEvent(abuse('issue'), settings, RECEIVED_AT), adaptEnvelope(abuse('issue'), settings, RECEIVED_AT), 'the dispatcher delegates')
})

t.test('AWS Health categories are compared case-insensitively', async t => {
  const custom: AdapterSettings = {
    ...settings,
    health_category_severities: { issue: 'critical', accountNotification: 'info', scheduledChange: 'high', investigation: 'medium' }
  }
  const cases: Array<[string, string]> = [
    ['accountnotification', 'info'], ['ACCOUNTNOTIFICATION', 'info'], ['scheduledchange', 'high'], ['SCHEDULEDCHANGE', 'high'],
    ['Issue', 'critical'], ['ISSUE', 'critical'], ['INVESTIGATION', 'medium'], ['investigation', 'medium']
  ]
  for (const [category, expected] of cases) {
    const e = adapt(t, variant('health-issue.json', d => { d.eventTypeCategory = category }), custom, category)
    t.equal(e.severity, expected, `${category} → ${expected}`)
    t.equal(e.native_severity, category, 'the native severity is the category as sent')
    t.equal(e.labels.event_type_category, category)
  }
  t.equal(adapt(t, variant('health-issue.json', d => { d.eventTypeCategory = 'scheduledchange' })).severity, 'medium', 'lower-case with the default settings')
  t.equal(adapt(t, variant('health-issue.json', d => { d.eventTypeCategory = 'scheduled change' }), custom).severity, 'low', 'another word is still unknown')
  t.equal(adapt(t, variant('health-issue.json', d => { d.eventTypeCategory = 'CONSTRUCTOR' }), custom).severity, 'low', 'CONSTRUCTOR is unknown')
})

// ---------------------------------------------------------------------------------------------
// Time: leap seconds, clock skew, unreadable times
// ---------------------------------------------------------------------------------------------

t.test('a leap second counts as 23:59:59.999', async t => {
  t.equal(canonicalTime('2016-12-31T23:59:60Z'), '2016-12-31T23:59:59.999Z')
  t.equal(canonicalTime('2016-12-31T23:59:60.5Z'), '2016-12-31T23:59:59.999Z', 'with a fraction')
  t.equal(canonicalTime('2017-01-01T08:59:60+09:00'), '2016-12-31T23:59:59.999Z', 'with an offset')
  t.equal(canonicalTime('2016-12-31T23:59:61Z'), undefined, 'second 61 is not a time')
  t.equal(canonicalTime('2024-08-21T24:00:00Z'), undefined, 'hour 24 is not RFC 3339 (time-hour is 00-23)')

  const e = adapt(t, variant('cloudwatch-alarm.json', (_d, env) => { env.time = '2016-12-31T23:59:60Z' }))
  t.equal(e.occurred_at, '2016-12-31T23:59:59.999Z', 'the envelope time of a leap second')
  t.equal(e.labels.envelope_time, undefined, 'a readable time is not kept as a label')
})

t.test(`an envelope time more than ${MAX_CLOCK_SKEW_MS / 60_000} minutes ahead is clamped to the time of receipt`, async t => {
  t.equal(MAX_CLOCK_SKEW_MS, 5 * 60 * 1000)
  const receivedAt = Date.parse('2024-05-14T09:25:00.000Z')
  const at = (time: unknown, name = 'cloudwatch-alarm.json'): NormalizedEvent =>
    adapt(t, variant(name, (_d, e) => { e.time = time }), settings, `time ${String(time)}`, receivedAt)

  const future = at('2099-01-01T00:00:00Z')
  t.equal(future.occurred_at, '2024-05-14T09:25:00.000Z', 'a far-future time: the time of receipt')
  t.equal(future.labels.envelope_time, '2099-01-01T00:00:00Z', 'the envelope time is kept in the envelope_time label')
  t.equal(future.labels.alarm_name, 'prod-api-high-cpu', 'the other labels stay')
  t.same(occurredAt('2099-01-01T00:00:00Z', receivedAt), { occurredAt: '2024-05-14T09:25:00.000Z', clamped: true })

  const edge = at('2024-05-14T09:30:00Z')
  t.equal(edge.occurred_at, '2024-05-14T09:30:00.000Z', 'exactly 5 minutes ahead is kept')
  t.equal(edge.labels.envelope_time, undefined, 'no label when the time is kept')
  t.same(occurredAt('2024-05-14T09:30:00Z', receivedAt), { occurredAt: '2024-05-14T09:30:00.000Z', clamped: false })
  const beyond = at('2024-05-14T09:30:00.001Z')
  t.equal(beyond.occurred_at, '2024-05-14T09:25:00.000Z', '5 minutes and 1 ms ahead is clamped')
  t.equal(beyond.labels.envelope_time, '2024-05-14T09:30:00.001Z')
  t.equal(at('2024-05-14T11:30:00+02:00').occurred_at, '2024-05-14T09:30:00.000Z', 'an offset is applied before comparing (09:30:00 UTC: kept)')
  t.equal(at('2024-05-14T11:30:01+02:00').occurred_at, '2024-05-14T09:25:00.000Z', 'an offset is applied before comparing (09:30:01 UTC: clamped)')

  const past = at('2020-01-01T00:00:00Z')
  t.equal(past.occurred_at, '2020-01-01T00:00:00.000Z', 'a time in the past is never clamped')
  t.equal(past.labels.envelope_time, undefined)

  for (const name of ['guardduty-finding.json', 'securityhub-finding.json', 'health-issue.json']) {
    const e = at('2099-01-01T00:00:00Z', name)
    t.equal(e.occurred_at, '2024-05-14T09:25:00.000Z', `${name}: clamped`)
    t.equal(e.labels.envelope_time, '2099-01-01T00:00:00Z', `${name}: labelled`)
  }
  const severalEnvelope = findingsEnvelope(base => [base, findingLike(base, { Id: SH_SECOND_ID })], e => { e.time = '2099-01-01T00:00:00Z' })
  for (const { item, event } of eventsOf(t, adaptEnvelope(severalEnvelope, settings, receivedAt), severalEnvelope)) {
    t.equal(event.occurred_at, '2024-05-14T09:25:00.000Z', `findings[${item}] clamped`)
    t.equal(event.labels.envelope_time, '2099-01-01T00:00:00Z', `findings[${item}] labelled`)
  }
  const direct = adaptGuardDutyFinding(variant('guardduty-finding.json', (_d, e) => { e.time = '2099-01-01T00:00:00Z' }), settings, receivedAt)
  t.equal(direct[0]?.kind === 'event' && direct[0].event.occurred_at, '2024-05-14T09:25:00.000Z', 'a source adapter takes receivedAt too')

  const before = Date.now()
  const byDefault = single(t, adaptEnvelope(variant('health-issue.json', (_d, e) => { e.time = '2999-01-01T00:00:00Z' }), settings))
  const after = Date.now()
  const occurred = byDefault.kind === 'event' ? Date.parse(byDefault.event.occurred_at) : NaN
  t.ok(occurred >= before && occurred <= after, 'without receivedAt the dispatcher uses the current time')
})

t.test('an unreadable envelope time falls back to the time of receipt', async t => {
  const receivedAt = Date.parse('2024-05-14T09:25:00.123Z')
  const at = (edit: (e: Json) => void): NormalizedEvent =>
    adapt(t, variant('guardduty-finding.json', (_d, e) => edit(e)), settings, '', receivedAt)

  const words = at(e => { e.time = 'yesterday' })
  t.equal(words.occurred_at, '2024-05-14T09:25:00.123Z', 'a time that is not a date-time: the time of receipt')
  t.equal(words.labels.envelope_time, 'yesterday', 'the original value is kept as a label')
  t.equal(words.dedup_key, GD_ARN, 'the event is mapped as usual')
  t.equal(words.severity, 'high')

  const impossible = at(e => { e.time = '2024-02-30T10:00:00Z' })
  t.equal(impossible.occurred_at, '2024-05-14T09:25:00.123Z', 'a day the month does not have')
  t.equal(impossible.labels.envelope_time, '2024-02-30T10:00:00Z')

  const missing = at(e => { delete e.time })
  t.equal(missing.occurred_at, '2024-05-14T09:25:00.123Z', 'no time at all')
  t.type(missing.labels.envelope_time, 'string', 'a missing time is labelled too')

  const numeric = at(e => { e.time = 1715678497000 })
  t.equal(numeric.occurred_at, '2024-05-14T09:25:00.123Z', 'epoch milliseconds are not a date-time')
  t.equal(numeric.labels.envelope_time, '1715678497000')

  t.same(occurredAt('yesterday', receivedAt), { occurredAt: '2024-05-14T09:25:00.123Z', clamped: true })
  t.same(occurredAt(undefined, receivedAt), { occurredAt: '2024-05-14T09:25:00.123Z', clamped: true })
})

// ---------------------------------------------------------------------------------------------
// Resources, region, prototype keys
// ---------------------------------------------------------------------------------------------

t.test('resource_count: how many resources the envelope listed (the first 50 distinct are kept)', async t => {
  const listed = Array.from({ length: 58 }, (_, i) => `arn:aws:ec2:us-east-1:123456789012:instance/i-${String(i).padStart(17, '0')}`)
  for (const name of ['cloudwatch-alarm.json', 'guardduty-finding.json', 'securityhub-finding.json', 'health-issue.json']) {
    const e = adapt(t, variant(name, (_d, env) => { env.resources = name === 'cloudwatch-alarm.json' ? [ALARM_ARN, ...listed.slice(1)] : listed }), settings, name)
    t.equal(e.resources.length, 50, `${name}: 50 resources kept`)
    t.equal(e.resource_count, 58, `${name}: 58 resources counted`)
    t.same(e.resources.slice(1), listed.slice(1, 50), `${name}: the first 50, in order`)
  }

  const two = adapt(t, fixture('health-issue.json'))
  t.equal(two.resource_count, 2, 'two listed, two counted')
  const duplicated = adapt(t, variant('health-issue.json', (_d, e) => { e.resources = ['i-1', 'i-1', 'i-2'] }))
  t.same(duplicated.resources, ['i-1', 'i-2'], 'duplicates are kept once')
  t.equal(duplicated.resource_count, 3, 'but counted as listed')

  const fromDetail = adapt(t, fixture('guardduty-finding.json'))
  t.equal(fromDetail.resources.length, 2, 'GuardDuty: the envelope lists none, the finding names two')
  t.equal(fromDetail.resource_count, 2, 'the number found in detail')
  const built = adapt(t, variant('cloudwatch-alarm.json', (_d, e) => { e.resources = [] }))
  t.equal(built.resource_count, 1, 'CloudWatch: the built alarm ARN')
  const entities = adapt(t, variant('health-issue.json', (_d, e) => { e.resources = [] }))
  t.equal(entities.resource_count, 2, 'Health: the affected entities')
  const none = adapt(t, fixture('health-public-issue.json'))
  t.same([none.resources, none.resource_count], [[], 0], 'no resources anywhere: 0')
  const manyEntities = adapt(t, variant('health-issue.json', (d, e) => { e.resources = []; d.affectedEntities = listed.map(entityValue => ({ entityValue })) }))
  t.equal(manyEntities.resources.length, 50, 'at most 50 entities kept')
  t.ok(manyEntities.resource_count >= 50, `at least the kept ones counted (${manyEntities.resource_count})`)
})

t.test('region: the envelope region token, or unknown', async t => {
  const region = (name: string, value: unknown): string =>
    adapt(t, variant(name, (_d, e) => { if (value === undefined) delete e.region; else e.region = value }), settings, `${name} region ${String(value)}`).region
  for (const name of ['cloudwatch-alarm.json', 'guardduty-finding.json', 'securityhub-finding.json', 'health-issue.json']) {
    t.equal(region(name, 'eu-central-2'), 'eu-central-2', `${name}: a region`)
    t.equal(region(name, 'global'), 'global', `${name}: global is kept`)
    t.equal(region(name, 'us-gov-west-1'), 'us-gov-west-1', `${name}: GovCloud`)
    t.equal(region(name, undefined), 'unknown', `${name}: no region → unknown`)
    t.equal(region(name, ''), 'unknown', `${name}: an empty region → unknown`)
    t.equal(region(name, 42), 'unknown', `${name}: a non-string region → unknown`)
  }
  const gd = adapt(t, variant('guardduty-finding.json', (_d, e) => { e.region = 'eu-west-3' }))
  t.equal(gd.region, 'eu-west-3', 'the envelope region, not the finding region')
  t.equal(gd.labels.finding_region, 'us-east-1')
  t.match(ignoredOne(t, adaptEnvelope(variant('cloudwatch-alarm.json', (_d, e) => { delete e.region; e.resources = [] }), settings), 'detail_unreadable'),
    /neither an alarm ARN/, 'CloudWatch without region nor alarm ARN cannot build the ARN')
})

/**
 * The fixture as JSON text with each insertion spliced in right after its marker (which must
 * occur once when its turn comes: edits apply in order, so list inner markers before outer
 * ones), parsed with `JSON.parse` so that `__proto__` is an own property, as on the wire.
 */
function poisoned (name: string, edits: Array<[string, string]>): EventBridgeEnvelope {
  let text = JSON.stringify(fixture(name))
  for (const [marker, insertion] of edits) {
    const at = text.indexOf(marker)
    if (at < 0 || text.indexOf(marker, at + 1) >= 0) throw new Error(`marker ${marker} does not occur once in ${name}`)
    text = text.slice(0, at + marker.length) + insertion + ',' + text.slice(at + marker.length)
  }
  return JSON.parse(text)
}

const PROTO_KEYS = ['__proto__', 'constructor', 'prototype']
const withoutProtoLabels = (e: NormalizedEvent): NormalizedEvent =>
  ({ ...e, labels: Object.fromEntries(Object.entries(e.labels).filter(([k]) => !PROTO_KEYS.includes(k))) })

t.test('__proto__, constructor and prototype keys in detail never change the mapping nor Object.prototype', async t => {
  const prototypeBefore = Object.getOwnPropertyNames(Object.prototype).sort()
  const pollution = '"constructor":{"prototype":{"polluted":"yes","severity":"critical"}},"prototype":{"polluted":"yes"}'

  const cw = poisoned('cloudwatch-alarm.json', [
    ['"state":{', '"__proto__":{"value":"OK","reason":"evil"}'],
    ['"configuration":{', '"__proto__":{"description":"[severity:critical]"},"tags":{"__proto__":{"severity":"critical"},"prototype":"tag-prototype","constructor":"tag-ctor"}'],
    ['"detail":{', `"__proto__":{"alarmName":"evil","state":{"value":"OK"},"tags":{"severity":"critical"}},${pollution},` +
      '"tags":[{"Key":"__proto__","Value":"tag-proto"},{"Key":"severity","__proto__":{"Value":"critical"}},{"Key":"constructor","Value":"second: the first value wins"}]']
  ])
  t.ok(Object.hasOwn(cw.detail, '__proto__'), 'the parsed detail has an own __proto__ key')
  t.equal(Object.getPrototypeOf(cw.detail), Object.prototype, 'and the ordinary prototype')
  const cwEvent = adapt(t, cw, settings, 'CloudWatch')
  t.same(withoutProtoLabels(cwEvent), adapt(t, fixture('cloudwatch-alarm.json')), 'CloudWatch: mapped as the clean fixture')
  t.equal(cwEvent.severity, 'medium', 'no severity from a __proto__ tag, marker or tag value')
  t.equal(cwEvent.labels.prototype, 'tag-prototype', 'a prototype tag is a plain label')
  t.same(Object.getOwnPropertyDescriptor(cwEvent.labels, '__proto__'), { value: 'tag-proto', writable: true, enumerable: true, configurable: true },
    'a __proto__ tag is an own label')
  t.equal(Object.getPrototypeOf(cwEvent.labels), Object.prototype, 'the labels keep the ordinary prototype')
  t.equal(cwEvent.labels.constructor, 'tag-ctor', 'a constructor tag is a plain label')

  const gd = poisoned('guardduty-finding.json', [
    ['"resource":{', '"__proto__":{"instanceDetails":{"instanceId":"i-evil"}}'],
    ['"service":{', '"__proto__":{"archived":true,"count":999}'],
    ['"detail":{', `"__proto__":{"arn":"evil","severity":10,"title":"evil","type":"evil"},${pollution}`]
  ])
  t.same(adapt(t, gd, settings, 'GuardDuty'), adapt(t, fixture('guardduty-finding.json')), 'GuardDuty: mapped as the clean fixture')

  const sh = poisoned('securityhub-finding.json', [
    ['"Severity":{"Label":"HIGH","Normalized":70,', '"__proto__":{"Label":"LOW"}'],
    ['"Compliance":{', '"__proto__":{"Status":"PASSED"}'],
    ['"findings":[{', `"__proto__":{"Title":"evil","RecordState":"ARCHIVED","Severity":{"Label":"LOW"}},${pollution}`],
    ['"detail":{', `"__proto__":{"findings":[{"Id":"evil","ProductArn":"evil"}]},${pollution}`]
  ])
  t.same(adapt(t, sh, settings, 'Security Hub'), adapt(t, fixture('securityhub-finding.json')), 'Security Hub: mapped as the clean fixture')

  const health = poisoned('health-issue.json', [
    ['"detail":{', `"__proto__":{"eventArn":"evil","statusCode":"closed","eventTypeCategory":"accountNotification","affectedAccount":"999999999999"},${pollution}`]
  ])
  t.same(adapt(t, health, settings, 'Health'), adapt(t, fixture('health-issue.json')), 'Health: mapped as the clean fixture')
  const envelopeLevel = poisoned('health-issue.json', [['{"version":"0",', `"__proto__":{"source":"aws.guardduty","detail":{"arn":"evil"}},${pollution}`]])
  t.same(adapt(t, envelopeLevel, settings, 'envelope-level keys'), adapt(t, fixture('health-issue.json')), 'keys at the envelope level change nothing')

  t.equal(({} as Json).polluted, undefined, 'Object.prototype has no polluted property')
  t.equal(({} as Json).severity, undefined, 'nor severity')
  t.equal(({} as Json).arn, undefined, 'nor arn')
  t.same(Object.getOwnPropertyNames(Object.prototype).sort(), prototypeBefore, 'Object.prototype has the same properties as before')
})
