// @ts-check
/** Task detail: fields, status changes, edits, comments and status history. */
/* global HTMLButtonElement */
import { api, call, callTagged } from '../api.js'
import { h, fill, field, select, choices, badge, time, title, submitting, formValues, notice, fromLocalInput, toLocalInput, PRIORITIES } from '../dom.js'
import { namesFor, remember } from '../people.js'

/** @typedef {import('../api.js').Schemas} Schemas */
/** @typedef {Schemas['TaskStatus']} TaskStatus */
/** @typedef {Schemas['UpdateTaskRequest']} UpdateTask */

/** The moves the API allows from each status, as buttons (an open task may be closed directly: a false positive, a duplicate). */
/** @type {Record<TaskStatus, Array<[TaskStatus, string]>>} */
const MOVES = {
  open: [['in_progress', 'Start work'], ['closed', 'Close']],
  in_progress: [['closed', 'Close'], ['open', 'Back to open']],
  closed: [['open', 'Reopen']]
}

/** @param {import('../app.js').Context} ctx */
export async function render ({ view, params, user, go, reload }) {
  const id = /** @type {string} */ (params[0])
  const path = { id }
  const { data: task, etag } = await callTagged(api.GET('/api/tasks/{id}', { params: { path } }))
  const staff = user.role === 'admin' || user.role === 'manager'
  const canChange = staff || task.created_by === user.id || task.assigned_to === user.id
  const canDelete = staff || task.created_by === user.id
  const assignable = staff
    ? (await call(api.GET('/api/users', { params: { query: { is_active: true, limit: 100 } } }))).items
    : []
  remember(assignable)
  const nameOf = await namesFor([task.assigned_to, task.created_by, ...task.comments.map(c => c.author_id), ...task.status_history.map(s => s.changed_by)])
  const ifMatch = etag ? { 'If-Match': etag } : {}

  // ---- status
  const statusForm = h('form', { class: 'card', id: 'task-status', novalidate: true, 'aria-label': 'Change the status' },
    h('h2', null, 'Status'),
    h('p', null, badge('status', task.status), task.closed_at ? [' since ', time(task.closed_at)] : null),
    field('Comment (optional)', h('input', { name: 'comment', maxlength: 2000 })),
    h('div', { class: 'actions' }, MOVES[task.status].map(([to, label]) => h('button', { type: 'submit', name: 'status', value: to }, label)))
  )
  statusForm.addEventListener('submit', event => {
    event.preventDefault()
    const submitter = /** @type {SubmitEvent} */ (event).submitter
    const to = /** @type {TaskStatus} */ (submitter instanceof HTMLButtonElement ? submitter.value : '')
    const v = formValues(statusForm)
    submitting(statusForm, async () => {
      await call(api.PUT('/api/tasks/{id}/status', {
        params: { path, header: ifMatch },
        body: { status: to, ...(typeof v.comment === 'string' ? { comment: v.comment } : {}) }
      }))
      reload(`Status changed to ${to.replace('_', ' ')}.`)
    })
  })

  // ---- edit
  /** @type {Array<[string, string]>} */
  const assignees = [['', 'unassigned']]
  if (staff) for (const u of assignable) assignees.push([u.id, u.id === user.id ? `${u.name} (you)` : u.name])
  else assignees.push([user.id, 'me'])
  if (task.assigned_to && !assignees.some(([id]) => id === task.assigned_to)) assignees.push([task.assigned_to, nameOf(task.assigned_to)])
  const editForm = h('form', { class: 'card', id: 'task-edit', novalidate: true, 'aria-label': 'Edit the task' },
    h('h2', null, 'Edit'),
    field('Title', h('input', { name: 'title', value: task.title, required: true, maxlength: 200 })),
    field('Priority', select('priority', choices(PRIORITIES), task.priority)),
    field('Assignee', select('assigned_to', assignees, task.assigned_to ?? '')),
    field('Due', h('input', { name: 'due_at', type: 'datetime-local', value: toLocalInput(task.due_at) })),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Save'))
  )
  editForm.addEventListener('submit', event => {
    event.preventDefault()
    const v = formValues(editForm)
    /** @type {UpdateTask} */
    const body = {}
    if (typeof v.title === 'string' && v.title !== task.title) body.title = v.title
    if (v.priority !== task.priority) body.priority = /** @type {UpdateTask['priority']} */ (v.priority)
    const assignee = typeof v.assigned_to === 'string' ? v.assigned_to : null
    if (assignee !== task.assigned_to) body.assigned_to = assignee
    const due = typeof v.due_at === 'string' ? fromLocalInput(v.due_at) : null
    if (toLocalInput(due) !== toLocalInput(task.due_at)) body.due_at = due
    submitting(editForm, async () => {
      if (!Object.keys(body).length) { notice('Nothing to save.'); return }
      await call(api.PUT('/api/tasks/{id}', { params: { path, header: ifMatch }, body }))
      reload('Task saved.')
    })
  })

  // ---- delete (two steps)
  const remove = h('button', { type: 'button', class: 'danger', id: 'delete-task' }, 'Delete task')
  const deleteForm = h('form', { class: 'inline', 'aria-label': 'Delete the task' }, remove)
  remove.addEventListener('click', () => {
    if (remove.dataset.confirm === undefined) {
      remove.dataset.confirm = ''
      remove.textContent = 'Click again to delete'
      return
    }
    submitting(deleteForm, async () => {
      await call(api.DELETE('/api/tasks/{id}', { params: { path } }))
      go('#/tasks')
    })
  })

  // ---- comments
  const comments = h('ol', { class: 'comments', id: 'comments' }, task.comments.map(c => comment(c, nameOf)))
  const more = task.comments_next_cursor ? h('button', { type: 'button', class: 'secondary small' }, 'Older comments…') : null
  let cursor = task.comments_next_cursor
  more?.addEventListener('click', () => {
    submitting(commentForm, async () => {
      const page = await call(api.GET('/api/tasks/{id}/comments', { params: { path, query: { limit: 50, ...(cursor ? { cursor } : {}) } } }))
      const names = await namesFor(page.items.map(c => c.author_id))
      comments.append(...page.items.map(c => comment(c, names)))
      cursor = page.next_cursor
      if (!cursor) more.remove()
    })
  })
  const commentForm = h('form', { id: 'add-comment', novalidate: true, 'aria-label': 'Add a comment' },
    field('Comment', h('textarea', { name: 'body', rows: 3, required: true, maxlength: 5000 })),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Add comment'))
  )
  commentForm.addEventListener('submit', event => {
    event.preventDefault()
    const v = formValues(commentForm)
    submitting(commentForm, async () => {
      const added = await call(api.POST('/api/tasks/{id}/comments', { params: { path }, body: { body: typeof v.body === 'string' ? v.body : '' } }))
      comments.append(comment(added, nameOf))
      commentForm.reset()
    })
  })

  // ---- status history: the task carries its 20 most recent changes; the whole history pages
  const RECENT = 20
  const history = h('ol', { class: 'history', id: 'status-history' }, task.status_history.map(s => change(s, nameOf)))
  const allChanges = h('button', { type: 'button', class: 'secondary small', id: 'all-changes' }, 'All changes…')
  const allChangesForm = task.status_history.length >= RECENT ? h('form', { class: 'inline', 'aria-label': 'All status changes' }, allChanges) : null
  /** @type {string | null | undefined} undefined: the full history is not loaded yet */
  let historyCursor
  allChanges.addEventListener('click', () => {
    if (!allChangesForm) return
    submitting(allChangesForm, async () => {
      const page = await call(api.GET('/api/tasks/{id}/history', { params: { path, query: { limit: 100, ...(historyCursor ? { cursor: historyCursor } : {}) } } }))
      const names = await namesFor(page.items.map(s => s.changed_by))
      // The first page replaces the recent changes: the full list starts with the oldest.
      if (historyCursor === undefined) history.replaceChildren()
      history.append(...page.items.map(s => change(s, names)))
      historyCursor = page.next_cursor
      if (historyCursor) allChanges.textContent = 'More changes…'
      else allChangesForm.remove()
    })
  })

  fill(view,
    h('p', { class: 'crumbs' }, h('a', { href: '#/tasks' }, '← Tasks')),
    title(task.title),
    h('p', { class: 'subtitle' }, badge('priority', task.priority), ' ', badge('status', task.status), ` · version ${task.version}`),
    h('div', { class: 'grid' },
      h('section', { class: 'card' },
        h('dl', { class: 'facts' },
          h('dt', null, 'Assignee'), h('dd', { id: 'task-assignee' }, nameOf(task.assigned_to)),
          h('dt', null, 'Created by'), h('dd', null, nameOf(task.created_by)),
          h('dt', null, 'Created'), h('dd', null, time(task.created_at)),
          h('dt', null, 'Due'), h('dd', null, time(task.due_at)),
          h('dt', null, 'Event'), h('dd', null, task.event_id ? h('a', { href: `#/events/${task.event_id}` }, 'Open the event') : 'none')),
        task.description ? h('p', { class: 'prose' }, task.description) : null,
        canDelete ? deleteForm : null),
      canChange ? statusForm : h('section', { class: 'card' }, h('h2', null, 'Status'), h('p', null, badge('status', task.status)), h('p', { class: 'hint' }, 'Only the creator, the assignee, managers and admins change this task.')),
      canChange ? editForm : null
    ),
    h('div', { class: 'grid' },
      h('section', { class: 'card' }, h('h2', null, 'Comments'), comments, more, commentForm),
      h('section', { class: 'card' }, h('h2', null, 'Status history'),
        task.status_history.length ? [history, allChangesForm] : h('p', { class: 'empty' }, 'No status change yet.'))
    )
  )
}

/**
 * @param {Schemas['StatusHistoryEntry']} s
 * @param {(id: string) => string} nameOf
 */
function change (s, nameOf) {
  return h('li', null, badge('status', s.from), ' → ', badge('status', s.to), ' by ', nameOf(s.changed_by), ', ', time(s.changed_at), s.comment ? h('q', null, s.comment) : null)
}

/**
 * @param {Schemas['TaskComment']} c
 * @param {(id: string) => string} nameOf
 */
function comment (c, nameOf) {
  return h('li', { class: 'comment' }, h('p', { class: 'meta' }, nameOf(c.author_id), ' · ', time(c.created_at)), h('p', { class: 'prose' }, c.body))
}
