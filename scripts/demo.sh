#!/usr/bin/env bash
# The demo, on a fresh Debian machine: installs what it needs, builds ra-signer, makes a
# throwaway CA, puts a P-256 key inside a private SoftHSM2 token (generated there, never
# exported) with its certificate, starts ra-emulator (a local, signature-verifying
# CreateSession endpoint), and runs `credential-process --pkcs11-uri …`, which prints
# credentials. Everything lives in a temp dir and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
# rustup installs cargo under ~/.cargo/bin, which a non-login shell may not have on PATH.
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) if [ -d "$HOME/.cargo/bin" ]; then PATH="$HOME/.cargo/bin:$PATH"; fi ;; esac
scripts/setup.sh
echo "demo: building ra-signer (release)…" >&2
cargo build --release --quiet --bins
bin=$PWD/target/release

work=$(mktemp -d)
cleanup() { [ -n "${emu:-}" ] && kill "$emu" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

ta=arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/5f1a0b7e-demo-4c7e-9d3a-000000000001
pr=arn:aws:rolesanywhere:us-east-1:123456789012:profile/7c2d4e6f-demo-4a8b-b1c2-000000000002
ro=arn:aws:iam::123456789012:role/ra-signer-demo

echo "demo: a throwaway CA, and a key made inside a SoftHSM2 token…" >&2
eval "$(softhsm/demo-token.sh "$work")"   # sets SOFTHSM2_CONF, DEMO_URI, DEMO_CA, DEMO_PIN_FILE

"$bin/ra-emulator" --trust-anchor-ca "$DEMO_CA" --trust-anchor-arn $ta --profile-arn $pr \
  --role-arn $ro --ready-file "$work/ready" --tls-ca-out "$work/emulator-tls.pem" \
  --log "$work/emulator.log" --exit-after 120 >/dev/null & emu=$!
for _ in $(seq 200); do [ -s "$work/ready" ] && break; sleep 0.05; done
url=$(cat "$work/ready")

cat >&2 <<TXT
demo: ra-emulator listens on $url
demo: running
  ra-signer credential-process --pkcs11-uri '$DEMO_URI' \\
    --pkcs11-lib /usr/lib/softhsm/libsofthsm2.so --pkcs11-pin-file <pin file> \\
    --trust-anchor-arn $ta \\
    --profile-arn $pr \\
    --role-arn $ro --endpoint $url --ca-bundle <emulator's TLS CA>
TXT
"$bin/ra-signer" credential-process --pkcs11-uri "$DEMO_URI" \
  --pkcs11-lib /usr/lib/softhsm/libsofthsm2.so --pkcs11-pin-file "$DEMO_PIN_FILE" \
  --trust-anchor-arn $ta --profile-arn $pr --role-arn $ro \
  --endpoint "$url" --ca-bundle "$work/emulator-tls.pem"
echo "demo: the emulator verified the signature made inside the token:" >&2
tail -n 1 "$work/emulator.log" >&2
