import type { AttributeValue } from '@aws-sdk/client-dynamodb'

/** DynamoDB attribute values → plain JSON (the subset the tables use). */
export function fromAttribute (v: AttributeValue): unknown {
  if (v.S !== undefined) return v.S
  if (v.N !== undefined) return Number(v.N)
  if (v.BOOL !== undefined) return v.BOOL
  if (v.NULL !== undefined) return null
  if (v.L !== undefined) return v.L.map(fromAttribute)
  if (v.M !== undefined) return fromAttributes(v.M)
  if (v.SS !== undefined) return v.SS
  if (v.NS !== undefined) return v.NS.map(Number)
  return undefined
}

export function fromAttributes (item: Record<string, AttributeValue>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(item)) out[k] = fromAttribute(v)
  return out
}
