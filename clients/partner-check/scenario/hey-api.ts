/**
 * The partner scenario with the client @hey-api/openapi-ts generates (configuration:
 * openapi-ts.config.mjs): sign in, register an AWS account, ingest its event (narrowing the
 * discriminated IngestResult), work a task with ETags (a stale one is a typed 412), page
 * through tasks with the cursor, refresh the tokens, switch over a typed error code.
 */
import { client } from '../generated/hey-api/client.gen'
import {
  login, refreshToken, createAwsAccount, ingestEvents, createTaskFromEvent, getTask, updateTask,
  updateTaskStatus, createTask, listTasks
} from '../generated/hey-api/sdk.gen'
import type { IngestResult, Problem, Task } from '../generated/hey-api/types.gen'
import { baseUrl, adminEmail, adminPassword, accountNumber, alarmEnvelope, check } from './common'

let accessToken = ''
let apiKey = ''
client.setConfig({
  baseUrl,
  // Called for each operation with its security scheme from the spec (sdk plugin `auth: true`).
  auth: (scheme) => (scheme.type === 'apiKey' ? apiKey : accessToken)
})

const signedIn = await login({ body: { email: adminEmail, password: adminPassword } })
check(signedIn.data, `login → ${signedIn.response?.status}`)
accessToken = signedIn.data.access_token
check(signedIn.data.user.role === 'admin', 'the profile is typed (role)')

const account = accountNumber()
const created = await createAwsAccount({ body: { account_id: account, name: `Partner check ${account}`, role_arn: `arn:aws:iam::${account}:role/MonitoringReadOnly` } })
check(created.data && created.response?.status === 201, `createAwsAccount → ${created.response?.status}`)
apiKey = created.data.api_key

const ingested = await ingestEvents({ body: alarmEnvelope(account) as never })
check(ingested.data && ingested.response?.status === 202, `ingestEvents → ${ingested.response?.status}`)
const result: IngestResult | undefined = ingested.data.results[0]
check(result, 'one result')
// The discriminator narrows the union: only a processed result has an event to act on.
let eventId: string | null = null
switch (result.action) {
  case 'created': case 'updated': case 'resolved': case 'duplicate': eventId = result.event_id; break
  case 'ignored': throw new Error(`ignored: ${result.reason}`)
  case 'rejected': throw new Error(`rejected: ${result.error.code}`)
}
check(eventId, 'the new event id')

const fromEvent = await createTaskFromEvent({ path: { id: eventId } })
check(fromEvent.data && fromEvent.response?.status === 201, `createTaskFromEvent → ${fromEvent.response?.status}`)
const taskId = fromEvent.data.id

const read = await getTask({ path: { id: taskId } })
const etag = read.response?.headers.get('etag')
check(read.data && etag, `getTask returns the task and its ETag ${etag}`)
const updated = await updateTask({ path: { id: taskId }, headers: { 'If-Match': etag }, body: { priority: 'critical', description: 'Checked by the partner scenario.' } })
check(updated.data?.priority === 'critical', `updateTask with If-Match → ${updated.response?.status}`)
const stale = await updateTask({ path: { id: taskId }, headers: { 'If-Match': etag }, body: { priority: 'low' } })
const staleError: Problem | undefined = stale.error
check(stale.response?.status === 412 && staleError?.code === 'precondition_failed', `a stale ETag is a typed 412 (${staleError?.code})`)
const started = await updateTaskStatus({ path: { id: taskId }, headers: { 'If-Match': updated.response?.headers.get('etag') ?? '*' }, body: { status: 'in_progress' } })
check(started.data?.status === 'in_progress', `updateTaskStatus → ${started.response?.status}`)

for (const title of ['Partner check: first', 'Partner check: second']) {
  const made = await createTask({ body: { title, priority: 'medium' } })
  check(made.response?.status === 201, `createTask → ${made.response?.status}`)
}
const seen = new Set<string>()
let cursor: string | undefined
let pages = 0
let count = 0
do {
  const page = await listTasks({ query: { limit: 1, ...(cursor ? { cursor } : {}) } })
  check(page.data, `listTasks page ${pages + 1} → ${page.response?.status}`)
  page.data.items.forEach((task: Task) => { seen.add(task.id); count++ })
  cursor = page.data.next_cursor ?? undefined
  pages++
} while (cursor && pages < 1000)
check(count >= 3 && seen.size === count && seen.has(taskId), `paged through ${count} tasks in ${pages} pages of one, each seen once`)

const refreshed = await refreshToken({ body: { refresh_token: signedIn.data.refresh_token } })
check(refreshed.data && refreshed.data.refresh_token !== signedIn.data.refresh_token, 'refreshToken rotates the pair')
accessToken = refreshed.data.access_token

const missing = await getTask({ path: { id: '01ARZ3NDEKTSV4RRFFQ69G5FAV' } })
switch (missing.error?.code) {
  case 'not_found': check(missing.response?.status === 404, 'an unknown task is a typed not_found'); break
  default: throw new Error(`unexpected ${missing.response?.status} ${missing.error?.code}`)
}
console.log('hey-api scenario: done')
