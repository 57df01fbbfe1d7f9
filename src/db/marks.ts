import { markShard } from '../domain/notification-delivery.js'
import { applied } from './access.js'
import { attr } from './entity.js'
import { where, type Update } from './expressions.js'
import type { RawClient } from './raw.js'

/**
 * Notification marks on the items that change (events, tasks): the transactional outbox
 * without transactions. The write that makes a change adds its mark to the changed item
 * itself (`notify`, a string set; `notify_shard`, the partition key of a sparse, keys-only
 * index `notify-index`), so the change and the duty to notify it are stored by one write or
 * not at all. The notification worker reads the index, queues the notifications, then
 * removes exactly the marks it queued (DELETE of set members: a mark added meanwhile stays).
 */

export const NOTIFY_INDEX = 'notify-index'

/** The attributes of an entity whose items carry marks (events, tasks): spread them last into its definition. */
export const MARK_ATTRIBUTES = {
  /** Changes still to notify: written with the change, removed once queued. */
  notify: attr.stringSet(),
  /** While `notify` is not empty: the shard of the sparse index the notification worker reads. */
  notify_shard: attr.string().gsi(NOTIFY_INDEX, undefined, { keysOnly: true })
}

/** The attributes of a new item that carries `marks` (none when there are none). */
export const markAttributes = (marks: readonly string[] | undefined): { notify?: Set<string>, notify_shard?: string } =>
  marks?.length ? { notify: new Set(marks), notify_shard: markShard() } : {}

/** What an UpdateItem adds to carry `marks` (merge into the update; nothing when there are none). */
export function withMarks (update: Update, marks: readonly string[] | undefined): Update {
  if (!marks?.length) return update
  return {
    ...update,
    set: { ...update.set, notify_shard: markShard() },
    add: { ...update.add, notify: new Set(marks) }
  }
}

/** The keys of marked items in one shard of the index (eventually consistent: the worker reads each item again). */
export async function markedKeys<K extends Record<string, unknown>> (raw: RawClient, table: string, shard: string, limit: number): Promise<K[]> {
  const page = await raw.queryPage<K & { notify_shard?: string }>({ table, index: NOTIFY_INDEX, key: { partition: ['notify_shard', shard] }, limit })
  return page.items.map(({ notify_shard: _s, ...key }) => key as unknown as K)
}

/**
 * Removes the marks the worker queued; when none is left, the item leaves the index (a second
 * write, conditional on no mark having arrived in between: a new mark keeps it in the index).
 */
export async function clearMarks (raw: RawClient, table: string, key: Record<string, unknown>, marks: readonly string[]): Promise<void> {
  const left = marks.length
    ? await raw.updateItem<{ notify?: Set<string> }>(table, key, { delete: { notify: new Set(marks) } }, { condition: where.exists('notify_shard'), returnValues: 'UPDATED_NEW' }).catch(err => {
      if ((err as { name?: string }).name === 'ConditionalCheckFailedException') return { notify: undefined }
      throw err
    })
    : undefined
  if (left?.notify?.size) return
  await applied(raw.updateItem(table, key, { remove: ['notify_shard'] }, { condition: where.and(where.exists('notify_shard'), where.notExists('notify')) }))
}
