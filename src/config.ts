import { Type, type Static } from 'typebox'
import { Value } from 'typebox/value'
import { DEFAULT_MEMBER_ROLE_NAME } from './domain/member-wiring.js'

/**
 * Environment schema: validated once at start-up, and the schema is the type.
 * Variable names are part of the wire contract (docs/api-conventions: "Running it").
 */
export const EnvSchema = Type.Object({
  NODE_ENV: Type.String({ default: 'development' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  DYNAMODB_ENDPOINT: Type.Optional(Type.String({ minLength: 1 })),
  AWS_REGION: Type.String({ minLength: 1, default: 'us-east-1' }),
  DATA_DIR: Type.String({ minLength: 1, default: './data' }),
  TABLE_PREFIX: Type.String({ pattern: '^[A-Za-z0-9_.-]{0,64}$', default: 'monitoring-' }),
  JWT_SECRET: Type.Optional(Type.String({ minLength: 32 })),
  JWT_ISSUER: Type.String({ minLength: 1, default: 'cloud-monitoring-api' }),
  JWT_AUDIENCE: Type.String({ minLength: 1, default: 'cloud-monitoring-console' }),
  ACCESS_TOKEN_TTL_SECONDS: Type.Integer({ minimum: 60, maximum: 86400, default: 900 }),
  REFRESH_TOKEN_TTL_SECONDS: Type.Integer({ minimum: 300, maximum: 2592000, default: 604800 }),
  REFRESH_FAMILY_MAX_SECONDS: Type.Integer({ minimum: 300, maximum: 7776000, default: 2592000 }),
  ADMIN_EMAIL: Type.String({ format: 'email', maxLength: 254, default: 'admin@example.com' }),
  ADMIN_PASSWORD: Type.Optional(Type.String({ minLength: 12, maxLength: 128 })),
  LOG_LEVEL: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'info' }),
  CORS_ORIGINS: Type.String({ default: '' }),
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 1024, maximum: 10485760, default: 102400 }),
  RATE_LIMIT_MAX: Type.Integer({ minimum: 1, default: 600 }),
  RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, default: 60000 }),
  AUTH_RATE_LIMIT_MAX: Type.Integer({ minimum: 1, default: 20 }),
  INGEST_RATE_LIMIT_MAX: Type.Integer({ minimum: 1, default: 6000 }),
  INGEST_INVALID_KEY_LIMIT_MAX: Type.Integer({ minimum: 1, default: 60 }),
  LOCKOUT_THRESHOLD: Type.Integer({ minimum: 1, maximum: 100, default: 5 }),
  LOCKOUT_WINDOW_SECONDS: Type.Integer({ minimum: 1, maximum: 86400, default: 900 }),
  ARGON2_MEMORY_KIB: Type.Integer({ minimum: 1024, maximum: 1048576, default: 19456 }),
  ARGON2_TIME_COST: Type.Integer({ minimum: 1, maximum: 10, default: 2 }),
  AWS_STS_ENDPOINT: Type.Optional(Type.String({ minLength: 1 })),
  PUBLIC_BASE_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s/?#]+(/[^\\s?#]*)?$', maxLength: 2000 })),
  SERVICE_AWS_ACCOUNT_ID: Type.Optional(Type.String({ pattern: '^[0-9]{12}$' })),
  MEMBER_ROLE_NAME: Type.String({ pattern: '^[\\w+=,.@-]{1,64}$', default: DEFAULT_MEMBER_ROLE_NAME }),
  MEMBER_TEMPLATE_URL: Type.Optional(Type.String({ pattern: '^https://[^\\s/?#]+/[^\\s#]*$', maxLength: 1024 })),
  TRUST_PROXY: Type.String({ maxLength: 1000, default: 'false' }),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', maxLength: 2048 })),
  AUTH_CACHE_MS: Type.Integer({ minimum: 0, maximum: 10000, default: 1000 }),
  TEMP_PASSWORD_TTL_HOURS: Type.Number({ exclusiveMinimum: 0, maximum: 8760, default: 72 }),
  RETENTION_SWEEP_INTERVAL_SECONDS: Type.Optional(Type.Integer({ minimum: 0, maximum: 604800 })),
  // base64 of 32 bytes: the key that encrypts the notification channels' secrets (AES-256-GCM).
  NOTIFICATION_KEY: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9+/]{43}=$' })),
  NOTIFICATION_ALLOW_LOOPBACK: Type.Boolean({ default: false }),
  NOTIFICATION_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 30000, default: 5000 }),
  NOTIFICATION_POLL_MS: Type.Integer({ minimum: 0, maximum: 3600000, default: 1000 }),
  NOTIFICATION_RETRY_BASE_MS: Type.Integer({ minimum: 10, maximum: 3600000, default: 10000 }),
  NOTIFICATION_MAX_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 100, default: 8 }),
  NOTIFICATION_GROUP_WINDOW_MS: Type.Integer({ minimum: 0, maximum: 600000, default: 2000 }),
  // Days an audit record is kept (TTL on real DynamoDB; reads hide older ones everywhere).
  AUDIT_RETENTION_DAYS: Type.Integer({ minimum: 1, maximum: 3650, default: 400 }),
  // Compile every route's request validators and response serializers at boot (a bad schema
  // stops the start) instead of at each route's first use: the tests' check.
  EAGER_SCHEMAS: Type.Boolean({ default: false })
})

export type Env = Static<typeof EnvSchema>

export interface Config {
  env: string
  port: number
  host: string
  /** undefined: embedded stand-in; 'aws': real DynamoDB; otherwise an endpoint URL. */
  dynamodbEndpoint: string | undefined
  region: string
  dataDir: string
  tablePrefix: string
  /** undefined outside production: the server generates one and keeps it in DATA_DIR. */
  jwtSecret: string | undefined
  jwt: { issuer: string, audience: string, accessTtlSeconds: number, refreshTtlSeconds: number, familyMaxSeconds: number }
  admin: { email: string, password: string | undefined }
  logLevel: Env['LOG_LEVEL']
  corsOrigins: string[]
  bodyLimit: number
  /** Per client; `authMax` for the credential routes; `ingestMax` per API key on ingestion; `invalidKeyMax` failed API keys per client. */
  rateLimit: { max: number, windowMs: number, authMax: number, ingestMax: number, invalidKeyMax: number }
  lockout: { threshold: number, windowSeconds: number }
  argon2: { memoryCost: number, timeCost: number, parallelism: number }
  /** Fastify's trustProxy: false, a hop count, or trusted proxy addresses/CIDRs. */
  trustProxy: boolean | number | string
  /** STS endpoint for connection tests (default: AWS's regional endpoint). */
  stsEndpoint: string | undefined
  /**
   * The service's public base URL, without a trailing slash (the member stacks' ServiceUrl):
   * the connection test compares API destinations with `<publicBaseUrl>/api/events/ingest`.
   * undefined: that comparison is reported as not verified.
   */
  publicBaseUrl: string | undefined
  /**
   * What `GET /api/config/aws-accounts/{id}/onboarding` fills into the member stack: the AWS
   * account the service runs in (SERVICE_AWS_ACCOUNT_ID, the principal the member role trusts;
   * undefined: left for the account owner to fill in), the role name (MEMBER_ROLE_NAME, the one
   * the service's IAM policy may assume), and where the operator published the generic member
   * template (MEMBER_TEMPLATE_URL, an https S3 URL; undefined: no quick-create links).
   */
  onboarding: { serviceAccountId: string | undefined, memberRoleName: string, templateUrl: string | undefined }
  /** Shared rate-limit store (redis:// or rediss:// URL); undefined: in-process, per instance. */
  redisUrl: string | undefined
  /**
   * Per-process cache of the caller's user record and token denylist entry (ms; 0: off).
   * `settleMs`: how long a revoking write waits before it answers, so that no other instance
   * still trusts a cached copy when the client hears back; 0 with the embedded database
   * (one process per data directory: the write drops this process's own cached copy).
   */
  authCache: { ttlMs: number, settleMs: number }
  /** Lifetime of a temporary password (new user without a password, reset), in hours. */
  temporaryPasswordTtlHours: number
  /**
   * Seconds between runs of the retention sweep (deletes events past their retention and takes
   * them off the dashboard counters); 0: off. Default 3600 on the embedded stand-in, which has
   * no TTL, and 0 elsewhere: on real DynamoDB, TTL and the stream consumer do it.
   */
  retentionSweepSeconds: number
  notifications: {
    /** The 32-byte key of the channels' stored secrets; undefined: derived from the JWT secret (HKDF). */
    key: Buffer | undefined
    /** Loopback targets (and http to them) are allowed: tests and local use only, never in production. */
    allowLoopback: boolean
    /** Bound of one outbound request (connect, send, read the answer). */
    timeoutMs: number
    /** Milliseconds between runs of the in-process notification worker; 0: none (a scheduled worker delivers). */
    pollMs: number
    /** Retries: the wait after the first failure (then ×4, jittered) and the attempts before a message is dead. */
    retry: { baseMs: number, maxAttempts: number }
    /** How long a channel's first queued notification waits for others to group with (one digest per burst). */
    groupWindowMs: number
  }
  /** The audit trail (docs/audit.md): how long records are kept. */
  audit: { retentionDays: number }
  /** Route schemas compiled at boot (true) or at each route's first use (false, the default: faster start). */
  eagerSchemas: boolean
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** Validates the environment (after defaults and string→number/boolean conversion). */
export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, unknown> = {}
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = env[key]
    if (value !== undefined && value !== '') raw[key] = value
  }
  const converted = Value.Default(EnvSchema, Value.Convert(EnvSchema, raw)) as Record<string, unknown>
  if (!Value.Check(EnvSchema, converted)) {
    // Name the variables only: values may be secrets.
    const problems = [...Value.Errors(EnvSchema, converted)].map(e => `${e.instancePath.replace(/^\//, '') || 'environment'}: ${e.message}`)
    throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`)
  }
  const e = converted as Env
  if (e.NODE_ENV === 'production' && !e.JWT_SECRET) throw new ConfigError('Invalid configuration: JWT_SECRET is required when NODE_ENV=production')
  // Loopback targets let a channel reach the service's own host: never where it is exposed.
  if (e.NODE_ENV === 'production' && e.NOTIFICATION_ALLOW_LOOPBACK) throw new ConfigError('Invalid configuration: NOTIFICATION_ALLOW_LOOPBACK must not be set when NODE_ENV=production')
  return {
    env: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    dynamodbEndpoint: e.DYNAMODB_ENDPOINT,
    region: e.AWS_REGION,
    dataDir: e.DATA_DIR,
    tablePrefix: e.TABLE_PREFIX,
    jwtSecret: e.JWT_SECRET,
    jwt: {
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
      accessTtlSeconds: e.ACCESS_TOKEN_TTL_SECONDS,
      refreshTtlSeconds: e.REFRESH_TOKEN_TTL_SECONDS,
      familyMaxSeconds: e.REFRESH_FAMILY_MAX_SECONDS
    },
    admin: { email: e.ADMIN_EMAIL, password: e.ADMIN_PASSWORD },
    logLevel: e.LOG_LEVEL,
    corsOrigins: e.CORS_ORIGINS.split(',').map(s => s.trim()).filter(Boolean),
    bodyLimit: e.BODY_LIMIT_BYTES,
    rateLimit: { max: e.RATE_LIMIT_MAX, windowMs: e.RATE_LIMIT_WINDOW_MS, authMax: e.AUTH_RATE_LIMIT_MAX, ingestMax: e.INGEST_RATE_LIMIT_MAX, invalidKeyMax: e.INGEST_INVALID_KEY_LIMIT_MAX },
    lockout: { threshold: e.LOCKOUT_THRESHOLD, windowSeconds: e.LOCKOUT_WINDOW_SECONDS },
    argon2: { memoryCost: e.ARGON2_MEMORY_KIB, timeCost: e.ARGON2_TIME_COST, parallelism: 1 },
    trustProxy: parseTrustProxy(e.TRUST_PROXY),
    stsEndpoint: e.AWS_STS_ENDPOINT,
    publicBaseUrl: e.PUBLIC_BASE_URL?.replace(/\/+$/, ''),
    onboarding: { serviceAccountId: e.SERVICE_AWS_ACCOUNT_ID, memberRoleName: e.MEMBER_ROLE_NAME, templateUrl: e.MEMBER_TEMPLATE_URL },
    redisUrl: e.REDIS_URL,
    authCache: { ttlMs: e.AUTH_CACHE_MS, settleMs: e.DYNAMODB_ENDPOINT ? e.AUTH_CACHE_MS : 0 },
    temporaryPasswordTtlHours: e.TEMP_PASSWORD_TTL_HOURS,
    retentionSweepSeconds: e.RETENTION_SWEEP_INTERVAL_SECONDS ?? (e.DYNAMODB_ENDPOINT ? 0 : 3600),
    notifications: {
      key: e.NOTIFICATION_KEY ? Buffer.from(e.NOTIFICATION_KEY, 'base64') : undefined,
      allowLoopback: e.NOTIFICATION_ALLOW_LOOPBACK,
      timeoutMs: e.NOTIFICATION_TIMEOUT_MS,
      pollMs: e.NOTIFICATION_POLL_MS,
      retry: { baseMs: e.NOTIFICATION_RETRY_BASE_MS, maxAttempts: e.NOTIFICATION_MAX_ATTEMPTS },
      groupWindowMs: e.NOTIFICATION_GROUP_WINDOW_MS
    },
    audit: { retentionDays: e.AUDIT_RETENTION_DAYS },
    eagerSchemas: e.EAGER_SCHEMAS
  }
}

/**
 * `false` (default), a number of proxy hops to trust, or a comma-separated list of proxy
 * addresses/CIDRs. `true` (trust every hop) lets any client choose its own IP, and with it
 * its rate-limit bucket: prefer a hop count or the proxies' addresses.
 */
function parseTrustProxy (value: string): boolean | number | string {
  const v = value.trim()
  if (v === '' || v === 'false') return false
  if (v === 'true') return true
  if (/^\d+$/.test(v)) return Number(v)
  return v
}
