# Multi-stage build: compile with dev dependencies, run with production ones
# only, as a non-root user.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY public ./public
USER node
EXPOSE 3000 1883
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:3000/health/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# V8 sizes its heap from the machine's memory and lets garbage pile up to
# hundreds of MB between collections; a cap keeps RSS near the live set
# (docs/performance.md: 350 → 190 MB peak, live heap ≈ 60–90 MB).
CMD ["node", "--max-old-space-size=512", "dist/main.js"]
