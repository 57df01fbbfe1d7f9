/**
 * A step after tsc (`npm run build`, scripts/start.mjs): the packages below are bundled into
 * one file each under dist/vendor/, and the compiled server's imports of them (dist/src,
 * dist/openapi) are pointed there. typebox is ~680 ES modules: loading them was ~400 ms of
 * every start, one file of the same code loads in ~40 ms. esbuild bundles the installed
 * package (package-lock.json's version), nothing else changes. Without this step the compiled
 * code still runs, importing the packages themselves; tests (tsx) and the Lambda bundles
 * (esbuild from src/) never see it.
 *
 * `node scripts/bundle-vendor.mjs`: runs it on this checkout's dist/.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Import specifier → the bundle's file name and what it re-exports (all of the module, as it is). */
const VENDORED = {
  typebox: { file: 'typebox.mjs', contents: "export * from 'typebox'\nexport { default } from 'typebox'\n" },
  'typebox/value': { file: 'typebox-value.mjs', contents: "export * from 'typebox/value'\nexport { default } from 'typebox/value'\n" }
}
/** The compiled directories the server loads. */
const COMPILED = ['src', 'openapi']

const IMPORT = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])([^'"]+)\2/g

function * jsFiles (dir) {
  let entries
  try {
    entries = readdirSync(dir, { withFileTypes: true })
  } catch {
    return
  }
  for (const entry of entries) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) yield * jsFiles(path)
    else if (entry.name.endsWith('.js')) yield path
  }
}

export async function bundleVendor (root) {
  const { build } = await import('esbuild')
  const dist = join(root, 'dist')
  const vendor = join(dist, 'vendor')
  mkdirSync(vendor, { recursive: true })
  for (const { file, contents } of Object.values(VENDORED)) {
    await build({
      stdin: { contents, resolveDir: root, sourcefile: file, loader: 'js' },
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      outfile: join(vendor, file),
      logLevel: 'warning'
    })
  }
  let rewritten = 0
  for (const dir of COMPILED) {
    for (const path of jsFiles(join(dist, dir))) {
      const source = readFileSync(path, 'utf8')
      const next = source.replace(IMPORT, (whole, lead, quote, specifier) => {
        const target = VENDORED[specifier]
        if (!target) return whole
        const rel = relative(dirname(path), join(vendor, target.file)).split(sep).join('/')
        return `${lead}${quote}${rel.startsWith('.') ? rel : `./${rel}`}${quote}`
      })
      if (next !== source) {
        writeFileSync(path, next)
        rewritten++
      }
    }
  }
  return rewritten
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = fileURLToPath(new URL('..', import.meta.url))
  const rewritten = await bundleVendor(root)
  console.error(`bundle-vendor: dist/vendor/ written, ${rewritten} compiled file(s) pointed to it`)
}
