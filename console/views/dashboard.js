// @ts-check
/** Dashboard: events by severity and status, tasks by status and priority, my open tasks, users. */
import { api, call } from '../api.js'
import { h, fill, badge, time, title, SEVERITIES, EVENT_STATUSES, TASK_STATUSES, PRIORITIES } from '../dom.js'

/** @param {import('../app.js').Context} ctx */
export async function render ({ view, user }) {
  const staff = user.role === 'admin' || user.role === 'manager'
  const [overview, events, tasks, users] = await Promise.all([
    call(api.GET('/api/dashboard/overview')),
    call(api.GET('/api/dashboard/events-stats')),
    call(api.GET('/api/dashboard/tasks-stats')),
    staff ? call(api.GET('/api/dashboard/users-stats')) : Promise.resolve(null)
  ])

  fill(view,
    title('Dashboard'),
    h('section', { class: 'tiles', 'aria-label': 'Summary' },
      tile('Events', events.total, '#/events', 'events-total'),
      tile('Open events', overview.events.open, '#/events?status=open', 'events-open'),
      tile('Tasks', tasks.total, '#/tasks', 'tasks-total'),
      tile('My open tasks', tasks.my_open_tasks, '#/tasks?assigned_to=me', 'my-open-tasks'),
      users ? tile('Active users', users.active, '#/users', 'users-active') : null
    ),
    h('div', { class: 'grid' },
      counts('Events by severity', 'severity', SEVERITIES, events.by_severity, v => `#/events?severity=${v}`),
      counts('Events by status', 'event-status', EVENT_STATUSES, events.by_status, v => `#/events?status=${v}`),
      counts('Tasks by status', 'status', TASK_STATUSES, tasks.by_status, v => `#/tasks?status=${v}`),
      counts('Tasks by priority', 'priority', PRIORITIES, tasks.by_priority, v => `#/tasks?priority=${v}`),
      users ? counts('Users by role', 'role', ['admin', 'manager', 'user'], users.by_role, v => `#/users?role=${v}`) : null,
      h('section', { class: 'card' },
        h('h2', null, 'Response times'),
        h('dl', { class: 'facts' },
          h('dt', null, 'Mean time to first action'), h('dd', null, duration(tasks.mean_time_to_first_action_seconds)),
          h('dt', null, 'Mean time to close'), h('dd', null, duration(tasks.mean_time_to_close_seconds))))
    ),
    h('section', { class: 'card' },
      h('h2', null, 'Recent events'),
      events.recent.length
        ? h('table', { class: 'list' },
          h('thead', null, h('tr', null, ['Severity', 'Title', 'Source', 'Account', 'Status', 'Occurred'].map(c => h('th', null, c)))),
          h('tbody', null, events.recent.map(e => h('tr', null,
            h('td', null, badge('severity', e.severity)),
            h('td', null, h('a', { href: `#/events/${e.id}` }, e.title)),
            h('td', null, e.source),
            h('td', null, e.account_id),
            h('td', null, badge('event-status', e.status)),
            h('td', null, time(e.occurred_at))))))
        : h('p', { class: 'empty' }, 'No events yet.')),
    h('p', { class: 'hint' }, 'Figures as of ', time(overview.generated_at), '.')
  )
}

/**
 * @param {string} label
 * @param {number} value
 * @param {string} href
 * @param {string} key
 */
function tile (label, value, href, key) {
  return h('a', { class: 'tile', href, 'data-count': key }, h('span', { class: 'tile-value' }, value), h('span', { class: 'tile-label' }, label))
}

/**
 * A card of counts with proportional bars (<meter>, no inline style).
 * @param {string} heading
 * @param {string} kind
 * @param {readonly string[]} keys
 * @param {Record<string, number>} values
 * @param {(key: string) => string} link
 */
function counts (heading, kind, keys, values, link) {
  const max = Math.max(1, ...keys.map(k => values[k] ?? 0))
  return h('section', { class: 'card counts', 'aria-label': heading },
    h('h2', null, heading),
    h('table', { class: 'bars' }, h('tbody', null, keys.map(k => h('tr', { 'data-count': `${kind}-${k}` },
      h('th', { scope: 'row' }, h('a', { href: link(k) }, badge(kind, k))),
      h('td', { class: 'num' }, values[k] ?? 0),
      h('td', { class: 'bar' }, h('meter', { class: `tone-${k}`, min: 0, max, value: values[k] ?? 0, 'aria-label': `${k}: ${values[k] ?? 0}` })))))))
}

/** @param {number | null} seconds */
function duration (seconds) {
  if (seconds === null) return '—'
  if (seconds < 90) return `${Math.round(seconds)} s`
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`
  return `${(seconds / 86400).toFixed(1)} d`
}
