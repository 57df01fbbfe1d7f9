// @ts-check
/**
 * Monitored AWS accounts (admins): register (the ingestion API key is shown once), test the
 * connection, rotate the key (shown once), enable or disable, delete.
 */
import { api, call } from '../api.js'
import { h, fill, field, time, title, busy, formValues, submitting, secretBox, notice } from '../dom.js'
import { pagedTable } from '../paging.js'

/** @typedef {import('../api.js').Schemas} Schemas */
/** @typedef {Schemas['AwsAccount']} AwsAccount */
/** @typedef {Schemas['CreateAwsAccountRequest']} CreateAwsAccount */

const KEY_NOTE = 'Shown only now: configure it as the X-Api-Key header of the EventBridge connection. It cannot be shown again (rotate it if lost).'

/** @param {import('../app.js').Context} ctx */
export async function render ({ view }) {
  const secret = h('div', { id: 'account-secret' })
  const create = h('form', { class: 'card form-wide', id: 'new-account', novalidate: true, 'aria-label': 'Register an AWS account' },
    h('h2', null, 'Register an AWS account'),
    field('AWS account number', h('input', { name: 'account_id', required: true, inputmode: 'numeric', pattern: '[0-9]{12}', placeholder: '123456789012', maxlength: 12 })),
    field('Name', h('input', { name: 'name', required: true, maxlength: 100 })),
    field('Role ARN', h('input', { name: 'role_arn', required: true, placeholder: 'arn:aws:iam::123456789012:role/CloudMonitoringReadOnly', maxlength: 2048 }),
      'The IAM role the console assumes (sts:AssumeRole).'),
    field('External id', h('input', { name: 'external_id', maxlength: 1224 }), 'Optional.'),
    field('Regions', h('input', { name: 'regions', placeholder: 'eu-west-1, us-east-1' }), 'Comma-separated.'),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'enabled', checked: true }), ' Accept events from this account'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Register'))
  )
  create.addEventListener('submit', event => {
    event.preventDefault()
    const v = formValues(create)
    submitting(create, async () => {
      fill(secret)
      /** @type {CreateAwsAccount} */
      const body = {
        account_id: String(v.account_id ?? ''),
        name: String(v.name ?? ''),
        role_arn: String(v.role_arn ?? ''),
        regions: typeof v.regions === 'string' ? v.regions.split(/[\s,]+/).filter(Boolean) : [],
        enabled: v.enabled === true
      }
      if (typeof v.external_id === 'string') body.external_id = v.external_id
      const created = await call(api.POST('/api/config/aws-accounts', { body }))
      create.reset()
      notice(`AWS account ${created.account.account_id} registered.`)
      fill(secret, secretBox(`Ingestion API key of ${created.account.name}:`, created.api_key, KEY_NOTE))
      await busy(view, load)
      secret.scrollIntoView({ block: 'nearest' })
    })
  })

  const results = h('section', { class: 'card', 'aria-label': 'AWS accounts' })
  fill(view, title('AWS accounts'), secret, results, create)

  /** @type {() => Promise<void>} */
  const load = pagedTable({
    view,
    results,
    id: 'accounts-table',
    columns: ['Name', 'Account', 'Regions', 'State', 'API key', 'Last connection test', 'Actions'],
    empty: 'No AWS account is registered yet.',
    fetch: page => call(api.GET('/api/config/aws-accounts', { params: { query: page } })),
    rows: items => items.map(a => row(a, () => busy(view, load)))
  })
  await load()
}

/**
 * @param {AwsAccount} a
 * @param {() => Promise<void>} refresh
 */
function row (a, refresh) {
  const path = { id: a.id }
  const actions = h('form', { class: 'row-actions', 'aria-label': `Manage ${a.name}` })
  const output = h('div')
  /**
   * @param {string} label
   * @param {() => Promise<void>} work
   * @param {string} [cls]
   */
  const button = (label, work, cls = 'secondary small') => {
    const b = h('button', { type: 'button', class: cls }, label)
    b.addEventListener('click', () => { submitting(actions, work) })
    return b
  }
  const remove = h('button', { type: 'button', class: 'danger small' }, 'Delete')
  remove.addEventListener('click', () => {
    if (remove.dataset.confirm === undefined) {
      remove.dataset.confirm = ''
      remove.textContent = 'Click again to delete'
      return
    }
    submitting(actions, async () => {
      await call(api.DELETE('/api/config/aws-accounts/{id}', { params: { path } }))
      notice(`AWS account ${a.account_id} deleted; its API key no longer works.`)
      await refresh()
    })
  })
  fill(actions,
    button('Test connection', async () => {
      const result = await call(api.POST('/api/config/aws-accounts/{id}/test-connection', { params: { path } }))
      fill(output, connection(result))
    }), ' ',
    button('Rotate key', async () => {
      const rotated = await call(api.POST('/api/config/aws-accounts/{id}/rotate-key', { params: { path } }))
      fill(output, secretBox(`New ingestion API key of ${a.name}:`, rotated.api_key, `${KEY_NOTE} The previous key stopped working.`))
    }), ' ',
    button(a.enabled ? 'Disable' : 'Enable', async () => {
      await call(api.PUT('/api/config/aws-accounts/{id}', { params: { path }, body: { enabled: !a.enabled } }))
      notice(`AWS account ${a.account_id} ${a.enabled ? 'disabled' : 'enabled'}.`)
      await refresh()
    }), ' ',
    remove,
    output)
  return h('tr', { 'data-id': a.id },
    h('td', null, a.name),
    h('td', null, h('code', null, a.account_id)),
    h('td', null, a.regions.join(', ') || '—'),
    h('td', null, a.enabled ? 'enabled' : 'disabled'),
    h('td', null, h('code', { class: 'key-prefix' }, `${a.api_key_prefix}…`)),
    h('td', null, a.last_connection_test ? connection(a.last_connection_test) : 'never'),
    h('td', null, actions))
}

/** @param {Schemas['ConnectionTestResult']} result */
function connection (result) {
  return h('span', { class: result.ok ? 'ok' : 'failed' },
    result.ok ? 'OK' : 'Failed', ' · ', time(result.checked_at),
    result.error ? h('small', { class: 'hint' }, ` ${result.error}`) : null)
}
