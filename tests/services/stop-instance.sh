#!/usr/bin/env bash
# Stop one instance of a test server whose master called setsid() (Dovecot, NSD), as the
# per-server stop scripts ask.  Usage: stop-instance.sh NAME PIDFILE COMMAND_WORD
# SIGTERM to the master in PIDFILE, then to what is left of its process group (a child serving
# a client can outlive the master), SIGKILL after 5 s. A PID whose command line no longer holds
# COMMAND_WORD, or that leads no session, is someone else's now: it is left alone.
set -uo pipefail
NAME=${1:?usage: $0 NAME PIDFILE COMMAND_WORD}
PIDFILE=${2:?}
WORD=${3:?}
# a stopped daemon whose parent is PID 1 can linger as a zombie here (PID 1 of this
# sandbox reaps late), and kill -0 succeeds on zombies: check the process state instead
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [[ $s != Z* ]]; }
# the master's PID is the session and process group of every process of the instance
members() { ps -o stat= -s "$1" 2>/dev/null | grep -cv '^Z'; }
wait_for() { for _ in $(seq 1 "$2"); do eval "$1" || return 0; sleep 0.05; done; return 1; }
[ -s "$PIDFILE" ] || { echo "[$NAME-stop] no pid file" >&2; exit 0; }
PID=$(cat "$PIDFILE")
if alive "$PID" && { [ "$(ps -o sid= -p "$PID" | tr -d ' ')" != "$PID" ] \
                     || [[ $(ps -o args= -p "$PID") != *"$WORD"* ]]; }; then
    echo "[$NAME-stop] $PID is not a $NAME master any more; not touching it" >&2
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
echo "[$NAME-stop] stopped $PID" >&2
