import dynamoose from 'dynamoose'
import type { ModelType } from 'dynamoose/dist/General.js'
import type { Item } from 'dynamoose/dist/Item.js'

/**
 * One definition per entity. A model file lists its table's attributes once, with their
 * keys and indexes; from that list come
 * - the Dynamoose schema and model, hence the table: `initializeTables` (db/tables.ts) creates
 *   it, and `npm run generate:cfn` and the CDK app derive the deployed table from the model's
 *   CreateTable request (scripts/lib/table-definitions.ts);
 * - the item's TypeScript type (`ItemOf`): what the repositories write and read through the
 *   toolkit (db/raw.ts), required or optional as declared here.
 *
 *   export const Users = entity('users', {
 *     id: attr.string().hashKey(),
 *     role: attr.string<Role>().required().gsi('role-id-index', 'id'),
 *     last_login_at: attr.string()
 *   })
 *   export type UserItem = ItemOf<typeof Users>  // { id: string, role: Role, last_login_at?: string }
 *
 * An attribute is optional unless `required()` or a key. The type argument of `string`/`number`
 * narrows the TypeScript type only (a union of literals is stored as a plain String).
 */

/** What Dynamoose is given for one attribute: a type constructor, or its settings object. */
type Definition = StringConstructor | NumberConstructor | BooleanConstructor | Record<string, unknown>
type TypeConstructor = StringConstructor | NumberConstructor | BooleanConstructor | SetConstructor | ArrayConstructor | ObjectConstructor

/** A global secondary index on the attribute (its partition key), projecting every attribute unless `project: false` (keys only). */
interface GlobalIndex { name: string, type: 'global', rangeKey?: string, project?: false }

/**
 * One attribute: how Dynamoose stores it and, as types only, its TypeScript value `T` and whether
 * every item has it (`R`). Immutable: each method returns a new attribute.
 */
export class Attribute<T, R extends boolean = false> {
  /** Phantom: the TypeScript type of the value (never set at run time). */
  declare readonly value: T
  /** Phantom: every item has the attribute. */
  declare readonly present: R

  constructor (
    private readonly type: TypeConstructor,
    private readonly settings: { schema?: unknown, hashKey?: true, rangeKey?: true, required?: true, index?: GlobalIndex[] } = {}
  ) {}

  /** Every item has it (Dynamoose checks it on its own writes; the type makes it non-optional). */
  required (): Attribute<T, true> { return new Attribute(this.type, { ...this.settings, required: true }) }
  /** The table's partition key (so present on every item). */
  hashKey (): Attribute<T, true> { return new Attribute(this.type, { ...this.settings, hashKey: true }) }
  /** The table's sort key (so present on every item). */
  rangeKey (): Attribute<T, true> { return new Attribute(this.type, { ...this.settings, rangeKey: true }) }
  /**
   * A global index named `name` with this attribute as partition key and `rangeKey` as sort key.
   * `keysOnly`: the index projects only the keys (a sparse index of big items: what it finds is
   * read from the table).
   */
  gsi (name: string, rangeKey?: string, opts: { keysOnly?: true } = {}): Attribute<T, R> {
    const index: GlobalIndex = { name, type: 'global', ...(rangeKey ? { rangeKey } : {}), ...(opts.keysOnly ? { project: false as const } : {}) }
    return new Attribute(this.type, { ...this.settings, index: [...(this.settings.index ?? []), index] })
  }

  /** Dynamoose's form: the bare type when nothing else is said, else `{ type, schema?, hashKey?, … }`. */
  get definition (): Definition {
    const { index, ...rest } = this.settings
    if (!index && !Object.keys(rest).length && (this.type === String || this.type === Number || this.type === Boolean)) return this.type
    return { type: this.type, ...rest, ...(index ? { index: index.length === 1 ? index[0] : index } : {}) }
  }
}

/** The attribute kinds the tables use. */
export const attr = {
  string: <T extends string = string>() => new Attribute<T>(String),
  number: <T extends number = number>() => new Attribute<T>(Number),
  boolean: () => new Attribute<boolean>(Boolean),
  /** A DynamoDB string set (SS). */
  stringSet: () => new Attribute<Set<string>>(Set, { schema: [String] }),
  /** A list (L) of `of`. */
  list: <T>(of: Attribute<T, boolean>) => new Attribute<T[]>(Array, { schema: [of.definition] }),
  /** A map (M) of named attributes. */
  map: <A extends Attributes>(attributes: A) => new Attribute<ItemOf<A>>(Object, { schema: schemaOf(attributes) })
}

export type Attributes = Record<string, Attribute<unknown, boolean>>

type Present<A extends Attributes> = { [K in keyof A as A[K] extends Attribute<unknown, true> ? K : never]: A[K]['value'] }
type Optional<A extends Attributes> = { [K in keyof A as A[K] extends Attribute<unknown, true> ? never : K]?: A[K]['value'] }
type Flat<T> = { [K in keyof T]: T[K] }

/** The item type of an attribute list, or of an entity (`ItemOf<typeof Users>`). */
export type ItemOf<A> = A extends Entity<infer E> ? ItemOf<E> : A extends Attributes ? Flat<Present<A> & Optional<A>> : never

const schemaOf = (attributes: Attributes): Record<string, Definition> =>
  Object.fromEntries(Object.entries(attributes).map(([name, a]) => [name, a.definition]))

/**
 * How every model is declared: Dynamoose creates, waits for and initializes nothing by itself;
 * src/db/tables.ts does that once at start-up (in parallel) and only where allowed.
 */
const MODEL_OPTIONS = { create: false, waitForActive: false, initialize: false, throughput: 'ON_DEMAND' as const }

export interface Entity<A extends Attributes> {
  /** The table's name without the prefix. */
  table: string
  attributes: A
  /** The Dynamoose model of the table `<prefix><table>` (define it once per prefix: src/data.ts). */
  model: (prefix: string) => ModelType<Item & ItemOf<A>>
}

/**
 * The table `table` with these attributes. Their order matters: the CreateTable request (and so
 * the generated CloudFormation and CDK tables) lists the key and index attributes and the
 * indexes in this order. `saveUnknown`: items may carry attributes not listed (counters named
 * at run time). `stream`: the table has a DynamoDB stream with these images (the tables
 * derived for CloudFormation and the CDK get it; the stand-in ignores it).
 */
export function entity<const A extends Attributes> (table: string, attributes: A, opts: { saveUnknown?: true, stream?: { enabled: true, type: 'OLD_IMAGE' | 'NEW_IMAGE' | 'NEW_AND_OLD_IMAGES' | 'KEYS_ONLY' } } = {}): Entity<A> {
  const schema = new dynamoose.Schema(schemaOf(attributes) as never, opts.saveUnknown ? { saveUnknown: true } : {})
  const options = opts.stream ? { ...MODEL_OPTIONS, streamOptions: opts.stream } : MODEL_OPTIONS
  return {
    table,
    attributes,
    model: (prefix: string) => dynamoose.model<Item & ItemOf<A>>(`${prefix}${table}`, schema, options)
  }
}
