// @ts-check
/**
 * Notifications (admins). `#/notifications`: the channels (create: a webhook's signing secret is
 * shown once; send a test and see the receiver's answer; rotate the secret, shown once; enable or
 * disable; delete) and the rules (create, enable or disable, delete).
 * `#/notifications/<channel id>`: the channel's delivery log, and its test button.
 */
import { api, call, ApiError } from '../api.js'
import { h, fill, field, select, choices, badge, time, title, busy, formValues, submitting, secretBox, notice, SEVERITIES, SOURCES } from '../dom.js'
import { pagedTable } from '../paging.js'

/** @typedef {import('../api.js').Schemas} Schemas */
/** @typedef {Schemas['NotificationChannel']} Channel */
/** @typedef {Schemas['NotificationRule']} Rule */
/** @typedef {Schemas['NotificationTestResult']} TestResult */
/** @typedef {Schemas['NotificationDelivery']} Delivery */
/** @typedef {Schemas['CreateNotificationRuleRequest']} CreateRule */

const SECRET_NOTE = 'Shown only now: install it in the receiver to verify the webhook-signature header (see docs/notifications.md). It cannot be shown again (rotate it if lost).'

/** @type {Array<[Schemas['NotificationChangeKind'], string]>} */
const KINDS = [
  ['event.created', 'Event created'],
  ['event.reopened', 'Event reopened (severity rose)'],
  ['event.resolved', 'Event resolved'],
  ['task.assigned', 'Task assigned'],
  ['task.status_changed', 'Task status changed'],
  ['task.commented', 'Task commented']
]

/** @param {import('../app.js').Context} ctx */
export async function render (ctx) {
  if (ctx.params[0]) return deliveryLog(ctx, ctx.params[0])
  const { view } = ctx

  // ------------------------------------------------------------------------- channels
  const secret = h('div', { id: 'channel-secret' })
  const createChannel = h('form', { class: 'card form-wide', id: 'new-channel', novalidate: true, 'aria-label': 'New notification channel' },
    h('h2', null, 'New channel'),
    field('Name', h('input', { name: 'name', required: true, maxlength: 100 })),
    field('Type', select('type', [['webhook', 'webhook (signed JSON POST)'], ['slack', 'Slack incoming webhook']], 'webhook')),
    field('URL', h('input', { name: 'url', type: 'url', required: true, maxlength: 2048, placeholder: 'https://hooks.example.com/monitoring' }),
      'https only. A Slack URL is a secret: it is stored encrypted and only shown masked.'),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'enabled', checked: true }), ' Send notifications to this channel'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create channel'))
  )
  createChannel.addEventListener('submit', event => {
    event.preventDefault()
    const v = formValues(createChannel)
    submitting(createChannel, async () => {
      fill(secret)
      const created = await call(api.POST('/api/config/notification-channels', {
        body: {
          name: String(v.name ?? ''),
          type: /** @type {Channel['type']} */ (v.type),
          url: String(v.url ?? ''),
          enabled: v.enabled === true
        }
      }))
      createChannel.reset()
      notice(`Channel ${created.channel.name} created.`)
      if (created.signing_secret) fill(secret, secretBox(`Signing secret of ${created.channel.name}:`, created.signing_secret, SECRET_NOTE))
      await busy(view, refreshChannels)
      secret.scrollIntoView({ block: 'nearest' })
    })
  })
  const channelResults = h('section', { class: 'card', id: 'channels', 'aria-label': 'Notification channels' })

  // ------------------------------------------------------------------------- rules
  const channelChoices = h('fieldset', { id: 'rule-channels' })
  const createRule = h('form', { class: 'card form-wide', id: 'new-rule', novalidate: true, 'aria-label': 'New notification rule' },
    h('h2', null, 'New rule'),
    field('Name', h('input', { name: 'name', required: true, maxlength: 100 })),
    h('fieldset', null, h('legend', null, 'Changes that notify'),
      KINDS.map(([kind, label]) => h('label', { class: 'check' },
        h('input', { type: 'checkbox', name: 'kinds', value: kind, 'data-multi': '' }), ` ${label}`))),
    channelChoices,
    h('fieldset', null, h('legend', null, 'Events only (task changes match by kind)'),
      field('Minimum severity', select('min_severity', choices(SEVERITIES, 'any'), '')),
      h('div', { class: 'checks', 'data-name': 'sources' }, h('span', { class: 'field-label' }, 'Sources (none checked: any)'),
        SOURCES.map(s => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'sources', value: s, 'data-multi': '' }), ` ${s}`))),
      field('AWS accounts', h('input', { name: 'account_ids', inputmode: 'numeric', placeholder: '123456789012, 210987654321' }), 'Comma-separated 12-digit account numbers; empty: any.')),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'enabled', checked: true }), ' Enabled'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create rule'))
  )
  createRule.addEventListener('submit', event => {
    event.preventDefault()
    const v = formValues(createRule)
    submitting(createRule, async () => {
      /** @type {CreateRule} */
      const body = {
        name: String(v.name ?? ''),
        enabled: v.enabled === true,
        channel_ids: /** @type {string[]} */ (v.channel_ids ?? []),
        kinds: /** @type {CreateRule['kinds']} */ (v.kinds ?? []),
        min_severity: typeof v.min_severity === 'string' ? /** @type {Schemas['Severity']} */ (v.min_severity) : null,
        sources: /** @type {NonNullable<CreateRule['sources']>} */ (v.sources ?? []),
        account_ids: typeof v.account_ids === 'string' ? v.account_ids.split(/[\s,]+/).filter(Boolean) : []
      }
      const created = await call(api.POST('/api/config/notification-rules', { body }))
      createRule.reset()
      notice(`Rule ${created.name} created.`)
      await busy(view, loadRules)
    })
  })
  const ruleResults = h('section', { class: 'card', id: 'rules', 'aria-label': 'Notification rules' })

  fill(view, title('Notifications'),
    h('h2', null, 'Channels'), secret, channelResults, createChannel,
    h('h2', null, 'Rules'), ruleResults, createRule)

  /** Names of the channels (the first 100), for the rules. */
  /** @type {Map<string, Channel>} */
  let channels = new Map()
  const loadChannelChoices = async () => {
    const list = await call(api.GET('/api/config/notification-channels', { params: { query: { limit: 100 } } }))
    channels = new Map(list.items.map(c => [c.id, c]))
    fill(channelChoices, h('legend', null, 'Send to'),
      list.items.length
        ? list.items.map(c => h('label', { class: 'check' },
          h('input', { type: 'checkbox', name: 'channel_ids', value: c.id, 'data-multi': '' }), ` ${c.name} `, h('small', { class: 'hint' }, `(${c.type}${c.enabled ? '' : ', disabled'})`)))
        : h('p', { class: 'hint' }, 'No channel yet: create one first.'))
  }

  /** @type {() => Promise<void>} */
  const loadChannels = pagedTable({
    view,
    results: channelResults,
    id: 'channels-table',
    columns: ['Name', 'Type', 'URL', 'State', 'Signing secret', 'Last test', 'Actions'],
    empty: 'No notification channel yet.',
    fetch: page => call(api.GET('/api/config/notification-channels', { params: { query: page } })),
    rows: items => items.map(c => channelRow(c, () => busy(view, refreshChannels)))
  })
  /** @type {() => Promise<void>} */
  const loadRules = pagedTable({
    view,
    results: ruleResults,
    id: 'rules-table',
    columns: ['Name', 'Changes', 'Events matched', 'Channels', 'State', 'Actions'],
    empty: 'No notification rule yet: nothing is sent.',
    fetch: page => call(api.GET('/api/config/notification-rules', { params: { query: page } })),
    rows: items => items.map(r => ruleRow(r, channels, () => busy(view, loadRules)))
  })
  /** The channels changed: their table, the rule form's choices, the rules (channel names). */
  const refreshChannels = async () => {
    await loadChannelChoices()
    await Promise.all([loadChannels(), loadRules()])
  }
  await refreshChannels()
}

/**
 * A form for a row's buttons (errors show in the error area) and a `button` maker.
 * @param {string} label
 */
function rowActions (label) {
  const actions = h('form', { class: 'row-actions', 'aria-label': label })
  /**
   * @param {string} text
   * @param {() => Promise<void>} work
   * @param {string} [cls]
   */
  const button = (text, work, cls = 'secondary small') => {
    const b = h('button', { type: 'button', class: cls }, text)
    b.addEventListener('click', () => { submitting(actions, work) })
    return b
  }
  /**
   * A delete button that asks for a second click.
   * @param {() => Promise<void>} work
   */
  const remove = (work) => {
    const b = h('button', { type: 'button', class: 'danger small' }, 'Delete')
    b.addEventListener('click', () => {
      if (b.dataset.confirm === undefined) {
        b.dataset.confirm = ''
        b.textContent = 'Click again to delete'
        return
      }
      submitting(actions, work)
    })
    return b
  }
  return { actions, button, remove }
}

/**
 * @param {Channel} c
 * @param {() => Promise<void>} refresh
 */
function channelRow (c, refresh) {
  const path = { id: c.id }
  const { actions, button, remove } = rowActions(`Manage ${c.name}`)
  const output = h('div', { class: 'row-output' })
  fill(actions,
    testButton(c, button, output), ' ',
    h('a', { class: 'button secondary small', href: `#/notifications/${c.id}` }, 'Delivery log'), ' ',
    c.type === 'webhook'
      ? button('Rotate secret', async () => {
        const rotated = await call(api.POST('/api/config/notification-channels/{id}/rotate-secret', { params: { path } }))
        fill(output, secretBox(`New signing secret of ${c.name}:`, rotated.signing_secret,
          `${SECRET_NOTE} Until ${new Date(rotated.previous_secret_expires_at).toLocaleString()} deliveries are also signed with the previous secret.`))
      })
      : null, ' ',
    button(c.enabled ? 'Disable' : 'Enable', async () => {
      await call(api.PUT('/api/config/notification-channels/{id}', { params: { path }, body: { enabled: !c.enabled } }))
      notice(`Channel ${c.name} ${c.enabled ? 'disabled' : 'enabled'}.`)
      await refresh()
    }), ' ',
    remove(async () => {
      await call(api.DELETE('/api/config/notification-channels/{id}', { params: { path } }))
      notice(`Channel ${c.name} deleted.`)
      await refresh()
    }),
    output)
  return h('tr', { 'data-id': c.id },
    h('td', null, h('a', { href: `#/notifications/${c.id}` }, c.name)),
    h('td', null, c.type),
    h('td', null, h('code', { class: 'channel-url' }, c.url)),
    h('td', null, c.enabled ? 'enabled' : 'disabled'),
    h('td', null, c.secret_prefix ? h('code', { class: 'key-prefix' }, `${c.secret_prefix}…`) : '—',
      c.previous_secret_expires_at ? h('small', { class: 'hint' }, ' previous one until ', time(c.previous_secret_expires_at)) : null),
    h('td', { class: 'last-test' }, c.last_test ? testResult(c.last_test) : 'never'),
    h('td', null, actions))
}

/**
 * The "Send test" button: sends a test notification, shows the receiver's answer in `output`.
 * @param {Channel} c
 * @param {(text: string, work: () => Promise<void>, cls?: string) => HTMLButtonElement} button
 * @param {HTMLElement} output
 */
function testButton (c, button, output) {
  return button('Send test', async () => {
    const result = await call(api.POST('/api/config/notification-channels/{id}/test', { params: { path: { id: c.id } } }))
    fill(output, testResult(result, true))
  })
}

/**
 * What the receiver of a test answered.
 * @param {TestResult} r
 * @param {boolean} [full] with the body's excerpt and the message id
 */
function testResult (r, full = false) {
  return h('div', { class: 'test-result', 'data-ok': String(r.ok) },
    h('span', { class: r.ok ? 'ok' : 'failed' }, r.ok ? 'OK' : 'Failed'),
    r.status_code === null ? '' : ` · HTTP ${r.status_code}`,
    ` · ${r.duration_ms} ms · `, time(r.tested_at),
    r.error_code ? h('small', { class: 'hint' }, ' ', h('code', { class: 'error-code' }, r.error_code), ` ${r.error_message ?? ''}`) : null,
    full && r.response_excerpt ? h('pre', { class: 'raw excerpt' }, r.response_excerpt) : null,
    full && r.message_id ? h('small', { class: 'hint' }, ` message ${r.message_id}`) : null)
}

/**
 * @param {Rule} r
 * @param {Map<string, Channel>} channels
 * @param {() => Promise<void>} refresh
 */
function ruleRow (r, channels, refresh) {
  const path = { id: r.id }
  const { actions, button, remove } = rowActions(`Manage ${r.name}`)
  const labels = new Map(KINDS)
  fill(actions,
    button(r.enabled ? 'Disable' : 'Enable', async () => {
      // Based on the version listed: a 412 says that someone changed the rule meanwhile; the
      // list then shows the rule as it is now (and the error stays).
      try {
        await call(api.PUT('/api/config/notification-rules/{id}', { params: { path, header: { 'If-Match': `"v${r.version}"` } }, body: { enabled: !r.enabled } }))
      } catch (err) {
        if (err instanceof ApiError && err.problem.status === 412) await refresh()
        throw err
      }
      notice(`Rule ${r.name} ${r.enabled ? 'disabled' : 'enabled'}.`)
      await refresh()
    }), ' ',
    remove(async () => {
      await call(api.DELETE('/api/config/notification-rules/{id}', { params: { path } }))
      notice(`Rule ${r.name} deleted.`)
      await refresh()
    }))
  const matched = [
    r.min_severity ? `severity ≥ ${r.min_severity}` : 'any severity',
    r.sources.length ? r.sources.join(', ') : 'any source',
    r.account_ids.length ? `accounts ${r.account_ids.join(', ')}` : 'any account'
  ]
  return h('tr', { 'data-id': r.id },
    h('td', null, r.name),
    h('td', { class: 'rule-kinds' }, r.kinds.map(k => labels.get(k) ?? k).join(', ')),
    h('td', { class: 'rule-matched' }, matched.join(' · ')),
    h('td', { class: 'rule-channels' }, r.channel_ids.flatMap((id, i) => [i ? ', ' : '',
      h('a', { href: `#/notifications/${id}` }, channels.get(id)?.name ?? id)])),
    h('td', { class: 'rule-state' }, r.enabled ? 'enabled' : 'disabled'),
    h('td', null, actions))
}

/**
 * `#/notifications/<id>`: the channel's delivery log (newest first) and its test button.
 * @param {import('../app.js').Context} ctx
 * @param {string} id
 */
async function deliveryLog ({ view }, id) {
  const channel = await call(api.GET('/api/config/notification-channels/{id}', { params: { path: { id } } }))
  const { actions, button } = rowActions(`Test ${channel.name}`)
  const output = h('div', { class: 'row-output' }, channel.last_test ? ['Last test: ', testResult(channel.last_test, true)] : 'Never tested.')
  fill(actions, testButton(channel, button, output), output)
  const results = h('section', { class: 'card', 'aria-label': 'Deliveries' })
  fill(view,
    h('p', { class: 'crumbs' }, h('a', { href: '#/notifications' }, '← Notifications')),
    title(`Delivery log of ${channel.name}`),
    h('p', { class: 'subtitle' }, `${channel.type} · `, h('code', null, channel.url), ` · ${channel.enabled ? 'enabled' : 'disabled'}`),
    h('section', { class: 'card', id: 'channel-test' }, h('h2', null, 'Test notification'), actions),
    results,
    h('p', { class: 'hint' }, 'Entries are kept 30 days. Test notifications are not listed.'))

  const load = pagedTable({
    view,
    results,
    id: 'deliveries-table',
    columns: ['When', 'What', 'Type', 'Count', 'Status', 'Attempts', 'Last answer', 'Next attempt'],
    empty: 'Nothing was sent to this channel yet.',
    fetch: page => call(api.GET('/api/config/notification-channels/{id}/deliveries', { params: { path: { id }, query: page } })),
    rows: items => items.map(deliveryRow)
  })
  await load()
}

/** @param {Delivery} d */
function deliveryRow (d) {
  return h('tr', { 'data-id': d.id },
    h('td', null, time(d.created_at)),
    h('td', null, d.summary),
    h('td', null, h('code', null, d.type)),
    h('td', { class: 'num' }, d.notification_count),
    h('td', null, badge('delivery', d.status)),
    h('td', { class: 'num' }, d.attempts),
    h('td', null,
      d.last_status_code === null ? '' : `HTTP ${d.last_status_code} `,
      d.last_error_code ? h('code', null, d.last_error_code) : null,
      d.last_error ? h('small', { class: 'hint' }, ` ${d.last_error}`) : null,
      d.last_attempt_at ? h('small', { class: 'hint' }, ' · ', time(d.last_attempt_at)) : null,
      d.last_attempt_at ? null : '—'),
    h('td', null, time(d.next_attempt_at)))
}
