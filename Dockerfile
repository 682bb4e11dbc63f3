# syntax=docker/dockerfile:1
# One image for every role of Orderly; the command picks the role:
#   docker run -p 8000:8000 orderly                                  the whole system in one process (npm start)
#   docker run orderly node src/cli.ts service orders --store … --bus …   one service replica
#   docker run orderly node src/cli.ts gateway --orders URL …         the gateway
# Node is the version package-lock.json pins for npm start (the `node` package); a test checks
# that the two agree. What it weighs, and how that was estimated: docs/operations.md#the-image.
ARG NODE_VERSION=24.21.0

# Production dependencies only, from the lock file. None of them has an install script, so
# --ignore-scripts changes nothing but keeps it that way.
FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:${NODE_VERSION}-bookworm-slim
# Nothing at run time needs npm or corepack (the command is node itself): about 20 MB less,
# and no package manager in the running image.
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
  && mkdir /data && chown node:node /data
# V8's young generation is capped at 8 MB semi-spaces, as `npm run cluster` does: under load an
# order replica's grew to 128 MB resident otherwise, at no measured CPU saving (docs/performance.md#memory).
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=8 \
    HOST=0.0.0.0 \
    PORT=8000 \
    ORDERLY_DATA_DIR=/data \
    LOG_FORMAT=json
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
# The node user of the official image (uid 1000); Kubernetes' runAsNonRoot needs the number.
USER 1000:1000
EXPOSE 8000
VOLUME ["/data"]
# Node is PID 1 and handles SIGTERM itself: npm start's process, a service replica and the
# gateway each close their servers and consumers and exit within 10 s, and none of them starts
# child processes that would need reaping, so no init (tini) is needed. (`orderly cluster`,
# which does start children, is for one machine, not for this image.)
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "src/main.ts"]
