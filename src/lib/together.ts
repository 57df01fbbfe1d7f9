/**
 * Runs independent round trips at the same time, but answers as if they had run one after
 * the other: the values in order, or the error of the first (in argument order) that failed.
 * So a read that checks an item and a read of its children can share one round trip, and a
 * missing item is still a 404 rather than whatever the other read said about its cursor.
 * Every promise is settled before it answers: none is left rejecting unheard.
 */
export async function together<T extends readonly unknown[]> (...work: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const settled = await Promise.allSettled(work)
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')
  if (failed) throw failed.reason
  return settled.map(s => (s as PromiseFulfilledResult<unknown>).value) as unknown as T
}
