import { SerializerSelector, type SerializerFactory } from '@fastify/fast-json-stringify-compiler'
import { Ajv, type Options, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'
import { errorCodes, type FastifySchemaCompiler } from 'fastify'

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv

/**
 * Request validation with two Ajv instances. URL parts (query, params, headers) arrive as
 * strings, so they are coerced to the schema's types; JSON bodies are never coerced (with
 * coercion, `null` would silently become "" for a nullable string, and "1" a number).
 * Unknown properties are rejected, not stripped: that is what stops mass assignment.
 *
 * Lazy by default (`eager: false`): a route's validator is compiled on its first call, not at
 * boot (compiling all of them was ~300 ms of the start-up). With `eager` (EAGER_SCHEMAS=true,
 * the tests' check) every schema compiles at boot as Fastify does it, and a bad one stops it.
 */
/** What every validator shares: all errors, unknown properties kept (and refused by the schemas), defaults applied. */
const AJV_OPTIONS: Options = { allErrors: true, removeAdditional: false, useDefaults: true, strict: false }

export function createValidatorCompiler ({ eager = false }: { eager?: boolean } = {}): FastifySchemaCompiler<unknown> {
  const url = addFormats(new Ajv({ ...AJV_OPTIONS, coerceTypes: 'array' }))
  const body = addFormats(new Ajv({ ...AJV_OPTIONS, coerceTypes: false }))
  return ({ schema, httpPart, method, url: path }) => {
    const compile = (): ValidateFunction => (httpPart === 'body' ? body : url).compile(schema as object)
    if (eager) return compile()
    return lazyValidator(() => {
      try {
        return compile()
      } catch (err) {
        // What the boot would have thrown; a 500 (internal_error, logged), never a 400.
        throw new errorCodes.FST_ERR_SCH_VALIDATION_BUILD(method, path, (err as Error).message)
      }
    })
  }
}

/**
 * A stand-in for an Ajv validator that compiles it on its first use. Fastify reads two
 * properties of what the compiler returned (node_modules/fastify/lib/validation.js,
 * validateParam): `schemaEnv`, to pass the request as the parent of the validated part (so
 * coercion and defaults can replace the part itself), and `errors` after a failed call; both
 * are the compiled validator's, and the call passes its arguments and result through.
 */
function lazyValidator (compile: () => ValidateFunction): ValidateFunction {
  let compiled: ValidateFunction | undefined
  const get = (): ValidateFunction => (compiled ??= compile())
  const validate = function (this: unknown, ...args: Parameters<ValidateFunction>) {
    return get().apply(this, args)
  }
  Object.defineProperties(validate, {
    schemaEnv: { get: () => get().schemaEnv },
    errors: {
      get: () => compiled?.errors ?? null,
      set: (value: ValidateFunction['errors']) => { get().errors = value }
    }
  })
  return validate as unknown as ValidateFunction
}

/**
 * Fastify's serializer factory (fast-json-stringify, with the shared schemas and serializer
 * options Fastify passes), each route's serializer built on its first response instead of at
 * boot (~170 ms of start-up); `eager` builds them at boot, as the default factory does.
 */
export function createSerializerFactory ({ eager = false }: { eager?: boolean } = {}): SerializerFactory {
  const factory = SerializerSelector()
  if (eager) return factory
  return (externalSchemas, options) => {
    const compiler = factory(externalSchemas, options)
    return (route) => {
      let serialize: ((data: unknown) => string) | undefined
      const build = (): (data: unknown) => string => {
        try {
          return compiler(route)
        } catch (err) {
          throw new errorCodes.FST_ERR_SCH_SERIALIZATION_BUILD(route.method, route.url, (err as Error).message)
        }
      }
      return (data: unknown) => (serialize ??= build())(data)
    }
  }
}

export interface BodyCheck { valid: boolean, errors: Array<{ path: string, message: string }> }

/**
 * A validator of a JSON body against one schema, outside Fastify's route validation (ingestion
 * picks the schema by the body's shape), with the same options and error paths as routes get.
 * Compiled on its first use, like the routes' validators.
 */
export function compileBodyCheck (schema: object): (data: unknown) => BodyCheck {
  let compiled: ValidateFunction | undefined
  return (data) => {
    const validate = compiled ??= addFormats(new Ajv({ ...AJV_OPTIONS, coerceTypes: false })).compile(schema)
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
