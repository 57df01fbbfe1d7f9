// @ts-check
/**
 * Audit log (admins): who did what, when, from where. Filters in the address
 * (`#/audit?action=user.role_change`), cursor paging, and a check of the hash chains.
 */
import { api, call } from '../api.js'
import { h, fill, field, select, choices, time, title, showError, busy, notice, fromLocalInput, toLocalInput } from '../dom.js'
import { pagedTable, filtersToHash } from '../paging.js'

/** @typedef {import('../api.js').Schemas} Schemas */
/** @typedef {NonNullable<import('../api.js').paths['/api/audit-log']['get']['parameters']['query']>} AuditQuery */

/** @type {ReadonlyArray<Schemas['AuditAction']>} */
const ACTIONS = ['auth.login', 'auth.login_failed', 'auth.lockout', 'auth.refresh_reuse', 'auth.logout', 'auth.password_change', 'user.create', 'user.update', 'user.role_change', 'user.deactivate', 'user.reactivate', 'user.password_reset', 'aws_account.create', 'aws_account.update', 'aws_account.delete', 'aws_account.rotate_key', 'aws_account.test_connection', 'monitoring_settings.update', 'notification_channel.create', 'notification_channel.update', 'notification_channel.delete', 'notification_channel.rotate_secret', 'notification_channel.test', 'event.delete', 'task.delete', 'access.denied']
/** @type {ReadonlyArray<Schemas['AuditTargetType']>} */
const TARGETS = ['user', 'aws_account', 'monitoring_settings', 'notification_channel', 'event', 'task', 'session', 'operation']
/** @type {ReadonlyArray<Schemas['AuditOutcome']>} */
const OUTCOMES = ['success', 'failure', 'denied', 'unknown']
const FILTERS = /** @type {const} */ (['actor', 'action', 'target_type', 'target_id', 'outcome', 'from', 'to', 'limit'])

/** @param {Schemas['AuditRecord']['actor']} a */
const actorText = (a) => a.type === 'user' ? `${a.label ?? a.id} (${a.role})` : a.type === 'api_key' ? `API key of ${a.label}` : (a.label ?? 'anonymous')

/** @param {Schemas['AuditRecord']['change']} change */
function changeText (change) {
  if (!change) return ''
  /** @param {unknown} v */
  const show = (v) => v === null ? '∅' : typeof v === 'string' ? v : JSON.stringify(v)
  return Object.entries(change).map(([k, { from, to }]) => `${k}: ${show(from)} → ${show(to)}`).join('; ')
}

/** @param {import('../app.js').Context} ctx */
export async function render ({ view, query, go }) {
  /** @type {AuditQuery} */
  const filters = {}
  for (const name of FILTERS) {
    const value = query.get(name)
    if (value) Object.assign(filters, { [name]: name === 'limit' ? Number(value) : value })
  }

  const form = h('form', { class: 'filters', novalidate: true, 'aria-label': 'Filter the audit log' },
    field('Actor', h('input', { name: 'actor', placeholder: 'user id or e-mail', value: filters.actor ?? '', size: 20 })),
    field('Action', select('action', choices(ACTIONS, 'any'), filters.action)),
    field('Target type', select('target_type', choices(TARGETS, 'any'), filters.target_type)),
    field('Target id', h('input', { name: 'target_id', value: filters.target_id ?? '', size: 20 })),
    field('Outcome', select('outcome', choices(OUTCOMES, 'any'), filters.outcome)),
    field('From', h('input', { name: 'from', type: 'datetime-local', value: toLocalInput(filters.from) })),
    field('to', h('input', { name: 'to', type: 'datetime-local', value: toLocalInput(filters.to) })),
    field('Per page', select('limit', [['20', '20'], ['50', '50'], ['100', '100']], String(filters.limit ?? 20))),
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, 'Apply'),
      h('a', { class: 'button secondary', href: '#/audit' }, 'Reset'))
  )
  const instant = (/** @type {unknown} */ local) => typeof local === 'string' && local ? fromLocalInput(local) : undefined
  const text = (/** @type {unknown} */ v) => typeof v === 'string' && v ? v : undefined
  filtersToHash(form, '#/audit', go, v => ({ ...v, actor: text(v.actor), target_id: text(v.target_id), limit: v.limit === '20' ? undefined : v.limit, from: instant(v.from), to: instant(v.to) }))

  // The chains of the last 7 days (UTC): any record changed or removed since it was written is reported.
  const verifyButton = h('button', { type: 'button', class: 'secondary', id: 'verify-audit' }, 'Verify the last 7 days')
  const verdict = h('p', { id: 'verify-result', role: 'status' })
  verifyButton.addEventListener('click', () => {
    const to = new Date().toISOString().slice(0, 10)
    const from = new Date(Date.now() - 6 * 86_400_000).toISOString().slice(0, 10)
    busy(view, async () => {
      const r = await call(api.GET('/api/audit-log/verify', { params: { query: { from, to } } }))
      verdict.dataset.ok = String(r.ok)
      fill(verdict, r.ok
        ? `Intact: ${r.checked} records in ${r.chains} chains from ${r.from} to ${r.to}.`
        : `Broken: record ${r.first_broken?.id} (${r.first_broken?.chain}, position ${r.first_broken?.seq}): ${r.first_broken?.reason.replace(/_/g, ' ')}.`)
      if (r.ok) notice('The audit trail is intact.')
    }).catch(err => showError(err))
  })
  const tools = h('section', { class: 'card', 'aria-label': 'Integrity' },
    h('p', { class: 'hint' }, 'Records cannot be changed or deleted through the API; each one is hash-chained to the one before it.'),
    verifyButton, verdict)

  const results = h('section', { class: 'card', 'aria-label': 'Audit records' })
  fill(view, title('Audit log'), tools, form, results)

  const load = pagedTable({
    view,
    results,
    id: 'audit-table',
    columns: ['When', 'Action', 'Outcome', 'Actor', 'Target', 'Client', 'Change'],
    empty: 'No audit records match these filters.',
    fetch: page => call(api.GET('/api/audit-log', { params: { query: { ...filters, ...page } } })),
    rows: items => items.map(r => h('tr', { 'data-id': r.id },
      h('td', null, time(r.at)),
      h('td', null, r.action),
      h('td', null, h('span', { class: `badge outcome-${r.outcome}` }, r.outcome)),
      h('td', null, actorText(r.actor)),
      h('td', null, r.target ? `${r.target.type} ${r.target.id ?? ''}` : ''),
      h('td', null, r.ip ?? ''),
      h('td', null, changeText(r.change))))
  })
  try {
    await load()
  } catch (err) {
    showError(err, form)
  }
}
