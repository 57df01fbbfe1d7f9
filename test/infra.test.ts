/**
 * The CDK app (infra/): the synthesised templates of the service stack (Lambda and Fargate,
 * dev and prod) and of the member-account stack, checked with aws-cdk-lib/assertions: tables
 * equal to the models, least-privilege IAM, the API, the alarms, the EventBridge delivery, no
 * secret in any template; and cdk-nag's AWS Solutions checks pass with every acknowledgement
 * reasoned. Each variant is synthesised once (esbuild bundling is cached within the process).
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { parse } from 'yaml'
import { App, Stack, Validations } from 'aws-cdk-lib'
import { Match, Template } from 'aws-cdk-lib/assertions'
import * as sqs from 'aws-cdk-lib/aws-sqs'
import { AwsSolutionsChecks } from 'cdk-nag'
import { defineInfra, type InfraStacks } from '../infra/lib/app.js'
import { THRESHOLDS } from '../infra/lib/alarms.js'
import { defineMemberStack, DLQ_RETENTION, MEMBER_READ_ACTIONS } from '../infra/lib/member-stack.js'
import { EXPIRY_DLQ_RETENTION, EXPIRY_MAPPING, TTL_REMOVAL_PATTERN } from '../infra/lib/expiry-consumer.js'
import { TTL_IDENTITY } from '../src/lambda-streams.js'
import { describeTables, SCANNED_TABLES, SERVICE_ACTIONS, type TableSpec } from '../scripts/lib/table-definitions.js'
import { DETAIL_TYPES } from '../src/domain/event-adapters.js'
import { DEFAULT_MEMBER_ROLE_NAME, MEMBER_WIRING } from '../src/domain/member-wiring.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

type Json = Record<string, any>

/** cdk.json's context: the feature flags `npm run synth` uses, so the tests synthesise the same. */
const cdkContext = (JSON.parse(await readFile(path.join(root, 'cdk.json'), 'utf8')) as { context: Json }).context

interface Synthesis {
  stacks: InfraStacks
  outdir: string
  service: Template
  member: Template
  serviceJson: Json
  memberJson: Json
  /** Every acknowledged cdk-nag rule: construct path, rule id, reason. */
  acknowledged: Array<{ path: string, id: string, reason: string }>
  /** validation-report.json and the text of every JSON file of the assembly, read right after synthesis. */
  report: Json
  files: Record<string, string>
}

/**
 * Synthesises the app (cdk-nag runs: a finding without acknowledgement throws). Apps that
 * share `outdir` share the bundled function (CDK's asset cache is per output directory), so
 * everything is read right after synthesis, before the next one overwrites common files.
 */
async function synth (context: Json, outdir?: string): Promise<Synthesis> {
  if (!outdir) {
    outdir = await mkdtemp(path.join(tmpdir(), 'cmc-cdk-'))
    const dir = outdir
    t.teardown(() => rm(dir, { recursive: true, force: true }))
  }
  const started = performance.now()
  const app = new App({ outdir, context: { ...cdkContext, ...context } })
  const stacks = await defineInfra(app)
  const assembly = app.synth()
  const serviceJson = assembly.getStackArtifact(stacks.service.artifactId).template as Json
  const memberJson = assembly.getStackArtifact(stacks.member.artifactId).template as Json
  const acknowledged = app.node.findAll().flatMap(c => c.node.metadata
    .filter(m => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
    .flatMap(m => Object.entries(m.data as Record<string, string>).map(([id, reason]) => ({ path: c.node.path, id: id.replace(/^Annotation::/, ''), reason }))))
  const files: Record<string, string> = {}
  for (const file of (await readdir(outdir)).filter(f => f.endsWith('.json'))) files[file] = await readFile(path.join(outdir, file), 'utf8')
  t.comment(`synthesised ${JSON.stringify(context)} in ${Math.round(performance.now() - started)} ms`)
  return {
    stacks,
    outdir,
    service: Template.fromJSON(serviceJson),
    member: Template.fromJSON(memberJson),
    serviceJson,
    memberJson,
    acknowledged,
    report: JSON.parse(files['validation-report.json']!) as Json,
    files
  }
}

const specs = await describeTables()
const lambdaOut = await mkdtemp(path.join(tmpdir(), 'cmc-cdk-'))
t.teardown(() => rm(lambdaOut, { recursive: true, force: true }))
const dev = await synth({ stage: 'dev' }, lambdaOut)
const prod = await synth({ stage: 'prod', alarmEmail: 'ops@example.com' }, lambdaOut)
const fargate = await synth({ stage: 'dev', compute: 'fargate', region: 'eu-west-1' })

const resources = (json: Json, type: string): Array<[string, Json]> => Object.entries(json.Resources as Record<string, Json>).filter(([, r]) => r.Type === type)
const byName = <T extends Json>(items: T[] | undefined, key: string): T[] => [...(items ?? [])].sort((a, b) => String(a[key]).localeCompare(String(b[key])))
const ref = (id: string): Json => ({ Ref: id })
const arnOf = (id: string): Json => ({ 'Fn::GetAtt': [id, 'Arn'] })
const indexArn = (id: string, index: string): Json => ({ 'Fn::Join': ['', [arnOf(id), `/index/${index}`]] })

/** All statements of the identity policies attached to a role (inline and AWS::IAM::Policy). */
function roleStatements (json: Json, roleId: string): Json[] {
  const role = json.Resources[roleId] as Json
  const inline = (role.Properties.Policies ?? []).flatMap((p: Json) => p.PolicyDocument.Statement)
  const attached = resources(json, 'AWS::IAM::Policy')
    .filter(([, p]) => (p.Properties.Roles as Json[]).some(r => r.Ref === roleId))
    .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Json[])
  return [...inline, ...attached]
}
const asList = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v])
/** CDK sorts and merges the actions and resources of a statement: compare as sets. */
const sorted = (v: unknown): string[] => asList(v).map(x => (typeof x === 'string' ? x : JSON.stringify(x))).sort()

t.test('the service stack has exactly the tables of the models', async t => {
  const tables = resources(dev.serviceJson, 'AWS::DynamoDB::Table')
  t.equal(tables.length, specs.length, 'one table per model, no leftovers')
  const plain = parse(await readFile(path.join(root, 'deploy/cloudformation/tables.yaml'), 'utf8')) as Json
  for (const spec of specs) {
    const table = dev.serviceJson.Resources[spec.logicalId] as Json | undefined
    if (!table) {
      t.fail(`${spec.model}: no table ${spec.logicalId}`)
      continue
    }
    const p = table.Properties as Json
    const r = spec.request
    t.equal(p.TableName, `monitoring-dev-${spec.suffix}`, `${spec.model}: named with the stage's TABLE_PREFIX`)
    t.same(p.KeySchema, r.KeySchema, `${spec.model}: key schema as Dynamoose creates it (HASH, RANGE)`)
    t.same(byName(p.AttributeDefinitions, 'AttributeName'), byName(r.AttributeDefinitions as Json[], 'AttributeName'), `${spec.model}: attribute definitions`)
    t.same(byName(p.GlobalSecondaryIndexes, 'IndexName'), byName(r.GlobalSecondaryIndexes as Json[] | undefined, 'IndexName'), `${spec.model}: GSIs (names, keys, projections)`)
    t.same(p.TimeToLiveSpecification, spec.ttl ? { AttributeName: 'ttl', Enabled: true } : undefined, `${spec.model}: TTL ${spec.ttl ? 'on ttl' : 'absent (no ttl attribute)'}`)
    t.equal(p.BillingMode, 'PAY_PER_REQUEST', `${spec.model}: on demand`)
    t.same(p.PointInTimeRecoverySpecification, { PointInTimeRecoveryEnabled: true }, `${spec.model}: PITR`)
    t.same(p.SSESpecification, { SSEEnabled: true }, `${spec.model}: encrypted with the AWS-managed key`)
    t.equal(p.DeletionProtectionEnabled, false, `${spec.model}: dev is disposable`)
    t.equal(table.DeletionPolicy, 'Delete')

    // The plain template (npm run generate:cfn) describes the same table.
    const same = plain.Resources[spec.logicalId].Properties as Json
    t.same([p.KeySchema, byName(p.AttributeDefinitions, 'AttributeName'), byName(p.GlobalSecondaryIndexes, 'IndexName'), p.TimeToLiveSpecification],
      [same.KeySchema, byName(same.AttributeDefinitions, 'AttributeName'), byName(same.GlobalSecondaryIndexes, 'IndexName'), same.TimeToLiveSpecification],
      `${spec.model}: same keys, indexes and TTL as deploy/cloudformation/tables.yaml`)

    const inProd = prod.serviceJson.Resources[spec.logicalId] as Json
    t.equal(inProd.Properties.DeletionProtectionEnabled, true, `${spec.model}: deletion protection in prod`)
    t.equal(inProd.DeletionPolicy, 'Retain', `${spec.model}: retained in prod`)
    t.equal(inProd.UpdateReplacePolicy, 'Retain')
    t.equal(inProd.Properties.TableName, `monitoring-prod-${spec.suffix}`)
  }
  t.ok(specs.filter(s => s.ttl).map(s => s.model).includes('events'), 'models with a ttl attribute (events among them) get TTL')
})

/** Checks the service's DynamoDB statements on a role: exact actions, tables and named indexes. */
function checkServicePolicy (t: Test, statements: Json[], label: string): void {
  const text = JSON.stringify(statements)
  t.notOk(statements.some(s => asList(s.Action).some((a: string) => a.includes('*'))), `${label}: no wildcard action`)
  t.notMatch(text, /dynamodb:\*|"Resource":"\*"/, `${label}: no dynamodb:* and no "*" resource`)
  t.notOk(statements.some(s => s.Effect !== 'Allow'), `${label}: allows only`)
  const rw = statements.find(s => s.Sid === 'ServiceReadWrite')!
  t.same(sorted(rw.Action), sorted(SERVICE_ACTIONS), `${label}: read/write actions are exactly the ones the service calls`)
  const expected = specs.flatMap((spec: TableSpec) => [arnOf(spec.logicalId), ...(spec.request.GlobalSecondaryIndexes ?? []).map(g => indexArn(spec.logicalId, g.IndexName!))])
  t.same(sorted(rw.Resource), sorted(expected), `${label}: on every table and every GSI by name (no /index/*)`)
  const scan = statements.find(s => s.Sid === 'MaintenanceScan')!
  t.equal(scan.Action, 'dynamodb:Scan')
  t.same(sorted(scan.Resource), sorted(specs.filter(s => (SCANNED_TABLES as readonly string[]).includes(s.model)).map(s => arnOf(s.logicalId))), `${label}: Scan only on ${SCANNED_TABLES.join(', ')}`)
  const dynamo = statements.filter(s => asList(s.Action).some((a: string) => a.startsWith('dynamodb:')))
  t.equal(dynamo.length, 2, `${label}: no other DynamoDB statement`)
  const assume = statements.find(s => s.Sid === 'ConnectionTest')!
  t.same(assume.Action, 'sts:AssumeRole')
  t.same(assume.Resource, { 'Fn::Join': ['', ['arn:', ref('AWS::Partition'), ':iam::*:role/CloudMonitoringReadOnly']] }, `${label}: AssumeRole only on the member role's name`)
}

t.test('Lambda: the function, its role and the HTTP API', async t => {
  const json = dev.serviceJson
  // The API function (the other one is the expiry consumer: its own test below).
  const apiFunctions = resources(json, 'AWS::Lambda::Function').filter(([, f]) => f.Properties.Environment?.Variables?.JWT_SECRET_ARN && !f.Properties.Environment.Variables.WORKER)
  const [[fnId, fn]] = apiFunctions as [[string, Json]]
  t.equal(apiFunctions.length, 1, 'one API function')
  const p = fn.Properties as Json
  t.equal(p.Runtime, 'nodejs24.x', 'Node 24')
  t.same(p.Architectures, ['arm64'])
  t.equal(p.Handler, 'index.handler')
  t.ok(p.MemorySize >= 512, 'memory for argon2')
  t.ok(p.Timeout < 30, 'timeout below the HTTP API\'s 30 s')
  const env = p.Environment.Variables as Json
  const [[secretId, secret]] = resources(json, 'AWS::SecretsManager::Secret') as [[string, Json]]
  t.same(env.JWT_SECRET_ARN, ref(secretId), 'the secret by ARN')
  t.notOk('JWT_SECRET' in env, 'never the secret itself')
  t.match(env, { NODE_ENV: 'production', DYNAMODB_ENDPOINT: 'aws', TABLE_PREFIX: 'monitoring-dev-' })
  t.ok(secret.Properties.GenerateSecretString, 'the secret is generated by Secrets Manager')
  t.notOk(secret.Properties.SecretString, 'no literal secret value')

  const logGroupId = p.LoggingConfig.LogGroup.Ref as string
  t.equal(json.Resources[logGroupId].Properties.RetentionInDays, 14, 'dev logs kept two weeks')
  const prodLogs = resources(prod.serviceJson, 'AWS::Logs::LogGroup').map(([, l]) => l.Properties.RetentionInDays)
  t.ok(prodLogs.length > 0 && prodLogs.every(d => d === 365), 'prod logs kept a year')

  const roleId = p.Role['Fn::GetAtt'][0] as string
  const role = json.Resources[roleId] as Json
  t.notOk(role.Properties.ManagedPolicyArns, 'no managed policy (not even AWSLambdaBasicExecutionRole)')
  t.same(role.Properties.AssumeRolePolicyDocument.Statement[0].Principal, { Service: 'lambda.amazonaws.com' })
  const statements = roleStatements(json, roleId)
  checkServicePolicy(t, statements, 'function role')
  t.ok(statements.some(s => s.Sid === 'OwnLogGroup' && JSON.stringify(s.Resource) === JSON.stringify(arnOf(logGroupId))), 'logs only to its own log group')
  const secretRead = statements.find(s => asList(s.Action).includes('secretsmanager:GetSecretValue'))!
  t.same(secretRead.Resource, ref(secretId), 'reads only the JWT secret')

  t.hasStrict(resources(json, 'AWS::ApiGatewayV2::Api')[0]![1].Properties, { ProtocolType: 'HTTP' })
  dev.service.hasResourceProperties('AWS::ApiGatewayV2::Integration', {
    IntegrationType: 'AWS_PROXY',
    PayloadFormatVersion: '2.0',
    IntegrationUri: arnOf(fnId)
  })
  dev.service.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: '$default' })
  dev.service.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
    StageName: '$default',
    AutoDeploy: true,
    AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('requestId') },
    DefaultRouteSettings: { ThrottlingRateLimit: Match.anyValue(), ThrottlingBurstLimit: Match.anyValue() }
  })
  t.same(dev.serviceJson.Outputs.ApiUrl.Value, { 'Fn::Join': ['', ['https://', ref(resources(json, 'AWS::ApiGatewayV2::Api')[0]![0]), '.execute-api.', ref('AWS::Region'), '.', ref('AWS::URLSuffix')]] }, 'the API URL is an output, without a trailing slash (the member stack\'s ServiceUrl)')
  t.pass('the HTTP API: one $default route, Lambda proxy, payload 2.0, access-logged and throttled')
})

t.test('alarms on 5xx, p99 latency, Lambda errors and throttles, DynamoDB throttles, to an encrypted topic', async t => {
  const json = dev.serviceJson
  const [[topicId, topic]] = resources(json, 'AWS::SNS::Topic') as [[string, Json]]
  const keyId = topic.Properties.KmsMasterKeyId['Fn::GetAtt'][0] as string
  const key = json.Resources[keyId] as Json
  t.equal(key.Properties.EnableKeyRotation, true, 'the topic\'s key rotates')
  t.ok((key.Properties.KeyPolicy.Statement as Json[]).some(s => s.Principal?.Service === 'cloudwatch.amazonaws.com' && asList(s.Action).includes('kms:GenerateDataKey*')), 'CloudWatch may use the key (it cannot use aws/sns)')
  const alarms = resources(json, 'AWS::CloudWatch::Alarm').map(([, a]) => a.Properties as Json)
  for (const a of alarms) {
    t.same(a.AlarmActions, [ref(topicId)], `${a.AlarmDescription}: notifies the topic`)
    t.same(a.OKActions, [ref(topicId)])
    t.equal(a.TreatMissingData, 'notBreaching')
  }
  const metric = (name: string, namespace: string): Json | undefined => alarms.find(a => a.MetricName === name && a.Namespace === namespace)
  t.match(metric('5xx', 'AWS/ApiGateway'), { Statistic: 'Sum', Threshold: THRESHOLDS.serverErrors, Period: 300 }, 'API 5xx')
  t.match(metric('Latency', 'AWS/ApiGateway'), { ExtendedStatistic: 'p99', Threshold: THRESHOLDS.latencyP99Ms, EvaluationPeriods: 3 }, 'API p99 latency')
  t.ok(metric('Errors', 'AWS/Lambda'), 'Lambda errors')
  t.ok(metric('Throttles', 'AWS/Lambda'), 'Lambda throttles')
  for (const spec of specs) {
    const alarm = alarms.find(a => (a.Metrics as Json[] | undefined)?.some(m => m.MetricStat?.Metric.MetricName === 'ThrottledRequests' && JSON.stringify(m.MetricStat.Metric.Dimensions).includes(`"Ref":"${spec.logicalId}"`)))
    if (!alarm) {
      t.fail(`${spec.model}: no throttle alarm`)
      continue
    }
    const ops = (alarm.Metrics as Json[]).filter(m => m.MetricStat).map(m => m.MetricStat.Metric.Dimensions.find((d: Json) => d.Name === 'Operation').Value as string)
    t.same(ops.includes('Scan'), (SCANNED_TABLES as readonly string[]).includes(spec.model), `${spec.model}: throttles of the operations it serves`)
    t.match((alarm.Metrics as Json[]).find(m => m.Expression)?.Expression, /^FILL\(\w+, 0\)( \+ FILL\(\w+, 0\))+$/, `${spec.model}: missing series count as 0`)
  }
  prod.service.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com' })
})

t.test('Fargate variant: the same tables and policy, the image from the Dockerfile, the secret injected', async t => {
  const json = fargate.serviceJson
  t.equal(resources(json, 'AWS::DynamoDB::Table').length, specs.length, 'the same tables')
  t.notOk(resources(json, 'AWS::Lambda::Function').some(([, f]) => f.Properties.Environment?.Variables?.JWT_SECRET_ARN), 'no API function, no scheduled notification worker (the tasks deliver in process)')
  const [[, task]] = resources(json, 'AWS::ECS::TaskDefinition') as [[string, Json]]
  const container = task.Properties.ContainerDefinitions[0] as Json
  const env = Object.fromEntries((container.Environment as Json[]).map(e => [e.Name, e.Value]))
  t.match(env, { DYNAMODB_ENDPOINT: 'aws', TABLE_PREFIX: 'monitoring-dev-', TRUST_PROXY: '1' })
  t.notOk('JWT_SECRET' in env, 'JWT_SECRET is not plain environment')
  const [[secretId]] = resources(json, 'AWS::SecretsManager::Secret') as [[string, Json]]
  t.same(container.Secrets, [{ Name: 'JWT_SECRET', ValueFrom: ref(secretId) }], 'JWT_SECRET from Secrets Manager')
  t.match(container.HealthCheck.Command.join(' '), /\/api\/health/)
  t.equal(container.ReadonlyRootFilesystem, true)
  t.same(container.PortMappings, [{ ContainerPort: 3000, Protocol: 'tcp' }])
  fargate.service.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', { HealthCheckPath: '/api/health', Matcher: { HttpCode: '200' }, Port: 3000 })
  fargate.service.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', { Scheme: 'internet-facing' })
  fargate.service.hasResourceProperties('AWS::ECS::Service', { LaunchType: 'FARGATE', NetworkConfiguration: { AwsvpcConfiguration: { AssignPublicIp: 'DISABLED' } } })
  const taskRoleId = task.Properties.TaskRoleArn['Fn::GetAtt'][0] as string
  checkServicePolicy(t, roleStatements(json, taskRoleId), 'task role')

  // ContainerImage.fromAsset needs no Docker at synthesis: the image is built by `cdk deploy`.
  const manifest = JSON.parse(fargate.files[`${fargate.stacks.service.artifactId}.assets.json`]!) as Json
  const images = Object.values(manifest.dockerImages ?? {}) as Json[]
  t.equal(images.length, 1, 'one image asset')
  t.equal(images[0]!.source.platform, 'linux/amd64')
  const context = path.join(fargate.outdir, images[0]!.source.directory as string)
  const staged = await readdir(context)
  t.ok(staged.includes('Dockerfile') && staged.includes('src') && staged.includes('package-lock.json'), 'the build context is the repository (staged without Docker)')
  t.notOk(staged.includes('node_modules') || staged.includes('cdk.out') || staged.includes('infra'), 'minus what .dockerignore leaves out')

  const alarms = resources(json, 'AWS::CloudWatch::Alarm').map(([, a]) => a.Properties as Json)
  t.ok(alarms.some(a => (a.Metrics as Json[] | undefined)?.some(m => m.MetricStat?.Metric.MetricName === 'HTTPCode_Target_5XX_Count')), '5xx alarm (ALB and targets)')
  t.ok(alarms.some(a => a.MetricName === 'TargetResponseTime' && a.ExtendedStatistic === 'p99' && a.Threshold === THRESHOLDS.latencyP99Ms / 1000), 'p99 latency alarm, in seconds')
  t.equal(alarms.filter(a => JSON.stringify(a.Metrics ?? '').includes('ThrottledRequests')).length, specs.length, 'DynamoDB throttle alarms')
})

t.test('member-account stack: the read-only role the connection test assumes', async t => {
  const json = dev.memberJson
  const params = json.Parameters as Json
  t.match(params.ServiceAccountId, { Type: 'String', AllowedPattern: '^[0-9]{12}$' })
  t.match(params.ExternalId, { Type: 'String', MinLength: 2, MaxLength: 1224 })
  t.match(params.CreateRole, { Default: 'true', AllowedValues: ['true', 'false'] })
  t.equal(params.RoleName.Default, 'CloudMonitoringReadOnly', 'the role name the service may assume')
  const [[roleId, role]] = resources(json, 'AWS::IAM::Role').filter(([, r]) => r.Properties.RoleName) as [[string, Json]]
  t.same(role.Properties.RoleName, ref('RoleName'))
  t.equal(role.Condition, 'CreateRoleCondition', 'created only where CreateRole=true (IAM is global)')
  t.same(json.Conditions.CreateRoleCondition, { 'Fn::Equals': [ref('CreateRole'), 'true'] })
  t.same(role.Properties.AssumeRolePolicyDocument.Statement, [{
    Action: 'sts:AssumeRole',
    Effect: 'Allow',
    Principal: { AWS: { 'Fn::Join': ['', ['arn:', ref('AWS::Partition'), ':iam::', ref('ServiceAccountId'), ':root']] } },
    Condition: { StringEquals: { 'sts:ExternalId': ref('ExternalId') } }
  }], 'trusted: the service account, only with the external id')
  t.notOk(role.Properties.ManagedPolicyArns, 'no AWS-managed policy (not ReadOnlyAccess)')
  const [[, policy]] = resources(json, 'AWS::IAM::ManagedPolicy') as [[string, Json]]
  t.equal(policy.Condition, 'CreateRoleCondition')
  t.same(policy.Properties.Roles, [ref(roleId)])
  const actions = policy.Properties.PolicyDocument.Statement.flatMap((s: Json) => asList(s.Action)) as string[]
  t.same(sorted(actions), sorted(MEMBER_READ_ACTIONS))
  for (const a of ['events:DescribeRule', 'events:ListTargetsByRule', 'events:DescribeApiDestination']) t.ok(actions.includes(a), `${a}: the connection test reads the delivery wiring`)
  t.ok(actions.every(a => /^(cloudwatch|guardduty|securityhub|health|events):(Describe|Get|List)[A-Za-z]+$/.test(a)), 'read-only calls of the monitored services, no wildcard action')
  t.same(json.Outputs.RoleArn.Condition, 'CreateRoleCondition')
  t.notOk(json.Parameters.BootstrapVersion || json.Rules, 'no CDK bootstrap needed (StackSets, plain CloudFormation)')
  const manifest = JSON.parse(dev.files['manifest.json']!) as Json
  const assets = Object.keys(manifest.artifacts).filter(k => k.startsWith(dev.stacks.member.artifactId) && manifest.artifacts[k].type === 'cdk:asset-manifest')
  t.same(assets, [], 'no assets')
})

t.test('member-account stack: EventBridge delivery to /api/events/ingest', async t => {
  const json = dev.memberJson
  const tpl = dev.member
  t.match(json.Parameters.ApiKey, { Type: 'String', NoEcho: true, MinLength: 16, MaxLength: 128 }, 'the API key is a NoEcho parameter')
  t.notOk('Default' in json.Parameters.ApiKey, 'with no default')
  t.match(json.Parameters.InvocationRateLimitPerSecond, { Type: 'Number', Default: 300 })
  t.match(json.Parameters.ServiceUrl, { Type: 'String', AllowedPattern: /^\^https:/ })

  const [[connectionId, connection]] = resources(json, 'AWS::Events::Connection') as [[string, Json]]
  t.equal(connection.Properties.Name, MEMBER_WIRING.connectionName, 'the connection by its fixed name')
  t.same(connection.Properties.AuthorizationType, 'API_KEY')
  t.same(connection.Properties.AuthParameters, { ApiKeyAuthParameters: { ApiKeyName: 'X-Api-Key', ApiKeyValue: ref('ApiKey') } }, 'header X-Api-Key from the parameter')
  const [[destinationId, destination]] = resources(json, 'AWS::Events::ApiDestination') as [[string, Json]]
  t.same(destination.Properties, {
    ConnectionArn: arnOf(connectionId),
    Description: destination.Properties.Description,
    HttpMethod: 'POST',
    InvocationEndpoint: { 'Fn::Join': ['', [ref('ServiceUrl'), '/api/events/ingest']] },
    InvocationRateLimitPerSecond: ref('InvocationRateLimitPerSecond'),
    Name: MEMBER_WIRING.apiDestinationName
  }, 'POST <ServiceUrl>/api/events/ingest at the parameter\'s rate, by its fixed name (the connection test looks it up)')

  const [[ruleId, rule]] = resources(json, 'AWS::Events::Rule') as [[string, Json]]
  t.notOk(rule.Properties.EventBusName, 'on the default bus')
  t.equal(rule.Properties.Name, MEMBER_WIRING.ruleName, 'the rule by its fixed name (the connection test looks it up)')
  t.equal(rule.Properties.State, 'ENABLED')
  t.same(rule.Properties.EventPattern, {
    source: ['aws.cloudwatch', 'aws.guardduty', 'aws.securityhub', 'aws.health'],
    'detail-type': ['CloudWatch Alarm State Change', 'GuardDuty Finding', 'Security Hub Findings - Imported', 'Security Hub Findings - Custom Action', 'AWS Health Event', 'AWS Health Abuse Event']
  }, 'the four sources and their detail-types')
  t.same(rule.Properties.EventPattern['detail-type'], Object.values(DETAIL_TYPES).flat(), 'exactly the detail-types the adapters read (src/domain/event-adapters.ts)')
  const [target] = rule.Properties.Targets as Json[]
  t.same(target!.Arn, arnOf(destinationId))
  t.same(target!.RetryPolicy, { MaximumEventAgeInSeconds: 86400, MaximumRetryAttempts: 185 }, 'retries for 24 h, 185 times')
  const queueId = target!.DeadLetterConfig.Arn['Fn::GetAtt'][0] as string
  const queue = json.Resources[queueId] as Json
  t.equal(queue.Properties.MessageRetentionPeriod, DLQ_RETENTION.toSeconds(), 'dead letters kept 14 days')
  t.equal(queue.Properties.SqsManagedSseEnabled, true, 'encrypted (SSE-SQS)')
  tpl.hasResourceProperties('AWS::SQS::QueuePolicy', {
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        Match.objectLike({ Action: 'sqs:SendMessage', Principal: { Service: 'events.amazonaws.com' }, Condition: { ArnEquals: { 'aws:SourceArn': arnOf(ruleId) } } })
      ])
    }
  })
  const eventsRoleId = target!.RoleArn['Fn::GetAtt'][0] as string
  t.same(roleStatements(json, eventsRoleId), [{ Action: 'events:InvokeApiDestination', Effect: 'Allow', Resource: arnOf(destinationId) }], 'EventBridge\'s role may invoke this destination only')
  tpl.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'ApproximateNumberOfMessagesVisible', AlarmDescription: Match.stringLikeRegexp('^\\[severity:high\\]') })
})

t.test('no secret in any synthesised file', async t => {
  for (const s of [dev, prod, fargate]) {
    for (const [file, text] of Object.entries(s.files)) {
      t.notMatch(text, /cmk_[A-Za-z0-9_-]{20,}/, `${file}: no ingestion API key`)
      t.notMatch(text, /"(JWT_SECRET|SecretString|ApiKeyValue)"\s*:\s*"/, `${file}: no literal JWT secret, secret string or API key`)
    }
  }
})

t.test('cdk-nag: AWS Solutions checks pass; every acknowledgement has its reason', async t => {
  // Synthesis throws on an unacknowledged finding; here it passed. The report says the same.
  for (const s of [dev, prod, fargate]) t.same((s.report.pluginReports as Json[]).filter(r => r.conclusion !== 'success'), [], 'no failing validation report')
  const all = [...dev.acknowledged, ...fargate.acknowledged].filter(a => a.id.startsWith('AwsSolutions-'))
  for (const a of all) t.ok(a.reason.length >= 40, `${a.id} on ${a.path}: ${a.reason}`)
  // (aws-cdk-lib acknowledges some of its own CloudFormation-Validate rules: not ours.)
  const ids = (s: Synthesis): string[] => [...new Set(s.acknowledged.map(a => a.id).filter(id => id.startsWith('AwsSolutions-')))].sort()
  t.same(ids(dev), [
    'AwsSolutions-APIG4',
    'AwsSolutions-IAM5[Resource::*]',
    'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::*:role/CloudMonitoringReadOnly]',
    'AwsSolutions-L1',
    'AwsSolutions-SMG4',
    'AwsSolutions-SQS3'
  ], 'Lambda variant: the acknowledged findings (a new one needs a reason and a change here)')
  t.same(ids(fargate), [
    'AwsSolutions-EC23',
    'AwsSolutions-ECS2',
    'AwsSolutions-IAM5[Resource::*]',
    'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::*:role/CloudMonitoringReadOnly]',
    'AwsSolutions-L1',
    'AwsSolutions-S1',
    'AwsSolutions-SMG4',
    'AwsSolutions-SQS3'
  ], 'Fargate variant: the acknowledged findings')

  // The checks are live: an unacknowledged finding fails synthesis.
  const app = new App({ outdir: await mkdtemp(path.join(tmpdir(), 'cmc-nag-')), context: cdkContext })
  t.teardown(() => rm(app.outdir, { recursive: true, force: true }))
  new sqs.Queue(new Stack(app, 'Plain'), 'Queue') // eslint-disable-line no-new
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app))
  t.throws(() => app.synth(), /Validation failed/, 'a plain queue (no SSL policy, no DLQ) fails the checks')
})

t.test('context is checked', async t => {
  const bad = async (context: Json): Promise<void> => { await defineInfra(new App({ context })) }
  await t.rejects(bad({ stage: 'Prod!' }), /context stage/)
  await t.rejects(bad({ compute: 'ec2' }), /context compute/)
  await t.rejects(bad({ tablePrefix: 'has space' }), /context tablePrefix/)
  const env = process.env.CDK_DEFAULT_REGION
  delete process.env.CDK_DEFAULT_REGION
  t.teardown(() => { if (env !== undefined) process.env.CDK_DEFAULT_REGION = env })
  await t.rejects(bad({ compute: 'fargate' }), /needs a region/)
})

// ---- The expiry consumer: the events table's stream, TTL removals off the dashboard counters. ----

t.test('streams: the tables that declare one in their model have it, in both templates', async t => {
  const plain = parse(await readFile(path.join(root, 'deploy/cloudformation/tables.yaml'), 'utf8')) as Json
  t.equal(specs.find(s => s.model === 'events')?.stream, 'OLD_IMAGE', 'the events model declares a stream of old images (REMOVE records carry the item)')
  for (const spec of specs) {
    const expected = spec.stream ? { StreamViewType: spec.stream } : undefined
    t.same(dev.serviceJson.Resources[spec.logicalId].Properties.StreamSpecification, expected, `${spec.model}: CDK ${spec.stream ?? 'no stream'}`)
    t.same(plain.Resources[spec.logicalId].Properties.StreamSpecification, expected, `${spec.model}: deploy/cloudformation/tables.yaml the same`)
  }
  t.same(plain.Outputs.EventsTableStreamArn?.Value, { 'Fn::GetAtt': ['EventsTable', 'StreamArn'] }, 'the plain template exports the stream ARN')
})

/** The expiry consumer's function in a synthesised service stack: the one with TABLE_PREFIX and no JWT secret. */
function expiryFunction (json: Json): [string, Json] {
  const found = resources(json, 'AWS::Lambda::Function').filter(([, f]) => f.Properties.Environment?.Variables?.TABLE_PREFIX && !f.Properties.Environment.Variables.JWT_SECRET_ARN)
  if (found.length !== 1) throw new Error(`expected one expiry consumer function, found ${found.length}`)
  return found[0]!
}

t.test('expiry consumer: the function, the mapping (TTL removals only, partial batches, DLQ), least privilege, alarms', async t => {
  for (const [label, s] of [['lambda', dev], ['fargate', fargate]] as const) {
    const json = s.serviceJson
    const [fnId, fn] = expiryFunction(json)
    const p = fn.Properties as Json
    t.equal(p.Runtime, 'nodejs24.x', `${label}: Node 24`)
    t.same(p.Architectures, ['arm64'])
    t.equal(p.Handler, 'index.handler')
    t.same(p.Environment.Variables, { NODE_OPTIONS: '--enable-source-maps', DYNAMODB_ENDPOINT: 'aws', TABLE_PREFIX: 'monitoring-dev-', LOG_LEVEL: 'info' }, `${label}: real DynamoDB, the stage's tables, no secret`)
    t.equal(json.Resources[p.LoggingConfig.LogGroup.Ref].Properties.RetentionInDays, 14, `${label}: its own log group, kept like the API's`)

    const mappings = resources(json, 'AWS::Lambda::EventSourceMapping')
    t.equal(mappings.length, 1, `${label}: one event source mapping`)
    const m = mappings[0]![1].Properties as Json
    t.same(m.EventSourceArn, { 'Fn::GetAtt': ['EventsTable', 'StreamArn'] }, 'the events table\'s stream')
    t.same(m.FunctionName, ref(fnId))
    t.same(m.FilterCriteria.Filters.map((f: Json) => JSON.parse(f.Pattern as string)), [TTL_REMOVAL_PATTERN], 'only REMOVE records of the TTL service reach the function')
    t.same(TTL_REMOVAL_PATTERN, { eventName: ['REMOVE'], userIdentity: { type: [TTL_IDENTITY.type], principalId: [TTL_IDENTITY.principalId] } }, 'the same identity the handler checks')
    t.same(m.FunctionResponseTypes, ['ReportBatchItemFailures'], 'partial batch responses')
    t.equal(m.BisectBatchOnFunctionError, true)
    t.equal(m.MaximumRetryAttempts, EXPIRY_MAPPING.retryAttempts)
    t.equal(m.MaximumRecordAgeInSeconds, EXPIRY_MAPPING.maxRecordAge.toSeconds())
    t.equal(m.BatchSize, EXPIRY_MAPPING.batchSize)
    t.equal(m.StartingPosition, 'TRIM_HORIZON')
    const queueId = m.DestinationConfig.OnFailure.Destination['Fn::GetAtt'][0] as string
    const queue = json.Resources[queueId] as Json
    t.equal(queue.Type, 'AWS::SQS::Queue', 'failed batches go to an SQS queue')
    t.equal(queue.Properties.SqsManagedSseEnabled, true, 'encrypted (SSE-SQS)')
    t.equal(queue.Properties.MessageRetentionPeriod, EXPIRY_DLQ_RETENTION.toSeconds(), 'kept 14 days')
    const queuePolicies = resources(json, 'AWS::SQS::QueuePolicy').filter(([, q]) => (q.Properties.Queues as Json[]).some(r => r.Ref === queueId))
    t.ok(queuePolicies.some(([, q]) => (q.Properties.PolicyDocument.Statement as Json[]).some(st => st.Effect === 'Deny' && st.Condition?.Bool?.['aws:SecureTransport'] === 'false')), 'the queue refuses plain HTTP')

    const roleId = p.Role['Fn::GetAtt'][0] as string
    t.notOk(json.Resources[roleId].Properties.ManagedPolicyArns, 'no managed policy')
    const statements = roleStatements(json, roleId)
    const grants = statements.map(st => ({ actions: sorted(st.Action), resources: sorted(st.Resource) })).sort((a, b) => a.actions[0]!.localeCompare(b.actions[0]!))
    t.same(grants, [
      { actions: ['dynamodb:DeleteItem', 'dynamodb:PutItem'], resources: sorted(arnOf('MetaTable')) },
      { actions: ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'], resources: sorted({ 'Fn::GetAtt': ['EventsTable', 'StreamArn'] }) },
      { actions: ['dynamodb:ListStreams'], resources: ['*'] },
      { actions: ['dynamodb:UpdateItem'], resources: sorted(arnOf('StatsTable')) },
      { actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: sorted(arnOf(p.LoggingConfig.LogGroup.Ref as string)) },
      { actions: ['sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:SendMessage'], resources: sorted(arnOf(queueId)) }
    ], `${label}: read its stream, ADD to the counters, put and delete claims, its logs, its queue: nothing else`)
    t.notOk(statements.some(st => asList(st.Action).some((a: string) => a.includes('*'))), 'no wildcard action')

    const alarms = resources(json, 'AWS::CloudWatch::Alarm').map(([, a]) => a.Properties as Json)
    const on = (metric: string, dimension: Json) => alarms.find(a => a.MetricName === metric && JSON.stringify(a.Dimensions).includes(JSON.stringify(dimension)))
    t.match(on('ApproximateNumberOfMessagesVisible', { 'Fn::GetAtt': [queueId, 'QueueName'] }), { Namespace: 'AWS/SQS', Threshold: THRESHOLDS.expiryDeadLetters, ComparisonOperator: 'GreaterThanOrEqualToThreshold' }, `${label}: alarm on a dead letter`)
    t.match(on('Errors', ref(fnId)), { Namespace: 'AWS/Lambda', Threshold: THRESHOLDS.functionErrors }, `${label}: alarm on the consumer's errors`)
    t.match(on('IteratorAge', ref(fnId)), { Namespace: 'AWS/Lambda', Statistic: 'Maximum', Threshold: THRESHOLDS.expiryIteratorAgeMs }, `${label}: alarm on the stream falling behind`)
  }
  t.equal(prod.serviceJson.Resources[expiryFunction(prod.serviceJson)[1].Properties.LoggingConfig.LogGroup.Ref].Properties.RetentionInDays, 365, 'prod: its logs kept a year')
})

t.test('expiry consumer bundle: one file, nothing external, starts and answers a batch', async t => {
  const manifest = JSON.parse(dev.files[`${dev.stacks.service.artifactId}.assets.json`]!) as Json
  const dirs = Object.values(manifest.files as Record<string, Json>).map(f => path.join(dev.outdir, f.source.path as string))
  const consumer = dirs.filter(d => !d.endsWith('.json') && !existsSync(path.join(d, 'docs')) && existsSync(path.join(d, 'index.mjs')))
  t.equal(consumer.length, 1, 'one asset without the API\'s spec: the consumer\'s')
  t.same((await readdir(consumer[0]!)).sort(), ['index.mjs', 'index.mjs.map'], 'one ESM file (and its source map): no argon2, no copies')
  const script = `const m = await import(${JSON.stringify(pathToFileURL(path.join(consumer[0]!, 'index.mjs')).href)}); console.log(JSON.stringify(await m.handler({ Records: [{ eventName: 'INSERT', eventSource: 'aws:dynamodb', dynamodb: { SequenceNumber: '1' } }] })))`
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
    cwd: consumer[0]!,
    env: { PATH: process.env.PATH, AWS_REGION: 'eu-west-1', DYNAMODB_ENDPOINT: 'http://127.0.0.1:9', TABLE_PREFIX: 'monitoring-dev-', LOG_LEVEL: 'silent', AWS_EC2_METADATA_DISABLED: 'true' }
  })
  t.same(JSON.parse(stdout.trim().split('\n').at(-1)!), { batchItemFailures: [] }, 'the bundle builds its data layer and ignores a record that is not a TTL removal')
})

// ------------------------------------------------------------------------------ onboarding

t.test('onboarding: the service gets its AWS account id, its public URL and the member role name', async t => {
  // The API function (the one with the JWT secret's ARN), whatever other functions the stack has.
  const lambdaEnv = (s: Synthesis): Json => resources(s.serviceJson, 'AWS::Lambda::Function').map(([, f]) => f.Properties.Environment?.Variables as Json | undefined).find(v => v?.JWT_SECRET_ARN && !v.WORKER)!
  const env = lambdaEnv(dev)
  t.same(env.SERVICE_AWS_ACCOUNT_ID, { Ref: 'AWS::AccountId' }, 'Lambda: the stack\'s account')
  t.equal(env.MEMBER_ROLE_NAME, 'CloudMonitoringReadOnly', 'the role name the service may assume')
  t.same(env.PUBLIC_BASE_URL, dev.serviceJson.Outputs.ApiUrl.Value, 'Lambda: the HTTP API\'s URL (the ApiUrl output)')
  t.match(JSON.stringify(env.PUBLIC_BASE_URL), /"https:\/\/"/, 'https')
  t.notOk('MEMBER_TEMPLATE_URL' in env, 'no published template by default')

  const [[, task]] = resources(fargate.serviceJson, 'AWS::ECS::TaskDefinition') as [[string, Json]]
  const container = Object.fromEntries((task.Properties.ContainerDefinitions[0].Environment as Json[]).map(e => [e.Name, e.Value]))
  t.same(container.SERVICE_AWS_ACCOUNT_ID, { Ref: 'AWS::AccountId' }, 'Fargate: the stack\'s account')
  t.same(container.PUBLIC_BASE_URL, fargate.serviceJson.Outputs.ApiUrl.Value, 'Fargate: the ALB\'s URL')
  t.match(JSON.stringify(container.PUBLIC_BASE_URL), /"http:\/\/"/, 'plain http without a certificate (the service then reports ServiceUrl as missing)')
  t.equal(container.MEMBER_ROLE_NAME, 'CloudMonitoringReadOnly')

  const custom = await synth({ stage: 'dev', publicBaseUrl: 'https://monitoring.example.com/', memberTemplateUrl: 'https://cmc-templates.s3.amazonaws.com/member.json', memberRoleName: 'OpsReadOnly' }, lambdaOut)
  t.match(lambdaEnv(custom), { PUBLIC_BASE_URL: 'https://monitoring.example.com', MEMBER_TEMPLATE_URL: 'https://cmc-templates.s3.amazonaws.com/member.json', MEMBER_ROLE_NAME: 'OpsReadOnly' }, '-c publicBaseUrl (a custom domain), -c memberTemplateUrl')

  const bad = async (context: Json): Promise<void> => { await defineInfra(new App({ context })) }
  await t.rejects(bad({ publicBaseUrl: 'http://monitoring.example.com' }), /context publicBaseUrl/, 'publicBaseUrl must be https')
  await t.rejects(bad({ memberTemplateUrl: 'ftp://example.com/t.json' }), /context memberTemplateUrl/, 'memberTemplateUrl must be https')
})

t.test('the member template the service hands out is the synthesised member stack (npm run generate:member)', async t => {
  const committed = JSON.parse(await readFile(path.join(root, 'src', 'modules', 'settings', 'member-template.json'), 'utf8')) as Json
  t.same(committed, dev.memberJson, 'equal to the CDK app\'s member stack: run npm run generate:member after changing it')
  const fresh = Template.fromStack(defineMemberStack(new App({ context: cdkContext }), DEFAULT_MEMBER_ROLE_NAME)).toJSON()
  t.same(committed, fresh, 'and to a fresh MemberAccountStack')
  t.equal(committed.Parameters.ApiKey.NoEcho, true, 'the key is NoEcho')
  t.notOk('Default' in committed.Parameters.ApiKey, 'and has no default')
})

t.test('notification worker (Lambda deployment): a function on a one-minute schedule, one at a time, the service\'s permissions, an alarm', async t => {
  const json = dev.serviceJson
  const workers = resources(json, 'AWS::Lambda::Function').filter(([, f]) => f.Properties.Environment?.Variables?.WORKER === 'notifications')
  t.equal(workers.length, 1, 'one worker function')
  const [[fnId, fn]] = workers as [[string, Json]]
  const p = fn.Properties as Json
  t.equal(p.Runtime, 'nodejs24.x')
  t.equal(p.ReservedConcurrentExecutions, 1, 'one invocation at a time')
  t.ok(p.Timeout > 50 && p.Timeout <= 900, 'longer than its 50 s of deliveries')
  const env = p.Environment.Variables as Json
  t.match(env, { NODE_ENV: 'production', DYNAMODB_ENDPOINT: 'aws', TABLE_PREFIX: 'monitoring-dev-', NOTIFICATION_POLL_MS: '2000' })
  t.ok(env.JWT_SECRET_ARN, 'the JWT secret by ARN (the notification key is derived from it unless NOTIFICATION_KEY is set)')
  t.notOk('JWT_SECRET' in env, 'never the secret itself')
  t.ok(env.PUBLIC_BASE_URL, 'links to the console')
  const rules = resources(json, 'AWS::Events::Rule').filter(([, r]) => JSON.stringify(r.Properties.Targets).includes(fnId))
  t.equal(rules.length, 1, 'one schedule targets it')
  t.equal(rules[0]![1].Properties.ScheduleExpression, 'rate(1 minute)')
  const api = resources(json, 'AWS::Lambda::Function').find(([, f]) => f.Properties.Environment?.Variables?.JWT_SECRET_ARN && !f.Properties.Environment.Variables.WORKER)!
  t.equal(api[1].Properties.Environment.Variables.NOTIFICATION_POLL_MS, undefined, 'the API function is not configured to poll (src/lambda.ts turns its poller off)')
  const roleId = p.Role['Fn::GetAtt'][0] as string
  const statements = roleStatements(json, roleId)
  t.ok(statements.some(s => s.Sid === 'OwnLogGroup'), 'writes its own log group')
  t.notOk(statements.some(s => JSON.stringify(s.Action).includes('sts:')), 'assumes no role (only the API\'s connection test does)')
  const alarms = resources(json, 'AWS::CloudWatch::Alarm').filter(([id]) => id.includes('NotificationWorkerErrors'))
  t.equal(alarms.length, 1, 'an alarm on failed invocations')
})
