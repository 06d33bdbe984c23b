# fleet-controller, fleet-agent and fleetctl, static, on distroless as a non-root user.
# Build: make image (or docker build -t ghcr.io/ebbflow/ebbflow:dev .)
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/ebbflow/ebbflow/internal/buildinfo.version=${VERSION}" \
      -o /out/ ./cmd/fleet-controller ./cmd/fleet-agent ./cmd/fleetctl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/fleet-controller /out/fleet-agent /out/fleetctl /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/fleet-controller"]
