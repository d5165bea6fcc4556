#!/usr/bin/env bash
# The whole test suite: installs what it needs, makes the Python virtualenv with the real
# AWS clients (boto3, awscli, iam-rolesanywhere-session), then runs every Rust test, unit
# and integration, against real SoftHSM2 tokens, swtpm instances and ra-emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
# rustup installs cargo under ~/.cargo/bin, which a non-login shell may not have on PATH.
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) if [ -d "$HOME/.cargo/bin" ]; then PATH="$HOME/.cargo/bin:$PATH"; fi ;; esac

scripts/setup.sh

venv=target/test-venv
# cryptography 47+ has ML-DSA (the mldsa module); dilithium-py derives expanded ML-DSA keys.
if ! "$venv/bin/python" -c 'import boto3, awscli, iam_rolesanywhere_session, dilithium_py, prometheus_client
from cryptography.hazmat.primitives.asymmetric import mldsa' 2>/dev/null; then
  echo "test: making the Python virtualenv in $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check boto3 awscli iam-rolesanywhere-session \
    'cryptography>=47' dilithium-py prometheus_client
fi
export RA_SIGNER_TEST_PYTHON="$PWD/$venv/bin/python"

features="pkcs11"
if grep -q '^tpm *=' Cargo.toml && pkg-config --exists tss2-esys 2>/dev/null; then
  features="$features,tpm"
fi

if command -v rustfmt >/dev/null; then
  cargo fmt --all -- --check || { echo "test: cargo fmt --check failed" >&2; exit 1; }
fi
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --features "$features" --all-targets --quiet -- -D warnings
fi
# The build without the TPM backend, which the package installs as /usr/bin/ra-signer
# beside the TPM build (src/tpm_build.rs): built first and kept apart as
# target/debug/ra-signer-no-tpm for tests/it/tpm_build.rs and the package test; the test
# build below links the full binary again.
if [[ $features == *tpm* ]]; then
  cargo build --quiet --no-default-features --features pkcs11 --bin ra-signer
  cp target/debug/ra-signer target/debug/ra-signer-no-tpm
  if cargo clippy --version >/dev/null 2>&1; then
    cargo clippy --no-default-features --features pkcs11 --bins --quiet -- -D warnings
  fi
fi
log=$(mktemp); trap 'rm -f "$log"' EXIT
status=0
cargo test --features "$features" --lib --bins --tests -- "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit $status
