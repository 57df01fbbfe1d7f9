/**
 * Notifications (issue 19, first slice): channels, secrets, the test operation, URL safety.
 * Receivers are real HTTP servers on 127.0.0.1 started here; the signature is checked by a
 * verifier written from docs/notifications.md alone (it imports nothing of src/). Delivery of
 * changes (rules, the worker) is test/notification-delivery.test.ts.
 */
import t from 'tap'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { build, assertProblem, database, JWT_SECRET, ADMIN_EMAIL, ADMIN_PASSWORD, type Api } from './helper.js'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { ensureFirstAdmin } from '../src/modules/users/first-admin.js'
import { addressRefusal, checkChannelUrl } from '../src/domain/notifications.js'
import { spec } from './contract.js'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormatsModule from 'ajv-formats'
import { LOOPBACK, MISSING_ID, createChannel, documentedVerifier, receiver, verify } from './notify-receivers.js'

/** A self-signed certificate for localhost/127.0.0.1 (test only): no client trusts it. */
const SELF_SIGNED = {
  cert: `-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUPOtRkdNGfpGIjv6Y5IxVySeIuCMwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwNzAxNDgyNFoYDzIxMjYxMTEz
MDE0ODI0WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAQ/7G9oDR+iwHprfW0Lp9Ev3AxnW4osIbNHAz2PzHYiKLTLU3yEDIw7
BiC0ijV/izxIvhe5MS76nxjQgyNtHnAvo28wbTAdBgNVHQ4EFgQUzuVOjiVsUiCW
wnjD3uTuhMasdJUwHwYDVR0jBBgwFoAUzuVOjiVsUiCWwnjD3uTuhMasdJUwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDSAAwRQIhAIIaUj/Q3iSNmanS7Jms91OJ9Rao371cWEnLBskY7iUkAiAp
zAfND/zoqntwCORhlLUro9uK4Nx5FQp3z6LSYl3f7g==
-----END CERTIFICATE-----`,
  key: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg301gbDArHjne2jR4
K0ltMT+eVEhiAk9PdDa+QSDZS3mhRANCAAQ/7G9oDR+iwHprfW0Lp9Ev3AxnW4os
IbNHAz2PzHYiKLTLU3yEDIw7BiC0ijV/izxIvhe5MS76nxjQgyNtHnAv
-----END PRIVATE KEY-----`
}

const testOp = (api: Api, token: string, id: string) => api.request({ method: 'POST', url: `/api/config/notification-channels/${id}/test`, headers: api.auth(token) })

t.test('channels: CRUD, roles, validation, ETags; the secret is shown once', async t => {
  const api = await build(t, LOOPBACK)
  const admin = await api.adminToken()
  const manager = await api.userWithRole('manager')
  const user = await api.userWithRole('user')
  const base = '/api/config/notification-channels'

  const created = await api.request({ method: 'POST', url: base, headers: api.auth(admin), payload: { name: 'Bridge', type: 'webhook', url: 'https://hooks.example.com/cm' } })
  t.equal(created.statusCode, 201)
  const { channel, signing_secret: secret } = created.json()
  t.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/, 'a Standard Webhooks secret of 32 bytes')
  t.equal(Buffer.from(secret.slice(6), 'base64').length, 32)
  t.equal(channel.secret_prefix, secret.slice(0, 12))
  t.equal(created.headers.location, `${base}/${channel.id}`)
  t.equal(created.headers.etag, '"v1"')
  t.equal(created.headers['cache-control'], 'no-store')
  t.match(channel, { name: 'Bridge', type: 'webhook', url: 'https://hooks.example.com/cm', enabled: true, last_test: null, version: 1 })

  const read = await api.request({ method: 'GET', url: `${base}/${channel.id}`, headers: api.auth(admin) })
  t.equal(read.statusCode, 200)
  t.equal(read.headers.etag, '"v1"')
  t.notOk(read.body.includes(secret.slice(12)), 'the secret never appears again (GET)')
  const listed = await api.request({ method: 'GET', url: base, headers: api.auth(admin) })
  t.equal(listed.json().items.length, 1)
  t.notOk(listed.body.includes(secret.slice(12)), 'nor in the list')
  t.notMatch(listed.body, /sealed|v1\.[0-9a-f]{8}\./, 'no sealed value either')

  // Roles: admin only.
  for (const who of [manager.token, user.token]) {
    assertProblem(t, await api.request({ method: 'GET', url: base, headers: api.auth(who) }), 403, 'forbidden')
    assertProblem(t, await api.request({ method: 'GET', url: `${base}/${channel.id}`, headers: api.auth(who) }), 403, 'forbidden')
    assertProblem(t, await api.request({ method: 'POST', url: base, headers: api.auth(who), payload: { name: 'x', type: 'webhook', url: 'https://hooks.example.com/x' } }), 403, 'forbidden')
    assertProblem(t, await api.request({ method: 'PUT', url: `${base}/${channel.id}`, headers: api.auth(who), payload: { name: 'x' } }), 403, 'forbidden')
    assertProblem(t, await api.request({ method: 'DELETE', url: `${base}/${channel.id}`, headers: api.auth(who) }), 403, 'forbidden')
    assertProblem(t, await api.request({ method: 'POST', url: `${base}/${channel.id}/rotate-secret`, headers: api.auth(who) }), 403, 'forbidden')
    assertProblem(t, await api.request({ method: 'POST', url: `${base}/${channel.id}/test`, headers: api.auth(who) }), 403, 'forbidden')
  }
  assertProblem(t, await api.request({ method: 'GET', url: base }), 401, 'token_invalid')
  assertProblem(t, await api.request({ method: 'POST', url: `${base}/${channel.id}/test` }), 401, 'token_invalid')

  // Validation: the schema, then the URL rules.
  const bad: Array<[string, object]> = [
    ['bad type', { name: 'x', type: 'email', url: 'https://hooks.example.com/x' }],
    ['unknown property', { name: 'x', type: 'webhook', url: 'https://hooks.example.com/x', secret: 'mine' }],
    ['mass assignment: version', { name: 'x', type: 'webhook', url: 'https://hooks.example.com/x', version: 9 }],
    ['not a URL', { name: 'x', type: 'webhook', url: 'hooks.example.com/x' }],
    ['ftp', { name: 'x', type: 'webhook', url: 'ftp://hooks.example.com/x' }],
    ['missing url', { name: 'x', type: 'webhook' }]
  ]
  for (const [what, payload] of bad) assertProblem(t, await api.request({ method: 'POST', url: base, headers: api.auth(admin), payload }), 400, 'validation_failed', what)
  const unsafe: Array<[string, string]> = [
    ['http to a public host', 'http://hooks.example.com/x'],
    ['user info', 'https://user:pass@hooks.example.com/x'],
    ['private 10/8', 'https://10.1.2.3/x'],
    ['private 192.168/16', 'https://192.168.0.10/x'],
    ['private 172.16/12', 'https://172.20.0.1/x'],
    ['metadata', 'https://169.254.169.254/latest/meta-data/'],
    ['shared 100.64/10', 'https://100.64.1.1/x'],
    ['0.0.0.0', 'https://0.0.0.0/x'],
    ['IPv6 unique local', 'https://[fd00:ec2::254]/x'],
    ['IPv6 link-local', 'https://[fe80::1]/x'],
    ['IPv4-mapped private', 'https://[::ffff:10.0.0.1]/x'],
    ['NAT64 of metadata', 'https://[64:ff9b::a9fe:a9fe]/x'],
    ['decimal IPv4 of 10.0.0.1', 'https://167772161/x'],
    ['single-label name', 'https://intranet/x'],
    ['.internal name', 'https://metadata.google.internal/x']
  ]
  for (const [what, url] of unsafe) {
    const res = await api.request({ method: 'POST', url: base, headers: api.auth(admin), payload: { name: 'x', type: 'webhook', url } })
    assertProblem(t, res, 400, 'unsafe_url', what)
    t.equal(res.json().errors?.[0]?.path, '/body/url', `${what}: the error names the URL`)
  }

  // PUT: partial, If-Match, URL rules again.
  const put = (payload: object, headers: Record<string, string> = {}, id = channel.id) => api.request({ method: 'PUT', url: `${base}/${id}`, headers: { ...api.auth(admin), ...headers }, payload })
  const renamed = await put({ name: 'Bridge (EU)', enabled: false }, { 'if-match': '"v1"' })
  t.equal(renamed.statusCode, 200)
  t.match(renamed.json(), { name: 'Bridge (EU)', enabled: false, version: 2, url: 'https://hooks.example.com/cm', secret_prefix: channel.secret_prefix })
  t.equal(renamed.headers.etag, '"v2"')
  assertProblem(t, await put({ name: 'stale' }, { 'if-match': '"v1"' }), 412, 'precondition_failed')
  assertProblem(t, await put({ url: 'https://127.0.0.1.example.com@10.0.0.1/' }), 400, 'unsafe_url')
  assertProblem(t, await put({ type: 'slack' }), 400, 'validation_failed')
  assertProblem(t, await put({}), 400, 'validation_failed')
  assertProblem(t, await put({ name: 'x' }, {}, MISSING_ID), 404, 'not_found')
  t.equal((await put({ url: 'https://hooks.example.com/other' })).json().url, 'https://hooks.example.com/other')

  // Pages, newest first.
  for (let i = 0; i < 4; i++) await createChannel(api, admin, { name: `c${i}`, type: 'webhook', url: `https://hooks.example.com/${i}` })
  const seen: string[] = []
  let cursor: string | null = null
  do {
    const page: { items: Array<{ id: string, name: string }>, next_cursor: string | null } = (await api.request({ method: 'GET', url: `${base}?limit=2${cursor ? `&cursor=${cursor}` : ''}`, headers: api.auth(admin) })).json()
    seen.push(...page.items.map(c => c.name))
    cursor = page.next_cursor
  } while (cursor)
  t.same(seen, ['c3', 'c2', 'c1', 'c0', 'Bridge (EU)'], 'every channel once, newest first')
  assertProblem(t, await api.request({ method: 'GET', url: `${base}?cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`, headers: api.auth(admin) }), 400, 'invalid_cursor')

  // Delete.
  t.equal((await api.request({ method: 'DELETE', url: `${base}/${channel.id}`, headers: api.auth(admin) })).statusCode, 204)
  assertProblem(t, await api.request({ method: 'GET', url: `${base}/${channel.id}`, headers: api.auth(admin) }), 404, 'not_found')
  assertProblem(t, await api.request({ method: 'DELETE', url: `${base}/${channel.id}`, headers: api.auth(admin) }), 404, 'not_found')
  assertProblem(t, await api.request({ method: 'POST', url: `${base}/${channel.id}/test`, headers: api.auth(admin) }), 404, 'not_found')
  assertProblem(t, await api.request({ method: 'POST', url: `${base}/${channel.id}/rotate-secret`, headers: api.auth(admin) }), 404, 'not_found')
})

t.test('loopback targets need NOTIFICATION_ALLOW_LOOPBACK, which never opens private ranges', async t => {
  const off = await build(t)
  const admin = await off.adminToken()
  for (const url of ['http://127.0.0.1:8080/x', 'https://127.0.0.1/x', 'https://localhost/x', 'http://localhost:9/x', 'https://[::1]/x', 'https://api.localhost/x']) {
    assertProblem(t, await off.request({ method: 'POST', url: '/api/config/notification-channels', headers: off.auth(admin), payload: { name: 'x', type: 'webhook', url } }), 400, 'unsafe_url', `${url} without the setting`)
  }
  const on = await build(t, LOOPBACK)
  const admin2 = await on.adminToken()
  for (const url of ['http://127.0.0.1:8080/x', 'http://localhost:9/x', 'https://[::1]/x']) {
    t.equal((await on.request({ method: 'POST', url: '/api/config/notification-channels', headers: on.auth(admin2), payload: { name: 'x', type: 'webhook', url } })).statusCode, 201, `${url} with the setting`)
  }
  for (const url of ['https://10.0.0.1/x', 'https://169.254.169.254/x', 'http://hooks.example.com/x', 'http://10.0.0.1/x']) {
    assertProblem(t, await on.request({ method: 'POST', url: '/api/config/notification-channels', headers: on.auth(admin2), payload: { name: 'x', type: 'webhook', url } }), 400, 'unsafe_url', `${url} even with the setting`)
  }
  t.throws(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET, NOTIFICATION_ALLOW_LOOPBACK: 'true' }), /NOTIFICATION_ALLOW_LOOPBACK/, 'never in production')
  t.throws(() => loadConfig({ NOTIFICATION_KEY: 'c2hvcnQ=' }), /NOTIFICATION_KEY/, 'a key must be 32 bytes of base64')

  // The address rules themselves, on the forms a URL parser does not normalise away.
  const refused = ['0.0.0.0', '10.255.255.255', '100.127.0.1', '127.0.0.1', '169.254.169.254', '172.31.255.255', '192.0.0.8', '192.0.2.1', '192.168.1.1', '198.19.0.1', '198.51.100.7', '203.0.113.9', '224.0.0.1', '240.0.0.1', '255.255.255.255',
    '::', '::1', 'fc00::1', 'fd00:ec2::254', 'fe80::1%eth0', 'ff02::1', '2001:db8::1', '::ffff:127.0.0.1', '::ffff:169.254.169.254', '64:ff9b::10.0.0.1', '2002:c0a8:0101::1', '::10.0.0.1']
  for (const a of refused) t.ok(addressRefusal(a, { allowLoopback: false }), `${a} refused: ${addressRefusal(a, { allowLoopback: false })}`)
  for (const a of ['93.184.216.34', '8.8.8.8', '172.32.0.1', '100.128.0.1', '2606:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808']) t.equal(addressRefusal(a, { allowLoopback: false }), null, `${a} allowed`)
  t.equal(addressRefusal('127.0.0.1', { allowLoopback: true }), null, 'loopback with the setting')
  t.equal(addressRefusal('::ffff:127.0.0.1', { allowLoopback: true }), null, 'mapped loopback with the setting')
  t.ok(addressRefusal('10.0.0.1', { allowLoopback: true }), 'private stays refused')
  t.throws(() => checkChannelUrl('https://[::ffff:a9fe:a9fe]/', { allowLoopback: true }), /metadata/, 'hex IPv4-mapped metadata address')
})

t.test('test notification to a webhook: signed as documented, verified independently; answers of every kind', async t => {
  const api = await build(t, LOOPBACK)
  const admin = await api.adminToken()
  let mode: 'ok' | 'fail' | 'slow' | 'echo' = 'ok'
  const other = await receiver(t)
  const hook = await receiver(t, (r, res) => {
    if (mode === 'ok') res.writeHead(200, { 'content-type': 'application/json' }).end('{"received":true}')
    else if (mode === 'fail') res.writeHead(500, { 'content-type': 'text/plain' }).end(`boom ${'x'.repeat(2000)}`)
    else if (mode === 'echo') res.writeHead(200).end(`headers ${JSON.stringify(r.headers)} body ${r.body}`)
    else setTimeout(() => { if (!res.destroyed) res.writeHead(200).end('late') }, 3000)
  })
  const { channel, signing_secret: secret } = await createChannel(api, admin, { name: 'Hook', type: 'webhook', url: `${hook.url}/incoming?team=ops` })

  const ok = await testOp(api, admin, channel.id)
  t.equal(ok.statusCode, 200)
  const result = ok.json()
  t.match(result, { ok: true, status_code: 200, response_excerpt: '{"received":true}' })
  t.ok(result.duration_ms >= 0)
  t.equal(hook.received.length, 1, 'delivered once')
  const got = hook.received[0]!
  t.equal(got.method, 'POST')
  t.equal(got.url, '/incoming?team=ops')
  t.equal(got.headers['content-type'], 'application/json')
  t.equal(got.headers['user-agent'], 'cloud-monitoring-webhooks/1')
  t.equal(got.headers['webhook-id'], result.message_id, 'the result names the webhook-id')
  t.ok(verify(secret!, got.headers, got.body), 'the documented verification accepts it')
  t.notOk(verify(secret!, got.headers, got.body.replace('test', 'tast')), 'a changed body is refused')
  t.notOk(verify(secret!, { ...got.headers, 'webhook-timestamp': String(Number(got.headers['webhook-timestamp']) - 301) }, got.body), 'an old timestamp is refused')
  t.notOk(verify('whsec_' + Buffer.alloc(32, 1).toString('base64'), got.headers, got.body), 'another secret is refused')
  const documented = await documentedVerifier(t)
  t.ok(documented(secret!, got.headers, got.body), 'the example of docs/notifications.md accepts it')
  t.notOk(documented(secret!, got.headers, `${got.body} `), 'and refuses a changed body')
  t.notOk(documented(secret!, { ...got.headers, 'webhook-timestamp': String(Math.floor(Date.now() / 1000) - 600) }, got.body), 'and an old timestamp')
  const payload = JSON.parse(got.body)
  t.match(payload, { version: 1, id: got.headers['webhook-id'], type: 'test', data: { channel_id: channel.id, channel_name: 'Hook' } })
  const ajv = new Ajv2020({ strict: false })
  ;(addFormatsModule as unknown as (a: Ajv2020) => void)(ajv)
  ajv.addSchema(spec, 'spec')
  const valid = ajv.validate({ $ref: 'spec#/components/schemas/WebhookNotification' }, payload)
  t.ok(valid, `the body matches WebhookNotification ${JSON.stringify(ajv.errors)}`)
  t.notOk(got.body.includes(secret!.slice(6)), 'the body carries no secret')
  const stored = (await api.request({ method: 'GET', url: `/api/config/notification-channels/${channel.id}`, headers: api.auth(admin) })).json()
  t.match(stored.last_test, { ok: true, status_code: 200 }, 'kept as last_test')

  mode = 'fail'
  const failed = (await testOp(api, admin, channel.id)).json()
  t.match(failed, { ok: false, status_code: 500, error_code: 'http_status' })
  t.ok(Buffer.byteLength(failed.response_excerpt) <= 512 && failed.response_excerpt.startsWith('boom'), 'the excerpt is bounded')

  mode = 'echo'
  const echoed = (await testOp(api, admin, channel.id)).json()
  t.equal(echoed.ok, true)
  t.notOk(echoed.response_excerpt.includes(secret!.slice(6, 30)), 'an echo of our request shows no secret')

  mode = 'slow'
  const slow = await testOp(api, admin, channel.id)
  t.equal(slow.statusCode, 200, 'a time-out is an answer, not a 5xx')
  t.match(slow.json(), { ok: false, status_code: null, error_code: 'timeout' })
  t.ok(slow.json().duration_ms >= 1400 && slow.json().duration_ms < 2900, `bounded by NOTIFICATION_TIMEOUT_MS (${slow.json().duration_ms} ms)`)

  // A redirect is reported, never followed.
  const redirecting = await receiver(t, (_r, res) => { res.writeHead(302, { location: `${other.url}/elsewhere` }).end() })
  const r = await createChannel(api, admin, { name: 'Moved', type: 'webhook', url: redirecting.url })
  const moved = (await testOp(api, admin, r.channel.id)).json()
  t.match(moved, { ok: false, status_code: 302, error_code: 'redirect' })
  t.match(moved.error_message, /elsewhere/)
  t.equal(other.received.length, 0, 'the redirect target got nothing')

  // A certificate the service cannot trust: a TLS failure, nothing sent.
  let tlsRequests = 0
  const tls = createHttpsServer(SELF_SIGNED, (_req, res) => { tlsRequests++; res.writeHead(204).end() })
  await new Promise<void>(resolve => tls.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { tls.closeAllConnections(); tls.close() })
  const untrusted = await createChannel(api, admin, { name: 'TLS', type: 'webhook', url: `https://127.0.0.1:${(tls.address() as AddressInfo).port}/hook` })
  const tlsResult = (await testOp(api, admin, untrusted.channel.id)).json()
  t.match(tlsResult, { ok: false, status_code: null, error_code: 'tls_error' })
  t.equal(tlsRequests, 0, 'no request reached the untrusted server')

  // Nobody listening.
  const closed = await createChannel(api, admin, { name: 'Closed', type: 'webhook', url: 'http://127.0.0.1:9/x' })
  t.match((await testOp(api, admin, closed.channel.id)).json(), { ok: false, status_code: null, error_code: 'connection_error' })
})

t.test('rotation: both signatures during the grace period, the new one first', async t => {
  const api = await build(t, LOOPBACK)
  const admin = await api.adminToken()
  const hook = await receiver(t)
  const { channel, signing_secret: old } = await createChannel(api, admin, { name: 'Rotating', type: 'webhook', url: hook.url })
  const rotated = await api.request({ method: 'POST', url: `/api/config/notification-channels/${channel.id}/rotate-secret`, headers: api.auth(admin) })
  t.equal(rotated.statusCode, 200)
  t.equal(rotated.headers['cache-control'], 'no-store')
  const { signing_secret: fresh, secret_prefix: prefix, previous_secret_expires_at: until } = rotated.json()
  t.not(fresh, old)
  t.equal(prefix, fresh.slice(0, 12))
  const hours = (Date.parse(until) - Date.now()) / 3600000
  t.ok(hours > 23.9 && hours <= 24, 'the previous secret signs for 24 hours')
  const after = (await api.request({ method: 'GET', url: `/api/config/notification-channels/${channel.id}`, headers: api.auth(admin) })).json()
  t.match(after, { secret_prefix: prefix, previous_secret_expires_at: until })
  t.notOk(JSON.stringify(after).includes(fresh.slice(12)), 'the new secret is not readable afterwards')

  t.equal((await testOp(api, admin, channel.id)).json().ok, true)
  const got = hook.received.at(-1)!
  const entries = String(got.headers['webhook-signature']).split(' ')
  t.equal(entries.length, 2, 'two signatures')
  t.ok(verify(fresh, { ...got.headers, 'webhook-signature': entries[0] }, got.body), 'the first is the new secret\'s')
  t.ok(verify(old!, { ...got.headers, 'webhook-signature': entries[1] }, got.body), 'the second the old one\'s')
  t.ok(verify(fresh, got.headers, got.body) && verify(old!, got.headers, got.body), 'receivers with either secret accept it')

  const slack = await createChannel(api, admin, { name: 'Slack', type: 'slack', url: 'https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX' })
  assertProblem(t, await api.request({ method: 'POST', url: `/api/config/notification-channels/${slack.channel.id}/rotate-secret`, headers: api.auth(admin) }), 409, 'conflict', 'a Slack channel has no signing secret')
})

t.test('Slack: the URL is a secret (masked, sealed); a test is a Block Kit message', async t => {
  const api = await build(t, LOOPBACK)
  const admin = await api.adminToken()
  let echo = false
  const slack = await receiver(t, (r, res) => { res.writeHead(200, { 'content-type': 'text/plain' }).end(echo ? `ok ${r.url}` : 'ok') })
  const secretPath = '/services/T0ABCDEF/B0GHIJKL/s3cr3tT0k3nV4lu3xyz'
  const created = await createChannel(api, admin, { name: 'On-call', type: 'slack', url: `${slack.url}${secretPath}` })
  t.notOk('signing_secret' in created, 'no signing secret for Slack')
  t.equal(created.channel.url, `http://127.0.0.1:${slack.port}/…3xyz`, 'masked: host and the last 4 characters')
  t.equal(created.channel.secret_prefix, null)
  const read = await api.request({ method: 'GET', url: `/api/config/notification-channels/${created.channel.id}`, headers: api.auth(admin) })
  t.notOk(read.body.includes('s3cr3tT0k3n'), 'the Slack URL is never returned')
  const item = await api.app.db.raw.getItem<Record<string, unknown>>(`${api.config.tablePrefix}notifications`, { pk: 'channel', sk: created.channel.id })
  t.notOk(JSON.stringify(item).includes('s3cr3tT0k3n'), 'nor stored in the clear')
  t.match(String(item?.url_sealed), /^v1\.[0-9a-f]{8}\./, 'stored sealed')

  const result = (await testOp(api, admin, created.channel.id)).json()
  t.match(result, { ok: true, status_code: 200, response_excerpt: 'ok' })
  t.notOk('message_id' in result)
  const got = slack.received[0]!
  t.equal(got.url, secretPath)
  t.notOk(got.headers['webhook-signature'], 'Slack gets no signature headers')
  const body = JSON.parse(got.body)
  t.type(body.text, 'string', 'a text fallback')
  t.match(body.text, /INFO/)
  t.ok(Array.isArray(body.blocks))
  t.same(body.blocks.map((b: { type: string }) => b.type), ['section', 'context'])
  t.same(body.blocks[0].fields.map((f: { text: string }) => f.text.split('\n')[0]), ['*Severity*', '*Account*', '*Region*'])

  echo = true
  const echoed = (await testOp(api, admin, created.channel.id)).json()
  t.equal(echoed.response_excerpt, 'ok [redacted]', 'a receiver that echoes the secret URL has it masked')
  echo = false

  // A new URL replaces the secret.
  const put = await api.request({ method: 'PUT', url: `/api/config/notification-channels/${created.channel.id}`, headers: api.auth(admin), payload: { url: `${slack.url}/services/T1/B1/an0th3rS3cr3tAbcd` } })
  t.equal(put.json().url, `http://127.0.0.1:${slack.port}/…Abcd`)
  await testOp(api, admin, created.channel.id)
  t.equal(slack.received.at(-1)!.url, '/services/T1/B1/an0th3rS3cr3tAbcd')
})

t.test('at send time: a name that resolves to a refused address is not called; a secret under another key is reported', async t => {
  const hook = await receiver(t)
  const prefix = `shared${Date.now()}-`
  const on = await build(t, { ...LOOPBACK, TABLE_PREFIX: prefix })
  const admin = await on.adminToken()
  const { channel } = await createChannel(on, admin, { name: 'Local', type: 'webhook', url: `http://localhost:${hook.port}/x` })
  // The same tables, served by an app without the loopback setting: `localhost` resolves to a loopback address, refused.
  const off = await build(t, { TABLE_PREFIX: prefix })
  const refused = await testOp(off, await off.adminToken(), channel.id)
  t.equal(refused.statusCode, 200)
  t.match(refused.json(), { ok: false, status_code: null, error_code: 'unsafe_address' })
  t.match(refused.json().error_message, /localhost resolves to/)
  t.equal(hook.received.length, 0, 'the receiver got nothing')

  // Another NOTIFICATION_KEY cannot open the stored secret: a clear answer, nothing sent.
  const rekeyed = await build(t, { ...LOOPBACK, TABLE_PREFIX: prefix, NOTIFICATION_KEY: Buffer.alloc(32, 7).toString('base64') })
  const token = await rekeyed.adminToken()
  t.match((await testOp(rekeyed, token, channel.id)).json(), { ok: false, error_code: 'secret_unavailable' })
  t.equal(hook.received.length, 0)
  const rotated = await rekeyed.request({ method: 'POST', url: `/api/config/notification-channels/${channel.id}/rotate-secret`, headers: rekeyed.auth(token) })
  t.equal(rotated.statusCode, 200, 'rotating gives a usable secret again')
  t.equal((await testOp(rekeyed, token, channel.id)).json().ok, true)
  t.equal(String(hook.received[0]!.headers['webhook-signature']).split(' ').length, 1, 'no grace for a secret nobody can use')
  t.ok(verify(rotated.json().signing_secret, hook.received[0]!.headers, hook.received[0]!.body))
})

t.test('secrets never reach the logs', async t => {
  const { endpoint } = await database()
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, done) { lines.push(String(chunk)); done() } })
  const config = loadConfig({ LOG_LEVEL: 'trace', RATE_LIMIT_MAX: '100000', AUTH_RATE_LIMIT_MAX: '100000', TABLE_PREFIX: `logs${Date.now()}-`, ADMIN_EMAIL, ADMIN_PASSWORD, ...LOOPBACK })
  const app = await buildApp(config, { jwtSecret: JWT_SECRET, dynamodbEndpoint: endpoint, logger: { stream } })
  await app.ready()
  t.teardown(() => app.close())
  await ensureFirstAdmin(app.repos.users, app.passwords, config.admin, app.stats)
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } })
  const auth = { authorization: `Bearer ${login.json().access_token}` }
  const hook = await receiver(t)
  const webhook = (await app.inject({ method: 'POST', url: '/api/config/notification-channels', headers: auth, payload: { name: 'L', type: 'webhook', url: hook.url } })).json()
  const slack = (await app.inject({ method: 'POST', url: '/api/config/notification-channels', headers: auth, payload: { name: 'S', type: 'slack', url: `${hook.url}/services/T9/B9/sl4ckS3cr3tL0gT3st` } })).json()
  const rotated = (await app.inject({ method: 'POST', url: `/api/config/notification-channels/${webhook.channel.id}/rotate-secret`, headers: auth })).json()
  await app.inject({ method: 'POST', url: `/api/config/notification-channels/${webhook.channel.id}/test`, headers: auth })
  await app.inject({ method: 'POST', url: `/api/config/notification-channels/${slack.channel.id}/test`, headers: auth })
  const log = lines.join('')
  t.ok(lines.length > 5, `${lines.length} log lines`)
  for (const secret of [webhook.signing_secret, rotated.signing_secret]) t.notOk(log.includes(secret.slice(6)), 'no signing secret in the logs')
  t.notOk(log.includes('sl4ckS3cr3t'), 'no Slack URL in the logs')
  t.notOk(/v1\.[0-9a-f]{8}\.[\w-]+\./.test(log), 'no sealed value in the logs')
})
