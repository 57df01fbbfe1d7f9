/** Configuration (Phase 6): AWS accounts, ingestion keys, connection tests, monitoring settings. */
import t from 'tap'
import { mockClient } from 'aws-sdk-client-mock'
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts'
import { build, assertProblem, type Api } from './helper.js'

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

t.test('connection test: STS success and failures (mocked), and a real unreachable endpoint', async t => {
  const api = await build(t)
  const admin = await api.adminToken()
  const { account } = await createAccount(api, admin)
  const sts = mockClient(STSClient)
  t.teardown(() => sts.restore())
  const test = () => api.request({ method: 'POST', url: `/api/config/aws-accounts/${account.id}/test-connection`, headers: api.auth(admin) })

  sts.on(AssumeRoleCommand).resolves({ Credentials: { AccessKeyId: 'ASIAEXAMPLE', SecretAccessKey: 'secret', SessionToken: 'token', Expiration: new Date() } })
  sts.on(GetCallerIdentityCommand).resolves({ Account: '123456789012', Arn: 'arn:aws:sts::123456789012:assumed-role/MonitoringReadOnly/cloud-monitoring-connection-test', UserId: 'AROA:x' })
  const ok = await test()
  t.equal(ok.statusCode, 200)
  t.match(ok.json(), { ok: true, arn: /assumed-role\/MonitoringReadOnly/, checks: [{ name: 'assume_role', ok: true }, { name: 'get_caller_identity', ok: true }] })
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

  sts.reset()
  sts.on(AssumeRoleCommand).resolves({ Credentials: { AccessKeyId: 'ASIAEXAMPLE', SecretAccessKey: 'secret', SessionToken: 'token', Expiration: new Date() } })
  sts.on(GetCallerIdentityCommand).resolves({ Account: '999999999999', Arn: 'arn:aws:sts::999999999999:assumed-role/Other/x' })
  t.match((await test()).json(), { ok: false, error: /belongs to account 999999999999/ }, 'a role in another account is refused')

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
