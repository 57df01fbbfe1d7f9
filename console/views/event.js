// @ts-check
/** Event detail, and "create task" from it. */
import { api, call } from '../api.js'
import { h, fill, field, select, choices, badge, time, title, submitting, formValues, fromLocalInput, PRIORITIES } from '../dom.js'

/** @typedef {import('../api.js').Schemas['CreateTaskFromEventRequest']} CreateTaskFromEvent */

/** @param {import('../app.js').Context} ctx */
export async function render ({ view, params, user, go }) {
  const id = /** @type {string} */ (params[0])
  const event = await call(api.GET('/api/events/{id}', { params: { path: { id } } }))
  const priority = event.severity === 'info' ? 'low' : event.severity

  const form = h('form', { class: 'card', id: 'create-task', novalidate: true, 'aria-label': 'Create a task from this event' },
    h('h2', null, 'Create a task'),
    field('Title', h('input', { name: 'title', placeholder: event.title, maxlength: 200 }), 'Empty: the event title.'),
    field('Description', h('textarea', { name: 'description', rows: 3, maxlength: 10000, placeholder: 'Empty: the event description.' })),
    field('Priority', select('priority', choices(PRIORITIES), priority)),
    field('Due', h('input', { name: 'due_at', type: 'datetime-local' })),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'assign_to_me' }), ' Assign to me'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create task'))
  )
  form.addEventListener('submit', e => {
    e.preventDefault()
    submitting(form, async () => {
      const v = formValues(form)
      /** @type {CreateTaskFromEvent} */
      const body = {}
      if (typeof v.title === 'string') body.title = v.title
      if (typeof v.description === 'string') body.description = v.description
      if (typeof v.priority === 'string') body.priority = /** @type {CreateTaskFromEvent['priority']} */ (v.priority)
      if (typeof v.due_at === 'string') body.due_at = fromLocalInput(v.due_at)
      if (v.assign_to_me === true) body.assigned_to = user.id
      const task = await call(api.POST('/api/events/{id}/create-task', { params: { path: { id } }, body }))
      go(`#/tasks/${task.id}`)
    })
  })

  const labels = Object.entries(event.labels)
  fill(view,
    h('p', { class: 'crumbs' }, h('a', { href: '#/events' }, '← Events')),
    title(event.title),
    h('div', { class: 'grid' },
      h('section', { class: 'card' },
        h('dl', { class: 'facts' },
          h('dt', null, 'Severity'), h('dd', null, badge('severity', event.severity), event.native_severity ? ` (${event.native_severity} at the source)` : ''),
          h('dt', null, 'Status'), h('dd', null, badge('event-status', event.status), ` · at the source: ${event.source_state}`),
          h('dt', null, 'Source'), h('dd', null, `${event.source} · ${event.detail_type}`),
          h('dt', null, 'AWS account'), h('dd', null, `${event.account_id} · ${event.region}`),
          h('dt', null, 'Occurrences'), h('dd', null, event.occurrence_count),
          h('dt', null, 'First occurred'), h('dd', null, time(event.occurred_at)),
          h('dt', null, 'Last seen'), h('dd', null, time(event.last_seen_at)),
          h('dt', null, 'Resolved'), h('dd', null, time(event.resolved_at)),
          h('dt', null, 'Task'), h('dd', { id: 'event-task' }, event.task_id ? h('a', { href: `#/tasks/${event.task_id}` }, 'Open the task') : 'none'))),
      event.task_id ? null : form
    ),
    event.description ? h('section', { class: 'card' }, h('h2', null, 'Description'), h('p', { class: 'prose' }, event.description)) : null,
    labels.length
      ? h('section', { class: 'card' }, h('h2', null, 'Labels'), h('dl', { class: 'facts' }, labels.flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v)])))
      : null,
    event.resources.length
      ? h('section', { class: 'card' }, h('h2', null, 'Resources'), h('ul', { class: 'plain' }, event.resources.map(r => h('li', null, h('code', null, r)))))
      : null,
    h('details', { class: 'card' }, h('summary', null, 'Raw EventBridge envelope'), h('pre', { class: 'raw' }, JSON.stringify(event.raw, null, 2))),
    h('p', { class: 'hint' }, `Dedup key: ${event.dedup_key}`)
  )
}
