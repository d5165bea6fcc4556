#!/usr/bin/env bash
# Installs what ra-signer's demo, tests and benchmarks need on Debian: the build tools,
# OpenSSL, SoftHSM2 + OpenSC, swtpm + tpm2-tools + tpm2-openssl + libtss2, and Python's
# venv, zsh and fish (the tests check the syntax of their completion scripts), man-db,
# dpkg-dev and binutils for scripts/package.sh, and systemd (systemd-analyze checks the units).
# Idempotent: it installs only what is missing. Needs root (or sudo) for apt-get.
set -euo pipefail
# rustup installs cargo under ~/.cargo/bin, which a non-login shell may not have on PATH.
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) if [ -d "$HOME/.cargo/bin" ]; then PATH="$HOME/.cargo/bin:$PATH"; fi ;; esac

packages=(ca-certificates openssl pkg-config gcc libc6-dev time wrk
          softhsm2 opensc gnutls-bin p11-kit
          libtss2-dev swtpm swtpm-tools tpm2-tools tpm2-openssl
          python3 python3-venv python3-pip
          zsh fish man-db dpkg-dev binutils systemd)

# A python3 outside Debian's packages (pyenv, a toolchain image) with a working venv will do.
have_python=false
if command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null; then
  have_python=true
fi

missing=()
for p in "${packages[@]}"; do
  case "$p" in python3*) $have_python && continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo is missing; install a Rust toolchain >= 1.89 (rustup) and run again" >&2
  exit 1
fi

# scripts/package.sh builds the Debian package with cargo-deb (about a minute to compile,
# once per machine).
cargo_deb_version=3.8.0
if ! cargo deb --version 2>/dev/null | grep -q "$cargo_deb_version"; then
  echo "setup: installing cargo-deb $cargo_deb_version" >&2
  cargo install --quiet --locked cargo-deb --version "$cargo_deb_version"
fi
