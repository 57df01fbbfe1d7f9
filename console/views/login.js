// @ts-check
/** Login: e-mail and password; a temporary password leads to the change-password page. */
import { login } from '../api.js'
import { h, fill, field, submitting, title } from '../dom.js'

/** @param {import('../app.js').Context} ctx */
export async function render ({ view, go }) {
  const form = h('form', { class: 'card narrow', novalidate: true, 'aria-label': 'Log in' },
    field('E-mail', h('input', { name: 'email', type: 'email', autocomplete: 'username', required: true, autofocus: true })),
    field('Password', h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Log in'))
  )
  form.addEventListener('submit', event => {
    event.preventDefault()
    const data = new FormData(form)
    submitting(form, async () => {
      const user = await login(String(data.get('email') ?? '').trim(), String(data.get('password') ?? ''))
      // Logged in, the router leaves #/login for the page that asked for the login.
      go(user.must_change_password ? '#/change-password' : '#/login')
    })
  })
  fill(view, title('Log in'), form)
  form.querySelector('input')?.focus()
}
