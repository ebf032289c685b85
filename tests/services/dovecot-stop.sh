#!/usr/bin/env bash
# Carried by Rua (adapted from the workplace recipe) so `make test` works on a fresh clone.
# Stop a server started by dovecot-start.sh.  Usage: dovecot-stop.sh DATADIR
# SIGTERM to the master in DATADIR/dovecot.pid, then to what is left of its process group
# (an imap process serving a connected client outlives the master), SIGKILL after 5 s.
# The mail and the config stay: dovecot-start.sh DATADIR starts it again.
set -uo pipefail
DATADIR=${1:?usage: $0 DATADIR}
PIDFILE="$DATADIR/dovecot.pid"
# a stopped daemon whose parent is PID 1 can linger as a zombie here (PID 1 of this
# sandbox reaps late), and kill -0 succeeds on zombies: check the process state instead
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [[ $s != Z* ]]; }
# the master calls setsid(): its PID is the session and process group of every process
# of this instance. Count the living ones.
members() { ps -o stat= -s "$1" 2>/dev/null | grep -cv '^Z'; }
wait_for() { for _ in $(seq 1 "$2"); do eval "$1" || return 0; sleep 0.05; done; return 1; }
[ -s "$PIDFILE" ] || { echo "[dovecot-stop] no pid file" >&2; exit 0; }
PID=$(cat "$PIDFILE")
if alive "$PID" && { [ "$(ps -o sid= -p "$PID" | tr -d ' ')" != "$PID" ] \
                     || [[ $(ps -o args= -p "$PID") != *dovecot* ]]; }; then
    echo "[dovecot-stop] $PID is not a Dovecot master any more; not touching it" >&2
    rm -f "$PIDFILE"; exit 1
fi
if alive "$PID"; then
    kill -TERM "$PID"
    wait_for "alive $PID" 100 || kill -KILL "$PID"
fi
if [ "$(members "$PID")" != 0 ]; then
    kill -TERM -- "-$PID" 2>/dev/null
    wait_for '[ "$(members "$PID")" != 0 ]' 100 || kill -KILL -- "-$PID" 2>/dev/null
    wait_for '[ "$(members "$PID")" != 0 ]' 40
fi
rm -f "$PIDFILE"
echo "[dovecot-stop] stopped $PID" >&2
