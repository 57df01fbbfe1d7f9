/**
 * The partner scenario with the client orval generates (configuration: orval.config.mjs and
 * the mutator orval-fetch.ts): the same steps as hey-api.ts. Each call answers
 * `{ data, status, headers }` typed per documented status, so `status` narrows `data`.
 */
import { configure } from '../orval-fetch'
import {
  login, refreshToken, createAwsAccount, ingestEvents, createTaskFromEvent, getTask, updateTask,
  updateTaskStatus, createTask, listTasks
} from '../generated/orval/api'
import type { EventBridgeEnvelope, IngestResult } from '../generated/orval/api'
import { baseUrl, adminEmail, adminPassword, accountNumber, alarmEnvelope, check } from './common'

configure({ baseUrl })

const signedIn = await login({ email: adminEmail, password: adminPassword })
if (signedIn.status !== 200) throw new Error(`login → ${signedIn.status}`)
check(signedIn.data.user.role === 'admin', 'login; the profile is typed (role)')
configure({ token: signedIn.data.access_token })

const account = accountNumber()
const created = await createAwsAccount({ account_id: account, name: `Partner check ${account}`, role_arn: `arn:aws:iam::${account}:role/MonitoringReadOnly` })
if (created.status !== 201) throw new Error(`createAwsAccount → ${created.status}`)
check(created.data.api_key.length >= 16, 'createAwsAccount returns the ingestion key')

const ingested = await ingestEvents(alarmEnvelope(account) as EventBridgeEnvelope, { headers: { 'X-Api-Key': created.data.api_key } })
if (ingested.status !== 202) throw new Error(`ingestEvents → ${ingested.status}`)
const result: IngestResult | undefined = ingested.data.results[0]
check(result, 'one result')
let eventId: string | null = null
switch (result.action) {
  case 'created': case 'updated': case 'resolved': case 'duplicate': eventId = result.event_id; break
  case 'ignored': throw new Error(`ignored: ${result.reason}`)
  case 'rejected': throw new Error(`rejected: ${result.error.code}`)
}
check(eventId, 'the discriminator narrows the result to the new event id')

const fromEvent = await createTaskFromEvent(eventId, undefined)
if (fromEvent.status !== 201) throw new Error(`createTaskFromEvent → ${fromEvent.status}`)
const taskId = fromEvent.data.id
check(fromEvent.headers.get('location') === `/api/tasks/${taskId}`, 'createTaskFromEvent: Location of the new task')

const read = await getTask(taskId)
const etag = read.headers.get('etag')
check(read.status === 200 && etag, `getTask returns the task and its ETag ${etag}`)
const updated = await updateTask(taskId, { priority: 'critical' }, { 'If-Match': etag })
check(updated.status === 200 && updated.data.priority === 'critical', `updateTask with If-Match → ${updated.status}`)
const stale = await updateTask(taskId, { priority: 'low' }, { 'If-Match': etag })
check(stale.status === 412 && stale.data.code === 'precondition_failed', `a stale ETag is a typed 412 (${stale.status === 412 ? stale.data.code : stale.status})`)
const started = await updateTaskStatus(taskId, { status: 'in_progress' }, { 'If-Match': updated.headers.get('etag') ?? '*' })
check(started.status === 200 && started.data.status === 'in_progress', `updateTaskStatus → ${started.status}`)

for (const title of ['Partner check: first', 'Partner check: second']) {
  const made = await createTask({ title, priority: 'medium' })
  check(made.status === 201, `createTask → ${made.status}`)
}
const seen = new Set<string>()
let cursor: string | undefined
let pages = 0
let count = 0
do {
  const page = await listTasks({ limit: 1, ...(cursor ? { cursor } : {}) })
  if (page.status !== 200) throw new Error(`listTasks → ${page.status}`)
  page.data.items.forEach(task => { seen.add(task.id); count++ })
  cursor = page.data.next_cursor ?? undefined
  pages++
} while (cursor && pages < 1000)
check(count >= 3 && seen.size === count && seen.has(taskId), `paged through ${count} tasks in ${pages} pages of one, each seen once`)

const refreshed = await refreshToken({ refresh_token: signedIn.data.refresh_token })
check(refreshed.status === 200 && refreshed.data.refresh_token !== signedIn.data.refresh_token, 'refreshToken rotates the pair')
configure({ token: refreshed.status === 200 ? refreshed.data.access_token : undefined })

const missing = await getTask('01ARZ3NDEKTSV4RRFFQ69G5FAV')
check(missing.status === 404 && missing.data.code === 'not_found', 'an unknown task is a typed not_found')
console.log('orval scenario: done')
