import { NodeHttpHandler } from '@smithy/node-http-handler'
import type { AwsAccount, ConnectionTestResult } from '../../domain/aws-accounts.js'

export interface ConnectionTestOptions {
  region: string
  /** An STS endpoint other than AWS's (tests, VPC endpoints). */
  endpoint?: string
  /** Upper bound for the whole test. */
  timeoutMs?: number
}

type Check = ConnectionTestResult['checks'][number]

const describe = (err: unknown): string => {
  const e = err as { name?: string, message?: string, Code?: string }
  const text = `${e.name ?? e.Code ?? 'Error'}: ${e.message ?? String(err)}`
  return text.slice(0, 2000)
}

/**
 * Proves the service can reach the account: `sts:AssumeRole` on the account's role (with its
 * external id), then `sts:GetCallerIdentity` with the assumed credentials. Every AWS-side
 * failure (no network, access denied, bad ARN, time-out) is reported as `ok: false`.
 */
export async function testConnection (account: Pick<AwsAccount, 'role_arn' | 'external_id' | 'account_id'>, opts: ConnectionTestOptions): Promise<ConnectionTestResult> {
  // Loaded on first use: most processes never test a connection, and start-up stays short.
  const { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } = await import('@aws-sdk/client-sts')
  const timeoutMs = opts.timeoutMs ?? 5000
  const abort = AbortSignal.timeout(timeoutMs)
  const clientConfig = {
    region: opts.region,
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler({ connectionTimeout: Math.min(2000, timeoutMs), requestTimeout: timeoutMs }),
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {})
  }
  const checks: Check[] = []
  const result = (ok: boolean, extra: { arn?: string, error?: string }): ConnectionTestResult => ({
    ok, ...extra, checked_at: new Date().toISOString(), checks
  })

  let credentials
  const sts = new STSClient(clientConfig)
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
    return result(false, { error: `Could not assume ${account.role_arn}: ${error}`.slice(0, 2000) })
  } finally {
    sts.destroy()
  }

  const assumedSts = new STSClient({ ...clientConfig, credentials })
  try {
    const identity = await assumedSts.send(new GetCallerIdentityCommand({}), { abortSignal: abort })
    if (identity.Account && identity.Account !== account.account_id) {
      const error = `The role belongs to account ${identity.Account}, not ${account.account_id}.`
      checks.push({ name: 'get_caller_identity', ok: false, error })
      return result(false, { ...(identity.Arn ? { arn: identity.Arn } : {}), error })
    }
    checks.push({ name: 'get_caller_identity', ok: true })
    return result(true, identity.Arn ? { arn: identity.Arn } : {})
  } catch (err) {
    const error = describe(err)
    checks.push({ name: 'get_caller_identity', ok: false, error })
    return result(false, { error: `The assumed role could not call GetCallerIdentity: ${error}`.slice(0, 2000) })
  } finally {
    assumedSts.destroy()
  }
}
