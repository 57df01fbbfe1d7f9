import { mkdir } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import dynalite from 'dynalite'

/**
 * The embedded DynamoDB stand-in (dynalite): in-process, on loopback, on a random port.
 * With `path` the data lives on disk (LevelDB) and survives restarts; without it, in memory.
 * Only one process may open a data directory at a time.
 */
export interface EmbeddedDynamo {
  endpoint: string
  close: () => Promise<void>
}

export async function startEmbeddedDynamo (options: { path?: string } = {}): Promise<EmbeddedDynamo> {
  if (options.path) await mkdir(options.path, { recursive: true })
  const server = dynalite({ path: options.path, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })
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
