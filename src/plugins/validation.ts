import { Ajv, type Options } from 'ajv'
import addFormatsModule from 'ajv-formats'
import type { FastifySchemaCompiler } from 'fastify'

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv

/**
 * Request validation with two Ajv instances. URL parts (query, params, headers) arrive as
 * strings, so they are coerced to the schema's types; JSON bodies are never coerced (with
 * coercion, `null` would silently become "" for a nullable string, and "1" a number).
 * Unknown properties are rejected, not stripped: that is what stops mass assignment.
 */
export function createValidatorCompiler (): FastifySchemaCompiler<unknown> {
  const common: Options = { allErrors: true, removeAdditional: false, useDefaults: true, strict: false }
  const url = addFormats(new Ajv({ ...common, coerceTypes: 'array' }))
  const body = addFormats(new Ajv({ ...common, coerceTypes: false }))
  return ({ schema, httpPart }) => (httpPart === 'body' ? body : url).compile(schema as object)
}
