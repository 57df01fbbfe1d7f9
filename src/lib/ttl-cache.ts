/**
 * A small read-through cache of promises with a time limit, for lookups that every request
 * repeats (the caller's user record, the access token's denylist entry). Concurrent misses
 * share one load; failed loads are not kept; the oldest entries go first beyond `max`.
 * An entry counts from when its load *started*, so nothing read before a write can outlive
 * that write by more than `ttlMs` (see `evict` for writes made by this process).
 */
export interface TtlCache<T> {
  get: (key: string, load: () => Promise<T>) => Promise<T>
  /** Forgets the key now: the next `get` loads again. */
  evict: (key: string) => void
  /** Replaces the value (for a write this process made and knows the result of). */
  set: (key: string, value: T) => void
  readonly size: number
}

export function createTtlCache<T> (opts: { ttlMs: number, max: number, now?: () => number }): TtlCache<T> {
  const now = opts.now ?? Date.now
  const entries = new Map<string, { at: number, value: Promise<T> }>()
  const put = (key: string, value: Promise<T>): void => {
    entries.delete(key)
    entries.set(key, { at: now(), value })
    if (entries.size > opts.max) entries.delete(entries.keys().next().value as string)
  }
  return {
    get (key, load) {
      if (opts.ttlMs <= 0) return load()
      const hit = entries.get(key)
      if (hit && now() - hit.at < opts.ttlMs) return hit.value
      const value = load()
      put(key, value)
      value.catch(() => {
        if (entries.get(key)?.value === value) entries.delete(key)
      })
      return value
    },
    evict: (key) => { entries.delete(key) },
    set: (key, value) => { if (opts.ttlMs > 0) put(key, Promise.resolve(value)) },
    get size () { return entries.size }
  }
}
