import { randomFillSync } from 'node:crypto'
import { encodeTime, monotonicFactory, ulid } from 'ulid'

/**
 * Random bytes for ULIDs from a pool refilled 4 KiB at a time: ulid's default source makes
 * one `getRandomValues` call per character (16 per millisecond that sees an id, ~3 % of
 * the CPU of a busy server). A byte ÷ 256 picks one of ulid's 32 characters without bias.
 */
const pool = Buffer.alloc(4096)
let next = pool.length
const randomByteFraction = (): number => {
  if (next === pool.length) {
    randomFillSync(pool)
    next = 0
  }
  return pool[next++]! / 256
}

/**
 * ULIDs: opaque, URL-safe, sortable by creation time. Monotonic within the process, so
 * items created in the same millisecond still sort in creation order ("newest first").
 */
export const newId: () => string = monotonicFactory(randomByteFraction)

/** A ULID with 80 fresh random bits, for ids that must not be guessable from others (refresh families). */
export const randomId = (): string => ulid(undefined, randomByteFraction)

const MAX_TIME = 281474976710655

/** The smallest ULID of a millisecond: `id >= idFloor(t)` means "created at or after t". */
export const idFloor = (ms: number): string => `${encodeTime(Math.max(0, Math.min(ms, MAX_TIME)), 10)}0000000000000000`

/** The largest ULID of a millisecond: `id <= idCeil(t)` means "created at or before t". */
export const idCeil = (ms: number): string => `${encodeTime(Math.max(0, Math.min(ms, MAX_TIME)), 10)}ZZZZZZZZZZZZZZZZ`
