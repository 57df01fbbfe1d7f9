/**
 * The two shapes every repository's access patterns take, written once:
 * - `readIndexPage`: a cursor page of one index (or table) query, key condition plus filters,
 *   refilled when filters thin a round out (db/pagination.ts `readPage`);
 * - `writeOrExplain`: a conditional write that, when DynamoDB refuses it, re-reads the item
 *   and returns *why* as a typed refusal, instead of an error used as a signal.
 * Repositories name their access patterns (`listByStatus`, `listByAssignee`, …) on top of these.
 */
import type { CursorCodec, Page, PageBound } from './pagination.js'
import { readPage } from './pagination.js'
import { isConditionFailed } from './errors.js'
import type { Condition, KeyCondition } from './expressions.js'
import type { RawClient } from './raw.js'

export interface IndexQuery<I, T> {
  table: string
  index?: string | undefined
  key: KeyCondition
  filter?: Condition | undefined
  /** Newest first (sort key descending) unless `forward`. */
  forward?: boolean
  /** Item → what the page carries. */
  map: (item: I) => T
  /** What the cursor is bound to (the list and its filters): a cursor of another query is refused. */
  cursorScope: unknown
  limit: number
  cursor?: string | undefined
  bound?: PageBound<T>
  attributes?: string[]
}

/** One page of an index query (see the module comment). */
export function readIndexPage<I, T> (raw: RawClient, cursors: CursorCodec, q: IndexQuery<I, T>): Promise<Page<T>> {
  return readPage(cursors, q.cursorScope, q.limit, q.cursor, async (n, startKey) => {
    const res = await raw.queryPage<I>({
      table: q.table,
      index: q.index,
      key: q.key,
      filter: q.filter,
      forward: q.forward ?? false,
      limit: n,
      startKey,
      attributes: q.attributes
    })
    return { items: res.items.map(q.map), lastKey: res.lastKey }
  }, 5, q.bound)
}

/** A conditional write whose refusal needs no explanation: true when applied, false when its condition failed. */
export const applied = (write: Promise<unknown>): Promise<boolean> =>
  write.then(() => true, (err: unknown) => { if (isConditionFailed(err)) return false; throw err })

/** The outcome of a conditional write: done, or refused with the reason the re-read found. */
export type WriteOutcome<T, R> = { ok: true, value: T } | { ok: false, refusal: R }

/**
 * Runs `write`; when its condition fails, `explain` (which re-reads the item) says why, as a
 * typed refusal the caller decides on (retry, or answer with a domain error). Other errors
 * propagate.
 */
export async function writeOrExplain<T, R> (write: () => Promise<T>, explain: () => Promise<R>): Promise<WriteOutcome<T, R>> {
  try {
    return { ok: true, value: await write() }
  } catch (err) {
    if (!isConditionFailed(err)) throw err
    return { ok: false, refusal: await explain() }
  }
}
