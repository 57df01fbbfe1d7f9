import './env.js'
import awsLambdaFastify, { type LambdaResponse } from '@fastify/aws-lambda'
import type { App } from './app.js'
import { ConfigError } from './config.js'
import { buildLambdaApp } from './lambda-app.js'

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

async function init (): Promise<Instance> {
  // The in-process notification poller is off: a frozen container runs no timers (the
  // scheduled worker, src/lambda-notifications.ts, delivers).
  const app = await buildLambdaApp({ NOTIFICATION_POLL_MS: '0' })
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
