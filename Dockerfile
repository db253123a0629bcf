# secrets-broker image: a static binary on a distroless base, running as
# non-root. (Not built in this project's CI: no Docker engine runs there.)
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/secrets-broker ./cmd/secrets-broker

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/secrets-broker /usr/local/bin/secrets-broker
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/secrets-broker"]
CMD ["run", "--once", "--config", "/etc/secrets-broker/broker.yaml"]
