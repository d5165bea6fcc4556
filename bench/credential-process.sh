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

source bench/lib.sh
bench_pki
bench_emulator 600
ta=$bench_ta pr=$bench_pr ro=$bench_ro

for kind in rsa p256; do
  python3 bench/measure.py "credential-process file key $kind" "$bin/ra-signer" credential-process \
    --certificate "$work/$kind.pem" --private-key "$work/$kind.key" \
    --trust-anchor-arn $ta --profile-arn $pr --role-arn $ro \
    --endpoint "$url" --ca-bundle "$work/tls.pem"
done
echo "release binary ra-signer: $(stat -c %s $bin/ra-signer) bytes ($(( $(stat -c %s $bin/ra-signer) / 1024 )) KiB)"
