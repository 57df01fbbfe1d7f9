/**
 * Demo data, so that a new user sees a living console:
 *   npm run seed:demo
 * Against the configured database (the embedded one in DATA_DIR by default: stop the server
 * first, one process per data directory). Creates demo users of every role, two monitored
 * AWS accounts, events of every AWS source over the last days ingested through the real
 * ingestion route (deduplication, counters and monitoring settings apply), and tasks in every
 * state with assignees, comments and status history. Prints the demo logins at the end.
 *
 * Refuses (exit code 1, nothing changed) when demo data exists already (the user
 * demo-manager@example.com), when NODE_ENV=production (the demo passwords are public), and
 * when the database has no admin yet: the demo admin would otherwise stand in for the first
 * admin that the server creates on an empty database. Start the server once, or run
 * `npm run seed:admin`, or set ADMIN_PASSWORD (the first admin is then created here).
 */
import { randomUUID } from 'node:crypto'
import path from 'node:path'
import type { InjectOptions } from 'fastify'
import type { App } from '../src/app.js'
import type { Config } from '../src/config.js'
import type { EventBridgeEnvelope, IngestResponse } from '../openapi/generated/schemas.js'
import { DomainError } from '../src/domain/errors.js'
import { ensureFirstAdmin } from '../src/modules/users/first-admin.js'
import { createUsersService, generateTemporaryPassword } from '../src/modules/users/users.service.js'
import { withApp } from './lib/with-app.js'

/** Its presence means "demo data is there". Created first, so that a failed run is detected too. */
const DEMO_MARKER_EMAIL = 'demo-manager@example.com'
/** The password of every demo login (not of the demo admin, whose password is never shown). */
const DEMO_PASSWORD = 'demo-console-2718'

const DEMO_USERS = [
  { key: 'manager', email: DEMO_MARKER_EMAIL, name: 'Morgan Reyes', role: 'manager' },
  { key: 'alex', email: 'demo-alex@example.com', name: 'Alex Kim', role: 'user' },
  { key: 'sam', email: 'demo-sam@example.com', name: 'Sam Okafor', role: 'user' },
  { key: 'jamie', email: 'demo-jamie@example.com', name: 'Jamie Novak', role: 'user' }
] as const
const DEMO_ADMIN = { email: 'demo-admin@example.com', name: 'Demo Admin', role: 'admin' } as const

const PROD = { account_id: '123456789012', name: 'Production', regions: ['us-east-1', 'eu-west-1'] }
const STAGING = { account_id: '210987654321', name: 'Staging and security tooling', regions: ['eu-west-1', 'us-east-1'] }

// The seed talks to its own in-process app (app.inject): no listener, so no shared rate-limit
// store and no limits that a few hundred requests of one "client" could hit.
delete process.env.REDIS_URL
process.env.RATE_LIMIT_MAX = '1000000'
process.env.AUTH_RATE_LIMIT_MAX = '1000000'

class Refusal extends Error {}

// ---------------------------------------------------------------------------------------------
// AWS-shaped EventBridge envelopes (as API destinations deliver them), relative to now
// ---------------------------------------------------------------------------------------------

const NOW = Date.now()
const ago = (hours: number): Date => new Date(NOW - hours * 3_600_000)
/** EventBridge `time`: seconds precision, `Z`. */
const awsTime = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z')
/** CloudWatch's own timestamps: `2024-05-14T09:21:37.413+0000`. */
const cwTime = (d: Date): string => d.toISOString().replace('Z', '+0000')
/** AWS Health's RFC 1123 times. */
const healthTime = (d: Date): string => d.toUTCString()
const cwReasonTime = (d: Date): string => {
  const p = (n: number) => String(n).padStart(2, '0')
  return `${p(d.getUTCDate())}/${p(d.getUTCMonth() + 1)}/${p(d.getUTCFullYear() % 100)} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:00`
}
const hex = (n: number): string => randomUUID().replace(/-/g, '').slice(0, n)

interface Alarm {
  account: string
  region: string
  name: string
  /** With a `[severity:…]` marker where the alarm has one (else the configured default). */
  description: string
  namespace: string
  metric: string
  dimensions: Record<string, string>
  stat: string
  period: number
  threshold: number
  /** The alarm fires below the threshold (free storage, healthy hosts). */
  below?: boolean
}

function alarmEnvelope (a: Alarm, state: 'ALARM' | 'OK' | 'INSUFFICIENT_DATA', hoursAgo: number, value?: number): EventBridgeEnvelope {
  const time = ago(hoursAgo)
  const datapoint = new Date(time.getTime() - a.period * 1000)
  const previous = state === 'ALARM' ? 'OK' : 'ALARM'
  const reason = state === 'INSUFFICIENT_DATA'
    ? 'Insufficient Data: 1 datapoint was unknown.'
    : `Threshold Crossed: 1 out of the last 1 datapoints [${value} (${cwReasonTime(datapoint)})] was ${state === 'ALARM' ? '' : 'not '}${a.below ? 'less' : 'greater'} than the threshold (${a.threshold}) (minimum 1 datapoint for ${previous} -> ${state} transition).`
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'CloudWatch Alarm State Change',
    source: 'aws.cloudwatch',
    account: a.account,
    time: awsTime(time),
    region: a.region,
    resources: [`arn:aws:cloudwatch:${a.region}:${a.account}:alarm:${a.name}`],
    detail: {
      alarmName: a.name,
      state: {
        value: state,
        reason,
        reasonData: JSON.stringify({ version: '1.0', queryDate: cwTime(time), statistic: a.stat, period: a.period, recentDatapoints: value === undefined ? [] : [value], threshold: a.threshold }),
        timestamp: cwTime(time)
      },
      previousState: { value: previous, timestamp: cwTime(new Date(time.getTime() - 3_600_000)) },
      configuration: {
        description: a.description,
        metrics: [{ id: 'm1', metricStat: { metric: { namespace: a.namespace, name: a.metric, dimensions: a.dimensions }, period: a.period, stat: a.stat }, returnData: true }]
      }
    }
  }
}

interface Finding {
  account: string
  region: string
  id: string
  type: string
  severity: number
  title: string
  description: string
  instanceId: string
}

function guardDutyEnvelope (f: Finding, hoursAgo: number, count: number, archived = false): EventBridgeEnvelope {
  const time = ago(hoursAgo)
  const detector = '5cc2a1e0b6d84f3e9a7b2c1d0e9f8a7b'
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'GuardDuty Finding',
    source: 'aws.guardduty',
    account: f.account,
    time: awsTime(time),
    region: f.region,
    resources: [],
    detail: {
      schemaVersion: '2.0',
      accountId: f.account,
      region: f.region,
      partition: 'aws',
      id: f.id,
      arn: `arn:aws:guardduty:${f.region}:${f.account}:detector/${detector}/finding/${f.id}`,
      type: f.type,
      resource: {
        resourceType: 'Instance',
        instanceDetails: { instanceId: f.instanceId, instanceType: 'c5.large', availabilityZone: `${f.region}a`, instanceState: 'running', tags: [{ key: 'Name', value: 'batch-worker' }] }
      },
      service: {
        serviceName: 'guardduty',
        detectorId: detector,
        resourceRole: 'TARGET',
        eventFirstSeen: ago(hoursAgo + 2).toISOString(),
        eventLastSeen: time.toISOString(),
        archived,
        count
      },
      severity: f.severity,
      createdAt: ago(hoursAgo + 1).toISOString(),
      updatedAt: time.toISOString(),
      title: f.title,
      description: f.description
    }
  }
}

interface Control {
  account: string
  region: string
  control: string
  label: 'CRITICAL' | 'HIGH' | 'MEDIUM' | 'LOW' | 'INFORMATIONAL'
  title: string
  description: string
  resource: { type: string, id: string }
  findingId: string
}

function securityHubEnvelope (c: Control, hoursAgo: number, compliance: 'FAILED' | 'PASSED'): EventBridgeEnvelope {
  const time = ago(hoursAgo)
  const id = `arn:aws:securityhub:${c.region}:${c.account}:security-control/${c.control}/finding/${c.findingId}`
  const label = compliance === 'PASSED' ? 'INFORMATIONAL' : c.label
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'Security Hub Findings - Imported',
    source: 'aws.securityhub',
    account: c.account,
    time: awsTime(time),
    region: c.region,
    resources: [id],
    detail: {
      findings: [{
        SchemaVersion: '2018-10-08',
        Id: id,
        ProductArn: `arn:aws:securityhub:${c.region}::product/aws/securityhub`,
        ProductName: 'Security Hub',
        CompanyName: 'AWS',
        Region: c.region,
        GeneratorId: `security-control/${c.control}`,
        AwsAccountId: c.account,
        Types: ['Software and Configuration Checks/Industry and Regulatory Standards'],
        UpdatedAt: time.toISOString(),
        Severity: { Label: label, Original: c.label },
        Title: c.title,
        Description: c.description,
        Resources: [{ Type: c.resource.type, Id: c.resource.id, Partition: 'aws', Region: c.region }],
        Compliance: { Status: compliance, SecurityControlId: c.control },
        Workflow: { Status: compliance === 'PASSED' ? 'RESOLVED' : 'NEW' },
        RecordState: 'ACTIVE'
      }]
    }
  }
}

interface HealthIssue {
  account: string
  region: string
  service: string
  code: string
  category: 'issue' | 'accountNotification' | 'scheduledChange'
  scope: 'ACCOUNT_SPECIFIC' | 'PUBLIC'
  entities: string[]
  suffix: string
}

function healthEnvelope (h: HealthIssue, hoursAgo: number, statusCode: 'open' | 'closed' | 'upcoming', description: string, window?: { start: Date, end: Date }): EventBridgeEnvelope {
  const time = ago(hoursAgo)
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'AWS Health Event',
    source: 'aws.health',
    account: h.account,
    time: awsTime(time),
    region: h.region,
    resources: h.entities,
    detail: {
      eventArn: `arn:aws:health:${h.region}::event/${h.service}/${h.code}/${h.code}_${h.suffix}`,
      service: h.service,
      eventTypeCode: h.code,
      eventTypeCategory: h.category,
      eventScopeCode: h.scope,
      communicationId: `${h.suffix.toLowerCase()}${hex(24)}-1`,
      startTime: healthTime(window?.start ?? ago(hoursAgo + 0.5)),
      ...(window?.end ? { endTime: healthTime(window.end) } : statusCode === 'closed' ? { endTime: healthTime(time) } : {}),
      lastUpdatedTime: healthTime(time),
      statusCode,
      eventRegion: h.region,
      eventDescription: [{ language: 'en_US', latestDescription: description }],
      ...(h.scope === 'ACCOUNT_SPECIFIC'
        ? {
            affectedEntities: h.entities.map(entityValue => ({ entityValue, lastUpdatedTime: healthTime(time), status: statusCode === 'closed' ? 'RESOLVED' : statusCode === 'upcoming' ? 'PENDING' : 'IMPAIRED' })),
            affectedAccount: h.account
          }
        : {}),
      page: '1',
      totalPages: '1'
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The scenario
// ---------------------------------------------------------------------------------------------

const alarms = {
  cpu: { account: PROD.account_id, region: 'us-east-1', name: 'prod-api-high-cpu', description: 'CPU of the production API instances above 80% for 5 minutes. [severity:high]', namespace: 'AWS/EC2', metric: 'CPUUtilization', dimensions: { AutoScalingGroupName: 'prod-api-asg' }, stat: 'Average', period: 300, threshold: 80 },
  errors: { account: PROD.account_id, region: 'eu-west-1', name: 'prod-api-5xx-rate', description: 'HTTP 5xx responses of the production API load balancer. [severity:critical]', namespace: 'AWS/ApplicationELB', metric: 'HTTPCode_Target_5XX_Count', dimensions: { LoadBalancer: 'app/prod-api/50dc6c495c0c9188' }, stat: 'Sum', period: 60, threshold: 5 },
  storage: { account: PROD.account_id, region: 'eu-west-1', name: 'prod-orders-db-free-storage', description: 'Free storage of the orders database below 10 GiB.', namespace: 'AWS/RDS', metric: 'FreeStorageSpace', dimensions: { DBInstanceIdentifier: 'prod-orders' }, stat: 'Minimum', period: 300, threshold: 10737418240, below: true },
  latency: { account: PROD.account_id, region: 'us-east-1', name: 'prod-api-p99-latency', description: 'p99 latency of the production API above 1.5 s. [severity:high]', namespace: 'AWS/ApplicationELB', metric: 'TargetResponseTime', dimensions: { LoadBalancer: 'app/prod-api/50dc6c495c0c9188' }, stat: 'p99', period: 60, threshold: 1.5 },
  queue: { account: STAGING.account_id, region: 'eu-west-1', name: 'staging-orders-queue-depth', description: 'More than 1000 messages waiting in the staging orders queue. [severity:low]', namespace: 'AWS/SQS', metric: 'ApproximateNumberOfMessagesVisible', dimensions: { QueueName: 'staging-orders' }, stat: 'Maximum', period: 300, threshold: 1000 },
  billing: { account: STAGING.account_id, region: 'us-east-1', name: 'staging-estimated-charges-500-usd', description: 'Estimated monthly charges of the staging account above 500 USD. [severity:info]', namespace: 'AWS/Billing', metric: 'EstimatedCharges', dimensions: { Currency: 'USD' }, stat: 'Maximum', period: 21600, threshold: 500 }
} satisfies Record<string, Alarm>

const findings = {
  bitcoin: { account: PROD.account_id, region: 'us-east-1', id: hex(32), type: 'CryptoCurrency:EC2/BitcoinTool.B!DNS', severity: 8, title: 'Bitcoin-related domain name queried by EC2 instance i-0f9e8d7c6b5a43210.', description: 'EC2 instance i-0f9e8d7c6b5a43210 is querying a domain name that is associated with Bitcoin-related activity.', instanceId: 'i-0f9e8d7c6b5a43210' },
  credentials: { account: STAGING.account_id, region: 'eu-west-1', id: hex(32), type: 'UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS', severity: 9.2, title: 'Credentials for the EC2 instance role ci-runner were used from a remote AWS account.', description: 'Credentials created exclusively for an EC2 instance using instance role ci-runner have been used from the external IP address 198.51.100.23.', instanceId: 'i-0c1d2e3f4a5b6c7d8' },
  probe: { account: STAGING.account_id, region: 'eu-west-1', id: hex(32), type: 'Recon:EC2/PortProbeUnprotectedPort', severity: 2, title: 'Unprotected port on EC2 instance i-0123456789abcdef0 is being probed.', description: 'EC2 instance has an unprotected port which is being probed by a known malicious host.', instanceId: 'i-0123456789abcdef0' }
} satisfies Record<string, Finding>

const controls = {
  imds: { account: PROD.account_id, region: 'us-east-1', control: 'EC2.8', label: 'HIGH', title: 'EC2 instances should use Instance Metadata Service Version 2 (IMDSv2)', description: 'This control checks whether your EC2 instance metadata version is configured with Instance Metadata Service Version 2 (IMDSv2). The control fails if HttpTokens is set to optional.', resource: { type: 'AwsEc2Instance', id: `arn:aws:ec2:us-east-1:${PROD.account_id}:instance/i-0a1b2c3d4e5f60718` }, findingId: randomUUID() },
  rootMfa: { account: STAGING.account_id, region: 'us-east-1', control: 'IAM.6', label: 'CRITICAL', title: 'Hardware MFA should be enabled for the root user', description: 'This control checks whether your AWS account is enabled to use a hardware multi-factor authentication (MFA) device to sign in with root user credentials.', resource: { type: 'AwsAccount', id: `AWS::::Account:${STAGING.account_id}` }, findingId: randomUUID() },
  publicBucket: { account: PROD.account_id, region: 'eu-west-1', control: 'S3.8', label: 'HIGH', title: 'S3 general purpose buckets should block public access', description: 'This control checks whether an Amazon S3 general purpose bucket blocks public access at the bucket level.', resource: { type: 'AwsS3Bucket', id: 'arn:aws:s3:::prod-marketing-assets' }, findingId: randomUUID() },
  logging: { account: STAGING.account_id, region: 'eu-west-1', control: 'S3.9', label: 'MEDIUM', title: 'S3 general purpose buckets should have server access logging enabled', description: 'This control checks whether server access logging is enabled for an Amazon S3 general purpose bucket.', resource: { type: 'AwsS3Bucket', id: 'arn:aws:s3:::staging-build-artifacts' }, findingId: randomUUID() }
} satisfies Record<string, Control>

const health = {
  ec2Issue: { account: PROD.account_id, region: 'us-east-1', service: 'EC2', code: 'AWS_EC2_OPERATIONAL_ISSUE', category: 'issue', scope: 'ACCOUNT_SPECIFIC', entities: ['i-0f9e8d7c6b5a43210', 'i-0a1b2c3d4e5f60718'], suffix: hex(12).toUpperCase() },
  reboot: { account: PROD.account_id, region: 'us-east-1', service: 'EC2', code: 'AWS_EC2_INSTANCE_REBOOT_MAINTENANCE_SCHEDULED', category: 'scheduledChange', scope: 'ACCOUNT_SPECIFIC', entities: ['i-0123456789abcdef0'], suffix: hex(12).toUpperCase() },
  lambda: { account: STAGING.account_id, region: 'eu-west-1', service: 'LAMBDA', code: 'AWS_LAMBDA_OPERATIONAL_ISSUE', category: 'issue', scope: 'PUBLIC', entities: [], suffix: hex(12).toUpperCase() },
  rdsCert: { account: PROD.account_id, region: 'eu-west-1', service: 'RDS', code: 'AWS_RDS_SECURITY_NOTIFICATION', category: 'accountNotification', scope: 'ACCOUNT_SPECIFIC', entities: ['arn:aws:rds:eu-west-1:123456789012:db:prod-orders'], suffix: hex(12).toUpperCase() }
} satisfies Record<string, HealthIssue>

/** Deliveries in the order AWS sent them: [which event it is about (for tasks), account, envelope]. */
function deliveries (): Array<[string | null, 'prod' | 'staging', EventBridgeEnvelope]> {
  const latencyAlarm = alarmEnvelope(alarms.latency, 'ALARM', 1.5, 2.31)
  return [
    [null, 'prod', securityHubEnvelope(controls.publicBucket, 118, 'FAILED')],
    ['rdsCert', 'prod', healthEnvelope(health.rdsCert, 110, 'open', 'Your Amazon RDS DB instance prod-orders uses the rds-ca-2019 certificate authority, which expires soon. Rotate to rds-ca-rsa2048-g1 before the expiry to avoid connection failures.')],
    ['imds', 'prod', securityHubEnvelope(controls.imds, 96, 'FAILED')],
    [null, 'prod', healthEnvelope(health.ec2Issue, 76, 'open', 'We are investigating increased API error rates and latencies for the EC2 APIs in the US-EAST-1 Region. Running instances are not affected.')],
    [null, 'prod', healthEnvelope(health.ec2Issue, 73, 'closed', 'Between 10:55 AM and 1:58 PM PDT we experienced increased API error rates and latencies for the EC2 APIs in the US-EAST-1 Region. The issue has been resolved and the service is operating normally.')],
    ['cpu', 'prod', alarmEnvelope(alarms.cpu, 'ALARM', 70, 91.4)],
    [null, 'staging', guardDutyEnvelope(findings.probe, 64, 3)],
    [null, 'prod', securityHubEnvelope(controls.publicBucket, 60, 'PASSED')],
    ['bitcoin', 'prod', guardDutyEnvelope(findings.bitcoin, 52, 4)],
    ['reboot', 'prod', healthEnvelope(health.reboot, 49, 'upcoming', 'EC2 has detected degradation of the underlying hardware hosting your Amazon EC2 instance i-0123456789abcdef0. We will reboot your instance during the scheduled maintenance window.', { start: ago(-72), end: ago(-74) })],
    ['cpu', 'prod', alarmEnvelope(alarms.cpu, 'ALARM', 46, 88.2)],
    ['bitcoin', 'prod', guardDutyEnvelope(findings.bitcoin, 41, 9)],
    [null, 'staging', guardDutyEnvelope(findings.probe, 36, 17, true)],
    [null, 'staging', securityHubEnvelope(controls.logging, 34, 'FAILED')],
    [null, 'prod', alarmEnvelope(alarms.errors, 'ALARM', 30, 14)],
    [null, 'prod', alarmEnvelope(alarms.errors, 'ALARM', 29.8, 22)],
    [null, 'prod', alarmEnvelope(alarms.errors, 'OK', 29.2, 1)],
    ['rootMfa', 'staging', securityHubEnvelope(controls.rootMfa, 26, 'FAILED')],
    ['cpu', 'prod', alarmEnvelope(alarms.cpu, 'ALARM', 22, 93.1)],
    ['credentials', 'staging', guardDutyEnvelope(findings.credentials, 20, 2)],
    [null, 'staging', alarmEnvelope(alarms.billing, 'ALARM', 14, 512.4)],
    ['storage', 'prod', alarmEnvelope(alarms.storage, 'ALARM', 10, 9663676416)],
    [null, 'staging', alarmEnvelope(alarms.queue, 'ALARM', 5, 1840)],
    [null, 'staging', alarmEnvelope(alarms.queue, 'INSUFFICIENT_DATA', 4)],
    ['lambda', 'staging', healthEnvelope(health.lambda, 3, 'open', 'We are investigating increased invocation error rates for Lambda functions in the EU-WEST-1 Region.')],
    [null, 'prod', latencyAlarm],
    // EventBridge retries a delivery it did not see acknowledged: a duplicate, nothing changes.
    [null, 'prod', latencyAlarm]
  ]
}

// ---------------------------------------------------------------------------------------------
// Running it through the API
// ---------------------------------------------------------------------------------------------

type Json = any

async function api (app: App, method: InjectOptions['method'], url: string, opts: { token?: string, apiKey?: string, body?: object } = {}): Promise<Json> {
  const res = await app.inject({
    method,
    url,
    headers: { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...(opts.apiKey ? { 'x-api-key': opts.apiKey } : {}) },
    ...(opts.body !== undefined ? { payload: opts.body } : {})
  })
  if (res.statusCode >= 300) throw new Error(`${method} ${url} answered ${res.statusCode}: ${res.body}`)
  return res.body ? res.json() : undefined
}

async function seed (app: App, config: Config): Promise<string> {
  const { users } = app.repos
  if (config.env === 'production') throw new Refusal('NODE_ENV is production: demo data (with public demo passwords) is not for production. Nothing was changed.')
  if (await users.getByEmail(DEMO_MARKER_EMAIL)) throw new Refusal(alreadyThere(config))
  if (!(await users.hasAnyAdmin())) {
    if (!config.admin.password) {
      throw new Refusal('This database has no admin yet. Start the server once (it creates the first admin and prints its password), ' +
        'or run `npm run seed:admin`, or set ADMIN_PASSWORD for this run; then run `npm run seed:demo` again. Nothing was changed.')
    }
    const first = await ensureFirstAdmin(users, app.passwords, config.admin, app.stats)
    if (first.created) console.log(`Created the first admin ${first.email} with the password from ADMIN_PASSWORD.`)
  }

  const taken = await registeredAccounts(app)
  for (const account of [PROD, STAGING]) {
    if (taken.has(account.account_id)) {
      throw new Refusal(`The AWS account ${account.account_id} is already registered in this database; the demo registers it itself (and never rotates an existing key). Nothing was changed.`)
    }
  }

  // Users: through the users service, as POST /api/users does (there is no token to call it with).
  const service = createUsersService(users, app.passwords, app.stats)
  const ids: Record<string, string> = {}
  for (const u of DEMO_USERS) {
    try {
      ids[u.key] = (await service.create({ email: u.email, name: u.name, role: u.role, password: DEMO_PASSWORD })).user.id
    } catch (err) {
      // Another run got there first.
      if (err instanceof DomainError && err.code === 'email_taken' && u.email === DEMO_MARKER_EMAIL) throw new Refusal(alreadyThere(config))
      throw err
    }
  }
  // The demo admin registers the AWS accounts (admin only). Its random password is never shown.
  const adminPassword = await generateTemporaryPassword()
  await service.create({ ...DEMO_ADMIN, password: adminPassword })

  const login = async (email: string, password = DEMO_PASSWORD): Promise<string> =>
    (await api(app, 'POST', '/api/auth/login', { body: { email, password } })).access_token
  const admin = await login(DEMO_ADMIN.email, adminPassword)
  const manager = await login(DEMO_MARKER_EMAIL)
  const alex = await login('demo-alex@example.com')
  const sam = await login('demo-sam@example.com')

  const keys = { prod: '', staging: '' }
  for (const [key, account] of [['prod', PROD], ['staging', STAGING]] as const) {
    keys[key] = (await api(app, 'POST', '/api/config/aws-accounts', {
      token: admin,
      body: { ...account, role_arn: `arn:aws:iam::${account.account_id}:role/CloudMonitoringConsoleReadOnly`, external_id: `cmc-demo-${account.account_id.slice(-4)}` }
    })).api_key
  }
  // A former colleague: deactivated, so the user figures show it.
  await api(app, 'DELETE', `/api/users/${ids.jamie}`, { token: admin })
  await api(app, 'POST', '/api/auth/logout', { token: admin })

  // Events, through the ingestion route with each account's key.
  const events: Record<string, string> = {}
  const actions: Record<string, number> = {}
  for (const [ref, account, envelope] of deliveries()) {
    const res: IngestResponse = await api(app, 'POST', '/api/events/ingest', { apiKey: keys[account], body: envelope })
    const result = res.results[0]!
    actions[result.action] = (actions[result.action] ?? 0) + 1
    if (ref && result.event_id) events[ref] = result.event_id
  }

  // Tasks: from events where the event was ingested (the monitoring settings may ignore some), else plain.
  const day = (days: number): string => new Date(NOW + days * 86_400_000).toISOString()
  const fromEvent = async (token: string, ref: string, body: Json): Promise<Json> => events[ref]
    ? api(app, 'POST', `/api/events/${events[ref]}/create-task`, { token, body })
    : api(app, 'POST', '/api/tasks', { token, body: { title: `Follow up ${ref}`, ...body } })
  const comment = (token: string, task: Json, body: string) => api(app, 'POST', `/api/tasks/${task.id}/comments`, { token, body: { body } })
  const move = (token: string, task: Json, status: string, note?: string) =>
    api(app, 'PUT', `/api/tasks/${task.id}/status`, { token, body: { status, ...(note ? { comment: note } : {}) } })

  const cpu = await fromEvent(manager, 'cpu', { assigned_to: ids.alex, due_at: day(1) })
  await comment(alex, cpu, 'The spikes line up with the nightly report export; it runs on the API instances instead of the batch fleet.')
  await move(alex, cpu, 'in_progress', 'Moving the export job to the batch queue.')
  await comment(manager, cpu, 'Thanks. Keep the alarm as it is until the change is deployed.')

  const bitcoin = await fromEvent(manager, 'bitcoin', { assigned_to: ids.alex, priority: 'critical', due_at: day(-1) })
  await move(alex, bitcoin, 'in_progress', 'Instance isolated (quarantine security group), snapshot taken.')
  await comment(alex, bitcoin, 'A compromised dependency in the batch-worker image ran a miner. Rebuilt the image from a pinned base.')
  await comment(manager, bitcoin, 'Please add the image digest check to the deploy pipeline before closing.')
  await move(alex, bitcoin, 'closed', 'Pipeline now verifies image digests; instance terminated.')

  const storage = await fromEvent(sam, 'storage', {})
  await comment(sam, storage, 'Free storage drops by ~2 GiB a day since the audit table was added. Proposal: enable storage autoscaling.')

  const credentials = await fromEvent(manager, 'credentials', { assigned_to: ids.manager, due_at: new Date(NOW + 4 * 3_600_000).toISOString() })
  await move(manager, credentials, 'in_progress', 'Revoked the active sessions of the ci-runner role; checking CloudTrail for what the remote account did.')

  await fromEvent(manager, 'imds', { assigned_to: ids.sam, due_at: day(2), description: 'Set HttpTokens=required on the launch template of prod-api and roll the instances.' })
  await fromEvent(manager, 'rootMfa', { priority: 'high', due_at: day(7) })

  const reboot = await fromEvent(alex, 'reboot', { assigned_to: ids.alex, due_at: day(2), title: 'Reboot i-0123456789abcdef0 before the scheduled maintenance' })
  await move(alex, reboot, 'in_progress')
  await move(alex, reboot, 'open', 'Waiting for the change window approval on Thursday.')

  await api(app, 'POST', '/api/tasks', { token: manager, body: { title: 'Rotate IAM access keys older than 90 days in staging', priority: 'medium', assigned_to: ids.sam, due_at: day(-2) } })
  await api(app, 'POST', '/api/tasks', { token: manager, body: { title: 'Write the on-call runbook for API 5xx alarms', description: 'Link dashboards, the rollback procedure and the escalation contacts.', priority: 'low' } })
  const rules = await api(app, 'POST', '/api/tasks', { token: sam, body: { title: 'Add a GuardDuty suppression rule for the known port scanners', priority: 'low' } })
  await move(sam, rules, 'in_progress')
  await move(sam, rules, 'closed', 'Suppression rule added for the scanner ASN.')
  await move(manager, rules, 'open', 'Reopened: the rule also hides probes from unknown hosts, please narrow it.')
  await move(sam, rules, 'in_progress')
  await move(sam, rules, 'closed', 'Narrowed to the scanner IP list.')

  const overview = await api(app, 'GET', '/api/dashboard/overview', { token: manager })
  const e = overview.events
  const t = overview.tasks.by_status
  const lines = [
    '',
    'Demo data created:',
    `  events:  ${e.total} (${e.open} open), ingested: ${Object.entries(actions).map(([k, v]) => `${v} ${k}`).join(', ')}`,
    `  tasks:   ${overview.tasks.total} (${t.open} open, ${t.in_progress} in progress, ${t.closed} closed)`,
    `  users:   ${overview.users.total} (${overview.users.active} active)`,
    '  AWS accounts and their ingestion keys (X-Api-Key of POST /api/events/ingest):',
    `    ${PROD.account_id}  ${PROD.name.padEnd(30)} ${keys.prod}`,
    `    ${STAGING.account_id}  ${STAGING.name.padEnd(30)} ${keys.staging}`,
    '',
    `Demo logins (password for all: ${DEMO_PASSWORD}):`,
    ...DEMO_USERS.filter(u => u.key !== 'jamie').map(u => `  ${u.email.padEnd(26)} ${u.role.padEnd(8)} ${u.name}`),
    `  (${DEMO_ADMIN.email} is an admin with a random password that is not shown; ${DEMO_USERS[3].email} is deactivated.)`,
    '',
    'Start the server (npm start) and log in as one of them.',
    ''
  ]
  return lines.join('\n')
}

async function registeredAccounts (app: App): Promise<Set<string>> {
  const numbers = new Set<string>()
  let cursor: string | undefined
  do {
    const page = await app.repos.awsAccounts.list({ limit: 100, ...(cursor ? { cursor } : {}) })
    for (const a of page.items) numbers.add(a.account_id)
    cursor = page.next_cursor ?? undefined
  } while (cursor)
  return numbers
}

function alreadyThere (config: Config): string {
  const where = config.dynamodbEndpoint ? `the database at ${config.dynamodbEndpoint} (tables ${config.tablePrefix}*)` : `the embedded database in ${path.resolve(config.dataDir, 'dynamodb')}`
  return `Demo data already exists in ${where}: ${DEMO_MARKER_EMAIL} is there. Nothing was changed.` +
    (config.dynamodbEndpoint ? '' : ` To start over, stop the server and remove ${path.resolve(config.dataDir)}.`)
}

// The embedded database of a running server: dynalite cannot open the locked data directory
// and throws outside any promise ("Database is closed").
process.on('uncaughtException', (err) => {
  if (!process.env.DYNAMODB_ENDPOINT && err.message === 'Database is closed') {
    console.error(`Could not open the embedded database in ${path.resolve(process.env.DATA_DIR ?? './data', 'dynamodb')}: is the server running? Stop it first (one process per data directory). Nothing was changed.`)
  } else {
    console.error(err)
  }
  process.exit(1)
})

try {
  const summary = await withApp(seed)
  console.log(summary)
} catch (err) {
  if (!(err instanceof Refusal)) throw err
  console.error(err.message)
  process.exitCode = 1
}
