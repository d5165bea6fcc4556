#!/usr/bin/env bash
# Whole-process `credential-process` with file keys (RSA-2048, P-256) against ra-emulator
# over loopback HTTPS: median wall time and peak RSS over 20 runs, and the release binary's
# size. Builds the release binaries first.
set -euo pipefail
cd "$(dirname "$0")/.."
# rustup installs cargo under ~/.cargo/bin, which a non-login shell may not have on PATH.
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) if [ -d "$HOME/.cargo/bin" ]; then PATH="$HOME/.cargo/bin:$PATH"; fi ;; esac
scripts/setup.sh
cargo build --release --quiet --bins
bin=target/release
work=$(mktemp -d); trap 'kill $emu 2>/dev/null || true; rm -rf "$work"' EXIT

# A throwaway PKI: root CA and two leaves.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 2 \
  -subj "/CN=Bench CA" -keyout "$work/ca.key" -out "$work/ca.pem" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
for kind in rsa p256; do
  case $kind in
    rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/$kind.key" 2>/dev/null ;;
    p256) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/$kind.key" 2>/dev/null ;;
  esac
  openssl req -new -key "$work/$kind.key" -subj "/CN=bench-$kind" -out "$work/$kind.csr"
  openssl x509 -req -in "$work/$kind.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -set_serial 0x$(openssl rand -hex 8) -days 1 -sha256 -out "$work/$kind.pem" 2>/dev/null
done

ta=arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/bench
pr=arn:aws:rolesanywhere:us-east-1:123456789012:profile/bench
ro=arn:aws:iam::123456789012:role/bench
"$bin/ra-emulator" --trust-anchor-ca "$work/ca.pem" --trust-anchor-arn $ta --profile-arn $pr \
  --role-arn $ro --ready-file "$work/ready" --tls-ca-out "$work/tls.pem" --log /dev/null \
  --exit-after 600 >/dev/null & emu=$!
for _ in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.05; done
url=$(cat "$work/ready")

for kind in rsa p256; do
  python3 bench/measure.py "credential-process file key $kind" "$bin/ra-signer" credential-process \
    --certificate "$work/$kind.pem" --private-key "$work/$kind.key" \
    --trust-anchor-arn $ta --profile-arn $pr --role-arn $ro \
    --endpoint "$url" --ca-bundle "$work/tls.pem"
done
echo "release binary ra-signer: $(stat -c %s $bin/ra-signer) bytes ($(( $(stat -c %s $bin/ra-signer) / 1024 )) KiB)"
