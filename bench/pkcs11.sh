#!/usr/bin/env bash
# Whole-process `credential-process` with SoftHSM2 keys (RSA-2048, RSA-3072, P-256, P-384)
# against ra-emulator over loopback HTTPS, median of 20 runs, beside:
#   - the file-key figure (same CA, same chain length, --intermediates), and
#   - the token's floor: examples/pkcs11_floor, which only loads the module, logs in, finds
#     the key and signs once.
# Then one credential through OpenSC's pkcs11-spy: PKCS#11 calls per credential.
#
# Usage: bench/pkcs11.sh            (RUNS=N to change the run count)
set -euo pipefail
cd "$(dirname "$0")/.."
. softhsm/lib.sh
sh_require_tools
cargo build --release --quiet --bins
cargo build --release --quiet --example pkcs11_floor
bin=target/release
floor=target/release/examples/pkcs11_floor
work=$(mktemp -d)
emu=
trap '[ -n "$emu" ] && kill $emu 2>/dev/null; rm -rf "$work"' EXIT

softhsm/make-token.sh "$work/hsm" >/dev/null
. "$work/hsm/env.sh"
export RA_SIGNER_PKCS11_PIN=1234
module=$RA_SIGNER_TEST_MODULE
spy=
for s in /usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so /usr/lib/aarch64-linux-gnu/pkcs11/pkcs11-spy.so /usr/lib/pkcs11/pkcs11-spy.so; do
    [ -f "$s" ] && spy=$s && break
done

# File keys from the same intermediate CA, for the comparison.
for kind in rsa2048 p256; do
    case $kind in
    rsa2048) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/$kind.key" 2>/dev/null ;;
    p256) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/$kind.key" 2>/dev/null ;;
    esac
    openssl req -new -key "$work/$kind.key" -subj "/CN=bench-file-$kind" -out "$work/$kind.csr"
    ca_sign_csr "$work/hsm/ca" "$work/$kind.csr" "$work/$kind.pem"
done

ta=arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/bench
pr=arn:aws:rolesanywhere:us-east-1:123456789012:profile/bench
ro=arn:aws:iam::123456789012:role/bench
"$bin/ra-emulator" --trust-anchor-ca "$work/hsm/ca/root.pem" --trust-anchor-arn $ta \
    --profile-arn $pr --role-arn $ro --ready-file "$work/ready" --tls-ca-out "$work/tls.pem" \
    --log /dev/null --exit-after 900 &
emu=$!
for _ in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.05; done
url=$(cat "$work/ready")
common=(--trust-anchor-arn $ta --profile-arn $pr --role-arn $ro --endpoint "$url" --ca-bundle "$work/tls.pem")

# Every configuration runs once per round, rounds repeated RUNS times: interleaving spreads
# any background load evenly over the configurations being compared.
cases=()
for kind in rsa2048 p256; do
    cases+=("file $kind|$bin/ra-signer credential-process --certificate $work/$kind.pem --private-key $work/$kind.key --intermediates $work/hsm/ca/int.pem ${common[*]}")
done
for kind in rsa2048 rsa3072 p256 p384; do
    cases+=("pkcs11 $kind|$bin/ra-signer credential-process --pkcs11-uri pkcs11:token=ra-test;object=$kind --pkcs11-lib $module ${common[*]}")
    case $kind in rsa*) alg=rsa ;; *) alg=ec ;; esac
    cases+=("floor $kind|$floor $module ra-test $kind $alg")
done
printf '%s\n' "${cases[@]}" | RUNS=${RUNS:-20} python3 -c '
import os, statistics, subprocess, sys, time
cases = [l.rstrip("\n").split("|", 1) for l in sys.stdin if l.strip()]
runs = int(os.environ["RUNS"])
times = {name: [] for name, _ in cases}
for _ in range(2):  # warm-up: page cache, p11-kit config
    for name, cmd in cases:
        subprocess.run(cmd.split(" "), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(runs):
    for name, cmd in cases:
        t = time.perf_counter()
        p = subprocess.run(cmd.split(" "), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times[name].append((time.perf_counter() - t) * 1000)
        if p.returncode != 0:
            sys.exit(f"{name} failed: {p.stderr.decode()}")
med = {n: statistics.median(v) for n, v in times.items()}
print(f"# whole process, median of {runs} interleaved runs, {os.cpu_count()} cores, ms")
print("| case | median | min | max |")
print("|---|---:|---:|---:|")
for name, _ in cases:
    v = times[name]
    print(f"| {name} | {med[name]:.1f} | {min(v):.1f} | {max(v):.1f} |")
print()
print("| key | pkcs11 | file key | floor | pkcs11 - (file + floor) |")
print("|---|---:|---:|---:|---:|")
for kind in ["rsa2048", "rsa3072", "p256", "p384"]:
    file = med["file rsa2048"] if kind.startswith("rsa") else med["file p256"]
    p11, floor = med["pkcs11 " + kind], med["floor " + kind]
    print(f"| {kind} | {p11:.1f} | {file:.1f} | {floor:.1f} | {p11 - file - floor:+.1f} |")
'

if [ -n "$spy" ]; then
    echo "# PKCS#11 calls per credential (pkcs11-spy)"
    for kind in rsa2048 p256; do
        log="$work/spy-$kind.log"
        PKCS11SPY=$module PKCS11SPY_OUTPUT=$log "$bin/ra-signer" credential-process \
            --pkcs11-uri "pkcs11:token=ra-test;object=$kind" --pkcs11-lib "$spy" "${common[@]}" >/dev/null
        total=$(grep -cE '^[0-9]+: C_' "$log")
        summary=$(grep -oE '^[0-9]+: C_[A-Za-z]+' "$log" | awk '{print $2}' | sort | uniq -c |
            awk '{printf "%s %s, ", $2, $1}')
        echo "$kind: $total calls: ${summary%, }"
    done
fi
