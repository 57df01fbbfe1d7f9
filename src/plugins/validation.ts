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

export interface BodyCheck { valid: boolean, errors: Array<{ path: string, message: string }> }

/**
 * A validator of a JSON body against one schema, outside Fastify's route validation (ingestion
 * picks the schema by the body's shape), with the same options and error paths as routes get.
 */
export function compileBodyCheck (schema: object): (data: unknown) => BodyCheck {
  const ajv = addFormats(new Ajv({ allErrors: true, removeAdditional: false, useDefaults: true, strict: false, coerceTypes: false }))
  const validate = ajv.compile(schema)
  return (data) => {
    if (validate(data)) return { valid: true, errors: [] }
    return {
      valid: false,
      errors: (validate.errors ?? []).map(e => {
        const extra = e.params?.additionalProperty ?? e.params?.missingProperty
        const path = `/body${e.instancePath}${typeof extra === 'string' ? `/${extra.replace(/~/g, '~0').replace(/\//g, '~1')}` : ''}`
        return { path, message: e.message ?? 'is invalid' }
      })
    }
  }
}
