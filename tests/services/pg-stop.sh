#!/usr/bin/env bash
# Carried by Rua (adapted from the workplace recipe) so `make test` works on a fresh clone.
# Stop a server started by pg-start.sh.  Usage: pg-stop.sh DATADIR
# Sends SIGINT to the PID in DATADIR/postgres.pid, waits up to 10 s, then SIGKILL.
set -uo pipefail
DATADIR=${1:?usage: $0 DATADIR}
PIDFILE="$DATADIR/postgres.pid"
# a stopped daemon whose parent is PID 1 can linger as a zombie here (PID 1 of this
# sandbox reaps late), and kill -0 succeeds on zombies: check the process state instead
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [[ $s != Z* ]]; }
[ -s "$PIDFILE" ] || { echo "[pg-stop] no pid file" >&2; exit 0; }
PID=$(cat "$PIDFILE")
if alive "$PID"; then
    kill -INT "$PID"          # SIGINT = fast shutdown (like pg_ctl -m fast)
    for _ in $(seq 1 100); do alive "$PID" || break; sleep 0.1; done
    alive "$PID" && kill -QUIT "$PID"       # immediate shutdown, still cleans up children
    for _ in $(seq 1 50); do alive "$PID" || break; sleep 0.1; done
fi
rm -f "$PIDFILE"
echo "[pg-stop] stopped $PID" >&2
