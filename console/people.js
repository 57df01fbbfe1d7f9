// @ts-check
/**
 * Names of users for display. Admins and managers may read any user (cached per page load);
 * a `user` may read only itself, so others are shown by a short id.
 */
import { api, me } from './api.js'

/** @type {Map<string, Promise<string | null>>} */
const cache = new Map()

/**
 * Loads the names of `ids` (those the caller may read).
 * @param {Array<string | null | undefined>} ids
 */
export async function loadNames (ids) {
  const self = me()
  if (!self || self.role === 'user') return
  await Promise.all([...new Set(ids)].filter(id => id && id !== self.id).map(id => {
    const key = /** @type {string} */ (id)
    if (!cache.has(key)) {
      cache.set(key, api.GET('/api/users/{id}', { params: { path: { id: key } } })
        .then(({ data }) => data?.name ?? null, () => null))
    }
    return cache.get(key)
  }))
}

/** @type {Map<string, string>} */
const names = new Map()

/**
 * The display name of a user id: "you", its name when loaded, or a short id.
 * @param {string | null | undefined} id
 * @param {string} [none]
 */
export function nameOf (id, none = 'unassigned') {
  if (!id) return none
  if (id === me()?.id) return 'you'
  return names.get(id) ?? `user …${id.slice(-6)}`
}

/**
 * Loads then returns a resolver (names are kept for the rest of the page's life).
 * @param {Array<string | null | undefined>} ids
 */
export async function namesFor (ids) {
  await loadNames(ids)
  for (const [id, pending] of cache) {
    const name = await pending
    if (name) names.set(id, name)
  }
  return nameOf
}

/** Remembers names already known (e.g. from a list of users). */
export function remember (/** @type {Array<{ id: string, name: string }>} */ users) {
  for (const u of users) {
    names.set(u.id, u.name)
    cache.set(u.id, Promise.resolve(u.name))
  }
}
