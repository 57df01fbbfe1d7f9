/**
 * What both generated-client scenarios share: the service address and admin credentials (from
 * the environment set by scripts/test-clients.sh), a unique AWS account number per run, and an
 * EventBridge envelope as AWS sends it for a CloudWatch alarm.
 */
import { randomUUID } from 'node:crypto'

export const baseUrl = process.env.API_BASE_URL ?? 'http://127.0.0.1:3000'
export const adminEmail = process.env.ADMIN_EMAIL ?? 'admin@example.com'
export const adminPassword = process.env.ADMIN_PASSWORD ?? ''

/** A 12-digit AWS account number that no other run uses. */
export const accountNumber = (): string => String(100000000000 + Math.floor(Math.random() * 899999999999))

export function alarmEnvelope (account: string): Record<string, unknown> {
  const now = new Date().toISOString()
  const name = `partner-check-${randomUUID().slice(0, 8)}`
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'CloudWatch Alarm State Change',
    source: 'aws.cloudwatch',
    account,
    time: now,
    region: 'eu-west-1',
    resources: [`arn:aws:cloudwatch:eu-west-1:${account}:alarm:${name}`],
    detail: {
      alarmName: name,
      state: { value: 'ALARM', reason: 'Threshold Crossed', timestamp: now },
      previousState: { value: 'OK', reason: 'Threshold Crossed', timestamp: now },
      configuration: { description: 'CPU above 80%' }
    }
  }
}

export function check (condition: unknown, what: string): asserts condition {
  if (!condition) throw new Error(`scenario failed: ${what}`)
  console.log(`ok - ${what}`)
}
