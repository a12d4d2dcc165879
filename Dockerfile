# The f2s control plane image (what helm/ deploys as f2s:<appVersion>): the single binary
# built by `deno compile`, which needs Deno's runtime download, so build it where the
# internet is reachable:
#   docker build -t f2s:0.1.0 .
FROM denoland/deno:2.9.6 AS build
WORKDIR /src
COPY deno.json deno.lock main.ts ./
COPY common ./common
COPY control ./control
COPY dispatcher ./dispatcher
COPY fizzlet ./fizzlet
COPY docs/openapi.json ./docs/openapi.json
COPY ui ./ui
RUN deno compile -A --include ui --output /out/f2s main.ts

FROM debian:bookworm-slim
# tini as PID 1 reaps orphans (e.g. of a kubeconfig exec plugin) and passes signals on.
RUN apt-get update && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 f2s
COPY --from=build /out/f2s /usr/local/bin/f2s
USER 10001
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/f2s"]
CMD ["serve"]
