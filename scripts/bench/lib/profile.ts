import { readFile } from 'node:fs/promises'

/** The parts of a V8 .cpuprofile (node --cpu-prof) the summary reads. */
interface CpuProfile {
  nodes: Array<{ id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }>
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

export interface ProfileSummary {
  totalMs: number
  /** Share of busy (non-idle) time per area: our code, each package, Node internals, GC. */
  areas: Array<{ area: string, ms: number, share: number }>
  /** The same, in coarse groups: database client, stand-in, Fastify, Node, our code, GC. */
  groups: Array<{ group: string, ms: number, share: number }>
  /** Functions by self time. */
  top: Array<{ frame: string, area: string, ms: number, share: number }>
  /** Time inside (inclusive) a few functions of interest, by name. */
  inclusive: Array<{ name: string, ms: number, share: number }>
}

/** Where a frame's code lives: `src`, `scripts`, an npm package, `node:*`, or a V8 pseudo-frame. */
export function areaOf (url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg) return pkg[1]!
  if (url.startsWith('node:')) return 'node internals'
  const own = /\/(?:dist\/)?(src|scripts|openapi)\//.exec(url)
  if (own) return own[1] === 'openapi' ? 'src' : own[1]!
  return 'other'
}

const GROUPS: Array<[string, RegExp]> = [
  ['Dynamoose', /^(dynamoose|dynamoose-utils|js-object-utilities)$/],
  ['AWS SDK', /^(@aws-sdk|@smithy|@aws-crypto|fast-xml-parser|bowser|tslib|uuid)\b/],
  ['stand-in (dynalite, LevelDB)', /^(dynalite|classic-level|abstract-level|memory-level|level|level-.*|lazy|async|big\.js|lock|once|module-error|maybe-combine-errors|napi-macros|node-gyp-build|buffer-crc32|crc-32)$/],
  ['Fastify and plugins', /^(fastify|@fastify\/.*|find-my-way|fast-json-stringify|ajv|ajv-formats|fast-uri|avvio|light-my-request|fast-jwt|asn1\.js|pino|pino-std-serializers|sonic-boom|thread-stream|fast-redact|process-warning|abstract-logging|safe-regex2|ret|toad-cache|fast-querystring|fastify-plugin|rfdc|secure-json-parse|json-schema-ref-resolver|@lukeed\/ms|mnemonist|obliterator|fast-decode-uri-component|typebox)$/],
  ['our code', /^(src|scripts)$/],
  ['Node internals (HTTP, streams, modules)', /^node internals$/],
  ['garbage collector', /^\(garbage collector\)$/]
]

const groupOf = (area: string): string => GROUPS.find(([, re]) => re.test(area))?.[0] ?? 'other'

const shortUrl = (url: string): string => url.replace(/^file:\/\//, '').replace(/^.*node_modules\//, '').replace(/^.*\/(dist\/)?(src|scripts|openapi)\//, '$2/')

/**
 * Self time per function from the samples, grouped by area; inclusive time of the functions
 * named in `inclusiveOf` (counted once per sample however deep the recursion).
 */
export async function summarizeProfile (file: string, inclusiveOf: string[] = [], topN = 12): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  // The bench's own IPC handler (it stops the profiler and serializes the profile) is not the server's work.
  const benchOwned = new Set<number>()
  const mark = (id: number, owned: boolean): void => {
    const node = byId.get(id)!
    const own = owned || /scripts\/bench\//.test(node.callFrame.url)
    if (own) benchOwned.add(id)
    for (const c of node.children ?? []) mark(c, own)
  }
  mark(profile.nodes[0]!.id, false)
  const self = new Map<number, number>()
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!
    if (benchOwned.has(id)) continue
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000)
  }
  const frames = new Map<string, { area: string, ms: number }>()
  const areas = new Map<string, number>()
  const inclusive = new Map<string, number>(inclusiveOf.map(n => [n, 0]))
  let busy = 0
  for (const [id, ms] of self) {
    const node = byId.get(id)!
    const { functionName, url, lineNumber } = node.callFrame
    // Native code (no URL) is charged to the nearest JavaScript caller: `writev ← …net.js`.
    let caller: CpuProfile['nodes'][number] | undefined
    if (!url && !/^\(/.test(functionName)) {
      for (let cur = parent.get(id); cur !== undefined && !caller; cur = parent.get(cur)) {
        if (byId.get(cur)!.callFrame.url) caller = byId.get(cur)
      }
    }
    const area = caller ? areaOf(caller.callFrame.url, caller.callFrame.functionName) : areaOf(url, functionName)
    const key = url
      ? `${functionName || '(anonymous)'} ${shortUrl(url)}:${lineNumber + 1}`
      : caller
        ? `${functionName || '(native)'} ← ${caller.callFrame.functionName || '(anonymous)'} ${shortUrl(caller.callFrame.url)}:${caller.callFrame.lineNumber + 1}`
        : functionName || '(native)'
    if (functionName === '(idle)') continue
    busy += ms
    const f = frames.get(key) ?? { area, ms: 0 }
    f.ms += ms
    frames.set(key, f)
    areas.set(area, (areas.get(area) ?? 0) + ms)
    if (inclusiveOf.length) {
      const seen = new Set<string>()
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const name = byId.get(cur)!.callFrame.functionName
        if (inclusive.has(name) && !seen.has(name)) {
          seen.add(name)
          inclusive.set(name, inclusive.get(name)! + ms)
        }
      }
    }
  }
  const share = (ms: number): number => (busy ? ms / busy : 0)
  return {
    totalMs: busy,
    groups: [...[...areas].reduce((m, [area, ms]) => m.set(groupOf(area), (m.get(groupOf(area)) ?? 0) + ms), new Map<string, number>())]
      .map(([group, ms]) => ({ group, ms, share: share(ms) })).sort((a, b) => b.ms - a.ms),
    areas: [...areas].map(([area, ms]) => ({ area, ms, share: share(ms) })).sort((a, b) => b.ms - a.ms),
    top: [...frames].map(([frame, f]) => ({ frame, area: f.area, ms: f.ms, share: share(f.ms) })).sort((a, b) => b.ms - a.ms).slice(0, topN),
    inclusive: [...inclusive].map(([name, ms]) => ({ name, ms, share: share(ms) }))
  }
}
