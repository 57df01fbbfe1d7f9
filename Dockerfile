# syntax=docker/dockerfile:1
# cloud-monitoring-api: see docs/deployment.md.
#   docker build -t cloud-monitoring-api .
#   docker run --init -p 3000:3000 -v cmc-data:/data -e JWT_SECRET=... cloud-monitoring-api

# Build: compile TypeScript (src and the operator scripts) with all dependencies.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY types ./types
COPY openapi ./openapi
COPY src ./src
COPY scripts ./scripts
RUN npm run build

# Runtime: production dependencies only, compiled output, the spec (served and used for
# validation), non-root. No secret is baked in: JWT_SECRET comes from the environment
# (required because NODE_ENV=production).
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/data \
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY docs/api-specification.yaml ./docs/api-specification.yaml
# The spec's parse, cached while dist/ is still root's to write (src/spec-document.ts): the
# server's start reads it instead of parsing the YAML (~0.3 s); the user node cannot write dist/.
RUN node --input-type=module -e "await (await import('./dist/src/spec-document.js')).loadSpecDocument()"
# The web console's static files (served at /console/ when openapi-fetch is installed too).
COPY console ./console
# DATA_DIR: the embedded database when DYNAMODB_ENDPOINT is unset (mount a volume).
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 3000
# 503 (unhealthy) when the database does not answer. The first probe runs one interval
# after start, which covers start-up (a start period is set in the ECS task definition).
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/api/health',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node itself is PID 1 and handles SIGTERM (graceful close); `--init` adds zombie reaping.
CMD ["node", "dist/src/server.js"]
