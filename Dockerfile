# One image with both services; compose picks the binary per service.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p user-service -p chat-service

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/user-service /src/target/release/chat-service /usr/local/bin/
COPY web /srv/web
ENV HOST=0.0.0.0 DATA_DIR=/data WEB_DIR=/srv/web
VOLUME /data
