/**
 * Deletes the events past their retention and takes them off the dashboard counters, once, now:
 *   npm run sweep-retention
 * What the server's retention sweep does every RETENTION_SWEEP_INTERVAL_SECONDS on the embedded
 * stand-in (which has no TTL). On real DynamoDB, TTL and the stream consumer do it; a sweep there
 * is harmless (the same claims) but scans the events table. With the embedded database stop the
 * server first (one process per data directory).
 */
import { createExpiryService } from '../src/modules/events/expiry.service.js'
import { withApp } from './lib/with-app.js'

await withApp(async (app) => {
  const started = Date.now()
  const expiry = createExpiryService({ events: app.repos.events, counters: app.repos.stats, log: app.log })
  const result = await expiry.sweep()
  console.log(`Swept in ${Date.now() - started} ms: ${result.expired} expired, ${result.deleted} deleted, ${result.kept} kept (changed meanwhile), ${result.failed} not counted out${result.failed ? ' (run npm run recount-stats)' : ''}`)
})
