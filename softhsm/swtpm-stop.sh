#!/usr/bin/env bash
# Stops the swtpm that softhsm/swtpm-start.sh started in DIR.
#
#   softhsm/swtpm-stop.sh DIR
set -euo pipefail
[ $# -eq 1 ] || { sed -n '2,4p' "$0" >&2; exit 2; }
# shellcheck disable=SC1091
. "$(dirname "$0")/swtpm-lib.sh"
tpm_stop "$1"
