import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { specPath } from './spec-path.js'

/**
 * docs/api-specification.yaml as a parsed document, through a cache: parsing the YAML takes
 * ~350 ms, a third of the server's start-up, and the file only changes with a new checkout.
 * The parse is stored as JSON with the sha256 of the YAML it came from, in dist/ (beside the
 * compiled code) or, when dist/ is absent or not writable (a read-only container, Lambda),
 * the OS temp directory. A start whose YAML has the same hash reads the JSON instead (~10 ms);
 * any other (edited spec, no cache, unreadable or corrupt cache) parses the YAML and rewrites
 * the cache if it can. The cache never makes a start fail, and never serves another content:
 * a parse JSON cannot represent exactly is not cached.
 */

/** Bump when the stored format or what a parse yields changes (e.g. another YAML parser). */
const FORMAT = 1
const FILE = 'api-specification.cache.json'

interface CacheEntry { format: number, sha256: string, document: Record<string, unknown> }

/** Where the cache may live, in order: dist/ of this checkout (when it exists), then the OS temp directory. */
export function specCacheDirs (file = specPath): string[] {
  const dirs: string[] = []
  const dist = path.resolve(path.dirname(file), '..', 'dist')
  try {
    if (statSync(dist).isDirectory()) dirs.push(dist)
  } catch {}
  dirs.push(path.join(tmpdir(), 'cloud-monitoring-api'))
  return dirs
}

function readCache (dir: string, sha256: string): Record<string, unknown> | undefined {
  try {
    const entry = JSON.parse(readFileSync(path.join(dir, FILE), 'utf8')) as Partial<CacheEntry>
    if (entry.format === FORMAT && entry.sha256 === sha256 && typeof entry.document === 'object' && entry.document !== null) return entry.document
  } catch {}
  return undefined
}

/** Writes the entry atomically (a concurrent start reads the old file or the new, never half); false when the directory refuses it. */
function writeCache (dir: string, entry: CacheEntry, json: string): boolean {
  const tmp = path.join(dir, `${FILE}.${process.pid}.${Date.now()}.tmp`)
  try {
    mkdirSync(dir, { recursive: true })
    writeFileSync(tmp, json)
    renameSync(tmp, path.join(dir, FILE))
    return true
  } catch {
    try {
      rmSync(tmp, { force: true })
    } catch {}
    return false
  }
}

/** The parsed specification (`file`, docs/api-specification.yaml by default), from the cache when its hash matches. */
export async function loadSpecDocument (file = specPath, dirs = specCacheDirs(file)): Promise<Record<string, unknown>> {
  let source: string
  try {
    source = readFileSync(file, 'utf8')
  } catch (err) {
    throw new Error(`${file} could not be read: ${(err as Error).message}`)
  }
  const sha256 = createHash('sha256').update(source).digest('hex')
  for (const dir of dirs) {
    const cached = readCache(dir, sha256)
    if (cached) return cached
  }
  // Loaded only on a cache miss: the parser's own load is ~60 ms.
  const { parse } = await import('yaml')
  const document = parse(source) as Record<string, unknown>
  const entry: CacheEntry = { format: FORMAT, sha256, document }
  const json = JSON.stringify(entry)
  // Only a document JSON carries unchanged (no dates, undefined, non-finite numbers) is cached.
  if (isDeepStrictEqual((JSON.parse(json) as CacheEntry).document, document)) {
    for (const dir of dirs) if (writeCache(dir, entry, json)) break
  }
  return document
}
