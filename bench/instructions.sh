#!/usr/bin/env bash
# Instructions one `credential-process` costs, counted by callgrind (repeatable whatever else
# the machine does): file keys (P-256 and RSA-2048) with only the private CA as trust store
# (--ca-bundle), P-256 with the system bundle plus the private CA (SSL_CERT_FILE, with and
# without SSL_CERT_DIR), a --cache hit, a SoftHSM2 P-256 key (with the PKCS#11 calls it
# makes, through pkcs11-spy) and a swtpm P-256 key file (with the TPM commands it sends).
# Beside them, the floor programs of examples/: the same key's work alone (load, sign), and
# the same followed by the HTTPS call alone (examples/floor/https.rs), so that what
# ra-signer adds over the unavoidable is measured. Then the package's two builds: a file
# key with the one binary that holds the TPM backend, and the share of /usr/bin/ra-signer
# when it hands a TPM key to its TPM build. Against ra-emulator over loopback HTTPS;
# release builds. Prints one line per run.
set -euo pipefail
cd "$(dirname "$0")/.."
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) if [ -d "$HOME/.cargo/bin" ]; then PATH="$HOME/.cargo/bin:$PATH"; fi ;; esac
scripts/setup.sh
command -v valgrind >/dev/null || { echo "instructions: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
cargo build --release --quiet --bins --example file_floor --example https_floor
bin=target/release
work=$(mktemp -d); trap 'kill $emu 2>/dev/null || true; rm -rf "$work"' EXIT
# The package's layout (src/tpm_build.rs): this default build, without the TPM backend, is
# its /usr/bin/ra-signer; the `tpm` build below goes in as lib/ra-signer/ra-signer-tpm.
mkdir -p "$work/pkg/bin" "$work/pkg/lib/ra-signer"
cp "$bin/ra-signer" "$work/pkg/bin/ra-signer"

source bench/lib.sh
bench_pki
bench_emulator 900
ta=$bench_ta pr=$bench_pr ro=$bench_ro
# The system bundle with the emulator's CA appended, as a machine trusting a private CA has.
cat /etc/ssl/certs/ca-certificates.crt "$work/tls.pem" > "$work/system-plus-private.pem"

# Prints "NAME: N instructions" for one run of `ra-signer credential-process ARGS` (of
# $program ARGS when set), in the environment env_args adds. A run that fails ends the
# bench, unless $may_fail is set.
count() {
  local name=$1; shift
  local out="$work/callgrind.out"
  local cmd=("$bin/ra-signer" credential-process)
  [ -n "${program:-}" ] && cmd=("$program")
  env "${env_args[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" --trace-children=no \
    "${cmd[@]}" "$@" >/dev/null 2>"$work/valgrind.log" \
    || [ -n "${may_fail:-}" ] || { cat "$work/valgrind.log" >&2; exit 1; }
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
# The floors of the two file-key runs: the key loaded and one signature, then the HTTPS call
# (no CLI, no certificate, no request signing, no HTTP library or runtime), and that call
# alone.
program=$bin/examples/file_floor count "file P-256 floor (file_floor + HTTPS)" \
  "$work/p256.key" p256 "$url" "$work/tls.pem"
program=$bin/examples/file_floor count "file RSA-2048 floor (file_floor + HTTPS)" \
  "$work/rsa.key" rsa "$url" "$work/tls.pem"
program=$bin/examples/file_floor count "file RSA-2048 signature alone (file_floor)" \
  "$work/rsa.key" rsa
program=$bin/examples/https_floor count "the HTTPS call alone (https_floor)" \
  "$url" "$work/tls.pem"
env_args=(-u AWS_CA_BUNDLE -u SSL_CERT_DIR SSL_CERT_FILE="$work/system-plus-private.pem")
count "file P-256, system bundle + private CA" \
  --certificate "$work/p256.pem" --private-key "$work/p256.key" "${session[@]}"
# The same with the system's certificate directory too, as OpenSSL's variables name it on
# machines that set both (some CI images do).
env_args=(-u AWS_CA_BUNDLE SSL_CERT_FILE="$work/system-plus-private.pem" SSL_CERT_DIR=/etc/ssl/certs)
count "file P-256, same + SSL_CERT_DIR=/etc/ssl/certs" \
  --certificate "$work/p256.pem" --private-key "$work/p256.key" "${session[@]}"
# A --cache hit: the first run stores, the counted one reads the keyring (skipped where the
# session keyring cannot be used, as in some containers).
env_args=()
if "$bin/ra-signer" credential-process --certificate "$work/p256.pem" --private-key "$work/p256.key" \
    "${session[@]}" --ca-bundle "$work/tls.pem" --cache >/dev/null 2>&1; then
  count "file P-256, --cache hit" \
    --certificate "$work/p256.pem" --private-key "$work/p256.key" "${session[@]}" --ca-bundle "$work/tls.pem" --cache
fi

# A SoftHSM2 P-256 key, beside the token's floor (examples/pkcs11_floor: load the module,
# find the token, log in, find the key, sign once; no certificate, no HTTP).
. softhsm/lib.sh
sh_require_tools
cargo build --release --quiet --example pkcs11_floor
softhsm/make-token.sh "$work/hsm" >/dev/null
. "$work/hsm/env.sh"
"$bin/ra-emulator" --trust-anchor-ca "$work/hsm/ca/root.pem" --trust-anchor-arn $ta \
  --profile-arn $pr --role-arn $ro --ready-file "$work/ready-hsm" \
  --tls-ca-out "$work/tls-hsm.pem" --log /dev/null --exit-after 900 >/dev/null & emu_hsm=$!
trap 'kill $emu $emu_hsm 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$work/ready-hsm" ] && break; sleep 0.05; done
# The PKCS#11 calls of one more run of COMMAND, through OpenSC's pkcs11-spy when installed
# ("@module" in the arguments stands for the module).
spy=$(ls /usr/lib/*/pkcs11/pkcs11-spy.so /usr/lib/pkcs11/pkcs11-spy.so 2>/dev/null | head -1 || true)
pkcs11_calls() {
  if [ -z "$spy" ]; then echo "  (no pkcs11-spy: calls not counted)"; return; fi
  local args=() a
  for a in "$@"; do [ "$a" = @module ] && a=$spy; args+=("$a"); done
  rm -f "$work/spy.log"
  env "${env_args[@]}" PKCS11SPY="$RA_SIGNER_TEST_MODULE" PKCS11SPY_OUTPUT="$work/spy.log" \
    "${args[@]}" >/dev/null
  local n
  n=$(grep -cE '^[0-9]+: C_' "$work/spy.log")
  echo "  $n PKCS#11 calls: $(grep -E '^[0-9]+: C_' "$work/spy.log" | awk '{ print $2 }' |
    uniq -c | awk '{ printf "%s%s%s", (NR > 1 ? ", " : ""), $2, ($1 > 1 ? " x" $1 : "") }')"
}
env_args=(RA_SIGNER_PKCS11_PIN=1234)
hsm_args=(--pkcs11-uri "pkcs11:token=ra-test;object=p256" --trust-anchor-arn $ta
  --profile-arn $pr --role-arn $ro --endpoint "$(cat "$work/ready-hsm")"
  --ca-bundle "$work/tls-hsm.pem")
count "SoftHSM2 P-256 (--ca-bundle)" --pkcs11-lib "$RA_SIGNER_TEST_MODULE" "${hsm_args[@]}"
pkcs11_calls "$bin/ra-signer" credential-process --pkcs11-lib @module "${hsm_args[@]}"
program=target/release/examples/pkcs11_floor count \
  "SoftHSM2 P-256 floor (pkcs11_floor)" "$RA_SIGNER_TEST_MODULE" ra-test p256 ec
pkcs11_calls target/release/examples/pkcs11_floor @module ra-test p256 ec
program=target/release/examples/pkcs11_floor count \
  "SoftHSM2 P-256 floor + HTTPS (pkcs11_floor)" "$RA_SIGNER_TEST_MODULE" ra-test p256 ec \
  "$(cat "$work/ready-hsm")" "$work/tls-hsm.pem"

# A TPM P-256 key file (tpm2-openssl's, under the owner hierarchy) in a swtpm that logs its
# commands, beside the TPM's floor (examples/tpm_floor: the same CreatePrimary, Load,
# FlushContext, Sign, FlushContext from a minimal program; no certificate, no HTTP). The
# `tpm` build links libtss2 and through it libcrypto: both pay that.
. softhsm/swtpm-lib.sh
tpm_require_tools
cargo build --release --quiet --features tpm --bins --example tpm_floor
cp "$bin/ra-signer" "$work/pkg/lib/ra-signer/ra-signer-tpm"
tpm_start "$work/tpm" 900 20 >/dev/null
trap 'kill $emu $emu_hsm 2>/dev/null || true; tpm_stop "$work/tpm"; rm -rf "$work"' EXIT
openssl genpkey -provider tpm2 -provider base -algorithm EC -pkeyopt group:P-256 \
  -out "$work/tpm-p256.key" 2>/dev/null
tpm_pubkey "$work/tpm-p256.key" "$work/tpm-p256.pub.pem"
openssl x509 -new -force_pubkey "$work/tpm-p256.pub.pem" -subj "/CN=bench-tpm-p256" \
  -CA "$work/ca.pem" -CAkey "$work/ca.key" -set_serial 0x$(openssl rand -hex 8) -days 1 \
  -sha256 -out "$work/tpm-p256.pem" 2>/dev/null
# swtpm answers the first ECDSA Sign after it starts TPM_RC_RETRY (libtss2 sends it again):
# one uncounted signature first, so that neither counted run pays it.
target/release/examples/tpm_floor "$TPM2TOOLS_TCTI" "$work/tpm-p256.key" >/dev/null
tpm_log=$work/tpm/swtpm.log
# count, then the TPM commands that run sent (from swtpm's log).
count_tpm() {
  local before
  before=$(wc -c <"$tpm_log")
  count "$@"
  printf '  %s\n' "$(tail -c +$((before + 1)) "$tpm_log" | tpm_command_count)"
}
env_args=()
count_tpm "swtpm P-256 key file (--ca-bundle)" --certificate "$work/tpm-p256.pem" \
  --private-key "$work/tpm-p256.key" --tpm-tcti "$TPM2TOOLS_TCTI" "${session[@]}" \
  --ca-bundle "$work/tls.pem"
# The package's /usr/bin/ra-signer hands a TPM key to its TPM build by exec, which ends
# callgrind's count of the first image: its share is counted against a TPM build that
# cannot run (mode 644), which adds only the error it then prints.
cp -r "$work/pkg" "$work/pkg-noexec"
chmod 644 "$work/pkg-noexec/lib/ra-signer/ra-signer-tpm"
may_fail=1 program=$work/pkg-noexec/bin/ra-signer count \
  "  the package's hand-over to it, up to exec" credential-process \
  --certificate "$work/tpm-p256.pem" --private-key "$work/tpm-p256.key" \
  --tpm-tcti "$TPM2TOOLS_TCTI" "${session[@]}" --ca-bundle "$work/tls.pem"
grep -q "cannot run" "$work/valgrind.log" || { cat "$work/valgrind.log" >&2; exit 1; }
# The file-key run again with this build: before the package split it in two, its one
# binary held the TPM backend, whose libraries every run then loaded.
program=$bin/ra-signer count "file P-256, the pkcs11 + tpm build (--ca-bundle)" \
  credential-process --certificate "$work/p256.pem" --private-key "$work/p256.key" \
  "${session[@]}" --ca-bundle "$work/tls.pem"
if "$bin/ra-signer" credential-process --certificate "$work/p256.pem" --private-key "$work/p256.key" \
    "${session[@]}" --ca-bundle "$work/tls.pem" --cache >/dev/null 2>&1; then
  program=$bin/ra-signer count "the same, a --cache hit" credential-process \
    --certificate "$work/p256.pem" --private-key "$work/p256.key" "${session[@]}" \
    --ca-bundle "$work/tls.pem" --cache
fi
program=target/release/examples/tpm_floor count_tpm "swtpm P-256 floor (tpm_floor)" \
  "$TPM2TOOLS_TCTI" "$work/tpm-p256.key"
program=target/release/examples/tpm_floor count_tpm "swtpm P-256 floor + HTTPS (tpm_floor)" \
  "$TPM2TOOLS_TCTI" "$work/tpm-p256.key" "$url" "$work/tls.pem"
