// @ts-check
/** Events list: filters (kept in the address: `#/events?severity=high`) and cursor paging. */
import { api, call } from '../api.js'
import { h, fill, field, select, choices, badge, time, title, busy, formValues, showError, clearMessages, SEVERITIES, SOURCES, EVENT_STATUSES, fromLocalInput, toLocalInput } from '../dom.js'

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
  form.addEventListener('submit', event => {
    event.preventDefault()
    const values = formValues(form)
    const params = new URLSearchParams()
    for (const [name, value] of Object.entries(values)) {
      if (typeof value !== 'string' || (name === 'limit' && value === '20')) continue
      params.set(name, name === 'from' || name === 'to' ? fromLocalInput(value) : value)
    }
    go(`#/events${params.size ? `?${params}` : ''}`)
  })

  const results = h('section', { class: 'card', 'aria-label': 'Events' })
  fill(view, title('Events'), form, results)

  /** Cursors of the pages seen: [undefined (first page), cursor of page 2, …]. */
  /** @type {Array<string | undefined>} */
  const pages = [undefined]
  let page = 0

  const load = async () => {
    const cursor = pages[page]
    const list = await call(api.GET('/api/events', { params: { query: { ...filters, ...(cursor ? { cursor } : {}) } } }))
    if (list.next_cursor) pages[page + 1] = list.next_cursor
    else pages.length = page + 1

    /** @param {number} to */
    const turn = (to) => () => {
      page = to
      clearMessages()
      busy(view, load).catch(err => showError(err))
    }
    fill(results,
      list.items.length
        ? h('table', { class: 'list', id: 'events-table' },
          h('thead', null, h('tr', null, ['Severity', 'Title', 'Source', 'Account', 'Status', 'Seen', 'Last seen', 'Task'].map(c => h('th', null, c)))),
          h('tbody', null, list.items.map(e => h('tr', { 'data-id': e.id },
            h('td', null, badge('severity', e.severity)),
            h('td', null, h('a', { href: `#/events/${e.id}` }, e.title)),
            h('td', null, e.source),
            h('td', null, e.account_id),
            h('td', null, badge('event-status', e.status)),
            h('td', { class: 'num' }, e.occurrence_count),
            h('td', null, time(e.last_seen_at)),
            h('td', null, e.task_id ? h('a', { href: `#/tasks/${e.task_id}` }, 'task') : '')))))
        : h('p', { class: 'empty' }, 'No events match these filters.'),
      h('nav', { class: 'pager', 'aria-label': 'Pages' },
        h('button', { type: 'button', class: 'secondary', disabled: page === 0, onclick: turn(page - 1) }, '← Previous'),
        h('span', { class: 'page-number' }, `Page ${page + 1}`),
        h('button', { type: 'button', class: 'secondary', disabled: !list.next_cursor, onclick: turn(page + 1) }, 'Next →'))
    )
  }
  try {
    await load()
  } catch (err) {
    showError(err, form) // a filter the API refused is marked next to its field
  }
}
