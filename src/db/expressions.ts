/**
 * DynamoDB expressions as typed values, compiled in one place. Repositories say *what* a
 * condition, an update or a key condition is (`where.eq('version', 3)`, `{ set: {...}, add:
 * {...} }`); `compile` writes the expression strings with generated aliases (`#n0`, `:v0`),
 * so no reserved word, odd attribute name (`v#01J…`, `cw#created`) or value can break one,
 * and no repository writes an expression string by hand.
 *
 * An attribute path is one top-level attribute name (no nested map paths: none of our items
 * needs them).
 */

type Comparison = '=' | '<>' | '<' | '<=' | '>' | '>='

/** A condition on an item (ConditionExpression) or on query results (FilterExpression). */
export type Condition =
  | { kind: 'exists' | 'notExists', path: string }
  | { kind: 'compare', path: string, op: Comparison, value: unknown }
  | { kind: 'size', path: string, op: Comparison, value: number }
  | { kind: 'contains', path: string, value: unknown }
  | { kind: 'beginsWith', path: string, value: string }
  | { kind: 'and' | 'or', conditions: Condition[] }
  | { kind: 'not', condition: Condition }

type Maybe = Condition | undefined | false | null

const compare = (op: Comparison) => (path: string, value: unknown): Condition => ({ kind: 'compare', path, op, value })
const present = (conditions: Maybe[]): Condition[] => conditions.filter((c): c is Condition => Boolean(c))

/** Builders of conditions. `and`/`or` skip falsy members, so optional parts read inline. */
export const where = {
  exists: (path: string): Condition => ({ kind: 'exists', path }),
  notExists: (path: string): Condition => ({ kind: 'notExists', path }),
  eq: compare('='),
  ne: compare('<>'),
  lt: compare('<'),
  le: compare('<='),
  gt: compare('>'),
  ge: compare('>='),
  /** `size(path) op value`: the length of a string or list, the number of members of a set. */
  size: (path: string, op: Comparison, value: number): Condition => ({ kind: 'size', path, op, value }),
  contains: (path: string, value: unknown): Condition => ({ kind: 'contains', path, value }),
  beginsWith: (path: string, value: string): Condition => ({ kind: 'beginsWith', path, value }),
  and: (...conditions: Maybe[]): Condition => ({ kind: 'and', conditions: present(conditions) }),
  or: (...conditions: Maybe[]): Condition => ({ kind: 'or', conditions: present(conditions) }),
  not: (condition: Condition): Condition => ({ kind: 'not', condition }),
  /** Absent, or at most `value` (an optional attribute that bounds something). */
  absentOrLe: (path: string, value: unknown): Condition => ({ kind: 'or', conditions: [{ kind: 'notExists', path }, { kind: 'compare', path, op: '<=', value }] })
}

/** An UpdateExpression: attributes to set, to set when absent, to add to, to remove, set members to delete. Undefined values are skipped. */
export interface Update {
  set?: Record<string, unknown>
  setIfAbsent?: Record<string, unknown>
  add?: Record<string, number | Set<string> | undefined>
  remove?: Iterable<string>
  delete?: Record<string, Set<string> | undefined>
}

/** A key condition: the partition key's value, and optionally a condition on the sort key. */
export interface KeyCondition {
  partition: [name: string, value: unknown]
  sort?: { name: string, op: Comparison | 'beginsWith', value: unknown } | { name: string, op: 'between', value: unknown, to: unknown }
}

/** The strings and alias maps of one request. */
export interface Compiled {
  names: Record<string, string>
  values: Record<string, unknown>
  condition?: string
  update?: string
  key?: string
}

/** Collects the aliases of one request: each attribute name once, each value once per use. */
class Aliases {
  readonly names: Record<string, string> = {}
  readonly values: Record<string, unknown> = {}
  private readonly byName = new Map<string, string>()
  private n = 0

  name (path: string): string {
    let alias = this.byName.get(path)
    if (!alias) {
      alias = `#n${this.byName.size}`
      this.byName.set(path, alias)
      this.names[alias] = path
    }
    return alias
  }

  value (value: unknown): string {
    const alias = `:v${this.n++}`
    this.values[alias] = value
    return alias
  }
}

function condition (a: Aliases, c: Condition): string {
  switch (c.kind) {
    case 'exists': return `attribute_exists(${a.name(c.path)})`
    case 'notExists': return `attribute_not_exists(${a.name(c.path)})`
    case 'compare': return `${a.name(c.path)} ${c.op} ${a.value(c.value)}`
    case 'size': return `size(${a.name(c.path)}) ${c.op} ${a.value(c.value)}`
    case 'contains': return `contains(${a.name(c.path)}, ${a.value(c.value)})`
    case 'beginsWith': return `begins_with(${a.name(c.path)}, ${a.value(c.value)})`
    case 'not': return `NOT ${operand(a, c.condition, 'not')}`
    case 'and':
    case 'or': {
      if (c.conditions.length === 0) throw new Error(`an empty ${c.kind.toUpperCase()} condition`)
      if (c.conditions.length === 1) return condition(a, c.conditions[0]!)
      return c.conditions.map(x => operand(a, x, c.kind)).join(` ${c.kind.toUpperCase()} `)
    }
  }
}

/**
 * A condition as an operand of NOT, AND or OR, in parentheses only where precedence needs
 * them (NOT binds tighter than AND, AND tighter than OR). Fewer parentheses are not cosmetic:
 * the stand-in's expression parser backtracks on each nested pair, and redundant ones tripled
 * its CPU per login (docs/performance.md).
 */
function operand (a: Aliases, c: Condition, parent: 'not' | 'and' | 'or'): string {
  const text = condition(a, c)
  const loose = (c.kind === 'or' || c.kind === 'and') && c.conditions.length > 1 &&
    ((c.kind === 'or' && parent !== 'or') || (c.kind === 'and' && parent === 'not'))
  return loose ? `(${text})` : text
}

function update (a: Aliases, u: Update): string {
  const defined = (record: Record<string, unknown> | undefined): Array<[string, unknown]> =>
    Object.entries(record ?? {}).filter(([, v]) => v !== undefined)
  const sets = [
    ...defined(u.set).map(([k, v]) => `${a.name(k)} = ${a.value(v)}`),
    ...defined(u.setIfAbsent).map(([k, v]) => `${a.name(k)} = if_not_exists(${a.name(k)}, ${a.value(v)})`)
  ]
  const adds = defined(u.add).map(([k, v]) => `${a.name(k)} ${a.value(v)}`)
  const removes = [...(u.remove ?? [])].map(k => a.name(k))
  const deletes = defined(u.delete).map(([k, v]) => `${a.name(k)} ${a.value(v)}`)
  const clauses = [
    sets.length ? `SET ${sets.join(', ')}` : '',
    adds.length ? `ADD ${adds.join(', ')}` : '',
    removes.length ? `REMOVE ${removes.join(', ')}` : '',
    deletes.length ? `DELETE ${deletes.join(', ')}` : ''
  ].filter(Boolean)
  if (!clauses.length) throw new Error('an update that changes nothing')
  return clauses.join(' ')
}

function key (a: Aliases, k: KeyCondition): string {
  const partition = `${a.name(k.partition[0])} = ${a.value(k.partition[1])}`
  const s = k.sort
  if (!s) return partition
  const name = a.name(s.name)
  const sort = s.op === 'between'
    ? `${name} BETWEEN ${a.value(s.value)} AND ${a.value(s.to)}`
    : s.op === 'beginsWith' ? `begins_with(${name}, ${a.value(s.value)})` : `${name} ${s.op} ${a.value(s.value)}`
  return `${partition} AND ${sort}`
}

/** Compiles the parts of one request with shared aliases. */
export function compile (parts: { condition?: Condition | undefined, update?: Update | undefined, key?: KeyCondition | undefined }): Compiled {
  const a = new Aliases()
  const out: Compiled = { names: a.names, values: a.values }
  if (parts.key) out.key = key(a, parts.key)
  if (parts.update) out.update = update(a, parts.update)
  if (parts.condition) out.condition = condition(a, parts.condition)
  return out
}
