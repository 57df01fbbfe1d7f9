import { readFileSync } from 'node:fs'

/** Linux clock ticks per second (`getconf CLK_TCK`: 100 on every Linux Node supports). */
const TICKS_PER_SECOND = 100

/**
 * One thread's own CPU time (user + system) in µs, from Linux's per-thread counters (10 ms
 * ticks; Node 20 has no `process.threadCpuUsage`): by default the calling thread's
 * (`/proc/thread-self`), or the thread whose `stat` file is given. Undefined where there is
 * no procfs. For benchmarks: it tells which thread (API, stand-in, hashing) a cost lands on.
 */
export function threadCpuMicros (stat = '/proc/thread-self/stat'): number | undefined {
  try {
    const text = readFileSync(stat, 'utf8')
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
    // Fields 14 and 15 of proc(5) (utime, stime); fields[0] is field 3 (state).
    const ticks = Number(fields[11]) + Number(fields[12])
    return Number.isFinite(ticks) ? ticks * (1e6 / TICKS_PER_SECOND) : undefined
  } catch {
    return undefined
  }
}
