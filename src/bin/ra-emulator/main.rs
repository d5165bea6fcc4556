//! `ra-emulator`: a local stand-in for the IAM Roles Anywhere CreateSession endpoint.
//!
//! It verifies SigV4-X509 requests from the raw HTTP request as received (its own
//! canonicalisation, independent of the library's signer), builds the certificate path
//! to the configured trust anchors, checks the ARNs and the session parameters, and
//! answers like the service: 201 with a credential set, or an AWS-style error. Faults
//! can be injected. See `docs/emulator.md`.
//!
//! Modules: [`cli`] (flags → config), [`model`] (the account: the `--config` document or
//! the short form), [`server`] (listener, routing, logging), [`verify`] (the checks, in
//! order), [`policy`] (trust policies), [`mapping`] (session tags), [`crl`], [`sigv4`]
//! (canonical request), [`pki`] (certificates and paths), [`arn`], [`faults`],
//! [`response`], [`s3`] (ListBuckets for the credentials it issued), [`clock`].

#![forbid(unsafe_code)]
// `eprintln!` panics on a closed stderr pipe: every line goes through `say`.
#![deny(clippy::print_stderr, clippy::print_stdout)]

mod arn;
mod cli;
mod clock;
mod config;
mod crl;
mod faults;
mod mapping;
mod model;
mod pki;
mod policy;
mod response;
mod s3;
mod server;
mod sigv4;
mod verify;

#[cfg(test)]
mod decision_tests;
#[cfg(test)]
mod e2e_tests;

use std::process::ExitCode;

use clap::Parser;

/// Parses the flags, loads the trust anchors, opens the log and serves.
fn main() -> ExitCode {
    let config = match cli::Args::parse().into_config() {
        Ok(c) => c,
        Err(e) => {
            say(format_args!("ra-emulator: {e}"));
            return ExitCode::from(2);
        }
    };
    let account = match load_account(&config.account) {
        Ok(a) => a,
        Err(e) => {
            say(format_args!("ra-emulator: {e}"));
            return ExitCode::from(2);
        }
    };
    let log = match server::Logger::open(config.log.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            say(format_args!(
                "ra-emulator: cannot open log file {}: {e}",
                config
                    .log
                    .as_deref()
                    .unwrap_or(std::path::Path::new("-"))
                    .display()
            ));
            return ExitCode::from(2);
        }
    };
    let policy = verify::Policy {
        account,
        clock_skew: config.clock_skew,
    };
    let state = server::State::new(policy, config.faults.clone(), log)
        .with_s3_buckets(config.s3_buckets.clone());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say(format_args!(
                "ra-emulator: cannot start the async runtime: {e}"
            ));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::run(&config, state)) {
        Ok(_reason) => ExitCode::SUCCESS,
        Err(e) => {
            say(format_args!("ra-emulator: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Reads the account: the short-form flags' anchor files, or the `--config` document.
fn load_account(source: &config::AccountSource) -> Result<model::Account, String> {
    match source {
        config::AccountSource::Flags(flags) => {
            let mut anchors = Vec::new();
            for file in &flags.anchor_files {
                let origin = format!("--trust-anchor-ca {}", file.display());
                let bytes = std::fs::read(file).map_err(|e| format!("{origin}: {e}"))?;
                anchors.extend(pki::load_anchors(&bytes, &origin)?);
            }
            Ok(model::Account::short_form(
                anchors,
                flags.trust_anchor.clone(),
                flags.profile.clone(),
                flags.roles.clone(),
                flags.max_duration,
                flags.deny_role_session_name,
            ))
        }
        config::AccountSource::File(file) => {
            use std::io::Read;
            let origin = format!("--config {}", file.display());
            let mut text = String::new();
            std::fs::File::open(file)
                .and_then(|f| {
                    f.take(model::MAX_CONFIG_BYTES + 1)
                        .read_to_string(&mut text)
                })
                .map_err(|e| format!("{origin}: {e}"))?;
            if text.len() as u64 > model::MAX_CONFIG_BYTES {
                return Err(format!(
                    "{origin}: larger than {} bytes",
                    model::MAX_CONFIG_BYTES
                ));
            }
            model::load(&text).map_err(|e| format!("{origin}: {e}"))
        }
    }
}

/// One line on stderr; a stderr that cannot be written (a closed pipe) is ignored.
fn say(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut text = args.to_string();
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}
