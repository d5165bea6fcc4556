//! ra-signer: an AWS IAM Roles Anywhere credential helper whose private keys stay where they
//! live (a PKCS#11 token, a TPM, or a key file).
//!
//! Layers, from the bottom: values ([`config`], [`cert`], [`credentials`]), keys behind one
//! trait ([`signer`]), pure request signing, CreateSession over HTTPS ([`rolesanywhere`]),
//! the refresh loop ([`refresh`]), the one classifier of errors ([`error`]), the modes, and
//! [`cli`]/[`app`] at the top; `docs/architecture.md` draws them. Only what the binaries and
//! the tests use is public.

#![forbid(unsafe_code)]
// Diagnostics go through `diag`, whose writer survives a closed stderr; results through
// `diag::result`, which reports a closed stdout.
#![deny(clippy::print_stderr, clippy::print_stdout)]
#![cfg_attr(test, allow(clippy::print_stderr, clippy::print_stdout))]

pub mod app;
mod cache;
pub mod cert;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod credentials_file;
pub mod diag;
mod display;
mod doctor;
pub mod endpoint;
pub mod env;
pub mod error;
mod exec;
mod generate;
pub mod identity_file;
mod input;
mod keygen;
mod outfile;
pub mod pkcs11_uri;
mod proxy;
pub mod refresh;
pub mod rolesanywhere;
pub mod sdnotify;
pub mod secret;
mod serve;
mod shutdown;
pub mod signer;
mod sigv4x509;
mod subject;
pub mod time;
pub mod tpm_build;
mod truststore;
pub mod update;
