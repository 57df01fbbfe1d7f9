/**
 * The partner-team path: a client generated from the spec (openapi-typescript types +
 * openapi-fetch) type-checks against the contract and runs a full scenario over HTTP.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import createClient from 'openapi-fetch'
import type { paths } from '../openapi/generated/api-types.js'
import { build, ADMIN_EMAIL, ADMIN_PASSWORD } from './helper.js'

t.test('a generated client runs login → task → ingest → create-task → dashboard', async t => {
  const api = await build(t)
  const baseUrl = await api.app.listen({ port: 0, host: '127.0.0.1' })
  const client = createClient<paths>({ baseUrl })

  const login = await client.POST('/api/auth/login', { body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } })
  t.equal(login.response.status, 200)
  if (!login.data) throw new Error('login failed')
  const authed = createClient<paths>({ baseUrl, headers: { authorization: `Bearer ${login.data.access_token}` } })

  const refreshed = await client.POST('/api/auth/refresh', { body: { refresh_token: login.data.refresh_token } })
  t.equal(refreshed.response.status, 200)
  t.not(refreshed.data?.refresh_token, login.data.refresh_token, 'rotated')

  const bad = await client.POST('/api/auth/login', { body: { email: ADMIN_EMAIL, password: 'not the right one' } })
  t.equal(bad.response.status, 401)
  t.equal(bad.error?.code, 'invalid_credentials', 'problem details are typed on the error side')

  // Create and work a task.
  const task = await authed.POST('/api/tasks', { body: { title: 'Investigate 5xx spike', priority: 'high' } })
  t.equal(task.response.status, 201)
  const id = task.data!.id
  const comment = await authed.POST('/api/tasks/{id}/comments', { params: { path: { id } }, body: { body: 'Looking at the ALB logs.' } })
  t.equal(comment.response.status, 201)
  const started = await authed.PUT('/api/tasks/{id}/status', { params: { path: { id } }, body: { status: 'in_progress' } })
  t.equal(started.data?.status, 'in_progress')
  const etag = started.response.headers.get('etag')!
  const closed = await authed.PUT('/api/tasks/{id}/status', { params: { path: { id }, header: { 'If-Match': etag } }, body: { status: 'closed', comment: 'Fixed by rollback.' } })
  t.equal(closed.data?.status, 'closed')
  t.ok(closed.data?.closed_at)
  const detail = await authed.GET('/api/tasks/{id}', { params: { path: { id } } })
  t.equal(detail.data?.status_history.length, 2)
  t.equal(detail.data?.comments[0]?.body, 'Looking at the ALB logs.')

  // Register an AWS account and ingest an event as EventBridge would.
  const account = await authed.POST('/api/config/aws-accounts', { body: { account_id: '123456789012', name: 'Production', role_arn: 'arn:aws:iam::123456789012:role/MonitoringReadOnly' } })
  t.equal(account.response.status, 201)
  const envelope = JSON.parse(readFileSync(new URL('./fixtures/events/cloudwatch-alarm.json', import.meta.url), 'utf8'))
  const ingested = await client.POST('/api/events/ingest', { headers: { 'X-Api-Key': account.data!.api_key }, body: envelope })
  t.equal(ingested.response.status, 202)
  const result = ingested.data!.results[0]!
  // IngestResult is a discriminated union: `action` narrows it to the processed variant.
  if (result.action !== 'created') throw new Error(`ingestion: ${result.action}`)
  const eventId = result.event_id!

  const fromEvent = await authed.POST('/api/events/{id}/create-task', { params: { path: { id: eventId } } })
  t.equal(fromEvent.response.status, 201)
  t.equal(fromEvent.data?.event_id, eventId)
  const again = await authed.POST('/api/events/{id}/create-task', { params: { path: { id: eventId } }, body: {} })
  t.equal(again.response.status, 409)
  t.equal(again.error?.task_id, fromEvent.data?.id, 'the 409 names the existing task')
  const event = await authed.GET('/api/events/{id}', { params: { path: { id: eventId } } })
  t.equal(event.data?.status, 'acknowledged')

  // The dashboard.
  const overview = await authed.GET('/api/dashboard/overview')
  t.equal(overview.data?.events.total, 1)
  t.equal(overview.data?.tasks.total, 2)
  t.equal(overview.data?.tasks.by_status.closed, 1)
  t.ok(overview.data?.users && overview.data.users.total >= 1)
  const events = await authed.GET('/api/events', { params: { query: { severity: event.data!.severity, limit: 10 } } })
  t.equal(events.data?.items.length, 1)

  const logout = await authed.POST('/api/auth/logout', { body: { refresh_token: refreshed.data!.refresh_token } })
  t.equal(logout.response.status, 204)
  t.equal((await authed.GET('/api/auth/me')).response.status, 401, 'the token is revoked')
})
