import { DomainError } from '../domain/errors.js'

/**
 * Admits at most `concurrency` calls at a time, the rest in arrival order (FIFO). Used around
 * whole logins: each one is a ~16 ms password hash on the libuv pool plus several database
 * calls on the event loop, and without a gate a flood fills the event loop's queue with
 * their callbacks, so every other request waits behind them. With one login per core in
 * progress, the rest of the API keeps answering promptly. A full queue answers 429.
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
          throw new DomainError('rate_limited', 'The server is busy with other logins; retry in a moment.', { retryAfterSeconds: 1 })
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
