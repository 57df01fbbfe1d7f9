/**
 * The contract pipeline: the spec is valid OpenAPI 3.1 and follows the house rules, its
 * examples validate, the generated TypeBox schemas are equivalent to it, and the app serves
 * exactly the operations of the spec (minus an explicit pending list).
 */
import t from 'tap'
import { Validator } from '@seriousme/openapi-schema-validator'
import { spec, operations, validateAt, pointer, errorCodesOf } from './contract.js'
import { STATUS_BY_CODE } from '../src/plugins/errors.js'
import { ErrorCodes } from '../src/domain/errors.js'
import * as S from '../openapi/generated/schemas.js'
import { routes } from '../openapi/generated/routes.js'
import { generate, specPath } from '../scripts/generate-openapi.js'
import { build, assertProblem } from './helper.js'

type Json = Record<string, any>

/** Operations that later issues implement. Must be empty when the API is complete. */
export const PENDING = new Set<string>([])

const ANNOTATIONS = ['description', 'title', 'examples', 'readOnly', 'writeOnly', 'deprecated', '$comment']

function deref (schema: Json): Json {
  if (Array.isArray(schema)) return schema.map(deref) as unknown as Json
  if (!schema || typeof schema !== 'object') return schema
  if (schema.$ref) {
    const target = schema.$ref.replace(/^#\//, '').split('/').reduce((o: Json, k: string) => o[k], spec)
    return deref(target)
  }
  return Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, k === 'properties' ? Object.fromEntries(Object.entries(v as Json).map(([p, s]) => [p, deref(s as Json)])) : deref(v as Json)]))
}

/**
 * A canonical form in which two schemas that validate the same way compare equal:
 * annotations dropped, `[T, 'null']` written as anyOf, string enums without `type`,
 * `required` sorted, empty `properties`/`required` dropped.
 */
function canonical (schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(canonical)
  if (!schema || typeof schema !== 'object') return schema
  const s: Json = { ...(schema as Json) }
  for (const k of ANNOTATIONS) delete s[k]
  // A discriminated oneOf has members that exclude each other (the generator checks it): a union.
  if (s.oneOf && s.discriminator) {
    s.anyOf = s.oneOf
    delete s.oneOf
    delete s.discriminator
  }
  if (Array.isArray(s.type)) {
    const { default: def, type, ...rest } = s
    const base = (type as string[]).find(x => x !== 'null')
    return canonical({ anyOf: [{ ...rest, type: base }, { type: 'null' }], ...(def !== undefined ? { default: def } : {}) })
  }
  if (s.enum && s.type === 'string') delete s.type
  if (Array.isArray(s.required)) s.required = [...s.required].sort()
  if (s.required?.length === 0) delete s.required
  if (s.properties && Object.keys(s.properties).length === 0) delete s.properties
  const out: Json = {}
  for (const k of Object.keys(s).sort()) {
    out[k] = k === 'properties' || k === 'patternProperties'
      ? Object.fromEntries(Object.entries(s[k] as Json).map(([p, v]) => [p, canonical(v)]))
      : canonical(s[k])
  }
  return out
}

const plain = (x: unknown): unknown => JSON.parse(JSON.stringify(x))

t.test('the spec is valid OpenAPI 3.1 and follows the house rules', async t => {
  const result = await new Validator().validate(specPath)
  t.ok(result.valid, `valid OpenAPI 3.1: ${JSON.stringify(result.errors ?? '').slice(0, 2000)}`)
  t.equal(spec.openapi, '3.1.0')

  const problems: string[] = []
  const walk = (schema: unknown, where: string, freeForm = false): void => {
    if (Array.isArray(schema)) return schema.forEach((s, i) => walk(s, `${where}[${i}]`))
    if (!schema || typeof schema !== 'object') return
    const s = schema as Json
    if ('example' in s && !('schema' in s)) problems.push(`${where}: schema keyword "example" (use examples)`)
    if ('nullable' in s) problems.push(`${where}: "nullable" is not OpenAPI 3.1`)
    const types = Array.isArray(s.type) ? s.type : [s.type]
    if (types.includes('string') && !s.enum && s.const === undefined && s.maxLength === undefined) problems.push(`${where}: string without maxLength`)
    if (types.includes('array') && s.maxItems === undefined) problems.push(`${where}: array without maxItems`)
    if ((types.includes('integer') || types.includes('number')) && (s.minimum === undefined || s.maximum === undefined)) problems.push(`${where}: number without bounds`)
    const isFree = s.additionalProperties === true
    if (types.includes('object') && s.additionalProperties === undefined) problems.push(`${where}: object without additionalProperties`)
    for (const [k, v] of Object.entries(s)) {
      if (k === 'properties') for (const [p, ps] of Object.entries(v as Json)) walk(ps, `${where}.${p}`, isFree || freeForm)
      else if (k !== 'examples' && k !== 'example' && k !== 'default') walk(v, `${where}.${k}`, isFree || freeForm)
    }
  }
  for (const [name, schema] of Object.entries(spec.components.schemas as Json)) walk(schema, `schemas.${name}`)
  for (const o of operations) walk(o.op.parameters ?? [], `${o.operationId}.parameters`)
  t.same(problems, [], 'limits on every string, array and number; additionalProperties on every object')

  const ids = operations.map(o => o.operationId)
  t.equal(new Set(ids).size, ids.length, 'operationIds are unique')
  for (const o of operations) {
    const policies = [o.op['x-roles'] !== undefined, o.op['x-public'] === true, o.op['x-api-key'] === true].filter(Boolean).length
    t.equal(policies, 1, `${o.operationId} declares exactly one access policy`)
    t.ok(o.op.summary, `${o.operationId} has a summary`)
    t.ok(o.op.responses['500'] && o.op.responses['429'], `${o.operationId} documents 429 and 500`)
    if (o.op['x-roles']) t.ok(o.op.responses['401'], `${o.operationId} documents 401`)
  }
})

t.test('every example in the spec validates against its schema', async t => {
  let count = 0
  const check = (content: Json | undefined, base: string) => {
    for (const [type, media] of Object.entries(content ?? {}) as Array<[string, Json]>) {
      const ptr = `${base}/${pointer('content', type, 'schema')}`
      if (media.example !== undefined) {
        count++
        t.same(validateAt(ptr, media.example), [], `${base} ${type} example`)
      }
      for (const [name, ex] of Object.entries((media.examples ?? {}) as Json)) {
        count++
        t.same(validateAt(ptr, (ex as Json).value), [], `${base} ${type} example ${name}`)
      }
    }
  }
  for (const o of operations) {
    const base = pointer('paths', o.path, o.method.toLowerCase())
    if (o.op.requestBody?.content) check(o.op.requestBody.content, `${base}/requestBody`)
    for (const [status, r] of Object.entries(o.op.responses as Json)) if (!r.$ref) check(r.content, `${base}/${pointer('responses', status)}`)
  }
  for (const [name, r] of Object.entries((spec.components.responses ?? {}) as Json)) check(r.content, pointer('components', 'responses', name))
  for (const [name, schema] of Object.entries(spec.components.schemas as Json)) {
    for (const [i, ex] of ((schema.examples ?? []) as unknown[]).entries()) {
      count++
      t.same(validateAt(pointer('components', 'schemas', name), ex), [], `schema ${name} example ${i}`)
    }
  }
  t.ok(count > 40, `${count} examples checked`)
  // JSON, or the one media type of a streamed response (NDJSON: an example line).
  t.ok(operations.every(o => Object.entries(o.op.responses as Json).some(([s, r]) => s.startsWith('2') && (!r.content || Object.values(r.content as Json).every((m: Json) => m.example !== undefined)))), 'every success response with a body has an example')
})

const pascal = (id: string): string => id.charAt(0).toUpperCase() + id.slice(1)

t.test('generator-friendly: unions are discriminated, names do not collide, no read/write splits, security per operation', async t => {
  const schemas = spec.components.schemas as Json
  const problems: string[] = []
  // Every union of two or more object schemas is a oneOf with a discriminator whose mapping
  // names each member (generate-openapi checks that the members exclude each other).
  const isObject = (s: Json): boolean => (s.$ref ? isObject(schemas[s.$ref.split('/').pop()]) : s.type === 'object')
  const walk = (s: unknown, where: string): void => {
    if (Array.isArray(s)) return s.forEach((x, i) => walk(x, `${where}[${i}]`))
    if (!s || typeof s !== 'object') return
    const o = s as Json
    for (const kind of ['oneOf', 'anyOf'] as const) {
      const objects = ((o[kind] ?? []) as Json[]).filter(isObject)
      if (objects.length < 2) continue
      if (kind === 'anyOf') problems.push(`${where}: anyOf of ${objects.length} objects (use a discriminated oneOf)`)
      const mapping = Object.values((o.discriminator?.mapping ?? {}) as Json)
      for (const m of o[kind] as Json[]) if (!mapping.includes(m.$ref)) problems.push(`${where}: member ${m.$ref} is not in the discriminator mapping`)
    }
    if ('readOnly' in o || 'writeOnly' in o) problems.push(`${where}: readOnly/writeOnly split generated types (LoginRequestWritable); a schema used only in requests needs neither`)
    for (const [k, v] of Object.entries(o)) if (k !== 'examples' && k !== 'example') walk(v, `${where}.${k}`)
  }
  walk(spec.components, 'components')
  // Responses only: a client narrows what it receives; what it sends it builds itself. The one
  // request union (the ingest body: an envelope or a batch, told apart by `events`) has no
  // shared property a discriminator could name.
  for (const o of operations) walk(o.op.responses, `${o.operationId}.responses`)
  t.same(problems, [], 'discriminated unions, no readOnly/writeOnly')
  t.ok(Object.values(schemas).some((s: Json) => s.discriminator), 'the check is not vacuous: IngestResult is discriminated')

  // Names generators derive from an operationId (hey-api: <Op>Data, <Op>Response(s), <Op>Error(s);
  // orval: <Op>Body, <Op>Params) must not be schema names too, or one of them gets a suffix
  // (CreateUserResponse2).
  const derived = operations.flatMap(o => ['Data', 'Response', 'Responses', 'Error', 'Errors', 'Body', 'Params'].map(suffix => pascal(o.operationId) + suffix))
  t.same(derived.filter(n => n in schemas), [], 'no schema name collides with a generated operation type name')

  // Security is stated on every operation (orval and others ignore the root default).
  t.same(operations.filter(o => !Array.isArray(o.op.security)).map(o => o.operationId), [], 'every operation declares its security')
  for (const o of operations) {
    const schemesOf = (o.op.security as Json[]).flatMap(r => Object.keys(r))
    const expected = o.op['x-public'] ? [] : o.op['x-api-key'] ? ['ingestApiKey'] : ['bearerAuth']
    t.same(schemesOf, expected, `${o.operationId} security matches its access policy`)
  }

  // "At least one field" (minProperties) is kept by no generator's types: it is stated in the
  // description, which every generator copies into its doc comment.
  for (const [name, s] of Object.entries(schemas)) {
    if (s.minProperties) t.match(s.description, /at least one/, `${name} states its minProperties rule in the description`)
  }
})

t.test('generated TypeBox schemas are equivalent to the spec (fidelity)', async t => {
  const generated = S as unknown as Record<string, unknown>
  const names = Object.keys(spec.components.schemas)
  for (const name of names) {
    t.same(canonical(plain(generated[name])), canonical(deref(spec.components.schemas[name])), `component ${name}`)
  }
  t.equal(Object.keys(generated).length, names.length, 'one generated schema per component, no extras')

  for (const o of operations) {
    const route = (routes as Record<string, any>)[o.operationId]
    t.ok(route, `route entry for ${o.operationId}`)
    if (!route) continue
    t.equal(route.method, o.method)
    t.equal(route.url, o.path.replace(/\{(\w+)\}/g, ':$1'))
    t.same(route.config.policy, o.op['x-roles'] ? { kind: 'roles', roles: o.op['x-roles'] } : o.op['x-public'] ? { kind: 'public' } : { kind: 'apiKey' }, `${o.operationId} policy`)
    const params = (o.op.parameters ?? []).map((p: Json) => deref(p))
    for (const [where, key] of [['path', 'params'], ['query', 'querystring']] as const) {
      const list = params.filter((p: Json) => p.in === where)
      if (!list.length && where === 'path') { t.notOk(route.schema[key], `${o.operationId} has no ${key}`); continue }
      const expected = {
        type: 'object',
        additionalProperties: false,
        properties: Object.fromEntries(list.map((p: Json) => [p.name, p.schema])),
        required: list.filter((p: Json) => p.required || where === 'path').map((p: Json) => p.name)
      }
      t.same(canonical(plain(route.schema[key])), canonical(expected), `${o.operationId} ${key}`)
    }
    const headers = params.filter((p: Json) => p.in === 'header')
    for (const h of headers) {
      t.same(canonical(plain(route.schema.headers.properties[h.name.toLowerCase()])), canonical(h.schema), `${o.operationId} header ${h.name}`)
    }
    const body = o.op.requestBody ? deref(o.op.requestBody) : undefined
    if (body) {
      const schema = body.content['application/json'].schema
      const expected = body.required ? schema : { anyOf: [schema, { type: 'null' }] }
      t.same(canonical(plain(route.schema.body)), canonical(expected), `${o.operationId} body`)
    } else {
      t.notOk(route.schema.body, `${o.operationId} takes no body`)
    }
    for (const [status, r] of Object.entries(o.op.responses as Json)) {
      const res = deref(r)
      const media = res.content && (res.content['application/json'] ?? res.content['application/problem+json'])
      if (media) t.same(canonical(plain(route.schema.response[status])), canonical(media.schema), `${o.operationId} response ${status}`)
      else t.notOk(route.schema.response?.[status], `${o.operationId} response ${status} has no body`)
    }
  }
})

t.test('the committed generated code is up to date', async t => {
  const { readFile } = await import('node:fs/promises')
  const files = await generate()
  for (const [name, text] of Object.entries(files)) {
    t.equal(await readFile(new URL(`../openapi/generated/${name}`, import.meta.url), 'utf8'), text, `${name} is fresh`)
  }
})

t.test('the app serves exactly the operations of the spec (minus the pending list)', async t => {
  const api = await build(t)
  const catalog = api.app.routeCatalog()
  const served = new Set(catalog.map(r => r.operationId))
  for (const o of operations) {
    if (PENDING.has(o.operationId)) {
      t.notOk(served.has(o.operationId), `${o.operationId} is pending and not served`)
    } else {
      t.ok(served.has(o.operationId), `${o.operationId} is served`)
      t.ok(api.app.hasRoute({ method: o.method as 'GET', url: o.path.replace(/\{(\w+)\}/g, ':$1') }), `${o.method} ${o.path} is routed`)
    }
  }
  for (const id of PENDING) t.ok(operations.some(o => o.operationId === id), `pending ${id} is an operation of the spec`)
  const specIds = new Set(operations.map(o => o.operationId))
  for (const r of catalog) {
    if (!r.url.startsWith('/api')) continue
    if (r.method === 'HEAD' || r.operationId === 'methodNotAllowed') continue
    t.ok(specIds.has(r.operationId ?? ''), `${r.method} ${r.url} (${r.operationId}) is in the spec`)
  }
  t.ok(catalog.every(r => r.operationId), 'every route declares an operation and a policy')
})

// ------------------------------------------------------------------------------------------
// Issue 16, point 5: every rule the service enforces on input is stated in the spec. Each rule
// below is stated in the description of the operation or parameter named in its test.

t.test('stated rules: a leap second is a time (read as :59.999) in query filters and bodies', async t => {
  const api = await build(t)
  const user = await api.userWithRole('user')
  const leap = encodeURIComponent('2016-12-31T23:59:60Z')
  for (const url of [`/api/events?from=${leap}`, `/api/events?to=${leap}`, `/api/tasks?created_from=${leap}`, `/api/tasks?created_to=${leap}`, `/api/tasks?due_from=${leap}`, `/api/tasks?due_to=${leap}`]) {
    t.equal((await api.request({ method: 'GET', url, headers: api.auth(user.token) })).statusCode, 200, url)
  }
  const created = await api.request({ method: 'POST', url: '/api/tasks', headers: api.auth(user.token), payload: { title: 'leap', due_at: '2016-12-31T23:59:60Z' } })
  t.equal(created.statusCode, 201)
  t.equal(created.json().due_at, '2016-12-31T23:59:59.999Z', 'stored as :59.999')
  const ranged = await api.request({ method: 'GET', url: `/api/tasks?due_from=${encodeURIComponent('2016-12-31T23:59:59.999Z')}&due_to=${encodeURIComponent('2017-01-01T00:00:00Z')}`, headers: api.auth(user.token) })
  t.equal(ranged.json().items.length, 1, 'and found by a range around it')
  // A time outside years 0000-9999 once in UTC is refused, as stated.
  assertProblem(t, await api.request({ method: 'GET', url: `/api/events?to=${encodeURIComponent('9999-12-31T23:59:59-23:59')}`, headers: api.auth(user.token) }), 400, 'validation_failed')
})

t.test('stated rules: a reversed range is a 400 on GET /api/tasks and GET /api/events', async t => {
  const api = await build(t)
  const user = await api.userWithRole('user')
  const early = encodeURIComponent('2026-01-01T00:00:00Z')
  const late = encodeURIComponent('2026-02-01T00:00:00Z')
  for (const [url, param] of [[`/api/events?from=${late}&to=${early}`, 'to'], [`/api/tasks?created_from=${late}&created_to=${early}`, 'created_to'], [`/api/tasks?due_from=${late}&due_to=${early}`, 'due_to']] as const) {
    const res = await api.request({ method: 'GET', url, headers: api.auth(user.token) })
    assertProblem(t, res, 400, 'validation_failed', url)
    t.equal(res.json().errors?.[0]?.path, `/query/${param}`, 'the error names the upper bound')
  }
  for (const url of [`/api/events?from=${early}&to=${early}`, `/api/tasks?created_from=${early}&created_to=${early}`, `/api/tasks?due_from=${early}&due_to=${early}`]) {
    t.equal((await api.request({ method: 'GET', url, headers: api.auth(user.token) })).statusCode, 200, `equal bounds are a range: ${url}`)
  }
})

t.test('stated rules: role_arn must belong to account_id (create and update)', async t => {
  const api = await build(t)
  const admin = await api.adminToken()
  const account = { account_id: '123456789012', name: 'Production', role_arn: 'arn:aws:iam::210987654321:role/R', external_id: 'ops-7f3a9c', regions: ['us-east-1'] }
  const refused = await api.request({ method: 'POST', url: '/api/config/aws-accounts', headers: api.auth(admin), payload: account })
  assertProblem(t, refused, 400, 'validation_failed')
  t.equal(refused.json().errors?.[0]?.path, '/body/role_arn')
  const created = await api.request({ method: 'POST', url: '/api/config/aws-accounts', headers: api.auth(admin), payload: { ...account, role_arn: 'arn:aws:iam::123456789012:role/R' } })
  t.equal(created.statusCode, 201)
  const id = created.json().account.id
  const put = await api.request({ method: 'PUT', url: `/api/config/aws-accounts/${id}`, headers: api.auth(admin), payload: { role_arn: 'arn:aws:iam::210987654321:role/R' } })
  assertProblem(t, put, 400, 'validation_failed')
  t.equal(put.json().errors?.[0]?.path, '/body/role_arn')
})

t.test('typed errors: Problem.code is the enum of every code the service sends, and each operation lists its codes', async t => {
  const codes: string[] = spec.components.schemas.Problem.properties.code.enum
  t.same([...codes].sort(), Object.keys(STATUS_BY_CODE).sort(), 'the enum is exactly the codes of STATUS_BY_CODE')
  for (const code of ErrorCodes) t.ok(codes.includes(code), `domain code ${code} is in the enum`)
  const common = spec['x-common-error-codes'] as Record<string, string[]>
  for (const code of Object.values(common).flat()) t.ok(codes.includes(code), `common code ${code} is in the enum`)
  for (const op of operations) {
    const own: unknown = op.op['x-error-codes']
    t.ok(Array.isArray(own), `${op.operationId} has x-error-codes`)
    if (!Array.isArray(own)) continue
    t.equal(new Set(own).size, own.length, `${op.operationId}: no duplicates`)
    for (const code of errorCodesOf(op)) t.ok(codes.includes(code), `${op.operationId}: ${code} is a code of the enum`)
    for (const code of own as string[]) {
      const status = STATUS_BY_CODE[code as keyof typeof STATUS_BY_CODE]
      t.ok(op.op.responses[String(status)], `${op.operationId}: ${code} has its status ${status} declared`)
    }
  }
})

t.test('typed errors: the contract check refuses a problem code its operation does not list', async t => {
  const { checkResponse } = await import('./contract.js')
  const problem = (code: string, status: number) => ({ statusCode: status, headers: { 'content-type': 'application/problem+json', 'x-request-id': 'r1' }, body: JSON.stringify({ type: 'about:blank', title: 'x', status, code, detail: 'x' }) })
  t.same(checkResponse('POST', '/api/users', problem('email_taken', 409)), [], 'a listed code passes')
  t.same(checkResponse('POST', '/api/users', problem('rate_limited', 429)), [], 'a common code passes')
  t.same(checkResponse('POST', '/api/users', problem('token_expired', 401)), [], 'a bearer code passes on a bearer operation')
  t.match(checkResponse('POST', '/api/users', problem('invalid_transition', 409)), [/code invalid_transition is not in x-error-codes of createUser/], 'an unlisted code fails')
  t.match(checkResponse('POST', '/api/auth/login', problem('password_change_required', 403)), [/./], 'bearer codes are not common on a public operation')
})
