// @ts-check
/**
 * Users. Admins: create (a temporary password is shown once), change role, deactivate or
 * reactivate, reset a password. Managers: read only.
 */
import { api, call } from '../api.js'
import { h, fill, field, select, choices, badge, time, title, busy, formValues, submitting, secretBox, notice, ROLES } from '../dom.js'
import { pagedTable, filtersToHash } from '../paging.js'

/** @typedef {import('../api.js').Schemas} Schemas */
/** @typedef {Schemas['UserProfile']} UserProfile */
/** @typedef {NonNullable<import('../api.js').paths['/api/users']['get']['parameters']['query']>} UserQuery */

/** @param {import('../app.js').Context} ctx */
export async function render ({ view, query, user, go, reload }) {
  const admin = user.role === 'admin'
  /** @type {UserQuery} */
  const filters = {}
  const role = query.get('role')
  const active = query.get('is_active')
  const search = query.get('search')
  if (role) filters.role = /** @type {UserQuery['role']} */ (role)
  if (active === 'true' || active === 'false') filters.is_active = active === 'true'
  if (search) filters.search = search

  const form = h('form', { class: 'filters', novalidate: true, 'aria-label': 'Filter users' },
    field('Role', select('role', choices(ROLES, 'any'), filters.role)),
    field('Active', select('is_active', [['', 'any'], ['true', 'active'], ['false', 'deactivated']], active)),
    field('Search', h('input', { name: 'search', type: 'search', value: search ?? '', placeholder: 'name or e-mail', maxlength: 100 })),
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, 'Apply'),
      h('a', { class: 'button secondary', href: '#/users' }, 'Reset'))
  )
  filtersToHash(form, '#/users', go)

  const secret = h('div', { id: 'user-secret' })
  const create = h('form', { class: 'card form-wide', id: 'new-user', novalidate: true, 'aria-label': 'New user' },
    h('h2', null, 'New user'),
    field('E-mail', h('input', { name: 'email', type: 'email', required: true, maxlength: 254, autocomplete: 'off' })),
    field('Name', h('input', { name: 'name', required: true, maxlength: 100, autocomplete: 'off' })),
    field('Role', select('role', choices(ROLES), 'user')),
    field('Password', h('input', { name: 'password', type: 'password', minlength: 12, maxlength: 128, autocomplete: 'new-password' }),
      'Leave empty to generate a temporary password, shown once; the user must change it at first login.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create user'))
  )
  create.addEventListener('submit', event => {
    event.preventDefault()
    const v = formValues(create)
    submitting(create, async () => {
      fill(secret)
      const created = await call(api.POST('/api/users', {
        body: {
          email: String(v.email ?? ''),
          name: String(v.name ?? ''),
          role: /** @type {UserProfile['role']} */ (v.role),
          ...(typeof v.password === 'string' ? { password: v.password } : {})
        }
      }))
      create.reset()
      notice(`User ${created.user.email} created.`)
      if (created.temporary_password) {
        fill(secret, secretBox(`Temporary password of ${created.user.email}:`, created.temporary_password, 'Shown only now. Give it to the user through a safe channel; they must change it at first login.'))
      }
      await busy(view, load)
      secret.scrollIntoView({ block: 'nearest' })
    })
  })

  const results = h('section', { class: 'card', 'aria-label': 'Users' })
  fill(view, title('Users'), admin ? null : h('p', { class: 'hint' }, 'Read only: only admins manage users.'), secret, form, results, admin ? create : null)

  const load = pagedTable({
    view,
    results,
    id: 'users-table',
    columns: ['Name', 'E-mail', 'Role', 'State', 'Last login', ...(admin ? ['Actions'] : [])],
    empty: 'No users match these filters.',
    fetch: page => call(api.GET('/api/users', { params: { query: { ...filters, ...page } } })),
    rows: items => items.map(u => row(u, user, admin, reload))
  })
  await load()
}

/**
 * @param {UserProfile} u
 * @param {UserProfile} me
 * @param {boolean} admin
 * @param {(notice?: string) => void} reload
 */
function row (u, me, admin, reload) {
  const self = u.id === me.id
  const path = { id: u.id }
  const cells = [
    h('td', null, u.name, self ? h('span', { class: 'hint' }, ' (you)') : null),
    h('td', null, u.email),
    h('td', null, badge('role', u.role)),
    h('td', null, u.is_active ? 'active' : 'deactivated', u.must_change_password ? h('span', { class: 'hint' }, ' · temporary password') : null),
    h('td', null, time(u.last_login_at))
  ]
  if (!admin) return h('tr', { 'data-id': u.id }, cells)

  const actions = h('form', { class: 'row-actions', 'aria-label': `Manage ${u.email}` })
  const roleSelect = select('role', choices(ROLES), u.role, { disabled: self, 'aria-label': 'Role' })
  roleSelect.addEventListener('change', () => {
    submitting(actions, async () => {
      try {
        await call(api.PUT('/api/users/{id}', { params: { path }, body: { role: /** @type {UserProfile['role']} */ (roleSelect.value) } }))
      } catch (err) {
        roleSelect.value = u.role
        throw err
      }
      notice(`${u.email} is now ${roleSelect.value}.`)
    })
  })
  const toggle = h('button', { type: 'button', class: 'secondary small', disabled: self }, u.is_active ? 'Deactivate' : 'Reactivate')
  toggle.addEventListener('click', () => {
    submitting(actions, async () => {
      if (u.is_active) await call(api.DELETE('/api/users/{id}', { params: { path } }))
      else await call(api.PUT('/api/users/{id}', { params: { path }, body: { is_active: true } }))
      reload(`${u.email} ${u.is_active ? 'deactivated' : 'reactivated'}.`)
    })
  })
  const reset = h('button', { type: 'button', class: 'secondary small' }, 'Reset password')
  const secret = h('div')
  reset.addEventListener('click', () => {
    submitting(actions, async () => {
      const { temporary_password: password } = await call(api.POST('/api/users/{id}/reset-password', { params: { path } }))
      fill(secret, secretBox(`Temporary password of ${u.email}:`, password, 'Shown only now. Every session of this user has ended.'))
    })
  })
  fill(actions, roleSelect, ' ', toggle, ' ', reset, secret)
  return h('tr', { 'data-id': u.id }, cells, h('td', null, actions))
}
