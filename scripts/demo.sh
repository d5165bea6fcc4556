#!/usr/bin/env bash
# The demo, on a fresh Debian machine, from nothing to `aws s3 ls`: installs what it needs,
# builds ra-signer, makes a throwaway CA, puts a P-256 key inside a private SoftHSM2 token
# (generated there, never exported) with its certificate, starts ra-emulator (a local,
# signature-verifying CreateSession endpoint that also answers S3 ListBuckets signed with the
# credentials it issued), writes the identity once in a config file, checks the set-up with
# `doctor`, and runs the AWS CLI with a one-flag credential_process line. Everything lives in
# a temp dir and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
# rustup installs cargo under ~/.cargo/bin, which a non-login shell may not have on PATH.
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) if [ -d "$HOME/.cargo/bin" ]; then PATH="$HOME/.cargo/bin:$PATH"; fi ;; esac
scripts/setup.sh
echo "demo: building ra-signer (release)…" >&2
cargo build --release --quiet --bins
bin=$PWD/target/release
# The AWS CLI, from PyPI, in a virtualenv of its own.
venv=$PWD/target/demo-venv
if ! "$venv/bin/aws" --version >/dev/null 2>&1; then
  echo "demo: installing the AWS CLI in $venv…" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check awscli
fi

work=$(mktemp -d)
cleanup() { [ -n "${emu:-}" ] && kill "$emu" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

ta=arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/5f1a0b7e-demo-4c7e-9d3a-000000000001
pr=arn:aws:rolesanywhere:us-east-1:123456789012:profile/7c2d4e6f-demo-4a8b-b1c2-000000000002
ro=arn:aws:iam::123456789012:role/ra-signer-demo

echo "demo: a throwaway CA, and a key made inside a SoftHSM2 token…" >&2
eval "$(softhsm/demo-token.sh "$work")"   # sets SOFTHSM2_CONF, DEMO_URI, DEMO_CA, DEMO_PIN_FILE

"$bin/ra-emulator" --trust-anchor-ca "$DEMO_CA" --trust-anchor-arn $ta --profile-arn $pr \
  --role-arn $ro --s3-bucket ra-signer-demo --ready-file "$work/ready" \
  --tls-ca-out "$work/emulator-tls.pem" --log "$work/emulator.log" --exit-after 120 >/dev/null & emu=$!
for _ in $(seq 200); do [ -s "$work/ready" ] && break; sleep 0.05; done
url=$(cat "$work/ready")
echo "demo: ra-emulator listens on $url" >&2

# The identity, once: the key on the token, where its PIN is read from, the ARNs and the
# endpoint. No secret goes in this file.
config=$work/config.toml
cat >"$config" <<TOML
[identity.demo]
pkcs11-uri = "$DEMO_URI"
pkcs11-lib = "/usr/lib/softhsm/libsofthsm2.so"
pkcs11-pin-file = "$DEMO_PIN_FILE"
trust-anchor-arn = "$ta"
profile-arn = "$pr"
role-arn = "$ro"
endpoint = "$url"
ca-bundle = "$work/emulator-tls.pem"
TOML
echo "demo: $config:" >&2
sed 's/^/  /' "$config" >&2

echo "demo: ra-signer doctor --config $config --identity demo --trust-anchor-ca <the CA> --call" >&2
"$bin/ra-signer" doctor --config "$config" --identity demo --trust-anchor-ca "$DEMO_CA" --call >&2

cat >"$work/aws-config" <<INI
[profile demo]
credential_process = $bin/ra-signer credential-process --config $config --identity demo
region = us-east-1
INI
echo "demo: ~/.aws/config: credential_process = ra-signer credential-process --config $config --identity demo" >&2
echo "demo: aws s3 ls --profile demo --endpoint-url $url" >&2
AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE=/dev/null \
  AWS_CA_BUNDLE="$work/emulator-tls.pem" \
  "$venv/bin/aws" s3 ls --profile demo --endpoint-url "$url"
echo "demo: the emulator verified the signature made inside the token, then the S3 request signed with the credentials it issued:" >&2
tail -n 2 "$work/emulator.log" >&2
