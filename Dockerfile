# syntax=docker/dockerfile:1
# The dagmm image: one static binary on distroless, run as a non-root user.
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t dagmm:dev .
# charts/check/image_test.go builds the binary with this file's go build line
# and checks that it is static and that USER is a numeric non-root ID.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
ENV CGO_ENABLED=0
RUN go build -trimpath -buildvcs=false -ldflags="-s -w -X github.com/dagmm/dagmm/internal/buildinfo.Version=${VERSION}" -o /out/dagmm ./cmd/dagmm

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=devel
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="dagmm" \
      org.opencontainers.image.description="Anomaly detection on infrastructure metrics with DAGMM: train, score, serve over NATS and HTTP" \
      org.opencontainers.image.source="https://github.com/dagmm/dagmm" \
      org.opencontainers.image.url="https://github.com/dagmm/dagmm" \
      org.opencontainers.image.documentation="https://github.com/dagmm/dagmm#kubernetes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
COPY --from=build /out/dagmm /usr/local/bin/dagmm
# 65532 is distroless's nonroot user; numeric so that runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/dagmm"]
CMD ["version"]
