# Gatehouse production image. Node 24 runs the TypeScript sources directly: there is no build step.
# Development mode (embedded dev IdP, demo backend) needs devDependencies (oidc-provider, ws) and is
# absent from this image by design; NODE_ENV=production also makes OIDC_ISSUER and REDIS_URL required.
FROM node:24-slim

ENV NODE_ENV=production \
    PORT=8080 \
    GATEHOUSE_CONFIG=/etc/gatehouse/config.yml

WORKDIR /app

# Dependencies first, so a source change does not reinstall them.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# config.schema.json is read at start-up (src/config/load.ts). The repository's demo page (public/) is not
# copied: production serves your SPA from PUBLIC_DIR (e.g. a derived image's `COPY dist /app/spa` with
# PUBLIC_DIR=/app/spa, or a mounted volume), and nothing at / without it.
COPY config.schema.json ./
COPY src ./src

# Routing comes from the operator: mount config.yml at /etc/gatehouse/config.yml (read-only is enough).
# Without it start-up stops with "GATEHOUSE_CONFIG /etc/gatehouse/config.yml: cannot be read".

# The node user (uid 1000) ships with the image; Gatehouse writes nothing to disk.
USER node

EXPOSE 8080

# Liveness only; use GET /readyz for load-balancer readiness (Redis and IdP reachable).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# Exec form: node is PID 1 and receives SIGTERM itself; Gatehouse drains for SHUTDOWN_TIMEOUT_MS
# (10 s by default), so give `docker stop` / Kubernetes a longer grace period.
CMD ["node", "src/main.ts"]
