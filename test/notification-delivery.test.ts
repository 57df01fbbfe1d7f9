/**
 * Notifications (issue 19, second slice): delivery. Changes are made through the API (ingestion
 * with AWS's own EventBridge events from ../shared/aws-events, read at run time, never copied;
 * tasks as people work them), matched by rules, and delivered by the worker to real HTTP
 * receivers on 127.0.0.1: each kind once, signed as documented; retries and the dead state; a
 * burst as one digest; a worker process killed mid-delivery; the scheduled Lambda entry.
 */
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { build, assertProblem, database, JWT_SECRET } from './helper.js'
import { spec } from './contract.js'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormatsModule from 'ajv-formats'
import { LOOPBACK, MISSING_ID, createChannel, documentedVerifier, receiver, type Received } from './notify-receivers.js'

/** A real event from ../shared/aws-events (never copied into the repository), made ours. */
function realEvent (file: string, account: string, change: (e: any) => void = () => {}): any {
  const e = JSON.parse(readFileSync(new URL(`../../shared/aws-events/${file}`, import.meta.url), 'utf8'))
  e.id = randomUUID()
  e.account = account
  e.time = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')
  change(e)
  return e
}

const DELIVERY = { ...LOOPBACK, NOTIFICATION_POLL_MS: '0', NOTIFICATION_GROUP_WINDOW_MS: '0', NOTIFICATION_TIMEOUT_MS: '2000' }

async function deliverySetup (t: Test, env: Record<string, string> = {}) {
  const api = await build(t, { ...DELIVERY, ...env })
  const admin = await api.adminToken()
  const as = (token: string) => ({ headers: api.auth(token) })
  const call = async (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object, token = admin, expect?: number) => {
    const res = await api.request({ method, url, ...as(token), ...(payload ? { payload } : {}) })
    if (expect !== undefined && res.statusCode !== expect) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body.slice(0, 400)}`)
    return res
  }
  const rule = async (payload: object) => (await call('POST', '/api/config/notification-rules', payload, admin, 201)).json()
  const account = async (accountId: string) => {
    const res = await call('POST', '/api/config/aws-accounts', { account_id: accountId, name: `account ${accountId}`, role_arn: `arn:aws:iam::${accountId}:role/MonitoringReadOnly` }, admin, 201)
    return res.json().api_key as string
  }
  const ingest = async (key: string, body: object) => {
    const res = await api.app.inject({ method: 'POST', url: '/api/events/ingest', headers: { 'x-api-key': key }, payload: body })
    if (res.statusCode !== 202) throw new Error(`ingest: ${res.statusCode} ${res.body.slice(0, 400)}`)
    return res.json()
  }
  return { api, admin, call, rule, account, ingest, drain: () => api.app.notifier.drain() }
}

const bodies = (r: { received: Received[] }) => r.received.map(x => JSON.parse(x.body))
const typesOf = (r: { received: Received[] }) => bodies(r).map(b => b.type as string)

t.test('delivery: each kind of change notifies the channels its rules name, once', async t => {
  const { api, admin, call, rule, account, ingest, drain } = await deliverySetup(t)
  const verifyDoc = await documentedVerifier(t)
  const ajv = new Ajv2020({ strict: false })
  ;(addFormatsModule as unknown as (a: Ajv2020) => void)(ajv)
  ajv.addSchema(spec, 'spec')
  const hook = await receiver(t)
  const slack = await receiver(t, (_r, res) => { res.writeHead(200, { 'content-type': 'text/plain' }).end('ok') })
  const wh = await createChannel(api, admin, { name: 'Hook', type: 'webhook', url: `${hook.url}/hook` })
  const sl = await createChannel(api, admin, { name: 'Slack', type: 'slack', url: `${slack.url}/services/T000/B000/${'x'.repeat(24)}` })
  const acct = '210987654321'
  const key = await account(acct)
  const operator = await api.userWithRole('user')
  const other = await api.userWithRole('user')
  const adminId = (await call('GET', '/api/auth/me', undefined, admin, 200)).json().id as string

  await rule({ name: 'Findings, high and up', channel_ids: [wh.channel.id], kinds: ['event.created', 'event.reopened'], min_severity: 'high', sources: ['aws.guardduty'] })
  await rule({ name: 'Alarms', channel_ids: [wh.channel.id], kinds: ['event.created', 'event.resolved'], sources: ['aws.cloudwatch'], account_ids: [acct] })
  await rule({ name: 'Another account', channel_ids: [sl.channel.id], kinds: ['event.created'], account_ids: ['999999999999'] })
  await rule({ name: 'Tasks', channel_ids: [wh.channel.id, sl.channel.id], kinds: ['task.assigned', 'task.status_changed', 'task.commented'] })
  await rule({ name: 'Tasks again (same channel: still once)', channel_ids: [wh.channel.id], kinds: ['task.status_changed'] })
  await rule({ name: 'Disabled', enabled: false, channel_ids: [sl.channel.id], kinds: ['event.created', 'event.resolved', 'event.reopened'] })

  const step = async (label: string, expect: { hook: string[], slack: string[] }) => {
    const before = { hook: hook.received.length, slack: slack.received.length }
    await drain()
    await drain()
    t.same(typesOf(hook).slice(before.hook), expect.hook, `${label}: the webhook receives ${expect.hook.join(', ') || 'nothing'}`)
    t.equal(slack.received.length - before.slack, expect.slack.length, `${label}: Slack receives ${expect.slack.length}`)
  }

  // A medium GuardDuty finding: below the rule's minimum.
  const findingId = randomUUID().replace(/-/g, '')
  const finding = (severity: number) => realEvent('guardduty/gd-custodian-iam-tor-sample.json', acct, e => { e.detail.accountId = acct; e.detail.id = findingId; e.detail.severity = severity })
  const first = await ingest(key, finding(5))
  const eventId = first.results[0].event_id as string
  t.equal(first.results[0].action, 'created')
  await step('a medium finding', { hook: [], slack: [] })

  // A task from it, assigned: the event is acknowledged; the assignment notifies.
  const task = (await call('POST', `/api/events/${eventId}/create-task`, { assigned_to: operator.id }, admin, 201)).json()
  await step('a task created with an assignee', { hook: ['task.assigned'], slack: ['task.assigned'] })
  const assigned = bodies(hook).at(-1)
  t.match(assigned.data, { task: { id: task.id, assigned_to: operator.id, event_id: eventId }, change: { assigned_to: operator.id, by: adminId } })

  // The finding again, now high: the acknowledged event is reopened.
  t.equal((await ingest(key, finding(8))).results[0].action, 'updated')
  await step('a severity rise of an acknowledged event', { hook: ['event.reopened'], slack: [] })
  t.match(bodies(hook).at(-1).data.event, { id: eventId, severity: 'high', status: 'open', source: 'aws.guardduty', account_id: acct, occurrence_count: 2 })

  // The same finding once more at the same severity: an occurrence, not a notification.
  await ingest(key, finding(8))
  await step('another occurrence', { hook: [], slack: [] })

  // A CloudWatch alarm (AWS's documented example) goes to ALARM, then back to OK.
  const alarm = (state: 'ALARM' | 'OK') => realEvent('cloudwatch/cw-docs-single-metric-alarm.json', acct, e => {
    e.resources = [`arn:aws:cloudwatch:us-east-1:${acct}:alarm:ServerCpuTooHigh`]
    e.detail.state.value = state
    e.detail.previousState.value = state === 'OK' ? 'ALARM' : 'OK'
  })
  await ingest(key, alarm('ALARM'))
  await step('an alarm', { hook: ['event.created'], slack: [] })
  await ingest(key, alarm('OK'))
  await step('the alarm resolved', { hook: ['event.resolved'], slack: [] })
  t.match(bodies(hook).at(-1).data.event, { source: 'aws.cloudwatch', status: 'resolved' })

  // Task changes, as the people working it make them.
  await call('PUT', `/api/tasks/${task.id}/status`, { status: 'in_progress' }, operator.token, 200)
  await step('a status change (matched by two rules of the webhook)', { hook: ['task.status_changed'], slack: ['task.status_changed'] })
  t.match(bodies(hook).at(-1).data.change, { from_status: 'open', to_status: 'in_progress', by: operator.id })
  await call('POST', `/api/tasks/${task.id}/comments`, { body: 'Looking at the Tor exit node now.' }, other.token, 201)
  await step('a comment', { hook: ['task.commented'], slack: ['task.commented'] })
  t.match(bodies(hook).at(-1).data, { task: { created_by: adminId, assigned_to: operator.id }, change: { by: other.id, comment_excerpt: 'Looking at the Tor exit node now.' } })
  await call('PUT', `/api/tasks/${task.id}`, { title: 'Tor exit node calls' }, admin, 200)
  await step('a change of title', { hook: [], slack: [] })
  await call('PUT', `/api/tasks/${task.id}`, { assigned_to: other.id }, admin, 200)
  await step('a reassignment', { hook: ['task.assigned'], slack: ['task.assigned'] })

  // Every webhook delivery: signed (checked by the documented verifier), a valid body, no secret.
  for (const r of hook.received) {
    t.ok(verifyDoc(wh.signing_secret!, r.headers, r.body), `${JSON.parse(r.body).type}: the signature verifies`)
    const body = JSON.parse(r.body)
    t.equal(body.id, r.headers['webhook-id'], 'the body id is the webhook-id')
    t.ok(ajv.validate({ $ref: 'spec#/components/schemas/WebhookNotification' }, body), `${body.type}: matches WebhookNotification ${JSON.stringify(ajv.errors)}`)
    t.notOk(r.body.includes(wh.signing_secret!.slice(6)), 'no secret in the body')
  }
  t.equal(new Set(hook.received.map(r => r.headers['webhook-id'])).size, hook.received.length, 'one message per change')
  for (const r of slack.received) {
    const message = JSON.parse(r.body)
    t.ok(typeof message.text === 'string' && Array.isArray(message.blocks), 'Slack: a Block Kit message')
    t.notOk('webhook-signature' in r.headers, 'Slack messages are not signed')
  }

  // The delivery log: one entry per message, delivered at the first attempt.
  const log = await call('GET', `/api/config/notification-channels/${wh.channel.id}/deliveries?limit=100`, undefined, admin, 200)
  const entries = log.json().items
  t.equal(entries.length, hook.received.length, 'the log lists every message')
  t.ok(entries.every((e: any) => e.status === 'delivered' && e.attempts === 1 && e.last_status_code === 204 && e.notification_count === 1), 'all delivered at once')
  t.same(entries.map((e: any) => e.id).sort(), hook.received.map(r => r.headers['webhook-id']).sort(), 'its ids are the webhook-ids')
  const page = (await call('GET', `/api/config/notification-channels/${wh.channel.id}/deliveries?limit=2`, undefined, admin, 200)).json()
  t.equal(page.items.length, 2)
  t.ok(page.next_cursor, 'cursor pages')
  const next = (await call('GET', `/api/config/notification-channels/${wh.channel.id}/deliveries?limit=2&cursor=${page.next_cursor}`, undefined, admin, 200)).json()
  t.notSame(next.items[0].id, page.items[0].id)
  assertProblem(t, await call('GET', `/api/config/notification-channels/${MISSING_ID}/deliveries`), 404, 'not_found')
  const manager = await api.userWithRole('manager')
  assertProblem(t, await call('GET', `/api/config/notification-channels/${wh.channel.id}/deliveries`, undefined, manager.token), 403, 'forbidden')
  t.equal(hook.received.length, 7, 'seven changes notified the webhook, each once')
})

/** Drains until `done()` or `ms` pass (retries wait out their back-off between runs). */
async function drainUntil (drain: () => Promise<unknown>, done: () => boolean, ms = 20000): Promise<void> {
  const end = Date.now() + ms
  while (!done() && Date.now() < end) {
    await drain()
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}

t.test('delivery: retries with back-off and the same id, then delivered or dead; the log says which', async t => {
  const { api, admin, call, rule, drain } = await deliverySetup(t, { NOTIFICATION_RETRY_BASE_MS: '40', NOTIFICATION_MAX_ATTEMPTS: '3' })
  let calls = 0
  const flaky = await receiver(t, (_r, res) => { calls++; if (calls <= 2) res.writeHead(503, { 'retry-after': '0' }).end('busy'); else res.writeHead(204).end() })
  const broken = await receiver(t, (_r, res) => { res.writeHead(500).end('internal error') })
  const f = await createChannel(api, admin, { name: 'Flaky', type: 'webhook', url: `${flaky.url}/hook` })
  const b = await createChannel(api, admin, { name: 'Broken', type: 'webhook', url: `${broken.url}/hook` })
  await rule({ name: 'Status', channel_ids: [f.channel.id, b.channel.id], kinds: ['task.status_changed'] })
  const task = (await call('POST', '/api/tasks', { title: 'Rotate the keys', priority: 'high' }, admin, 201)).json()
  await call('PUT', `/api/tasks/${task.id}/status`, { status: 'closed' }, admin, 200)

  await drainUntil(drain, () => flaky.received.length >= 3 && broken.received.length >= 3)
  await drain()
  await new Promise(resolve => setTimeout(resolve, 400))
  await drain()
  t.equal(flaky.received.length, 3, 'the flaky receiver: two failures, then a success, and nothing after')
  t.equal(broken.received.length, 3, 'the broken receiver: the three attempts allowed, and nothing after')
  for (const r of [flaky, broken]) {
    t.equal(new Set(r.received.map(x => x.headers['webhook-id'])).size, 1, 'every attempt carries the same webhook-id')
    t.equal(new Set(r.received.map(x => x.body)).size, 1, 'and the same body')
  }
  const at = (r: typeof flaky) => r.received.map(x => Number(x.headers['webhook-timestamp']))
  t.ok(at(broken).every((s, i, all) => i === 0 || s >= all[i - 1]!), 'timestamps move forward')
  const entry = async (id: string) => (await call('GET', `/api/config/notification-channels/${id}/deliveries`, undefined, admin, 200)).json().items
  const [ok] = await entry(f.channel.id)
  t.match(ok, { status: 'delivered', attempts: 3, last_status_code: 204, last_error_code: null, last_error: null, next_attempt_at: null, type: 'task.status_changed', notification_count: 1 })
  const [dead] = await entry(b.channel.id)
  t.match(dead, { status: 'dead', attempts: 3, last_status_code: 500, last_error_code: 'http_status', next_attempt_at: null })
  t.match(dead.last_error, /500/)
})

t.test('delivery: retry waits grow exponentially, with jitter, bounded', async t => {
  const { retryDelayMs, retryAfterMs, MAX_RETRY_DELAY_MS } = await import('../src/domain/notification-delivery.js')
  const policy = { baseMs: 10_000 }
  t.equal(retryDelayMs(1, policy, () => 0), 5_000, 'half of the base at the least')
  t.equal(retryDelayMs(1, policy, () => 1), 10_000, 'the base at the most')
  t.equal(retryDelayMs(2, policy, () => 1), 40_000, '×4 per attempt')
  t.equal(retryDelayMs(3, policy, () => 0.5), 120_000)
  t.equal(retryDelayMs(20, policy, () => 1), MAX_RETRY_DELAY_MS, 'never more than 6 hours')
  const waits = new Set(Array.from({ length: 20 }, () => retryDelayMs(2, policy)))
  t.ok(waits.size > 1, 'jittered: senders do not come back in step')
  t.equal(retryAfterMs('7'), 7000)
  t.equal(retryAfterMs(new Date(Date.now() + 60_000).toUTCString()) !== null, true)
  t.equal(retryAfterMs('soon'), null)
  t.equal(retryAfterMs('999999999'), MAX_RETRY_DELAY_MS)
})

t.test('delivery: a burst of 1,000 events is one digest per channel, with counts', async t => {
  const { api, admin, rule, account, ingest, drain } = await deliverySetup(t)
  const hook = await receiver(t)
  const slack = await receiver(t, (_r, res) => { res.writeHead(200).end('ok') })
  const wh = await createChannel(api, admin, { name: 'Hook', type: 'webhook', url: `${hook.url}/hook` })
  const sl = await createChannel(api, admin, { name: 'Slack', type: 'slack', url: `${slack.url}/services/T1/B1/${'y'.repeat(24)}` })
  await rule({ name: 'Every new alarm', channel_ids: [wh.channel.id, sl.channel.id], kinds: ['event.created'] })
  const acct = '310987654321'
  const key = await account(acct)
  for (let batch = 0; batch < 10; batch++) {
    const events = Array.from({ length: 100 }, (_, i) => realEvent('cloudwatch/cw-docs-single-metric-alarm.json', acct, e => {
      e.resources = [`arn:aws:cloudwatch:us-east-1:${acct}:alarm:burst-${batch}-${i}`]
      e.detail.alarmName = `burst-${batch}-${i}`
      e.detail.state.value = 'ALARM'
    }))
    const res = await ingest(key, { events })
    t.equal(res.results.filter((r: any) => r.action === 'created').length, 100, `batch ${batch}: 100 new events`)
  }
  const report = await drain()
  t.equal(report.queued, 2000, 'queued once per event and channel')
  t.equal(hook.received.length, 1, 'the webhook receives one message')
  t.equal(slack.received.length, 1, 'Slack receives one message, not a flood')
  const digest = JSON.parse(hook.received[0]!.body)
  t.match(digest, { type: 'digest', data: { count: 1000, counts_by_type: { 'event.created': 1000 }, omitted: 950 } })
  t.equal(digest.data.notifications.length, 50, 'the first 50 listed')
  const bySeverity = Object.values(digest.data.counts_by_severity as Record<string, number>).reduce((a, b) => a + b, 0)
  t.equal(bySeverity, 1000, 'counted by severity')
  t.ok(Buffer.byteLength(hook.received[0]!.body) < 200_000, 'a bounded body')
  const message = JSON.parse(slack.received[0]!.body)
  t.match(message.text, /1000 notifications/, 'the Slack message summarises with counts')
  t.match(JSON.stringify(message.blocks), /and 995 more/, 'the five most important listed, the rest counted')
  await drain()
  t.equal(hook.received.length + slack.received.length, 2, 'nothing sent twice')
  const [entry] = (await api.request({ method: 'GET', url: `/api/config/notification-channels/${wh.channel.id}/deliveries`, headers: api.auth(admin) })).json().items
  t.match(entry, { type: 'digest', notification_count: 1000, status: 'delivered', summary: /^1000 notifications/ })
})

t.test('delivery: crash-safety — queuing twice is harmless, and a worker killed mid-delivery loses nothing', async t => {
  const { api, admin, call, rule, drain } = await deliverySetup(t)
  let hold = true
  let arrived: () => void = () => {}
  const firstArrival = new Promise<void>(resolve => { arrived = resolve })
  const hook = await receiver(t, (_r, res) => {
    arrived()
    if (!hold) res.writeHead(204).end()
  })
  const wh = await createChannel(api, admin, { name: 'Hook', type: 'webhook', url: `${hook.url}/hook` })
  await rule({ name: 'Comments', channel_ids: [wh.channel.id], kinds: ['task.commented'] })
  const task = (await call('POST', '/api/tasks', { title: 'Investigate', priority: 'medium' }, admin, 201)).json()

  // Killed after queuing, before removing the mark: the next run queues again and finds it taken.
  await call('POST', `/api/tasks/${task.id}/comments`, { body: 'first' }, admin, 201)
  const marked = await api.app.repos.tasks.withMarks(task.id)
  t.equal(marked?.marks.length, 1, 'the comment marked its task')
  const mark = marked!.marks[0]!
  const n = { type: 'task.commented' as const, occurred_at: new Date().toISOString(), data: { task: { id: task.id, title: 'x', status: 'open' as const, priority: 'medium' as const, assigned_to: null, created_by: task.created_by, event_id: null }, change: { by: null, from_status: null, to_status: null, assigned_to: null, comment_id: null, comment_excerpt: null }, console_url: null } }
  t.ok(await api.app.repos.notificationDeliveries.enqueue(wh.channel.id, `task#${task.id}#${mark}`, n, new Date().toISOString()), 'queued (the run that then died)')
  hold = false
  await drain()
  t.equal(hook.received.length, 1, 'delivered once, not twice')
  t.notOk((await api.app.repos.tasks.withMarks(task.id))?.marks.length, 'the mark is gone')

  // Killed while the receiver holds the request: the message is sent again, the same.
  hold = true
  await call('POST', `/api/tasks/${task.id}/comments`, { body: 'second' }, admin, 201)
  await call('POST', `/api/tasks/${task.id}/comments`, { body: 'third' }, admin, 201)
  const { endpoint } = await database()
  const before = hook.received.length
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/notify.ts'], {
    cwd: new URL('..', import.meta.url).pathname,
    env: {
      ...process.env,
      DYNAMODB_ENDPOINT: endpoint,
      TABLE_PREFIX: api.config.tablePrefix,
      JWT_SECRET,
      NOTIFICATION_ALLOW_LOOPBACK: 'true',
      NOTIFICATION_TIMEOUT_MS: '2000',
      NOTIFICATION_GROUP_WINDOW_MS: '0',
      LOG_LEVEL: 'silent'
    },
    stdio: 'ignore'
  })
  t.teardown(() => { child.kill('SIGKILL') })
  await Promise.race([firstArrival.then(() => new Promise(resolve => setTimeout(resolve, 50))), new Promise(resolve => setTimeout(resolve, 60000))])
  await new Promise<void>(resolve => {
    const waitFor = () => (hook.received.length > before ? resolve() : setTimeout(waitFor, 20))
    waitFor()
  })
  child.kill('SIGKILL')
  await new Promise(resolve => child.once('exit', resolve))
  t.equal(hook.received.length, before + 1, 'the worker was killed while the receiver held its request')
  const sent = hook.received[before]!
  hold = false
  // The next run waits out the dead worker's lease (3 × 2 s + 2 s), then sends the same message.
  await drainUntil(drain, () => hook.received.length > before + 1, 30000)
  await drain()
  const resent = hook.received.slice(before + 1)
  t.equal(resent.length, 1, 'sent again once')
  t.equal(resent[0]!.headers['webhook-id'], sent.headers['webhook-id'], 'with the same webhook-id (the receiver\'s idempotency key)')
  t.equal(resent[0]!.body, sent.body, 'and the same body')
  const body = JSON.parse(sent.body)
  const excerpts = body.type === 'digest' ? body.data.notifications.map((x: any) => x.data.change.comment_excerpt) : [body.data.change.comment_excerpt]
  t.same(excerpts.sort(), ['second', 'third'], 'both comments are in it: nothing lost')
  const processed = new Set(hook.received.map(r => r.headers['webhook-id']))
  t.equal(processed.size, 2, 'a receiver that drops repeated webhook-ids processes each message once')
  const log = (await call('GET', `/api/config/notification-channels/${wh.channel.id}/deliveries`, undefined, admin, 200)).json().items
  t.equal(log.length, 2)
  t.ok(log.every((e: any) => e.status === 'delivered'), 'both delivered')
})

t.test('the scheduled Lambda worker (src/lambda-notifications.ts) delivers what the API marked', async t => {
  const { api, admin, call, rule } = await deliverySetup(t)
  const hook = await receiver(t)
  const wh = await createChannel(api, admin, { name: 'Hook', type: 'webhook', url: `${hook.url}/hook` })
  await rule({ name: 'Assignments', channel_ids: [wh.channel.id], kinds: ['task.assigned'] })
  const someone = await api.userWithRole('user')
  await call('POST', '/api/tasks', { title: 'Check the alarm', assigned_to: someone.id }, admin, 201)
  const { endpoint } = await database()
  const saved = { ...process.env }
  t.teardown(() => { process.env = saved })
  Object.assign(process.env, { DYNAMODB_ENDPOINT: endpoint, TABLE_PREFIX: api.config.tablePrefix, JWT_SECRET, NOTIFICATION_ALLOW_LOOPBACK: 'true', NOTIFICATION_GROUP_WINDOW_MS: '0', LOG_LEVEL: 'silent' })
  const worker = await import('../src/lambda-notifications.js')
  t.teardown(() => worker.close())
  // Little time left: one run, then it returns what it did.
  const report = await worker.handler({ 'detail-type': 'Scheduled Event', source: 'aws.events' }, { getRemainingTimeInMillis: () => 100 })
  t.match(report, { runs: 1, queued: 1, sent: 1, delivered: 1 })
  t.equal(hook.received.length, 1, 'the receiver got the assignment')
  t.equal(JSON.parse(hook.received[0]!.body).type, 'task.assigned')
})
