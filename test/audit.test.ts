/**
 * The audit trail (issue 20): every listed action through the HTTP API gives exactly one record
 * with the right fields and no secret (table-driven); list filters and pages; admin only;
 * verify, and a record edited in the database behind the API's back; the NDJSON export; the
 * failure policy (fail closed for changes, best effort for authentication events, the outbox).
 */
import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { build, assertProblem, ADMIN_EMAIL, ADMIN_PASSWORD, type Api } from './helper.js'
import { createAuditService } from '../src/modules/audit/audit.service.js'
import { AuditActions, canonicalJson, changedFields, chainKey, dayOf, GENESIS_HASH, hashRecord, linkRecord, scrubSecrets, verifyChain, type AuditEntry, type AuditRecord } from '../src/domain/audit.js'

process.env.AWS_ACCESS_KEY_ID = 'AKIAEXAMPLE'
process.env.AWS_SECRET_ACCESS_KEY = 'example'

const ENV = { AWS_STS_ENDPOINT: 'http://127.0.0.1:9', NOTIFICATION_ALLOW_LOOPBACK: 'true', LOCKOUT_THRESHOLD: '3' }

/** Every record, newest first, read through the export (which pages through the index). */
async function allRecords (api: Api, token: string, query = ''): Promise<AuditRecord[]> {
  const res = await api.request({ method: 'GET', url: `/api/audit-log/export${query}`, headers: api.auth(token) })
  if (res.statusCode !== 200) throw new Error(`export: ${res.statusCode} ${res.body}`)
  return res.body.split('\n').filter(Boolean).map(line => JSON.parse(line) as AuditRecord)
}

let n = 0
const unique = () => `${Date.now().toString(36)}${++n}`

/** An AWS account of the API, its ingestion key, and an event ingested with it. */
async function account (api: Api, admin: string): Promise<{ id: string, accountId: string, apiKey: string }> {
  const accountId = `7${String(++n).padStart(11, '0')}`
  const res = await api.request({ method: 'POST', url: '/api/config/aws-accounts', headers: api.auth(admin), payload: { account_id: accountId, name: `acct ${n}`, role_arn: `arn:aws:iam::${accountId}:role/R` } })
  if (res.statusCode !== 201) throw new Error(res.body)
  return { id: res.json().account.id, accountId, apiKey: res.json().api_key }
}

async function ingest (api: Api, acct: { accountId: string, apiKey: string }): Promise<string> {
  const env = JSON.parse(readFileSync(new URL('./fixtures/events/guardduty-finding.json', import.meta.url), 'utf8'))
  env.id = `audit-${unique()}`
  env.account = acct.accountId
  env.detail.arn = `arn:aws:guardduty:us-east-1:${acct.accountId}:detector/d/finding/${unique()}`
  const res = await api.request({ method: 'POST', url: '/api/events/ingest', headers: { 'x-api-key': acct.apiKey }, payload: env })
  return res.json().results[0].event_id
}

async function channel (api: Api, admin: string, type: 'webhook' | 'slack' = 'webhook', url = 'http://127.0.0.1:9/hook'): Promise<{ id: string, secret?: string }> {
  const res = await api.request({ method: 'POST', url: '/api/config/notification-channels', headers: api.auth(admin), payload: { name: `channel ${unique()}`, type, url } })
  if (res.statusCode !== 201) throw new Error(res.body)
  return { id: res.json().channel.id, secret: res.json().signing_secret }
}

interface Expected {
  action: string
  outcome?: string
  actor: { type: string, id?: string | null, role?: string | null, label?: string | null }
  target: { type: string, id: string | null } | null
  change?: Record<string, unknown> | null
  reason?: string | null
  /** Other actions the same request records (a lockout is also a failed login). */
  also?: string[]
}

t.test('every listed action gives exactly one record with the right fields, and no secret', async t => {
  const api = await build(t, ENV)
  const admin = await api.adminToken()
  const adminId = (await api.request({ method: 'GET', url: '/api/auth/me', headers: api.auth(admin) })).json().id as string
  /** Every secret value the test sees: none may appear in any record. */
  const secrets = new Set<string>([ADMIN_PASSWORD])
  const asAdmin = { type: 'user', id: adminId, role: 'admin', label: ADMIN_EMAIL }
  const call = (method: string, url: string, token: string | null, payload?: unknown) =>
    api.request({ method: method as 'GET', url, headers: token ? api.auth(token) : {}, ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {}) })
  const person = async (role: 'admin' | 'manager' | 'user' = 'user') => {
    const u = await api.userWithRole(role)
    secrets.add(u.password)
    secrets.add(u.token)
    return u
  }

  const rows: Array<{ name: string, act: (mark: () => Promise<void>) => Promise<Expected> }> = [
    {
      name: 'login success',
      act: async (mark) => {
        const u = await person()
        await mark()
        const { token, body } = await api.login(u.email, u.password)
        secrets.add(token)
        secrets.add(body.refresh_token)
        return { action: 'auth.login', actor: { type: 'user', id: u.id, role: 'user', label: u.email }, target: { type: 'user', id: u.id }, change: null }
      }
    },
    {
      name: 'login failure (wrong password)',
      act: async (mark) => {
        const u = await person()
        await mark()
        const wrong = `wrong password ${unique()}`
        secrets.add(wrong)
        assertProblem(t, await call('POST', '/api/auth/login', null, { email: u.email.toUpperCase(), password: wrong }), 401, 'invalid_credentials')
        return { action: 'auth.login_failed', outcome: 'failure', actor: { type: 'anonymous', id: null, role: null, label: u.email }, target: null, reason: 'invalid_credentials' }
      }
    },
    {
      name: 'login failure (unknown e-mail)',
      act: async (mark) => {
        const email = `nobody-${unique()}@example.com`
        assertProblem(t, await call('POST', '/api/auth/login', null, { email, password: 'some password that is long' }), 401, 'invalid_credentials')
        return { action: 'auth.login_failed', outcome: 'failure', actor: { type: 'anonymous', id: null, label: email }, target: null, reason: 'invalid_credentials' }
      }
    },
    {
      name: 'lockout (the failure that reaches LOCKOUT_THRESHOLD)',
      act: async (mark) => {
        const u = await person()
        await mark()
        for (let i = 0; i < 2; i++) await call('POST', '/api/auth/login', null, { email: u.email, password: `wrong password ${i} xx` })
        await mark()
        assertProblem(t, await call('POST', '/api/auth/login', null, { email: u.email, password: 'wrong password 3 xx' }), 401, 'invalid_credentials')
        return { action: 'auth.lockout', outcome: 'failure', actor: { type: 'anonymous', id: null, label: u.email }, target: null, reason: 'too_many_failures', also: ['auth.login_failed'] }
      }
    },
    {
      name: 'refresh-token reuse',
      act: async (mark) => {
        const u = await person()
        await mark()
        const { body } = await api.login(u.email, u.password)
        secrets.add(body.refresh_token)
        const rotated = await call('POST', '/api/auth/refresh', null, { refresh_token: body.refresh_token })
        t.equal(rotated.statusCode, 200)
        secrets.add(rotated.json().refresh_token)
        await mark()
        assertProblem(t, await call('POST', '/api/auth/refresh', null, { refresh_token: body.refresh_token }), 401, 'token_revoked')
        return { action: 'auth.refresh_reuse', outcome: 'failure', actor: { type: 'anonymous', id: null }, target: { type: 'user', id: u.id }, reason: 'refresh_token_reuse' }
      }
    },
    {
      name: 'logout',
      act: async (mark) => {
        const u = await person()
        await mark()
        t.equal((await call('POST', '/api/auth/logout', u.token, {})).statusCode, 204)
        return { action: 'auth.logout', actor: { type: 'user', id: u.id, role: 'user', label: u.email }, target: { type: 'user', id: u.id } }
      }
    },
    {
      name: 'password change',
      act: async (mark) => {
        const u = await person()
        await mark()
        const next = `a brand new passphrase ${unique()}`
        secrets.add(next)
        t.equal((await call('POST', '/api/auth/change-password', u.token, { current_password: u.password, new_password: next })).statusCode, 204)
        return { action: 'auth.password_change', actor: { type: 'user', id: u.id }, target: { type: 'user', id: u.id }, change: null }
      }
    },
    {
      name: 'user create (a temporary password is generated)',
      act: async (mark) => {
        const email = `created-${unique()}@example.com`
        const res = await call('POST', '/api/users', admin, { email, name: 'Created One', role: 'user' })
        t.equal(res.statusCode, 201)
        secrets.add(res.json().temporary_password)
        return { action: 'user.create', actor: asAdmin, target: { type: 'user', id: res.json().user.id }, change: { email: { from: null, to: email }, name: { from: null, to: 'Created One' }, role: { from: null, to: 'user' }, is_active: { from: null, to: true }, must_change_password: { from: null, to: true } } }
      }
    },
    {
      name: 'user update (name)',
      act: async (mark) => {
        const u = await person()
        await mark()
        t.equal((await call('PUT', `/api/users/${u.id}`, admin, { name: 'Renamed' })).statusCode, 200)
        return { action: 'user.update', actor: asAdmin, target: { type: 'user', id: u.id }, change: { name: { from: `user ${u.email.replace(/\D/g, '')}`, to: 'Renamed' } } }
      }
    },
    {
      name: 'role change',
      act: async (mark) => {
        const u = await person()
        await mark()
        t.equal((await call('PUT', `/api/users/${u.id}`, admin, { role: 'manager' })).statusCode, 200)
        return { action: 'user.role_change', actor: asAdmin, target: { type: 'user', id: u.id }, change: { role: { from: 'user', to: 'manager' } } }
      }
    },
    {
      name: 'deactivate',
      act: async (mark) => {
        const u = await person()
        await mark()
        t.equal((await call('DELETE', `/api/users/${u.id}`, admin)).statusCode, 204)
        return { action: 'user.deactivate', actor: asAdmin, target: { type: 'user', id: u.id }, change: { is_active: { from: true, to: false } } }
      }
    },
    {
      name: 'reactivate',
      act: async (mark) => {
        const u = await person()
        await mark()
        await call('DELETE', `/api/users/${u.id}`, admin)
        await mark()
        t.equal((await call('PUT', `/api/users/${u.id}`, admin, { is_active: true })).statusCode, 200)
        return { action: 'user.reactivate', actor: asAdmin, target: { type: 'user', id: u.id }, change: { is_active: { from: false, to: true } } }
      }
    },
    {
      name: 'password reset',
      act: async (mark) => {
        const u = await person()
        await mark()
        const res = await call('POST', `/api/users/${u.id}/reset-password`, admin)
        t.equal(res.statusCode, 200)
        secrets.add(res.json().temporary_password)
        return { action: 'user.password_reset', actor: asAdmin, target: { type: 'user', id: u.id }, change: { must_change_password: { from: false, to: true } } }
      }
    },
    {
      name: 'AWS account create',
      act: async () => {
        const a = await account(api, admin)
        secrets.add(a.apiKey)
        return { action: 'aws_account.create', actor: asAdmin, target: { type: 'aws_account', id: a.id }, change: { account_id: { from: null, to: a.accountId } } }
      }
    },
    {
      name: 'AWS account update',
      act: async (mark) => {
        const a = await account(api, admin)
        secrets.add(a.apiKey)
        await mark()
        t.equal((await call('PUT', `/api/config/aws-accounts/${a.id}`, admin, { name: 'Renamed account', enabled: false })).statusCode, 200)
        return { action: 'aws_account.update', actor: asAdmin, target: { type: 'aws_account', id: a.id }, change: { name: { to: 'Renamed account' }, enabled: { from: true, to: false } } }
      }
    },
    {
      name: 'AWS account delete',
      act: async (mark) => {
        const a = await account(api, admin)
        await mark()
        t.equal((await call('DELETE', `/api/config/aws-accounts/${a.id}`, admin)).statusCode, 204)
        return { action: 'aws_account.delete', actor: asAdmin, target: { type: 'aws_account', id: a.id }, change: { account_id: { from: a.accountId, to: null } } }
      }
    },
    {
      name: 'AWS account key rotation',
      act: async (mark) => {
        const a = await account(api, admin)
        secrets.add(a.apiKey)
        await mark()
        const res = await call('POST', `/api/config/aws-accounts/${a.id}/rotate-key`, admin)
        t.equal(res.statusCode, 200)
        secrets.add(res.json().api_key)
        return { action: 'aws_account.rotate_key', actor: asAdmin, target: { type: 'aws_account', id: a.id }, change: null }
      }
    },
    {
      name: 'AWS account connection test (fails: nothing listens)',
      act: async (mark) => {
        const a = await account(api, admin)
        await mark()
        const res = await call('POST', `/api/config/aws-accounts/${a.id}/test-connection`, admin)
        t.equal(res.json().ok, false)
        return { action: 'aws_account.test_connection', outcome: 'failure', actor: asAdmin, target: { type: 'aws_account', id: a.id }, reason: 'connection_failed' }
      }
    },
    {
      name: 'monitoring settings change',
      act: async (mark) => {
        t.equal((await call('PUT', '/api/config/monitoring', admin, { min_severity: 'high' })).statusCode, 200)
        return { action: 'monitoring_settings.update', actor: asAdmin, target: { type: 'monitoring_settings', id: 'monitoring' }, change: { min_severity: { to: 'high' } } }
      }
    },
    {
      name: 'notification channel create (Slack: the URL is a secret)',
      act: async (mark) => {
        const url = `http://127.0.0.1:9/services/T000/B000/${unique()}secretpart`
        secrets.add(url)
        const c = await channel(api, admin, 'slack', url)
        return { action: 'notification_channel.create', actor: asAdmin, target: { type: 'notification_channel', id: c.id }, change: { name: {}, type: { from: null, to: 'slack' } } }
      }
    },
    {
      name: 'notification channel update',
      act: async (mark) => {
        const c = await channel(api, admin)
        if (c.secret) secrets.add(c.secret)
        await mark()
        t.equal((await call('PUT', `/api/config/notification-channels/${c.id}`, admin, { enabled: false })).statusCode, 200)
        return { action: 'notification_channel.update', actor: asAdmin, target: { type: 'notification_channel', id: c.id }, change: { enabled: { from: true, to: false } } }
      }
    },
    {
      name: 'notification channel delete',
      act: async (mark) => {
        const c = await channel(api, admin)
        if (c.secret) secrets.add(c.secret)
        await mark()
        t.equal((await call('DELETE', `/api/config/notification-channels/${c.id}`, admin)).statusCode, 204)
        return { action: 'notification_channel.delete', actor: asAdmin, target: { type: 'notification_channel', id: c.id }, change: { enabled: { from: true, to: null } } }
      }
    },
    {
      name: 'notification rule create',
      act: async (mark) => {
        const c = await channel(api, admin)
        if (c.secret) secrets.add(c.secret)
        await mark()
        const res = await call('POST', '/api/config/notification-rules', admin, { name: 'Critical findings', channel_ids: [c.id], kinds: ['event.created'], min_severity: 'critical' })
        t.equal(res.statusCode, 201)
        return { action: 'notification_rule.create', actor: asAdmin, target: { type: 'notification_rule', id: res.json().id }, change: { name: { from: null, to: 'Critical findings' }, min_severity: { from: null, to: 'critical' } } }
      }
    },
    {
      name: 'notification rule update',
      act: async (mark) => {
        const c = await channel(api, admin)
        if (c.secret) secrets.add(c.secret)
        const rule = (await call('POST', '/api/config/notification-rules', admin, { name: 'Tasks', channel_ids: [c.id], kinds: ['task.assigned'] })).json()
        await mark()
        t.equal((await call('PUT', `/api/config/notification-rules/${rule.id}`, admin, { enabled: false })).statusCode, 200)
        return { action: 'notification_rule.update', actor: asAdmin, target: { type: 'notification_rule', id: rule.id }, change: { enabled: { from: true, to: false } } }
      }
    },
    {
      name: 'notification rule delete',
      act: async (mark) => {
        const c = await channel(api, admin)
        if (c.secret) secrets.add(c.secret)
        const rule = (await call('POST', '/api/config/notification-rules', admin, { name: 'Gone', channel_ids: [c.id], kinds: ['task.commented'] })).json()
        await mark()
        t.equal((await call('DELETE', `/api/config/notification-rules/${rule.id}`, admin)).statusCode, 204)
        return { action: 'notification_rule.delete', actor: asAdmin, target: { type: 'notification_rule', id: rule.id }, change: { name: { from: 'Gone', to: null } } }
      }
    },
    {
      name: 'notification channel secret rotation',
      act: async (mark) => {
        const c = await channel(api, admin)
        if (c.secret) secrets.add(c.secret)
        await mark()
        const res = await call('POST', `/api/config/notification-channels/${c.id}/rotate-secret`, admin)
        t.equal(res.statusCode, 200)
        secrets.add(res.json().signing_secret)
        return { action: 'notification_channel.rotate_secret', actor: asAdmin, target: { type: 'notification_channel', id: c.id }, change: null }
      }
    },
    {
      name: 'notification channel test',
      act: async (mark) => {
        const c = await channel(api, admin)
        if (c.secret) secrets.add(c.secret)
        await mark()
        t.equal((await call('POST', `/api/config/notification-channels/${c.id}/test`, admin)).json().ok, false)
        return { action: 'notification_channel.test', outcome: 'failure', actor: asAdmin, target: { type: 'notification_channel', id: c.id } }
      }
    },
    {
      name: 'event delete',
      act: async (mark) => {
        const a = await account(api, admin)
        secrets.add(a.apiKey)
        await mark()
        const id = await ingest(api, a)
        t.equal((await call('DELETE', `/api/events/${id}`, admin)).statusCode, 204)
        return { action: 'event.delete', actor: asAdmin, target: { type: 'event', id } }
      }
    },
    {
      name: 'task delete',
      act: async (mark) => {
        const u = await person('manager')
        await mark()
        const task = (await call('POST', '/api/tasks', u.token, { title: 'to delete' })).json().id as string
        t.equal((await call('DELETE', `/api/tasks/${task}`, u.token)).statusCode, 204)
        return { action: 'task.delete', actor: { type: 'user', id: u.id, role: 'manager' }, target: { type: 'task', id: task } }
      }
    },
    {
      name: 'denied attempt of an admin operation (403)',
      act: async (mark) => {
        const u = await person('manager')
        await mark()
        assertProblem(t, await call('POST', '/api/users', u.token, { email: `x-${unique()}@example.com`, name: 'X', role: 'admin' }), 403, 'forbidden')
        return { action: 'access.denied', outcome: 'denied', actor: { type: 'user', id: u.id, role: 'manager' }, target: { type: 'operation', id: 'createUser' }, reason: 'forbidden' }
      }
    }
  ]

  const covered = new Set<string>()
  for (const row of rows) {
    await t.test(row.name, async t => {
      // The row's setup (users, accounts, channels) is recorded too: `mark` snapshots the log
      // after it, so that only the action's own records are new.
      let before = new Set((await allRecords(api, admin)).map(r => r.id))
      const mark = async () => { before = new Set((await allRecords(api, admin)).map(r => r.id)) }
      const expected = await row.act(mark)
      // The admin's own reading of the log (export) is not an audited action.
      const fresh = (await allRecords(api, admin)).filter(r => !before.has(r.id))
      t.same(fresh.map(r => r.action).sort(), [expected.action, ...(expected.also ?? [])].sort(), `exactly one ${expected.action} record${expected.also ? ` (and ${expected.also.join(', ')})` : ''}`)
      const mine = fresh.filter(r => r.action === expected.action)
      const r = mine[0]
      if (!r) return
      covered.add(r.action)
      t.match(r.actor, expected.actor, 'actor')
      t.same(r.target, expected.target, 'target')
      t.equal(r.outcome, expected.outcome ?? 'success', 'outcome')
      if (expected.change !== undefined) {
        if (expected.change === null) t.equal(r.change, null, 'no change recorded')
        else t.match(r.change, expected.change, 'change before → after')
      }
      if (expected.reason !== undefined) t.equal(r.reason, expected.reason, 'reason')
      t.equal(r.ip, '127.0.0.1', 'client address')
      t.equal(r.user_agent, 'lightMyRequest', 'user agent')
      t.match(r.request_id, /^[0-9A-Z]{26}$/, 'request id')
      t.match(r.id, /^[0-9A-HJKMNP-TV-Z]{26}$/, 'a ULID (time-ordered)')
      t.ok(Math.abs(Date.parse(r.at) - Date.now()) < 60_000, 'at: now')
    })
  }
  t.equal(covered.size, AuditActions.length, 'every action of the list has a row')

  // No secret value anywhere in the log (passwords, tokens, API keys, signing secrets, Slack URLs).
  const everything = JSON.stringify(await allRecords(api, admin))
  const leaked = [...secrets].filter(s => s && everything.includes(s))
  t.same(leaked.map(s => s.slice(0, 8)), [], `none of ${secrets.size} secrets appears in a record`)
  t.notMatch(everything, /password_hash|api_key_hash|secret_sealed|url_sealed|\$argon2/, 'no stored secret form either')

  // The request id of a record finds the request (X-Request-Id of the response).
  const res = await api.request({ method: 'POST', url: '/api/auth/logout', headers: { ...api.auth(admin), 'x-request-id': 'trace-me-123' }, payload: {} })
  t.equal(res.statusCode, 204)
  const [logout] = await allRecords(api, (await api.login(ADMIN_EMAIL, ADMIN_PASSWORD)).token, '?action=auth.logout')
  t.equal(logout?.request_id, 'trace-me-123', 'the caller\'s X-Request-Id is the record\'s')
})

t.test('list: filters, pages, newest first, admin only', async t => {
  const api = await build(t, ENV)
  const admin = await api.adminToken()
  const user = await api.userWithRole('user')
  const manager = await api.userWithRole('manager')
  for (let i = 0; i < 5; i++) await api.request({ method: 'POST', url: '/api/auth/login', payload: { email: 'ghost@example.com', password: `wrong guess number ${i}` } })
  await api.request({ method: 'PUT', url: `/api/users/${user.id}`, headers: api.auth(admin), payload: { name: 'Renamed user' } })
  const list = (q: string, token = admin) => api.request({ method: 'GET', url: `/api/audit-log${q}`, headers: api.auth(token) })

  const all = (await list('?limit=100')).json().items as AuditRecord[]
  t.same(all.map(r => r.id), [...all.map(r => r.id)].sort().reverse(), 'newest first')
  t.ok(all.length >= 10, `${all.length} records`)

  const byActor = (await list(`?actor=${user.id}`)).json().items as AuditRecord[]
  t.ok(byActor.length > 0 && byActor.every(r => r.actor.id === user.id), 'actor filter (user id)')
  const byEmail = (await list('?actor=GHOST@example.com')).json().items as AuditRecord[]
  t.same(byEmail.map(r => r.action).sort(), ['auth.lockout', ...Array(5).fill('auth.login_failed')], 'actor filter: the e-mail of failed logins (and its lockout), case-insensitive')
  const byAction = (await list('?action=auth.login_failed')).json().items as AuditRecord[]
  t.same(byAction.map(r => r.reason), ['account_locked', 'account_locked', 'invalid_credentials', 'invalid_credentials', 'invalid_credentials'], 'action filter; past LOCKOUT_THRESHOLD (3) the refusals are account_locked')
  const byTarget = (await list(`?target_type=user&target_id=${user.id}`)).json().items as AuditRecord[]
  t.same(byTarget.map(r => r.action).sort(), ['auth.login', 'user.create', 'user.update'], 'target filter: one user\'s history')
  const byType = (await list('?target_type=user&action=user.update')).json().items as AuditRecord[]
  t.same(byType.map(r => r.target?.id), [user.id], 'target type and action combined')
  const byOutcome = (await list('?outcome=failure')).json().items as AuditRecord[]
  t.ok(byOutcome.length === 6 && byOutcome.every(r => r.outcome === 'failure'), 'outcome filter')
  const combined = (await list('?actor=ghost@example.com&outcome=success')).json().items as AuditRecord[]
  t.equal(combined.length, 0, 'combined filters: all must match')

  // Time range: from inclusive, to exclusive.
  const middle = all[Math.floor(all.length / 2)]!
  const newer = (await list(`?limit=100&from=${encodeURIComponent(middle.at)}`)).json().items as AuditRecord[]
  t.ok(newer.every(r => r.at >= middle.at) && newer.some(r => r.id === middle.id), 'from: at or after')
  const older = (await list(`?limit=100&to=${encodeURIComponent(middle.at)}`)).json().items as AuditRecord[]
  t.ok(older.every(r => r.at < middle.at), 'to: before')
  assertProblem(t, await list('?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z'), 400, 'validation_failed')
  assertProblem(t, await list('?target_id=01JDQ2Z5Y3K4M5N6P7Q8R9S0TV'), 400, 'validation_failed')
  const future = (await list('?from=2099-01-01T00:00:00Z')).json()
  t.same(future, { items: [], next_cursor: null }, 'an empty range')

  // Pages: every record once, in order, for the unfiltered and an index-backed list.
  for (const q of ['', '&action=auth.login_failed']) {
    const seen: string[] = []
    let cursor: string | null = null
    do {
      const res = await list(`?limit=3${q}${cursor ? `&cursor=${cursor}` : ''}`)
      t.equal(res.statusCode, 200)
      const page = res.json()
      t.ok(page.items.length <= 3)
      seen.push(...page.items.map((r: AuditRecord) => r.id))
      cursor = page.next_cursor
    } while (cursor)
    const whole = (await list(`?limit=100${q}`)).json().items.map((r: AuditRecord) => r.id)
    t.same(seen, whole, `pages of 3 give the whole list${q ? ` (${q})` : ''}`)
  }
  const page = (await list('?limit=2')).json()
  assertProblem(t, await list(`?limit=2&action=auth.login&cursor=${page.next_cursor}`), 400, 'invalid_cursor')
  assertProblem(t, await list(`?limit=2&cursor=${page.next_cursor.slice(0, -2)}xx`), 400, 'invalid_cursor')

  // Admin only, for the three operations; their 403s are audited once per minute per actor and operation.
  for (const url of ['/api/audit-log', '/api/audit-log/verify', '/api/audit-log/export']) {
    for (const token of [manager.token, user.token]) assertProblem(t, await api.request({ method: 'GET', url, headers: api.auth(token) }), 403, 'forbidden')
    assertProblem(t, await api.request({ method: 'GET', url }), 401, 'token_invalid')
  }
  for (let i = 0; i < 3; i++) await list('', user.token)
  const denials = (await list(`?action=access.denied&actor=${user.id}`)).json().items as AuditRecord[]
  t.same(denials.map(r => r.target?.id).sort(), ['exportAuditLog', 'listAuditLog', 'verifyAuditLog'], 'one denial record per operation, not one per attempt')
  // Users and managers may call non-admin operations and be refused by object rules: not recorded.
  await api.request({ method: 'GET', url: `/api/users/${manager.id}`, headers: api.auth(user.token) })
  t.equal((await list(`?action=access.denied&actor=${user.id}`)).json().items.length, 3, 'a 403 of an operation open to the role is not an admin-operation denial')
})

t.test('verify: intact chains, then a record edited in the database', async t => {
  const api = await build(t, ENV)
  const admin = await api.adminToken()
  for (let i = 0; i < 12; i++) await api.userWithRole('user')
  const verify = async (q = '') => {
    const res = await api.request({ method: 'GET', url: `/api/audit-log/verify${q}`, headers: api.auth(admin) })
    t.equal(res.statusCode, 200, res.body)
    return res.json()
  }
  const ok = await verify()
  const records = await allRecords(api, admin)
  t.match(ok, { ok: true, first_broken: null, checked: records.length }, `every record of today checked (${records.length})`)
  t.ok(ok.chains >= 1 && ok.chains <= 4, 'spread over the day\'s shards')
  // Each chain is contiguous from 0 and linked.
  const chains = new Map<string, AuditRecord[]>()
  for (const r of [...records].reverse()) chains.set(r.chain, [...(chains.get(r.chain) ?? []), r])
  for (const [chain, rs] of chains) {
    const sorted = rs.sort((a, b) => a.seq - b.seq)
    t.same(sorted.map(r => r.seq), sorted.map((_r, i) => i), `${chain}: positions 0…${sorted.length - 1}`)
    t.equal(sorted[0]!.prev_hash, GENESIS_HASH)
    t.equal(verifyChain(chain, sorted).broken, null, `${chain}: the published fields recompute to the published hashes (a third party can verify the export)`)
  }
  assertProblem(t, await api.request({ method: 'GET', url: '/api/audit-log/verify?from=2026-12-02&to=2026-12-01', headers: api.auth(admin) }), 400, 'validation_failed')
  assertProblem(t, await api.request({ method: 'GET', url: '/api/audit-log/verify?from=2026-01-01&to=2026-12-01', headers: api.auth(admin) }), 400, 'validation_failed')
  t.match(await verify('?from=2020-01-01&to=2020-01-05'), { ok: true, chains: 0, checked: 0 }, 'days without records')

  // Someone with database access edits a record (an UpdateItem straight to the table).
  const longest = [...chains.values()].sort((a, b) => b.length - a.length)[0]!
  const victim = longest[Math.floor(longest.length / 2)]!
  await api.app.db.raw.updateItem(api.app.repos.audit.table, { pk: victim.chain, sk: String(victim.seq).padStart(10, '0') }, { set: { outcome: 'failure' } })
  const broken = await verify()
  t.match(broken, { ok: false, first_broken: { chain: victim.chain, id: victim.id, seq: victim.seq, reason: 'hash_mismatch' } }, 'verify names the edited record')

  // Rewriting the record with a fresh hash moves the break to the next record.
  const { chain: _c, hash: _h, ...content } = { ...victim, outcome: 'failure' as const }
  await api.app.db.raw.updateItem(api.app.repos.audit.table, { pk: victim.chain, sk: String(victim.seq).padStart(10, '0') }, { set: { hash: hashRecord({ ...content, chain: victim.chain }) } })
  const next = longest.find(r => r.seq === victim.seq + 1)!
  t.match(await verify(), { ok: false, first_broken: { id: next.id, reason: 'prev_hash_mismatch' } }, 'a re-hashed record breaks the next link')

  // A record removed leaves a gap: the chain's first record, so the break is found before the edit.
  t.ok(longest.length >= 2, `the longest chain has records to remove and to follow (${longest.length})`)
  await api.app.db.raw.deleteItem(api.app.repos.audit.table, { pk: victim.chain, sk: String(longest[0]!.seq).padStart(10, '0') })
  t.match(await verify(), { ok: false, first_broken: { chain: victim.chain, id: longest[1]!.id, seq: 1, reason: 'sequence_gap' } }, 'a removed record is found: the next one names the gap')
})

t.test('export: NDJSON, streamed, same filters, admin only', async t => {
  const api = await build(t, ENV)
  const admin = await api.adminToken()
  for (let i = 0; i < 130; i++) await api.request({ method: 'POST', url: '/api/auth/login', payload: { email: `spray${i % 7}@example.com`, password: `wrong guess number ${i}` } })
  const res = await api.request({ method: 'GET', url: '/api/audit-log/export?action=auth.login_failed', headers: api.auth(admin) })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/x-ndjson/)
  t.match(res.headers['content-disposition'], /attachment/)
  const lines = res.body.split('\n')
  t.equal(lines.pop(), '', 'every line ends with a newline')
  t.equal(lines.length, 130, 'more than one page (100) of records')
  const ids = lines.map(l => (JSON.parse(l) as AuditRecord).id)
  t.same(ids, [...ids].sort().reverse(), 'newest first')
  const everything = await allRecords(api, admin)
  t.ok(everything.length > 130, 'without filters: every record')
  assertProblem(t, await api.request({ method: 'GET', url: '/api/audit-log/export?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z', headers: api.auth(admin) }), 400, 'validation_failed')
})

t.test('failure policy: changes fail closed, authentication events are best effort', async t => {
  const api = await build(t, ENV)
  const admin = await api.adminToken()
  const user = await api.userWithRole('user')
  const audit = api.app.repos.audit
  // The audit table disappears (an operator error, a region problem): every audit write fails.
  await api.app.db.client.deleteTable({ TableName: audit.table })

  const created = await api.request({ method: 'POST', url: '/api/users', headers: api.auth(admin), payload: { email: 'unrecorded@example.com', name: 'Unrecorded', role: 'user' } })
  assertProblem(t, created, 503, 'service_unavailable')
  t.ok(created.headers['retry-after'], 'Retry-After')
  t.equal(await api.app.repos.users.getByEmail('unrecorded@example.com'), null, 'the change was not made (fail closed: the outbox entry is written before the change)')
  assertProblem(t, await api.request({ method: 'PUT', url: `/api/users/${user.id}`, headers: api.auth(admin), payload: { role: 'admin' } }), 503, 'service_unavailable')
  t.equal((await api.request({ method: 'GET', url: `/api/users/${user.id}`, headers: api.auth(admin) })).json().role, 'user', 'no unrecorded role change')
  assertProblem(t, await api.request({ method: 'PUT', url: '/api/config/monitoring', headers: api.auth(admin), payload: { min_severity: 'high' } }), 503, 'service_unavailable')

  // Logins, failed logins and denials still answer as they would (no DoS amplifier).
  const login = await api.request({ method: 'POST', url: '/api/auth/login', payload: { email: user.email, password: user.password } })
  t.equal(login.statusCode, 200, 'a login is not refused because its record cannot be written')
  assertProblem(t, await api.request({ method: 'POST', url: '/api/auth/login', payload: { email: user.email, password: 'not the password at all' } }), 401, 'invalid_credentials')
  assertProblem(t, await api.request({ method: 'POST', url: '/api/users', headers: api.auth(user.token), payload: { email: 'x@example.com', name: 'X', role: 'user' } }), 403, 'forbidden')
  // Reading the log while it is gone is a 5xx (nothing to read), never a hang.
  const read = await api.app.inject({ method: 'GET', url: '/api/audit-log', headers: api.auth(admin) })
  t.ok(read.statusCode >= 500, `reading a missing log: ${read.statusCode}`)
})

t.test('the outbox: a change whose record cannot be appended is recorded later, never lost', async t => {
  const api = await build(t, ENV)
  const repo = api.app.repos.audit
  const log = { errors: [] as string[], error (_o: object, msg: string) { this.errors.push(msg) }, warn () {} }
  // A service whose appends fail (the outbox still works): the change goes through, its record waits.
  let failing = true
  const flaky = { ...repo, append: (...args: Parameters<typeof repo.append>) => (failing ? Promise.reject(new Error('store down')) : repo.append(...args)) }
  const service = createAuditService(flaky, { log })
  const entry: AuditEntry = { action: 'user.update', outcome: 'success', actor: { type: 'user', id: 'A', role: 'admin', label: null }, target: { type: 'user', id: 'U1' }, ip: '127.0.0.1', user_agent: null, request_id: 'r1', change: null, reason: null }
  const pending = await service.begin(entry)
  t.equal(await service.commit(pending, { change: { name: { from: 'a', to: 'b' } } }), null, 'the append failed: commit reports it, does not throw')
  t.equal(service.metrics.failed, 1, 'counted')
  t.match(log.errors, [/audit_write_failed/], 'logged')
  t.equal((await repo.outboxDue(Date.now() + 1)).length, 1, 'the entry waits in the outbox')
  failing = false
  t.equal(await service.recover(0, Date.now() + 1), 1, 'recovery appends it')
  const [record] = (await service.list({ limit: 10, target_type: 'user', target_id: 'U1' })).items
  t.match(record, { id: pending.id, action: 'user.update', outcome: 'unknown', reason: 'recovered_from_outbox' }, 'outcome unknown: nothing confirmed the change')
  t.equal((await repo.outboxDue(Date.now() + 1)).length, 0, 'the outbox is empty')
  t.equal(await service.recover(0, Date.now() + 1), 0, 'nothing twice')

  // A change that failed leaves nothing: abandon removes its entry.
  const dropped = await service.begin(entry)
  await service.abandon(dropped)
  t.equal((await repo.outboxDue(Date.now() + 1)).length, 0, 'abandoned: no record, no entry')

  // A best-effort write that fails never throws.
  failing = true
  await service.recordBestEffort(entry)
  t.equal(service.metrics.failed, 2, 'a lost best-effort record is counted')
})

t.test('chains: concurrent writers never fork a chain; the domain rules', async t => {
  const api = await build(t, ENV)
  const repo = api.app.repos.audit
  const service = createAuditService(repo, { log: api.app.log, shards: 1 })
  const entry = (i: number): AuditEntry => ({ action: 'auth.login', outcome: 'success', actor: { type: 'user', id: `U${i}`, role: 'user', label: null }, target: null, ip: null, user_agent: null, request_id: `r${i}`, change: null, reason: null })
  // Two services (two instances) with cold and warm head caches, 40 writes at once on one chain.
  const other = createAuditService(repo, { log: api.app.log, shards: 1 })
  const written = await Promise.all(Array.from({ length: 40 }, (_v, i) => (i % 2 ? service : other).record(entry(i))))
  const chain = chainKey(dayOf(Date.now()), 0)
  t.same(written.map(r => r.seq).sort((a, b) => a - b), Array.from({ length: 40 }, (_v, i) => i), 'every position taken exactly once')
  const stored: AuditRecord[] = []
  for await (const r of repo.chainRecords(chain)) stored.push(r)
  t.equal(stored.length, 40)
  t.equal(verifyChain(chain, stored).broken, null, 'one linked chain')
  t.match(await service.verify({}), { ok: true, checked: 40 })

  // Domain rules.
  t.equal(canonicalJson({ b: 1, a: [true, null, { d: 'x', c: undefined }] }), '{"a":[true,null,{"d":"x"}],"b":1}', 'canonical JSON: sorted keys, no undefined')
  t.same(scrubSecrets({ name: 'n', password: 'p', api_key: 'k', nested: { signing_secret: 's', refresh_token: 't', must_change_password: true } }), { name: 'n', nested: { must_change_password: true } }, 'secret-named keys removed at any depth')
  t.same(changedFields({ name: 'a', role: 'user', password_hash: 'x' }, { name: 'b', role: 'user', password_hash: 'y' }, ['name', 'role', 'password_hash']), { name: { from: 'a', to: 'b' } }, 'only changed, never secrets')
  const first = linkRecord(entry(1), { id: '01JDQ2Z5Y3K4M5N6P7Q8R9S0TV', at: '2026-12-01T00:00:00.000Z', chain: 'c' }, null)
  const second = linkRecord(entry(2), { id: '01JDQ2Z5Y3K4M5N6P7Q8R9S0TW', at: '2026-12-01T00:00:01.000Z', chain: 'c' }, first)
  t.equal(second.prev_hash, first.hash)
  t.equal(verifyChain('c', [first, second]).broken, null)
  t.match(verifyChain('c', [first, { ...second, reason: 'edited' }]).broken, { reason: 'hash_mismatch', seq: 1 })
  t.match(verifyChain('c', [second]).broken, { reason: 'sequence_gap' })
})

t.test('configuration: AUDIT_RETENTION_DAYS sets the records\' TTL', async (t: Test) => {
  const api = await build(t, { ...ENV, AUDIT_RETENTION_DAYS: '30' })
  t.equal(api.config.audit.retentionDays, 30)
  await api.adminToken()
  const [r] = await allRecords(api, await api.adminToken())
  const item = await api.app.db.raw.getItem<{ ttl: number }>(api.app.repos.audit.table, { pk: r!.chain, sk: String(r!.seq).padStart(10, '0') })
  const endOfDay = Date.parse(`${dayOf(r!.at)}T00:00:00.000Z`) / 1000 + 86_400
  t.equal(item?.ttl, endOfDay + 30 * 86_400, 'TTL: the end of the record\'s day plus the retention')
  t.equal((await build(t)).config.audit.retentionDays, 400, 'default 400 days')
})
