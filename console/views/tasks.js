// @ts-check
/** Tasks list: filters (in the address: `#/tasks?status=open`), cursor paging, a new task. */
import { api, call } from '../api.js'
import { h, fill, field, select, choices, badge, time, title, formValues, submitting, fromLocalInput, PRIORITIES, TASK_STATUSES } from '../dom.js'
import { namesFor } from '../people.js'
import { pagedTable, filtersToHash } from '../paging.js'

/** @typedef {NonNullable<import('../api.js').paths['/api/tasks']['get']['parameters']['query']>} TaskQuery */
/** @typedef {import('../api.js').Schemas['CreateTaskRequest']} CreateTask */

/** @param {import('../app.js').Context} ctx */
export async function render ({ view, query, user, go }) {
  /** @type {TaskQuery} */
  const filters = {}
  const status = query.get('status')
  const priority = query.get('priority')
  const assigned = query.get('assigned_to')
  const mine = query.get('created_by') === 'me'
  if (status) filters.status = /** @type {TaskQuery['status']} */ (status)
  if (priority) filters.priority = /** @type {TaskQuery['priority']} */ (priority)
  if (assigned) filters.assigned_to = assigned
  if (mine) filters.created_by = user.id

  const form = h('form', { class: 'filters', novalidate: true, 'aria-label': 'Filter tasks' },
    field('Status', select('status', choices(TASK_STATUSES, 'any'), filters.status)),
    field('Priority', select('priority', choices(PRIORITIES, 'any'), filters.priority)),
    field('Assigned to', select('assigned_to', [['', 'anyone'], ['me', 'me']], assigned === 'me' ? 'me' : '')),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'created_by_me', checked: mine }), ' Created by me'),
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, 'Apply'),
      h('a', { class: 'button secondary', href: '#/tasks' }, 'Reset'))
  )
  filtersToHash(form, '#/tasks', go, v => ({ status: v.status, priority: v.priority, assigned_to: v.assigned_to, created_by: v.created_by_me === true ? 'me' : undefined }))

  const create = h('form', { id: 'new-task', novalidate: true, 'aria-label': 'New task' },
    field('Title', h('input', { name: 'title', required: true, maxlength: 200 })),
    field('Description', h('textarea', { name: 'description', rows: 3, maxlength: 10000 })),
    field('Priority', select('priority', choices(PRIORITIES), 'medium')),
    field('Due', h('input', { name: 'due_at', type: 'datetime-local' })),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'assign_to_me' }), ' Assign to me'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create task'))
  )
  create.addEventListener('submit', event => {
    event.preventDefault()
    submitting(create, async () => {
      const v = formValues(create)
      /** @type {CreateTask} */
      const body = { title: typeof v.title === 'string' ? v.title : '' }
      if (typeof v.description === 'string') body.description = v.description
      if (typeof v.priority === 'string') body.priority = /** @type {CreateTask['priority']} */ (v.priority)
      if (typeof v.due_at === 'string') body.due_at = fromLocalInput(v.due_at)
      if (v.assign_to_me === true) body.assigned_to = user.id
      const task = await call(api.POST('/api/tasks', { body }))
      go(`#/tasks/${task.id}`)
    })
  })

  const results = h('section', { class: 'card', 'aria-label': 'Tasks' })
  fill(view, title('Tasks'), form, results, h('details', { class: 'card' }, h('summary', null, 'New task'), create))

  const load = pagedTable({
    view,
    results,
    id: 'tasks-table',
    columns: ['Priority', 'Title', 'Status', 'Assignee', 'Due', 'Created'],
    empty: 'No tasks match these filters.',
    fetch: page => call(api.GET('/api/tasks', { params: { query: { ...filters, ...page } } })),
    rows: async items => {
      const nameOf = await namesFor(items.map(t => t.assigned_to))
      return items.map(t => h('tr', { 'data-id': t.id },
        h('td', null, badge('priority', t.priority)),
        h('td', null, h('a', { href: `#/tasks/${t.id}` }, t.title), t.event_id ? h('span', { class: 'hint' }, ' · from an event') : null),
        h('td', null, badge('status', t.status)),
        h('td', null, nameOf(t.assigned_to)),
        h('td', null, time(t.due_at)),
        h('td', null, time(t.created_at))))
    }
  })
  await load()
}
