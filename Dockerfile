# locksmith on the official restic image: /usr/local/bin/locksmith, with /bin/unlock
# pointing to it. Build: docker build -t locksmith .
ARG RESTIC_VERSION=0.14.0

# restic's image is Alpine (musl), so build there too.
FROM rust:1.95-alpine AS build
# gcc builds mimalloc (the allocator), as it does on any target.
RUN apk add --no-cache musl-dev gcc
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin locksmith

FROM restic/restic:${RESTIC_VERSION}
COPY --from=build /src/target/release/locksmith /usr/local/bin/locksmith
RUN ln -s /usr/local/bin/locksmith /bin/unlock && mkdir -p /hooks
# restic's image starts restic itself; this one runs what it is given (`unlock --dry-run`).
ENTRYPOINT []
CMD ["unlock", "--help"]
