/** Configuration (Phase 6): AWS accounts, ingestion keys, connection tests, monitoring settings. */
import t, { type Test } from 'tap'
import { mockClient } from 'aws-sdk-client-mock'
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts'
import { DescribeApiDestinationCommand, DescribeRuleCommand, EventBridgeClient, ListTargetsByRuleCommand } from '@aws-sdk/client-eventbridge'
import { App } from 'aws-cdk-lib'
import { Template } from 'aws-cdk-lib/assertions'
import { DEFAULT_MEMBER_ROLE_NAME, MEMBER_WIRING } from '../src/domain/member-wiring.js'
import { defineMemberStack } from '../infra/lib/member-stack.js'
import { cdkContext } from '../infra/lib/member-template.js'
import { build, assertProblem, database, type Api } from './helper.js'

const ACCOUNT = { account_id: '123456789012', name: 'Production', role_arn: 'arn:aws:iam::123456789012:role/MonitoringReadOnly', external_id: 'ops-7f3a9c', regions: ['us-east-1', 'eu-west-1'] }
const MISSING_ID = '01JDQ2Z5Y3K4M5N6P7Q8R9S0TV'

async function createAccount (api: Api, token: string, overrides: object = {}) {
  const res = await api.request({ method: 'POST', url: '/api/config/aws-accounts', headers: api.auth(token), payload: { ...ACCOUNT, ...overrides } })
  if (res.statusCode !== 201) throw new Error(`create account: ${res.statusCode} ${res.body}`)
  return res.json() as { account: { id: string, version: number, api_key_prefix: string }, api_key: string }
}

const envelope = (id: string, account = '123456789012') => ({
  version: '0',
  id,
  'detail-type': 'CloudWatch Alarm State Change',
  source: 'aws.cloudwatch',
  account,
  time: '2026-11-25T10:00:00Z',
  region: 'us-east-1',
  resources: [`arn:aws:cloudwatch:us-east-1:${account}:alarm:cpu-high`],
  detail: { alarmName: 'cpu-high', state: { value: 'ALARM', reason: 'Threshold crossed', timestamp: '2026-11-25T10:00:00.000+0000' }, previousState: { value: 'OK' }, configuration: { metrics: [] } }
})

t.test('AWS accounts: RBAC, create, read, update, delete', async t => {
  const api = await build(t)
  const admin = await api.adminToken()
  const manager = await api.userWithRole('manager')
  const user = await api.userWithRole('user')

  const created = await api.request({ method: 'POST', url: '/api/config/aws-accounts', headers: api.auth(admin), payload: ACCOUNT })
  t.equal(created.statusCode, 201)
  const { account, api_key: key } = created.json()
  t.match(key, /^cmk_[A-Za-z0-9_-]{43}$/, 'the ingestion key, shown once')
  t.equal(account.api_key_prefix, key.slice(0, 12))
  t.equal(created.headers.location, `/api/config/aws-accounts/${account.id}`)
  t.equal(created.headers.etag, '"v1"')
  t.match(account, { account_id: '123456789012', enabled: true, external_id: 'ops-7f3a9c', regions: ['us-east-1', 'eu-west-1'], last_connection_test: null })

  const read = await api.request({ method: 'GET', url: `/api/config/aws-accounts/${account.id}`, headers: api.auth(manager.token) })
  t.equal(read.statusCode, 200, 'managers may read')
  t.notMatch(read.body, new RegExp(key.slice(12)), 'the key never appears again')
  t.notMatch(read.body, /api_key_hash|hash/)
  t.equal((await api.request({ method: 'GET', url: '/api/config/aws-accounts', headers: api.auth(manager.token) })).json().items.length, 1)
  assertProblem(t, await api.request({ method: 'GET', url: '/api/config/aws-accounts', headers: api.auth(user.token) }), 403, 'forbidden')
  assertProblem(t, await api.request({ method: 'GET', url: `/api/config/aws-accounts/${account.id}`, headers: api.auth(user.token) }), 403, 'forbidden')
  assertProblem(t, await api.request({ method: 'POST', url: '/api/config/aws-accounts', headers: api.auth(manager.token), payload: { ...ACCOUNT, account_id: '210987654321' } }), 403, 'forbidden')
  assertProblem(t, await api.request({ method: 'PUT', url: `/api/config/aws-accounts/${account.id}`, headers: api.auth(manager.token), payload: { name: 'x' } }), 403, 'forbidden')
  assertProblem(t, await api.request({ method: 'DELETE', url: `/api/config/aws-accounts/${account.id}`, headers: api.auth(manager.token) }), 403, 'forbidden')
  assertProblem(t, await api.request({ method: 'POST', url: `/api/config/aws-accounts/${account.id}/rotate-key`, headers: api.auth(manager.token) }), 403, 'forbidden')
  assertProblem(t, await api.request({ method: 'POST', url: `/api/config/aws-accounts/${account.id}/test-connection`, headers: api.auth(manager.token) }), 403, 'forbidden')
  assertProblem(t, await api.request({ method: 'GET', url: '/api/config/aws-accounts' }), 401)

  // Validation.
  assertProblem(t, await api.request({ method: 'POST', url: '/api/config/aws-accounts', headers: api.auth(admin), payload: ACCOUNT }), 409, 'aws_account_exists')
  const bad: Array<[string, object]> = [
    ['11-digit account', { ...ACCOUNT, account_id: '12345678901' }],
    ['role ARN of another account', { ...ACCOUNT, account_id: '210987654321' }],
    ['not a role ARN', { ...ACCOUNT, account_id: '210987654321', role_arn: 'arn:aws:iam::210987654321:user/bob' }],
    ['bad region', { ...ACCOUNT, account_id: '210987654321', role_arn: 'arn:aws:iam::210987654321:role/R', regions: ['mars-1'] }],
    ['duplicate regions', { ...ACCOUNT, account_id: '210987654321', role_arn: 'arn:aws:iam::210987654321:role/R', regions: ['us-east-1', 'us-east-1'] }],
    ['short external id', { ...ACCOUNT, account_id: '210987654321', role_arn: 'arn:aws:iam::210987654321:role/R', external_id: 'x' }],
    ['mass assignment: api_key_prefix', { ...ACCOUNT, account_id: '210987654321', role_arn: 'arn:aws:iam::210987654321:role/R', api_key_prefix: 'cmk_mine' }],
    ['mass assignment: version', { ...ACCOUNT, account_id: '210987654321', role_arn: 'arn:aws:iam::210987654321:role/R', version: 7 }]
  ]
  for (const [name, payload] of bad) assertProblem(t, await api.request({ method: 'POST', url: '/api/config/aws-accounts', headers: api.auth(admin), payload }), 400, 'validation_failed', name)

  // Update with If-Match.
  const put = (payload: object, headers: Record<string, string> = {}) => api.request({ method: 'PUT', url: `/api/config/aws-accounts/${account.id}`, headers: { ...api.auth(admin), ...headers }, payload })
  const renamed = await put({ name: 'Prod (EU)', external_id: null, regions: ['eu-west-1'] }, { 'if-match': '"v1"' })
  t.equal(renamed.statusCode, 200)
  t.match(renamed.json(), { name: 'Prod (EU)', external_id: null, regions: ['eu-west-1'], version: 2 })
  assertProblem(t, await put({ name: 'stale' }, { 'if-match': '"v1"' }), 412, 'precondition_failed')
  assertProblem(t, await put({ role_arn: 'arn:aws:iam::999999999999:role/R' }), 400, 'validation_failed')
  assertProblem(t, await put({ account_id: '210987654321' }), 400, 'validation_failed')
  assertProblem(t, await put({}), 400, 'validation_failed')
  assertProblem(t, await api.request({ method: 'PUT', url: `/api/config/aws-accounts/${MISSING_ID}`, headers: api.auth(admin), payload: { name: 'x' } }), 404, 'not_found')

  // Filters and pagination.
  for (let i = 0; i < 5; i++) await createAccount(api, admin, { account_id: `20000000000${i}`, role_arn: `arn:aws:iam::20000000000${i}:role/R`, enabled: i % 2 === 0 })
  const seen: string[] = []
  let cursor: string | null = null
  do {
    const page: { items: Array<{ id: string }>, next_cursor: string | null } = (await api.request({ method: 'GET', url: `/api/config/aws-accounts?limit=2${cursor ? `&cursor=${cursor}` : ''}`, headers: api.auth(admin) })).json()
    seen.push(...page.items.map(a => a.id))
    cursor = page.next_cursor
  } while (cursor)
  t.equal(new Set(seen).size, 6, 'every account once')
  t.equal((await api.request({ method: 'GET', url: '/api/config/aws-accounts?enabled=false', headers: api.auth(admin) })).json().items.length, 2)

  // Delete: gone, and the number may be registered again.
  t.equal((await api.request({ method: 'DELETE', url: `/api/config/aws-accounts/${account.id}`, headers: api.auth(admin) })).statusCode, 204)
  assertProblem(t, await api.request({ method: 'GET', url: `/api/config/aws-accounts/${account.id}`, headers: api.auth(admin) }), 404, 'not_found')
  assertProblem(t, await api.request({ method: 'DELETE', url: `/api/config/aws-accounts/${account.id}`, headers: api.auth(admin) }), 404, 'not_found')
  t.equal((await api.request({ method: 'GET', url: '/api/config/aws-accounts?limit=100', headers: api.auth(admin) })).json().items.length, 5)
  t.equal((await api.request({ method: 'POST', url: '/api/config/aws-accounts', headers: api.auth(admin), payload: ACCOUNT })).statusCode, 201, 're-registered')
})

t.test('ingestion keys: rotation, disabling and deletion stop the old key at once', async t => {
  const api = await build(t)
  const admin = await api.adminToken()
  const { account, api_key: key } = await createAccount(api, admin)
  const ingest = (apiKey: string, id: string) => api.request({ method: 'POST', url: '/api/events/ingest', headers: { 'x-api-key': apiKey }, payload: envelope(id) })
  t.equal((await ingest(key, 'e-1')).statusCode, 202)

  const rotated = await api.request({ method: 'POST', url: `/api/config/aws-accounts/${account.id}/rotate-key`, headers: api.auth(admin) })
  t.equal(rotated.statusCode, 200)
  const next = rotated.json()
  t.not(next.api_key, key)
  t.equal(next.api_key_prefix, next.api_key.slice(0, 12))
  assertProblem(t, await ingest(key, 'e-2'), 401, 'invalid_api_key')
  t.equal((await ingest(next.api_key, 'e-3')).statusCode, 202, 'the new key works')

  t.equal((await api.request({ method: 'PUT', url: `/api/config/aws-accounts/${account.id}`, headers: api.auth(admin), payload: { enabled: false } })).statusCode, 200)
  assertProblem(t, await ingest(next.api_key, 'e-4'), 401, 'invalid_api_key', 'a disabled account does not ingest')
  await api.request({ method: 'PUT', url: `/api/config/aws-accounts/${account.id}`, headers: api.auth(admin), payload: { enabled: true } })
  t.equal((await ingest(next.api_key, 'e-5')).statusCode, 202)
  await api.request({ method: 'DELETE', url: `/api/config/aws-accounts/${account.id}`, headers: api.auth(admin) })
  assertProblem(t, await ingest(next.api_key, 'e-6'), 401, 'invalid_api_key', 'a deleted account\'s key is dead')
  assertProblem(t, await api.request({ method: 'POST', url: `/api/config/aws-accounts/${account.id}/rotate-key`, headers: api.auth(admin) }), 404, 'not_found')
})

t.test('ingestion keys are cached per process; once a revocation is answered, no instance accepts the old key', async t => {
  // DYNAMODB_ENDPOINT set: other processes may share the database (and cache keys for AUTH_CACHE_MS).
  const env = { DYNAMODB_ENDPOINT: (await database()).endpoint, TABLE_PREFIX: 'keys-' }
  const a = await build(t, env)
  const b = await build(t, env)
  const admin = await a.adminToken()
  const { account, api_key: key } = await createAccount(a, admin)
  const ingest = (api: Api, apiKey: string, id: string) => api.request({ method: 'POST', url: '/api/events/ingest', headers: { 'x-api-key': apiKey }, payload: envelope(id) })
  // B has seen (and cached) the key: its next delivery reads nothing to authenticate.
  t.equal((await ingest(b, key, 'k-1')).statusCode, 202)
  const reads: string[] = []
  const name = 'count-key-reads'
  b.app.db.client.middlewareStack.add((next, context) => async (args) => {
    const input = args.input as { TableName?: string, Key?: { pk?: { S?: string } } }
    if (context.commandName === 'GetItemCommand' && String(input.Key?.pk?.S ?? '').startsWith('apikey#')) reads.push(String(input.TableName))
    return next(args)
  }, { step: 'initialize', name })
  t.equal((await ingest(b, key, 'k-2')).statusCode, 202)
  t.same(reads, [], 'a cached key: no read of its claim')
  b.app.db.client.middlewareStack.remove(name)

  // Rotation on A answers once B's copy has expired: then B refuses the old key.
  let started = Date.now()
  const rotated = await a.request({ method: 'POST', url: `/api/config/aws-accounts/${account.id}/rotate-key`, headers: a.auth(admin) })
  t.equal(rotated.statusCode, 200)
  t.ok(Date.now() - started >= 990, 'rotation answers once other instances\' copies have expired')
  assertProblem(t, await ingest(b, key, 'k-3'), 401, 'invalid_api_key', 'rotated on A, refused on B')
  const next = rotated.json().api_key as string
  t.equal((await ingest(b, next, 'k-4')).statusCode, 202, 'the new key works on B')

  // Disabling and deleting likewise.
  started = Date.now()
  t.equal((await a.request({ method: 'PUT', url: `/api/config/aws-accounts/${account.id}`, headers: a.auth(admin), payload: { enabled: false } })).statusCode, 200)
  t.ok(Date.now() - started >= 990, 'disabling answers once other instances\' copies have expired')
  assertProblem(t, await ingest(b, next, 'k-5'), 401, 'invalid_api_key', 'disabled on A, refused on B')
  await a.request({ method: 'PUT', url: `/api/config/aws-accounts/${account.id}`, headers: a.auth(admin), payload: { enabled: true } })
  await new Promise(resolve => setTimeout(resolve, 1000))
  t.equal((await ingest(b, next, 'k-6')).statusCode, 202, 're-enabled: accepted again within AUTH_CACHE_MS')
  started = Date.now()
  t.equal((await a.request({ method: 'DELETE', url: `/api/config/aws-accounts/${account.id}`, headers: a.auth(admin) })).statusCode, 204)
  t.ok(Date.now() - started >= 990, 'deletion answers once other instances\' copies have expired')
  assertProblem(t, await ingest(b, next, 'k-7'), 401, 'invalid_api_key', 'deleted on A, refused on B')
})

t.test('connection test: STS success and failures (mocked), and a real unreachable endpoint', async t => {
  const api = await build(t)
  const admin = await api.adminToken()
  const { account } = await createAccount(api, admin)
  const sts = mockClient(STSClient)
  t.teardown(() => sts.restore())
  const eb = fakeEventBridge(t, { 'us-east-1': healthy('us-east-1'), 'eu-west-1': healthy('eu-west-1') })
  const test = () => api.request({ method: 'POST', url: `/api/config/aws-accounts/${account.id}/test-connection`, headers: api.auth(admin) })

  sts.on(AssumeRoleCommand).resolves({ Credentials: { AccessKeyId: 'ASIAEXAMPLE', SecretAccessKey: 'secret', SessionToken: 'token', Expiration: new Date() } })
  sts.on(GetCallerIdentityCommand).resolves({ Account: '123456789012', Arn: 'arn:aws:sts::123456789012:assumed-role/MonitoringReadOnly/cloud-monitoring-connection-test', UserId: 'AROA:x' })
  const ok = await test()
  t.equal(ok.statusCode, 200)
  t.match(ok.json(), { ok: true, arn: /assumed-role\/MonitoringReadOnly/ })
  t.match(ok.json().checks.slice(0, 2), [{ name: 'assume_role', ok: true }, { name: 'get_caller_identity', ok: true }])
  const assumeCall = sts.commandCalls(AssumeRoleCommand)[0]!
  t.match(assumeCall.args[0].input, { RoleArn: ACCOUNT.role_arn, ExternalId: ACCOUNT.external_id }, 'the stored external id is sent')
  const saved = (await api.request({ method: 'GET', url: `/api/config/aws-accounts/${account.id}`, headers: api.auth(admin) })).json()
  t.match(saved.last_connection_test, { ok: true }, 'the result is kept on the account')

  sts.reset()
  sts.on(AssumeRoleCommand).rejects(Object.assign(new Error('User is not authorized to perform: sts:AssumeRole'), { name: 'AccessDenied' }))
  const denied = await test()
  t.equal(denied.statusCode, 200, 'an AWS-side failure is not a 5xx')
  t.match(denied.json(), { ok: false, error: /AccessDenied/, checks: [{ name: 'assume_role', ok: false, error: /not authorized/ }] })
  t.equal(denied.json().checks.length, 1, 'GetCallerIdentity is not attempted without credentials')
  t.equal(eb.calls.length, 6, 'EventBridge only after a successful GetCallerIdentity (the 6 calls of the first test)')

  sts.reset()
  sts.on(AssumeRoleCommand).resolves({ Credentials: { AccessKeyId: 'ASIAEXAMPLE', SecretAccessKey: 'secret', SessionToken: 'token', Expiration: new Date() } })
  sts.on(GetCallerIdentityCommand).resolves({ Account: '999999999999', Arn: 'arn:aws:sts::999999999999:assumed-role/Other/x' })
  const foreign = (await test()).json()
  t.match(foreign, { ok: false, error: /belongs to account 999999999999/ }, 'a role in another account is refused')
  t.same(foreign.checks.map((c: { name: string }) => c.name), ['assume_role', 'get_caller_identity'], 'and its EventBridge is not checked')

  sts.reset()
  sts.on(AssumeRoleCommand).rejects(Object.assign(new Error('connect ETIMEDOUT'), { name: 'TimeoutError' }))
  t.match((await test()).json(), { ok: false, checks: [{ name: 'assume_role', ok: false }] })
  sts.restore()

  // For real: an STS endpoint nobody listens on (loopback, closed port), with static credentials.
  process.env.AWS_ACCESS_KEY_ID = 'AKIAEXAMPLE'
  process.env.AWS_SECRET_ACCESS_KEY = 'example'
  t.teardown(() => { delete process.env.AWS_ACCESS_KEY_ID; delete process.env.AWS_SECRET_ACCESS_KEY })
  const real = await build(t, { AWS_STS_ENDPOINT: 'http://127.0.0.1:9' })
  const realAdmin = await real.adminToken()
  const { account: realAccount } = await createAccount(real, realAdmin)
  const started = Date.now()
  const res = await real.request({ method: 'POST', url: `/api/config/aws-accounts/${realAccount.id}/test-connection`, headers: real.auth(realAdmin) })
  t.equal(res.statusCode, 200)
  t.match(res.json(), { ok: false, checks: [{ name: 'assume_role', ok: false }] })
  t.ok(Date.now() - started < 6000, `answers within seconds (${Date.now() - started} ms)`)
  assertProblem(t, await real.request({ method: 'POST', url: `/api/config/aws-accounts/${MISSING_ID}/test-connection`, headers: real.auth(realAdmin) }), 404, 'not_found')
})

// ---- the EventBridge wiring of the member stack, per region (mocked AWS) ----

const BASE_URL = 'https://monitoring.example.com'
const RULE_ARN = (region: string) => `arn:aws:events:${region}:123456789012:rule/${MEMBER_WIRING.ruleName}`
const DESTINATION_ARN = (region: string) => `arn:aws:events:${region}:123456789012:api-destination/${MEMBER_WIRING.apiDestinationName}/0b7c5a6e-1111-4a4a-9a9a-123456789abc`

/** What one region holds: each part an answer, or the error its call throws. */
interface Wiring {
  rule: object | Error
  targets: Array<{ Id: string, Arn: string }> | Error
  destination: object | Error
}

const awsError = (name: string, message: string): Error => Object.assign(new Error(message), { name, $fault: 'client', $metadata: { httpStatusCode: 400 } })
const notFound = (what: string) => awsError('ResourceNotFoundException', `${what} does not exist.`)
const accessDenied = (action: string) => awsError('AccessDeniedException', `User: arn:aws:sts::123456789012:assumed-role/MonitoringReadOnly/cloud-monitoring-connection-test is not authorized to perform: ${action}`)

/** The member stack as deployed with ServiceUrl=`base`. */
function healthy (region: string, base = BASE_URL): Wiring {
  return {
    rule: { Name: MEMBER_WIRING.ruleName, Arn: RULE_ARN(region), State: 'ENABLED', EventBusName: 'default' },
    targets: [{ Id: 'Target0', Arn: DESTINATION_ARN(region) }],
    destination: {
      Name: MEMBER_WIRING.apiDestinationName,
      ApiDestinationArn: DESTINATION_ARN(region),
      ApiDestinationState: 'ACTIVE',
      ConnectionArn: `arn:aws:events:${region}:123456789012:connection/${MEMBER_WIRING.connectionName}/5f1e`,
      InvocationEndpoint: `${base}/api/events/ingest`,
      HttpMethod: 'POST',
      InvocationRateLimitPerSecond: 300
    }
  }
}

/**
 * Mocks EventBridge: each call answers from `world[<the client's region>]` (a region not in it
 * has nothing deployed) and records its region, input and credentials.
 */
function fakeEventBridge (t: Test, world: Record<string, Partial<Wiring>>) {
  const eb = mockClient(EventBridgeClient)
  t.teardown(() => eb.restore())
  const calls: Array<{ command: string, region: string, input: any, accessKeyId: string }> = []
  const answer = (command: string, part: keyof Wiring) => async (input: any, getClient: () => EventBridgeClient) => {
    const client = getClient()
    const region = await client.config.region()
    calls.push({ command, region, input, accessKeyId: (await client.config.credentials()).accessKeyId })
    const value = world[region]?.[part] ?? notFound(part === 'destination' ? `Failed to describe the api-destination(s). An api-destination '${MEMBER_WIRING.apiDestinationName}'` : `Rule ${MEMBER_WIRING.ruleName}`)
    if (value instanceof Error) throw value
    return part === 'targets' ? { Targets: value } : value
  }
  eb.on(DescribeRuleCommand).callsFake(answer('DescribeRule', 'rule'))
  eb.on(ListTargetsByRuleCommand).callsFake(answer('ListTargetsByRule', 'targets'))
  eb.on(DescribeApiDestinationCommand).callsFake(answer('DescribeApiDestination', 'destination'))
  return { calls, set: (next: Record<string, Partial<Wiring>>) => { for (const k of Object.keys(world)) delete world[k]; Object.assign(world, next) } }
}

interface CheckOut { name: string, region?: string, ok: boolean, error?: string, note?: string }
/** `name@region:ok|FAIL` per check, to compare whole results at a glance. */
const summary = (checks: CheckOut[]): string[] => checks.map(c => `${c.name}${c.region ? `@${c.region}` : ''}:${c.ok ? 'ok' : 'FAIL'}`)
const STS_OK = ['assume_role:ok', 'get_caller_identity:ok']
const GREEN = (region: string) => [`eventbridge_rule@${region}:ok`, `eventbridge_target@${region}:ok`, `api_destination@${region}:ok`]

t.test('connection test: the EventBridge wiring of every region (mocked)', async t => {
  // With a trailing slash: compared as <base>/api/events/ingest all the same.
  const api = await build(t, { PUBLIC_BASE_URL: `${BASE_URL}/` })
  const admin = await api.adminToken()
  const { account } = await createAccount(api, admin)
  const sts = mockClient(STSClient)
  t.teardown(() => sts.restore())
  sts.on(AssumeRoleCommand).resolves({ Credentials: { AccessKeyId: 'ASIAASSUMED', SecretAccessKey: 'secret', SessionToken: 'token', Expiration: new Date() } })
  sts.on(GetCallerIdentityCommand).resolves({ Account: '123456789012', Arn: 'arn:aws:sts::123456789012:assumed-role/MonitoringReadOnly/cloud-monitoring-connection-test' })
  const eb = fakeEventBridge(t, {})
  const run = async (world: Record<string, Partial<Wiring>>) => {
    eb.set(world)
    eb.calls.length = 0
    const res = await api.request({ method: 'POST', url: `/api/config/aws-accounts/${account.id}/test-connection`, headers: api.auth(admin) })
    t.equal(res.statusCode, 200, 'always 200 (the body conforms to the spec: api.request checks it)')
    return res.json() as { ok: boolean, error?: string, arn?: string, checks: CheckOut[] }
  }

  await t.test('all green in both regions', async t => {
    const r = await run({ 'us-east-1': healthy('us-east-1'), 'eu-west-1': healthy('eu-west-1') })
    t.equal(r.ok, true)
    t.notOk(r.error)
    t.match(r.arn, /assumed-role/)
    t.same(summary(r.checks), [...STS_OK, ...GREEN('us-east-1'), ...GREEN('eu-west-1')], 'rule, target, destination per region, in the account\'s order')
    t.notOk(r.checks.some(c => c.note), 'nothing left unverified')
    t.same([...new Set(eb.calls.map(c => c.accessKeyId))], ['ASIAASSUMED'], 'with the assumed credentials')
    t.same([...new Set(eb.calls.map(c => c.region))].sort(), ['eu-west-1', 'us-east-1'], 'in each region the account lists')
    t.same(eb.calls.filter(c => c.command === 'DescribeRule').map(c => c.input), [{ Name: 'cloud-monitoring-events' }, { Name: 'cloud-monitoring-events' }], 'the member stack\'s rule, by name')
    t.match(eb.calls.find(c => c.command === 'ListTargetsByRule')!.input, { Rule: 'cloud-monitoring-events' })
    t.same(eb.calls.find(c => c.command === 'DescribeApiDestination')!.input, { Name: 'cloud-monitoring-ingest' })
    const saved = (await api.request({ method: 'GET', url: `/api/config/aws-accounts/${account.id}`, headers: api.auth(admin) })).json()
    t.same(saved.last_connection_test.checks, r.checks, 'kept on the account, with every check')
  })

  await t.test('rule missing (ResourceNotFoundException)', async t => {
    const r = await run({ 'us-east-1': { ...healthy('us-east-1'), rule: notFound(`Rule ${MEMBER_WIRING.ruleName}`) }, 'eu-west-1': healthy('eu-west-1') })
    t.equal(r.ok, false)
    t.same(summary(r.checks), [...STS_OK, 'eventbridge_rule@us-east-1:FAIL', 'api_destination@us-east-1:ok', ...GREEN('eu-west-1')], 'no target check without a rule; the destination is still read')
    t.match(r.checks[2], { name: 'eventbridge_rule', region: 'us-east-1', ok: false, error: /^ResourceNotFoundException: Rule cloud-monitoring-events does not exist/ })
    t.match(r.error, /^us-east-1: EventBridge rule cloud-monitoring-events: ResourceNotFoundException/)
    t.notOk(eb.calls.some(c => c.command === 'ListTargetsByRule' && c.region === 'us-east-1'))
  })

  await t.test('rule disabled', async t => {
    const r = await run({ 'us-east-1': { ...healthy('us-east-1'), rule: { Name: MEMBER_WIRING.ruleName, Arn: RULE_ARN('us-east-1'), State: 'DISABLED' } }, 'eu-west-1': healthy('eu-west-1') })
    t.equal(r.ok, false)
    t.same(summary(r.checks), [...STS_OK, 'eventbridge_rule@us-east-1:FAIL', 'eventbridge_target@us-east-1:ok', 'api_destination@us-east-1:ok', ...GREEN('eu-west-1')], 'a disabled rule\'s target is still checked')
    t.match(r.checks[2]!.error, /DISABLED, not ENABLED/)
    t.match(r.error, /^us-east-1: EventBridge rule cloud-monitoring-events: The rule is DISABLED/)
  })

  await t.test('the rule\'s target points elsewhere', async t => {
    const elsewhere = 'arn:aws:events:eu-west-1:123456789012:api-destination/someone-else/9d2c'
    const r = await run({ 'us-east-1': healthy('us-east-1'), 'eu-west-1': { ...healthy('eu-west-1'), targets: [{ Id: 'Target0', Arn: elsewhere }, { Id: 'Logs', Arn: 'arn:aws:logs:eu-west-1:123456789012:log-group:/aws/events/x' }] } })
    t.equal(r.ok, false)
    t.same(summary(r.checks), [...STS_OK, ...GREEN('us-east-1'), 'eventbridge_rule@eu-west-1:ok', 'eventbridge_target@eu-west-1:FAIL', 'api_destination@eu-west-1:ok'])
    const target = r.checks.find(c => c.name === 'eventbridge_target' && c.region === 'eu-west-1')!
    t.match(target.error, `No target of the rule is the API destination ${DESTINATION_ARN('eu-west-1')}`)
    t.match(target.error, elsewhere, 'names what it points at')
    t.match(r.error, /^eu-west-1: targets of rule cloud-monitoring-events: No target/)

    const none = await run({ 'us-east-1': healthy('us-east-1'), 'eu-west-1': { ...healthy('eu-west-1'), targets: [] } })
    t.match(none.checks.find(c => c.name === 'eventbridge_target' && c.region === 'eu-west-1'), { ok: false, error: /its targets: none/ }, 'a rule without targets')
  })

  await t.test('the destination delivers to another endpoint, or is inactive', async t => {
    const r = await run({ 'us-east-1': healthy('us-east-1', 'https://old.example.com'), 'eu-west-1': healthy('eu-west-1', 'HTTPS://Monitoring.Example.com') })
    t.equal(r.ok, false)
    t.same(summary(r.checks), [...STS_OK, 'eventbridge_rule@us-east-1:ok', 'eventbridge_target@us-east-1:ok', 'api_destination@us-east-1:FAIL', ...GREEN('eu-west-1')], 'the host is compared case-insensitively')
    t.match(r.checks[4]!.error, 'it delivers to https://old.example.com/api/events/ingest, not to https://monitoring.example.com/api/events/ingest')
    t.match(r.error, /^us-east-1: API destination cloud-monitoring-ingest: /)

    const inactive = await run({ 'us-east-1': healthy('us-east-1'), 'eu-west-1': { ...healthy('eu-west-1'), destination: { ...(healthy('eu-west-1').destination as object), ApiDestinationState: 'INACTIVE', HttpMethod: 'PUT' } } })
    t.match(inactive.checks.at(-1), { name: 'api_destination', region: 'eu-west-1', ok: false, error: /state is INACTIVE, not ACTIVE; its method is PUT, not POST/ })

    const missing = await run({ 'us-east-1': healthy('us-east-1'), 'eu-west-1': { rule: healthy('eu-west-1').rule, targets: [{ Id: 'Target0', Arn: 'arn:aws:sns:eu-west-1:123456789012:topic' }] } })
    t.same(summary(missing.checks).slice(5), ['eventbridge_rule@eu-west-1:ok', 'eventbridge_target@eu-west-1:FAIL', 'api_destination@eu-west-1:FAIL'], 'destination missing: the target is looked for by the destination\'s name')
    t.match(missing.checks.at(-1)!.error, /^ResourceNotFoundException/)
    t.match(missing.checks.at(-2)!.error, /API destination cloud-monitoring-ingest;/)
  })

  await t.test('access denied on the EventBridge calls, and a time-out', async t => {
    const denied = (): Partial<Wiring> => ({ rule: accessDenied('events:DescribeRule'), targets: accessDenied('events:ListTargetsByRule'), destination: accessDenied('events:DescribeApiDestination') })
    const r = await run({ 'us-east-1': denied(), 'eu-west-1': denied() })
    t.equal(r.ok, false)
    t.same(summary(r.checks), [...STS_OK, 'eventbridge_rule@us-east-1:FAIL', 'api_destination@us-east-1:FAIL', 'eventbridge_rule@eu-west-1:FAIL', 'api_destination@eu-west-1:FAIL'])
    t.match(r.checks[2]!.error, /^AccessDeniedException: .*not authorized to perform: events:DescribeRule/)
    t.match(r.checks[3]!.error, /events:DescribeApiDestination/)
    t.match(r.error, /^us-east-1: EventBridge rule cloud-monitoring-events: AccessDeniedException/)

    const slow = await run({ 'us-east-1': healthy('us-east-1'), 'eu-west-1': { ...healthy('eu-west-1'), targets: awsError('TimeoutError', 'Connection timed out after 5000 ms') } })
    t.match(slow.checks.find(c => c.name === 'eventbridge_target' && c.region === 'eu-west-1'), { ok: false, error: /^TimeoutError: / })
    t.equal(slow.ok, false)
  })

  await t.test('two regions, one broken', async t => {
    const r = await run({ 'us-east-1': healthy('us-east-1') })
    t.equal(r.ok, false)
    t.same(summary(r.checks), [...STS_OK, ...GREEN('us-east-1'), 'eventbridge_rule@eu-west-1:FAIL', 'api_destination@eu-west-1:FAIL'], 'the stack is not deployed in eu-west-1')
    t.ok(r.checks.filter(c => c.region === 'us-east-1').every(c => c.ok), 'the good region passes')
    t.match(r.error, /^eu-west-1: EventBridge rule cloud-monitoring-events: ResourceNotFoundException/)
  })
})

t.test('connection test: without PUBLIC_BASE_URL the endpoint is not verified; an account without regions is checked in the service\'s region', async t => {
  const api = await build(t, { AWS_REGION: 'eu-central-1' })
  const admin = await api.adminToken()
  const { account } = await createAccount(api, admin, { regions: [] })
  const sts = mockClient(STSClient)
  t.teardown(() => sts.restore())
  sts.on(AssumeRoleCommand).resolves({ Credentials: { AccessKeyId: 'ASIAASSUMED', SecretAccessKey: 'secret', SessionToken: 'token', Expiration: new Date() } })
  sts.on(GetCallerIdentityCommand).resolves({ Account: '123456789012', Arn: 'arn:aws:sts::123456789012:assumed-role/MonitoringReadOnly/cloud-monitoring-connection-test' })
  const eb = fakeEventBridge(t, { 'eu-central-1': healthy('eu-central-1', 'https://anything.example.net') })
  const res = await api.request({ method: 'POST', url: `/api/config/aws-accounts/${account.id}/test-connection`, headers: api.auth(admin) })
  t.equal(res.statusCode, 200)
  const r = res.json() as { ok: boolean, checks: CheckOut[] }
  t.equal(r.ok, true, 'not verified is not a failure')
  t.same(summary(r.checks), [...STS_OK, ...GREEN('eu-central-1')])
  t.match(r.checks[2]!.note, /lists no regions: checked the service's region eu-central-1/)
  t.match(r.checks[4]!.note, /^Endpoint not verified \(PUBLIC_BASE_URL is not set\): it delivers to https:\/\/anything\.example\.net\/api\/events\/ingest/)
  t.same([...new Set(eb.calls.map(c => c.region))], ['eu-central-1'])
})

t.test('monitoring settings: defaults, RBAC, partial update with If-Match', async t => {
  const api = await build(t)
  const admin = await api.adminToken()
  const manager = await api.userWithRole('manager')
  const user = await api.userWithRole('user')
  const get = (token: string) => api.request({ method: 'GET', url: '/api/config/monitoring', headers: api.auth(token) })
  const defaults = await get(manager.token)
  t.equal(defaults.statusCode, 200)
  t.match(defaults.json(), { enabled_sources: ['aws.cloudwatch', 'aws.guardduty', 'aws.securityhub', 'aws.health'], min_severity: 'info', cloudwatch_default_severity: 'medium', retention_days: 365, version: 1, updated_by: null })
  t.equal(defaults.headers.etag, '"v1"')
  assertProblem(t, await get(user.token), 403, 'forbidden')
  const put = (token: string, payload: object, headers: Record<string, string> = {}) => api.request({ method: 'PUT', url: '/api/config/monitoring', headers: { ...api.auth(token), ...headers }, payload })
  assertProblem(t, await put(manager.token, { min_severity: 'high' }), 403, 'forbidden')

  const updated = await put(admin, { min_severity: 'high', health_category_severities: { issue: 'critical', accountNotification: 'info', scheduledChange: 'low', investigation: 'high' } }, { 'if-match': '"v1"' })
  t.equal(updated.statusCode, 200)
  t.match(updated.json(), { min_severity: 'high', cloudwatch_default_severity: 'medium', retention_days: 365, version: 2, health_category_severities: { issue: 'critical' } })
  t.ok(updated.json().updated_by, 'who changed it')
  t.equal(updated.headers.etag, '"v2"')
  assertProblem(t, await put(admin, { retention_days: 30 }, { 'if-match': '"v1"' }), 412, 'precondition_failed')
  t.equal((await get(admin)).json().retention_days, 365, 'a stale write changes nothing')
  t.equal((await put(admin, { retention_days: 30 })).json().version, 3, 'without If-Match the update applies')

  for (const [name, payload] of [
    ['empty', {}],
    ['unknown source', { enabled_sources: ['aws.s3'] }],
    ['duplicate source', { enabled_sources: ['aws.health', 'aws.health'] }],
    ['bad severity', { min_severity: 'urgent' }],
    ['retention 0', { retention_days: 0 }],
    ['partial health map', { health_category_severities: { issue: 'high' } }],
    ['read-only version', { version: 9 }]
  ] as Array<[string, object]>) {
    assertProblem(t, await put(admin, payload), 400, 'validation_failed', name)
  }

  // Concurrent If-Match writers: exactly one wins.
  const v = String((await get(admin)).headers.etag)
  const racers = await Promise.all([1, 2, 3, 4].map(n => put(admin, { retention_days: 100 + n }, { 'if-match': v })))
  t.equal(racers.filter(r => r.statusCode === 200).length, 1)
  t.equal(racers.filter(r => r.statusCode === 412).length, 3)
})

t.test('review regressions: concurrent key rotations, concurrent settings edits without If-Match', async t => {
  const api = await build(t)
  const admin = await api.adminToken()
  const { account } = await createAccount(api, admin)
  const rotations = await Promise.all([1, 2].map(() => api.request({ method: 'POST', url: `/api/config/aws-accounts/${account.id}/rotate-key`, headers: api.auth(admin) })))
  const won = rotations.filter(r => r.statusCode === 200)
  t.equal(won.length, 1, 'one rotation wins')
  t.equal(rotations.filter(r => r.statusCode === 409).length, 1, 'the other is a 409, not a key that never works')
  t.equal((await api.request({ method: 'POST', url: '/api/events/ingest', headers: { 'x-api-key': won[0]!.json().api_key }, payload: envelope('rot-1') })).statusCode, 202, 'the returned key works')

  const edits = await Promise.all([
    api.request({ method: 'PUT', url: '/api/config/monitoring', headers: api.auth(admin), payload: { retention_days: 90 } }),
    api.request({ method: 'PUT', url: '/api/config/monitoring', headers: api.auth(admin), payload: { min_severity: 'low' } })
  ])
  t.same(edits.map(r => r.statusCode), [200, 200], 'edits of different fields without If-Match both apply')
  t.match((await api.request({ method: 'GET', url: '/api/config/monitoring', headers: api.auth(admin) })).json(), { retention_days: 90, min_severity: 'low' })
})

// ------------------------------------------------------------------------------ onboarding

type Json = Record<string, any>
const SERVICE_ACCOUNT = '111111111111'
const TEMPLATE_URL = 'https://cmc-templates.s3.eu-west-1.amazonaws.com/member/cloud-monitoring-member.json'
const onboardingOf = (api: Api, id: string, token: string | null) => api.request({ method: 'GET', url: `/api/config/aws-accounts/${id}/onboarding`, headers: token ? api.auth(token) : {} })

/** A fresh synthesis of the member stack, as the CDK app defines it (aws-cdk-lib, in this process). */
const freshMember = async (): Promise<Json> => Template.fromStack(defineMemberStack(new App({ context: await cdkContext() }), DEFAULT_MEMBER_ROLE_NAME)).toJSON()

/**
 * The returned template is the synthesised member stack: everything equal except the parameter
 * defaults, which carry `defaults` (and the others keep the synthesised ones, or none).
 */
function sameTemplateExceptDefaults (t: Test, returned: Json, fresh: Json, defaults: Record<string, string>): void {
  t.same(Object.keys(returned).sort(), Object.keys(fresh).sort(), 'the same sections')
  for (const section of ['Description', 'Metadata', 'Conditions', 'Resources', 'Outputs']) t.same(returned[section], fresh[section], `${section}: as synthesised`)
  t.same(Object.keys(returned.Parameters), Object.keys(fresh.Parameters), 'the same parameters, in order')
  for (const [name, p] of Object.entries(fresh.Parameters as Record<string, Json>)) {
    const { Default: got, ...rest } = returned.Parameters[name] as Json
    const { Default: synthesised, ...expected } = p
    t.same(rest, expected, `${name}: as synthesised but for its default`)
    if (name in defaults) t.equal(got, defaults[name], `${name}: the default is the account's value`)
    else t.same(got, synthesised, `${name}: the synthesised default (${String(synthesised)})`)
  }
}

t.test('onboarding: admin only; 401, 404 and 400 as the other {id} routes', async t => {
  const api = await build(t)
  const admin = await api.adminToken()
  const manager = await api.userWithRole('manager')
  const user = await api.userWithRole('user')
  const { account } = await createAccount(api, admin)
  t.equal((await onboardingOf(api, account.id, admin)).statusCode, 200, 'admin')
  assertProblem(t, await onboardingOf(api, account.id, manager.token), 403, 'forbidden', 'manager')
  assertProblem(t, await onboardingOf(api, account.id, user.token), 403, 'forbidden', 'user')
  assertProblem(t, await onboardingOf(api, account.id, null), 401, undefined, 'no token')
  assertProblem(t, await onboardingOf(api, MISSING_ID, admin), 404, 'not_found', 'unknown id')
  assertProblem(t, await onboardingOf(api, 'not-a-ulid', admin), 400, 'validation_failed', 'malformed id')
  t.equal((await api.request({ method: 'DELETE', url: `/api/config/aws-accounts/${account.id}`, headers: api.auth(admin) })).statusCode, 204)
  assertProblem(t, await onboardingOf(api, account.id, admin), 404, 'not_found', 'a deleted account')
})

t.test('onboarding: with the service fully configured, the member template for the account, links and commands', async t => {
  const api = await build(t, {
    SERVICE_AWS_ACCOUNT_ID: SERVICE_ACCOUNT,
    PUBLIC_BASE_URL: 'https://monitoring.example.com/',
    MEMBER_TEMPLATE_URL: TEMPLATE_URL,
    MEMBER_ROLE_NAME: 'MonitoringReadOnly'
  })
  const admin = await api.adminToken()
  const { account, api_key: key } = await createAccount(api, admin)
  const res = await onboardingOf(api, account.id, admin)
  t.equal(res.statusCode, 200)
  t.notOk(res.body.includes(key) || res.body.includes(key.slice(12)), 'the API key is nowhere in the answer')
  t.notOk('etag' in res.headers, 'a derived view: no ETag')
  const o = res.json() as Json

  t.match(o, { account_id: '123456789012', stack_name: 'cloud-monitoring-member', role_arn: 'arn:aws:iam::123456789012:role/MonitoringReadOnly', role_arn_matches: true, template_url: TEMPLATE_URL, missing: [], notes: [] })
  const values = Object.fromEntries((o.parameters as Json[]).map(p => [p.name, p.value]))
  t.same(values, { ServiceAccountId: SERVICE_ACCOUNT, ExternalId: 'ops-7f3a9c', RoleName: 'MonitoringReadOnly', CreateRole: 'true', ServiceUrl: 'https://monitoring.example.com', ApiKey: null, InvocationRateLimitPerSecond: '300' })
  t.same((o.parameters as Json[]).filter(p => p.secret).map(p => p.name), ['ApiKey'], 'only the API key is secret')

  // The returned template is the member stack, synthesised afresh here, with the account's defaults.
  const fresh = await freshMember()
  t.equal(fresh.Parameters.ApiKey.NoEcho, true, 'ApiKey is NoEcho')
  t.notOk('Default' in fresh.Parameters.ApiKey, 'and has no default')
  sameTemplateExceptDefaults(t, o.template, fresh, { ServiceAccountId: SERVICE_ACCOUNT, ExternalId: 'ops-7f3a9c', RoleName: 'MonitoringReadOnly', ServiceUrl: 'https://monitoring.example.com' })
  t.notOk('Default' in o.template.Parameters.ApiKey, 'never a default for the key')

  // One quick-create link per region, CreateRole=true in the first only; parsed back.
  t.same(o.regions.map((r: Json) => [r.region, r.create_role]), [['us-east-1', true], ['eu-west-1', false]])
  for (const r of o.regions as Json[]) {
    const url = new URL(r.quick_create_url)
    t.equal(url.origin, `https://${r.region}.console.aws.amazon.com`)
    t.equal(url.pathname, '/cloudformation/home')
    t.equal(url.searchParams.get('region'), r.region)
    const [route, query] = url.hash.slice(1).split('?') as [string, string]
    t.equal(route, '/stacks/create/review')
    const q = new URLSearchParams(query)
    t.same([...q.keys()], ['templateURL', 'stackName', 'param_ServiceAccountId', 'param_ExternalId', 'param_RoleName', 'param_CreateRole', 'param_ServiceUrl', 'param_InvocationRateLimitPerSecond'], `${r.region}: every parameter but the key`)
    t.match(Object.fromEntries(q), {
      templateURL: TEMPLATE_URL,
      stackName: 'cloud-monitoring-member',
      param_ServiceAccountId: SERVICE_ACCOUNT,
      param_ExternalId: 'ops-7f3a9c',
      param_RoleName: 'MonitoringReadOnly',
      param_CreateRole: String(r.create_role),
      param_ServiceUrl: 'https://monitoring.example.com'
    }, `${r.region}: the values survive the encoding`)
    t.notMatch(query, /ApiKey/, 'no ApiKey in a link')
    t.notMatch(query, /[ :/]/, 'the values are percent-encoded')
  }

  const deploy = (o.commands.deploy as string).split('\n').filter(l => !l.startsWith('#'))
  t.equal(deploy.length, 2, 'one deploy per region')
  t.match(deploy[0], /^aws cloudformation deploy --region us-east-1 --stack-name cloud-monitoring-member --template-file cloud-monitoring-member\.json --capabilities CAPABILITY_NAMED_IAM --parameter-overrides ServiceAccountId=111111111111 ExternalId=ops-7f3a9c RoleName=MonitoringReadOnly ServiceUrl=https:\/\/monitoring\.example\.com 'ApiKey=<paste the API key>' CreateRole=true$/)
  t.match(deploy[1], /--region eu-west-1 .* CreateRole=false$/)
  const stackSet = (o.commands.stack_set as string).split('\n').filter(l => !l.startsWith('#'))
  t.match(stackSet[0], /^aws cloudformation create-stack-set .*--permission-model SERVICE_MANAGED .*--template-url https:\/\/cmc-templates/)
  t.equal(stackSet.filter(l => l.startsWith('aws cloudformation create-stack-instances')).length, 2, 'instances per region')
  t.match(stackSet[1], /Accounts=123456789012,.* --regions us-east-1 .*ParameterKey=ExternalId,ParameterValue=ops-7f3a9c 'ParameterKey=ApiKey,ParameterValue=<paste the API key>' ParameterKey=CreateRole,ParameterValue=true$/)
  t.match(o.steps.join('\n'), /rotate the key/i, 'the steps say the key is shown once and to rotate it if lost')
})

t.test('onboarding: what the service cannot fill in is missing, with its reason, and there are no links', async t => {
  const api = await build(t, { PUBLIC_BASE_URL: 'http://monitoring.example.com', AWS_REGION: 'eu-central-1' })
  const admin = await api.adminToken()
  const { account } = await createAccount(api, admin, { external_id: undefined, regions: [] })
  const o = (await onboardingOf(api, account.id, admin)).json() as Json
  t.same(o.missing.map((m: Json) => m.parameter), ['ServiceAccountId', 'ExternalId', 'ServiceUrl', 'templateURL'])
  t.match(o.missing, [{ reason: /SERVICE_AWS_ACCOUNT_ID/ }, { reason: /external_id/ }, { reason: /not https/ }, { reason: /MEMBER_TEMPLATE_URL/ }])
  const values = Object.fromEntries((o.parameters as Json[]).map(p => [p.name, p.value]))
  t.match(values, { ServiceAccountId: null, ExternalId: null, ServiceUrl: null, RoleName: 'CloudMonitoringReadOnly', ApiKey: null })
  sameTemplateExceptDefaults(t, o.template, await freshMember(), {})
  for (const name of ['ServiceAccountId', 'ExternalId', 'ServiceUrl']) t.notOk('Default' in o.template.Parameters[name], `${name}: no default`)
  t.same(o.regions, [{ region: 'eu-central-1', create_role: true, quick_create_url: null }], 'no regions listed: the service\'s region, no link')
  t.match(o.notes, [/lists no regions/, /registered with role_arn arn:aws:iam::123456789012:role\/MonitoringReadOnly/])
  t.equal(o.role_arn_matches, false)
  t.equal(o.template_url, null)
  t.match(o.commands.deploy, /'ServiceAccountId=<ServiceAccountId>' 'ExternalId=<ExternalId>' RoleName=CloudMonitoringReadOnly 'ServiceUrl=<ServiceUrl>' 'ApiKey=<paste the API key>' CreateRole=true/)
  t.match(o.commands.stack_set, /--template-body file:\/\/cloud-monitoring-member\.json/)

  // Unset PUBLIC_BASE_URL; every value but the template URL: still no links.
  const bare = await build(t, { SERVICE_AWS_ACCOUNT_ID: SERVICE_ACCOUNT })
  const bareAdmin = await bare.adminToken()
  const created = await createAccount(bare, bareAdmin)
  const b = (await onboardingOf(bare, created.account.id, bareAdmin)).json() as Json
  t.match(b.missing, [{ parameter: 'ServiceUrl', reason: /PUBLIC_BASE_URL/ }, { parameter: 'templateURL' }])
  t.ok(b.regions.every((r: Json) => r.quick_create_url === null), 'no links while anything is missing')
  const complete = await build(t, { SERVICE_AWS_ACCOUNT_ID: SERVICE_ACCOUNT, PUBLIC_BASE_URL: 'https://m.example.com' })
  const completeAdmin = await complete.adminToken()
  const c = (await onboardingOf(complete, (await createAccount(complete, completeAdmin)).account.id, completeAdmin)).json() as Json
  t.same(c.missing.map((m: Json) => m.parameter), ['templateURL'], 'only the published template missing')
  t.ok(c.regions.every((r: Json) => r.quick_create_url === null), 'no links without MEMBER_TEMPLATE_URL')
})
