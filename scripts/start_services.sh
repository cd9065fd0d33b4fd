#!/usr/bin/env bash
# Make PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) available on this machine for the
# distributed Airflow test (tests/test_distributed.py). Idempotent: what already runs is left alone.
# What is missing is installed with apt-get (Debian/Ubuntu, as root or with passwordless sudo), then
# started. Every step is bounded by a timeout, so this never hangs.
#
#   scripts/start_services.sh          exit 0: both answer; exit 1: one of them cannot be had (says why)
#
# A PostgreSQL cluster this script installs itself gets `trust` for the postgres user on 127.0.0.1 and
# ::1 (the test connects as postgres without a password); an existing cluster's pg_hba.conf is not touched.
set -uo pipefail

PG_PORT=5432
REDIS_PORT=6379
APT_TIMEOUT="${START_SERVICES_APT_TIMEOUT:-900}"

log() { echo "start_services: $*" >&2; }

# Root runs commands as is; otherwise passwordless sudo, or nothing we can do.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo -n "$@"
  else return 126
  fi
}

pg_up() { timeout 5 pg_isready -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null; }
redis_up() { [ "$(timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; }

wait_for() {  # wait_for CHECK SECONDS
  local check="$1" deadline=$((SECONDS + $2))
  until "$check"; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 1
  done
}

apt_updated=""
apt_install() {
  command -v apt-get >/dev/null || { log "apt-get not found: cannot install $*"; return 1; }
  local apt=(env DEBIAN_FRONTEND=noninteractive timeout "$APT_TIMEOUT" apt-get -o DPkg::Lock::Timeout=120 -q -y)
  if [ -z "$apt_updated" ]; then
    as_root "${apt[@]}" update >&2 || log "apt-get update failed (continuing with the cached lists)"
    apt_updated=1
  fi
  log "installing $* with apt-get"
  as_root "${apt[@]}" install --no-install-recommends "$@" >&2
}

pg_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }

trust_local_postgres() {  # only for a cluster this script installed
  local hba="/etc/postgresql/$1/main/pg_hba.conf"
  as_root sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
}

start_postgres() {
  pg_up && { log "PostgreSQL already answers on 127.0.0.1:$PG_PORT"; return 0; }
  local installed=""
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(pg_version)" ]; then
    apt_install postgresql || { log "could not install PostgreSQL"; return 1; }
    installed=1
  fi
  local version
  version="$(pg_version)"
  [ -n "$version" ] || { log "no PostgreSQL cluster under /etc/postgresql"; return 1; }
  [ -n "$installed" ] && trust_local_postgres "$version"
  log "starting PostgreSQL $version"
  # "already running" is not an error here: whether it answers is what counts.
  as_root timeout 60 pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  wait_for pg_up 30
}

start_redis() {
  redis_up && { log "Redis already answers on 127.0.0.1:$REDIS_PORT"; return 0; }
  if ! command -v redis-server >/dev/null; then
    apt_install redis-server || { log "could not install Redis"; return 1; }
    redis_up && return 0  # the package may have started it
  fi
  log "starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root timeout 30 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log >&2
  wait_for redis_up 20
}

status=0
if ! start_postgres; then
  echo "error: PostgreSQL is not available on 127.0.0.1:$PG_PORT (fix: install it with 'apt-get install postgresql' as root and start it with 'pg_ctlcluster --skip-systemctl-redirect <version> main start')" >&2
  status=1
fi
if ! start_redis; then
  echo "error: Redis is not available on 127.0.0.1:$REDIS_PORT (fix: install it with 'apt-get install redis-server' as root and start it with 'redis-server --daemonize yes --bind 127.0.0.1 --port $REDIS_PORT')" >&2
  status=1
fi
[ "$status" -eq 0 ] && log "PostgreSQL 127.0.0.1:$PG_PORT and Redis 127.0.0.1:$REDIS_PORT are up"
exit "$status"
