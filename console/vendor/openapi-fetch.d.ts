// Types of /console/vendor/openapi-fetch.js, which the console plugin serves from the
// openapi-fetch package (dist/index.mjs). Used by `tsc -p console` only; never served.
export * from 'openapi-fetch'
export { default } from 'openapi-fetch'
