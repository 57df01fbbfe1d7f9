// orval: the configuration we recommend to partner teams (docs/clients.md). The fetch client,
// one file, request headers (If-Match) as typed parameters, and a mutator that adds the base
// URL and the bearer token (orval does not read the spec's security).
export default {
  api: {
    input: { target: '../../docs/api-specification.yaml' },
    output: {
      target: 'generated/orval/api.ts',
      client: 'fetch',
      mode: 'single',
      headers: true,
      clean: true,
      override: {
        mutator: { path: 'orval-fetch.ts', name: 'apiFetch' }
      }
    }
  }
}
