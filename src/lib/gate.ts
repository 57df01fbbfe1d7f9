import { DomainError } from '../domain/errors.js'

/**
 * Admits at most `concurrency` calls at a time, the rest in arrival order (FIFO); a full
 * queue answers 429. Used around password hashing (src/plugins/passwords.ts): each argon2
 * call is ~16 ms of CPU on the libuv pool, and with one per core the event loop keeps a core
 * for everything else during a login flood. Only the hash is gated, not the whole login, so
 * a login's database round trips (real DynamoDB: milliseconds each) never hold a slot.
 */
export interface Gate {
  run: <T>(fn: () => Promise<T>) => Promise<T>
  readonly active: number
  readonly waiting: number
}

export function createGate (concurrency: number, maxWaiting: number): Gate {
  let active = 0
  const queue: Array<() => void> = []
  const release = (): void => {
    const next = queue.shift()
    if (next) next()
    else active--
  }
  return {
    async run<T> (fn: () => Promise<T>): Promise<T> {
      if (active >= concurrency) {
        if (queue.length >= maxWaiting) {
          throw new DomainError('rate_limited', 'The server is busy checking passwords; retry in a moment.', { retryAfterSeconds: 1 })
        }
        // The slot is handed over by `release` (active stays the same).
        await new Promise<void>(resolve => queue.push(resolve))
      } else {
        active++
      }
      try {
        return await fn()
      } finally {
        release()
      }
    },
    get active () { return active },
    get waiting () { return queue.length }
  }
}
