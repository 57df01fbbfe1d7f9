/**
 * The size of a DynamoDB item as DynamoDB counts it against its 400 KB item limit
 * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html):
 * attribute names and strings in UTF-8 bytes, numbers by their significant digits, 1 byte
 * for a boolean or null, 3 bytes plus 1 per element for a list or map. Computed here because
 * the embedded stand-in measures strings in UTF-16 units and would accept items real
 * DynamoDB refuses.
 */
export const MAX_ITEM_BYTES = 400 * 1024

const utf8 = (s: string): number => Buffer.byteLength(s, 'utf8')

function numberSize (n: number | bigint): number {
  const digits = String(n).replace(/^-/, '').replace(/e.*$/i, '').replace('.', '').replace(/^0+/, '').replace(/0+$/, '')
  return Math.min(21, Math.ceil(Math.max(digits.length, 1) / 2) + 1)
}

/** Size in bytes of one attribute value. */
export function valueSize (value: unknown): number {
  if (value === null || value === undefined || typeof value === 'boolean') return 1
  if (typeof value === 'string') return utf8(value)
  if (typeof value === 'number' || typeof value === 'bigint') return numberSize(value)
  if (value instanceof Uint8Array) return value.byteLength
  if (value instanceof Set) {
    let size = 0
    for (const v of value) size += valueSize(v)
    return size
  }
  if (Array.isArray(value)) {
    let size = 3
    for (const v of value) size += 1 + valueSize(v)
    return size
  }
  if (typeof value === 'object') {
    let size = 3
    for (const [k, v] of Object.entries(value)) if (v !== undefined) size += 1 + utf8(k) + valueSize(v)
    return size
  }
  return 0
}

/** Size in bytes of an item (its attributes' names and values). */
export function itemSize (item: Record<string, unknown>): number {
  let size = 0
  for (const [name, value] of Object.entries(item)) if (value !== undefined) size += utf8(name) + valueSize(value)
  return size
}
