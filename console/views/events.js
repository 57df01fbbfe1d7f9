// @ts-check
/** Events list: filters (kept in the address: `#/events?severity=high`) and cursor paging. */
import { api, call } from '../api.js'
import { h, fill, field, select, choices, badge, time, title, showError, SEVERITIES, SOURCES, EVENT_STATUSES, fromLocalInput, toLocalInput } from '../dom.js'
import { pagedTable, filtersToHash } from '../paging.js'

/** @typedef {NonNullable<import('../api.js').paths['/api/events']['get']['parameters']['query']>} EventQuery */

const FILTERS = /** @type {const} */ (['severity', 'source', 'status', 'account_id', 'from', 'to', 'limit'])

/** @param {import('../app.js').Context} ctx */
export async function render ({ view, query, go }) {
  /** @type {EventQuery} */
  const filters = {}
  for (const name of FILTERS) {
    const value = query.get(name)
    if (value) Object.assign(filters, { [name]: name === 'limit' ? Number(value) : value })
  }

  const form = h('form', { class: 'filters', novalidate: true, 'aria-label': 'Filter events' },
    field('Severity', select('severity', choices(SEVERITIES, 'any'), filters.severity)),
    field('Source', select('source', choices(SOURCES, 'any'), filters.source)),
    field('Status', select('status', choices(EVENT_STATUSES, 'any'), filters.status)),
    field('AWS account', h('input', { name: 'account_id', inputmode: 'numeric', pattern: '[0-9]{12}', placeholder: '123456789012', value: filters.account_id ?? '', size: 14 })),
    field('Occurred from', h('input', { name: 'from', type: 'datetime-local', value: toLocalInput(filters.from) })),
    field('to', h('input', { name: 'to', type: 'datetime-local', value: toLocalInput(filters.to) })),
    field('Per page', select('limit', [['20', '20'], ['50', '50'], ['100', '100']], String(filters.limit ?? 20))),
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, 'Apply'),
      h('a', { class: 'button secondary', href: '#/events' }, 'Reset'))
  )
  // 20 a page is the default; the times go in the address as RFC 3339.
  const instant = (/** @type {unknown} */ local) => typeof local === 'string' ? fromLocalInput(local) : undefined
  filtersToHash(form, '#/events', go, v => ({ ...v, limit: v.limit === '20' ? undefined : v.limit, from: instant(v.from), to: instant(v.to) }))

  const results = h('section', { class: 'card', 'aria-label': 'Events' })
  fill(view, title('Events'), form, results)

  const load = pagedTable({
    view,
    results,
    id: 'events-table',
    columns: ['Severity', 'Title', 'Source', 'Account', 'Status', 'Seen', 'Last seen', 'Task'],
    empty: 'No events match these filters.',
    fetch: page => call(api.GET('/api/events', { params: { query: { ...filters, ...page } } })),
    rows: items => items.map(e => h('tr', { 'data-id': e.id },
      h('td', null, badge('severity', e.severity)),
      h('td', null, h('a', { href: `#/events/${e.id}` }, e.title)),
      h('td', null, e.source),
      h('td', null, e.account_id),
      h('td', null, badge('event-status', e.status)),
      h('td', { class: 'num' }, e.occurrence_count),
      h('td', null, time(e.last_seen_at)),
      h('td', null, e.task_id ? h('a', { href: `#/tasks/${e.task_id}` }, 'task') : '')))
  })
  try {
    await load()
  } catch (err) {
    showError(err, form) // a filter the API refused is marked next to its field
  }
}
