#!/usr/bin/env bash
# A demo token in DIR: a private SoftHSM2 store, token "ra-demo" (user PIN in DIR/demo-pin),
# a P-256 key generated inside it (sensitive, never extractable), a throwaway CA (root +
# intermediate), the key's certificate and the intermediate stored on the token beside it.
#
# Prints shell assignments for `eval`:
#   SOFTHSM2_CONF (exported), DEMO_URI (the key), DEMO_CA (the root: the trust anchor),
#   DEMO_PIN_FILE, DEMO_MODULE (libsofthsm2.so)
#
# Usage: eval "$(softhsm/demo-token.sh DIR)"
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

dir=${1:?usage: softhsm/demo-token.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
sh_init "$dir/softhsm" >&2
pin=$(openssl rand -hex 4)
printf '%s\n' "$pin" >"$dir/demo-pin"
chmod 600 "$dir/demo-pin"
sh_token ra-demo "$pin" "$(openssl rand -hex 8)"
ca_init "$dir/demo-ca" "ra-signer demo"
sh_genkey ra-demo "$pin" demo-key 01 p256
sh_pubkey ra-demo "$pin" demo-key "$dir/demo-key.pub.pem"
ca_issue "$dir/demo-ca" "$dir/demo-key.pub.pem" "/O=ra-signer demo/CN=demo-host" "$dir/demo-key.pem"
sh_import_cert ra-demo "$pin" demo-key 01 "$dir/demo-key.pem"
sh_import_cert ra-demo "$pin" "ra-signer demo intermediate CA" "" "$dir/demo-ca/int.pem"
rm -f "$dir/demo-ca/root.key" "$dir/demo-ca/int.key"   # the CA is thrown away

printf 'export SOFTHSM2_CONF=%q\n' "$SOFTHSM2_CONF"
printf 'DEMO_URI=%q\n' "pkcs11:token=ra-demo;object=demo-key"
printf 'DEMO_CA=%q\n' "$dir/demo-ca/root.pem"
printf 'DEMO_PIN_FILE=%q\n' "$dir/demo-pin"
printf 'DEMO_MODULE=%q\n' "$SH_MODULE"
