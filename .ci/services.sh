#!/usr/bin/env bash
# Make sure Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432, role root, database test,
# trust auth) answer; install and start them from Debian's packages if they do not.
set -euo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_ready=""
apt_install() {
  if [ -z "$apt_ready" ]; then as_root apt-get update -qq; apt_ready=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

ensure_redis() {
  answers 6379 && return 0
  command -v redis-server >/dev/null || apt_install redis-server
  echo "starting redis-server on 127.0.0.1:6379"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 50); do answers 6379 && return 0; sleep 0.2; done
  echo "redis did not start" >&2; return 1
}

ensure_postgres() {
  if ! answers 5432; then
    ls /etc/postgresql/*/main >/dev/null 2>&1 || apt_install postgresql
    local version; version=$(ls /etc/postgresql | sort -V | tail -n 1)
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
      as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi
    echo "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 100); do answers 5432 && break; sleep 0.2; done
    answers 5432 || { echo "PostgreSQL did not start" >&2; return 1; }
  fi
  if ! psql -h 127.0.0.1 -U root -d test -c 'select 1' >/dev/null 2>&1; then
    as_root su postgres -c "psql -qc \"DO \\\$\\\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='root') THEN CREATE ROLE root SUPERUSER LOGIN; END IF; END \\\$\\\$\"" 
    as_root su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='test'\" | grep -q 1 || createdb -O root test"
  fi
  psql -h 127.0.0.1 -U root -d test -c 'select 1' >/dev/null
}

ensure_redis
ensure_postgres
echo "services: redis and postgresql answer on 127.0.0.1"
