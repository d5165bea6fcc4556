#!/usr/bin/env bash
# Instructions one `credential-process` costs, counted by callgrind (repeatable whatever else
# the machine does): file keys (P-256 and RSA-2048) with only the private CA as trust store
# (--ca-bundle), P-256 with the system bundle plus the private CA (SSL_CERT_FILE), and a
# --cache hit. Against ra-emulator over loopback HTTPS; release build. Prints one line per run.
set -euo pipefail
cd "$(dirname "$0")/.."
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) if [ -d "$HOME/.cargo/bin" ]; then PATH="$HOME/.cargo/bin:$PATH"; fi ;; esac
scripts/setup.sh
command -v valgrind >/dev/null || { echo "instructions: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
cargo build --release --quiet --bins
bin=target/release
work=$(mktemp -d); trap 'kill $emu 2>/dev/null || true; rm -rf "$work"' EXIT

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
  --exit-after 900 >/dev/null & emu=$!
for _ in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.05; done
url=$(cat "$work/ready")
# The system bundle with the emulator's CA appended, as a machine trusting a private CA has.
cat /etc/ssl/certs/ca-certificates.crt "$work/tls.pem" > "$work/system-plus-private.pem"

# Prints "NAME: N instructions" for one run of ra-signer with ARGS, in the environment
# env_args adds.
count() {
  local name=$1; shift
  local out="$work/callgrind.out"
  env "${env_args[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" --trace-children=no \
    "$bin/ra-signer" credential-process "$@" >/dev/null 2>"$work/valgrind.log" \
    || { cat "$work/valgrind.log" >&2; exit 1; }
  local n
  n=$(awk '/^summary:/ { print $2 }' "$out")
  awk -v name="$name:" -v n="$n" 'BEGIN { printf "%-48s %12d instructions (%.2f M)\n", name, n, n / 1e6 }'
}

session=(--trust-anchor-arn $ta --profile-arn $pr --role-arn $ro --endpoint "$url")
env_args=()
count "file P-256, private CA only (--ca-bundle)" \
  --certificate "$work/p256.pem" --private-key "$work/p256.key" "${session[@]}" --ca-bundle "$work/tls.pem"
count "file RSA-2048, private CA only (--ca-bundle)" \
  --certificate "$work/rsa.pem" --private-key "$work/rsa.key" "${session[@]}" --ca-bundle "$work/tls.pem"
env_args=(-u AWS_CA_BUNDLE SSL_CERT_FILE="$work/system-plus-private.pem")
count "file P-256, system bundle + private CA" \
  --certificate "$work/p256.pem" --private-key "$work/p256.key" "${session[@]}"
# A --cache hit: the first run stores, the counted one reads the keyring (skipped where the
# session keyring cannot be used, as in some containers).
env_args=()
if "$bin/ra-signer" credential-process --certificate "$work/p256.pem" --private-key "$work/p256.key" \
    "${session[@]}" --ca-bundle "$work/tls.pem" --cache >/dev/null 2>&1; then
  count "file P-256, --cache hit" \
    --certificate "$work/p256.pem" --private-key "$work/p256.key" "${session[@]}" --ca-bundle "$work/tls.pem" --cache
fi
