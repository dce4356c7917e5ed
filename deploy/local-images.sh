#!/usr/bin/env bash
# Offline stand-ins for the three images the compose file pulls (python:3.11-slim, redis:7,
# postgres:16), built from Debian bookworm's own packages for machines that reach the Debian
# and PyPI package registries but no image registry:
#
#   conveyor-local/debian:bookworm   debootstrap --variant=minbase bookworm, docker import
#   conveyor-local/python:3.11       Debian's python3.11 in a venv on PATH (python, pip)
#   conveyor-local/redis:7           Debian's redis-server (7.0); AOF is switched on by the
#                                    compose file's command, as with redis:7
#   conveyor-local/postgres:15       Debian's PostgreSQL 15 (bookworm has no 16); its entrypoint
#                                    honours POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB and
#                                    initialises an empty data directory, like postgres:16's
#
# Each image carries a label with a hash of its recipe: a second run finds them and takes
# seconds. The host's CA bundle is copied into the Python image only, at build time, so that
# pip inside `docker build` trusts whatever the host trusts (a TLS-inspecting egress proxy);
# it is never written into the repository.
#
# Usage (prints the variables docker-compose.yml reads; progress goes to standard error):
#   eval "$(bash deploy/local-images.sh)"
#   docker compose up -d --build
set -euo pipefail

MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
HOST_CA_BUNDLE="${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
PREFIX=conveyor-local
ROOTFS_IMAGE="$PREFIX/debian:$SUITE"
PYTHON_IMAGE="$PREFIX/python:3.11"
REDIS_IMAGE_TAG="$PREFIX/redis:7"
POSTGRES_IMAGE_TAG="$PREFIX/postgres:15"
LABEL=org.conveyor.local-images.recipe

say() { echo "local-images: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
digest() { sha256sum | cut -c1-16; }

docker info >/dev/null 2>&1 || { say "no Docker engine answers (start dockerd first)"; exit 1; }

# true when the image exists and was built from this recipe
current() {
  [ "$(docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null)" = "$2" ]
}

build_rootfs() {
  local recipe; recipe=$(printf '%s %s minbase 1' "$MIRROR" "$SUITE" | digest)
  if current "$ROOTFS_IMAGE" "$recipe"; then say "$ROOTFS_IMAGE is up to date"; return; fi
  command -v debootstrap >/dev/null || {
    say "installing debootstrap"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq debootstrap >/dev/null
  }
  local dir; dir=$(mktemp -d /tmp/conveyor-rootfs.XXXXXX)
  say "debootstrap $SUITE from $MIRROR (about a minute)"
  as_root debootstrap --variant=minbase "$SUITE" "$dir" "$MIRROR" >&2
  # the same package sources a Debian image has: the release, its updates and security
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb http://deb.debian.org/debian-security %s-security main\n' \
    "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$SUITE" | as_root tee "$dir/etc/apt/sources.list" >/dev/null
  as_root rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  as_root tar -C "$dir" --numeric-owner -c . \
    | docker import --change "LABEL $LABEL=$recipe" --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "$ROOTFS_IMAGE" >/dev/null
  as_root rm -rf "$dir"
  say "built $ROOTFS_IMAGE"
}

# build TAG RECIPE-TEXT [FILE...]: a Dockerfile (read from standard input) whose context holds FILEs
build() {
  local tag=$1 extra=$2; shift 2
  local dockerfile; dockerfile=$(cat)
  local recipe
  recipe=$( { echo "$dockerfile"; echo "$extra"; docker image inspect --format '{{.Id}}' "$ROOTFS_IMAGE"; } | digest)
  if current "$tag" "$recipe"; then say "$tag is up to date"; return; fi
  local context; context=$(mktemp -d /tmp/conveyor-image.XXXXXX)
  local f; for f in "$@"; do cp "$f" "$context/"; done
  printf '%s\n' "$dockerfile" > "$context/Dockerfile"
  say "building $tag"
  docker build -q --label "$LABEL=$recipe" -t "$tag" "$context" >/dev/null
  rm -rf "$context"
  say "built $tag"
}

build_python() {
  [ -r "$HOST_CA_BUNDLE" ] || { say "no CA bundle at $HOST_CA_BUNDLE (set HOST_CA_BUNDLE)"; exit 1; }
  local ca; ca=$(mktemp -d /tmp/conveyor-ca.XXXXXX)
  cp "$HOST_CA_BUNDLE" "$ca/host-ca-bundle.crt"
  build "$PYTHON_IMAGE" "$(digest < "$HOST_CA_BUNDLE")" "$ca/host-ca-bundle.crt" <<EOF
FROM $ROOTFS_IMAGE
COPY host-ca-bundle.crt /usr/local/share/ca-certificates/host-ca-bundle.crt
RUN apt-get update \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
       python3.11 python3.11-venv python3-pip ca-certificates passwd \\
    && update-ca-certificates \\
    && rm -rf /var/lib/apt/lists/* \\
    && python3.11 -m venv /opt/python
# python and pip resolve to the venv, as they resolve to /usr/local in python:3.11-slim;
# pip uses the system bundle, which now includes the host's CAs
ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \\
    LANG=C.UTF-8
CMD ["python"]
EOF
  rm -rf "$ca"
}

build_redis() {
  build "$REDIS_IMAGE_TAG" "" <<'EOF'
FROM conveyor-local/debian:bookworm
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data \
    && printf '%s\n' '#!/bin/sh' 'set -e' \
       '# like redis:7: reachable from other containers without a config file, data in /data,' \
       '# run as the redis user' \
       'if [ "$1" = redis-server ]; then shift; set -- redis-server --bind 0.0.0.0 --protected-mode no --dir /data "$@"; fi' \
       'if [ "$(id -u)" = 0 ]; then chown -R redis:redis /data; exec setpriv --reuid=redis --regid=redis --init-groups "$@"; fi' \
       'exec "$@"' > /usr/local/bin/redis-entrypoint \
    && chmod 755 /usr/local/bin/redis-entrypoint
WORKDIR /data
VOLUME /data
EXPOSE 6379
ENTRYPOINT ["redis-entrypoint"]
CMD ["redis-server"]
EOF
}

build_postgres() {
  build "$POSTGRES_IMAGE_TAG" "" <<'EOF'
FROM conveyor-local/debian:bookworm
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && printf '%s\n' '#!/bin/sh' 'set -eu' \
       '# like postgres:16: initialise an empty PGDATA from POSTGRES_USER/PASSWORD/DB, then serve' \
       'if [ "$(id -u)" = 0 ]; then' \
       '  mkdir -p "$PGDATA" /run/postgresql; chown -R postgres:postgres "$PGDATA" /run/postgresql; chmod 700 "$PGDATA"' \
       '  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"' \
       'fi' \
       'if [ ! -s "$PGDATA/PG_VERSION" ]; then' \
       '  : "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"' \
       '  user="${POSTGRES_USER:-postgres}"; db="${POSTGRES_DB:-$user}"' \
       '  pwfile=$(mktemp); printf "%s" "$POSTGRES_PASSWORD" > "$pwfile"' \
       '  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256' \
       '  rm -f "$pwfile"' \
       '  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"' \
       '  echo "listen_addresses = '"'"'*'"'"'" >> "$PGDATA/postgresql.conf"' \
       '  if [ "$db" != postgres ]; then echo "CREATE DATABASE \"$db\" OWNER \"$user\"" | postgres --single -D "$PGDATA" postgres >/dev/null; fi' \
       '  echo "initialised $PGDATA for role $user, database $db"' \
       'fi' \
       'exec postgres -D "$PGDATA" "$@"' > /usr/local/bin/postgres-entrypoint \
    && chmod 755 /usr/local/bin/postgres-entrypoint \
    && mkdir -p /var/lib/postgresql/data /run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8
VOLUME /var/lib/postgresql/data
EXPOSE 5432
# fast shutdown: ends sessions and writes a checkpoint, as postgres:16 does
STOPSIGNAL SIGINT
ENTRYPOINT ["postgres-entrypoint"]
CMD []
EOF
}

build_rootfs
build_python
build_redis
build_postgres
echo "export CONVEYOR_BASE_IMAGE=$PYTHON_IMAGE REDIS_IMAGE=$REDIS_IMAGE_TAG POSTGRES_IMAGE=$POSTGRES_IMAGE_TAG"
