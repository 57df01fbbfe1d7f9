import './env.js'
import awsLambdaFastify, { type LambdaResponse } from '@fastify/aws-lambda'
import { buildApp, type App } from './app.js'
import { ConfigError, loadConfig } from './config.js'

/**
 * AWS Lambda entry (behind API Gateway HTTP API or REST API, or a function URL); handler
 * `dist/src/lambda.handler`. The app is built once per container and reused by every
 * invocation it serves. Unlike the server it starts no embedded database, creates no
 * tables (deploy them first: deploy/cloudformation/tables.yaml) and no first admin
 * (`npm run seed:admin`), and it needs JWT_SECRET: there is no DATA_DIR to keep one in.
 * With JWT_SECRET_ARN instead (the CDK stack, infra/), the secret is read from Secrets Manager
 * once per container, at start, so its value is never in the function's configuration.
 */
/** The parts of the Lambda context the adapter reads; the runtime passes the full object. */
export interface LambdaContext {
  callbackWaitsForEmptyEventLoop?: boolean
  [key: string]: unknown
}

/** An API Gateway (v1 or v2 payload), ALB or function-URL event. */
export type LambdaEvent = Record<string, unknown>

interface Instance {
  app: App
  proxy: (event: LambdaEvent, context: LambdaContext) => Promise<LambdaResponse>
}

let instance: Promise<Instance> | undefined

/** The value of the secret JWT_SECRET_ARN names (Secrets Manager, in the ARN's region); undefined without it. */
async function jwtSecretFromArn (env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const arn = env.JWT_SECRET_ARN
  if (!arn) return undefined
  if (env.JWT_SECRET) throw new ConfigError('Invalid configuration: set JWT_SECRET or JWT_SECRET_ARN, not both')
  // Loaded only here: runs without JWT_SECRET_ARN (local, tests) never load this client.
  const { GetSecretValueCommand, SecretsManagerClient } = await import('@aws-sdk/client-secrets-manager')
  const region = arn.split(':')[3]
  const client = new SecretsManagerClient(region ? { region } : {})
  try {
    const { SecretString } = await client.send(new GetSecretValueCommand({ SecretId: arn }))
    if (!SecretString) throw new ConfigError(`Invalid configuration: the secret JWT_SECRET_ARN names (${arn}) has no string value`)
    return SecretString
  } catch (err) {
    if (err instanceof ConfigError) throw err
    const e = err as { name?: string, message?: string }
    throw new ConfigError(`Invalid configuration: could not read JWT_SECRET_ARN (${arn}): ${e.name ?? 'Error'}: ${e.message ?? String(err)}`)
  } finally {
    client.destroy()
  }
}

async function init (): Promise<Instance> {
  const secret = await jwtSecretFromArn(process.env)
  // Not the embedded stand-in: real DynamoDB unless an endpoint URL is given. Shared by every
  // container, which also makes revocations wait out the other containers' caller caches.
  const config = loadConfig({ ...process.env, DYNAMODB_ENDPOINT: process.env.DYNAMODB_ENDPOINT || 'aws', ...(secret ? { JWT_SECRET: secret } : {}) })
  if (!config.jwtSecret) throw new ConfigError('Invalid configuration: JWT_SECRET is required on Lambda (or JWT_SECRET_ARN: every container must sign with the same secret)')
  const app = await buildApp(config, {
    jwtSecret: config.jwtSecret,
    dynamodbEndpoint: config.dynamodbEndpoint!
  })
  // The request decoration (event/context on every request) is unused: leave it off.
  const proxy = awsLambdaFastify<LambdaEvent>(app, { decorateRequest: false })
  await app.ready()
  return { app, proxy: proxy as Instance['proxy'] }
}

function ready (): Promise<Instance> {
  // A failed start (bad config, database unreachable) is retried by the next invocation.
  instance ??= init().catch((err: unknown) => {
    instance = undefined
    throw err
  })
  return instance
}

// In Lambda, build the app during the init phase (full CPU, not billed against the first
// request's latency); elsewhere (tests) only on the first invocation.
if (process.env.AWS_LAMBDA_FUNCTION_NAME) ready().catch((err: unknown) => console.error(err instanceof ConfigError ? err.message : err))

export const handler = async (event: LambdaEvent, context: LambdaContext): Promise<LambdaResponse> => {
  const { proxy } = await ready()
  return proxy(event, context)
}

/** Closes the app of this container (tests; Lambda itself just freezes and ends containers). */
export async function close (): Promise<void> {
  const current = instance
  instance = undefined
  if (current) await (await current).app.close()
}
