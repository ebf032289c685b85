#!/usr/bin/env bash
# Stop a server started by nsd-start.sh.  Usage: nsd-stop.sh DATADIR
# (the PID in DATADIR/nsd.pid leads the session of the instance: xfrd, main and server processes)
# The zones and the config stay: nsd-start.sh DATADIR PORT starts it again.
set -uo pipefail
DATADIR=${1:?usage: $0 DATADIR}
exec bash "$(dirname "$0")/stop-instance.sh" nsd "$DATADIR/nsd.pid" nsd
