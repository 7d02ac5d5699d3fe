# syntax=docker/dockerfile:1
# ordersaga: one static binary, /ordersaga; the subcommand picks the role:
#   api | worker | migrate | paysim | dev | healthcheck
# Build: docker build -t ordersaga:local .   (docker compose builds it too)

# ---- build ------------------------------------------------------------------
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
ENV CGO_ENABLED=0

# Dependencies first: this layer is reused until go.mod / go.sum change.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/ordersaga .

# ---- runtime ----------------------------------------------------------------
# Static distroless: CA certificates and tzdata, no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="ordersaga" \
      org.opencontainers.image.description="WeChat mini-program shop backend: every order is a Temporal workflow"
COPY --from=build /out/ordersaga /ordersaga
# nonroot (65532), numeric so that runAsNonRoot checks can verify it.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/ordersaga"]
CMD ["api"]
