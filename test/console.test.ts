/**
 * The web console (console/, served by src/plugins/console.ts) in headless Chromium, driven by
 * playwright-core, against the app listening on 127.0.0.1 with this file's in-process database.
 * Logs in as each role, walks the flows (dashboard, events, create task, comments, status,
 * users, AWS accounts, notifications, temporary password), and checks what each role sees. Every page
 * records console errors, uncaught exceptions and Content-Security-Policy violations (none
 * allowed), and every request URL is checked for tokens (none allowed).
 *
 * Chromium: Debian `chromium` at /usr/bin/chromium, or CHROMIUM_PATH. Without it the file is
 * skipped, except under CI where it fails.
 */
import { existsSync, readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import type { Test } from 'tap'
import { chromium, type Browser, type BrowserContext, type Page, type Locator } from 'playwright-core'
import { build, ADMIN_EMAIL, ADMIN_PASSWORD, type Api } from './helper.js'
import { CONSOLE_CSP } from '../src/plugins/console.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const SCREENSHOT = '/tmp/console-dashboard.png'
const ACCOUNT = '123456789012'
const ALARMS = 24 // more than one page of 20 events

type Json = Record<string, any>

/** The browser globals used by page callbacks (this tsconfig has no DOM library). */
interface StorageLike { getItem: (key: string) => string | null, length: number, key: (i: number) => string | null }
interface BrowserGlobals {
  document: {
    cookie: string
    body: { append: (node: unknown) => void }
    createElement: (tag: 'script') => { textContent: string }
    addEventListener: (type: 'securitypolicyviolation', listener: (e: { violatedDirective: string, blockedURI: string, sourceFile: string, lineNumber: number }) => void) => void
  }
  sessionStorage: StorageLike
  localStorage: StorageLike
  injected?: boolean
}

// ------------------------------------------------------------------------------------------
// Seed data, through the API (every response is checked against the spec by the helper).

const fixture = (name: string): Json => JSON.parse(readFileSync(new URL(`./fixtures/events/${name}.json`, import.meta.url), 'utf8'))
const minutesAgo = (m: number): string => new Date(Date.now() - m * 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z')

function envelopes (): Json[] {
  const severities = ['critical', 'high', 'medium', 'low']
  const alarms = Array.from({ length: ALARMS }, (_, i) => {
    const e = fixture('cloudwatch-alarm')
    const name = `console-alarm-${String(i).padStart(2, '0')}`
    e.id = randomUUID()
    e.account = ACCOUNT
    e.time = minutesAgo(200 - i)
    e.resources = [`arn:aws:cloudwatch:${e.region}:${ACCOUNT}:alarm:${name}`]
    e.detail.alarmName = name
    e.detail.state.value = 'ALARM'
    e.detail.configuration.tags = { severity: severities[i % severities.length], team: 'platform' }
    return e
  })
  const others = ['guardduty-finding', 'securityhub-finding', 'health-issue'].map((name, i) => {
    const e = fixture(name)
    e.id = randomUUID()
    e.time = minutesAgo(100 - i)
    return e
  })
  return [...alarms, ...others]
}

interface Seed {
  api: Api
  admin: { id: string, token: string }
  manager: { id: string, email: string, password: string, token: string }
  user: { id: string, email: string, password: string, token: string }
}

/** Where the onboarding kit says the generic member template is published. */
const MEMBER_TEMPLATE_URL = 'https://cmc-templates.s3.eu-west-1.amazonaws.com/cloud-monitoring-member.json'

async function seed (t: Test): Promise<Seed> {
  // The onboarding kit complete (quick-create links): the service's account, https URL, template.
  // Notification channels may point at 127.0.0.1 (a closed port: the test shows the failure).
  const api = await build(t, { SERVICE_AWS_ACCOUNT_ID: '111111111111', PUBLIC_BASE_URL: 'https://monitoring.example.com', MEMBER_TEMPLATE_URL, NOTIFICATION_ALLOW_LOOPBACK: 'true', NOTIFICATION_TIMEOUT_MS: '2000', NOTIFICATION_GROUP_WINDOW_MS: '0' })
  const token = await api.adminToken()
  const adminId = (await api.request({ method: 'GET', url: '/api/auth/me', headers: api.auth(token) })).json().id
  const manager = await api.userWithRole('manager', { name: 'Mia Manager' })
  const user = await api.userWithRole('user', { name: 'Uma User' })
  const account = await api.request({
    method: 'POST',
    url: '/api/config/aws-accounts',
    headers: api.auth(token),
    payload: { account_id: ACCOUNT, name: 'Production', role_arn: `arn:aws:iam::${ACCOUNT}:role/MonitoringReadOnly`, regions: ['us-east-1'] }
  })
  if (account.statusCode !== 201) throw new Error(`createAwsAccount: ${account.statusCode} ${account.body}`)
  const ingest = await api.request({ method: 'POST', url: '/api/events/ingest', headers: { 'x-api-key': account.json().api_key }, payload: { events: envelopes() } })
  if (ingest.statusCode !== 202 || ingest.json().accepted !== ALARMS + 3) throw new Error(`ingest: ${ingest.statusCode} ${ingest.body.slice(0, 500)}`)
  for (const [who, payload] of [
    [token, { title: 'Rotate the access keys of the batch role', priority: 'high', assigned_to: user.id }],
    [user.token, { title: 'Tune the RDS storage alarm', priority: 'low' }]
  ] as const) {
    const res = await api.request({ method: 'POST', url: '/api/tasks', headers: api.auth(who), payload })
    if (res.statusCode !== 201) throw new Error(`createTask: ${res.statusCode} ${res.body}`)
  }
  return { api, admin: { id: adminId, token }, manager, user }
}

// ------------------------------------------------------------------------------------------
// Browser pages that record what must never happen.

interface Watch {
  /** Console errors, uncaught exceptions, CSP violations, failed console assets, 5xx. */
  errors: string[]
  /** Every URL the page requested or navigated to. */
  urls: string[]
  /** Every access and refresh token the API issued to the page. */
  tokens: Set<string>
  /** POST /api/auth/refresh calls. */
  refreshes: number
  /** The bearer token of the latest API request. */
  bearer: string | undefined
}

async function open (browser: Browser): Promise<{ context: BrowserContext, page: Page, watch: Watch }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-GB', timezoneId: 'UTC' })
  // Runs before the page's own scripts, outside its CSP: reports violations on the console.
  await context.addInitScript(() => {
    const { document } = globalThis as unknown as BrowserGlobals
    document.addEventListener('securitypolicyviolation', e => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`)
    })
  })
  const page = await context.newPage()
  page.setDefaultTimeout(20_000)
  const watch: Watch = { errors: [], urls: [], tokens: new Set(), refreshes: 0, bearer: undefined }
  page.on('console', msg => {
    const text = msg.text()
    // Chrome logs every 4xx fetch as "Failed to load resource"; the API's problem answers are
    // expected in some steps (wrong password, the 401 before a silent refresh).
    if (/Failed to load resource: the server responded with a status of 4\d\d/.test(text) && msg.location().url.includes('/api/')) return
    if (msg.type() === 'error' || /Content.Security.Policy/i.test(text)) watch.errors.push(`console ${msg.type()}: ${text}`)
  })
  page.on('pageerror', err => watch.errors.push(`uncaught: ${err.message}`))
  page.on('request', req => {
    watch.urls.push(req.url())
    const path = new URL(req.url()).pathname
    if (path === '/api/auth/refresh') watch.refreshes++
    const auth = req.headers().authorization
    if (auth) {
      if (!path.startsWith('/api/')) watch.errors.push(`bearer token sent to ${path}`)
      watch.bearer = auth.replace(/^Bearer /, '')
    }
  })
  page.on('framenavigated', frame => { watch.urls.push(frame.url()) })
  page.on('response', async res => {
    const path = new URL(res.url()).pathname
    if (path.startsWith('/console/') && res.status() >= 400) watch.errors.push(`console asset ${path}: ${res.status()}`)
    if (res.status() >= 500) watch.errors.push(`${res.request().method()} ${path}: ${res.status()}`)
    if ((path === '/api/auth/login' || path === '/api/auth/refresh') && res.status() === 200) {
      try {
        const body = await res.json()
        watch.tokens.add(body.access_token)
        watch.tokens.add(body.refresh_token)
      } catch { /* page closed meanwhile */ }
    }
  })
  return { context, page, watch }
}

/** Waits until the view `name` has rendered (a new <main>, no longer busy). */
async function ready (page: Page, name: string): Promise<void> {
  await page.locator(`main[data-view="${name}"][aria-busy="false"]:not([data-stale])`).waitFor()
}

/** Marks the current view, so that `ready` waits for the one that replaces it. */
async function leaving (page: Page): Promise<void> {
  if (page.url().startsWith('http')) await page.locator('main').evaluate(main => main.setAttribute('data-stale', ''))
}

/** Goes to `url` (often only a new hash, in the same document). */
async function visit (page: Page, url: string): Promise<void> {
  await leaving(page)
  await page.goto(url)
}

async function texts (locator: Locator): Promise<string[]> {
  return (await locator.allInnerTexts()).map(s => s.trim())
}

async function loginAs (page: Page, base: string, email: string, password: string): Promise<void> {
  await page.goto(`${base}#/login`)
  await ready(page, 'login')
  await page.fill('input[name=email]', email)
  await page.fill('input[name=password]', password)
  await page.click('form[aria-label="Log in"] button[type=submit]')
}

/** The <nav> links, once the navigation is shown. */
async function navigation (page: Page): Promise<string[]> {
  await page.locator('#nav:not([hidden]) a').first().waitFor()
  return texts(page.locator('#nav a'))
}

async function noError (t: Test, page: Page, where: string): Promise<void> {
  t.ok(await page.locator('#error').isHidden(), `${where}: no error shown${await page.locator('#error').isVisible() ? ` (${await page.locator('#error').innerText()})` : ''}`)
}

/** The count in a dashboard row or tile. */
async function count (page: Page, key: string): Promise<number> {
  const el = page.locator(`[data-count="${key}"]`)
  const text = await (await el.locator('.tile-value').count() ? el.locator('.tile-value') : el.locator('td.num')).innerText()
  return Number(text)
}

// ------------------------------------------------------------------------------------------

const browserMissing = !existsSync(CHROMIUM)
if (browserMissing && !process.env.CI) {
  t.plan(0, `Chromium not found at ${CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM_PATH`)
} else {
  t.test('the console in Chromium', async t => {
    if (browserMissing) {
      t.fail(`Chromium not found at ${CHROMIUM} (CI needs it: apt-get install -y chromium, or set CHROMIUM_PATH)`)
      return
    }
    const s = await seed(t)
    const { api } = s
    await api.app.listen({ port: 0, host: '127.0.0.1' })
    const origin = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`
    const base = `${origin}/console/`
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
    })
    const watches: Watch[] = []
    try {
      await walk(t, s, browser, origin, base, watches)
    } finally {
      await browser.close()
    }

    t.test('no console error, uncaught exception or CSP violation on any page', async t => {
      t.same(watches.flatMap(w => w.errors), [])
    })
    t.test('no token in any URL', async t => {
      const tokens = watches.flatMap(w => [...w.tokens])
      const urls = watches.flatMap(w => w.urls)
      t.ok(tokens.length >= 10, `tokens collected (${tokens.length})`)
      t.ok(urls.length > 50, `URLs collected (${urls.length})`)
      const leaks = urls.filter(u => /access_token|refresh_token|bearer/i.test(u) || tokens.some(tok => u.includes(tok)))
      t.same(leaks, [], 'no URL carries a token')
    })
  })
}

async function walk (t: Test, s: Seed, browser: Browser, origin: string, base: string, watches: Watch[]): Promise<void> {
  const { api } = s
  const admin = await open(browser)
  watches.push(admin.watch)
  const { page } = admin
  const apiGet = async (url: string, token: string) => (await api.request({ method: 'GET', url, headers: api.auth(token) })).json()

  await t.test('served with a strict Content-Security-Policy', async t => {
    const redirect = await api.app.inject({ method: 'GET', url: '/console' })
    t.equal(redirect.statusCode, 301)
    t.equal(redirect.headers.location, '/console/')
    for (const url of ['/console/', '/console/app.js', '/console/app.css', '/console/views/dashboard.js', '/console/vendor/openapi-fetch.js']) {
      const res = await api.app.inject({ method: 'GET', url })
      t.equal(res.statusCode, 200, `${url} is served`)
      t.equal(res.headers['content-security-policy'], CONSOLE_CSP, `${url} has the CSP`)
      t.equal(res.headers['x-content-type-options'], 'nosniff')
    }
    const index = await api.app.inject({ method: 'GET', url: '/console/' })
    t.match(index.headers['content-type'], /^text\/html/)
    t.notMatch(index.body, /<script(?![^>]*\bsrc=)[^>]*>|\sstyle=|\son[a-z]+=/i, 'no inline script, style or handler')
    const vendor = await api.app.inject({ method: 'GET', url: '/console/vendor/openapi-fetch.js' })
    t.match(vendor.headers['content-type'], /javascript/)
    t.match(vendor.body, /function createClient/)
    for (const url of ['/console/tsconfig.json', '/console/vendor/openapi-fetch.d.ts', '/console/../package.json', '/console/nothing.js']) {
      t.equal((await api.app.inject({ method: 'GET', url })).statusCode, 404, `${url} is not served`)
    }
  })

  await t.test('a wrong password shows the problem detail', async t => {
    await loginAs(page, base, ADMIN_EMAIL, 'not the right password')
    const error = page.locator('#error:not([hidden])')
    await error.waitFor()
    t.match(await error.innerText(), /The e-mail or password is incorrect\./)
    t.match(await error.innerText(), /invalid_credentials/)
    t.equal(await page.locator('#nav').isHidden(), true, 'no navigation before login')
  })

  await t.test('the admin logs in and sees every section', async t => {
    await page.fill('input[name=password]', ADMIN_PASSWORD)
    await page.click('form[aria-label="Log in"] button[type=submit]')
    await ready(page, 'dashboard')
    t.same(await navigation(page), ['Dashboard', 'Events', 'Tasks', 'Users', 'AWS accounts', 'Monitoring settings', 'Notifications', 'Audit log'])
    t.notOk(new URL(page.url()).search, 'nothing in the query string')
    t.equal(new URL(page.url()).hash, '#/dashboard')
  })

  await t.test('the dashboard shows the counts of the API', async t => {
    const events = await apiGet('/api/dashboard/events-stats', s.admin.token)
    const tasks = await apiGet('/api/dashboard/tasks-stats', s.admin.token)
    t.equal(events.total, ALARMS + 3)
    t.equal(await count(page, 'events-total'), events.total)
    for (const severity of ['critical', 'high', 'medium', 'low', 'info']) t.equal(await count(page, `severity-${severity}`), events.by_severity[severity], `severity ${severity}`)
    for (const status of ['open', 'acknowledged', 'resolved', 'suppressed']) t.equal(await count(page, `event-status-${status}`), events.by_status[status], `event status ${status}`)
    for (const status of ['open', 'in_progress', 'closed']) t.equal(await count(page, `status-${status}`), tasks.by_status[status], `task status ${status}`)
    for (const priority of ['critical', 'high', 'medium', 'low']) t.equal(await count(page, `priority-${priority}`), tasks.by_priority[priority], `priority ${priority}`)
    t.equal(await count(page, 'my-open-tasks'), 0, 'my open tasks')
    t.equal(await count(page, 'users-active'), 3, 'active users')
    t.equal(await page.locator('.card', { hasText: 'Recent events' }).locator('tbody tr').count(), 10, 'ten recent events')
    await noError(t, page, 'dashboard')
    await page.screenshot({ path: SCREENSHOT, fullPage: true })
  })

  let taskTitle = ''
  let taskUrl = ''
  await t.test('events: next page, a filter, the detail, create a task', async t => {
    await leaving(page)
    await page.click('#nav >> text=Events')
    await ready(page, 'events')
    const rows = page.locator('#events-table tbody tr')
    t.equal(await rows.count(), 20, 'first page of 20')
    const first = await texts(rows.locator('td:nth-child(2)'))
    const next = page.waitForResponse(r => r.url().includes('/api/events?') && r.url().includes('cursor='))
    await page.click('button:has-text("Next")')
    t.equal((await next).status(), 200)
    await page.locator('.page-number', { hasText: 'Page 2' }).waitFor()
    await ready(page, 'events')
    t.equal(await rows.count(), ALARMS + 3 - 20, 'the rest on page 2')
    const second = await texts(rows.locator('td:nth-child(2)'))
    t.same(second.filter(title => first.includes(title)), [], 'page 2 has other events')
    t.ok(await page.locator('button:has-text("Next")').isDisabled(), 'no page 3')

    await page.selectOption('select[name=severity]', 'critical')
    await leaving(page)
    await page.click('form[aria-label="Filter events"] button[type=submit]')
    await page.waitForURL(/#\/events\?severity=critical$/)
    await ready(page, 'events')
    const critical = (await apiGet('/api/dashboard/events-stats', s.admin.token)).by_severity.critical
    await page.locator('#events-table tbody tr').first().waitFor()
    t.equal(await rows.count(), critical, 'only critical events')
    t.same([...new Set(await texts(rows.locator('td:first-child')))], ['critical'])

    await visit(page, `${base}#/events?account_id=12`)
    await ready(page, 'events')
    await page.locator('form[aria-label="Filter events"] .field-error[data-field=account_id]').first().waitFor()
    t.match(await page.locator('#error').innerText(), /validation_failed/, 'a filter refused by the API is marked on its field')
    await visit(page, `${base}#/events?severity=critical`)
    await ready(page, 'events')

    const link = rows.first().locator('td:nth-child(2) a')
    const eventTitle = (await link.innerText()).trim()
    await leaving(page)
    await link.click()
    await ready(page, 'event')
    t.equal((await page.locator('main h1').innerText()).trim(), eventTitle, 'the event detail')
    await noError(t, page, 'event detail')

    taskTitle = `Investigate ${eventTitle}`
    await page.fill('#create-task input[name=title]', taskTitle)
    await page.check('#create-task input[name=assign_to_me]')
    await leaving(page)
    await page.click('#create-task button[type=submit]')
    await page.waitForURL(/#\/tasks\/[0-9A-Z]{26}$/)
    await ready(page, 'task')
    taskUrl = page.url()
    t.equal((await page.locator('main h1').innerText()).trim(), taskTitle, 'the new task')
    t.equal((await page.locator('#task-assignee').innerText()).trim(), 'you')
    t.ok(await page.locator('main a', { hasText: 'Open the event' }).isVisible(), 'linked to the event')
  })

  await t.test('task detail: comment, then in progress, then closed', async t => {
    await page.fill('#add-comment textarea[name=body]', 'Looked at the alarm: the threshold is too low.')
    await page.click('#add-comment button[type=submit]')
    await page.locator('#comments li', { hasText: 'the threshold is too low' }).waitFor()

    await leaving(page)
    await page.click('#task-status button:has-text("Start work")')
    await page.locator('#notice', { hasText: 'Status changed to in progress.' }).waitFor()
    await ready(page, 'task')
    await page.fill('#task-status input[name=comment]', 'Threshold raised.')
    await leaving(page)
    await page.click('#task-status button:has-text("Close")')
    await page.locator('#notice', { hasText: 'Status changed to closed.' }).waitFor()
    await ready(page, 'task')
    const history = await texts(page.locator('#status-history li'))
    t.equal(history.length, 2, 'two status changes')
    t.match(history[0], /open → in progress/)
    t.match(history[1], /in progress → closed/)
    t.match(history[1], /Threshold raised\./)
    t.ok(await page.locator('#task-status button:has-text("Reopen")').isVisible(), 'a closed task can be reopened')
    t.ok(await page.locator('#comments li', { hasText: 'the threshold is too low' }).isVisible(), 'the comment stays')
    await noError(t, page, 'task detail')
  })

  await t.test('tasks list: filter by status', async t => {
    await leaving(page)
    await page.click('#nav >> text=Tasks')
    await ready(page, 'tasks')
    t.equal(await page.locator('#tasks-table tbody tr').count(), 3, 'all three tasks')
    await page.selectOption('form[aria-label="Filter tasks"] select[name=status]', 'closed')
    await leaving(page)
    await page.click('form[aria-label="Filter tasks"] button[type=submit]')
    await page.waitForURL(/#\/tasks\?status=closed$/)
    await ready(page, 'tasks')
    const rows = page.locator('#tasks-table tbody tr')
    t.same(await texts(rows.locator('td:nth-child(2) a')), [taskTitle], 'only the closed task')
    t.same(await texts(rows.locator('td:nth-child(3)')), ['closed'])
  })

  let temporary = ''
  await t.test('the admin creates a user: the temporary password is shown', async t => {
    await leaving(page)
    await page.click('#nav >> text=Users')
    await ready(page, 'users')
    await page.fill('#new-user input[name=email]', 'nina.new@example.com')
    await page.fill('#new-user input[name=name]', 'Nina New')
    await page.selectOption('#new-user select[name=role]', 'user')
    await page.click('#new-user button[type=submit]')
    const secret = page.locator('#user-secret .secret-value')
    await secret.waitFor()
    temporary = (await secret.innerText()).trim()
    t.ok(temporary.length >= 12, 'a temporary password')
    await page.locator('#users-table tbody tr', { hasText: 'nina.new@example.com' }).waitFor()
    t.match(await page.locator('#users-table tbody tr', { hasText: 'nina.new@example.com' }).innerText(), /temporary password/)
    await noError(t, page, 'users')
  })

  await t.test('a field error of the API is shown next to its field', async t => {
    await page.fill('#new-user input[name=email]', 'nina.new@example.com')
    await page.fill('#new-user input[name=name]', 'Nina Again')
    await page.fill('#new-user input[name=password]', 'short')
    await page.click('#new-user button[type=submit]')
    await page.locator('#new-user .field-error[data-field=password]').waitFor()
    t.match(await page.locator('#error').innerText(), /validation_failed/)
    await page.fill('#new-user input[name=password]', '')
    await page.click('#new-user button[type=submit]')
    await page.locator('#error', { hasText: 'email_taken' }).waitFor()
    t.equal(await page.locator('#new-user .field-error').count(), 0, 'field errors cleared')
  })

  let apiKey = ''
  let signingSecret = ''
  await t.test('the admin registers an AWS account: the API key is shown once', async t => {
    await leaving(page)
    await page.click('#nav >> text=AWS accounts')
    await ready(page, 'accounts')
    await page.fill('#new-account input[name=account_id]', '210987654321')
    await page.fill('#new-account input[name=name]', 'Security tooling')
    await page.fill('#new-account input[name=role_arn]', 'arn:aws:iam::210987654321:role/MonitoringReadOnly')
    await page.fill('#new-account input[name=external_id]', 'ops-console-7f3a')
    await page.fill('#new-account input[name=regions]', 'eu-west-1, us-east-1')
    await page.click('#new-account button[type=submit]')
    const secret = page.locator('#account-secret .secret-value')
    await secret.waitFor()
    apiKey = (await secret.innerText()).trim()
    const row = page.locator('#accounts-table tbody tr', { hasText: 'Security tooling' })
    await row.waitFor()
    const prefix = (await row.locator('.key-prefix').innerText()).replace('…', '')
    t.ok(apiKey.length >= 16 && apiKey.startsWith(prefix), 'the key, starting with the prefix listed')
    t.equal((await api.request({ method: 'POST', url: '/api/events/ingest', headers: { 'x-api-key': apiKey }, payload: { ...fixture('cloudwatch-ok'), id: randomUUID(), account: '210987654321' } })).statusCode, 202, 'the key works')
  })

  await t.test('the account page shows whether its events arrive (ingestion health)', async t => {
    const row = page.locator('#accounts-table tbody tr', { hasText: 'Security tooling' })
    await row.locator('button', { hasText: 'Ingestion health' }).click()
    const health = row.locator('.ingestion-health')
    await health.waitFor()
    t.notMatch(await health.innerText(), /none in the last 7 days/, 'a last delivery is shown')
    const day = health.locator('table[aria-label="Last 24 hours"]')
    t.match(await day.locator('tr', { hasText: 'CloudWatch Alarm State Change' }).innerText(), /^CloudWatch Alarm State Change\s+0\s+0\s+0\s+1\s+0\s+0$/i, 'the OK without an open alarm: one ignored')
    t.match(await health.locator('.last-problem').innerText(), /ignored \(no_open_event\) · CloudWatch Alarm State Change/, 'the last problem, with its reason')
  })

  await t.test('the account page shows the onboarding kit: steps, quick-create links, commands, the template; never the key', async t => {
    const row = page.locator('#accounts-table tbody tr', { hasText: 'Security tooling' })
    await row.locator('button', { hasText: 'Onboarding' }).click()
    const kit = row.locator('section.onboarding')
    await kit.waitFor()
    await noError(t, page, 'onboarding')
    t.ok(await kit.locator('.onboarding-steps li').count() >= 5, 'numbered steps')
    t.match(await kit.locator('.onboarding-steps').innerText(), /rotate the key/i, 'the key: shown once, rotate it if lost')
    t.equal(await kit.locator('.onboarding-missing').count(), 0, 'nothing missing')
    const links = kit.locator('ul.quick-create a')
    t.equal(await links.count(), 2, 'a quick-create link per region')
    for (const [i, [region, createRole]] of [['eu-west-1', 'true'], ['us-east-1', 'false']].entries()) {
      const href = new URL((await links.nth(i).getAttribute('href'))!)
      t.equal(href.host, `${region}.console.aws.amazon.com`)
      const q = new URLSearchParams(href.hash.split('?')[1])
      t.match(Object.fromEntries(q), { templateURL: MEMBER_TEMPLATE_URL, param_ExternalId: 'ops-console-7f3a', param_CreateRole: createRole, param_ServiceUrl: 'https://monitoring.example.com' }, `${region}: the link's parameters`)
      t.equal(await links.nth(i).getAttribute('rel'), 'noopener noreferrer')
    }
    t.match(await kit.locator('.onboarding-command.deploy code').innerText(), /aws cloudformation deploy --region eu-west-1 .*'ApiKey=<paste the API key>' CreateRole=true/)
    // (The registration's secret box still shows it above: shown once, until the page changes.)
    t.notOk((await kit.innerHTML()).includes(apiKey), 'the API key is not in the onboarding kit')

    // Copy (the clipboard, granted for this origin) and download (a Blob URL) of what the API gave.
    const kitJson = await apiGet(`/api/config/aws-accounts/${await row.getAttribute('data-id')}/onboarding`, s.admin.token)
    await admin.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(base).origin })
    await kit.locator('.onboarding-command.deploy button.copy').click()
    await kit.locator('.onboarding-command.deploy button.copy', { hasText: 'Copied' }).waitFor()
    t.equal(await page.evaluate(() => (globalThis as unknown as { navigator: { clipboard: { readText: () => Promise<string> } } }).navigator.clipboard.readText()), kitJson.commands.deploy, 'the CLI commands copied')
    const [download] = await Promise.all([page.waitForEvent('download'), kit.locator('a', { hasText: 'Download template' }).click()])
    t.equal(download.suggestedFilename(), 'cloud-monitoring-member.json')
    t.same(JSON.parse(await readFile(await download.path(), 'utf8')), kitJson.template, 'the downloaded template is the API\'s')
    await noError(t, page, 'onboarding copy and download')
  })

  await t.test('a reload keeps the session (one refresh) and does not show the key again', async t => {
    const before = admin.watch.refreshes
    await page.reload()
    await ready(page, 'accounts')
    t.equal(admin.watch.refreshes - before, 1, 'one refresh after the reload')
    t.ok(await page.locator('#nav').isVisible(), 'still logged in')
    t.notOk((await page.content()).includes(apiKey), 'the key is not shown again')
    // (No named functions inside page callbacks: tsx would wrap them in a helper the page lacks.)
    const stored = await page.evaluate(() => {
      const w = globalThis as unknown as BrowserGlobals
      return {
        session: Array.from({ length: w.sessionStorage.length }, (_, i) => w.sessionStorage.key(i)),
        local: Array.from({ length: w.localStorage.length }, (_, i) => w.localStorage.key(i)),
        cookie: w.document.cookie
      }
    })
    t.same(stored, { session: ['cmc.refresh_token'], local: [], cookie: '' }, 'only the refresh token, in sessionStorage')
  })

  let channelId = ''
  await t.test('the admin creates a webhook channel: the signing secret is shown once; the test shows the receiver\'s answer', async t => {
    await leaving(page)
    await page.click('#nav >> text=Notifications')
    await ready(page, 'notifications')
    await noError(t, page, 'notifications')
    t.match(await page.locator('#channels').innerText(), /No notification channel yet\./, 'no channel yet')
    t.match(await page.locator('#rules').innerText(), /No notification rule yet/, 'no rule yet')

    // An unsafe URL is refused by the API, next to the URL field.
    await page.fill('#new-channel input[name=name]', 'On-call hook')
    await page.fill('#new-channel input[name=url]', 'http://example.com/hook')
    await page.click('#new-channel button[type=submit]')
    await page.locator('#new-channel .field-error[data-field=url]').waitFor()
    t.match(await page.locator('#error').innerText(), /unsafe_url/)

    await page.fill('#new-channel input[name=url]', 'http://127.0.0.1:9/hook') // a closed port
    await page.click('#new-channel button[type=submit]')
    const secret = page.locator('#channel-secret .secret-value')
    await secret.waitFor()
    signingSecret = (await secret.innerText()).trim()
    t.match(signingSecret, /^whsec_[A-Za-z0-9+/]{43}=$/, 'a signing secret')
    t.equal(await page.locator('#new-channel .field-error').count(), 0, 'field errors cleared')
    const row = page.locator('#channels-table tbody tr', { hasText: 'On-call hook' })
    await row.waitFor()
    channelId = (await row.getAttribute('data-id'))!
    const prefix = (await row.locator('.key-prefix').innerText()).replace('…', '')
    t.ok(prefix.length === 12 && signingSecret.startsWith(prefix), 'the secret starts with the prefix listed')
    t.match(await row.innerText(), /webhook[\s\S]*http:\/\/127\.0\.0\.1:9\/hook[\s\S]*enabled[\s\S]*never/, 'type, URL, state, never tested')
    // The rule form offers it.
    await page.locator(`#new-rule input[name=channel_ids][value="${channelId}"]`).waitFor()

    await row.locator('button', { hasText: 'Send test' }).click()
    const result = row.locator('.row-output .test-result')
    await result.waitFor()
    await noError(t, page, 'test notification')
    const channel = await apiGet(`/api/config/notification-channels/${channelId}`, s.admin.token)
    t.match(channel.last_test, { ok: false, status_code: null, error_code: 'connection_error' }, 'the API kept the result')
    t.equal(await result.getAttribute('data-ok'), 'false')
    t.match(await result.innerText(), /^Failed · \d+ ms · .*connection_error/s, 'the failure and its code are shown')
    t.match(await result.innerText(), channel.last_test.error_message, 'with the message')
  })

  await t.test('the admin creates a rule for the channel, then disables it', async t => {
    // Without a kind: the API's error is marked on the group of checkboxes.
    await page.fill('#new-rule input[name=name]', 'High GuardDuty findings to on-call')
    await page.check(`#new-rule input[name=channel_ids][value="${channelId}"]`)
    await page.click('#new-rule button[type=submit]')
    await page.locator('#error:not([hidden])').waitFor()
    t.match(await page.locator('#error').innerText(), /validation_failed/)
    await page.locator('#new-rule fieldset[aria-invalid=true] .field-error[data-field=kinds]').waitFor()
    t.pass('the kinds\' error is shown next to their checkboxes')

    await page.check('#new-rule input[name=kinds][value="event.created"]')
    await page.check('#new-rule input[name=kinds][value="event.reopened"]')
    await page.check('#new-rule input[name=kinds][value="task.assigned"]')
    await page.selectOption('#new-rule select[name=min_severity]', 'high')
    await page.check('#new-rule input[name=sources][value="aws.guardduty"]')
    await page.fill('#new-rule input[name=account_ids]', `${ACCOUNT}, 210987654321`)
    await page.click('#new-rule button[type=submit]')
    await page.locator('#notice', { hasText: 'Rule High GuardDuty findings to on-call created.' }).waitFor()
    const row = page.locator('#rules-table tbody tr', { hasText: 'High GuardDuty findings to on-call' })
    await row.waitFor()
    await noError(t, page, 'new rule')
    const rules = (await apiGet('/api/config/notification-rules', s.admin.token)).items
    t.equal(rules.length, 1)
    t.match(rules[0], {
      name: 'High GuardDuty findings to on-call',
      enabled: true,
      channel_ids: [channelId],
      kinds: ['event.created', 'event.reopened', 'task.assigned'],
      min_severity: 'high',
      sources: ['aws.guardduty'],
      account_ids: [ACCOUNT, '210987654321']
    }, 'the rule as filled in')
    t.equal((await row.locator('.rule-channels').innerText()).trim(), 'On-call hook', 'its channel by name')
    t.match(await row.locator('.rule-matched').innerText(), /severity ≥ high · aws\.guardduty · accounts 123456789012, 210987654321/)

    // Renamed meanwhile (through the API): the toggle, based on the version listed, is refused.
    const renamed = await api.request({ method: 'PUT', url: `/api/config/notification-rules/${rules[0].id}`, headers: api.auth(s.admin.token), payload: { name: 'High findings to on-call' } })
    t.equal(renamed.statusCode, 200)
    await row.locator('button', { hasText: 'Disable' }).click()
    await page.locator('#error', { hasText: 'precondition_failed' }).waitFor()
    const current = page.locator('#rules-table tbody tr', { hasText: 'High findings to on-call' })
    await current.waitFor()
    t.pass('a 412 shows the problem and the rule as it is now')
    t.equal((await apiGet(`/api/config/notification-rules/${rules[0].id}`, s.admin.token)).enabled, true, 'not changed')
    await current.locator('button', { hasText: 'Disable' }).click()
    await page.locator('#notice', { hasText: 'disabled' }).waitFor()
    await page.locator('#rules-table tbody tr .rule-state', { hasText: 'disabled' }).waitFor()
    t.equal((await apiGet(`/api/config/notification-rules/${rules[0].id}`, s.admin.token)).enabled, false, 'disabled in the API')
  })

  await t.test('the channel\'s delivery log: empty, with the test button; the secret is not shown again', async t => {
    const row = page.locator('#channels-table tbody tr', { hasText: 'On-call hook' })
    await leaving(page)
    await row.locator('a', { hasText: 'Delivery log' }).click()
    await page.waitForURL(new RegExp(`#/notifications/${channelId}$`))
    await ready(page, 'deliveries')
    t.equal((await page.locator('main h1').innerText()).trim(), 'Delivery log of On-call hook')
    t.match(await page.locator('main').innerText(), /Nothing was sent to this channel yet\./, 'the empty state')
    t.equal(await page.locator('#nav a[aria-current=page]').innerText(), 'Notifications', 'the navigation marks the section')
    t.match(await page.locator('#channel-test .test-result').innerText(), /connection_error/, 'the last test')
    await page.locator('#channel-test button', { hasText: 'Send test' }).click()
    await page.locator('#channel-test .row-output:not(:has-text("Last test")) .test-result').waitFor()
    await noError(t, page, 'delivery log')

    await page.reload()
    await ready(page, 'deliveries')
    await visit(page, `${base}#/notifications`)
    await ready(page, 'notifications')
    await page.locator('#channels-table tbody tr', { hasText: 'On-call hook' }).waitFor()
    t.notOk((await page.content()).includes(signingSecret), 'the signing secret is not shown again')
    t.equal(await page.locator('#channel-secret .secret').count(), 0, 'no secret box')
    await noError(t, page, 'notifications after a reload')
  })

  await t.test('rotate the signing secret (shown once); a change the rule matches appears in the delivery log', async t => {
    const channelRow = page.locator('#channels-table tbody tr', { hasText: 'On-call hook' })
    await channelRow.locator('button', { hasText: 'Rotate secret' }).click()
    const rotated = (await channelRow.locator('.secret-value').innerText()).trim()
    t.match(rotated, /^whsec_/, 'a new secret')
    t.not(rotated, signingSecret, 'another secret')
    t.equal((await apiGet(`/api/config/notification-channels/${channelId}`, s.admin.token)).secret_prefix, rotated.slice(0, 12), 'the API uses it')
    signingSecret = rotated

    const ruleRow = page.locator('#rules-table tbody tr', { hasText: 'High findings to on-call' })
    await ruleRow.locator('button', { hasText: 'Enable' }).click()
    await page.locator('#rules-table tbody tr .rule-state', { hasText: /^enabled$/ }).waitFor()
    await noError(t, page, 'rule enabled')
    // A task assigned to the admin: task.assigned, one of the rule's kinds; the worker delivers it to the closed port.
    const res = await api.request({ method: 'POST', url: '/api/tasks', headers: api.auth(s.admin.token), payload: { title: 'Renew the TLS certificate of the API', priority: 'medium', assigned_to: s.admin.id } })
    t.equal(res.statusCode, 201)
    await api.app.notifier.drain()
    const deliveries = (await apiGet(`/api/config/notification-channels/${channelId}/deliveries`, s.admin.token)).items
    t.equal(deliveries.length, 1, 'one delivery')

    await visit(page, `${base}#/notifications/${channelId}`)
    await ready(page, 'deliveries')
    const rows = page.locator('#deliveries-table tbody tr')
    t.equal(await rows.count(), 1)
    const cells = await texts(rows.first().locator('td'))
    t.equal(cells[1], deliveries[0].summary, 'what')
    t.equal(cells[2], 'task.assigned', 'type')
    t.equal(cells[3], '1', 'count')
    t.equal(cells[4], deliveries[0].status.replace('_', ' '), 'status')
    t.equal(cells[5], String(deliveries[0].attempts), 'attempts')
    if (deliveries[0].last_error_code) t.match(cells[6], deliveries[0].last_error_code, 'the last error')
    await noError(t, page, 'delivery log with an entry')
  })

  await t.test('a Slack channel: its URL only masked, no secret; deleting a channel and a rule asks for a second click', async t => {
    await visit(page, `${base}#/notifications`)
    await ready(page, 'notifications')
    const slackUrl = `http://127.0.0.1:9/services/T000/B000/${'s3cr3t'.repeat(4)}`
    await page.fill('#new-channel input[name=name]', 'Ops Slack')
    await page.selectOption('#new-channel select[name=type]', 'slack')
    await page.fill('#new-channel input[name=url]', slackUrl)
    await page.click('#new-channel button[type=submit]')
    await page.locator('#notice', { hasText: 'Channel Ops Slack created.' }).waitFor()
    const row = page.locator('#channels-table tbody tr', { hasText: 'Ops Slack' })
    await row.waitFor()
    t.equal(await page.locator('#channel-secret .secret').count(), 0, 'no secret box')
    t.equal((await row.locator('.channel-url').innerText()).trim(), 'http://127.0.0.1:9/…cr3t', 'the URL masked (its last 4 characters)')
    t.notOk((await page.content()).includes('s3cr3ts3cr3t'), 'the Slack URL is nowhere on the page')
    t.equal(await row.locator('button', { hasText: 'Rotate secret' }).count(), 0, 'no secret to rotate')

    const ruleRow = page.locator('#rules-table tbody tr', { hasText: 'High findings to on-call' })
    await ruleRow.locator('button', { hasText: 'Delete' }).click()
    await ruleRow.locator('button', { hasText: 'Click again to delete' }).click()
    await page.locator('#notice', { hasText: 'Rule High findings to on-call deleted.' }).waitFor()
    await page.locator('#rules p.empty').waitFor()
    t.same((await apiGet('/api/config/notification-rules', s.admin.token)).items, [], 'the rule is deleted')

    await row.locator('button', { hasText: 'Delete' }).click()
    t.equal(await page.locator('#channels-table tbody tr', { hasText: 'Ops Slack' }).count(), 1, 'not deleted at the first click')
    await row.locator('button', { hasText: 'Click again to delete' }).click()
    await page.locator('#notice', { hasText: 'Channel Ops Slack deleted.' }).waitFor()
    await page.locator('#channels-table tbody tr', { hasText: 'Ops Slack' }).waitFor({ state: 'detached' })
    t.same((await apiGet('/api/config/notification-channels', s.admin.token)).items.map((c: Json) => c.name), ['On-call hook'], 'the channel is deleted')
    t.equal(await page.locator('#new-rule input[name=channel_ids]').count(), 1, 'the rule form offers the channels left')
    await noError(t, page, 'deletes')
  })

  await t.test('a revoked access token is renewed silently, with one refresh for parallel requests', async t => {
    const revoked = admin.watch.bearer
    t.ok(revoked, 'the access token in use')
    const out = await api.request({ method: 'POST', url: '/api/auth/logout', headers: api.auth(revoked!) })
    t.equal(out.statusCode, 204, 'access token revoked (the refresh token lives on)')
    const before = admin.watch.refreshes
    const rejected: string[] = []
    const onResponse = (res: { status: () => number, url: () => string }) => { if (res.status() === 401) rejected.push(new URL(res.url()).pathname) }
    page.on('response', onResponse)
    await leaving(page)
    await page.click('#nav >> text=Dashboard')
    await ready(page, 'dashboard')
    page.off('response', onResponse)
    t.ok(rejected.filter(p => p.startsWith('/api/dashboard/')).length >= 3, `parallel requests were refused (${rejected.join(', ')})`)
    t.equal(admin.watch.refreshes - before, 1, 'exactly one refresh')
    t.not(admin.watch.bearer, revoked, 'a new access token')
    await noError(t, page, 'dashboard after the refresh')
    t.equal(await count(page, 'events-total'), ALARMS + 3)
  })

  await t.test('the audit log: records of the API, a filter, the chains verified', async t => {
    await leaving(page)
    await page.click('#nav >> text=Audit log')
    await ready(page, 'audit')
    const listed = (await apiGet('/api/audit-log', s.admin.token)).items as Json[]
    const rows = page.locator('#audit-table tbody tr')
    t.equal(await rows.count(), listed.length, 'the first page of the API')
    t.same(await rows.evaluateAll(trs => trs.map(tr => (tr as unknown as { dataset: { id: string } }).dataset.id)), listed.map(r => r.id), 'newest first, as the API lists them')
    await page.selectOption('form[aria-label="Filter the audit log"] select[name=action]', 'aws_account.create')
    await leaving(page)
    await page.click('form[aria-label="Filter the audit log"] button[type=submit]')
    await page.waitForURL(/#\/audit\?action=aws_account\.create$/)
    await ready(page, 'audit')
    const created = (await apiGet('/api/audit-log?action=aws_account.create', s.admin.token)).items as Json[]
    t.same(await texts(rows.locator('td:nth-child(2)')), created.map(() => 'aws_account.create'), 'the accounts registered, as the API filters them')
    t.ok((await texts(rows.locator('td:nth-child(7)'))).some(c => c.includes(`account_id: ∅ → ${ACCOUNT}`)), 'with their change')
    await page.click('#verify-audit')
    await page.locator('#verify-result[data-ok="true"]').waitFor()
    t.match(await page.locator('#verify-result').innerText(), /^Intact: \d+ records in \d+ chains/)
    await noError(t, page, 'audit')
  })

  await t.test('logout returns to the login page and ends the session', async t => {
    const stored = () => page.evaluate(() => (globalThis as unknown as BrowserGlobals).sessionStorage.getItem('cmc.refresh_token'))
    const refreshToken = await stored()
    await leaving(page)
    await page.click('#logout')
    await ready(page, 'login')
    await page.locator('#notice', { hasText: 'You are logged out.' }).waitFor()
    t.ok(await page.locator('#nav').isHidden(), 'no navigation')
    t.equal(await stored(), null, 'refresh token forgotten')
    const refused = await api.request({ method: 'POST', url: '/api/auth/refresh', payload: { refresh_token: refreshToken } })
    t.equal(refused.statusCode, 401, 'the refresh token is revoked')
    await visit(page, `${base}#/tasks`)
    await ready(page, 'login')
    t.ok(await page.locator('form[aria-label="Log in"]').isVisible(), 'a protected page asks for a login')
  })
  await admin.context.close()

  await t.test('a manager sees users read-only and no configuration', async t => {
    const { context, page, watch } = await open(browser)
    watches.push(watch)
    await loginAs(page, base, s.manager.email, s.manager.password)
    await ready(page, 'dashboard')
    t.same(await navigation(page), ['Dashboard', 'Events', 'Tasks', 'Users'])
    t.equal(await count(page, 'users-active'), (await apiGet('/api/dashboard/users-stats', s.manager.token)).active, 'user figures')
    await leaving(page)
    await page.click('#nav >> text=Users')
    await ready(page, 'users')
    t.ok(await page.locator('main', { hasText: 'Read only' }).isVisible())
    t.equal(await page.locator('#new-user').count(), 0, 'no user creation')
    t.equal(await page.locator('#users-table .row-actions').count(), 0, 'no actions')
    t.ok(await page.locator('#users-table tbody tr', { hasText: 'nina.new@example.com' }).isVisible())
    for (const hash of ['#/accounts', '#/settings', '#/notifications', '#/audit']) {
      await visit(page, `${base}${hash}`)
      await ready(page, 'forbidden')
      t.ok(await page.locator('main', { hasText: 'not available to the manager role' }).isVisible(), `${hash} is not available`)
    }
    await context.close()
  })

  await t.test('a user sees events and tasks only, and its open tasks', async t => {
    const { context, page, watch } = await open(browser)
    watches.push(watch)
    await loginAs(page, base, s.user.email, s.user.password)
    await ready(page, 'dashboard')
    t.same(await navigation(page), ['Dashboard', 'Events', 'Tasks'])
    const stats = await apiGet('/api/dashboard/tasks-stats', s.user.token)
    t.equal(stats.my_open_tasks, 1)
    t.equal(await count(page, 'my-open-tasks'), 1, 'my open tasks')
    t.equal(await page.locator('[data-count="users-active"]').count(), 0, 'no user figures')
    await leaving(page)
    await page.click('[data-count="my-open-tasks"]')
    await page.waitForURL(/#\/tasks\?assigned_to=me$/)
    await ready(page, 'tasks')
    t.same(await texts(page.locator('#tasks-table tbody td:nth-child(2) a')), ['Rotate the access keys of the batch role'])
    // A task of someone else: readable, but no status or edit controls.
    await visit(page, taskUrl)
    await ready(page, 'task')
    t.equal(await page.locator('#task-status').count(), 0, 'no status change on a task of others')
    t.equal(await page.locator('#task-edit').count(), 0, 'no edit of a task of others')
    t.equal(await page.locator('#add-comment').count(), 1, 'but comments are open to all')
    for (const hash of ['#/users', '#/accounts', '#/settings', '#/notifications', `#/notifications/${channelId}`]) {
      await visit(page, `${base}${hash}`)
      await ready(page, 'forbidden')
    }
    t.pass('users, accounts, settings and notifications are not available')
    await context.close()
  })

  await t.test('a temporary password must be changed first, then the user logs in again', async t => {
    const { context, page, watch } = await open(browser)
    watches.push(watch)
    await loginAs(page, base, 'nina.new@example.com', temporary)
    await ready(page, 'change-password')
    t.ok(await page.locator('#nav').isHidden(), 'no navigation yet')
    await visit(page, `${base}#/events`)
    await ready(page, 'change-password')
    t.pass('other pages lead back to the password change')
    const fresh = 'violet kestrels circle the harbour 77'
    await page.fill('input[name=current_password]', temporary)
    await page.fill('input[name=new_password]', fresh)
    await page.fill('input[name=repeat]', fresh)
    await leaving(page)
    await page.click('form[aria-label="Change password"] button[type=submit]')
    await ready(page, 'login')
    await page.locator('#notice', { hasText: 'Password changed' }).waitFor()
    await page.fill('input[name=email]', 'nina.new@example.com')
    await page.fill('input[name=password]', fresh)
    await page.click('form[aria-label="Log in"] button[type=submit]')
    await ready(page, 'dashboard')
    t.same(await navigation(page), ['Dashboard', 'Events', 'Tasks'])
    await context.close()
  })

  await t.test('the CSP is enforced and violations would be caught', async t => {
    const { context, page, watch } = await open(browser)
    await page.goto(`${origin}/console/#/login`)
    await ready(page, 'login')
    const reported = page.waitForEvent('console', { predicate: msg => msg.text().startsWith('CSP violation: script-src') })
    const injected = await page.evaluate(() => {
      const w = globalThis as unknown as BrowserGlobals
      const s = w.document.createElement('script')
      s.textContent = 'window.injected = true'
      w.document.body.append(s)
      return w.injected === true
    })
    t.notOk(injected, 'an inline script does not run')
    await reported
    t.ok(watch.errors.some(e => /CSP violation: script-src/.test(e)), 'the violation was reported')
    await context.close()
  })
}
