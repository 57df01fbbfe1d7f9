// @ts-check
/**
 * The API client (openapi-fetch, typed by the types generated from docs/api-specification.yaml)
 * and the session: access token in memory, refresh token in sessionStorage (this tab only,
 * survives a reload), silent single-flight refresh on 401, logout. Tokens travel only in the
 * Authorization header and in request bodies, never in a URL.
 */
import createClient from './vendor/openapi-fetch.js'

/** @typedef {import('../openapi/generated/api-types.js').paths} paths */
/** @typedef {import('../openapi/generated/api-types.js').components['schemas']} Schemas */
/** @typedef {Schemas['UserProfile']} UserProfile */
/** @typedef {Schemas['TokenResponse']} TokenResponse */
/**
 * A problem of the API (its `code` is the spec's enum), or one the console makes for a failure
 * that is no API answer: `network_error` (unreachable), `unexpected_response` (not a problem
 * body), `client_error` (a bug in the console).
 * @typedef {Omit<Schemas['Problem'], 'code'> & { code: Schemas['Problem']['code'] | 'network_error' | 'unexpected_response' | 'client_error' }} Problem
 */
/** @typedef {{ user: UserProfile | null, problem?: Problem, notice?: string }} SessionChange */
/** @typedef {(change: SessionChange) => void} SessionListener */

const REFRESH_KEY = 'cmc.refresh_token'
/** Routes that take no bearer token. */
const NO_BEARER = new Set(['/api/auth/login', '/api/auth/refresh'])
/** 401 codes a refresh can cure. `invalid_credentials` (a wrong current password) is not one. */
const RENEWABLE = new Set(['token_expired', 'token_invalid', 'token_revoked'])

/** @type {string | null} */
let accessToken = null
/** @type {UserProfile | null} */
let currentUser = null
/** @type {Promise<string | null> | null} */
let renewing = null
/** @type {Set<SessionListener>} */
const listeners = new Set()

/** An error response of the API, as a problem document. */
export class ApiError extends Error {
  /** @param {Problem} problem */
  constructor (problem) {
    super(problem.detail ?? problem.title)
    this.name = 'ApiError'
    this.problem = problem
  }
}

const storage = {
  /** @returns {string | null} */
  get: () => { try { return sessionStorage.getItem(REFRESH_KEY) } catch { return null } },
  /** @param {string} token */
  set: (token) => sessionStorage.setItem(REFRESH_KEY, token),
  clear: () => { try { sessionStorage.removeItem(REFRESH_KEY) } catch { /* storage disabled */ } }
}

/**
 * fetch for the client: adds the bearer token and, when the API answers 401 with an expired or
 * revoked token, renews the tokens once (shared by every request that failed meanwhile) and
 * sends the request again.
 * @param {Request} request
 * @returns {Promise<Response>}
 */
async function sessionFetch (request) {
  const path = new URL(request.url).pathname
  if (NO_BEARER.has(path)) return fetch(request)
  const again = request.clone()
  const used = accessToken
  const response = await fetch(withBearer(request, used))
  // Logout is not replayed: its body names a refresh token that a renewal would rotate.
  if (response.status !== 401 || path === '/api/auth/logout' || !storage.get()) return response
  if (!RENEWABLE.has(await codeOf(response))) return response
  const fresh = await renew(used)
  return fresh ? fetch(withBearer(again, fresh)) : response
}

/**
 * @param {Request} request
 * @param {string | null} token
 */
function withBearer (request, token) {
  if (token) request.headers.set('authorization', `Bearer ${token}`)
  return request
}

/** @param {Response} response */
async function codeOf (response) {
  try {
    const body = await response.clone().json()
    return typeof body?.code === 'string' ? body.code : ''
  } catch {
    return ''
  }
}

/**
 * The client of the contract; every call goes through the session.
 * @type {import('./vendor/openapi-fetch.js').Client<paths, 'application/json'>}
 */
export const api = createClient({ baseUrl: '', fetch: sessionFetch })

/**
 * A new access token after `used` failed. Single flight: while one refresh is running every
 * caller waits for it, and a caller whose token was already replaced gets the new one, so a
 * refresh token is never presented twice (that would revoke the session).
 * @param {string | null} used
 * @returns {Promise<string | null>}
 */
function renew (used) {
  if (accessToken && accessToken !== used) return Promise.resolve(accessToken)
  renewing ??= refresh().finally(() => { renewing = null })
  return renewing
}

/** @returns {Promise<string | null>} */
async function refresh () {
  const token = storage.get()
  if (!token) return null
  let result
  try {
    result = await api.POST('/api/auth/refresh', { body: { refresh_token: token } })
  } catch {
    return null // unreachable: keep the session, the caller shows the failure
  }
  if (result.data) {
    begin(result.data)
    return result.data.access_token
  }
  // 429 or 5xx: keep the refresh token for a later attempt; 400/401: the session is over.
  if (result.response.status === 400 || result.response.status === 401) end({ problem: toProblem(result.error, result.response) })
  return null
}

/** @param {TokenResponse} tokens */
function begin (tokens) {
  accessToken = tokens.access_token
  storage.set(tokens.refresh_token)
  setUser(tokens.user)
}

/**
 * Forgets the session locally. Listeners learn why: a `problem` when the API ended it (refresh
 * refused), a `notice` for the login page.
 * @param {{ problem?: Problem, notice?: string }} [why]
 */
export function end (why = {}) {
  accessToken = null
  currentUser = null
  storage.clear()
  for (const listener of listeners) listener({ user: null, ...why })
}

/** @param {UserProfile} user */
function setUser (user) {
  currentUser = user
  for (const listener of listeners) listener({ user })
}

/** The logged-in user, or null. */
export const me = () => currentUser

/** @param {SessionListener} listener */
export function onSession (listener) {
  listeners.add(listener)
}

/**
 * Logs in. Resolves with the user; rejects with an ApiError (wrong credentials, locked…).
 * @param {string} email
 * @param {string} password
 */
export async function login (email, password) {
  const tokens = await call(api.POST('/api/auth/login', { body: { email, password } }))
  begin(tokens)
  return tokens.user
}

/** After a reload: resumes the session of this tab from its refresh token, if any. */
export async function resume () {
  if (!storage.get()) return null
  await renew(null)
  return currentUser
}

/** Logs out on the server (this access token and this refresh token's session), then locally. */
export async function logout () {
  try {
    const refreshToken = storage.get()
    const used = accessToken
    const body = refreshToken ? { refresh_token: refreshToken } : {}
    const { response } = await api.POST('/api/auth/logout', { body })
    if (response.status === 401 && refreshToken && await renew(used)) {
      // The access token had expired: log out with the renewed pair.
      const renewed = storage.get()
      await api.POST('/api/auth/logout', { body: renewed ? { refresh_token: renewed } : {} })
    }
  } catch {
    // Unreachable API: forget the tokens anyway.
  } finally {
    end({ notice: 'You are logged out.' })
  }
}

/**
 * Changes the caller's password. The API then ends every session of the user, so the local
 * one is forgotten too; the user logs in again with the new password.
 * @param {string} current
 * @param {string} next
 */
export async function changePassword (current, next) {
  await call(api.POST('/api/auth/change-password', { body: { current_password: current, new_password: next } }))
  end({ notice: 'Password changed. Log in with your new password.' })
}

/**
 * Awaits an openapi-fetch call: its data, or an ApiError with the problem document. A network
 * failure becomes a problem too, so views have one error path.
 * @template T
 * @param {Promise<{ data?: T, error?: unknown, response: Response }>} pending
 * @returns {Promise<T>}
 */
export async function call (pending) {
  let result
  try {
    result = await pending
  } catch {
    throw new ApiError({ type: 'about:blank', title: 'Network error', status: 0, code: 'network_error', detail: 'The API could not be reached. Check your connection and try again.' })
  }
  if (!result.response.ok) throw new ApiError(toProblem(result.error, result.response))
  return /** @type {T} */ (result.data)
}

/**
 * Like `call`, with the response's ETag (for If-Match).
 * @template T
 * @param {Promise<{ data?: T, error?: unknown, response: Response }>} pending
 * @returns {Promise<{ data: T, etag: string | undefined }>}
 */
export async function callTagged (pending) {
  /** @type {Response | undefined} */
  let response
  const data = await call(pending.then(result => { response = result.response; return result }))
  return { data, etag: response?.headers.get('etag') ?? undefined }
}

/**
 * The problem document of an error response (or one made up when the body is not a problem).
 * @param {unknown} body
 * @param {Response} response
 * @returns {Problem}
 */
export function toProblem (body, response) {
  const problem = /** @type {Partial<Problem> | undefined} */ (body && typeof body === 'object' ? body : undefined)
  if (problem && typeof problem.code === 'string' && typeof problem.title === 'string') return /** @type {Problem} */ (problem)
  return {
    type: 'about:blank',
    title: response.statusText || `HTTP ${response.status}`,
    status: response.status,
    code: 'unexpected_response',
    detail: typeof body === 'string' && body ? body.slice(0, 300) : `The API answered ${response.status}.`
  }
}
