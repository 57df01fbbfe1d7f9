/**
 * The EventBridge wiring the member-account stack (infra/lib/member-stack.ts) creates in every
 * region of a monitored account, by these fixed names, and the connection test
 * (src/modules/settings/connection-test.ts) looks up by the same names. One set per account and
 * region: the stack is deployed once per region (like its role, once per account).
 */
export const MEMBER_WIRING = {
  /** The rule on the default event bus that matches the supported events. */
  ruleName: 'cloud-monitoring-events',
  /** The rule's target: POST <service>/api/events/ingest. */
  apiDestinationName: 'cloud-monitoring-ingest',
  /** The API destination's connection: the account's API key, header X-Api-Key. */
  connectionName: 'cloud-monitoring-ingest-key'
} as const

/**
 * The name of the read-only role the member stack creates by default (its RoleName parameter)
 * and the service may assume: the CDK app's `-c memberRoleName` default (infra/lib/config.ts) and
 * the service's MEMBER_ROLE_NAME default (src/config.ts).
 */
export const DEFAULT_MEMBER_ROLE_NAME = 'CloudMonitoringReadOnly'

/**
 * What the member stack's ServiceUrl parameter accepts (its AllowedPattern): https (EventBridge
 * API destinations deliver to https endpoints only), a host, an optional port and path, no
 * trailing slash.
 */
export const SERVICE_URL_PATTERN = '^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\\s]*[^/\\s])?$'

/** Where the API destination delivers, relative to the service's public base URL. */
export const INGEST_PATH = '/api/events/ingest'

/** `<base>/api/events/ingest` for a base URL with or without a trailing slash. */
export const ingestionUrl = (publicBaseUrl: string): string => `${publicBaseUrl.replace(/\/+$/, '')}${INGEST_PATH}`

/**
 * Whether an API destination's endpoint is the service's ingestion URL: scheme and host compared
 * as URLs (case, default port), the path exactly, one trailing slash ignored.
 */
export function sameEndpoint (actual: string, expected: string): boolean {
  const norm = (u: string): string => {
    try {
      const url = new URL(u)
      return `${url.protocol}//${url.host}${url.pathname.replace(/\/$/, '')}${url.search}`
    } catch {
      return u.replace(/\/$/, '')
    }
  }
  return norm(actual) === norm(expected)
}
