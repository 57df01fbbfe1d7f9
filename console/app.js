// @ts-check
/**
 * The console shell: hash routing (`#/events`, `#/tasks/<id>`…), the navigation of the
 * caller's role, the session guard (login, temporary password) and the message areas.
 */
import { me, onSession, resume, logout, ApiError } from './api.js'
import { h, fill, clearMessages, notice, showError, problemOf, busy } from './dom.js'
import * as loginView from './views/login.js'
import * as passwordView from './views/change-password.js'
import * as dashboardView from './views/dashboard.js'
import * as eventsView from './views/events.js'
import * as eventView from './views/event.js'
import * as tasksView from './views/tasks.js'
import * as taskView from './views/task.js'
import * as usersView from './views/users.js'
import * as accountsView from './views/accounts.js'
import * as settingsView from './views/settings.js'
import * as notificationsView from './views/notifications.js'
import * as auditView from './views/audit.js'

/** @typedef {import('./api.js').UserProfile} UserProfile */
/** @typedef {UserProfile['role']} Role */
/**
 * What a view gets: its <main>, the path parameters and hash query, the user, navigation.
 * @typedef {{ view: HTMLElement, params: string[], query: URLSearchParams, user: UserProfile, go: (hash: string) => void, reload: (notice?: string) => void }} Context
 */
/** @typedef {{ render: (ctx: Context) => Promise<void> }} View */
/** @typedef {{ path: RegExp, name: string, view: View, roles?: readonly Role[] }} Route */

/** @type {readonly Role[]} */
const ALL = ['admin', 'manager', 'user']
const ID = '([0-9A-HJKMNP-TV-Z]{26})'

/** @type {Route[]} */
const ROUTES = [
  { path: /^\/login$/, name: 'login', view: loginView },
  { path: /^\/change-password$/, name: 'change-password', view: passwordView, roles: ALL },
  { path: /^\/dashboard$/, name: 'dashboard', view: dashboardView, roles: ALL },
  { path: /^\/events$/, name: 'events', view: eventsView, roles: ALL },
  { path: new RegExp(`^/events/${ID}$`), name: 'event', view: eventView, roles: ALL },
  { path: /^\/tasks$/, name: 'tasks', view: tasksView, roles: ALL },
  { path: new RegExp(`^/tasks/${ID}$`), name: 'task', view: taskView, roles: ALL },
  { path: /^\/users$/, name: 'users', view: usersView, roles: ['admin', 'manager'] },
  { path: /^\/accounts$/, name: 'accounts', view: accountsView, roles: ['admin'] },
  { path: /^\/settings$/, name: 'settings', view: settingsView, roles: ['admin'] },
  { path: /^\/notifications$/, name: 'notifications', view: notificationsView, roles: ['admin'] },
  { path: new RegExp(`^/notifications/${ID}$`), name: 'deliveries', view: notificationsView, roles: ['admin'] },
  { path: /^\/audit$/, name: 'audit', view: auditView, roles: ['admin'] }
]

/** @type {Array<[string, string, readonly Role[]]>} */
const NAV = [
  ['#/dashboard', 'Dashboard', ALL],
  ['#/events', 'Events', ALL],
  ['#/tasks', 'Tasks', ALL],
  ['#/users', 'Users', ['admin', 'manager']],
  ['#/accounts', 'AWS accounts', ['admin']],
  ['#/settings', 'Monitoring settings', ['admin']],
  ['#/notifications', 'Notifications', ['admin']],
  ['#/audit', 'Audit log', ['admin']]
]

/** Where to go after logging in (the page that asked for a login). */
let afterLogin = '#/dashboard'
/** A message for the next page (logout, password changed, session ended). */
/** @type {{ problem?: import('./api.js').Problem, notice?: string } | null} */
let flash = null

/** @param {string} hash */
function go (hash) {
  if (window.location.hash === hash) route()
  else window.location.hash = hash
}

function parseHash () {
  const raw = window.location.hash.replace(/^#/, '') || '/dashboard'
  const [path = '/dashboard', search = ''] = raw.split('?')
  return { path, query: new URLSearchParams(search) }
}

async function route () {
  const { path, query } = parseHash()
  const user = me()
  const match = ROUTES.map(r => ({ r, m: r.path.exec(path) })).find(x => x.m)
  if (!user) {
    if (match?.r.name !== 'login') {
      if (match && match.r.name !== 'change-password') afterLogin = `#${path}${query.size ? `?${query}` : ''}`
      return go('#/login')
    }
  } else if (user.must_change_password) {
    if (match?.r.name !== 'change-password') return go('#/change-password')
  } else if (match?.r.name === 'login') {
    const target = afterLogin
    afterLogin = '#/dashboard'
    return go(target)
  }

  chrome(user, path)
  const view = h('main', { id: 'view', 'aria-busy': 'true', 'data-view': match?.r.name ?? 'not-found' })
  document.getElementById('view')?.replaceWith(view)
  clearMessages()
  if (flash) {
    if (flash.problem) showError(new ApiError(flash.problem))
    if (flash.notice) notice(flash.notice)
    flash = null
  }
  if (!match) {
    fill(view, h('h1', null, 'Not found'), h('p', null, 'There is no such page. ', h('a', { href: '#/dashboard' }, 'Go to the dashboard'), '.'))
    view.setAttribute('aria-busy', 'false')
    return
  }
  if (user && match.r.roles && !match.r.roles.includes(user.role)) {
    view.dataset.view = 'forbidden'
    fill(view, h('h1', null, 'Not available'), h('p', null, `This page is not available to the ${user.role} role.`))
    view.setAttribute('aria-busy', 'false')
    return
  }
  try {
    await busy(view, () => match.r.view.render({
      view,
      params: match.m ? match.m.slice(1) : [],
      query,
      user: /** @type {UserProfile} */ (user), // null only on the login page, which does not use it
      go,
      reload: (message) => {
        flash = message ? { notice: message } : null
        route()
      }
    }))
  } catch (err) {
    if (view.isConnected) showError(err)
  }
}

/**
 * The navigation and account area for `user` (hidden when logged out or while the password
 * must change).
 * @param {UserProfile | null} user
 * @param {string} path
 */
function chrome (user, path) {
  const nav = /** @type {HTMLElement} */ (document.getElementById('nav'))
  const account = /** @type {HTMLElement} */ (document.getElementById('account'))
  const full = Boolean(user && !user.must_change_password)
  nav.hidden = !full
  account.hidden = !user
  fill(nav, full && user
    ? NAV.filter(([, , roles]) => roles.includes(user.role)).map(([href, label]) =>
      h('a', { href, 'aria-current': path.startsWith(href.slice(1)) ? 'page' : null }, label))
    : null)
  fill(account, user
    ? [
        h('span', { class: 'who' }, user.name, ' ', h('span', { class: `badge role-${user.role}` }, user.role)),
        h('a', { href: '#/change-password' }, 'Change password'),
        h('button', { type: 'button', class: 'secondary small', id: 'logout', onclick: onLogout }, 'Log out')
      ]
    : null)
}

/** @param {Event} event */
async function onLogout (event) {
  const button = /** @type {HTMLButtonElement} */ (event.currentTarget)
  button.disabled = true
  await logout()
}

/** False while the tab resumes its session: the first route() then shows the login page. */
let started = false

onSession(change => {
  if (change.user) return
  flash = change
  afterLogin = '#/dashboard'
  if (started) go('#/login')
})

async function start () {
  try {
    await resume()
  } catch (err) {
    flash = { problem: problemOf(err) }
  }
  started = true
  window.addEventListener('hashchange', () => { route() })
  await route()
}

start()
