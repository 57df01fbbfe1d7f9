import { encodeTime, monotonicFactory } from 'ulid'

/**
 * ULIDs: opaque, URL-safe, sortable by creation time. Monotonic within the process, so
 * items created in the same millisecond still sort in creation order ("newest first").
 */
export const newId: () => string = monotonicFactory()

const MAX_TIME = 281474976710655

/** The smallest ULID of a millisecond: `id >= idFloor(t)` means "created at or after t". */
export const idFloor = (ms: number): string => `${encodeTime(Math.max(0, Math.min(ms, MAX_TIME)), 10)}0000000000000000`
