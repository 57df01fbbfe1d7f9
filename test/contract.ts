/**
 * An independent check of every response against docs/api-specification.yaml: Ajv (JSON
 * Schema 2020-12) over the spec itself, not Fastify's serializer or the generated TypeBox.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { parse } from 'yaml'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormatsModule from 'ajv-formats'
import type { ValidateFunction } from 'ajv'

type Json = Record<string, any>

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const spec: Json = parse(readFileSync(path.join(root, 'docs', 'api-specification.yaml'), 'utf8'))

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => void
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true })
addFormats(ajv)
ajv.addSchema(spec, 'spec')

const pointer = (...parts: string[]): string => parts.map(p => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/')
const validators = new Map<string, ValidateFunction>()
function validatorAt (ptr: string): ValidateFunction {
  let v = validators.get(ptr)
  if (!v) {
    v = ajv.compile({ $ref: `spec#/${ptr}` })
    validators.set(ptr, v)
  }
  return v
}

export interface Operation { method: string, path: string, operationId: string, op: Json, regex: RegExp, params: number }

export const operations: Operation[] = []
for (const [p, item] of Object.entries(spec.paths as Json)) {
  for (const method of ['get', 'put', 'post', 'delete', 'patch']) {
    const op = item[method]
    if (!op) continue
    const regex = new RegExp('^' + p.replace(/\{\w+\}/g, '[^/]+') + '$')
    operations.push({ method: method.toUpperCase(), path: p, operationId: op.operationId, op, regex, params: (p.match(/\{/g) ?? []).length })
  }
}

export function findOperation (method: string, url: string): Operation | undefined {
  const pathname = url.split('?')[0] ?? ''
  const m = method.toUpperCase() === 'HEAD' ? 'GET' : method.toUpperCase()
  return operations.filter(o => o.method === m && o.regex.test(pathname)).sort((a, b) => a.params - b.params)[0]
}

/** (operationId, status) pairs seen by the tests of this process. */
export const seen = new Map<string, Set<number>>()

export interface ResponseLike { statusCode: number, headers: Record<string, unknown>, body: string }

/**
 * The response headers a client can act on. Each one a response carries must be declared on
 * that response in the spec (so generated clients type it), and its value must match the
 * declared schema; a header declared `required` must be sent. Transport and browser-security
 * headers (content-type, cache-control, content-security-policy, …) are not part of the API.
 */
export const API_HEADERS = ['etag', 'location', 'retry-after', 'allow', 'www-authenticate', 'x-request-id', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset']

const headerValidators = new Map<Json, ValidateFunction>()

function checkHeaders (where: string, declared: Json, res: ResponseLike): string[] {
  const problems: string[] = []
  const specHeaders = new Map<string, Json>()
  for (const [name, h] of Object.entries((declared.headers ?? {}) as Json)) {
    specHeaders.set(name.toLowerCase(), h.$ref ? h.$ref.replace(/^#\//, '').split('/').reduce((o: Json, k: string) => o[k], spec) : h)
  }
  for (const name of API_HEADERS) {
    const value = res.headers[name]
    const h = specHeaders.get(name)
    if (value === undefined) {
      if (h?.required) problems.push(`${where}: required header ${name} is missing`)
      continue
    }
    if (!h) { problems.push(`${where}: header ${name} is sent but not declared on this response`); continue }
    const schema = h.schema as Json
    const typed = schema.type === 'integer' && /^\d+$/.test(String(value)) ? Number(value) : value
    let validate = headerValidators.get(schema)
    if (!validate) headerValidators.set(schema, validate = ajv.compile(schema))
    if (!validate(typed)) problems.push(`${where}: header ${name}: ${String(value)}: ${ajv.errorsText(validate.errors)}`)
  }
  return problems
}

/**
 * Returns a list of contract violations (empty when the response conforms). `headers: false`
 * for a response known by its body only (a transcript in the docs).
 */
export function checkResponse (method: string, url: string, res: ResponseLike, opts: { headers?: boolean } = {}): string[] {
  const problems: string[] = []
  const contentType = String(res.headers['content-type'] ?? '').split(';')[0]?.trim() ?? ''
  const where = `${method} ${url} → ${res.statusCode}`
  const op = findOperation(method, url)
  if (res.statusCode >= 500 && res.statusCode !== 503) problems.push(`${where}: server error ${res.body}`)
  if (!op) {
    // Not an operation of the spec: only 404 and 405 problems are acceptable.
    if (![404, 405, 429].includes(res.statusCode)) problems.push(`${where}: not an operation of the spec`)
    const ptr = pointer('components', 'schemas', 'Problem')
    if (contentType !== 'application/problem+json') problems.push(`${where}: content type ${contentType}, expected application/problem+json`)
    if (method.toUpperCase() === 'HEAD') {
      if (res.body !== '') problems.push(`${where}: HEAD with a body ${res.body.slice(0, 200)}`)
    } else if (problems.length === 0 && !validatorAt(ptr)(JSON.parse(res.body))) problems.push(`${where}: ${ajv.errorsText(validatorAt(ptr).errors)}`)
    if (res.statusCode === 405) {
      // Declared once for every path (components/responses/MethodNotAllowed): the Allow header is required.
      const allow = validatorAt(pointer('components', 'headers', 'Allow', 'schema'))
      if (res.headers.allow === undefined) problems.push(`${where}: 405 without an Allow header`)
      else if (!allow(res.headers.allow)) problems.push(`${where}: Allow header ${String(res.headers.allow)}: ${ajv.errorsText(allow.errors)}`)
    }
    return problems
  }
  const statuses = seen.get(op.operationId) ?? new Set<number>()
  statuses.add(res.statusCode)
  seen.set(op.operationId, statuses)
  let declared = op.op.responses[String(res.statusCode)]
  let base = pointer('paths', op.path, op.method.toLowerCase(), 'responses', String(res.statusCode))
  if (!declared) {
    problems.push(`${where}: status ${res.statusCode} is not documented for ${op.operationId}`)
    return problems
  }
  if (declared.$ref) {
    base = declared.$ref.replace(/^#\//, '')
    declared = base.split('/').reduce((o: Json, k: string) => o[k.replace(/~1/g, '/').replace(/~0/g, '~')], spec)
  }
  if (opts.headers !== false) problems.push(...checkHeaders(where, declared, res))
  const content: Json | undefined = declared.content
  if (method.toUpperCase() === 'HEAD') {
    // HEAD answers like the GET (see "Methods" in the spec), without a body.
    if (res.body !== '') problems.push(`${where}: HEAD with a body ${res.body.slice(0, 200)}`)
    if (content && !content[contentType]) problems.push(`${where}: content type "${contentType}" not in ${Object.keys(content).join(', ')}`)
    return problems
  }
  if (!content) {
    if (res.body !== '') problems.push(`${where}: expected no body, got ${res.body.slice(0, 200)}`)
    return problems
  }
  if (!content[contentType]) {
    problems.push(`${where}: content type "${contentType}" not in ${Object.keys(content).join(', ')}`)
    return problems
  }
  const ptr = `${base}/${pointer('content', contentType, 'schema')}`
  if (contentType === 'application/x-ndjson') {
    // Newline-delimited JSON: every line is one value of the media type's `x-item-schema`.
    const validate = validatorAt(`${base}/${pointer('content', contentType, 'x-item-schema')}`)
    res.body.split('\n').filter(line => line !== '').forEach((line, i) => {
      let value: unknown
      try {
        value = JSON.parse(line)
      } catch {
        problems.push(`${where}: line ${i + 1} is not JSON: ${line.slice(0, 200)}`)
        return
      }
      if (!validate(value)) problems.push(`${where}: line ${i + 1} does not match the spec: ${ajv.errorsText(validate.errors)}`)
    })
    return problems
  }
  let body: unknown
  try {
    body = JSON.parse(res.body)
  } catch {
    problems.push(`${where}: body is not JSON: ${res.body.slice(0, 200)}`)
    return problems
  }
  const validate = validatorAt(ptr)
  if (!validate(body)) problems.push(`${where}: body does not match the spec: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(body).slice(0, 500)}`)
  if (contentType === 'application/problem+json') {
    const code = String((body as Json).code)
    if (!errorCodesOf(op).has(code)) problems.push(`${where}: code ${code} is not in x-error-codes of ${op.operationId} (nor in x-common-error-codes)`)
  }
  return problems
}

/**
 * The error codes an operation can answer: its `x-error-codes`, plus `x-common-error-codes`
 * (`every-operation`, and `bearer-operations` when the operation takes a bearer token).
 */
export function errorCodesOf (op: Operation): Set<string> {
  const common = spec['x-common-error-codes'] as { 'every-operation': string[], 'bearer-operations': string[] }
  const security: Array<Record<string, unknown>> = op.op.security ?? spec.security ?? []
  const bearer = security.some(requirement => 'bearerAuth' in requirement)
  return new Set([...(op.op['x-error-codes'] as string[] ?? []), ...common['every-operation'], ...(bearer ? common['bearer-operations'] : [])])
}

/** Validates any value against a component schema of the spec. */
export function validateComponent (name: string, value: unknown): string[] {
  const v = validatorAt(pointer('components', 'schemas', name))
  return v(value) ? [] : [ajv.errorsText(v.errors)]
}

/** Validates a value against the spec schema at a JSON pointer (e.g. a media-type example). */
export function validateAt (ptr: string, value: unknown): string[] {
  const v = validatorAt(ptr)
  return v(value) ? [] : [ajv.errorsText(v.errors)]
}

export { pointer }
