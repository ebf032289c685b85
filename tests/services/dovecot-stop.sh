#!/usr/bin/env bash
# Carried by Rua (adapted from the workplace recipe) so `make test` works on a fresh clone.
# Stop a server started by dovecot-start.sh.  Usage: dovecot-stop.sh DATADIR
# (an imap process serving a connected client outlives the master: stop-instance.sh stops it too)
# The mail and the config stay: dovecot-start.sh DATADIR starts it again.
set -uo pipefail
DATADIR=${1:?usage: $0 DATADIR}
exec bash "$(dirname "$0")/stop-instance.sh" dovecot "$DATADIR/dovecot.pid" dovecot
