#!/usr/bin/env bash
# Carried by Rua (adapted from the workplace recipe) so `make test` works on a fresh clone.
# Start a throw-away PostgreSQL on 127.0.0.1:PORT with initdb + pg_ctl (no systemd,
# no pg_ctlcluster, nothing written under /etc/postgresql).
#
# Usage: pg-start.sh DATADIR [PORT] [DBNAME]     (defaults 15432, dmarc_test)
# Env: PGUSER_NAME (default dmarc), PGUSER_PASSWORD (default secret)
# Creates role PGUSER_NAME (password auth, scram) owning database DBNAME.
#   URL: postgresql+psycopg://dmarc:secret@127.0.0.1:PORT/dmarc_test
# Prints the postmaster PID (also DATADIR/postgres.pid). Stop: pg-stop.sh DATADIR
# Durability is switched off (fsync/full_page_writes/synchronous_commit): tests only.
# PG_DURABLE=1 keeps PostgreSQL's durable defaults (the benchmarks use it).
set -euo pipefail
DATADIR=${1:?usage: $0 DATADIR [PORT] [DBNAME]}
PORT=${2:-15432}
DBNAME=${3:-dmarc_test}
DBUSER=${PGUSER_NAME:-dmarc}
DBPASS=${PGUSER_PASSWORD:-secret}
log() { echo "[pg-start] $*" >&2; }
# kill -0 is true for zombies (this sandbox's PID 1 reaps late): look at the state
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [[ $s != Z* ]]; }

# 1. install if missing -----------------------------------------------------------
pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [ -z "$(pgbin)" ] || [ ! -x "$(pgbin)/initdb" ]; then
    log "installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq >&2   # stale lists can point at superseded versions
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends postgresql >&2
fi
BIN=$(pgbin)

mkdir -p "$DATADIR"
DATADIR=$(cd "$DATADIR" && pwd)
PGDATA="$DATADIR/pgdata"
PIDFILE="$DATADIR/postgres.pid"

# initdb/postgres refuse to run as root: run them as 'postgres' when we are root
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    chown postgres: "$DATADIR"
    AS=(runuser -u postgres --)
    # every parent dir must be traversable by 'postgres' (pytest's /tmp/pytest-of-root is 0700!)
    if ! runuser -u postgres -- test -w "$DATADIR"; then
        log "user postgres cannot reach $DATADIR (a parent dir is not world-executable); use e.g. mktemp -d /tmp/pg.XXXX"
        exit 1
    fi
else
    AS=()
fi

if [ -s "$PIDFILE" ] && alive "$(cat "$PIDFILE")"; then
    log "already running"; cat "$PIDFILE"; exit 0
fi

# 2. initdb (once) --------------------------------------------------------------------
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    printf '%s\n' "$DBPASS" > "$DATADIR/.pw"; chmod 600 "$DATADIR/.pw"
    [ "$(id -u)" = 0 ] && chown postgres: "$DATADIR/.pw"
    "${AS[@]}" "$BIN/initdb" -D "$PGDATA" -U postgres --pwfile="$DATADIR/.pw" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
        --no-sync >"$DATADIR/initdb.log" 2>&1 || { cat "$DATADIR/initdb.log" >&2; exit 1; }
    rm -f "$DATADIR/.pw"
    cat >> "$PGDATA/postgresql.conf" <<EOF
# --- test instance (pg-start.sh) ---
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DATADIR'
$(if [ "${PG_DURABLE:-0}" = 1 ]; then echo "# durable defaults kept (PG_DURABLE=1)"; else
    printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off'; fi)
max_connections = 100
shared_buffers = 128MB
log_min_messages = warning
EOF
fi
# port may differ between runs on the same DATADIR
sed -i "s/^port = .*/port = $PORT/" "$PGDATA/postgresql.conf"

# 3. start and wait (pg_ctl -w waits until it accepts connections) -----------------
"${AS[@]}" "$BIN/pg_ctl" -D "$PGDATA" -l "$DATADIR/postgres.log" -w -t 60 start </dev/null >&2
head -1 "$PGDATA/postmaster.pid" > "$PIDFILE"

# 4. role + database (idempotent) -----------------------------------------------------
PSQL=("${AS[@]}" "$BIN/psql" -h "$DATADIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt)
if [ "$("${PSQL[@]}" -c "select 1 from pg_roles where rolname='$DBUSER'")" != 1 ]; then
    "${PSQL[@]}" -c "create role \"$DBUSER\" login createdb password '$DBPASS'"
fi
if [ "$("${PSQL[@]}" -c "select 1 from pg_database where datname='$DBNAME'")" != 1 ]; then
    "${PSQL[@]}" -c "create database \"$DBNAME\" owner \"$DBUSER\""
fi
log "ready: postgresql+psycopg://$DBUSER:$DBPASS@127.0.0.1:$PORT/$DBNAME"
cat "$PIDFILE"
