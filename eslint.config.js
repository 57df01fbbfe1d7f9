import neostandard from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: [
      'dist/**', 'openapi/generated/**', 'data/**', 'node_modules/**', '.tap/**',
      'clients/typescript/dist/**', 'clients/typescript/src/api-types.ts',
      'clients/partner-check/generated/**', 'clients/partner-check/node_modules/**'
    ]
  })
]
