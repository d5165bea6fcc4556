//! `ra-emulator`: a local stand-in for the IAM Roles Anywhere CreateSession endpoint.
//!
//! It verifies SigV4-X509 requests from the raw HTTP request as received (its own
//! canonicalisation, independent of the library's signer), builds the certificate path
//! to the configured trust anchors, checks the ARNs and the session parameters, and
//! answers like the service: 201 with a credential set, or an AWS-style error. Faults
//! can be injected. See `docs/emulator.md`.
//!
//! Modules: [`cli`] (flags → config), [`server`] (listener, routing, logging),
//! [`verify`] (the checks, in order), [`sigv4`] (canonical request), [`pki`]
//! (certificates and paths), [`arn`], [`faults`], [`response`], [`clock`].

#![forbid(unsafe_code)]
// `eprintln!` panics on a closed stderr pipe: every line goes through `say`.
#![deny(clippy::print_stderr, clippy::print_stdout)]

mod arn;
mod cli;
mod clock;
mod config;
mod faults;
mod pki;
mod response;
mod server;
mod sigv4;
mod verify;

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
    let mut anchors = Vec::new();
    for file in &config.anchor_files {
        let loaded = std::fs::read(file)
            .map_err(|e| format!("--trust-anchor-ca {}: {e}", file.display()))
            .and_then(|bytes| {
                pki::load_anchors(&bytes, &format!("--trust-anchor-ca {}", file.display()))
            });
        match loaded {
            Ok(certs) => anchors.extend(certs),
            Err(e) => {
                say(format_args!("ra-emulator: {e}"));
                return ExitCode::from(2);
            }
        }
    }
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
        anchors,
        trust_anchor: config.trust_anchor.clone(),
        profile: config.profile.clone(),
        roles: config.roles.clone(),
        max_duration: config.max_duration,
        deny_role_session_name: config.deny_role_session_name,
        clock_skew: config.clock_skew,
    };
    let state = server::State::new(policy, config.faults.clone(), log);
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

/// One line on stderr; a stderr that cannot be written (a closed pipe) is ignored.
fn say(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut text = args.to_string();
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}
