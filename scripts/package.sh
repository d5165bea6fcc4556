#!/usr/bin/env bash
# Builds the Debian package target/debian/ra-signer_VERSION_ARCH.deb (docs/package.md):
# the release binary (pkcs11 and tpm), then the manual pages and completions it generates
# into target/package-assets, then `cargo deb --no-build` with [package.metadata.deb].
#
#   scripts/package.sh                 build the release binary and package it
#   scripts/package.sh --binary PATH   package PATH instead (the tests package the binary
#                                      they already built, so CI builds no release)
# Prints the .deb's path on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
# rustup installs cargo under ~/.cargo/bin, which a non-login shell may not have on PATH.
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) if [ -d "$HOME/.cargo/bin" ]; then PATH="$HOME/.cargo/bin:$PATH"; fi ;; esac

binary=""
case "${1:-}" in
  --binary) binary=${2:?--binary needs a path} ;;
  "") ;;
  *) echo "usage: $0 [--binary PATH]" >&2; exit 2 ;;
esac

if ! command -v cargo-deb >/dev/null; then
  echo "package: cargo-deb is missing: run scripts/setup.sh" >&2
  exit 1
fi

if [ -z "$binary" ]; then
  echo "package: building ra-signer (release, pkcs11 + tpm)…" >&2
  cargo build --release --quiet --locked --features pkcs11,tpm --bin ra-signer
  binary=target/release/ra-signer
fi

assets=target/package-assets
rm -rf "$assets"
mkdir -p "$assets/bin" "$assets/man" "$assets/completions"
cp "$binary" "$assets/bin/ra-signer"
# A debug binary (the tests') carries its symbols; a release one is stripped already.
strip --strip-unneeded "$assets/bin/ra-signer"
bin="$assets/bin/ra-signer"
"$bin" man --out-dir "$assets/man"
"$bin" completions bash > "$assets/completions/ra-signer"
"$bin" completions zsh > "$assets/completions/_ra-signer"
"$bin" completions fish > "$assets/completions/ra-signer.fish"

out=target/debian
mkdir -p "$out"
deb=$(cargo deb --no-build --no-strip --quiet --output "$out" | tail -n 1)
echo "$deb"
