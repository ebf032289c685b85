#!/usr/bin/env bash
# Carried by Rua (adapted from the workplace recipe) so `make test` works on a fresh clone.
# Make an NSD started by nsd-start.sh serve what DATADIR/zones/*.zone and DATADIR/servfail/*
# say now, without a restart (same PID, same port), and wait until it does.
#
# Usage: nsd-reload.sh [--no-wait] DATADIR [ZONE[=SERIAL]...]
#   ZONE=SERIAL  zones whose file changed (or was added, removed, or turned into a servfail
#   ZONE         marker). Each is re-read even if its mtime did not change, checked with
#                nsd-checkzone first, and waited for: until its SOA serial is SERIAL (any SOA
#                without one), SERVFAIL for a marker, or until it is no longer served.
#   no ZONE      every zone file whose mtime changed is re-read, and the script waits until
#                every zone answers (it cannot tell an old serial from a new one: name the zones).
# Zones added or removed are always found (and waited for), named or not.
# Env NSD_WAIT_SECONDS (default 10): how long to wait before giving up.
# --no-wait: return once NSD has been told (the caller polls; tests/dns_server.py does, since
#   the probe's python3 start alone costs ~0.1 s here). The change is served ~15 ms later.
#
# How (NSD 4.6.1; each point was tried):
# - A new or removed zone: zones.conf is regenerated and `nsd-control reconfig` adds and
#   drops zones in the running server; an added zone's file is read at once.
# - A changed zone: `nsd-control reload ZONE` reads the file whatever its mtime (a bare
#   `reload` or SIGHUP goes by mtime). It returns before the new data is served (the server
#   process is replaced some ms later), hence the wait.
# - A zone that changes kind (file <-> servfail marker) must be dropped and added again:
#   reconfig does apply a changed zonefile path but does not load it, and reloading from a
#   missing file keeps serving the old data. So the zones whose line changed are first
#   removed (one reconfig), then added back (another).
# - nsd-control exits 0 even when reconfig fails (e.g. "Could not open nsd.conf"): its
#   output is checked for the final "ok".
set -euo pipefail
shopt -s inherit_errexit
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/nsd-start.sh"

WAIT=1
if [ "${1:-}" = --no-wait ]; then WAIT=0; shift; fi
DATADIR=$(cd "${1:?usage: $0 [--no-wait] DATADIR [ZONE[=SERIAL]...]}" && pwd)
shift
[ -s "$DATADIR/nsd.conf" ] || die "no $DATADIR/nsd.conf: start NSD with nsd-start.sh first"
PIDFILE="$DATADIR/nsd.pid"
{ [ -s "$PIDFILE" ] && running "$(cat "$PIDFILE")"; } \
    || die "the NSD of $DATADIR is not running (nsd-start.sh DATADIR PORT starts it again on the same zones)"
PORT=$(conf_port "$DATADIR")

declare -A want=() serial=()
targets=()
for arg in "$@"; do
    zone=${arg%%=*}
    zone=${zone%.}
    valid_zone "$zone" || die "not a zone name: $zone"
    targets+=("$zone")
    if [[ $arg == *=* ]]; then
        [[ ${arg#*=} =~ ^[0-9]+$ ]] || die "not a serial number: $arg"
        serial[$zone]=${arg#*=}
    fi
done

sorted_lines() { grep -v '^$' <<<"$1" | sort || true; }
zone_of_line() { sed -n 's/^zone: name: "\([^"]*\)".*/\1/p' <<<"$1"; }

old=$(sorted_lines "$(cat "$DATADIR/zones.conf" 2>/dev/null || true)")
new=$(sorted_lines "$(zones_conf "$DATADIR")")
gone=$(comm -23 <(echo "$old") <(echo "$new") | grep -v '^$' || true)   # removed or changed
added=$(comm -13 <(echo "$old") <(echo "$new") | grep -v '^$' || true)  # new or changed
added_zones=$(zone_of_line "$added")

# check the zone files before NSD sees them: NSD itself only logs a broken file, then
# answers SERVFAIL for that zone
if [ ${#targets[@]} -eq 0 ]; then
    for zone in $(zone_names "$DATADIR"); do check_zone "$DATADIR" "$zone"; done
else
    for zone in "${targets[@]}" $added_zones; do
        [ ! -f "$DATADIR/zones/$zone.zone" ] || check_zone "$DATADIR" "$zone"
    done
fi

touch "$DATADIR/nsd.log"
logsize=$(stat -c %s "$DATADIR/nsd.log")
write_zones_conf() {
    { [ -z "$1" ] || echo "$1"; } > "$DATADIR/zones.conf.tmp"
    mv -f "$DATADIR/zones.conf.tmp" "$DATADIR/zones.conf"
}

# 1. the zone set
if [ -n "$gone" ]; then
    write_zones_conf "$(comm -12 <(echo "$old") <(echo "$new") | grep -v '^$' || true)"
    control "$DATADIR" reconfig
fi
if [ -n "$added" ]; then
    write_zones_conf "$new"
    control "$DATADIR" reconfig
fi

# 2. the changed zones that were served before (an added zone was read by reconfig)
if [ ${#targets[@]} -eq 0 ]; then
    control "$DATADIR" reload
else
    for zone in "${targets[@]}"; do
        if [ -f "$DATADIR/zones/$zone.zone" ] && ! grep -qxF "$zone" <<<"$added_zones"; then
            control "$DATADIR" reload "$zone"
        fi
    done
fi

# 3. wait until it is served
[ "$WAIT" = 1 ] || exit 0
expect() {
    if [ -f "$DATADIR/zones/$1.zone" ]; then
        want[$1]=${serial[$1]:-SOA}
    elif [ -f "$DATADIR/servfail/$1" ]; then
        want[$1]=SERVFAIL
    else
        want[$1]=GONE
    fi
}
for zone in $(zone_of_line "$gone") $added_zones "${targets[@]}"; do expect "$zone"; done
if [ ${#targets[@]} -eq 0 ]; then
    for zone in $(zone_names "$DATADIR") $(servfail_names "$DATADIR"); do expect "$zone"; done
fi
checks=()
for zone in "${!want[@]}"; do checks+=("$zone:${want[$zone]}"); done
if [ ${#checks[@]} -gt 0 ] && ! dns_wait "$PORT" "${NSD_WAIT_SECONDS:-10}" "${checks[@]}"; then
    log "NSD on 127.0.0.1:$PORT did not serve the change; log follows"
    tail -c +$((logsize + 1)) "$DATADIR/nsd.log" | grep -v 'control c' >&2 || true
    exit 1
fi
