import type { FastifyInstance } from 'fastify'
import type { SweepOptions, SweepResult } from './expiry.service.js'

export interface RetentionSweeperOptions {
  /** Seconds between runs; 0 turns the sweeper off. */
  intervalSeconds: number
  /** One run of the sweep (expiry.service.ts `sweep`). */
  sweep: (opts: SweepOptions) => Promise<SweepResult>
}

/**
 * Runs the retention sweep every `intervalSeconds` (RETENTION_SWEEP_INTERVAL_SECONDS; on by
 * default only on the embedded stand-in, which has no TTL). It never delays start-up or a
 * request: the first run is one interval after the app is ready, the timer does not keep the
 * process alive, a run never overlaps the previous one, and closing the app stops the run in
 * progress (between two items) and waits for it.
 */
export default async function retentionSweeper (app: FastifyInstance, opts: RetentionSweeperOptions): Promise<void> {
  if (!opts.intervalSeconds) return
  const controller = new AbortController()
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> | undefined

  const run = (): void => {
    if (running || controller.signal.aborted) return
    const started = Date.now()
    running = opts.sweep({ signal: controller.signal }).then(
      result => {
        if (result.expired) app.log.info({ ...result, ms: Date.now() - started }, 'retention sweep: expired events deleted and taken off the dashboard counters')
      },
      (err: unknown) => { app.log.error({ err }, 'retention sweep failed; the next run tries again') }
    ).finally(() => { running = undefined })
  }

  app.addHook('onReady', async () => {
    timer = setInterval(run, opts.intervalSeconds * 1000)
    timer.unref()
  })
  app.addHook('onClose', async () => {
    clearInterval(timer)
    controller.abort()
    await running
  })
}
