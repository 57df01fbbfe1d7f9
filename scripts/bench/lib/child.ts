import { fork, spawn, type ChildProcess } from 'node:child_process'
import { openSync, closeSync } from 'node:fs'
import { createServer } from 'node:net'
import type { ChildMemory, ChildReady } from '../server-child.js'
import type { CpuSample } from './load.js'
import type { RoundTripStats } from './round-trips.js'

/** A free port on loopback (the kernel's pick). */
export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** The environment of every server the bench starts: loopback, quiet logs, no rate limits in the way. */
export function serverEnv (dataDir: string, port: number, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  // Nothing of the caller's deployment settings leaks into the measurement.
  for (const key of Object.keys(env)) {
    if (/^(DYNAMODB_ENDPOINT|REDIS_URL|JWT_SECRET|TABLE_PREFIX|CORS_ORIGINS|TRUST_PROXY|NODE_ENV|ARGON2_|LOCKOUT_|RATE_LIMIT_|AUTH_RATE_LIMIT_|INGEST_)/.test(key)) delete env[key]
  }
  return {
    ...env,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    AWS_EC2_METADATA_DISABLED: 'true',
    HOST: '127.0.0.1',
    PORT: String(port),
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    RATE_LIMIT_MAX: '100000000',
    AUTH_RATE_LIMIT_MAX: '100000000',
    INGEST_RATE_LIMIT_MAX: '100000000',
    LOCKOUT_THRESHOLD: '100',
    ...extra
  }
}

export interface ServerChild {
  process: ChildProcess
  ready: ChildReady
  url: string
  bareUrl: string
  memory: () => Promise<ChildMemory>
  /** CPU time the process has used so far (all its threads, and the main and stand-in threads' own), in microseconds. */
  cpu: () => Promise<CpuSample>
  /** BENCH_DB_DELAY_MS children: the round trips counted since the last call (then reset). */
  roundTrips: () => Promise<RoundTripStats>
  profileStart: () => Promise<void>
  profileStop: (file: string) => Promise<void>
  stop: () => Promise<void>
}

/** Starts scripts/bench/server-child.js (compiled) and waits for its `ready` message. */
export async function startServerChild (script: string, env: NodeJS.ProcessEnv, logFile: string, execArgv: string[] = []): Promise<ServerChild> {
  const log = openSync(logFile, 'a')
  const child = fork(script, [], { env, execArgv: ['--expose-gc', ...execArgv], stdio: ['ignore', log, log, 'ipc'] })
  closeSync(log)
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  const ready = await new Promise<ChildReady>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server child did not start within 120 s (see ${logFile})`)), 120_000)
    child.on('message', (m: { type?: string }) => {
      if (m.type === 'ready') {
        clearTimeout(timer)
        resolve(m as ChildReady)
      }
    })
    child.once('exit', code => {
      clearTimeout(timer)
      reject(new Error(`server child exited with ${code} before it was ready (see ${logFile})`))
    })
  })
  /** Sends a command; the child answers with a message of the same type. */
  const ask = <T>(type: string, extra: Record<string, unknown> = {}): Promise<T> => new Promise((resolve) => {
    const onMessage = (m: { type?: string }): void => {
      if (m.type !== type) return
      child.off('message', onMessage)
      resolve(m as T)
    }
    child.on('message', onMessage)
    child.send({ type, ...extra })
  })
  const memory = (): Promise<ChildMemory> => ask<ChildMemory>('memory')
  const cpu = (): Promise<CpuSample> => ask<CpuSample>('cpu')
  const roundTrips = async (): Promise<RoundTripStats> => (await ask<{ stats: RoundTripStats }>('roundtrips')).stats
  const profileStart = async (): Promise<void> => { await ask('profile-start') }
  const profileStop = async (file: string): Promise<void> => { await ask('profile-stop', { file }) }
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null) return
    child.send({ type: 'close' })
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    await exited
    clearTimeout(timer)
  }
  return { process: child, ready, url: `http://127.0.0.1:${ready.port}`, bareUrl: `http://127.0.0.1:${ready.barePort}`, memory, cpu, roundTrips, profileStart, profileStop, stop }
}

/**
 * Spawns `node <script>` and measures from just before the spawn to the first 200 of
 * `healthPath`, polling every 5 ms; then stops the process. Returns milliseconds.
 */
export async function timeToFirst200 (script: string, env: NodeJS.ProcessEnv, port: number, healthPath: string, logFile: string, execArgv: string[] = []): Promise<number> {
  const log = openSync(logFile, 'a')
  const started = performance.now()
  const child = spawn(process.execPath, [...execArgv, script], { env, stdio: ['ignore', log, log] })
  closeSync(log)
  let dead = false
  const exited = new Promise<void>(resolve => child.once('exit', () => {
    dead = true
    resolve()
  }))
  try {
    for (;;) {
      if (dead) throw new Error(`${script} exited before answering (see ${logFile})`)
      if (performance.now() - started > 60_000) throw new Error(`${script} did not answer within 60 s (see ${logFile})`)
      const ok = await fetch(`http://127.0.0.1:${port}${healthPath}`).then(r => r.status === 200, () => false)
      if (ok) return performance.now() - started
      await sleep(5)
    }
  } finally {
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    await exited
    clearTimeout(timer)
  }
}
