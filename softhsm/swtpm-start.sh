#!/usr/bin/env bash
# Starts a private swtpm (TPM 2.0 simulator) on free loopback TCP ports, with its state in
# DIR/state; it stops by itself after LIFETIME seconds (default 3600), or with
# softhsm/swtpm-stop.sh DIR. Installs swtpm, tpm2-tools and tpm2-openssl when missing.
#
#   softhsm/swtpm-start.sh DIR [LIFETIME_SECONDS] [LOG_LEVEL]
#   . DIR/env        # TPM2TOOLS_TCTI, TPM2OPENSSL_TCTI, SWTPM_PORT, SWTPM_PID
#
# LOG_LEVEL 20 logs every TPM command to DIR/swtpm.log.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
# shellcheck disable=SC1091
. "$(dirname "$0")/swtpm-lib.sh"
tpm_start "$1" "${2:-3600}" "${3:-}"
cat "$1/env"
