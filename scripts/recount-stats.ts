/**
 * Rebuilds the dashboard counters from the tables (repair after a crash between an item
 * write and its counter update, or after restoring a backup):
 *   npm run recount-stats
 * Uses the same configuration as the server; with the embedded database stop it first.
 */
import { recountStats } from '../src/modules/dashboard/recount.js'
import { withApp } from './lib/with-app.js'

await withApp(async (app) => {
  const started = Date.now()
  const counters = await recountStats(app.repos)
  console.log(`Recounted ${Object.keys(counters).length} counter items in ${Date.now() - started} ms:`)
  for (const pk of ['events', 'tasks', 'users']) console.log(`  ${pk}: ${JSON.stringify(counters[pk] ?? {})}`)
})
