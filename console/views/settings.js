// @ts-check
/** Monitoring settings (admins): what ingestion keeps and how it rates severities. */
import { api, callTagged } from '../api.js'
import { h, fill, field, select, choices, time, title, formValues, submitting, SEVERITIES, SOURCES } from '../dom.js'
import { namesFor } from '../people.js'

/** @typedef {import('../api.js').Schemas} Schemas */
/** @typedef {Schemas['Severity']} Severity */
/** @typedef {Schemas['UpdateMonitoringSettingsRequest']} UpdateSettings */

/** @type {Array<[keyof Schemas['HealthCategorySeverities'], string]>} */
const HEALTH = [
  ['issue', 'Issue'],
  ['accountNotification', 'Account notification'],
  ['scheduledChange', 'Scheduled change'],
  ['investigation', 'Investigation']
]

/** @param {import('../app.js').Context} ctx */
export async function render ({ view, reload }) {
  const { data: settings, etag } = await callTagged(api.GET('/api/config/monitoring'))
  const nameOf = await namesFor([settings.updated_by])

  const form = h('form', { class: 'card', id: 'settings', novalidate: true, 'aria-label': 'Monitoring settings' },
    h('fieldset', null, h('legend', null, 'Sources ingested'),
      SOURCES.map(s => h('label', { class: 'check' },
        h('input', { type: 'checkbox', name: 'enabled_sources', value: s, 'data-multi': '', checked: settings.enabled_sources.includes(s) }), ` ${s}`))),
    field('Minimum severity', select('min_severity', choices(SEVERITIES), settings.min_severity), 'Events below it are dropped at ingestion.'),
    field('CloudWatch alarms without a severity tag', select('cloudwatch_default_severity', choices(SEVERITIES), settings.cloudwatch_default_severity)),
    h('fieldset', null, h('legend', null, 'AWS Health severity per category'),
      HEALTH.map(([key, label]) => field(label, select(`health.${key}`, choices(SEVERITIES), settings.health_category_severities[key])))),
    field('Retention (days)', h('input', { name: 'retention_days', type: 'number', min: 1, max: 3650, required: true, value: settings.retention_days })),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Save settings')),
    h('p', { class: 'hint' }, `Version ${settings.version}, changed `, time(settings.updated_at), settings.updated_by ? ` by ${nameOf(settings.updated_by)}` : ' (defaults)', '.')
  )
  form.addEventListener('submit', event => {
    event.preventDefault()
    const v = formValues(form)
    /** @param {string} name */
    const severity = (name) => /** @type {Severity} */ (v[name])
    /** @type {UpdateSettings} */
    const body = {
      enabled_sources: /** @type {UpdateSettings['enabled_sources']} */ (v.enabled_sources ?? []),
      min_severity: severity('min_severity'),
      cloudwatch_default_severity: severity('cloudwatch_default_severity'),
      health_category_severities: {
        issue: severity('health.issue'),
        accountNotification: severity('health.accountNotification'),
        scheduledChange: severity('health.scheduledChange'),
        investigation: severity('health.investigation')
      },
      retention_days: Number(v.retention_days)
    }
    submitting(form, async () => {
      await callTagged(api.PUT('/api/config/monitoring', { params: { header: etag ? { 'If-Match': etag } : {} }, body }))
      reload('Settings saved. They apply to events ingested from now on.')
    })
  })

  fill(view, title('Monitoring settings'), form)
}
