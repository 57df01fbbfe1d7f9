import type { App } from './app.js'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'

/**
 * What the Lambda entries share (the API, src/lambda.ts; the notification worker,
 * src/lambda-notifications.ts): the configuration from the function's environment, the JWT
 * secret read from Secrets Manager (JWT_SECRET_ARN) once per container, and the app on real
 * DynamoDB (no embedded database, no table creation, no first admin).
 */

/** The value of the secret JWT_SECRET_ARN names (Secrets Manager, in the ARN's region); undefined without it. */
export async function jwtSecretFromArn (env: NodeJS.ProcessEnv): Promise<string | undefined> {
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

/** The app of a Lambda container, its environment overridden by `env`. */
export async function buildLambdaApp (env: Record<string, string> = {}): Promise<App> {
  const secret = await jwtSecretFromArn(process.env)
  // Not the embedded stand-in: real DynamoDB unless an endpoint URL is given. Shared by every
  // container, which also makes revocations wait out the other containers' caller caches.
  const config = loadConfig({ ...process.env, DYNAMODB_ENDPOINT: process.env.DYNAMODB_ENDPOINT || 'aws', ...(secret ? { JWT_SECRET: secret } : {}), ...env })
  if (!config.jwtSecret) throw new ConfigError('Invalid configuration: JWT_SECRET is required on Lambda (or JWT_SECRET_ARN: every container must sign with the same secret)')
  return buildApp(config, { jwtSecret: config.jwtSecret, dynamodbEndpoint: config.dynamodbEndpoint! })
}
