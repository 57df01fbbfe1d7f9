import { once } from 'node:events'
import { mkdir } from 'node:fs/promises'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { threadCpuMicros } from './lib/thread-cpu.js'

/**
 * dynalite 4.0.0 ends LevelDB iterators with `iterator.return()`, which abstract-level 3
 * iterators do not have (they have `close()`): every Query and Scan left its iterator and a
 * LevelDB snapshot open, ~13 KB of heap each (measured by `npm run bench`: heap 86 → 107 MB
 * over three load runs before, 41 → 42 MB after). Give the iterators the method dynalite calls.
 */
const fromLevel = createRequire(createRequire(import.meta.url).resolve('classic-level'))
const level = fromLevel('abstract-level') as Record<string, { prototype: { return?: () => unknown, close: () => unknown } } | undefined>
const ITERATORS = ['AbstractIterator', 'AbstractKeyIterator', 'AbstractValueIterator']
for (const name of ITERATORS) {
  const proto = level[name]?.prototype
  if (proto && !proto.return) proto.return = function (this: { close: () => unknown }) { return this.close() }
}
/** Whether this thread's iterators can be ended the way dynalite ends them (checked where dynalite runs). */
const iteratorsPatched = (): boolean => ITERATORS.every(name => typeof level[name]?.prototype.return === 'function')

/**
 * The embedded DynamoDB stand-in (dynalite): in-process, on loopback, on a random port, in a
 * worker thread of its own, so its work (request parsing, LevelDB calls that wait on LevelDB's
 * own locks) runs beside the API's event loop instead of inside it.
 * With `path` the data lives on disk (LevelDB) and survives restarts; without it, in memory.
 * Only one process may open a data directory at a time.
 */
export interface EmbeddedDynamo {
  endpoint: string
  close: () => Promise<void>
  /** The stand-in thread's V8 heap in use, after a GC when the process runs with --expose-gc (benchmarks). */
  heapUsed: () => Promise<number>
  /** The stand-in thread's own CPU time so far, in µs (benchmarks; undefined without Linux's procfs). */
  cpuMicros: () => Promise<number | undefined>
}

interface WorkerInput { embeddedDynamo: true, path?: string }

async function listen (path: string | undefined): Promise<Pick<EmbeddedDynamo, 'endpoint' | 'close'>> {
  if (path) await mkdir(path, { recursive: true })
  // Loaded here, in the stand-in's thread only.
  const { default: dynalite } = await import('dynalite')
  const server = dynalite({ path, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve, reject) => server.close(err => (err ? reject(err) : resolve())))
  }
}

export async function startEmbeddedDynamo (options: { path?: string } = {}): Promise<EmbeddedDynamo> {
  const workerData: WorkerInput = { embeddedDynamo: true, path: options.path }
  // From the TypeScript sources (tests, scripts run with tsx) the worker loads this file through tsx.
  const worker = import.meta.url.endsWith('.ts')
    ? new Worker(`import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}) })`, { eval: true, workerData })
    : new Worker(new URL(import.meta.url), { workerData })
  const exited = new Promise<{ exited: number }>(resolve => worker.once('exit', code => resolve({ exited: code })))
  const [message] = await Promise.race([once(worker, 'message'), exited.then(e => [{ error: `the worker exited (code ${e.exited})` }])]) as
    [{ endpoint?: string, iteratorsPatched?: boolean, error?: string }]
  if (!message.endpoint) {
    await worker.terminate()
    throw new Error(`the embedded DynamoDB did not start: ${message.error}`)
  }
  if (!message.iteratorsPatched) {
    await worker.terminate()
    throw new Error('the embedded DynamoDB would leak an iterator per query (abstract-level iterators lack return())')
  }
  // A stand-in that fails after the start takes the process down: the data is gone with it.
  const crash = (err: Error): never => { throw err }
  worker.once('error', crash)
  // One question at a time (the callers ask in sequence); a worker that is gone answers nothing.
  const ask = async (type: 'close' | 'memory' | 'cpu'): Promise<{ heapUsed?: number, cpuMicros?: number, error?: string }> => {
    worker.postMessage(type)
    return Promise.race([once(worker, 'message').then(([answer]) => answer as { heapUsed?: number, cpuMicros?: number, error?: string }), exited.then(() => ({}))])
  }
  let closing: Promise<void> | undefined
  return {
    endpoint: message.endpoint,
    close: () => (closing ??= (async () => {
      worker.off('error', crash)
      const answer = await ask('close')
      await worker.terminate()
      if (answer.error) throw new Error(`closing the embedded DynamoDB: ${answer.error}`)
    })()),
    heapUsed: async () => (await ask('memory')).heapUsed ?? 0,
    cpuMicros: async () => (await ask('cpu')).cpuMicros
  }
}

// In the worker: start the stand-in, report its endpoint, close it when asked.
if (!isMainThread && (workerData as WorkerInput | undefined)?.embeddedDynamo && parentPort) {
  const port = parentPort
  try {
    const db = await listen((workerData as WorkerInput).path)
    port.on('message', (type: 'close' | 'memory' | 'cpu') => {
      if (type === 'cpu') {
        port.postMessage({ cpuMicros: threadCpuMicros() })
        return
      }
      if (type === 'close') {
        db.close().then(() => ({ closed: true }), (err: unknown) => ({ error: String(err) })).then(answer => port.postMessage(answer))
        return
      }
      const gc = (globalThis as { gc?: () => void }).gc
      gc?.()
      gc?.()
      port.postMessage({ heapUsed: process.memoryUsage().heapUsed })
    })
    port.postMessage({ endpoint: db.endpoint, iteratorsPatched: iteratorsPatched() })
  } catch (err) {
    port.postMessage({ error: err instanceof Error ? err.stack ?? err.message : String(err) })
  }
}
