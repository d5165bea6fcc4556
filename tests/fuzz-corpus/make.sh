#!/usr/bin/env bash
# Regenerates the seed corpus of the fuzz targets (tests/it/fuzz/) from real tools: the
# openssl CLI for certificates and classic key files, Python's `cryptography` (through
# tests/it/mldsa_fixtures.py) for ML-DSA, and a private swtpm provisioned by
# softhsm/swtpm-provision.sh for TSS2 key files. Every key here is throwaway test material.
#
#   RA_SIGNER_TEST_PYTHON=target/test-venv/bin/python tests/fuzz-corpus/make.sh
#
# The text seeds (pkcs11-uri/, create-session/, rfc3339/) and the found-bug inputs
# (regress-*) are written by hand and left alone.
set -euo pipefail
cd "$(dirname "$0")"
repo=$(cd ../.. && pwd)
python=${RA_SIGNER_TEST_PYTHON:-$repo/target/test-venv/bin/python}
# The password of every encrypted seed; the fuzz targets answer it when asked.
pw=fuzz-password
tmp=$(mktemp -d); trap 'bash "$repo/softhsm/swtpm-stop.sh" "$tmp/tpm" 2>/dev/null || true; rm -rf "$tmp"' EXIT
ossl() { openssl "$@" 2>/dev/null; }

mkdir -p certs keys tss2
rm -f certs/seed-* keys/seed-* tss2/seed-*

# A three-level chain: EC P-256 root and intermediate, an RSA 2048 and an EC P-384 leaf.
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/root.key"
ossl req -x509 -new -key "$tmp/root.key" -subj "/CN=Fuzz Root CA/O=ra-signer tests" -days 3650 \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -out "$tmp/root.pem"
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/int.key"
ossl req -new -key "$tmp/int.key" -subj "/CN=Fuzz Intermediate CA" -out "$tmp/int.csr"
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign\n' >"$tmp/ca.ext"
ossl x509 -req -in "$tmp/int.csr" -CA "$tmp/root.pem" -CAkey "$tmp/root.key" -set_serial 0x0102 \
  -days 3650 -extfile "$tmp/ca.ext" -out "$tmp/int.pem"
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectAltName=DNS:leaf.example\n' >"$tmp/leaf.ext"
ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/rsa.key"
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$tmp/p384.key"
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/p256.key"
for k in rsa p384 p256; do
  ossl req -new -key "$tmp/$k.key" -subj "/CN=fuzz $k leaf/OU=a, b+c/C=DE" -out "$tmp/$k.csr"
  # A 20-byte serial with the top bit set (a leading zero in DER), as CAs write them.
  ossl x509 -req -in "$tmp/$k.csr" -CA "$tmp/int.pem" -CAkey "$tmp/int.key" \
    -set_serial 0x8a3f5e0d9c2b7a6f1e4d3c2b1a0f9e8d7c6b5a49 -days 825 -extfile "$tmp/leaf.ext" \
    -out "$tmp/$k.pem"
done
cp "$tmp/root.pem" certs/seed-root-p256.pem
ossl x509 -in "$tmp/int.pem" -outform DER -out certs/seed-int-p256.der
ossl x509 -in "$tmp/rsa.pem" -outform DER -out certs/seed-leaf-rsa.der
{ echo "# leaf, intermediate, root"; cat "$tmp/p384.pem"; echo "subject=/CN=Fuzz Intermediate CA";
  cat "$tmp/int.pem" "$tmp/root.pem"; } >certs/seed-chain-p384.pem
sed 's/$/\r/' "$tmp/p256.pem" >certs/seed-leaf-p256-crlf.pem
cat "$tmp/p256.pem" "$tmp/p256.key" >certs/seed-cert-and-key.pem

# Every key format the file signer detects.
ossl pkey -in "$tmp/rsa.key" -out keys/seed-rsa-pkcs8.pem
ossl pkey -in "$tmp/rsa.key" -traditional -out keys/seed-rsa-pkcs1.pem
ossl rsa -in "$tmp/rsa.key" -traditional -outform DER -out keys/seed-rsa-pkcs1.der
ossl pkey -in "$tmp/p256.key" -outform DER -out keys/seed-p256-pkcs8.der
{ ossl ecparam -name prime256v1; ossl ec -in "$tmp/p256.key"; } >keys/seed-p256-sec1.pem
ossl ec -in "$tmp/p384.key" -outform DER -out keys/seed-p384-sec1.der
# Cheap key derivation, so that the fuzzer spends its time in the parsers.
ossl pkcs8 -topk8 -in "$tmp/p256.key" -v2 aes-256-cbc -v2prf hmacWithSHA256 -iter 1 \
  -passout "pass:$pw" -out keys/seed-p256-pbkdf2.pem
ossl pkcs8 -topk8 -in "$tmp/p384.key" -scrypt -scrypt_N 16 -scrypt_r 1 -scrypt_p 1 \
  -passout "pass:$pw" -outform DER -out keys/seed-p384-scrypt.der
ossl pkcs12 -export -inkey "$tmp/p256.key" -in "$tmp/p256.pem" -certfile "$tmp/int.pem" \
  -iter 1 -maciter -passout "pass:$pw" -out keys/seed-p256.p12
# The empty password (opened without asking), and the legacy 3DES/RC2 kind.
ossl pkcs12 -export -inkey "$tmp/rsa.key" -in "$tmp/rsa.pem" -passout pass: -iter 1 -maciter \
  -out keys/seed-rsa-nopass.p12
ossl pkcs12 -export -legacy -inkey "$tmp/p384.key" -in "$tmp/p384.pem" -iter 1 -maciter \
  -passout "pass:$pw" -out keys/seed-p384-legacy.p12
cat "$tmp/p384.pem" "$tmp/p384.key" >keys/seed-p384-cert-and-key.pem

# ML-DSA, from an implementation independent of ours.
mkdir "$tmp/mldsa"
"$python" "$repo/tests/it/mldsa_fixtures.py" "$tmp/mldsa" "$pw" >/dev/null
cp "$tmp/mldsa/mldsa44-seed.pem" keys/seed-mldsa44-seed.pem
cp "$tmp/mldsa/mldsa44-both.pem" keys/seed-mldsa44-both.pem
openssl base64 -d -in <(grep -v -- ----- "$tmp/mldsa/mldsa44-expanded.pem") -out keys/seed-mldsa44-expanded.der
cp "$tmp/mldsa/mldsa44.pem" certs/seed-leaf-mldsa44.pem

# TSS2 key files from tpm2-openssl and tpm2-tools.
bash "$repo/softhsm/swtpm-start.sh" "$tmp/tpm" 600 >/dev/null
# shellcheck disable=SC1091
(. "$tmp/tpm/env" && bash "$repo/softhsm/swtpm-provision.sh" "$tmp/tss2" 2>/dev/null)
cp "$tmp/tss2/ossl-p256.key" tss2/seed-ossl-p256.pem
cp "$tmp/tss2/ossl-rsa.key" tss2/seed-ossl-rsa.pem
cp "$tmp/tss2/tools-p384.key" tss2/seed-tools-p384.pem
openssl base64 -d -in <(grep -v -- ----- "$tmp/tss2/ossl-p256-pw.key") -out tss2/seed-ossl-p256-pw.der
echo "fuzz corpus written under $PWD" >&2
