/**
 * Tasks: RBAC by relation to the task, create, get, partial update, status transitions,
 * comments, soft delete, list filters and pagination, ETags and concurrency, the bounded
 * status history and its own list (issue 15, finding 2).
 * Every request goes through the helper's `request`, so every response is also checked
 * against docs/api-specification.yaml.
 */
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import t from 'tap'
import type { Test } from 'tap'
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb'
import { build, assertProblem, type Api, type Response } from './helper.js'
import { itemSize, MAX_ITEM_BYTES } from '../src/db/item-size.js'
import { assertTransition, TRANSITIONS } from '../src/domain/tasks.js'
import { DomainError } from '../src/domain/errors.js'

const MISSING_ID = '01JDQ2Z5Y3K4M5N6P7Q8R9S0TV'
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/
/** RFC 3339 UTC with milliseconds, as the conventions fix it. */
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const PRIORITIES = ['critical', 'high', 'medium', 'low'] as const

type Status = 'open' | 'in_progress' | 'closed'
type Priority = typeof PRIORITIES[number]
interface Task {
  id: string
  title: string
  description: string | null
  status: Status
  priority: Priority
  assigned_to: string | null
  created_by: string
  event_id: string | null
  due_at: string | null
  closed_at: string | null
  version: number
  created_at: string
  updated_at: string
}
interface Comment { id: string, task_id: string, author_id: string, body: string, created_at: string }
interface HistoryEntry { from: Status, to: Status, changed_by: string, changed_at: string, comment: string | null }
interface TaskDetail extends Task { comments: Comment[], comments_next_cursor: string | null, status_history: HistoryEntry[] }
interface Page<T> { items: T[], next_cursor: string | null }
interface Who { id: string, token: string }
type Headers = Record<string, string>

const TASK_FIELDS = ['id', 'title', 'description', 'status', 'priority', 'assigned_to', 'created_by', 'event_id', 'due_at', 'closed_at', 'version', 'created_at', 'updated_at'] as const
/** The Task fields of a Task or TaskDetail (to compare a detail with a plain task). */
const taskPart = (x: Task): Record<string, unknown> => Object.fromEntries(TASK_FIELDS.map(k => [k, x[k]]))
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
const qs = (query: Record<string, string | number | undefined>): string => {
  const params = new URLSearchParams()
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v))
  const s = params.toString()
  return s ? `?${s}` : ''
}
/** Changes one character in the middle of a cursor (staying inside the cursor alphabet). */
const tamper = (cursor: string): string => {
  const i = Math.floor(cursor.length / 2)
  return cursor.slice(0, i) + (cursor[i] === 'A' ? 'B' : 'A') + cursor.slice(i + 1)
}
const day = (n: number): string => new Date(Date.parse('2027-01-01T00:00:00.000Z') + n * 86_400_000).toISOString()

function tasksClient (api: Api) {
  const h = (who: Who | undefined, extra: Headers = {}): Headers => ({ ...(who ? api.auth(who.token) : {}), ...extra })
  return {
    list: (who: Who | undefined, query = '') => api.request({ method: 'GET', url: `/api/tasks${query}`, headers: h(who) }),
    create: (who: Who | undefined, payload: object) => api.request({ method: 'POST', url: '/api/tasks', headers: h(who), payload }),
    get: (who: Who | undefined, id: string) => api.request({ method: 'GET', url: `/api/tasks/${id}`, headers: h(who) }),
    update: (who: Who | undefined, id: string, payload: object, extra: Headers = {}) =>
      api.request({ method: 'PUT', url: `/api/tasks/${id}`, headers: h(who, extra), payload }),
    status: (who: Who | undefined, id: string, payload: object, extra: Headers = {}) =>
      api.request({ method: 'PUT', url: `/api/tasks/${id}/status`, headers: h(who, extra), payload }),
    remove: (who: Who | undefined, id: string) => api.request({ method: 'DELETE', url: `/api/tasks/${id}`, headers: h(who) }),
    comments: (who: Who | undefined, id: string, query = '') => api.request({ method: 'GET', url: `/api/tasks/${id}/comments${query}`, headers: h(who) }),
    history: (who: Who | undefined, id: string, query = '') => api.request({ method: 'GET', url: `/api/tasks/${id}/history${query}`, headers: h(who) }),
    comment: (who: Who | undefined, id: string, payload: object) => api.request({ method: 'POST', url: `/api/tasks/${id}/comments`, headers: h(who), payload })
  }
}
type Client = ReturnType<typeof tasksClient>

/** The admin (with its id) and four users of the API. */
async function people (api: Api) {
  const token = await api.adminToken()
  const me = await api.request({ method: 'GET', url: '/api/auth/me', headers: api.auth(token) })
  const admin: Who = { id: me.json().id, token }
  const manager = await api.userWithRole('manager')
  const creator = await api.userWithRole('user')
  const assignee = await api.userWithRole('user')
  const other = await api.userWithRole('user')
  return { admin, manager, creator, assignee, other }
}

async function mustCreate (c: Client, who: Who, payload: object): Promise<Task> {
  const res = await c.create(who, payload)
  if (res.statusCode !== 201) throw new Error(`createTask failed: ${res.statusCode} ${res.body.slice(0, 300)}`)
  return res.json<Task>()
}

async function detail (c: Client, who: Who, id: string): Promise<TaskDetail> {
  const res = await c.get(who, id)
  if (res.statusCode !== 200) throw new Error(`getTask ${id} failed: ${res.statusCode} ${res.body.slice(0, 300)}`)
  return res.json<TaskDetail>()
}

async function mustStatus (c: Client, who: Who, id: string, payload: { status: Status, comment?: string }): Promise<Task> {
  const res = await c.status(who, id, payload)
  if (res.statusCode !== 200) throw new Error(`updateTaskStatus ${id} → ${payload.status} failed: ${res.statusCode} ${res.body.slice(0, 300)}`)
  return res.json<Task>()
}

/**
 * Follows `next_cursor` until it is null and returns every item. Each page must hold at most
 * `limit` items; a request that is not 200 fails the test.
 */
async function walk<T> (t: Test, api: Api, who: Who, path: string, query: Record<string, string>, limit: number, first?: string): Promise<T[]> {
  const items: T[] = []
  let cursor: string | undefined = first
  for (let page = 0; page < 200; page++) {
    const url = `${path}${qs({ ...query, limit, cursor })}`
    const res = await api.request({ method: 'GET', url, headers: api.auth(who.token) })
    if (res.statusCode !== 200) {
      t.fail(`GET ${url}: ${res.statusCode} ${res.body.slice(0, 300)}`)
      return items
    }
    const body = res.json<Page<T>>()
    if (body.items.length > limit) t.fail(`GET ${url}: ${body.items.length} items, more than limit=${limit}`)
    items.push(...body.items)
    if (body.next_cursor === null) return items
    cursor = body.next_cursor
  }
  t.fail(`GET ${path} ${JSON.stringify(query)}: more than 200 pages`)
  return items
}

function within (t: Test, timestamp: string | null, from: number, to: number, message: string): void {
  t.match(timestamp, TIMESTAMP, `${message}: an RFC 3339 timestamp`)
  const ms = Date.parse(String(timestamp))
  t.ok(ms >= from && ms <= to, `${message}: ${timestamp} within the request (${new Date(from).toISOString()} … ${new Date(to).toISOString()})`)
}

// ------------------------------------------------------------------------------------------
t.test('RBAC: every task operation × anonymous, unrelated user, creator, assignee, manager, admin', async t => {
  const api = await build(t)
  const c = tasksClient(api)
  const p = await people(api)
  const callers: Array<[string, Who | undefined]> = [
    ['anonymous', undefined], ['unrelated user', p.other], ['creator', p.creator], ['assignee', p.assignee], ['manager', p.manager], ['admin', p.admin]
  ]
  const all = (status: number): Record<string, number> => ({ anonymous: 401, 'unrelated user': status, creator: status, assignee: status, manager: status, admin: status })
  const ops: Array<{ name: string, expect: Record<string, number>, call: (who: Who | undefined, task: Task) => Promise<Response> }> = [
    { name: 'listTasks', expect: all(200), call: who => c.list(who) },
    { name: 'getTask', expect: all(200), call: (who, task) => c.get(who, task.id) },
    { name: 'createTask', expect: all(201), call: who => c.create(who, { title: 'Created in the RBAC matrix' }) },
    { name: 'listTaskComments', expect: all(200), call: (who, task) => c.comments(who, task.id) },
    { name: 'listTaskStatusHistory', expect: all(200), call: (who, task) => c.history(who, task.id) },
    { name: 'addTaskComment', expect: all(201), call: (who, task) => c.comment(who, task.id, { body: 'A comment from the RBAC matrix' }) },
    { name: 'updateTask', expect: { ...all(200), 'unrelated user': 403 }, call: (who, task) => c.update(who, task.id, { title: 'Changed in the RBAC matrix' }) },
    { name: 'updateTaskStatus', expect: { ...all(200), 'unrelated user': 403 }, call: (who, task) => c.status(who, task.id, { status: 'in_progress' }) },
    { name: 'deleteTask', expect: { ...all(204), 'unrelated user': 403, assignee: 403 }, call: (who, task) => c.remove(who, task.id) }
  ]
  for (const op of ops) {
    for (const [name, who] of callers) {
      // A fresh task per cell: created by `creator`, assigned to `assignee`.
      const task = await mustCreate(c, p.creator, { title: 'RBAC target', assigned_to: p.assignee.id })
      const expected = op.expect[name]
      const res = await op.call(who, task)
      const label = `${op.name} as ${name}`
      t.equal(res.statusCode, expected, `${label} → ${expected} (got ${res.statusCode}: ${res.body.slice(0, 150)})`)
      if (res.statusCode !== expected) continue
      if (expected === 401) assertProblem(t, res, 401, 'token_invalid', label)
      if (expected === 403) assertProblem(t, res, 403, 'forbidden', label)
      const allowed = expected < 300

      // What the call did (or, when refused, did not do) to the task.
      const after = await c.get(p.admin, task.id)
      if (op.name === 'deleteTask' && allowed) {
        assertProblem(t, after, 404, 'not_found', `${label}: the task is gone`)
        continue
      }
      t.equal(after.statusCode, 200, `${label}: the task is still there`)
      const d = after.json<TaskDetail>()
      if (op.name === 'updateTask') {
        t.equal(d.title, allowed ? 'Changed in the RBAC matrix' : 'RBAC target', `${label}: title`)
        t.equal(d.version, allowed ? 2 : 1, `${label}: version`)
      } else if (op.name === 'updateTaskStatus') {
        t.equal(d.status, allowed ? 'in_progress' : 'open', `${label}: status`)
        t.equal(d.status_history.length, allowed ? 1 : 0, `${label}: history`)
        t.equal(d.version, allowed ? 2 : 1, `${label}: version`)
      } else if (op.name === 'addTaskComment') {
        t.equal(d.comments.length, allowed ? 1 : 0, `${label}: comments`)
        if (allowed && who) {
          t.equal(res.json<Comment>().author_id, who.id, `${label}: author is the caller`)
          t.equal(d.comments[0]?.author_id, who.id, `${label}: stored author`)
        }
      } else if (op.name === 'createTask' && allowed && who) {
        t.equal(res.json<Task>().created_by, who.id, `${label}: created_by is the caller`)
      } else {
        t.equal(d.version, 1, `${label}: nothing changed`)
      }
    }
  }

  // listTaskStatusHistory beyond the roles: what it shows, unknown, malformed and deleted ids, cursors.
  const task = await mustCreate(c, p.creator, { title: 'History target', assigned_to: p.assignee.id })
  for (let i = 0; i < 3; i++) await mustStatus(c, p.assignee, task.id, { status: i % 2 === 0 ? 'in_progress' : 'open', comment: `change ${i}` })
  for (const [name, who] of callers.slice(1)) {
    const res = await c.history(who, task.id, '?limit=2')
    t.equal(res.statusCode, 200, `listTaskStatusHistory as ${name}`)
    const page = res.json<Page<HistoryEntry>>()
    t.strictSame(page.items.map(e => e.comment), ['change 0', 'change 1'], `${name}: the first page, oldest first`)
    t.type(page.next_cursor, 'string', `${name}: a cursor`)
  }
  for (const who of [p.admin, p.manager, p.other]) {
    assertProblem(t, await c.history(who, MISSING_ID), 404, 'not_found', 'unknown id')
    assertProblem(t, await c.history(who, 'not-a-ulid'), 400, 'validation_failed', 'malformed id')
  }
  const first = (await c.history(p.other, task.id, '?limit=1')).json<Page<HistoryEntry>>()
  assertProblem(t, await c.history(p.other, task.id, qs({ limit: 1, cursor: tamper(first.next_cursor!) })), 400, 'invalid_cursor', 'tampered cursor')
  assertProblem(t, await c.history(p.other, task.id, qs({ limit: 1, cursor: 'bm90LWEtY3Vyc29y' })), 400, 'invalid_cursor', 'made-up cursor')
  const otherTask = await mustCreate(c, p.creator, { title: 'Another history' })
  await mustStatus(c, p.creator, otherTask.id, { status: 'in_progress' })
  await mustStatus(c, p.creator, otherTask.id, { status: 'open' })
  const otherCursor = (await c.history(p.other, otherTask.id, '?limit=1')).json<Page<HistoryEntry>>().next_cursor!
  assertProblem(t, await c.history(p.other, task.id, qs({ limit: 1, cursor: otherCursor })), 400, 'invalid_cursor', 'a cursor of another task')
  assertProblem(t, await c.history(p.other, task.id, '?limit=0'), 400, 'validation_failed', 'limit 0')
  assertProblem(t, await c.history(p.other, task.id, '?limit=101'), 400, 'validation_failed', 'limit 101')
  assertProblem(t, await c.history(undefined, task.id), 401, 'token_invalid', 'anonymous')
  t.equal((await c.remove(p.creator, task.id)).statusCode, 204)
  assertProblem(t, await c.history(p.admin, task.id), 404, 'not_found', 'a deleted task')
  assertProblem(t, await c.history(p.admin, task.id, qs({ cursor: first.next_cursor! })), 404, 'not_found', 'a deleted task, with a cursor')
})

// ------------------------------------------------------------------------------------------
t.test('create tasks: defaults, headers, assignees, validation', async t => {
  const api = await build(t)
  const c = tasksClient(api)
  const p = await people(api)
  let made = 0

  const before = Date.now()
  const res = await c.create(p.creator, { title: 'Rotate the prod-orders database credentials' })
  const after = Date.now()
  t.equal(res.statusCode, 201)
  made++
  const task = res.json<Task>()
  t.match(task.id, ULID, 'a ULID')
  t.equal(res.headers.location, `/api/tasks/${task.id}`, 'Location')
  t.equal(res.headers.etag, '"v1"', 'ETag "v1"')
  t.strictSame({ ...taskPart(task), id: null, created_at: null, updated_at: null }, {
    id: null,
    title: 'Rotate the prod-orders database credentials',
    description: null,
    status: 'open',
    priority: 'medium',
    assigned_to: null,
    created_by: p.creator.id,
    event_id: null,
    due_at: null,
    closed_at: null,
    version: 1,
    created_at: null,
    updated_at: null
  }, 'defaults: open, medium, unassigned, created_by the caller, version 1')
  within(t, task.created_at, before, after, 'created_at')
  t.match(task.updated_at, TIMESTAMP, 'updated_at')
  const got = await c.get(p.other, task.id)
  t.equal(got.statusCode, 200)
  t.strictSame(taskPart(got.json<Task>()), taskPart(task), 'GET returns what POST returned')
  t.equal(got.headers.etag, '"v1"')

  // Every field given, assigned to an active user.
  const full = await c.create(p.manager, {
    title: 'Investigate the GuardDuty finding',
    description: 'Rotate the instance role credentials.',
    priority: 'critical',
    assigned_to: p.assignee.id,
    due_at: '2026-12-01T17:00:00.000Z'
  })
  t.equal(full.statusCode, 201)
  made++
  t.match(full.json<Task>(), {
    title: 'Investigate the GuardDuty finding',
    description: 'Rotate the instance role credentials.',
    priority: 'critical',
    assigned_to: p.assignee.id,
    due_at: '2026-12-01T17:00:00.000Z',
    created_by: p.manager.id,
    status: 'open',
    version: 1
  })
  const nulls = await c.create(p.admin, { title: 'Explicit nulls', description: null, assigned_to: null, due_at: null })
  t.equal(nulls.statusCode, 201, 'explicit nulls are allowed')
  made++
  t.equal(nulls.json<Task>().created_by, p.admin.id)
  t.equal(nulls.json<Task>().assigned_to, null)
  // Boundaries: the longest title and description are accepted.
  const longest = await c.create(p.creator, { title: 't'.repeat(200), description: 'd'.repeat(10000) })
  t.equal(longest.statusCode, 201, 'title of 200 and description of 10000 characters')
  made++
  t.equal(longest.json<Task>().description?.length, 10000)

  // Assignees must be known, active users.
  assertProblem(t, await c.create(p.creator, { title: 'Unknown assignee', assigned_to: MISSING_ID }), 400, 'invalid_assignee', 'unknown user')
  const leaving = await api.userWithRole('user')
  t.equal((await c.create(p.creator, { title: 'Still active', assigned_to: leaving.id })).statusCode, 201, 'active user can be assigned')
  made++
  t.equal((await api.request({ method: 'DELETE', url: `/api/users/${leaving.id}`, headers: api.auth(p.admin.token) })).statusCode, 204, 'deactivated')
  assertProblem(t, await c.create(p.creator, { title: 'Inactive assignee', assigned_to: leaving.id }), 400, 'invalid_assignee', 'deactivated user')

  // Bad input: 400 validation_failed, never a 5xx, and nothing is created.
  const bad: Array<[string, unknown]> = [
    ['missing title', { description: 'no title' }],
    ['empty title', { title: '' }],
    ['title of 201 characters', { title: 't'.repeat(201) }],
    ['title not a string', { title: 42 }],
    ['description of 10001 characters', { title: 'x', description: 'd'.repeat(10001) }],
    ['unknown priority', { title: 'x', priority: 'urgent' }],
    ['null priority', { title: 'x', priority: null }],
    ['due_at not a date-time', { title: 'x', due_at: 'tomorrow' }],
    ['due_at a date only', { title: 'x', due_at: '2026-12-01' }],
    ['assigned_to not a ULID', { title: 'x', assigned_to: 'not-a-ulid' }],
    ['assigned_to lowercase', { title: 'x', assigned_to: MISSING_ID.toLowerCase() }],
    ['mass assignment: status', { title: 'x', status: 'closed' }],
    ['mass assignment: created_by', { title: 'x', created_by: p.other.id }],
    ['mass assignment: event_id', { title: 'x', event_id: MISSING_ID }],
    ['mass assignment: version', { title: 'x', version: 7 }],
    ['mass assignment: id', { title: 'x', id: MISSING_ID }],
    ['mass assignment: closed_at', { title: 'x', closed_at: '2026-12-01T17:00:00.000Z' }],
    ['not an object', ['title']]
  ]
  for (const [name, payload] of bad) assertProblem(t, await c.create(p.creator, payload as never), 400, 'validation_failed', name)
  const massAssignment = await c.create(p.creator, { title: 'x', created_by: p.other.id })
  t.match(massAssignment.json().errors, [{ path: '/body/created_by' }], 'the problem names the offending property')

  const raw = (contentType: string, payload: string) =>
    api.request({ method: 'POST', url: '/api/tasks', headers: { ...api.auth(p.creator.token), 'content-type': contentType }, payload })
  assertProblem(t, await raw('application/json', '{"title":'), 400, 'malformed_json', 'malformed JSON')
  assertProblem(t, await raw('text/plain', 'title=Plain text'), 415, 'unsupported_media_type', 'text/plain')
  assertProblem(t, await raw('application/json', JSON.stringify({ title: 'Huge', description: 'd'.repeat(200 * 1024) })), 413, 'payload_too_large', 'body over the limit')

  const listed = await c.list(p.admin, '?limit=100')
  t.equal(listed.statusCode, 200)
  t.equal(listed.json<Page<Task>>().items.length, made, `only the ${made} valid tasks were created`)
})

// ------------------------------------------------------------------------------------------
t.test('get a task: detail with comments (oldest first) and status history; unknown and malformed ids', async t => {
  const api = await build(t)
  const c = tasksClient(api)
  const p = await people(api)
  const task = await mustCreate(c, p.creator, { title: 'Detail', description: 'With comments and history', assigned_to: p.assignee.id, due_at: '2026-12-24T18:00:00.000Z' })

  const fresh = await c.get(p.other, task.id)
  t.equal(fresh.statusCode, 200)
  const freshBody = fresh.json<TaskDetail>()
  t.strictSame(taskPart(freshBody), taskPart(task), 'the Task fields')
  t.strictSame(freshBody.comments, [], 'no comments yet')
  t.equal(freshBody.comments_next_cursor, null)
  t.strictSame(freshBody.status_history, [], 'no status changes yet')

  const bodies: Array<[Who, string]> = [[p.assignee, 'Looking at the alarm history.'], [p.other, 'Seen this before on staging.'], [p.creator, 'Thanks, please check CloudTrail.']]
  const comments: Comment[] = []
  for (const [who, body] of bodies) {
    const r = await c.comment(who, task.id, { body })
    t.equal(r.statusCode, 201)
    comments.push(r.json<Comment>())
    await sleep(2)
  }
  await mustStatus(c, p.assignee, task.id, { status: 'in_progress', comment: 'Looking into it.' })
  await sleep(2)
  await mustStatus(c, p.creator, task.id, { status: 'closed' })

  const res = await c.get(p.other, task.id)
  t.equal(res.statusCode, 200)
  t.equal(res.headers.etag, '"v3"', 'ETag after two status changes (comments do not count)')
  const d = res.json<TaskDetail>()
  t.equal(d.version, 3)
  t.equal(d.status, 'closed')
  t.match(d.closed_at, TIMESTAMP)
  t.strictSame(d.comments, comments, 'every comment, oldest first, as POST returned them')
  t.strictSame(d.comments.map(x => [x.author_id, x.body, x.task_id]), bodies.map(([who, body]) => [who.id, body, task.id]))
  t.equal(d.comments_next_cursor, null, 'all comments fit in the first page')
  t.strictSame(d.status_history.map(({ changed_at: _, ...e }) => e), [
    { from: 'open', to: 'in_progress', changed_by: p.assignee.id, comment: 'Looking into it.' },
    { from: 'in_progress', to: 'closed', changed_by: p.creator.id, comment: null }
  ], 'status history, oldest first')
  t.ok(d.status_history.every(e => TIMESTAMP.test(e.changed_at)), 'changed_at timestamps')
  t.ok(d.status_history[0]!.changed_at <= d.status_history[1]!.changed_at, 'chronological')

  // The task item counts its comments so that a task without any costs one read; an item
  // written before the count existed (no attribute) still shows its comments.
  const table = `${api.config.tablePrefix}tasks`
  const stored = await api.app.db.client.getItem({ TableName: table, Key: { id: { S: task.id } }, ConsistentRead: true })
  t.equal(stored.Item?.comment_count?.N, '3', 'comment count on the item')
  t.notOk('comment_count' in d, 'not part of the API')
  await api.app.db.client.updateItem({ TableName: table, Key: { id: { S: task.id } }, UpdateExpression: 'REMOVE comment_count' })
  t.strictSame((await c.get(p.other, task.id)).json<TaskDetail>().comments, comments, 'an item without the count: comments are read')

  assertProblem(t, await c.get(p.admin, MISSING_ID), 404, 'not_found', 'unknown id')
  assertProblem(t, await c.get(p.admin, 'not-a-ulid'), 400, 'validation_failed', 'malformed id')
  assertProblem(t, await c.get(p.admin, task.id.toLowerCase()), 400, 'validation_failed', 'lowercase id')
  assertProblem(t, await c.get(p.admin, 'x'.repeat(300)), 400, 'validation_failed', 'long id')
  assertProblem(t, await api.request({ method: 'GET', url: `/api/tasks/${task.id}?expand=all`, headers: api.auth(p.admin.token) }), 400, 'validation_failed', 'unknown query parameter')
})

// ------------------------------------------------------------------------------------------
t.test('update tasks: partial updates, nulls, validation, assignees, If-Match, concurrency', async t => {
  const api = await build(t)
  const c = tasksClient(api)
  const p = await people(api)
  const task = await mustCreate(c, p.creator, { title: 'Original', description: 'Original description', priority: 'low', assigned_to: p.assignee.id, due_at: '2026-12-01T17:00:00.000Z' })
  const current = async () => detail(c, p.admin, task.id)

  // Only the named field changes.
  const r1 = await c.update(p.creator, task.id, { title: 'Renamed' })
  t.equal(r1.statusCode, 200)
  t.equal(r1.headers.etag, '"v2"')
  const u1 = r1.json<Task>()
  t.strictSame(taskPart(u1), { ...taskPart(task), title: 'Renamed', version: 2, updated_at: u1.updated_at }, 'only title and version (and updated_at) change')
  t.ok(u1.updated_at >= task.updated_at, 'updated_at does not go back')
  t.strictSame(taskPart(await current()), taskPart(u1), 'GET shows the update')

  // The assignee may update too; null clears the nullable fields.
  const r2 = await c.update(p.assignee, task.id, { description: null, due_at: null, priority: 'high' })
  t.equal(r2.statusCode, 200)
  t.match(r2.json<Task>(), { title: 'Renamed', description: null, due_at: null, priority: 'high', assigned_to: p.assignee.id, version: 3 })
  t.equal(r2.headers.etag, '"v3"')
  const r3 = await c.update(p.manager, task.id, { assigned_to: null })
  t.equal(r3.statusCode, 200)
  t.match(r3.json<Task>(), { assigned_to: null, version: 4, title: 'Renamed', priority: 'high' })
  // Unassigned, the former assignee is just another user now.
  assertProblem(t, await c.update(p.assignee, task.id, { title: 'Not mine any more' }), 403, 'forbidden', 'former assignee')
  const r4 = await c.update(p.admin, task.id, { assigned_to: p.other.id, due_at: '2027-03-01T09:30:00.000Z', description: 'Back again' })
  t.equal(r4.statusCode, 200)
  t.match(r4.json<Task>(), { assigned_to: p.other.id, due_at: '2027-03-01T09:30:00.000Z', description: 'Back again', version: 5 })
  t.equal((await c.update(p.other, task.id, { priority: 'medium' })).statusCode, 200, 'the new assignee may update')
  let version = 6
  t.equal((await current()).status, 'open', 'updates never touch the status')

  // Bad input changes nothing.
  const bad: Array<[string, unknown]> = [
    ['empty body', {}],
    ['status (use PUT /status)', { status: 'closed' }],
    ['version', { version: 99 }],
    ['created_by', { created_by: p.other.id }],
    ['event_id', { event_id: MISSING_ID }],
    ['id', { id: MISSING_ID }],
    ['closed_at', { closed_at: null }],
    ['empty title', { title: '' }],
    ['null title', { title: null }],
    ['title of 201 characters', { title: 't'.repeat(201) }],
    ['description of 10001 characters', { description: 'd'.repeat(10001) }],
    ['unknown priority', { priority: 'urgent' }],
    ['null priority', { priority: null }],
    ['assigned_to not a ULID', { assigned_to: 'someone' }],
    ['due_at not a date-time', { due_at: 'next week' }],
    ['not an object', ['Renamed']]
  ]
  for (const [name, payload] of bad) assertProblem(t, await c.update(p.admin, task.id, payload as never), 400, 'validation_failed', name)
  assertProblem(t, await api.request({ method: 'PUT', url: `/api/tasks/${task.id}`, headers: { ...api.auth(p.admin.token), 'content-type': 'application/json' }, payload: '{"title"' }), 400, 'malformed_json')
  assertProblem(t, await api.request({ method: 'PUT', url: `/api/tasks/${task.id}`, headers: { ...api.auth(p.admin.token), 'content-type': 'text/plain' }, payload: 'title' }), 415, 'unsupported_media_type')
  assertProblem(t, await c.update(p.admin, task.id, { assigned_to: MISSING_ID }), 400, 'invalid_assignee', 'unknown assignee')
  const leaving = await api.userWithRole('user')
  await api.request({ method: 'DELETE', url: `/api/users/${leaving.id}`, headers: api.auth(p.admin.token) })
  assertProblem(t, await c.update(p.admin, task.id, { assigned_to: leaving.id }), 400, 'invalid_assignee', 'deactivated assignee')
  assertProblem(t, await c.update(p.admin, MISSING_ID, { title: 'Nobody' }), 404, 'not_found')
  assertProblem(t, await c.update(p.admin, 'not-a-ulid', { title: 'Nobody' }), 400, 'validation_failed')
  let now = await current()
  t.equal(now.version, version, 'refused updates leave the version alone')
  t.match(now, { title: 'Renamed', priority: 'medium', assigned_to: p.other.id, description: 'Back again' }, 'and the fields')

  // If-Match: the current ETag passes, a stale or foreign one is 412 and changes nothing, * passes.
  const etag = String((await c.get(p.admin, task.id)).headers.etag)
  t.equal(etag, `"v${version}"`)
  const ok = await c.update(p.creator, task.id, { title: 'With If-Match' }, { 'if-match': etag })
  t.equal(ok.statusCode, 200, 'current ETag')
  t.equal(ok.headers.etag, `"v${++version}"`, 'a new ETag')
  assertProblem(t, await c.update(p.creator, task.id, { title: 'Stale' }, { 'if-match': etag }), 412, 'precondition_failed', 'stale ETag')
  assertProblem(t, await c.update(p.creator, task.id, { title: 'Future' }, { 'if-match': `"v${version + 1}"` }), 412, 'precondition_failed', 'future ETag')
  assertProblem(t, await c.update(p.creator, task.id, { title: 'Garbage' }, { 'if-match': '"nope"' }), 412, 'precondition_failed', 'foreign ETag')
  now = await current()
  t.equal(now.title, 'With If-Match', 'a refused conditional update changes nothing')
  t.equal(now.version, version)
  const star = await c.update(p.creator, task.id, { title: 'Any version' }, { 'if-match': '*' })
  t.equal(star.statusCode, 200, 'If-Match: * passes')
  t.equal(star.json<Task>().version, ++version)

  // Parallel updates of different fields without If-Match: every change survives (a few rounds,
  // so that a read-modify-write of the whole item has several chances to show).
  for (let round = 0; round < 3; round++) {
    const due = day(100 + round)
    const parallel = await Promise.all([
      c.update(p.creator, task.id, { title: `Parallel title ${round}` }),
      c.update(p.manager, task.id, { priority: PRIORITIES[round]! }),
      c.update(p.other, task.id, { description: `Parallel description ${round}` }),
      c.update(p.admin, task.id, { due_at: due })
    ])
    t.strictSame(parallel.map(r => r.statusCode), [200, 200, 200, 200], `round ${round}: all four succeed`)
    t.strictSame(parallel.map(r => r.json<Task>().version).sort((a, b) => a - b), [version + 1, version + 2, version + 3, version + 4], `round ${round}: each got its own version`)
    version += 4
    now = await current()
    t.match(now, { title: `Parallel title ${round}`, priority: PRIORITIES[round], description: `Parallel description ${round}`, due_at: due, assigned_to: p.other.id, version }, `round ${round}: no update undid another`)
  }

  // Parallel conditional updates at one version: exactly one wins.
  const at = `"v${version}"`
  const racers = await Promise.all(Array.from({ length: 5 }, (_, i) => c.update(p.admin, task.id, { title: `Racer ${i}` }, { 'if-match': at })))
  const winners = racers.filter(r => r.statusCode === 200)
  t.equal(winners.length, 1, 'one winner')
  t.equal(racers.filter(r => r.statusCode === 412 && r.json().code === 'precondition_failed').length, 4, 'four 412 precondition_failed')
  now = await current()
  t.equal(now.version, version + 1, 'one version step')
  t.equal(now.title, winners[0]?.json<Task>().title, "the winner's title")
})

// ------------------------------------------------------------------------------------------
t.test('status: transition table, closed_at, history, validation, If-Match, concurrency', async t => {
  const api = await build(t)
  const c = tasksClient(api)
  const p = await people(api)
  const task = await mustCreate(c, p.creator, { title: 'Walk the transition table', assigned_to: p.assignee.id })
  const history: Array<{ from: Status, to: Status, changed_by: string, comment: string | null, window: [number, number] }> = []
  let version = 1
  let status: Status = 'open'
  let lastClosedAt = ''

  const move = async (who: Who, to: Status, comment?: string): Promise<Task> => {
    const before = Date.now()
    const res = await c.status(who, task.id, comment === undefined ? { status: to } : { status: to, comment })
    const after = Date.now()
    t.equal(res.statusCode, 200, `${status} → ${to} (${res.body.slice(0, 150)})`)
    const body = res.json<Task>()
    t.equal(body.status, to, `now ${to}`)
    t.equal(body.version, ++version, `version ${version}`)
    t.equal(res.headers.etag, `"v${version}"`, 'ETag')
    if (to === 'closed') {
      within(t, body.closed_at, before, after, 'closing sets closed_at')
      t.ok(body.closed_at! >= lastClosedAt, 'closed_at is the latest closing')
      lastClosedAt = body.closed_at!
    } else {
      t.equal(body.closed_at, null, `${to}: closed_at is null`)
    }
    history.push({ from: status, to, changed_by: who.id, comment: comment ?? null, window: [before, after] })
    status = to
    await sleep(2)
    return body
  }
  const refuse = async (to: Status) => {
    const res = await c.status(p.admin, task.id, { status: to })
    assertProblem(t, res, 409, 'invalid_transition', `${status} → ${to}`)
    const d = await detail(c, p.admin, task.id)
    t.equal(d.status, status, 'status unchanged')
    t.equal(d.version, version, 'version unchanged')
    t.equal(d.status_history.length, history.length, 'no history entry')
  }

  await refuse('open')
  await move(p.assignee, 'in_progress', 'Looking into it.')
  await refuse('in_progress')
  await move(p.creator, 'open', 'Blocked on the network team.')
  await move(p.manager, 'in_progress')
  await move(p.admin, 'closed', 'Done.')
  const firstClose = lastClosedAt
  await refuse('closed')
  await refuse('in_progress')
  await move(p.assignee, 'open', 'c'.repeat(2000))
  await move(p.creator, 'in_progress')
  const closedAgain = await move(p.creator, 'closed')
  t.ok(closedAgain.closed_at! >= firstClose, 'closing again moves closed_at forward')
  const reopened = await move(p.manager, 'open', 'Reopened: it fired again.')
  t.equal(reopened.closed_at, null, 'reopening clears closed_at')
  // Product change (issue 15): an open task closes directly (a false positive, a duplicate).
  const direct = await move(p.assignee, 'closed', 'A duplicate of another task.')
  t.ok(direct.closed_at! >= closedAgain.closed_at!, 'closing directly from open sets closed_at')
  await refuse('closed')
  await refuse('in_progress')
  await move(p.creator, 'open', 'Not a duplicate after all.')

  const d = await detail(c, p.other, task.id)
  t.strictSame(d.status_history.map(({ changed_at: _, ...e }) => e), history.map(({ window: _, ...e }) => e), 'one entry per change, in order, with who and why')
  d.status_history.forEach((e, i) => within(t, e.changed_at, history[i]!.window[0], history[i]!.window[1], `history[${i}].changed_at`))
  t.equal(d.version, version)

  // Validation.
  const bad: Array<[string, unknown]> = [
    ['unknown status', { status: 'done' }],
    ['no status', { comment: 'why' }],
    ['empty body', {}],
    ['comment over 2000 characters', { status: 'in_progress', comment: 'c'.repeat(2001) }],
    ['empty comment', { status: 'in_progress', comment: '' }],
    ['null comment', { status: 'in_progress', comment: null }],
    ['unknown property', { status: 'in_progress', closed_at: null }]
  ]
  for (const [name, payload] of bad) assertProblem(t, await c.status(p.admin, task.id, payload as never), 400, 'validation_failed', name)
  assertProblem(t, await c.status(p.admin, MISSING_ID, { status: 'in_progress' }), 404, 'not_found')
  assertProblem(t, await c.status(p.admin, 'not-a-ulid', { status: 'in_progress' }), 400, 'validation_failed')
  t.equal((await detail(c, p.admin, task.id)).version, version, 'refused requests change nothing')

  // If-Match on status changes.
  const stale = `"v${version - 1}"`
  assertProblem(t, await c.status(p.creator, task.id, { status: 'in_progress' }, { 'if-match': stale }), 412, 'precondition_failed', 'stale ETag')
  let now = await detail(c, p.admin, task.id)
  t.equal(now.status, 'open', 'not moved')
  t.equal(now.status_history.length, history.length, 'no history entry')
  const cond = await c.status(p.creator, task.id, { status: 'in_progress' }, { 'if-match': `"v${version}"` })
  t.equal(cond.statusCode, 200, 'current ETag')
  t.equal(cond.headers.etag, `"v${++version}"`)
  const star = await c.status(p.creator, task.id, { status: 'open' }, { 'if-match': '*' })
  t.equal(star.statusCode, 200, 'If-Match: *')
  t.equal(star.json<Task>().version, ++version)

  // 5 × open → in_progress at once, without If-Match: one moves it, the others are invalid transitions.
  const racers = [p.creator, p.assignee, p.manager, p.admin, p.creator]
  const plain = await mustCreate(c, p.creator, { title: 'Race without If-Match', assigned_to: p.assignee.id })
  const results = await Promise.all(racers.map(who => c.status(who, plain.id, { status: 'in_progress' })))
  const won = results.flatMap((r, i) => (r.statusCode === 200 ? [racers[i]!] : []))
  t.equal(won.length, 1, `exactly one 200 (got ${results.map(r => r.statusCode).join(', ')})`)
  for (const r of results) if (r.statusCode !== 200) assertProblem(t, r, 409, 'invalid_transition', 'the losers')
  now = await detail(c, p.admin, plain.id)
  t.equal(now.status, 'in_progress')
  t.equal(now.version, 2)
  t.strictSame(now.status_history.map(e => [e.from, e.to, e.changed_by]), [['open', 'in_progress', won[0]?.id]], 'exactly one history entry, by the winner')

  // Mixed moves from open at once (start work, close directly): a close first refuses every
  // other move; a start first lets one close follow. The history matches the 200s either way.
  const fork = await mustCreate(c, p.creator, { title: 'Start or close', assigned_to: p.assignee.id })
  const forkMoves: Array<[Who, Status]> = [[p.creator, 'in_progress'], [p.assignee, 'closed'], [p.manager, 'in_progress'], [p.admin, 'closed']]
  const forkResults = await Promise.all(forkMoves.map(([who, to]) => c.status(who, fork.id, { status: to })))
  for (const r of forkResults) if (r.statusCode !== 200) assertProblem(t, r, 409, 'invalid_transition', 'a losing move from open')
  const forkWins = forkResults.flatMap((r, i) => (r.statusCode === 200 ? [{ version: r.json<Task>().version, to: forkMoves[i]![1], who: forkMoves[i]![0].id }] : []))
    .sort((a, b) => a.version - b.version)
  t.ok(['closed', 'in_progress,closed'].includes(forkWins.map(w => w.to).join()), `a close, or a start then a close (got ${forkWins.map(w => w.to).join()})`)
  now = await detail(c, p.admin, fork.id)
  t.strictSame(now.status_history.map(e => [e.to, e.changed_by]), forkWins.map(w => [w.to, w.who]), 'one entry per 200, in version order')
  t.equal(now.status, 'closed')

  // The same with If-Match of the one version: one 200, the others 412.
  const guarded = await mustCreate(c, p.creator, { title: 'Race with If-Match', assigned_to: p.assignee.id })
  const results2 = await Promise.all(racers.map(who => c.status(who, guarded.id, { status: 'in_progress' }, { 'if-match': '"v1"' })))
  t.equal(results2.filter(r => r.statusCode === 200).length, 1, `exactly one 200 (got ${results2.map(r => r.statusCode).join(', ')})`)
  for (const r of results2) if (r.statusCode !== 200) assertProblem(t, r, 412, 'precondition_failed', 'the losers')
  now = await detail(c, p.admin, guarded.id)
  t.equal(now.version, 2)
  t.equal(now.status_history.length, 1, 'exactly one history entry')

  // Mixed moves at once from in_progress: whatever wins, the history matches the responses.
  const mixed = await mustCreate(c, p.creator, { title: 'Mixed race', assigned_to: p.assignee.id })
  await mustStatus(c, p.creator, mixed.id, { status: 'in_progress' })
  const start = await detail(c, p.admin, mixed.id)
  const moves: Array<[Who, Status]> = [[p.creator, 'closed'], [p.assignee, 'open'], [p.manager, 'closed'], [p.admin, 'open'], [p.other, 'open'], [p.assignee, 'closed'], [p.manager, 'open']]
  // p.other is neither creator nor assignee: always 403, never a history entry.
  const mixedResults = await Promise.all(moves.map(([who, to]) => c.status(who, mixed.id, { status: to })))
  const wins = mixedResults.flatMap((r, i) => (r.statusCode === 200 ? [{ task: r.json<Task>(), who: moves[i]![0], to: moves[i]![1], etag: r.headers.etag }] : []))
  mixedResults.forEach((r, i) => {
    if (moves[i]![0] === p.other) assertProblem(t, r, 403, 'forbidden', 'unrelated user in the race')
    else if (r.statusCode !== 200) assertProblem(t, r, 409, 'invalid_transition', 'a losing move')
  })
  t.ok(wins.length >= 1, `at least one move succeeds (${mixedResults.map(r => r.statusCode).join(', ')})`)
  wins.sort((a, b) => a.task.version - b.task.version)
  t.strictSame(wins.map(w => w.task.version), wins.map((_, i) => start.version + 1 + i), 'successful moves got consecutive versions')
  for (const w of wins) {
    t.equal(w.task.status, w.to, 'a 200 reports the status it asked for')
    t.equal(w.etag, `"v${w.task.version}"`)
  }
  const end = await detail(c, p.admin, mixed.id)
  t.strictSame(end.status_history.slice(0, start.status_history.length), start.status_history, 'earlier history untouched')
  const added = end.status_history.slice(start.status_history.length)
  t.equal(added.length, wins.length, 'one history entry per successful response')
  t.strictSame(added.map(e => [e.to, e.changed_by]), wins.map(w => [w.to, w.who.id]), 'entries in version order match the responses')
  end.status_history.forEach((e, i) => t.equal(e.from, i === 0 ? 'open' : end.status_history[i - 1]!.to, `history[${i}] chains`))
  t.equal(end.status, end.status_history.at(-1)?.to, 'the task is in the last entry\'s status')
  t.equal(end.version, start.version + wins.length)
  if (end.status === 'closed') t.match(end.closed_at, TIMESTAMP, 'closed: closed_at set')
  else t.equal(end.closed_at, null, 'not closed: closed_at null')
})

// ------------------------------------------------------------------------------------------
t.test('comments: authors, any role, validation, version, parallel adds, pagination, cursors', async t => {
  const api = await build(t)
  const c = tasksClient(api)
  const p = await people(api)
  const task = await mustCreate(c, p.creator, { title: 'Discussed', assigned_to: p.assignee.id })

  const before = Date.now()
  const res = await c.comment(p.creator, task.id, { body: 'First!' })
  const after = Date.now()
  t.equal(res.statusCode, 201)
  const first = res.json<Comment>()
  t.match(first.id, ULID)
  t.match(first, { task_id: task.id, author_id: p.creator.id, body: 'First!' })
  within(t, first.created_at, before, after, 'created_at')
  for (const who of [p.other, p.assignee, p.manager, p.admin]) {
    const r = await c.comment(who, task.id, { body: `From ${who.id}` })
    t.equal(r.statusCode, 201, 'any role may comment')
    t.equal(r.json<Comment>().author_id, who.id, 'the author is the caller')
  }
  const longest = await c.comment(p.other, task.id, { body: 'b'.repeat(5000) })
  t.equal(longest.statusCode, 201, 'a body of 5000 characters')
  const got = await c.get(p.admin, task.id)
  t.equal(got.json<Task>().version, 1, 'comments do not change the version')
  t.equal(got.headers.etag, '"v1"', 'nor the ETag')
  t.equal(got.json<TaskDetail>().comments.length, 6)

  const bad: Array<[string, unknown]> = [
    ['empty body', { body: '' }],
    ['body over 5000 characters', { body: 'b'.repeat(5001) }],
    ['no body', {}],
    ['body not a string', { body: 5 }],
    ['mass assignment: author_id', { body: 'x', author_id: p.admin.id }],
    ['mass assignment: task_id', { body: 'x', task_id: MISSING_ID }]
  ]
  for (const [name, payload] of bad) assertProblem(t, await c.comment(p.creator, task.id, payload as never), 400, 'validation_failed', name)
  assertProblem(t, await api.request({ method: 'POST', url: `/api/tasks/${task.id}/comments`, headers: { ...api.auth(p.creator.token), 'content-type': 'text/plain' }, payload: 'hi' }), 415, 'unsupported_media_type')
  assertProblem(t, await c.comment(p.creator, MISSING_ID, { body: 'Anyone there?' }), 404, 'not_found', 'comment on an unknown task')
  assertProblem(t, await c.comments(p.creator, MISSING_ID), 404, 'not_found', 'comments of an unknown task')
  assertProblem(t, await c.comment(p.creator, 'not-a-ulid', { body: 'x' }), 400, 'validation_failed')
  t.equal((await detail(c, p.admin, task.id)).comments.length, 6, 'refused comments are not stored')

  // 20 comments at once: all kept.
  const busy = await mustCreate(c, p.creator, { title: 'Busy' })
  const authors = [p.creator, p.assignee, p.manager, p.admin, p.other]
  const parallel = await Promise.all(Array.from({ length: 20 }, (_, i) => c.comment(authors[i % 5]!, busy.id, { body: `parallel ${i}` })))
  t.strictSame(parallel.map(r => r.statusCode), Array(20).fill(201), 'twenty 201s')
  const posted = parallel.map(r => r.json<Comment>())
  t.equal(new Set(posted.map(x => x.id)).size, 20, 'twenty distinct ids')
  const listed = await walk<Comment>(t, api, p.other, `/api/tasks/${busy.id}/comments`, {}, 7)
  t.equal(listed.length, 20, 'all twenty listed')
  t.equal(new Set(listed.map(x => x.id)).size, 20, 'no duplicates')
  t.strictSame([...listed].sort((a, b) => (a.id < b.id ? -1 : 1)), [...posted].sort((a, b) => (a.id < b.id ? -1 : 1)), 'exactly the posted comments')
  t.ok(listed.every((x, i) => i === 0 || listed[i - 1]!.created_at <= x.created_at), 'oldest first')
  t.equal((await detail(c, p.admin, busy.id)).version, 1, 'still version 1')

  // 60 comments one after another; pages of 7: oldest first, none missing, none twice.
  const long = await mustCreate(c, p.creator, { title: 'Long thread' })
  const thread: Comment[] = []
  for (let i = 0; i < 60; i++) {
    const r = await c.comment(authors[i % 5]!, long.id, { body: `comment ${String(i).padStart(2, '0')}` })
    if (r.statusCode !== 201) throw new Error(`comment ${i}: ${r.statusCode} ${r.body}`)
    thread.push(r.json<Comment>())
    await sleep(2)
  }
  t.ok(thread[0]!.created_at < thread[59]!.created_at, 'the thread spans time (so the order check means something)')
  const pages = await walk<Comment>(t, api, p.assignee, `/api/tasks/${long.id}/comments`, {}, 7)
  t.strictSame(pages.map(x => x.body), thread.map(x => x.body), 'every comment once, oldest first')
  t.strictSame(pages, thread, 'as POST returned them')

  // The detail holds the oldest 50; its cursor continues in GET /comments.
  const d = await detail(c, p.other, long.id)
  t.strictSame(d.comments.map(x => x.id), thread.slice(0, 50).map(x => x.id), 'detail: the oldest 50')
  t.type(d.comments_next_cursor, 'string', 'detail: a cursor for the rest')
  const rest = d.comments_next_cursor ? await walk<Comment>(t, api, p.other, `/api/tasks/${long.id}/comments`, {}, 20, d.comments_next_cursor) : []
  t.strictSame(rest.map(x => x.id), thread.slice(50).map(x => x.id), 'the cursor of the detail leads to the other 10')

  // Cursors: tampered, from another task, malformed; bad limits.
  const page1 = (await c.comments(p.other, long.id, '?limit=7')).json<Page<Comment>>()
  t.equal(page1.items.length, 7)
  t.type(page1.next_cursor, 'string')
  const cursor = String(page1.next_cursor)
  const page2 = await c.comments(p.other, long.id, qs({ limit: 7, cursor }))
  t.strictSame(page2.json<Page<Comment>>().items.map(x => x.id), thread.slice(7, 14).map(x => x.id), 'the cursor continues where the page ended')
  assertProblem(t, await c.comments(p.other, long.id, qs({ limit: 7, cursor: tamper(cursor) })), 400, 'invalid_cursor', 'tampered cursor')
  assertProblem(t, await c.comments(p.other, long.id, qs({ limit: 7, cursor: `${cursor.slice(0, -3)}abc` })), 400, 'invalid_cursor', 'tampered signature')
  assertProblem(t, await c.comments(p.other, busy.id, qs({ limit: 7, cursor })), 400, 'invalid_cursor', "another task's cursor")
  assertProblem(t, await c.comments(p.other, long.id, '?cursor=!!!'), 400, 'validation_failed', 'cursor outside the alphabet')
  for (const q of ['limit=0', 'limit=101', 'limit=abc', 'unknown=1']) {
    assertProblem(t, await c.comments(p.other, long.id, `?${q}`), 400, 'validation_failed', q)
  }

  // Comments of a deleted task are gone with it.
  t.equal((await c.remove(p.creator, long.id)).statusCode, 204)
  assertProblem(t, await c.comment(p.other, long.id, { body: 'Too late' }), 404, 'not_found', 'comment on a deleted task')
  assertProblem(t, await c.comments(p.other, long.id), 404, 'not_found', 'comments of a deleted task')
})

// ------------------------------------------------------------------------------------------
t.test('delete: who may, soft delete is 404 everywhere and absent from lists', async t => {
  const api = await build(t)
  const c = tasksClient(api)
  const p = await people(api)
  const task = await mustCreate(c, p.creator, { title: 'To be deleted', assigned_to: p.assignee.id })
  const keep = await mustCreate(c, p.creator, { title: 'To be kept', assigned_to: p.assignee.id })
  await c.comment(p.other, task.id, { body: 'A comment that goes with it' })

  assertProblem(t, await c.remove(p.assignee, task.id), 403, 'forbidden', 'the assignee may not delete')
  assertProblem(t, await c.remove(p.other, task.id), 403, 'forbidden', 'an unrelated user may not delete')
  assertProblem(t, await c.remove(undefined, task.id), 401, 'token_invalid', 'anonymous')
  t.equal((await detail(c, p.admin, task.id)).version, 1, 'refused deletes change nothing')

  const del = await c.remove(p.creator, task.id)
  t.equal(del.statusCode, 204, 'the creator may delete')
  t.equal(del.body, '', 'no body')

  assertProblem(t, await c.get(p.creator, task.id), 404, 'not_found', 'get')
  assertProblem(t, await c.update(p.creator, task.id, { title: 'Undead' }), 404, 'not_found', 'update')
  assertProblem(t, await c.status(p.creator, task.id, { status: 'in_progress' }), 404, 'not_found', 'status')
  assertProblem(t, await c.comment(p.creator, task.id, { body: 'Hello?' }), 404, 'not_found', 'comment')
  assertProblem(t, await c.comments(p.creator, task.id), 404, 'not_found', 'comments')
  assertProblem(t, await c.remove(p.creator, task.id), 404, 'not_found', 'deleting again')
  assertProblem(t, await c.remove(p.admin, task.id), 404, 'not_found', 'deleting again as admin')

  for (const q of ['', `?created_by=${p.creator.id}`, `?assigned_to=${p.assignee.id}`, '?status=open', '?priority=medium']) {
    const ids = (await walk<Task>(t, api, p.admin, '/api/tasks', Object.fromEntries(new URLSearchParams(q)), 100)).map(x => x.id)
    t.strictSame(ids, [keep.id], `list ${q || '(no filter)'}: only the live task`)
  }
  const mine = await walk<Task>(t, api, p.assignee, '/api/tasks', { assigned_to: 'me' }, 100)
  t.strictSame(mine.map(x => x.id), [keep.id], 'assigned_to=me: only the live task')

  // Managers and admins may delete any task.
  const byManager = await mustCreate(c, p.other, { title: 'Deleted by a manager' })
  const byAdmin = await mustCreate(c, p.manager, { title: 'Deleted by an admin' })
  t.equal((await c.remove(p.manager, byManager.id)).statusCode, 204, 'manager')
  t.equal((await c.remove(p.admin, byAdmin.id)).statusCode, 204, 'admin')
  assertProblem(t, await c.get(p.admin, byManager.id), 404, 'not_found')
  assertProblem(t, await c.get(p.admin, byAdmin.id), 404, 'not_found')
  assertProblem(t, await c.remove(p.admin, MISSING_ID), 404, 'not_found', 'unknown id')
  assertProblem(t, await c.remove(p.admin, 'not-a-ulid'), 400, 'validation_failed', 'malformed id')
  t.equal((await detail(c, p.other, keep.id)).title, 'To be kept', 'the other task is untouched')
})

// ------------------------------------------------------------------------------------------
t.test('list tasks: every filter alone and combined, newest first, pagination, bad queries, cursors', async t => {
  const api = await build(t)
  const c = tasksClient(api)
  const p = await people(api)
  const third = await api.userWithRole('user')
  const creators = [p.creator, p.assignee, p.manager, p.admin, p.other]
  const assignees = [null, p.creator.id, p.assignee.id, third.id]

  // 30 tasks, 2 ms apart (distinct created_at), with varied fields; then statuses; then one deletion.
  const tasks: Task[] = []
  for (let i = 0; i < 30; i++) {
    const who = creators[i % 5]!
    const payload = {
      title: `Task ${String(i).padStart(2, '0')}`,
      priority: PRIORITIES[Math.floor(i / 3) % 4],
      assigned_to: assignees[i % 4],
      due_at: i % 3 === 0 ? null : day(i)
    }
    tasks.push(await mustCreate(c, who, payload))
    await sleep(2)
  }
  t.ok(tasks[0]!.created_at < tasks[29]!.created_at, 'creation spans time')
  for (let i = 0; i < 30; i++) {
    const who = creators[i % 5]!
    if (i % 6 === 1 || i % 6 === 2 || i % 6 === 3) tasks[i] = await mustStatus(c, who, tasks[i]!.id, { status: 'in_progress' })
    if (i % 6 === 3) tasks[i] = await mustStatus(c, who, tasks[i]!.id, { status: 'closed' })
  }
  const deleted = tasks[13]!
  t.equal((await c.remove(p.admin, deleted.id)).statusCode, 204)
  /** The live tasks, newest first: what every list must be a filtered view of. */
  const live = tasks.filter(x => x.id !== deleted.id).reverse()

  const check = async (name: string, who: Who, query: Record<string, string>, keep: (x: Task) => boolean) => {
    const expected = live.filter(keep)
    for (const limit of [4, 100]) {
      const items = await walk<Task>(t, api, who, '/api/tasks', query, limit)
      t.strictSame(items.map(x => x.title), expected.map(x => x.title), `${name} (limit=${limit}): all matching, newest first, once each`)
      if (limit === 4) t.strictSame(items.map(taskPart), expected.map(taskPart), `${name}: the items are the current tasks`)
    }
    return expected.length
  }
  const counts: Record<string, number> = {}
  counts.all = await check('no filter', p.other, {}, () => true)
  t.equal(counts.all, 29, 'fixture: 29 live tasks')
  for (const s of ['open', 'in_progress', 'closed'] as const) {
    counts[s] = await check(`status=${s}`, p.creator, { status: s }, x => x.status === s)
  }
  t.equal(counts.open! + counts.in_progress! + counts.closed!, 29, 'the statuses partition the tasks')
  for (const pr of PRIORITIES) await check(`priority=${pr}`, p.manager, { priority: pr }, x => x.priority === pr)
  const sp = await check('status=in_progress&priority=critical', p.assignee, { status: 'in_progress', priority: 'critical' }, x => x.status === 'in_progress' && x.priority === 'critical')
  t.ok(sp > 0 && sp < 29, `fixture: a selective combination (${sp})`)
  await check('status=open&priority=low', p.assignee, { status: 'open', priority: 'low' }, x => x.status === 'open' && x.priority === 'low')
  const mine = await check('assigned_to=me (a user)', p.assignee, { assigned_to: 'me' }, x => x.assigned_to === p.assignee.id)
  t.ok(mine > 0, 'fixture: the assignee has tasks')
  await check('assigned_to=me (the creator)', p.creator, { assigned_to: 'me' }, x => x.assigned_to === p.creator.id)
  await check('assigned_to=me (nobody assigned it to the admin)', p.admin, { assigned_to: 'me' }, x => x.assigned_to === p.admin.id)
  await check('assigned_to=<id>', p.admin, { assigned_to: third.id }, x => x.assigned_to === third.id)
  await check('assigned_to=<id>&status=open', p.other, { assigned_to: third.id, status: 'open' }, x => x.assigned_to === third.id && x.status === 'open')
  await check('created_by=<user>', p.admin, { created_by: p.creator.id }, x => x.created_by === p.creator.id)
  await check('created_by=<manager>&priority=medium', p.other, { created_by: p.manager.id, priority: 'medium' }, x => x.created_by === p.manager.id && x.priority === 'medium')
  await check('event_id=<id>', p.admin, { event_id: MISSING_ID }, x => x.event_id === MISSING_ID)

  // Time windows: *_from inclusive, *_to exclusive.
  const from = tasks[10]!.created_at
  const to = tasks[20]!.created_at
  const window = await check('created_from&created_to', p.other, { created_from: from, created_to: to }, x => x.created_at >= from && x.created_at < to)
  t.equal(window, 9, 'tasks 10..19 without the deleted 13: the from bound is inclusive, the to bound exclusive')
  await check('created_from', p.other, { created_from: tasks[25]!.created_at }, x => x.created_at >= tasks[25]!.created_at)
  await check('created_to', p.other, { created_to: tasks[3]!.created_at }, x => x.created_at < tasks[3]!.created_at)
  await check('created_from&created_to&status', p.other, { created_from: from, created_to: to, status: 'open' }, x => x.created_at >= from && x.created_at < to && x.status === 'open')
  const dueWindow = await check('due_from&due_to', p.creator, { due_from: day(5), due_to: day(14) }, x => x.due_at !== null && x.due_at >= day(5) && x.due_at < day(14))
  t.equal(dueWindow, 5, 'due on days 5, 7, 8, 10, 11 (5 inclusive; 13 deleted; 14 exclusive)')
  await check('due_from', p.creator, { due_from: day(20) }, x => x.due_at !== null && x.due_at >= day(20))
  const dueTo = await check('due_to', p.creator, { due_to: day(4) }, x => x.due_at !== null && x.due_at < day(4))
  t.equal(dueTo, 2, 'due_to leaves out tasks without a due date (days 1 and 2)')
  await check('due_from&priority', p.manager, { due_from: day(10), priority: 'high' }, x => x.due_at !== null && x.due_at >= day(10) && x.priority === 'high')

  // Bad queries: 400, never 5xx.
  for (const q of ['limit=0', 'limit=101', 'limit=abc', 'status=bogus', 'priority=urgent', 'assigned_to=notanid', 'assigned_to=ME',
    'created_by=me', 'event_id=123', 'created_from=yesterday', 'created_to=2027-01-01', 'due_from=tomorrow', 'due_to=2027-13-45T00:00:00.000Z',
    'unknown=1', 'cursor=!!!']) {
    assertProblem(t, await c.list(p.admin, `?${q}`), 400, 'validation_failed', q)
  }

  // Cursors belong to their query.
  const openPage = (await c.list(p.admin, '?status=open&limit=4')).json<Page<Task>>()
  t.type(openPage.next_cursor, 'string', 'a first page with a cursor')
  const cursor = String(openPage.next_cursor)
  const next = await c.list(p.admin, qs({ status: 'open', limit: 4, cursor }))
  t.equal(next.statusCode, 200, 'the cursor works with its own filter')
  assertProblem(t, await c.list(p.admin, qs({ status: 'closed', limit: 4, cursor })), 400, 'invalid_cursor', 'another status')
  assertProblem(t, await c.list(p.admin, qs({ limit: 4, cursor })), 400, 'invalid_cursor', 'no filter')
  assertProblem(t, await c.list(p.admin, qs({ status: 'open', priority: 'low', limit: 4, cursor })), 400, 'invalid_cursor', 'an extra filter')
  assertProblem(t, await c.list(p.admin, qs({ status: 'open', limit: 4, cursor: tamper(cursor) })), 400, 'invalid_cursor', 'tampered')
  assertProblem(t, await c.list(p.admin, qs({ status: 'open', limit: 4, cursor: 'bm90LWEtY3Vyc29y' })), 400, 'invalid_cursor', 'made up')
})

t.test('review regressions: times the service cannot store are a 400, and lists keep working', async t => {
  const api = await build(t)
  const user = await api.userWithRole('user')
  // A leap second is a time the service reads (as :59.999): see the contract test of stated rules.
  for (const due of ['9999-12-31T23:59:59-23:59']) {
    assertProblem(t, await api.request({ method: 'POST', url: '/api/tasks', headers: api.auth(user.token), payload: { title: 'x', due_at: due } }), 400, 'validation_failed', `due_at ${due}`)
    assertProblem(t, await api.request({ method: 'GET', url: `/api/tasks?due_to=${encodeURIComponent(due)}`, headers: api.auth(user.token) }), 400, 'validation_failed')
    assertProblem(t, await api.request({ method: 'GET', url: `/api/events?from=${encodeURIComponent(due)}`, headers: api.auth(user.token) }), 400, 'validation_failed')
  }
  t.equal((await api.request({ method: 'GET', url: '/api/tasks', headers: api.auth(await api.adminToken()) })).statusCode, 200, 'the list still works')
})

// ------------------------------------------------------------------------------------------
// Issue 15, finding 2: a plain user could grow a task item to DynamoDB's 400 KB limit with
// status changes, after which every change and every DELETE was a 500. The item now keeps its
// 20 most recent changes; the whole history has its own table and GET /api/tasks/{id}/history.

const STATUS_CYCLE: Status[] = ['in_progress', 'closed', 'open', 'closed', 'open']
/** The longest comment (2,000 characters), multi-byte: 5,995 UTF-8 bytes but 2,000 UTF-16 units (what the stand-in counts). */
const euroComment = (i: number): string => `${String(i).padStart(5, '0')}${'€'.repeat(1995)}`
/** 200 and 10,000 characters of 4 UTF-8 bytes each: the largest title and description. */
const WIDEST_TITLE = '𝄞'.repeat(200)
const WIDEST_DESCRIPTION = '𝄞'.repeat(10000)

/** The stored task item, unmarshalled. */
async function storedTask (api: Api, id: string): Promise<Record<string, any>> {
  const res = await api.app.db.client.getItem({ TableName: `${api.config.tablePrefix}tasks`, Key: { id: { S: id } }, ConsistentRead: true })
  return res.Item ? unmarshall(res.Item) : {}
}

/** Every entry of the history table for a task, in key order. */
async function historyTable (api: Api, id: string): Promise<Array<Record<string, any>>> {
  const items: Array<Record<string, any>> = []
  let start: Record<string, any> | undefined
  do {
    const res = await api.app.db.client.query({
      TableName: `${api.config.tablePrefix}task-history`,
      KeyConditionExpression: 'task_id = :t',
      ExpressionAttributeValues: { ':t': { S: id } },
      ...(start ? { ExclusiveStartKey: start } : {})
    })
    items.push(...(res.Items ?? []).map(i => unmarshall(i)))
    start = res.LastEvaluatedKey
  } while (start)
  return items
}

/** A task created from a fresh CloudWatch alarm event by `who`. */
async function taskFromEvent (t: Test, api: Api, who: Who, payload: object): Promise<{ task: Task, eventId: string }> {
  const account = '210987654321'
  const reg = await api.request({
    method: 'POST',
    url: '/api/config/aws-accounts',
    headers: api.auth(await api.adminToken()),
    payload: { account_id: account, name: 'history test', role_arn: `arn:aws:iam::${account}:role/MonitoringReadOnly` }
  })
  t.equal(reg.statusCode, 201, 'account registered')
  const envelope = JSON.parse(readFileSync(new URL('./fixtures/events/cloudwatch-alarm.json', import.meta.url), 'utf8'))
  envelope.id = randomUUID()
  envelope.account = account
  envelope.resources = [`arn:aws:cloudwatch:us-east-1:${account}:alarm:history-test`]
  envelope.detail.alarmName = 'history-test'
  const ingest = await api.request({ method: 'POST', url: '/api/events/ingest', headers: { 'x-api-key': reg.json().api_key }, payload: envelope })
  t.equal(ingest.statusCode, 202, 'event ingested')
  const eventId = ingest.json().results[0].event_id as string
  const res = await api.request({ method: 'POST', url: `/api/events/${eventId}/create-task`, headers: api.auth(who.token), payload })
  t.equal(res.statusCode, 201, `task created from the event (${res.body.slice(0, 200)})`)
  return { task: res.json<Task>(), eventId }
}

type Change = Pick<HistoryEntry, 'from' | 'to' | 'changed_by' | 'comment'>
const essentials = (e: HistoryEntry): Change => ({ from: e.from, to: e.to, changed_by: e.changed_by, comment: e.comment })

t.test('the transition table (issue 15 product change: open → closed)', async t => {
  const statuses: Status[] = ['open', 'in_progress', 'closed']
  const allowed = new Set(['open>in_progress', 'open>closed', 'in_progress>closed', 'in_progress>open', 'closed>open'])
  for (const from of statuses) {
    for (const to of statuses) {
      const ok = allowed.has(`${from}>${to}`)
      let code: string | undefined
      try { assertTransition(from, to) } catch (err) { code = err instanceof DomainError ? err.code : String(err) }
      t.equal(code, ok ? undefined : 'invalid_transition', `${from} → ${to} ${ok ? 'allowed' : 'refused'}`)
      t.equal(TRANSITIONS[from].includes(to), ok)
    }
  }
})

t.test('status history: 300 changes with the longest multi-byte comments never reach the item limit (issue 15, finding 2)', async t => {
  const api = await build(t)
  const c = tasksClient(api)
  const p = await people(api)
  // The largest task there is: widest title and description, created from an event by a plain user.
  const { task, eventId } = await taskFromEvent(t, api, p.creator, { title: WIDEST_TITLE, description: WIDEST_DESCRIPTION, assigned_to: p.assignee.id })
  const expected: Change[] = []
  let status: Status = 'open'
  const started = Date.now()
  for (let i = 0; i < 300; i++) {
    const to = STATUS_CYCLE[i % STATUS_CYCLE.length]!
    const res = await c.status(p.creator, task.id, { status: to, comment: euroComment(i) })
    if (res.statusCode !== 200) {
      t.fail(`change ${i + 1} (${status} → ${to}): ${res.statusCode} ${res.body.slice(0, 200)}`)
      return
    }
    expected.push({ from: status, to, changed_by: p.creator.id, comment: euroComment(i) })
    status = to
  }
  t.pass(`300 status changes by the creator, all 200 (${Date.now() - started} ms)`)

  const item = await storedTask(api, task.id)
  const size = itemSize(item)
  t.ok(size < MAX_ITEM_BYTES, `the stored item weighs ${size} bytes (UTF-8), under the 400 KB limit`)
  t.ok(size < 250_000, 'and well under it: its size no longer grows with the number of changes')
  t.equal(item.status_history.length, 20, 'the item holds 20 changes')
  t.equal(item.version, 301)

  const d = await detail(c, p.other, task.id)
  t.equal(d.status_history.length, 20, 'GET task: the 20 most recent changes')
  t.strictSame(d.status_history.map(essentials), expected.slice(-20), 'the latest 20, oldest first')
  t.equal(d.status, status)

  for (const limit of [100, 37]) {
    const all = await walk<HistoryEntry>(t, api, p.other, `/api/tasks/${task.id}/history`, {}, limit)
    t.equal(all.length, 300, `GET history (limit ${limit}): all 300 changes`)
    t.strictSame(all.map(essentials), expected, `limit ${limit}: every change, oldest first, with who and why`)
    t.ok(all.every((e, i) => i === 0 || all[i - 1]!.changed_at <= e.changed_at), 'changed_at never goes back')
  }

  // The admin and the creator can still change the task and delete it.
  const byAdmin = await c.status(p.admin, task.id, { status: 'in_progress', comment: euroComment(300) })
  t.equal(byAdmin.statusCode, 200, `the admin changes the status (${byAdmin.body.slice(0, 120)})`)
  const byCreator = await c.status(p.creator, task.id, { status: 'closed', comment: euroComment(301) })
  t.equal(byCreator.statusCode, 200, 'the creator changes the status')
  t.equal((await c.update(p.creator, task.id, { title: WIDEST_TITLE.slice(2) + '€' })).statusCode, 200, 'the creator edits it')
  t.equal((await c.comment(p.creator, task.id, { body: '€'.repeat(5000) })).statusCode, 201, 'and comments on it')
  const history = await walk<HistoryEntry>(t, api, p.admin, `/api/tasks/${task.id}/history`, {}, 100)
  t.equal(history.length, 302, '302 changes')
  t.strictSame(history.slice(-2).map(e => [e.from, e.to, e.changed_by]), [['open', 'in_progress', p.admin.id], ['in_progress', 'closed', p.creator.id]])
  t.ok(itemSize(await storedTask(api, task.id)) < 250_000, 'still small')

  const del = await c.remove(p.creator, task.id)
  t.equal(del.statusCode, 204, 'the creator deletes it')
  assertProblem(t, await c.get(p.admin, task.id), 404, 'not_found', 'gone')
  assertProblem(t, await c.history(p.admin, task.id), 404, 'not_found', 'its history too')
  const event = await api.request({ method: 'GET', url: `/api/events/${eventId}`, headers: api.auth(p.admin.token) })
  t.equal(event.json().task_id, null, 'the event is free again')
  const again = await api.request({ method: 'POST', url: `/api/events/${eventId}/create-task`, headers: api.auth(p.creator.token), payload: {} })
  t.equal(again.statusCode, 201, 'a new task can be created from it')

  // The admin deletes another task driven past the bound the same way.
  const other = await mustCreate(c, p.creator, { title: WIDEST_TITLE, description: WIDEST_DESCRIPTION })
  for (let i = 0; i < 25; i++) await mustStatus(c, p.creator, other.id, { status: STATUS_CYCLE[i % STATUS_CYCLE.length]!, comment: euroComment(i) })
  t.equal((await c.remove(p.admin, other.id)).statusCode, 204, 'the admin deletes it')
})

/**
 * Replaces a task's stored history with a legacy list, as versions before the bound wrote it
 * (no keys, appended without limit): pairs open → in_progress → open with ASCII comments, the
 * item filled to exactly `target` bytes (UTF-8, which the stand-in also counts for ASCII).
 */
async function makeLegacy (api: Api, id: string, target: number, changedBy: string, opts: { withoutCommentCount?: boolean, change?: (item: Record<string, any>) => void } = {}): Promise<Change[]> {
  const item = await storedTask(api, id)
  if (opts.withoutCommentCount) delete item.comment_count
  opts.change?.(item)
  const entry = (i: number, from: Status, to: Status) => ({
    from, to, changed_by: changedBy, changed_at: new Date(Date.parse('2026-01-01T00:00:00.000Z') + i * 60_000).toISOString(), comment: `${String(i).padStart(5, '0')} ${'x'.repeat(994)}`
  })
  const list: Array<ReturnType<typeof entry>> = []
  const sizeWith = (l: typeof list) => itemSize({ ...item, status_history: l, version: 1 + l.length })
  for (let i = 0; ; i += 2) {
    const pair = [entry(i, 'open', 'in_progress'), entry(i + 1, 'in_progress', 'open')]
    if (sizeWith([...list, ...pair]) > target) break
    list.push(...pair)
  }
  // Lengthen the last comments (up to the API's 2,000 characters) to land exactly on target.
  for (let j = list.length - 1; j >= 0 && sizeWith(list) < target; j--) {
    const e = list[j]!
    e.comment += 'y'.repeat(Math.min(2000 - e.comment.length, target - sizeWith(list)))
  }
  if (sizeWith(list) !== target) throw new Error(`legacy item of ${sizeWith(list)} bytes, not ${target}`)
  item.status_history = list
  item.version = 1 + list.length
  await api.app.db.client.putItem({ TableName: `${api.config.tablePrefix}tasks`, Item: marshall(item, { removeUndefinedValues: true }) })
  return list.map(({ from, to, changed_by: by, comment }) => ({ from, to, changed_by: by, comment }))
}

t.test('legacy tasks: an unbounded status_history list at the item limit is read, listed, bounded on the next write (issue 15, finding 2)', async t => {
  const api = await build(t)
  const c = tasksClient(api)
  const p = await people(api)
  // 4 bytes under DynamoDB's limit: one more attribute, a longer title or a deletion mark does not fit.
  const AT_LIMIT = MAX_ITEM_BYTES - 4
  const fresh = (title: string) => mustCreate(c, p.creator, { title, assigned_to: p.assignee.id })
  const allHistory = async (id: string, limit = 100) => (await walk<HistoryEntry>(t, api, p.other, `/api/tasks/${id}/history`, {}, limit)).map(essentials)

  // Reads: GET shows the latest 20, the history lists every legacy entry in order.
  const a = await fresh('Legacy: comment on it')
  const legacyA = await makeLegacy(api, a.id, AT_LIMIT, p.assignee.id, { withoutCommentCount: true })
  t.ok(legacyA.length > 300, `a legacy list of ${legacyA.length} changes`)
  const shown = await detail(c, p.other, a.id)
  t.strictSame(shown.status_history.map(essentials), legacyA.slice(-20), 'GET task: the latest 20 legacy entries')
  t.strictSame(await allHistory(a.id, 100), legacyA, 'GET history: every legacy entry, oldest first')
  t.strictSame(await allHistory(a.id, 33), legacyA, 'the same with pages of 33')

  // A comment needs the comment counter: the item is bounded first (its version unchanged).
  const comment = await c.comment(p.other, a.id, { body: 'Still there?' })
  t.equal(comment.statusCode, 201, `a comment on a legacy task at the limit (${comment.body.slice(0, 150)})`)
  let stored = await storedTask(api, a.id)
  t.equal(stored.status_history.length, 20, 'the item now holds 20 entries')
  t.equal(stored.version, 1 + legacyA.length, 'a comment does not change the version')
  t.equal((await historyTable(api, a.id)).length, legacyA.length - 20 + 1, 'the entries it no longer holds (and the latest) are in the history table')
  t.strictSame(await allHistory(a.id, 100), legacyA, 'no entry lost')
  t.strictSame((await detail(c, p.other, a.id)).comments.map(x => x.body), ['Still there?'])
  const moved = await c.status(p.assignee, a.id, { status: 'closed', comment: 'c'.repeat(2000) })
  t.equal(moved.statusCode, 200, 'then a status change')
  t.strictSame(await allHistory(a.id, 100), [...legacyA, { from: 'open', to: 'closed', changed_by: p.assignee.id, comment: 'c'.repeat(2000) }], 'legacy entries first, then the new one')

  // A status change with the longest comment (before: a 500, the item would exceed the limit).
  const b = await fresh('Legacy: change its status')
  const legacyB = await makeLegacy(api, b.id, AT_LIMIT, p.assignee.id)
  const change = await c.status(p.creator, b.id, { status: 'in_progress', comment: 'z'.repeat(2000) })
  t.equal(change.statusCode, 200, `a status change on a legacy task at the limit (${change.body.slice(0, 150)})`)
  t.equal(change.json<Task>().version, 2 + legacyB.length)
  const expectedB = [...legacyB, { from: 'open' as Status, to: 'in_progress' as Status, changed_by: p.creator.id, comment: 'z'.repeat(2000) }]
  stored = await storedTask(api, b.id)
  t.equal(stored.status_history.length, 20, 'the item now holds 20 entries')
  t.ok(itemSize(stored) < 100_000, `and weighs ${itemSize(stored)} bytes`)
  t.strictSame((await detail(c, p.other, b.id)).status_history.map(essentials), expectedB.slice(-20), 'GET task: the latest 20')
  t.strictSame(await allHistory(b.id, 100), expectedB, 'GET history: every entry, oldest first')
  t.strictSame(await allHistory(b.id, 19), expectedB, 'the same with pages of 19')
  for (let i = 0; i < 3; i++) await mustStatus(c, p.creator, b.id, { status: i % 2 === 0 ? 'open' : 'in_progress' })
  t.equal((await allHistory(b.id)).length, expectedB.length + 3, 'later changes follow')

  // An edit that makes the task larger (before: a 500).
  const d = await fresh('Legacy: edit it')
  await makeLegacy(api, d.id, AT_LIMIT, p.assignee.id)
  const edit = await c.update(p.creator, d.id, { title: 'A much longer title for a legacy task. '.repeat(5), description: 'Now with a description.' })
  t.equal(edit.statusCode, 200, `an edit on a legacy task at the limit (${edit.body.slice(0, 150)})`)
  t.equal((await storedTask(api, d.id)).status_history.length, 20)

  // A deletion (before: a 500 for everyone, the admin included).
  for (const [who, name] of [[p.creator, 'the creator'], [p.admin, 'the admin']] as const) {
    const e = await fresh(`Legacy: deleted by ${name}`)
    const legacyE = await makeLegacy(api, e.id, AT_LIMIT, p.assignee.id)
    const del = await c.remove(who, e.id)
    t.equal(del.statusCode, 204, `${name} deletes a legacy task at the limit (${del.body.slice(0, 150)})`)
    assertProblem(t, await c.get(p.admin, e.id), 404, 'not_found', 'gone')
    t.equal((await historyTable(api, e.id)).length, legacyE.length - 20 + 1, 'its history was kept')
  }

  // A task whose own text (impossible through the API) leaves no room: a 400, never a 500;
  // shortening it is allowed, and then everything works again.
  const f = await fresh('Legacy: huge description')
  const item = await storedTask(api, f.id)
  item.description = 'd'.repeat(AT_LIMIT - itemSize({ ...item, description: '' }))
  t.equal(itemSize(item), AT_LIMIT)
  await api.app.db.client.putItem({ TableName: `${api.config.tablePrefix}tasks`, Item: marshall(item) })
  assertProblem(t, await c.update(p.creator, f.id, { title: 'x'.repeat(200) }), 400, 'validation_failed', 'an edit that would exceed the limit')
  assertProblem(t, await c.remove(p.admin, f.id), 400, 'validation_failed', 'a deletion mark that would exceed the limit')
  t.equal((await storedTask(api, f.id)).version, 1, 'nothing written (GET would not show it: its description is beyond the contract)')
  t.equal((await c.update(p.creator, f.id, { description: 'Shortened.' })).statusCode, 200, 'an edit that shrinks the task')
  t.equal((await c.remove(p.admin, f.id)).statusCode, 204, 'then it can be deleted')
})

/** Fault injection on the app's DynamoDB client for one table (the database stays real); returns the undo. */
function onCommand (api: Api, commands: string[], table: string, fault: () => never): () => void {
  const name = `test-fault-${randomUUID()}`
  api.app.db.client.middlewareStack.add((next, context) => async (args) => {
    const input = args.input as { TableName?: string, RequestItems?: Record<string, unknown> }
    const tables = input.TableName ? [input.TableName] : Object.keys(input.RequestItems ?? {})
    if (!commands.includes(String(context.commandName)) || !tables.includes(`${api.config.tablePrefix}${table}`)) return next(args)
    return fault()
  }, { step: 'initialize', name })
  return () => { api.app.db.client.middlewareStack.remove(name) }
}
const injected = (): never => { throw Object.assign(new Error('injected failure: the process stops here'), { name: 'InternalServerError', $fault: 'server' }) }

t.test('status history: no entry lost, duplicated or invented when a change stops between its writes (issue 15, finding 2)', async t => {
  const api = await build(t)
  const c = tasksClient(api)
  const p = await people(api)
  const task = await mustCreate(c, p.creator, { title: 'Crash safety', assigned_to: p.assignee.id })
  const expected: Change[] = []
  let status: Status = 'open'
  let n = 0
  const nextMove = (): Status => STATUS_CYCLE[n % STATUS_CYCLE.length]!
  const move = async (who: Who): Promise<void> => {
    const to = nextMove()
    await mustStatus(c, who, task.id, { status: to, comment: `change ${n}` })
    expected.push({ from: status, to, changed_by: who.id, comment: `change ${n}` })
    status = to
    n++
  }
  const history = async () => (await walk<HistoryEntry>(t, api, p.other, `/api/tasks/${task.id}/history`, {}, 10)).map(essentials)
  const tableKeys = async () => (await historyTable(api, task.id)).map(r => r.seq as string)
  const key = (version: number): string => `v${String(version).padStart(10, '0')}`
  for (let i = 0; i < 24; i++) await move(i % 2 ? p.assignee : p.creator)
  t.strictSame(await history(), expected, '24 changes, oldest first')
  // Each change stores the latest entry it read before its own write: the table holds all but the newest.
  t.strictSame(await tableKeys(), Array.from({ length: 23 }, (_, i) => key(i + 2)), 'the table: every change but the newest, keyed by the version it produced')

  // 1. The history write fails. A status change read the task together with the newest keys of
  // the table, so it knows that the entry it stores is one the item keeps: it stores it beside
  // the task write (one round trip), and a failure of that store loses nothing.
  let undo = onCommand(api, ['PutItemCommand', 'BatchWriteItemCommand'], 'task-history', injected)
  await move(p.creator)
  undo()
  let d = await detail(c, p.admin, task.id)
  t.equal(d.version, 26, 'the change was made')
  t.strictSame(await history(), expected, 'nothing lost: the entry not stored is still in the item')
  t.strictSame(await tableKeys(), Array.from({ length: 23 }, (_, i) => key(i + 2)), 'the table did not get the entry')

  // 2. The task write fails after (or while) the history is written: the history write only
  // (re)wrote entries that exist, including the one step 1 could not store.
  undo = onCommand(api, ['UpdateItemCommand'], 'tasks', injected)
  assertProblem(t, await c.status(p.creator, task.id, { status: nextMove(), comment: 'never happened' }), 503, 'service_unavailable', 'the task write fails')
  undo()
  t.equal((await detail(c, p.admin, task.id)).version, 26, 'the task did not change')
  t.strictSame(await history(), expected, 'nothing lost, duplicated or invented')
  t.strictSame(await tableKeys(), Array.from({ length: 25 }, (_, i) => key(i + 2)), 'the table now also holds the newest entries (stored beside the failed write: they exist)')
  await move(p.creator)
  t.strictSame(await history(), expected, 'the retried change is recorded once')

  // 3. Entries whose table write was lost are read from the item, and stored again before the
  // item drops them.
  const table = `${api.config.tablePrefix}task-history`
  for (let v = 8; v <= 27; v++) await api.app.db.client.deleteItem({ TableName: table, Key: { task_id: { S: task.id }, seq: { S: key(v) } } })
  t.equal((await tableKeys()).length, 6, 'only the 6 oldest changes left in the table')
  t.strictSame(await history(), expected, 'the reader merges the 20 the item holds: nothing missing')
  await move(p.assignee)
  t.ok((await tableKeys()).includes(key(8)), 'the entry the item dropped was stored first')
  t.ok((await tableKeys()).includes(key(27)), 'and so was the latest one')
  t.strictSame(await history(), expected, 'nothing missing after the item dropped it')

  // 4. Concurrent changes on a full history: one entry per 200, chained, in version order.
  const start = (await detail(c, p.admin, task.id)).version
  const racers: Array<[Who, Status]> = [[p.creator, 'in_progress'], [p.assignee, 'closed'], [p.manager, 'open'], [p.admin, 'closed'], [p.creator, 'open'], [p.assignee, 'in_progress']]
  const results = await Promise.all(racers.map(([who, to]) => c.status(who, task.id, { status: to })))
  for (const r of results) if (r.statusCode !== 200) assertProblem(t, r, 409, 'invalid_transition', 'a losing move')
  const wins = results.flatMap((r, i) => (r.statusCode === 200 ? [{ version: r.json<Task>().version, who: racers[i]![0].id, to: racers[i]![1] }] : []))
    .sort((a, b) => a.version - b.version)
  t.ok(wins.length >= 1, `${wins.length} of the concurrent moves succeeded`)
  t.strictSame(wins.map(w => w.version), wins.map((_, i) => start + 1 + i), 'consecutive versions')
  const all = await history()
  t.equal(all.length, expected.length + wins.length, 'one entry per 200')
  t.strictSame(all.slice(0, expected.length), expected, 'earlier entries untouched')
  t.strictSame(all.slice(expected.length).map(e => [e.to, e.changed_by]), wins.map(w => [w.to, w.who]), 'the new ones in version order')
  all.forEach((e, i) => { if (i > 0 && e.from !== all[i - 1]!.to) t.fail(`entry ${i} does not chain`) })
  d = await detail(c, p.admin, task.id)
  t.strictSame(d.status_history.map(essentials), all.slice(-20), 'GET task: the latest 20')
})
