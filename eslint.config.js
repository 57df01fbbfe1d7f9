import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'openapi/generated/**', 'data/**', 'node_modules/**', '.tap/**'] })
]
