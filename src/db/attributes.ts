import type { AttributeValue } from '@aws-sdk/client-dynamodb'

/**
 * Plain values → DynamoDB attribute values, for the few paths that use the SDK client without
 * Dynamoose (batched ingestion). Only the types our tables use, written as Dynamoose writes
 * them: strings `S`, numbers `N`, booleans `BOOL`, arrays `L` (also when empty), string sets
 * `SS`. `undefined` attributes are left out; anything else is a programming error.
 */
export type Attributes = Record<string, AttributeValue>

function toAttribute (value: unknown, name: string): AttributeValue {
  switch (typeof value) {
    case 'string': return { S: value }
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`attribute ${name}: ${value} is not a finite number`)
      return { N: String(value) }
    case 'boolean': return { BOOL: value }
  }
  if (Array.isArray(value)) return { L: value.map((v, i) => toAttribute(v, `${name}[${i}]`)) }
  if (value instanceof Set) return { SS: [...value].map(String) }
  throw new TypeError(`attribute ${name}: unsupported value ${JSON.stringify(value)}`)
}

export function toAttributes (item: Record<string, unknown>): Attributes {
  const out: Attributes = {}
  for (const [name, value] of Object.entries(item)) if (value !== undefined) out[name] = toAttribute(value, name)
  return out
}
