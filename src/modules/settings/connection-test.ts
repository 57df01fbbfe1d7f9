import { NodeHttpHandler } from '@smithy/node-http-handler'
import type { AwsAccount, ConnectionTestResult } from '../../domain/aws-accounts.js'
import { ingestionUrl, MEMBER_WIRING, sameEndpoint } from '../../domain/member-wiring.js'

export interface ConnectionTestOptions {
  /** The service's region: STS's, and the one EventBridge is checked in when the account lists no region. */
  region: string
  /** An STS endpoint other than AWS's (tests, VPC endpoints). */
  endpoint?: string
  /** The service's public base URL (PUBLIC_BASE_URL): API destinations must deliver to its ingestion URL. Unset: not verified. */
  publicBaseUrl?: string
  /** Upper bound for the whole test. */
  timeoutMs?: number
}

type Check = ConnectionTestResult['checks'][number]
type Credentials = { accessKeyId: string, secretAccessKey: string, sessionToken: string | undefined }

/** Regions checked at once (each region makes up to three EventBridge calls). */
const REGION_CONCURRENCY = 8

const describe = (err: unknown): string => {
  const e = err as { name?: string, message?: string, Code?: string }
  const text = `${e.name ?? e.Code ?? 'Error'}: ${e.message ?? String(err)}`
  return text.slice(0, 2000)
}

const clip = (text: string): string => text.length > 2000 ? `${text.slice(0, 1999)}…` : text

/** What each EventBridge check is about, for the result's `error`. */
const SUBJECT: Partial<Record<Check['name'], string>> = {
  eventbridge_rule: `EventBridge rule ${MEMBER_WIRING.ruleName}`,
  eventbridge_target: `targets of rule ${MEMBER_WIRING.ruleName}`,
  api_destination: `API destination ${MEMBER_WIRING.apiDestinationName}`
}

async function mapLimit<T, R> (items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i]!)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}

/**
 * Proves the service can reach the account and that the account delivers to it:
 *
 * 1. `sts:AssumeRole` on the account's role (with its external id);
 * 2. `sts:GetCallerIdentity` with the assumed credentials (the role belongs to the account);
 * 3. with the same credentials, in every region the account lists (none listed: the service's
 *    region), the member stack's EventBridge wiring (infra/lib/member-stack.ts, by the names of
 *    MEMBER_WIRING): `eventbridge_rule` (DescribeRule: exists, enabled), `eventbridge_target`
 *    (ListTargetsByRule: a target is the API destination; absent when the rule could not be
 *    read) and `api_destination` (DescribeApiDestination: ACTIVE, POST, and the endpoint is
 *    `<publicBaseUrl>/api/events/ingest`, "not verified" in a note when publicBaseUrl is unset).
 *
 * Every AWS-side failure (no network, access denied, not found, bad ARN, time-out) is a check
 * with `ok: false`; `ok` is true when every check passed. One time-out bounds the whole test.
 */
export async function testConnection (account: Pick<AwsAccount, 'role_arn' | 'external_id' | 'account_id' | 'regions'>, opts: ConnectionTestOptions): Promise<ConnectionTestResult> {
  // Loaded on first use: most processes never test a connection, and start-up stays short.
  const { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } = await import('@aws-sdk/client-sts')
  const timeoutMs = opts.timeoutMs ?? 5000
  const abort = AbortSignal.timeout(timeoutMs)
  const baseConfig = (region: string) => ({
    region,
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler({ connectionTimeout: Math.min(2000, timeoutMs), requestTimeout: timeoutMs })
  })
  const stsConfig = { ...baseConfig(opts.region), ...(opts.endpoint ? { endpoint: opts.endpoint } : {}) }
  const checks: Check[] = []
  const result = (ok: boolean, extra: { arn?: string, error?: string }): ConnectionTestResult => ({
    ok, ...extra, checked_at: new Date().toISOString(), checks
  })

  let credentials: Credentials
  const sts = new STSClient(stsConfig)
  try {
    const assumed = await sts.send(new AssumeRoleCommand({
      RoleArn: account.role_arn,
      RoleSessionName: 'cloud-monitoring-connection-test',
      DurationSeconds: 900,
      ...(account.external_id ? { ExternalId: account.external_id } : {})
    }), { abortSignal: abort })
    const c = assumed.Credentials
    if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error('AssumeRole returned no credentials')
    credentials = { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken }
    checks.push({ name: 'assume_role', ok: true })
  } catch (err) {
    const error = describe(err)
    checks.push({ name: 'assume_role', ok: false, error })
    return result(false, { error: clip(`Could not assume ${account.role_arn}: ${error}`) })
  } finally {
    sts.destroy()
  }

  let arn: { arn?: string }
  const assumedSts = new STSClient({ ...stsConfig, credentials })
  try {
    const identity = await assumedSts.send(new GetCallerIdentityCommand({}), { abortSignal: abort })
    arn = identity.Arn ? { arn: identity.Arn } : {}
    if (identity.Account && identity.Account !== account.account_id) {
      const error = `The role belongs to account ${identity.Account}, not ${account.account_id}.`
      checks.push({ name: 'get_caller_identity', ok: false, error })
      return result(false, { ...arn, error })
    }
    checks.push({ name: 'get_caller_identity', ok: true })
  } catch (err) {
    const error = describe(err)
    checks.push({ name: 'get_caller_identity', ok: false, error })
    return result(false, { error: clip(`The assumed role could not call GetCallerIdentity: ${error}`) })
  } finally {
    assumedSts.destroy()
  }

  const { EventBridgeClient, DescribeRuleCommand, ListTargetsByRuleCommand, DescribeApiDestinationCommand } = await import('@aws-sdk/client-eventbridge')
  const listed = account.regions.length > 0
  const regions = listed ? account.regions : [opts.region]
  const expectedEndpoint = opts.publicBaseUrl ? ingestionUrl(opts.publicBaseUrl) : undefined
  const { ruleName, apiDestinationName } = MEMBER_WIRING

  /** The rule, its target and the API destination of one region, in that order. */
  const checkRegion = async (region: string): Promise<Check[]> => {
    const client = new EventBridgeClient({ ...baseConfig(region), credentials })
    const send = { abortSignal: abort }
    const out: Check[] = []
    try {
      // The rule and the destination are independent: read both at once.
      const [rule, destination] = await Promise.allSettled([
        client.send(new DescribeRuleCommand({ Name: ruleName }), send),
        client.send(new DescribeApiDestinationCommand({ Name: apiDestinationName }), send)
      ])
      const regionNote = listed ? {} : { note: `The account lists no regions: checked the service's region ${region}.` }

      if (rule.status === 'rejected') {
        out.push({ name: 'eventbridge_rule', region, ok: false, error: describe(rule.reason), ...regionNote })
      } else {
        const state = rule.value.State ?? 'unknown'
        const enabled = state === 'ENABLED' || state === 'ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS'
        out.push(enabled
          ? { name: 'eventbridge_rule', region, ok: true, ...regionNote }
          : { name: 'eventbridge_rule', region, ok: false, error: `The rule is ${state}, not ENABLED: no event is delivered.`, ...regionNote })

        // A target whose Arn is the destination (its ARN ends in a generated id: by name when it could not be read).
        const destinationArn = destination.status === 'fulfilled' ? destination.value.ApiDestinationArn : undefined
        const byName = new RegExp(`^arn:aws[a-z-]*:events:${region}:${account.account_id}:api-destination/${apiDestinationName}(/|$)`)
        const isDestination = (targetArn: string): boolean => destinationArn ? targetArn === destinationArn : byName.test(targetArn)
        try {
          const listedTargets = await client.send(new ListTargetsByRuleCommand({ Rule: ruleName, Limit: 100 }), send)
          const arns = (listedTargets.Targets ?? []).map(target => target.Arn ?? '?')
          out.push(arns.some(isDestination)
            ? { name: 'eventbridge_target', region, ok: true }
            : {
                name: 'eventbridge_target',
                region,
                ok: false,
                error: clip(`No target of the rule is the API destination ${destinationArn ?? apiDestinationName}; its targets: ${arns.length ? arns.join(', ') : 'none'}.`)
              })
        } catch (err) {
          out.push({ name: 'eventbridge_target', region, ok: false, error: describe(err) })
        }
      }

      if (destination.status === 'rejected') {
        out.push({ name: 'api_destination', region, ok: false, error: describe(destination.reason) })
      } else {
        const d = destination.value
        const endpoint = d.InvocationEndpoint ?? ''
        const problems: string[] = []
        if (d.ApiDestinationState !== 'ACTIVE') problems.push(`its state is ${d.ApiDestinationState ?? 'unknown'}, not ACTIVE`)
        if (d.HttpMethod !== 'POST') problems.push(`its method is ${d.HttpMethod ?? 'unknown'}, not POST`)
        if (expectedEndpoint && !sameEndpoint(endpoint, expectedEndpoint)) problems.push(`it delivers to ${endpoint || 'no endpoint'}, not to ${expectedEndpoint}`)
        out.push(problems.length > 0
          ? { name: 'api_destination', region, ok: false, error: clip(`The API destination: ${problems.join('; ')}.`) }
          : expectedEndpoint
            ? { name: 'api_destination', region, ok: true }
            : { name: 'api_destination', region, ok: true, note: clip(`Endpoint not verified (PUBLIC_BASE_URL is not set): it delivers to ${endpoint || 'no endpoint'}.`) })
      }
      return out
    } finally {
      client.destroy()
    }
  }

  for (const regionChecks of await mapLimit(regions, REGION_CONCURRENCY, checkRegion)) checks.push(...regionChecks)
  const failed = checks.find(c => !c.ok)
  if (!failed) return result(true, arn)
  return result(false, { ...arn, error: clip(`${failed.region}: ${SUBJECT[failed.name] ?? failed.name}: ${failed.error ?? 'failed'}`) })
}
