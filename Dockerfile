# iap-proxy container: build with the official Swift image, run on a slim Debian with only the
# libraries the statically linked binary needs. Expected size: about 150 MB uncompressed
# (bookworm-slim ~75 MB, libssl/libcurl and their dependencies ~15 MB, the binary ~60 MB).
#   docker build -t iap-proxy .
#   docker run --rm -p 8080:8080 -p 9090:9090 -v $PWD/config:/etc/iap-proxy:ro iap-proxy \
#     serve --config /etc/iap-proxy/jupyterhub.yaml

ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${SWIFT_IMAGE} AS build
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl-dev libcurl4-openssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY scripts/build-release.sh ./scripts/
RUN scripts/build-release.sh /out/iap-proxy

FROM ${RUNTIME_IMAGE}
# libssl3 (libcrypto), libcurl4 (the OpenSSL flavour), CA roots for fetching Google's keys.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl3 libcurl4 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin iap-proxy \
    && mkdir -p /etc/iap-proxy /var/cache/iap-proxy \
    && chown 65532:65532 /var/cache/iap-proxy
COPY --from=build /out/iap-proxy /usr/local/bin/iap-proxy
USER 65532:65532
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["iap-proxy", "probe", "--address", "127.0.0.1:9090", "--path", "/healthz"]
ENTRYPOINT ["iap-proxy"]
CMD ["serve"]
