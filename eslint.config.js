import neostandard from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: [
      'dist/**', 'openapi/generated/**', 'data/**', 'node_modules/**', '.tap/**', 'cdk.out/**',
      'clients/typescript/dist/**', 'clients/typescript/src/api-types.ts',
      'clients/partner-check/generated/**', 'clients/partner-check/node_modules/**'
    ]
  }),
  {
    // CDK constructs register themselves with their scope: `new Construct(scope, id)` as a statement is the idiom.
    files: ['infra/**/*.ts'],
    rules: { 'no-new': 'off' }
  }
]
