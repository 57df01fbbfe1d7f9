/**
 * `npm start`: compiles what changed since the last build, then runs the server
 * (dist/src/server.js) in this process. An unchanged checkout starts without running the
 * compiler at all: the newest modification time of the compiler's inputs is compared with the
 * stamp the last successful build left (a deleted or renamed file changes its directory's
 * time, so it counts too). A changed checkout recompiles incrementally (tsc's build info in
 * dist/), which rebuilds only the files the change affects, then bundles the packages whose
 * many modules slowed every start (scripts/bundle-vendor.mjs). Plain JavaScript on purpose: it
 * runs before anything is compiled, and a TypeScript loader would cost the start-up it saves.
 *
 * `node scripts/start.mjs --build-only`: the same build step, without starting (npm run bench).
 */
import { spawnSync } from 'node:child_process'
import { readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { bundleVendor } from './bundle-vendor.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
/** What tsconfig.build.json compiles, and what changes its result. */
const INPUTS = ['src', 'openapi', 'scripts', 'types', 'tsconfig.json', 'tsconfig.build.json', 'package-lock.json']
const STAMP = join(root, 'dist', '.build-stamp')

/** The newest modification time below `path` (files and directories), 0 when it is absent. */
function newest (path) {
  let stat
  try {
    stat = statSync(path)
  } catch {
    return 0
  }
  if (!stat.isDirectory()) return stat.mtimeMs
  let latest = stat.mtimeMs
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)))
  return latest
}

function stampTime () {
  try {
    return statSync(STAMP).mtimeMs
  } catch {
    return -1
  }
}

const sources = Math.max(...INPUTS.map(input => newest(join(root, input))))
if (sources > stampTime()) {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  const started = Date.now()
  console.error(stampTime() < 0 ? 'npm start: first build (tsc), about 10 s…' : 'npm start: sources changed, compiling what they affect (tsc --incremental)…')
  const built = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' })
  if (built.status !== 0) process.exit(built.status ?? 1)
  // Not fatal: without it the compiled code imports the packages themselves (a slower start);
  // no stamp, so the next start tries again.
  const vendored = await bundleVendor(root).then(() => true, (err) => {
    console.error(`npm start: bundling dist/vendor/ failed, starting without it: ${err.message}`)
    return false
  })
  // The stamp carries the time of the newest input the build saw: a file saved during the
  // build is newer, so the next start compiles again.
  if (vendored) {
    writeFileSync(STAMP, `built in ${Date.now() - started} ms\n`)
    const at = new Date(Math.ceil(sources))
    utimesSync(STAMP, at, at)
  }
}

if (process.argv.includes('--build-only')) process.exit(0)
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
await import(pathToFileURL(join(root, 'dist', 'src', 'server.js')).href)
