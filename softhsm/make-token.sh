#!/usr/bin/env bash
# Creates the SoftHSM2 test fixture in DIR (default: a new temp dir), and prints DIR.
#
#   DIR/softhsm2.conf, DIR/tokens/   private SoftHSM2 configuration and token store
#   DIR/pin                           the user PIN (1234), DIR/so-pin (5678)
#   DIR/ca/root.pem, ca/int.pem       the throwaway CA (root, intermediate) and its keys
#   DIR/certs/<label>.pem             every leaf certificate issued
#   DIR/env.sh                        `. DIR/env.sh` sets SOFTHSM2_CONF and RA_SIGNER_TEST_MODULE
#
# Token "ra-test" (serial ends in 80000000, so its slot id is 0) holds, each key generated
# inside the token unless said otherwise, each with its certificate (same label and CKA_ID),
# issued by the intermediate:
#   rsa2048 id 01, rsa3072 id 02, p256 id 03, p384 id 04
#   imported  id 05  P-256 key made by OpenSSL and imported (no public key object);
#                    its PEM stays in DIR/certs/imported.key for the file-key tests
#   always-rsa id 06, always-ec id 07   CKA_ALWAYS_AUTHENTICATE keys
#   intermediate (id 10), root (id 11)  the CA certificates
#   unrelated (id 12)                   a certificate from another CA
#   bare id 08                          a P-256 key with no certificate
# Token "ra-other": one P-256 key "p256" id 03 (certificate issued by the root directly).
# Tokens "dup" twice: same label, one P-256 key "k" each (ambiguous token selection).
#
# Usage: softhsm/make-token.sh [DIR]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

dir=${1:-$(mktemp -d -t ra-softhsm.XXXXXX)}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rm -rf "$dir/tokens" "$dir/ca" "$dir/certs"
sh_init "$dir"
mkdir -p "$dir/certs"
PIN=1234
SO=5678
printf '%s\n' "$PIN" >"$dir/pin"
printf '%s\n' "$SO" >"$dir/so-pin"
chmod 600 "$dir/pin" "$dir/so-pin"

ca_init "$dir/ca"
ca_init "$dir/other-ca" "unrelated"

T=ra-test
sh_token "$T" "$PIN" "$SO"
sh_move_to_slot0 "$T"
for spec in rsa2048:01 rsa3072:02 p256:03 p384:04; do
    sh_key_with_cert "$T" "$PIN" "${spec%%:*}" "${spec##*:}" "${spec%%:*}" "$dir/ca" "$dir/certs"
done

# A key made outside the token and imported: no public key object on the token.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/certs/imported.key" 2>/dev/null
openssl pkey -in "$dir/certs/imported.key" -pubout -out "$dir/certs/imported.pub.pem"
sh_import_key "$T" "$PIN" imported 05 "$dir/certs/imported.key"
ca_issue "$dir/ca" "$dir/certs/imported.pub.pem" "/O=ra-signer test/CN=imported" "$dir/certs/imported.pem"
sh_import_cert "$T" "$PIN" imported 05 "$dir/certs/imported.pem"

sh_key_with_cert "$T" "$PIN" always-rsa 06 rsa2048 "$dir/ca" "$dir/certs" --always-auth
sh_key_with_cert "$T" "$PIN" always-ec 07 p256 "$dir/ca" "$dir/certs" --always-auth
sh_genkey "$T" "$PIN" bare 08 p256

sh_import_cert "$T" "$PIN" intermediate 10 "$dir/ca/int.pem"
sh_import_cert "$T" "$PIN" root 11 "$dir/ca/root.pem"
sh_genkey "$T" "$PIN" scratch 99 p256
sh_pubkey "$T" "$PIN" scratch "$dir/certs/unrelated.pub.pem"
ca_issue "$dir/other-ca" "$dir/certs/unrelated.pub.pem" "/O=unrelated/CN=unrelated" "$dir/certs/unrelated.pem"
_sh_tool --token-label "$T" --login --pin "$PIN" --delete-object --type privkey --id 99 >/dev/null
_sh_tool --token-label "$T" --login --pin "$PIN" --delete-object --type pubkey --id 99 >/dev/null
sh_import_cert "$T" "$PIN" unrelated 12 "$dir/certs/unrelated.pem"

sh_token ra-other "$PIN" "$SO"
sh_genkey ra-other "$PIN" p256 03 p256
sh_pubkey ra-other "$PIN" p256 "$dir/certs/other-p256.pub.pem"
ca_issue "$dir/ca" "$dir/certs/other-p256.pub.pem" "/O=ra-signer test/CN=other-p256" "$dir/certs/other-p256.pem" root
sh_import_cert ra-other "$PIN" p256 03 "$dir/certs/other-p256.pem"

for _ in 1 2; do
    sh_token dup "$PIN" "$SO"
done
for slot in $(softhsm2-util --show-slots | awk '/^Slot / { s = $2 } /Label:/ && $2 == "dup" { print s }'); do
    _sh_tool --slot "$slot" --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 \
        --label k --id 01 --usage-sign --sensitive >/dev/null
done

cat >"$dir/env.sh" <<EOF
export SOFTHSM2_CONF=$dir/softhsm2.conf
export RA_SIGNER_TEST_MODULE=$SH_MODULE
EOF
echo "$dir"
