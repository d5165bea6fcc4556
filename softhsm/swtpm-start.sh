#!/usr/bin/env bash
# Starts a private swtpm (TPM 2.0 simulator) on free loopback TCP ports, with its state in
# DIR/state; it stops by itself after LIFETIME seconds (default 3600), or with
# softhsm/swtpm-stop.sh DIR. Installs swtpm, tpm2-tools and tpm2-openssl when missing.
#
#   softhsm/swtpm-start.sh [--unix] DIR [LIFETIME_SECONDS] [LOG_LEVEL]
#   . DIR/env        # TPM2TOOLS_TCTI, TPM2OPENSSL_TCTI, SWTPM_PORT, SWTPM_PID
#                    # --unix: TPM_DEVICE=DIR/tpm.sock, SWTPM_SOCKET, SWTPM_PID
#
# --unix serves the TPM on the UNIX socket DIR/tpm.sock (as the Go helper's tests do),
# reached by ra-signer with TPM_DEVICE=DIR/tpm.sock; tpm2-tools cannot reach it.
# LOG_LEVEL 20 logs every TPM command to DIR/swtpm.log.
set -euo pipefail
usage() { sed -n '2,12p' "$0" >&2; exit 2; }
unix=()
if [ "${1:-}" = --unix ]; then unix=(--unix); shift; fi
[ $# -ge 1 ] || usage
# shellcheck disable=SC1091
. "$(dirname "$0")/swtpm-lib.sh"
tpm_start "${unix[@]}" "$1" "${2:-3600}" "${3:-}"
cat "$1/env"
