import autocannon, { type Request } from 'autocannon'

export interface LoadOptions {
  url: string
  /** One request, or a list each connection cycles through. */
  requests: Request[]
  connections: number
  seconds: number
  /** A fixed number of requests instead of a duration. */
  amount?: number
  /** Requests per second over all connections (open loop); default: as fast as answered. */
  overallRate?: number
  /** Seconds before a request counts as timed out. */
  timeout?: number
  /** The server's CPU counters: measured around the run, reported per request. */
  cpu?: () => Promise<CpuSample>
}

/** A server's CPU time so far, in µs: all threads, and the main and stand-in threads' own (Linux only). */
export interface CpuSample { micros: number, main?: number | undefined, standIn?: number | undefined }

export interface LoadResult {
  /** 2xx responses per second of the run. */
  rps: number
  ok: number
  failed: number
  errors: number
  statusCodes: Record<string, number>
  /** Latencies of the 2xx responses, in ms (exact, not autocannon's 1 ms buckets). */
  p50: number
  p90: number
  p99: number
  mean: number
  seconds: number
  /** Server CPU time per answered request (µs), when `cpu` was given: robust to a busy machine. */
  cpuPerRequest: number
  /** The same split by thread (µs per request; 10 ms ticks), where the platform tells: the API's main thread, the stand-in's, and the rest (argon2 on libuv's pool, V8's helpers). */
  cpuByThread?: { main: number, standIn: number, other: number }
}

export function percentile (sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]!
}

export const median = (values: number[]): number => percentile(Float64Array.from(values).sort(), 50)

/**
 * One autocannon run against the server on loopback. autocannon records latencies in whole
 * milliseconds; the per-response times it emits are exact, so percentiles come from those.
 */
export async function run (opts: LoadOptions): Promise<LoadResult> {
  const times: number[] = []
  const statusCodes: Record<string, number> = {}
  const cpuBefore = opts.cpu ? await opts.cpu() : undefined
  const started = performance.now()
  const instance = autocannon({
    url: opts.url,
    connections: opts.connections,
    ...(opts.amount ? { amount: opts.amount } : { duration: opts.seconds }),
    timeout: opts.timeout ?? 30,
    requests: opts.requests,
    ...(opts.overallRate ? { overallRate: opts.overallRate } : {})
  })
  let lastResponse = started
  instance.on('response', (_client: unknown, status: number, _bytes: number, responseTime: number) => {
    lastResponse = performance.now()
    statusCodes[status] = (statusCodes[status] ?? 0) + 1
    if (status >= 200 && status < 300) times.push(responseTime)
  })
  const result = await instance
  // With `amount`, autocannon notices the end on its next 1 s tick: time to the last response instead.
  const seconds = ((opts.amount ? lastResponse : performance.now()) - started) / 1000
  const cpuAfter = opts.cpu ? await opts.cpu() : undefined
  const cpuUsed = cpuAfter && cpuBefore ? cpuAfter.micros - cpuBefore.micros : Number.NaN
  const sorted = Float64Array.from(times).sort()
  const ok = sorted.length
  const failed = Object.entries(statusCodes).filter(([s]) => !s.startsWith('2')).reduce((n, [, c]) => n + c, 0)
  return {
    rps: ok / seconds,
    ok,
    failed,
    errors: result.errors + result.timeouts,
    statusCodes,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    mean: ok ? times.reduce((a, b) => a + b, 0) / ok : Number.NaN,
    seconds,
    cpuPerRequest: cpuUsed / (ok + failed),
    ...byThread(cpuBefore, cpuAfter, ok + failed)
  }
}

/** The per-request CPU of the main and stand-in threads, and of the rest, when both samples have them. */
function byThread (before: CpuSample | undefined, after: CpuSample | undefined, n: number): Pick<LoadResult, 'cpuByThread'> {
  if (before?.main === undefined || before.standIn === undefined || after?.main === undefined || after.standIn === undefined) return {}
  const main = (after.main - before.main) / n
  const standIn = (after.standIn - before.standIn) / n
  return { cpuByThread: { main, standIn, other: (after.micros - before.micros) / n - main - standIn } }
}

/** A short unmeasured run first (JIT, caches, connections), then the measured one. */
export async function warmRun (opts: LoadOptions, warmSeconds = 1): Promise<LoadResult> {
  await run({ ...opts, seconds: warmSeconds })
  return run(opts)
}
