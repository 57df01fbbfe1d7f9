// @hey-api/openapi-ts: the configuration we recommend to partner teams (docs/clients.md).
// The TypeScript types, an SDK of one function per operation, and the fetch client.
export default {
  input: '../../docs/api-specification.yaml',
  output: { path: 'generated/hey-api', clean: true },
  plugins: [
    '@hey-api/typescript',
    '@hey-api/client-fetch',
    { name: '@hey-api/sdk', auth: true }
  ]
}
