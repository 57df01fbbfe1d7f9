// @ts-check
/**
 * Change password. Required first when the password is temporary (the API refuses everything
 * else with 403 password_change_required). The API then ends every session: log in again.
 */
import { changePassword } from '../api.js'
import { h, fill, field, submitting, title, showError } from '../dom.js'
import { ApiError } from '../api.js'

/** @param {import('../app.js').Context} ctx */
export async function render ({ view, user }) {
  const form = h('form', { class: 'card narrow', novalidate: true, 'aria-label': 'Change password' },
    user.must_change_password
      ? h('p', { class: 'hint' }, 'Your password is temporary: choose your own password before you continue.')
      : null,
    h('input', { type: 'email', name: 'username', value: user.email, autocomplete: 'username', hidden: true, readonly: true }),
    field('Current password', h('input', { name: 'current_password', type: 'password', autocomplete: 'current-password', required: true })),
    field('New password', h('input', { name: 'new_password', type: 'password', autocomplete: 'new-password', required: true, minlength: 12, maxlength: 128 }),
      '12 to 128 characters; not a common password, not containing your e-mail or name.'),
    field('Repeat the new password', h('input', { name: 'repeat', type: 'password', autocomplete: 'new-password', required: true })),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Change password'))
  )
  form.addEventListener('submit', event => {
    event.preventDefault()
    const data = new FormData(form)
    const next = String(data.get('new_password') ?? '')
    submitting(form, async () => {
      if (next !== String(data.get('repeat') ?? '')) {
        showError(new ApiError({ type: 'about:blank', title: 'Bad Request', status: 400, code: 'validation_failed', detail: 'The new passwords differ.', errors: [{ path: '/body/repeat', message: 'must repeat the new password' }] }), form)
        return
      }
      // Success ends the session (every token is revoked): the shell shows the login page.
      await changePassword(String(data.get('current_password') ?? ''), next)
    })
  })
  fill(view, title('Change password'), h('p', null, 'Signed in as ', h('strong', null, user.email), '.'), form)
}
