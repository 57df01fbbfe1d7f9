// @ts-check
/**
 * DOM helpers shared by the views. Text always goes in as text nodes (event titles and
 * descriptions come from AWS and users), never as HTML; listeners are attached with
 * addEventListener, never as inline attributes (the Content-Security-Policy forbids them).
 */
/* global HTMLElement, HTMLInputElement, HTMLSelectElement, HTMLTextAreaElement, RadioNodeList */
import { ApiError } from './api.js'

/** @typedef {import('./api.js').Problem} Problem */
/** @typedef {Node | string | number | null | undefined | false} Child */
/** @typedef {Child | Child[]} Children */

/**
 * Creates an element. Attributes: `on<event>` functions become listeners, booleans and
 * `value` are properties, `null`/`undefined`/`false` are skipped, the rest are attributes.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, unknown> | null} [attrs]
 * @param {...Children} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h (tag, attrs, ...children) {
  const el = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), /** @type {EventListener} */ (value))
    } else if (value === true) {
      el.setAttribute(name, '')
    } else if (name === 'value' && 'value' in el) {
      /** @type {HTMLInputElement} */ (/** @type {unknown} */ (el)).value = String(value)
    } else {
      el.setAttribute(name, String(value))
    }
  }
  append(el, children)
  return el
}

/**
 * @param {Element} parent
 * @param {Children[]} children
 */
function append (parent, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue
    parent.append(typeof child === 'number' ? String(child) : child)
  }
}

/**
 * Replaces the children of `el`.
 * @param {Element} el
 * @param {...Children} children
 */
export function fill (el, ...children) {
  el.replaceChildren()
  append(el, children)
  return el
}

/**
 * A <select> of `options` ([value, label]); `selected` is preselected.
 * @param {string} name
 * @param {Array<[string, string]>} options
 * @param {string | undefined | null} selected
 * @param {Record<string, unknown>} [attrs]
 */
export function select (name, options, selected, attrs = {}) {
  return h('select', { name, ...attrs },
    options.map(([value, label]) => h('option', { value, selected: value === (selected ?? '') }, label)))
}

/**
 * A labelled form field: `<label>text <control></label>`.
 * @param {string} text
 * @param {HTMLElement} control
 * @param {string} [hint]
 */
export function field (text, control, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, text), control, hint ? h('small', { class: 'hint' }, hint) : null)
}

/**
 * The values of a form's named controls (checkboxes: booleans; multiple checkboxes of one
 * name: arrays of values), trimmed. Empty strings are left out.
 * @param {HTMLFormElement} form
 * @returns {Record<string, string | boolean | string[]>}
 */
export function formValues (form) {
  /** @type {Record<string, string | boolean | string[]>} */
  const values = {}
  for (const el of Array.from(form.elements)) {
    if (!(el instanceof HTMLInputElement || el instanceof HTMLSelectElement || el instanceof HTMLTextAreaElement) || !el.name || el.disabled) continue
    if (el instanceof HTMLInputElement && el.type === 'checkbox') {
      if (el.dataset.multi !== undefined) {
        const list = /** @type {string[]} */ (values[el.name] ??= [])
        if (el.checked) list.push(el.value)
      } else {
        values[el.name] = el.checked
      }
      continue
    }
    const value = el.value.trim()
    if (value !== '') values[el.name] = value
  }
  return values
}

// ----------------------------------------------------------------------------------- messages

/** @returns {HTMLElement} */
const errorArea = () => /** @type {HTMLElement} */ (document.getElementById('error'))
/** @returns {HTMLElement} */
const noticeArea = () => /** @type {HTMLElement} */ (document.getElementById('notice'))

/**
 * Clears the error and notice areas and the field errors of `form`.
 * @param {HTMLFormElement} [form]
 */
export function clearMessages (form) {
  fill(errorArea())
  errorArea().hidden = true
  fill(noticeArea())
  noticeArea().hidden = true
  if (form) clearFieldErrors(form)
}

/** @param {string} message */
export function notice (message) {
  fill(noticeArea(), message)
  noticeArea().hidden = false
}

/**
 * Shows an error in the error area: the problem's title, detail and code, and its field errors
 * next to the fields of `form` (those without a field are listed in the area).
 * @param {unknown} err
 * @param {HTMLFormElement} [form]
 */
export function showError (err, form) {
  const problem = problemOf(err)
  if (form) clearFieldErrors(form)
  const unplaced = (problem.errors ?? []).filter(e => !(form && placeFieldError(form, e)))
  fill(errorArea(),
    h('strong', { class: 'problem-title' }, problem.title),
    problem.detail ? h('span', { class: 'problem-detail' }, ` ${problem.detail}`) : null,
    h('code', { class: 'problem-code' }, problem.code),
    unplaced.length ? h('ul', { class: 'problem-errors' }, unplaced.map(e => h('li', null, h('code', null, e.path), ` ${e.message}`))) : null,
    problem.task_id ? h('a', { href: `#/tasks/${problem.task_id}`, class: 'problem-link' }, 'Open the existing task') : null
  )
  errorArea().hidden = false
  errorArea().scrollIntoView?.({ block: 'nearest' })
  if (problem.code === 'password_change_required' && window.location.hash !== '#/change-password') window.location.hash = '#/change-password'
  return problem
}

/**
 * @param {unknown} err
 * @returns {Problem}
 */
export function problemOf (err) {
  if (err instanceof ApiError) return err.problem
  console.warn(err)
  return { type: 'about:blank', title: 'Error', status: 0, code: 'client_error', detail: err instanceof Error ? err.message : String(err) }
}

/**
 * @param {HTMLFormElement} form
 * @param {{ path: string, message: string }} error
 */
function placeFieldError (form, error) {
  const name = error.path.split('/')[2]
  if (!name) return false
  const found = form.elements.namedItem(name)
  // Several checkboxes of one name (a RadioNodeList): the error goes to their group.
  const group = found instanceof RadioNodeList && found[0] instanceof HTMLElement ? found[0].closest('fieldset, .checks') : null
  const control = group ?? found
  if (!(control instanceof HTMLElement)) return false
  control.setAttribute('aria-invalid', 'true')
  const label = group ?? control.closest('label') ?? control
  label.append(h('small', { class: 'field-error', 'data-field': name }, error.message))
  return true
}

/** @param {HTMLFormElement} form */
function clearFieldErrors (form) {
  for (const el of Array.from(form.querySelectorAll('.field-error'))) el.remove()
  for (const el of Array.from(form.querySelectorAll('[aria-invalid]'))) el.removeAttribute('aria-invalid')
}

/**
 * Shows a secret returned once (temporary password, ingestion API key).
 * @param {string} label
 * @param {string} secret
 * @param {string} note
 */
export function secretBox (label, secret, note) {
  const copy = h('button', { type: 'button', class: 'secondary small' }, 'Copy')
  copy.addEventListener('click', () => {
    navigator.clipboard?.writeText(secret).then(() => { copy.textContent = 'Copied' }, () => { copy.textContent = 'Select and copy it' })
  })
  return h('div', { class: 'secret', role: 'status' },
    h('strong', null, label), ' ', h('code', { class: 'secret-value' }, secret), ' ', copy,
    h('p', { class: 'hint' }, note))
}

// ----------------------------------------------------------------------------------- formats

/** @param {string | null | undefined} iso */
export function time (iso) {
  if (!iso) return '—'
  const d = new Date(iso)
  return h('time', { datetime: iso, title: iso }, d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }))
}

/**
 * A coloured label: `kind` is severity, priority, status…
 * @param {string} kind
 * @param {string} value
 */
export const badge = (kind, value) => h('span', { class: `badge ${kind}-${value}` }, value.replace('_', ' '))

/** @param {string} text */
export const title = (text) => { document.title = `${text} · Cloud Monitoring Console`; return h('h1', null, text) }

/**
 * A date-time-local value (local time) from an RFC 3339 string, and back.
 * @param {string | null | undefined} iso
 */
export function toLocalInput (iso) {
  if (!iso) return ''
  const d = new Date(iso)
  const pad = (/** @type {number} */ n) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`
}

/** @param {string} local */
export const fromLocalInput = (local) => new Date(local).toISOString()

/**
 * Marks a view as loading (aria-busy) while `work` runs.
 * @param {HTMLElement} el
 * @param {() => Promise<void>} work
 */
export async function busy (el, work) {
  el.setAttribute('aria-busy', 'true')
  try {
    await work()
  } finally {
    el.setAttribute('aria-busy', 'false')
  }
}

/**
 * Disables a form's submit button while `work` runs; shows errors of the API.
 * @param {HTMLFormElement} form
 * @param {() => Promise<void>} work
 */
export async function submitting (form, work) {
  clearMessages(form)
  const buttons = Array.from(form.querySelectorAll('button'))
  for (const b of buttons) b.disabled = true
  try {
    await work()
  } catch (err) {
    showError(err, form)
  } finally {
    for (const b of buttons) b.disabled = false
  }
}

export const SEVERITIES = /** @type {const} */ (['critical', 'high', 'medium', 'low', 'info'])
export const PRIORITIES = /** @type {const} */ (['critical', 'high', 'medium', 'low'])
export const TASK_STATUSES = /** @type {const} */ (['open', 'in_progress', 'closed'])
export const EVENT_STATUSES = /** @type {const} */ (['open', 'acknowledged', 'resolved', 'suppressed'])
export const SOURCES = /** @type {const} */ (['aws.cloudwatch', 'aws.guardduty', 'aws.securityhub', 'aws.health'])
export const ROLES = /** @type {const} */ (['admin', 'manager', 'user'])

/**
 * Options for a select: an "any" entry then the values.
 * @param {readonly string[]} values
 * @param {string} [any]
 * @returns {Array<[string, string]>}
 */
export const choices = (values, any) => [...(any === undefined ? [] : /** @type {Array<[string, string]>} */ ([['', any]])), ...values.map(v => /** @type {[string, string]} */ ([v, v.replace('_', ' ')]))]
