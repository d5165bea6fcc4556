#!/usr/bin/env bash
# Whole-process `credential-process` with file keys (RSA-2048, P-256) against ra-emulator
# over loopback HTTPS: median wall time and peak RSS over 20 runs, and the release binary's
# size. Builds the release binaries first. Where libtss2 is installed, then P-256 again with
# the build that holds the TPM backend: the package's one binary before it shipped two
# (docs/package.md), whose every run loads libtss2 and libcrypto.
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
if pkg-config --exists tss2-esys 2>/dev/null; then
  cargo build --release --quiet --features pkcs11,tpm --bin ra-signer
  cp "$bin/ra-signer" "$work/ra-signer-tpm"
  # target/release/ra-signer is a hard link to cargo's own artifact: never written to, only
  # linked again by cargo, here back to the default build the other benchmarks expect.
  cargo build --release --quiet --bins
  python3 bench/measure.py "credential-process file key p256, pkcs11 + tpm build" \
    "$work/ra-signer-tpm" credential-process \
    --certificate "$work/p256.pem" --private-key "$work/p256.key" \
    --trust-anchor-arn $ta --profile-arn $pr --role-arn $ro \
    --endpoint "$url" --ca-bundle "$work/tls.pem"
fi
