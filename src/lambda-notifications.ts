import './env.js'
import { setTimeout as sleep } from 'node:timers/promises'
import type { App } from './app.js'
import { ConfigError } from './config.js'
import { buildLambdaApp } from './lambda-app.js'
import type { DrainReport } from './modules/notifications/worker.js'

/**
 * AWS Lambda entry of the notification worker (src/modules/notifications/worker.ts), invoked
 * once a minute by an EventBridge schedule (infra/lib/notification-worker.ts). The API's
 * Lambda function runs no timers, so this one delivers: each invocation runs the worker every
 * NOTIFICATION_POLL_MS (2 s by default here) for most of its minute, then returns what it did.
 * Overlapping invocations are harmless (leases per channel, idempotent queuing); the stack
 * still allows one at a time. Handler `index.handler` of its bundle.
 */

/** What Lambda passes that this entry reads. */
export interface ScheduleContext { getRemainingTimeInMillis?: () => number }

let instance: Promise<App> | undefined

function ready (): Promise<App> {
  instance ??= buildLambdaApp({ NOTIFICATION_POLL_MS: '0' }).then(async (app) => { await app.ready(); return app }).catch((err: unknown) => {
    instance = undefined
    throw err
  })
  return instance
}

if (process.env.AWS_LAMBDA_FUNCTION_NAME) ready().catch((err: unknown) => console.error(err instanceof ConfigError ? err.message : err))

/** How long one invocation keeps delivering: its minute, less a margin for the last run. */
const RUN_MS = 50_000

export const handler = async (_event: unknown, context: ScheduleContext = {}): Promise<DrainReport & { runs: number }> => {
  const app = await ready()
  const pollMs = Number(process.env.NOTIFICATION_POLL_MS || 2000) || 2000
  const remaining = context.getRemainingTimeInMillis?.() ?? RUN_MS
  // Stop starting runs early enough for the last one to end (a few sends at the time-out).
  const end = Date.now() + Math.min(RUN_MS, remaining - 3 * app.notifierTimeoutMs - 2000)
  const total: DrainReport & { runs: number } = { queued: 0, marksCleared: 0, sent: 0, delivered: 0, failed: 0, dead: 0, runs: 0 }
  do {
    const report = await app.notifier.drain()
    total.runs++
    for (const k of Object.keys(report) as Array<keyof DrainReport>) total[k] += report[k]
    if (Date.now() + pollMs >= end) break
    await sleep(pollMs)
  } while (Date.now() < end)
  app.log.info({ notifications: total }, 'notification worker: invocation done')
  return total
}

/** Closes the app of this container (tests). */
export async function close (): Promise<void> {
  const current = instance
  instance = undefined
  if (current) await (await current).close()
}
