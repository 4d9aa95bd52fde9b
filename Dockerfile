# vigil's container image: `docker build -t vigil .` at the repository root.
#
# Two stages: the build stage compiles vigil on Debian bookworm with the -dev
# packages; the runtime stage is debian:bookworm-slim with only the shared
# libraries vigil links (and CA certificates for TLS to Kafka, SMTP and the
# SMS gateway, and tzdata for vigil mllp's facility time zones).
# tests/k8s/test_dockerfile.py checks this list against
# `ldd vigil`, so a new dependency cannot be forgotten here.
#
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz (see helm/vigil).
# The user is numeric so that Kubernetes' runAsNonRoot can verify it.

FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      librdkafka-dev libavro-dev libpq-dev libcurl4-openssl-dev \
      libmicrohttpd-dev libyaml-dev libjansson-dev libssl-dev libglib2.0-dev libsodium-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole tree: CMakeLists.txt configures tests/ and bench/ too (only the
# vigil target is built). .dockerignore keeps build directories and .deps out.
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
 && cmake --build /build --target vigil \
 && /build/vigil --help >/dev/null

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 libavro23 libpq5 libcurl4 libmicrohttpd12 libyaml-0-2 libjansson4 \
      libssl3 libglib2.0-0 libsodium23 \
      ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 vigil \
 && useradd --system --uid 10001 --gid vigil --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin vigil
COPY --from=build /build/vigil /usr/local/bin/vigil
COPY --from=build /src/schemas/rules.example.yaml /etc/vigil/rules.yaml
USER 10001:10001
EXPOSE 9100 9101 9102 2575
ENTRYPOINT ["vigil"]
CMD ["--help"]
