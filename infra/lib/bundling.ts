import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import * as lambda from 'aws-cdk-lib/aws-lambda'
import { LogLevel, OutputFormat, type BundlingOptions } from 'aws-cdk-lib/aws-lambda-nodejs'

/** The repository root (package.json, package-lock.json, src/, docs/). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/**
 * Packages the bundle loads from node_modules instead of containing them:
 * - argon2: a native module (N-API). Its package ships prebuilt binaries for linux x64 and
 *   arm64 (glibc and musl) and picks one at run time (node-gyp-build), so copying the
 *   installed package works for either Lambda architecture; nothing is compiled.
 * - @fastify/swagger-ui: serves its static files from `__dirname/../static`, a path that
 *   means nothing inside a single-file bundle.
 */
export const EXTERNAL_PACKAGES = ['argon2', '@fastify/swagger-ui']

interface PackageJson { dependencies?: Record<string, string>, optionalDependencies?: Record<string, string> }

/** Where Node would find `name` from `fromDir`: the nearest node_modules/<name> up to ROOT. */
function findPackage (name: string, fromDir: string): string {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name)
    if (existsSync(path.join(candidate, 'package.json'))) return candidate
    if (dir === ROOT || dir === path.dirname(dir)) throw new Error(`package ${name} (needed from ${path.relative(ROOT, fromDir) || '.'}) is not installed: run npm ci`)
  }
}

/**
 * The installed directories (relative to ROOT) that `names` need at run time: the packages and
 * their dependencies, transitively, as `npm ci` laid them out from the lock file. Directories
 * nested in another listed one are left out (copying the outer one brings them).
 */
export function packageClosure (names: string[]): string[] {
  const found = new Set<string>()
  const queue = names.map(name => ({ name, from: ROOT, optional: false }))
  for (let next = queue.shift(); next; next = queue.shift()) {
    let dir: string
    try {
      dir = findPackage(next.name, next.from)
    } catch (err) {
      if (next.optional) continue
      throw err
    }
    if (found.has(dir)) continue
    found.add(dir)
    const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as PackageJson
    for (const dep of Object.keys(pkg.dependencies ?? {})) queue.push({ name: dep, from: dir, optional: false })
    for (const dep of Object.keys(pkg.optionalDependencies ?? {})) queue.push({ name: dep, from: dir, optional: true })
  }
  const dirs = [...found].sort()
  return dirs.filter(d => !dirs.some(outer => outer !== d && d.startsWith(outer + path.sep))).map(d => path.relative(ROOT, d))
}

const quote = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`

/**
 * esbuild options of the API function (src/lambda.ts): one ESM file for Node 24 with the
 * locked AWS SDK bundled (not the runtime's copy: the version the tests ran), `require`
 * defined for the CommonJS dependencies, and after bundling, copied from this checkout's
 * node_modules (no network, no Docker): the external packages and their dependencies, and
 * docs/api-specification.yaml (the app validates with it and serves it; src/spec-path.ts
 * finds it from the working directory, /var/task).
 */
export function apiBundling (): BundlingOptions {
  const copies = packageClosure(EXTERNAL_PACKAGES)
  return {
    ...baseBundling(),
    externalModules: EXTERNAL_PACKAGES,
    commandHooks: {
      beforeBundling: () => [],
      beforeInstall: () => [],
      afterBundling: (inputDir: string, outputDir: string) => [
        `mkdir -p ${quote(path.join(outputDir, 'docs'))}`,
        `cp ${quote(path.join(inputDir, 'docs', 'api-specification.yaml'))} ${quote(path.join(outputDir, 'docs', 'api-specification.yaml'))}`,
        ...copies.map(rel => `mkdir -p ${quote(path.dirname(path.join(outputDir, rel)))} && cp -R ${quote(path.join(inputDir, rel))} ${quote(path.join(outputDir, rel))}`)
      ]
    }
  }
}

/**
 * esbuild options of a function that is not the API (the expiry consumer, src/lambda-streams.ts):
 * the API's, with nothing copied beside the bundle: it loads neither argon2 nor
 * @fastify/swagger-ui nor the spec (nothing external; test/infra.test.ts checks its bundle).
 */
export function workerBundling (): BundlingOptions {
  return { ...baseBundling(), externalModules: [] }
}

/** What every bundle of this project shares: one minified ESM file for Node 24 with the locked SDK. */
function baseBundling (): BundlingOptions {
  return {
    format: OutputFormat.ESM,
    target: 'node24',
    mainFields: ['module', 'main'],
    minify: true,
    sourceMap: true,
    sourcesContent: false,
    bundleAwsSDK: true,
    banner: "import { createRequire as cmcCreateRequire } from 'node:module';const require = cmcCreateRequire(import.meta.url);",
    forceDockerBundling: false,
    logLevel: LogLevel.ERROR
  }
}

/** The runtime the API function runs on: Node 24 LTS, the version CI verifies the service with. */
export const API_RUNTIME = lambda.Runtime.NODEJS_24_X
