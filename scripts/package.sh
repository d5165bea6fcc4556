#!/usr/bin/env bash
# Builds the Debian package target/debian/ra-signer_VERSION_ARCH.deb (docs/package.md):
# two release builds, /usr/bin/ra-signer without the TPM backend and
# /usr/lib/ra-signer/ra-signer-tpm with it (src/tpm_build.rs: the first runs TPM commands
# through the second, so no other run loads libtss2 and libcrypto), then the manual pages
# and completions the binary generates into target/package-assets, then
# `cargo deb --no-build` with [package.metadata.deb].
#
#   scripts/package.sh                package the two release builds, built here
#   scripts/package.sh --binary PATH --tpm-binary PATH
#                                     package these instead (the tests package the
#                                     binaries they already built, so CI builds no release)
# Prints the .deb's path on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
# rustup installs cargo under ~/.cargo/bin, which a non-login shell may not have on PATH.
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) if [ -d "$HOME/.cargo/bin" ]; then PATH="$HOME/.cargo/bin:$PATH"; fi ;; esac

binary="" tpm_binary=""
while [ $# -gt 0 ]; do
  case $1 in
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --tpm-binary) tpm_binary=${2:?--tpm-binary needs a path}; shift 2 ;;
    *) echo "usage: $0 [--binary PATH --tpm-binary PATH]" >&2; exit 2 ;;
  esac
done
if [ -n "$binary$tpm_binary" ] && { [ -z "$binary" ] || [ -z "$tpm_binary" ]; }; then
  echo "usage: $0 [--binary PATH --tpm-binary PATH]: both or neither" >&2
  exit 2
fi

if ! command -v cargo-deb >/dev/null; then
  echo "package: cargo-deb is missing: run scripts/setup.sh" >&2
  exit 1
fi

assets=target/package-assets
rm -rf "$assets"
mkdir -p "$assets/bin" "$assets/man" "$assets/completions"
if [ -z "$binary" ]; then
  # One after the other in the same target directory: each is copied out before the next
  # build replaces target/release/ra-signer.
  echo "package: building ra-signer-tpm (release, pkcs11 + tpm)…" >&2
  cargo build --release --quiet --locked --features pkcs11,tpm --bin ra-signer
  cp target/release/ra-signer "$assets/bin/ra-signer-tpm"
  echo "package: building ra-signer (release, pkcs11)…" >&2
  cargo build --release --quiet --locked --no-default-features --features pkcs11 --bin ra-signer
  cp target/release/ra-signer "$assets/bin/ra-signer"
else
  cp "$binary" "$assets/bin/ra-signer"
  cp "$tpm_binary" "$assets/bin/ra-signer-tpm"
fi
# A debug binary (the tests') carries its symbols; a release one is stripped already.
strip --strip-unneeded "$assets/bin/ra-signer" "$assets/bin/ra-signer-tpm"
if readelf -d "$assets/bin/ra-signer" | grep -q 'NEEDED.*libtss2'; then
  echo "package: ${binary:-the pkcs11 build} links libtss2: /usr/bin/ra-signer must be the build without the TPM backend" >&2
  exit 1
fi
bin="$assets/bin/ra-signer"
"$bin" man --out-dir "$assets/man"
"$bin" completions bash > "$assets/completions/ra-signer"
"$bin" completions zsh > "$assets/completions/_ra-signer"
"$bin" completions fish > "$assets/completions/ra-signer.fish"

out=target/debian
mkdir -p "$out"
deb=$(cargo deb --no-build --no-strip --quiet --output "$out" | tail -n 1)
echo "$deb"
