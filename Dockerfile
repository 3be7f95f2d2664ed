# syntax=docker/dockerfile:1
#
# One image for the cluster add-on: /clusterdns (the DNS server, the
# entrypoint) and /nodeproxy (the node's service proxy), both static.
#
#   docker build -t clusterdns:latest .
#
# deploy/README.md explains the manifests that run it.

# ---- build: the same commands as the tested deploy/build-binaries.sh ------
FROM golang:1.26 AS build
WORKDIR /src
# setcap gives /clusterdns cap_net_bind_service, so that it binds port 53 as
# the non-root user 65532 (the pod adds NET_BIND_SERVICE to the bounding set;
# a non-root process only gets it through the file capability).
RUN apt-get update \
	&& apt-get install -y --no-install-recommends libcap2-bin \
	&& rm -rf /var/lib/apt/lists/*
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN bash deploy/build-binaries.sh /out \
	&& setcap cap_net_bind_service=+ep /out/clusterdns

# ---- final: distroless static, non-root (65532), CA certificates included --
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /
# The example cluster and zone (not embed.go), for `--zones-dir /zones`.
COPY zones/*.yaml zones/*.zone /zones/
USER 65532:65532
EXPOSE 53/udp 53/tcp 8080 9153
ENTRYPOINT ["/clusterdns"]
