#!/usr/bin/env bash
# Restarts the TCP swtpm that softhsm/swtpm-start.sh started in DIR: same ports, same state,
# every transient object gone (a power cycle, as the fault tests need).
#
#   softhsm/swtpm-restart.sh DIR
set -euo pipefail
[ $# -eq 1 ] || { sed -n '2,5p' "$0" >&2; exit 2; }
# shellcheck disable=SC1091
. "$(dirname "$0")/swtpm-lib.sh"
tpm_restart "$1"
