import type { FastifyInstance } from 'fastify'
import type { DrainReport } from './worker.js'

export interface NotificationPollerOptions {
  /** Milliseconds between runs (NOTIFICATION_POLL_MS); 0 turns the poller off. */
  intervalMs: number
  /** One run of the worker (worker.ts `drain`). */
  drain: () => Promise<DrainReport>
}

/**
 * Runs the notification worker in the server process every `intervalMs` (on by default; the
 * Lambda deployment turns it off and runs the worker on a schedule: src/lambda-notifications.ts).
 * Never delays start-up or a request: the first run is one interval after the app is ready,
 * the timer does not keep the process alive, runs never overlap, and closing the app waits for
 * the run in progress. Several processes may poll at once: the worker is safe under that.
 */
export default async function notificationPoller (app: FastifyInstance, opts: NotificationPollerOptions): Promise<void> {
  if (!opts.intervalMs) return
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> | undefined
  let closing = false

  const run = (): void => {
    if (running || closing) return
    running = opts.drain().then(
      report => { if (report.sent || report.dead) app.log.info({ notifications: report }, 'notifications delivered') },
      (err: unknown) => { app.log.error({ err }, 'notification worker run failed; the next run tries again') }
    ).finally(() => { running = undefined })
  }

  app.addHook('onReady', async () => {
    timer = setInterval(run, opts.intervalMs)
    timer.unref()
  })
  app.addHook('onClose', async () => {
    closing = true
    clearInterval(timer)
    await running
  })
}
