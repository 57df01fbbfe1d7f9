/**
 * Runs the notification worker (src/modules/notifications/worker.ts) in its own process:
 *   npm run notify            # every NOTIFICATION_POLL_MS (1 s by default) until SIGTERM/SIGINT
 *   npm run notify -- --once  # one run, then exit (cron, a manual flush)
 * The server runs the same worker in its process unless NOTIFICATION_POLL_MS=0; several workers
 * at once are safe (leases per channel, idempotent queuing). With the embedded database stop the
 * server first (one process per data directory), or point both at one DYNAMODB_ENDPOINT.
 */
import { setTimeout as sleep } from 'node:timers/promises'

const once = process.argv.includes('--once')
const intervalMs = Number(process.env.NOTIFICATION_POLL_MS || 1000) || 1000
// This process is the worker: the app it builds must not poll as well.
process.env.NOTIFICATION_POLL_MS = '0'
const { withApp } = await import('./lib/with-app.js')

const stop = new AbortController()
process.on('SIGTERM', () => { stop.abort() })
process.on('SIGINT', () => { stop.abort() })

await withApp(async (app) => {
  while (!stop.signal.aborted) {
    const report = await app.notifier.drain()
    if (report.queued || report.sent || report.marksCleared) console.log(JSON.stringify({ at: new Date().toISOString(), ...report }))
    if (once) break
    await sleep(intervalMs, undefined, { signal: stop.signal }).catch(() => undefined)
  }
})
