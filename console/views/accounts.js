// @ts-check
/**
 * Monitored AWS accounts (admins): register (the ingestion API key is shown once), onboard it
 * (the member stack for the account owner: steps, quick-create links, CLI commands, template),
 * test the connection, see whether its events arrive (ingestion health), rotate the key (shown
 * once), enable or disable, delete.
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
    button('Onboarding', async () => {
      const kit = await call(api.GET('/api/config/aws-accounts/{id}/onboarding', { params: { path } }))
      fill(output, onboarding(kit))
    }), ' ',
    button('Test connection', async () => {
      const result = await call(api.POST('/api/config/aws-accounts/{id}/test-connection', { params: { path } }))
      fill(output, connection(result))
    }), ' ',
    button('Ingestion health', async () => {
      const health = await call(api.GET('/api/config/aws-accounts/{id}/ingestion-health', { params: { path } }))
      fill(output, ingestionHealth(health))
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
  // What passed without being verified (no PUBLIC_BASE_URL, an account without regions).
  const notes = [...new Set(result.checks.flatMap(c => c.note ? [c.note] : []))]
  return h('span', { class: result.ok ? 'ok' : 'failed' },
    result.ok ? 'OK' : 'Failed', ' · ', time(result.checked_at),
    result.error ? h('small', { class: 'hint' }, ` ${result.error}`) : null,
    notes.length ? h('small', { class: 'hint' }, ` ${notes.join(' ')}`) : null)
}

const ACTIONS = /** @type {const} */ (['created', 'updated', 'resolved', 'ignored', 'duplicate', 'rejected'])

/**
 * Whether an account's events arrive: last delivery, results per detail-type over 24 hours and
 * 7 days, and the last ignored or rejected envelope with its reason.
 * @param {Schemas['IngestionHealth']} health
 */
function ingestionHealth (health) {
  /** @param {Schemas['IngestionWindow']} w @param {string} label */
  const table = (w, label) => h('table', { class: 'ingestion-counts', 'aria-label': label },
    h('caption', null, label),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Detail-type'), ...ACTIONS.map(a => h('th', { scope: 'col' }, a)))),
    h('tbody', null,
      ...w.by_detail_type.map(d => h('tr', null, h('th', { scope: 'row' }, d.detail_type), ...ACTIONS.map(a => h('td', null, String(d.counts[a]))))),
      h('tr', { class: 'total' }, h('th', { scope: 'row' }, 'All'), ...ACTIONS.map(a => h('td', null, String(w.totals[a]))))))
  const problem = health.last_problem
  return h('div', { class: 'ingestion-health', 'data-account': health.account_id },
    h('p', null, 'Last delivery: ', health.last_delivery_at ? time(health.last_delivery_at) : h('strong', null, 'none in the last 7 days'),
      health.last_delivery_at ? null : h('small', { class: 'hint' }, ' Check the EventBridge rule, the API destination and its dead-letter queue in the account.')),
    table(health.last_24h, 'Last 24 hours'),
    table(health.last_7d, 'Last 7 days'),
    h('p', { class: 'last-problem' }, 'Last problem: ', problem
      ? h('span', null, `${problem.action} (${problem.reason})`, problem.detail_type ? ` · ${problem.detail_type}` : '', ' · ', time(problem.at),
        problem.envelope_id ? h('small', { class: 'hint' }, ` envelope ${problem.envelope_id}`) : null)
      : 'none'))
}

/**
 * A button that copies `text` (navigator.clipboard; without it, or refused, it says to select
 * and copy by hand). The listener is attached here: the CSP forbids inline handlers.
 * @param {string} label
 * @param {() => string} text
 */
function copyButton (label, text) {
  const b = h('button', { type: 'button', class: 'secondary small copy' }, label)
  b.addEventListener('click', () => {
    const done = () => { b.textContent = 'Copied' }
    const failed = () => { b.textContent = 'Select and copy it' }
    if (navigator.clipboard) navigator.clipboard.writeText(text()).then(done, failed)
    else failed()
  })
  return b
}

/**
 * What the account owner needs to connect the account: the steps, what the service could not
 * fill in, a quick-create link per region, the AWS CLI and StackSet commands, the parameters and
 * the member template (copy, or download as a file). Never the API key.
 * @param {Schemas['AwsAccountOnboarding']} kit
 */
function onboarding (kit) {
  const templateText = `${JSON.stringify(kit.template, null, 2)}\n`
  const download = h('a', { class: 'button secondary small', download: 'cloud-monitoring-member.json', href: URL.createObjectURL(new Blob([templateText], { type: 'application/json' })) }, 'Download template')
  /** @param {string} title @param {string} text @param {string} cls */
  const command = (title, text, cls) => h('div', { class: `onboarding-command ${cls}` },
    h('h4', null, title, ' ', copyButton('Copy', () => text)),
    h('pre', { class: 'raw' }, h('code', null, text)))
  const links = kit.regions.filter(r => r.quick_create_url)
  return h('section', { class: 'onboarding', 'data-account': kit.account_id, 'aria-label': `Onboarding of ${kit.account_id}` },
    h('h3', null, `Onboarding of AWS account ${kit.account_id}`),
    h('ol', { class: 'onboarding-steps' }, kit.steps.map(step => h('li', null, step))),
    kit.missing.length
      ? h('div', { class: 'onboarding-missing failed' }, h('strong', null, 'Not filled in by the service:'),
        h('ul', null, kit.missing.map(m => h('li', { 'data-parameter': m.parameter }, h('code', null, m.parameter), ` ${m.reason}`))))
      : null,
    kit.notes.length ? h('ul', { class: 'onboarding-notes hint' }, kit.notes.map(n => h('li', null, n))) : null,
    h('h4', null, 'Quick-create links'),
    links.length
      ? h('ul', { class: 'quick-create' }, links.map(r => h('li', null,
        h('a', { href: r.quick_create_url, target: '_blank', rel: 'noopener noreferrer', 'data-region': r.region }, `Create the stack in ${r.region}`),
        r.create_role ? ' (creates the role: first)' : ' (CreateRole=false)', ' ',
        copyButton('Copy link', () => r.quick_create_url ?? ''))))
      : h('p', { class: 'hint quick-create-missing' }, 'No quick-create links until everything above is filled in: use the AWS CLI commands with the template.'),
    command('AWS CLI', kit.commands.deploy, 'deploy'),
    command('AWS Organizations (StackSet)', kit.commands.stack_set, 'stack-set'),
    h('h4', null, 'Parameters'),
    h('table', { class: 'onboarding-parameters' },
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Parameter'), h('th', { scope: 'col' }, 'Value'), h('th', { scope: 'col' }, 'What'))),
      h('tbody', null, kit.parameters.map(p => h('tr', { 'data-parameter': p.name },
        h('th', { scope: 'row' }, h('code', null, p.name)),
        h('td', null, p.secret ? h('em', null, 'the API key (shown once; rotate it if lost)') : p.value === null ? h('strong', { class: 'failed' }, 'missing') : h('code', null, p.value)),
        h('td', null, h('small', null, p.description)))))),
    h('h4', null, 'Template ', copyButton('Copy template', () => templateText), ' ', download),
    h('p', { class: 'hint' }, 'The member stack with this account\'s values as defaults. Expected role: ', h('code', null, kit.role_arn),
      kit.role_arn_matches ? null : h('strong', { class: 'failed' }, ' (not the registered role_arn)')))
}
