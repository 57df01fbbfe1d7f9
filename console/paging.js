// @ts-check
/**
 * The list views' shared parts: a table fetched a page at a time (cursor paging, previous/next
 * buttons) and a filter form that puts its values in the address (`#/events?severity=high`).
 */
import { h, fill, busy, formValues, showError, clearMessages } from './dom.js'

/** @typedef {import('./dom.js').Children} Children */
/** @typedef {ReturnType<typeof formValues>} FormValues */

/**
 * A table of `columns` in `results`, a page at a time: `fetch` gets a page given the cursor
 * query (`{ cursor }`, or `{}` for the first page), `rows` makes its rows (an empty page shows
 * `empty` instead). The pager under it turns the pages (the cursors of the pages seen are
 * kept), marking `view` busy. Returns `load`, which (re)loads the current page.
 * @template T
 * @param {object} list
 * @param {HTMLElement} list.view
 * @param {HTMLElement} list.results
 * @param {string} list.id the id of the table
 * @param {string[]} list.columns
 * @param {string} list.empty
 * @param {(page: { cursor?: string }) => Promise<{ items: T[], next_cursor: string | null }>} list.fetch
 * @param {(items: T[]) => Children | Promise<Children>} list.rows
 * @returns {() => Promise<void>}
 */
export function pagedTable ({ view, results, id, columns, empty, fetch, rows }) {
  /** Cursors of the pages seen: [undefined (first page), cursor of page 2, …]. */
  /** @type {Array<string | undefined>} */
  const pages = [undefined]
  let page = 0

  const load = async () => {
    const cursor = pages[page]
    const list = await fetch(cursor ? { cursor } : {})
    if (list.next_cursor) pages[page + 1] = list.next_cursor
    else pages.length = page + 1
    const body = await rows(list.items)

    /** @param {number} to */
    const turn = (to) => () => {
      page = to
      clearMessages()
      busy(view, load).catch(err => showError(err))
    }
    fill(results,
      list.items.length
        ? h('table', { class: 'list', id },
          h('thead', null, h('tr', null, columns.map(c => h('th', null, c)))),
          h('tbody', null, body))
        : h('p', { class: 'empty' }, empty),
      h('nav', { class: 'pager', 'aria-label': 'Pages' },
        h('button', { type: 'button', class: 'secondary', disabled: page === 0, onclick: turn(page - 1) }, '← Previous'),
        h('span', { class: 'page-number' }, `Page ${page + 1}`),
        h('button', { type: 'button', class: 'secondary', disabled: !list.next_cursor, onclick: turn(page + 1) }, 'Next →'))
    )
  }
  return load
}

/**
 * Submitting the filter `form` goes to `path` with its values as the query of the address:
 * the string values of `query(values)` (by default the form's values), in their order.
 * @param {HTMLFormElement} form
 * @param {string} path e.g. `#/events`
 * @param {(hash: string) => void} go
 * @param {(values: FormValues) => Record<string, unknown>} [query]
 */
export function filtersToHash (form, path, go, query = values => values) {
  form.addEventListener('submit', event => {
    event.preventDefault()
    const params = new URLSearchParams()
    for (const [name, value] of Object.entries(query(formValues(form)))) if (typeof value === 'string') params.set(name, value)
    go(`${path}${params.size ? `?${params}` : ''}`)
  })
}
