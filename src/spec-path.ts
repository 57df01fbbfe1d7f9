import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

/** docs/api-specification.yaml, found from src/ (tsx) or dist/src/ (compiled). */
const here = path.dirname(fileURLToPath(import.meta.url))
export const specPath = [path.resolve(here, '..', 'docs', 'api-specification.yaml'), path.resolve(here, '..', '..', 'docs', 'api-specification.yaml')]
  .find(p => existsSync(p)) ?? path.resolve('docs', 'api-specification.yaml')
