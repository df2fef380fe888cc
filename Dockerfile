# memcached-ts container image: a build stage that runs the README's build command (with the
# native addon, built at install where a C compiler exists), and a slim runtime stage with
# production dependencies only, run as a non-root user.
#
#   docker build -t memcached-ts .
#   docker run --rm -p 11211:11211 memcached-ts -m 256
#   docker run --rm --cap-add SYS_NICE --entrypoint scripts/memcached-ts-rt memcached-ts --rt-priority 50
#
# Checked by scripts/docker-smoke.sh on a machine with Docker.

FROM node:20 AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
COPY scripts/ scripts/
COPY native/ native/
COPY src/ src/
COPY bin/ bin/
# The README's build command; npm's install script builds native/ (node:20 has gcc, make, python3).
RUN npm install && npm run build
# Production dependencies only, for the runtime stage; keep just the addon's .node file.
RUN npm prune --omit=dev \
 && mkdir -p /out/native \
 && if [ -f native/build/Release/memcached_ts_native.node ]; then cp native/build/Release/memcached_ts_native.node /out/native/; fi

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /opt/memcached-ts
COPY --from=build /src/package.json /src/package-lock.json ./
COPY --from=build /src/node_modules/ node_modules/
COPY --from=build /src/dist/ dist/
COPY --from=build /src/bin/ bin/
COPY --from=build /src/scripts/memcached-ts-rt scripts/
COPY --from=build /out/native/ native/build/Release/
# The image's own unprivileged user: memcached-ts needs no -u then.
USER node
EXPOSE 11211
# `version` over TCP on the port the server listens on (MEMCACHED_PORT when -p is changed).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "const s=require('net').connect(+(process.env.MEMCACHED_PORT||11211),'127.0.0.1');s.setTimeout(3000,()=>process.exit(1));s.on('error',()=>process.exit(1));s.on('connect',()=>s.write('version\\r\\n'));let r='';s.on('data',d=>{r+=d;if(r.includes('\\r\\n'))process.exit(r.startsWith('VERSION ')?0:1)})"]
ENTRYPOINT ["node", "/opt/memcached-ts/bin/memcached-ts.js"]
