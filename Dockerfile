# locksmith on the official restic image: /usr/local/bin/locksmith, with /bin/unlock
# pointing to it. Build: docker build -t locksmith .
# The restic the image carries: the release backup containers run (0.18.1, 0.19.x …);
# the tests cover 0.14, 0.18 and 0.19.
ARG RESTIC_VERSION=0.18.1

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
# The image's restic by its path, whatever PATH a container is given.
ENV RESTIC_BIN=/usr/bin/restic
# restic's image starts restic itself (0.19's through an entrypoint script); this one
# runs what it is given (`unlock --dry-run`), through no entrypoint of restic's.
ENTRYPOINT []
CMD ["unlock", "--help"]
