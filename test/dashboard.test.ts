/** Dashboard (Phase 5): counters kept by the writes, equal to a recount after a mixed, concurrent workload. */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { build, assertProblem, type Api } from './helper.js'
import { recountStats } from '../src/modules/dashboard/recount.js'
import { count } from '../src/domain/stats.js'

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`./fixtures/events/${name}.json`, import.meta.url), 'utf8'))

async function account (api: Api, token: string, accountId = '123456789012') {
  const res = await api.request({ method: 'POST', url: '/api/config/aws-accounts', headers: api.auth(token), payload: { account_id: accountId, name: 'acct', role_arn: `arn:aws:iam::${accountId}:role/R` } })
  return res.json().api_key as string
}

let seq = 0
/** A CloudWatch alarm envelope for `alarm` in `state`, as a new delivery. */
function alarm (alarmName: string, state: 'ALARM' | 'OK', severity?: string) {
  const env = fixture(state === 'ALARM' ? 'cloudwatch-alarm' : 'cloudwatch-ok')
  env.id = `dash-${++seq}`
  env.time = new Date(Date.UTC(2026, 10, 25, 10, 0, seq)).toISOString()
  env.resources = [`arn:aws:cloudwatch:us-east-1:123456789012:alarm:${alarmName}`]
  env.detail.alarmName = alarmName
  if (severity) env.detail.configuration = { ...env.detail.configuration, description: `[severity:${severity}] ${alarmName}` }
  return env
}

t.test('RBAC and shapes', async t => {
  const api = await build(t)
  const admin = await api.adminToken()
  const manager = await api.userWithRole('manager')
  const user = await api.userWithRole('user')
  for (const url of ['/api/dashboard/overview', '/api/dashboard/events-stats', '/api/dashboard/tasks-stats']) {
    for (const token of [admin, manager.token, user.token]) t.equal((await api.request({ method: 'GET', url, headers: api.auth(token) })).statusCode, 200, url)
    assertProblem(t, await api.request({ method: 'GET', url }), 401)
  }
  t.equal((await api.request({ method: 'GET', url: '/api/dashboard/users-stats', headers: api.auth(manager.token) })).statusCode, 200)
  assertProblem(t, await api.request({ method: 'GET', url: '/api/dashboard/users-stats', headers: api.auth(user.token) }), 403, 'forbidden')
  const asUser = (await api.request({ method: 'GET', url: '/api/dashboard/overview', headers: api.auth(user.token) })).json()
  t.equal(asUser.users, null, 'users part only for admins and managers')
  const asManager = (await api.request({ method: 'GET', url: '/api/dashboard/overview', headers: api.auth(manager.token) })).json()
  t.same(asManager.users, { total: 3, active: 3 })
  const users = (await api.request({ method: 'GET', url: '/api/dashboard/users-stats', headers: api.auth(admin) })).json()
  t.same(users, { total: 3, active: 3, by_role: { admin: 1, manager: 1, user: 1 } })
  assertProblem(t, await api.request({ method: 'GET', url: '/api/dashboard/overview?x=1', headers: api.auth(admin) }), 400)
})

t.test('task statistics: counts, my open tasks, mean times', async t => {
  const api = await build(t)
  const admin = await api.adminToken()
  const worker = await api.userWithRole('user')
  const create = async (payload: object) => (await api.request({ method: 'POST', url: '/api/tasks', headers: api.auth(admin), payload })).json()
  const status = (id: string, s: string) => api.request({ method: 'PUT', url: `/api/tasks/${id}/status`, headers: api.auth(admin), payload: { status: s } })
  const a = await create({ title: 'A', priority: 'high', assigned_to: worker.id })
  const b = await create({ title: 'B', priority: 'low', assigned_to: worker.id })
  const c = await create({ title: 'C', priority: 'critical' })
  const stats = async (token = worker.token) => (await api.request({ method: 'GET', url: '/api/dashboard/tasks-stats', headers: api.auth(token) })).json()
  let s = await stats()
  t.match(s, { total: 3, by_status: { open: 3, in_progress: 0, closed: 0 }, by_priority: { critical: 1, high: 1, medium: 0, low: 1 }, my_open_tasks: 2, mean_time_to_first_action_seconds: null, mean_time_to_close_seconds: null })
  t.equal((await stats(admin)).my_open_tasks, 0, 'my_open_tasks is per caller')

  await status(a.id, 'in_progress')
  await status(a.id, 'closed')
  s = await stats()
  t.match(s, { by_status: { open: 2, in_progress: 0, closed: 1 }, my_open_tasks: 1 })
  t.ok(s.mean_time_to_first_action_seconds !== null && s.mean_time_to_first_action_seconds >= 0, 'mean time to first action')
  t.ok(s.mean_time_to_close_seconds !== null && s.mean_time_to_close_seconds >= 0, 'mean time to close')
  await status(a.id, 'open')
  s = await stats()
  t.equal(s.mean_time_to_close_seconds, null, 'a reopened task no longer counts as closed')
  t.equal(s.my_open_tasks, 2)

  await api.request({ method: 'PUT', url: `/api/tasks/${b.id}`, headers: api.auth(admin), payload: { assigned_to: null, priority: 'medium' } })
  await api.request({ method: 'PUT', url: `/api/tasks/${c.id}`, headers: api.auth(admin), payload: { assigned_to: worker.id } })
  await api.request({ method: 'DELETE', url: `/api/tasks/${a.id}`, headers: api.auth(admin) })
  s = await stats()
  t.match(s, { total: 2, by_status: { open: 2, in_progress: 0, closed: 0 }, by_priority: { critical: 1, high: 0, medium: 1, low: 0 }, my_open_tasks: 1 })
  const overview = (await api.request({ method: 'GET', url: '/api/dashboard/overview', headers: api.auth(worker.token) })).json()
  t.match(overview.tasks, { total: 2, by_status: { open: 2 }, my_open_tasks: 1 })
})

t.test('event statistics and recent events', async t => {
  const api = await build(t)
  const admin = await api.adminToken()
  const key = await account(api, admin)
  const ingest = async (env: object) => (await api.request({ method: 'POST', url: '/api/events/ingest', headers: { 'x-api-key': key }, payload: env })).json()
  await ingest(alarm('disk', 'ALARM', 'high'))
  await ingest(alarm('disk', 'ALARM', 'critical'))
  await ingest(alarm('cpu', 'ALARM', 'low'))
  await ingest({ ...fixture('guardduty-finding'), id: 'gd-1' })
  await ingest(alarm('cpu', 'OK'))
  const e = (await api.request({ method: 'GET', url: '/api/dashboard/events-stats', headers: api.auth(admin) })).json()
  t.match(e, {
    total: 3,
    by_severity: { critical: 1, high: 1, medium: 0, low: 1, info: 0 },
    by_source: { 'aws.cloudwatch': 2, 'aws.guardduty': 1, 'aws.securityhub': 0, 'aws.health': 0 },
    by_status: { open: 2, acknowledged: 0, resolved: 1, suppressed: 0 }
  })
  t.equal(e.recent.length, 3)
  t.same(e.recent.map((r: { occurred_at: string }) => r.occurred_at), [...e.recent.map((r: { occurred_at: string }) => r.occurred_at)].sort().reverse(), 'recent is newest first')
  const overview = (await api.request({ method: 'GET', url: '/api/dashboard/overview', headers: api.auth(admin) })).json()
  t.match(overview.events, { total: 3, open: 2, by_severity: { critical: 1 } })
})

t.test('counters equal a recount after a mixed, concurrent workload', async t => {
  const api = await build(t)
  const admin = await api.adminToken()
  const key = await account(api, admin)
  const people = await Promise.all([api.userWithRole('user'), api.userWithRole('user'), api.userWithRole('manager')])
  const ingest = (env: object) => api.request({ method: 'POST', url: '/api/events/ingest', headers: { 'x-api-key': key }, payload: env })
  const adminAuth = api.auth(admin)

  // Concurrent: tasks created, events ingested (new, repeated, concurrent occurrences), users changed.
  const created = await Promise.all(Array.from({ length: 24 }, (_, i) => api.request({
    method: 'POST', url: '/api/tasks', headers: api.auth(people[i % 3]!.token), payload: { title: `T${i}`, priority: ['critical', 'high', 'medium', 'low'][i % 4], assigned_to: i % 4 === 0 ? null : people[i % 2]!.id }
  })))
  const tasks = created.map(r => r.json())
  await Promise.all([
    ...Array.from({ length: 12 }, (_, i) => ingest(alarm(`alarm-${i % 5}`, 'ALARM', ['critical', 'high', 'medium', 'low', 'info'][i % 5]))),
    ...Array.from({ length: 6 }, (_, i) => ingest({ ...fixture('guardduty-finding'), id: `gd-${i}` })),
    ingest({ ...fixture('securityhub-finding'), id: 'sh-1' }),
    ingest({ ...fixture('health-issue'), id: 'h-1' }),
    api.request({ method: 'PUT', url: `/api/users/${people[0]!.id}`, headers: adminAuth, payload: { role: 'manager' } }),
    api.request({ method: 'DELETE', url: `/api/users/${people[1]!.id}`, headers: adminAuth })
  ])
  // Concurrent status changes (some racing on the same task), edits and deletions.
  await Promise.all([
    ...tasks.slice(0, 12).flatMap(task => [
      api.request({ method: 'PUT', url: `/api/tasks/${task.id}/status`, headers: adminAuth, payload: { status: 'in_progress' } }),
      api.request({ method: 'PUT', url: `/api/tasks/${task.id}/status`, headers: adminAuth, payload: { status: 'in_progress' } })
    ]),
    ...tasks.slice(12, 16).map(task => api.request({ method: 'PUT', url: `/api/tasks/${task.id}`, headers: adminAuth, payload: { priority: 'critical', assigned_to: people[2]!.id } })),
    ...tasks.slice(16, 20).map(task => api.request({ method: 'DELETE', url: `/api/tasks/${task.id}`, headers: adminAuth })),
    ingest(alarm('alarm-1', 'OK')),
    ingest(alarm('alarm-2', 'OK'))
  ])
  await Promise.all(tasks.slice(0, 6).map(task => api.request({ method: 'PUT', url: `/api/tasks/${task.id}/status`, headers: adminAuth, payload: { status: 'closed' } })))
  const events = (await api.request({ method: 'GET', url: '/api/events?limit=100', headers: adminAuth })).json().items
  const open = events.filter((e: { status: string }) => e.status === 'open')
  await Promise.all([
    api.request({ method: 'POST', url: `/api/events/${open[0].id}/create-task`, headers: adminAuth }),
    api.request({ method: 'POST', url: `/api/events/${open[0].id}/create-task`, headers: adminAuth }),
    api.request({ method: 'DELETE', url: `/api/events/${open[1].id}`, headers: adminAuth })
  ])

  const stats = api.app.repos.stats
  const live = await stats.read(['events', 'tasks', 'users', ...people.map(p => `user#${p.id}`)])
  const truth = await recountStats(api.app.repos)
  for (const pk of Object.keys(live)) {
    const keys = new Set([...Object.keys(live[pk]!), ...Object.keys(truth[pk] ?? {})])
    for (const k of keys) if (k !== 'pk') t.equal(count(live[pk]!, k), count(truth[pk] ?? {}, k), `${pk} ${k}`)
  }
  // And the API agrees with the items themselves.
  const e = (await api.request({ method: 'GET', url: '/api/dashboard/events-stats', headers: adminAuth })).json()
  const listed = (await api.request({ method: 'GET', url: '/api/events?limit=100', headers: adminAuth })).json().items
  t.equal(e.total, listed.length, 'events total = live events')
  t.equal(e.by_status.acknowledged, listed.filter((x: { status: string }) => x.status === 'acknowledged').length)
  const ts = (await api.request({ method: 'GET', url: '/api/dashboard/tasks-stats', headers: adminAuth })).json()
  const allTasks = (await api.request({ method: 'GET', url: '/api/tasks?limit=100', headers: adminAuth })).json().items
  t.equal(ts.total, allTasks.length, 'tasks total = live tasks')
  t.equal(ts.by_status.closed, allTasks.filter((x: { status: string }) => x.status === 'closed').length)
  t.equal(ts.by_priority.critical, allTasks.filter((x: { priority: string }) => x.priority === 'critical').length)
  const us = (await api.request({ method: 'GET', url: '/api/dashboard/users-stats', headers: adminAuth })).json()
  t.same(us, { total: 4, active: 3, by_role: { admin: 1, manager: 2, user: 1 } })
})

t.test('the events counters are write-sharded: concurrent adds all count, reads sum the shards, the recount folds them', async t => {
  const api = await build(t)
  const admin = await api.adminToken()
  const stats = api.app.repos.stats
  const before = (await stats.read(['events'])).events!
  await Promise.all(Array.from({ length: 200 }, (_, i) => stats.apply('events', { total: 1, [`severity:${i % 2 ? 'high' : 'low'}`]: 1 })))
  const after = (await stats.read(['events'])).events!
  t.equal((after.total ?? 0) - (before.total ?? 0), 200, '200 concurrent adds, 200 counted')
  t.equal((after['severity:high'] ?? 0) - (before['severity:high'] ?? 0), 100)
  const table = `${api.config.tablePrefix}stats`
  const shards = await Promise.all(Array.from({ length: 8 }, (_, i) => api.app.db.client.getItem({ TableName: table, Key: { pk: { S: `events#${i}` } }, ConsistentRead: true })))
  t.ok(shards.filter(s => Number(s.Item?.total?.N ?? 0) > 0).length >= 4, 'spread over the shards')
  // The adds above count nothing real: the recount folds the shards back to the truth (no events).
  await recountStats(api.app.repos)
  t.same((await stats.read(['events'])).events, {}, 'after the recount: the truth, in the item, the shards zeroed')
  const e = (await api.request({ method: 'GET', url: '/api/dashboard/events-stats', headers: api.auth(admin) })).json()
  t.equal(e.total, 0)
})

t.test('recount repairs counters that drifted', async t => {
  const api = await build(t)
  const admin = await api.adminToken()
  await api.request({ method: 'POST', url: '/api/tasks', headers: api.auth(admin), payload: { title: 'one' } })
  // Simulate a crash between an item write and its counter update.
  await api.app.repos.stats.apply('tasks', { total: 5, 'status:open': -3 })
  await api.app.repos.stats.apply('user#01JDQ2Z5Y3K4M5N6P7Q8R9S0TV', { open: 2 })
  await recountStats(api.app.repos)
  const s = (await api.request({ method: 'GET', url: '/api/dashboard/tasks-stats', headers: api.auth(admin) })).json()
  t.match(s, { total: 1, by_status: { open: 1 } })
  t.same(await api.app.repos.stats.read(['user#01JDQ2Z5Y3K4M5N6P7Q8R9S0TV']), { 'user#01JDQ2Z5Y3K4M5N6P7Q8R9S0TV': {} }, 'a stale per-user counter is zeroed')
})

t.test('counters stay exact when edits race each other, status changes and deletes', async t => {
  const api = await build(t)
  const admin = api.auth(await api.adminToken())
  const ingestKey = await account(api, await api.adminToken())
  for (let round = 0; round < 4; round++) {
    const task = (await api.request({ method: 'POST', url: '/api/tasks', headers: admin, payload: { title: `race ${round}`, priority: 'low' } })).json()
    await Promise.all([
      api.request({ method: 'PUT', url: `/api/tasks/${task.id}`, headers: admin, payload: { priority: 'high' } }),
      api.request({ method: 'PUT', url: `/api/tasks/${task.id}`, headers: admin, payload: { priority: 'critical' } }),
      api.request({ method: 'PUT', url: `/api/tasks/${task.id}/status`, headers: admin, payload: { status: 'in_progress' } }),
      ...(round % 2 ? [api.request({ method: 'DELETE', url: `/api/tasks/${task.id}`, headers: admin })] : [])
    ])
  }
  // An event's severity changes while it is resolved or linked to a task at the same moment.
  for (let round = 0; round < 4; round++) {
    const name = `sev-race-${round}`
    const first = await api.request({ method: 'POST', url: '/api/events/ingest', headers: { 'x-api-key': ingestKey }, payload: alarm(name, 'ALARM', 'low') })
    const id = first.json().results[0].event_id
    await Promise.all([
      api.request({ method: 'POST', url: '/api/events/ingest', headers: { 'x-api-key': ingestKey }, payload: alarm(name, 'ALARM', 'critical') }),
      round % 2
        ? api.request({ method: 'POST', url: '/api/events/ingest', headers: { 'x-api-key': ingestKey }, payload: alarm(name, 'OK') })
        : api.request({ method: 'POST', url: `/api/events/${id}/create-task`, headers: admin })
    ])
  }
  const live = await api.app.repos.stats.read(['tasks', 'events'])
  const truth = await recountStats(api.app.repos)
  for (const pk of ['tasks', 'events']) {
    for (const k of new Set([...Object.keys(live[pk]!), ...Object.keys(truth[pk]!)])) {
      t.equal(live[pk]![k] ?? 0, truth[pk]![k] ?? 0, `${pk} ${k} (raw value, negatives included)`)
    }
  }
})
