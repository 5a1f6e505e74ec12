# The pushgo binary: one static executable on a minimal base, run as a
# non-root user. Build: docker build -t pushgo .
# The toolchain go.mod asks for (the image runs with GOTOOLCHAIN=local).
FROM golang:1.26.8 AS build
WORKDIR /src
COPY go.work go.work.sum* ./
COPY go.mod go.sum ./
COPY schemas/go.mod schemas/go.sum* schemas/
COPY broker/go.mod broker/go.sum* broker/
COPY ingest/go.mod ingest/go.sum* ingest/
COPY projector/go.mod projector/go.sum* projector/
COPY pusher/go.mod pusher/go.sum* pusher/
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/pushgo .

# Alpine rather than distroless: compose's health checks need a wget in the
# image to ask /readyz.
FROM alpine:3.22
RUN adduser -D -H -u 10001 pushgo && mkdir /data && chown pushgo /data
COPY --from=build /out/pushgo /usr/local/bin/pushgo
USER pushgo
ENV PUSHGO_DATA_DIR=/data PUSHGO_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/pushgo"]
