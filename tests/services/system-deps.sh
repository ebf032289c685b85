#!/usr/bin/env bash
# Install the Debian packages Rua needs, in one apt-get call, only those missing.
#   system-deps.sh run    what `make run` needs (Python's venv module)
#   system-deps.sh test   that, plus the real servers the test suite starts
# Without root (and without apt) it says what is missing and leaves it to the user.
set -euo pipefail
mode=${1:-test}
need=()
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ "$mode" = test ]; then
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
    [ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/imap ] || need+=(dovecot-imapd)
    { command -v nsd >/dev/null || [ -x /usr/sbin/nsd ]; } || need+=(nsd)
    # the dashboard tests drive Debian's Chromium through playwright (never `playwright install`)
    [ -x /usr/bin/chromium ] || need+=(chromium)
    fc-list 2>/dev/null | grep -q . || need+=(fonts-dejavu-core)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "system-deps: missing Debian packages: ${need[*]} (run as root, or install them)" >&2
    exit 0
fi
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >&2
