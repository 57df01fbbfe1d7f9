/**
 * The case generators of the contract suite, read from the spec: invalid variants of request
 * bodies and query parameters (each one checked to be invalid by the spec itself), the requests
 * every path must refuse (unknown id, malformed id, unknown query parameter, missing or invalid
 * token, a method the path does not list), and the contract check of a `fetch` response.
 *
 * Shared by test/conformance.test.ts (against an app it builds, with fixtures it makes) and
 * scripts/test-contract.ts (`npm run test:contract`, against any deployment).
 */
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormatsModule from 'ajv-formats'
import { checkResponse, spec, type Operation } from './contract.js'

export type Json = Record<string, any>
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => void
const ajv = new Ajv2020({ strict: false, allErrors: false })
addFormats(ajv)

/** A well-formed id that names nothing (404), and one that is not an id at all (400). */
export const UNKNOWN_ID = '01JDQ2Z5Y3K4M5N6P7Q8R9S0TV'
export const MALFORMED_ID = 'not-a-ulid'
/** A query parameter no operation declares (400: unknown query parameters are refused). */
export const UNKNOWN_QUERY = 'no_such_param=1'
interface Credentials { name: string, headers: Record<string, string> }
/** Credentials a bearer operation must refuse with 401 and `WWW-Authenticate: Bearer …`. */
export const BAD_CREDENTIALS: readonly [Credentials, Credentials] = [
  { name: 'no Authorization', headers: {} },
  { name: 'invalid token', headers: { authorization: 'Bearer a.b.c' } }
]

/** The schema with its `$ref`s to the spec resolved. */
export function deref (schema: unknown): any {
  if (Array.isArray(schema)) return schema.map(deref)
  if (!schema || typeof schema !== 'object') return schema
  const s = schema as Json
  if (s.$ref) return deref(s.$ref.replace(/^#\//, '').split('/').reduce((o: Json, k: string) => o[k.replace(/~1/g, '/')], spec))
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, k === 'properties' ? Object.fromEntries(Object.entries(v as Json).map(([p, x]) => [p, deref(x)])) : deref(v)]))
}

export const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T

/** The request body example of an operation (a copy), `{}` without one. */
export const exampleBody = (op: Operation): Json => clone(op.op.requestBody?.content?.['application/json']?.example ?? {})

/** The operation's first documented 2xx status. */
export const firstSuccess = (op: Operation): number => Number(Object.keys(op.op.responses).find(s => s.startsWith('2')))

/** The operation's path with its parameters filled in (encoded). */
export const fillPath = (op: Operation, params: Record<string, string> = {}): string =>
  op.path.replace(/\{(\w+)\}/g, (_m, k: string) => encodeURIComponent(params[k] ?? ''))

/** The query parameters of an operation, dereferenced. */
export const queryParameters = (op: Operation): Json[] => ((op.op.parameters ?? []) as Json[]).map(deref).filter(p => p.in === 'query')

/** The object schema behind a body schema (first object member of an anyOf). */
const objectSchema = (schema: Json): Json | undefined =>
  schema.type === 'object' ? schema : (schema.anyOf as Json[] | undefined)?.map(objectSchema).find(Boolean)

/** Values of the wrong JSON type for a property schema. */
function wrongType (s: Json): unknown {
  const types = Array.isArray(s.type) ? s.type : [s.type]
  if (types.includes('string') || s.enum || s.$ref) return 12345
  if (types.includes('integer') || types.includes('number')) return 'not-a-number'
  if (types.includes('boolean')) return 'yes'
  if (types.includes('array')) return { not: 'an array' }
  if (types.includes('object')) return ['not', 'an', 'object']
  return Symbol.for('skip')
}

/** Named invalid variants of a valid body (each checked to be invalid against the spec). */
export function mutations (body: Json, schema: Json): Array<{ name: string, body: unknown }> {
  const obj = objectSchema(schema)
  const out: Array<{ name: string, body: unknown }> = []
  if (!obj) return out
  const props = (obj.properties ?? {}) as Json
  for (const req of (obj.required ?? []) as string[]) {
    const b = clone(body)
    delete b[req]
    out.push({ name: `missing required ${req}`, body: b })
  }
  for (const [name, raw] of Object.entries(props)) {
    const s = raw as Json
    const w = wrongType(s)
    if (w !== Symbol.for('skip')) out.push({ name: `wrong type ${name}`, body: { ...clone(body), [name]: w } })
    const plain = s.anyOf ? (s.anyOf as Json[]).find(x => x.type !== 'null') ?? s : s
    if (plain.maxLength !== undefined) out.push({ name: `over-long ${name}`, body: { ...clone(body), [name]: 'x'.repeat(plain.maxLength + 1) } })
    if (plain.minLength !== undefined && plain.minLength > 0) out.push({ name: `too short ${name}`, body: { ...clone(body), [name]: '' } })
    if (plain.maximum !== undefined) out.push({ name: `above maximum ${name}`, body: { ...clone(body), [name]: plain.maximum + 1 } })
    if (plain.minimum !== undefined) out.push({ name: `below minimum ${name}`, body: { ...clone(body), [name]: plain.minimum - 1 } })
    if (plain.enum) out.push({ name: `bad enum ${name}`, body: { ...clone(body), [name]: 'no-such-value' } })
    if (plain.format) out.push({ name: `bad format ${name}`, body: { ...clone(body), [name]: 'not-a-valid-value' } })
    if (plain.pattern) out.push({ name: `bad pattern ${name}`, body: { ...clone(body), [name]: '!!invalid!!' } })
    if (plain.maxItems !== undefined) out.push({ name: `too many items ${name}`, body: { ...clone(body), [name]: Array.from({ length: plain.maxItems + 1 }, () => (plain.items?.enum?.[0] ?? 'x')) } })
  }
  if (obj.additionalProperties === false) out.push({ name: 'unexpected property', body: { ...clone(body), unexpected_property: true } })
  out.push({ name: 'array instead of object', body: [clone(body)] })
  const validate = ajv.compile(schema)
  // Keep only variants the spec itself rejects: the server must then answer 4xx.
  return out.filter(m => !validate(m.body))
}

/**
 * Invalid values for a query parameter (checked against the parameter's schema): a bad enum
 * value, a number over the limit, an over-long or malformed text, … (at most 4).
 */
export function queryMutations (param: Json): string[] {
  const s = deref(param.schema)
  const candidates = ['', 'not-a-valid-value', '-1', '0', '101', 'x'.repeat((s.maxLength ?? 100) + 1), '2026-13-45T99:99:99Z', 'true,false']
  const validate = ajv.compile(s)
  const coerce = (v: string): unknown => (s.type === 'integer' ? (/^-?\d+$/.test(v) ? Number(v) : v) : s.type === 'boolean' ? (v === 'true' ? true : v === 'false' ? false : v) : v)
  return candidates.filter(v => !validate(coerce(v))).slice(0, 4)
}

/**
 * Per path of the spec, a method it does not list (`405` with `Allow` naming `supported`); the
 * path's `{id}` filled with an unknown id.
 */
export function wrongMethods (): Array<{ path: string, url: string, method: string, supported: string[] }> {
  const out: Array<{ path: string, url: string, method: string, supported: string[] }> = []
  for (const [path, methods] of Object.entries(spec.paths as Json)) {
    const supported = ['get', 'put', 'post', 'delete', 'patch'].filter(m => methods[m]).map(m => m.toUpperCase())
    const method = ['PATCH', 'PUT', 'DELETE', 'POST'].find(m => !supported.includes(m))
    if (method) out.push({ path, url: path.replace(/\{id\}/g, UNKNOWN_ID), method, supported })
  }
  return out
}

/** The contract violations of a `fetch` response whose body was read as `text` (see checkResponse). */
export function violationsOf (method: string, path: string, res: Response, text: string): string[] {
  const headers: Record<string, string> = {}
  res.headers.forEach((v, k) => { headers[k] = v })
  return checkResponse(method, path, { statusCode: res.status, headers, body: text })
}
