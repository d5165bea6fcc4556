#!/usr/bin/env bash
# Whole-process `credential-process` with TPM keys in a private swtpm (tpm2-openssl key
# files under the owner hierarchy, a tpm2-tools key file under a persistent SRK, persistent
# keys) against ra-emulator over loopback HTTPS, median of 20 runs per key; then the TPM
# commands one credential sends, counted in swtpm's command log, and the library test that
# compares loading once with the Go helper's reload per signature.
#
# Usage: bench/tpm.sh            (RUNS=N to change the run count)
set -euo pipefail
cd "$(dirname "$0")/.."
. softhsm/swtpm-lib.sh
. bench/lib.sh
tpm_require_tools
cargo build --release --quiet --features tpm --bins
bin=target/release
work=$(mktemp -d)
emu=
trap '[ -n "$emu" ] && kill $emu 2>/dev/null; tpm_stop "$work/tpm"; tpm_stop "$work/logged"; rm -rf "$work"' EXIT

# One swtpm to provision and time, a copy of its state behind a logging swtpm to count.
tpm_start "$work/tpm" 1800 >/dev/null
tpm_provision "$work/fx" >/dev/null
tpm_stop "$work/tpm"
mkdir -p "$work/logged/state"
cp "$work/tpm/state/tpm2-00.permall" "$work/logged/state/"
tpm_start "$work/logged" 1800 20 >/dev/null
logged_tcti=$TPM2TOOLS_TCTI
tpm_start "$work/tpm" 1800 >/dev/null
tcti=$TPM2TOOLS_TCTI

ta=arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/bench
pr=arn:aws:rolesanywhere:us-east-1:123456789012:profile/bench
ro=arn:aws:iam::123456789012:role/bench
"$bin/ra-emulator" --trust-anchor-ca "$work/fx/ca/root.pem" --trust-anchor-arn $ta \
    --profile-arn $pr --role-arn $ro --ready-file "$work/ready" --tls-ca-out "$work/tls.pem" \
    --log /dev/null --exit-after 1800 >/dev/null &
emu=$!
for _ in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.05; done
url=$(cat "$work/ready")
common=(--trust-anchor-arn $ta --profile-arn $pr --role-arn $ro --endpoint "$url"
    --ca-bundle "$work/tls.pem" --intermediates "$work/fx/ca/int.pem")

# name  certificate  --private-key  extra flags
keys=(
    "file-p256|ossl-p256|$work/fx/ossl-p256.key|"
    "file-p384|ossl-p384|$work/fx/ossl-p384.key|"
    "file-rsa2048|ossl-rsa|$work/fx/ossl-rsa.key|"
    "file-p256-srk|tools-p256|$work/fx/tools-p256.key|--no-tpm-key-password"
    "handle-p256|handle-p256|handle:0x81000101|"
    "handle-p384|handle-p384|handle:0x81000103|"
    "handle-rsa2048|handle-rsa-pw|handle:0x81000102|"
)
export RA_SIGNER_TPM_KEY_PASSWORD=
echo "# credential-process with TPM keys (swtpm), whole process, median of ${RUNS:-20} runs ($(nproc) cores)"
for k in "${keys[@]}"; do
    IFS='|' read -r name cert key extra <<<"$k"
    pw=
    [ "$name" = handle-rsa2048 ] && pw=handlepw
    RA_SIGNER_TPM_KEY_PASSWORD=$pw python3 bench/measure.py "$name" "$bin/ra-signer" \
        credential-process --certificate "$work/fx/$cert.pem" --private-key "$key" \
        --tpm-tcti "$tcti" $extra "${common[@]}"
done

echo "# TPM commands per credential-process (swtpm command log; TPM_RC_RETRY answers, which libtss2 resends, counted apart)"
log=$work/logged/swtpm.log
for k in "${keys[@]}"; do
    IFS='|' read -r name cert key extra <<<"$k"
    pw=
    [ "$name" = handle-rsa2048 ] && pw=handlepw
    before=$(wc -c <"$log")
    RA_SIGNER_TPM_KEY_PASSWORD=$pw "$bin/ra-signer" credential-process \
        --certificate "$work/fx/$cert.pem" --private-key "$key" --tpm-tcti "$logged_tcti" \
        $extra "${common[@]}" >/dev/null
    echo "$name: $(tail -c +$((before + 1)) "$log" | tpm_command_count)"
done

echo "# loading once vs reloading per signature (library test, 10 credentials)"
cargo test --release --quiet --features tpm --lib signer::tpm::tests::tpm_commands_per_credential \
    -- --nocapture 2>&1 | grep -E "commands per process"
