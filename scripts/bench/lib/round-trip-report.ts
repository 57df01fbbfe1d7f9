/**
 * The round-trip table of the bench (`roundtrips` phase): per operation of the spec, the
 * sequential DynamoDB round trips on its hot path and its p50 when every call costs a fixed
 * delay, against the targets of issue 21.
 */
import { routes } from '../../../openapi/generated/routes.js'
import { median } from './load.js'
import type { RoundTripStats } from './round-trips.js'

export interface RoundTripRow {
  operation: string
  method: string
  path: string
  samples: number
  /** Median and maximum over the samples; NaN when the operation was not exercised. */
  sequential: number
  sequentialMax: number
  calls: number
  p50Ms: number
  /** At most this many sequential round trips (undefined: no target). */
  target: number | undefined
  pass: boolean | null
}

/**
 * The targets: reads (every GET: get, list, dashboard) 1 sequential round trip with the caller
 * cached; task create, update and status change at most 2; one new ingested event at most 2;
 * login at most 3 (plus the hash, which is no round trip).
 */
export function targetOf (operation: string, method: string): number | undefined {
  if (operation === 'login') return 3
  if (['createTask', 'updateTask', 'updateTaskStatus', 'ingestEvents'].includes(operation)) return 2
  if (method === 'GET') return 1
  return undefined
}

export function roundTripRows (stats: RoundTripStats): RoundTripRow[] {
  return Object.entries(routes).map(([operation, route]) => {
    const s = stats[operation]
    const sequential = s ? median(s.sequential) : Number.NaN
    const target = targetOf(operation, route.method)
    return {
      operation,
      method: route.method,
      path: route.url,
      samples: s?.sequential.length ?? 0,
      sequential,
      sequentialMax: s ? Math.max(...s.sequential) : Number.NaN,
      calls: s ? median(s.calls) : Number.NaN,
      p50Ms: s ? median(s.ms) : Number.NaN,
      target,
      pass: target === undefined || !s ? null : sequential <= target
    }
  })
}

export function roundTripTable (rows: RoundTripRow[], delayMs: number): string {
  // NaN (not exercised) comes back as null from a saved results.json (BENCH_RENDER).
  const absent = (v: number | null): v is null => v === null || Number.isNaN(v)
  const n = (v: number | null): string => (absent(v) ? '—' : String(Math.round(v * 10) / 10))
  const verdict = (r: RoundTripRow): string => (r.samples === 0 ? 'not exercised' : r.pass === null ? '—' : r.pass ? 'PASS' : 'FAIL')
  return [
    `| operation | method and path | samples | sequential round trips (median / max) | calls (median) | p50 with ${delayMs} ms per call | target | result |`,
    '| --- | --- | ---: | ---: | ---: | ---: | --- | --- |',
    ...rows.map(r => `| \`${r.operation}\` | ${r.method} \`${r.path}\` | ${r.samples} | ${n(r.sequential)} / ${n(r.sequentialMax)} | ${n(r.calls)} | ${absent(r.p50Ms) ? '—' : `${r.p50Ms.toFixed(1)} ms`} | ${r.target === undefined ? '—' : `≤ ${r.target}`} | ${verdict(r)} |`)
  ].join('\n')
}
