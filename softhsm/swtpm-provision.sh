#!/usr/bin/env bash
# Provisions TPM keys and certificates in a running swtpm (or any TPM named by
# TPM2TOOLS_TCTI): a throwaway CA, keys made with the tpm2-openssl provider and with
# tpm2-tools, persistent keys, and a certificate for each. See tpm_provision in
# softhsm/swtpm-lib.sh for the list.
#
#   softhsm/swtpm-start.sh /tmp/tpm && . /tmp/tpm/env
#   softhsm/swtpm-provision.sh /tmp/tpm/fixtures
#
# Do not point it at a real TPM you care about: it makes objects persistent at
# 0x81000001, 0x81000002, 0x81000101..0x81000103.
set -euo pipefail
[ $# -eq 1 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
: "${TPM2TOOLS_TCTI:?set TPM2TOOLS_TCTI (source DIR/env from softhsm/swtpm-start.sh)}"
export TPM2OPENSSL_TCTI=${TPM2OPENSSL_TCTI:-$TPM2TOOLS_TCTI}
# shellcheck disable=SC1091
. "$(dirname "$0")/swtpm-lib.sh"
tpm_require_tools
tpm_provision "$1"
echo "provisioned TPM keys and certificates in $1" >&2
