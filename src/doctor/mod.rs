//! `ra-signer doctor`: everything that can make CreateSession fail, checked locally and in
//! order (the certificate, the key, the chain, the request, the network; with `--call` one
//! real CreateSession), one line per check with the fix for each failure. See
//! `docs/doctor.md`.
//!
//! The key is opened as `credential-process` opens it (one login, never retried) and used
//! only through its token or TPM: its protection is read from public attributes.

mod checks;
mod report;

use std::net::{TcpStream, ToSocketAddrs};

use crate::cert::Cert;
use crate::config::{
    CertificateSource, DoctorConfig, DoctorFormat, IdentityConfig, IdentitySource, Origin,
    PrivateKeySource,
};
use crate::error::{Error, ErrorClass};
use crate::rolesanywhere::{Client, CreateSessionError};
use crate::signer::{self, Identity, KeyProtection, OpenError};
use crate::time::UtcTime;
use report::{Report, Status};

/// Clock skew beyond which a warning is given.
const SKEW_WARNING_SECS: u64 = 60;
/// Clock skew beyond which SigV4 refuses the signature.
const SKEW_LIMIT_SECS: u64 = 300;

/// Runs the checks and prints them; fails (exit 7) when one failed.
pub(crate) fn run(config: &DoctorConfig) -> Result<(), Error> {
    let report = diagnose(config);
    let failures = report.failures();
    let total = report.checks().len();
    match config.format {
        DoctorFormat::Text => {
            let text = report.text();
            crate::diag::result(|out| write!(out, "{text}"))?;
        }
        DoctorFormat::Json => {
            let json = serde_json::to_string_pretty(&report.json()).unwrap_or_default();
            crate::diag::result(|out| writeln!(out, "{json}"))?;
        }
    }
    if failures == 0 {
        return Ok(());
    }
    Err(Error::new(
        ErrorClass::ChecksFailed,
        format!("doctor: {failures} of {total} checks failed"),
    )
    .with_hint("each ✗ line says what to fix"))
}

/// Every check, in order.
fn diagnose(config: &DoctorConfig) -> Report {
    let mut report = Report::default();
    if let Some(source) = &config.identity_source {
        report.pass("config", origins(source));
    }
    let now = UtcTime::now();
    let opened = signer::open_for_inspection(&config.identity).map_err(|e| OpenFailure {
        check: failed_key_check(&e),
        error: Error::from(e),
    });

    // The certificate and the chain come from the identity, or, when it did not open,
    // from the files it names.
    let (leaf, intermediates) = match &opened {
        Ok(identity) => (Some(identity.leaf().clone()), identity.chain().to_vec()),
        Err(_) => (
            leaf_from_files(&config.identity),
            intermediates_from_file(&config.identity),
        ),
    };
    match &leaf {
        Some(leaf) => checks::certificate(&mut report, leaf, now),
        None => report.warn(
            "certificate",
            "not checked: the certificate is read with the key, which did not open (see the key check)",
            "fix the key check first",
        ),
    }
    key(&mut report, &opened, &config.identity);
    if let Some(leaf) = &leaf {
        let anchor = config
            .trust_anchor_ca
            .as_ref()
            .map(|path| Cert::first_from_file(path).map_err(|e| e.to_string()));
        checks::chain(&mut report, leaf, &intermediates, anchor, now);
    }
    checks::request(&mut report, &config.session);
    let Ok((session, _)) = &config.session else {
        return report;
    };
    let client = match Client::new(session.client.clone()) {
        Ok(client) => client,
        Err(e) => {
            report.fail(
                "network",
                e.to_string(),
                "check --endpoint and --ca-bundle (or $AWS_CA_BUNDLE)",
            );
            return report;
        }
    };
    network(&mut report, &client, now);
    if config.call {
        call(&mut report, &client, &opened, &session.request);
    }
    report
}

/// Where each value came from, grouped: the file's with their lines, then the flags, the
/// environment and the defaults.
fn origins(source: &IdentitySource) -> String {
    let mut file = Vec::new();
    let mut flags = Vec::new();
    let mut environment = Vec::new();
    let mut defaults = Vec::new();
    for v in &source.origins {
        match &v.origin {
            Origin::File { line } => file.push(format!("{} (line {line})", v.key)),
            Origin::Flag => flags.push(format!("--{}", v.key)),
            Origin::Environment(name) => environment.push(format!("{} (${name})", v.key)),
            Origin::Default(value) => defaults.push(format!("{} {value}", v.key)),
        }
    }
    let mut parts = vec![format!(
        "identity {} of {}",
        source.name,
        source.path.display()
    )];
    for (what, list) in [
        ("from the file", file),
        ("from flags", flags),
        ("from the environment", environment),
        ("defaults", defaults),
    ] {
        if !list.is_empty() {
            parts.push(format!("{what}: {}", list.join(", ")));
        }
    }
    parts.join("; ")
}

/// The leaf named by `--certificate FILE`, or the first certificate of the key file.
fn leaf_from_files(identity: &IdentityConfig) -> Option<Cert> {
    match (&identity.certificate, &identity.private_key) {
        (Some(CertificateSource::File(path)), _) | (None, PrivateKeySource::File(path)) => {
            Cert::first_from_file(path).ok()
        }
        _ => None,
    }
}

fn intermediates_from_file(identity: &IdentityConfig) -> Vec<Cert> {
    identity
        .intermediates
        .as_ref()
        .and_then(|path| Cert::all_from_file(path).ok())
        .unwrap_or_default()
}

/// Why the identity did not open: the key check it belongs to, and the error classified as
/// `credential-process` would print it.
struct OpenFailure {
    check: &'static str,
    error: Error,
}

/// The name of the key check an opening failure belongs to.
fn failed_key_check(e: &OpenError) -> &'static str {
    match e {
        OpenError::KeyMismatch(_) => "key matches certificate",
        #[cfg(feature = "pkcs11")]
        OpenError::Pkcs11(p) => {
            use crate::signer::pkcs11::Pkcs11Error as P;
            match p {
                P::Pin(_)
                | P::ContextPin(_)
                | P::PinIncorrect { .. }
                | P::PinLocked { .. }
                | P::PinExpired { .. } => "key login",
                P::NoMechanism { .. } => "key mechanism",
                P::KeyMismatch(_) => "key matches certificate",
                _ => "key",
            }
        }
        #[cfg(feature = "tpm")]
        OpenError::Tpm(signer::tpm::TpmError::Mismatch(_)) => "key matches certificate",
        _ => "key",
    }
}

/// The key checks: it opens and matches the certificate, and how it is protected.
fn key(report: &mut Report, opened: &Result<Identity, OpenFailure>, config: &IdentityConfig) {
    let identity = match opened {
        Ok(identity) => identity,
        Err(failure) => {
            report.fail(
                failure.check,
                failure.error.message.clone(),
                failure
                    .error
                    .hint
                    .clone()
                    .unwrap_or_else(|| "see the message: the key could not be opened".into()),
            );
            return;
        }
    };
    report.pass(
        "key matches certificate",
        format!(
            "{} ({}) has the certificate's public key",
            identity.key_description(),
            identity.signer().key_type()
        ),
    );
    let protection = identity.signer().protection();
    match &protection {
        KeyProtection::InMemory => {
            let detail = "a key file: it works, but the key is on disk and in memory, where it can be copied";
            let fix = "generate a key inside a token or TPM with `ra-signer keygen`, and get a certificate for it";
            if config.require_hardware_key {
                report.fail(
                    "key storage",
                    format!("{detail}; --require-hardware-key refuses it"),
                    fix,
                );
            } else {
                report.warn("key storage", detail, fix);
            }
        }
        KeyProtection::Token(flags) => {
            hardware(
                report,
                &protection,
                &format!(
                    "CKA_SENSITIVE={}, CKA_EXTRACTABLE={}, CKA_NEVER_EXTRACTABLE={}, CKA_ALWAYS_SENSITIVE={}",
                    flags.sensitive,
                    flags.extractable,
                    flags.never_extractable,
                    flags.always_sensitive
                ),
            );
            if flags.mechanism_signs {
                report.pass(
                    "key mechanism",
                    format!(
                        "{} is offered (C_GetMechanismList) and signs (C_GetMechanismInfo CKF_SIGN)",
                        flags.mechanism
                    ),
                );
            } else {
                report.fail(
                    "key mechanism",
                    format!(
                        "the token lists {} but C_GetMechanismInfo does not give it CKF_SIGN",
                        flags.mechanism
                    ),
                    "use a token (or token configuration) that signs with this mechanism",
                );
            }
            report.pass(
                "key login",
                "the PIN source was read and the login worked (one C_Login, never retried)",
            );
        }
        KeyProtection::Tpm(flags) => {
            hardware(
                report,
                &protection,
                &format!(
                    "fixedTPM={}, fixedParent={}, sensitiveDataOrigin={} (the key's public area)",
                    flags.fixed_tpm, flags.fixed_parent, flags.sensitive_data_origin
                ),
            );
            report.pass(
                "key parent",
                "the parent is reachable: the key was loaded under it",
            );
        }
    }
    let extra = protection.extra_usages();
    if extra.is_empty() {
        if !matches!(protection, KeyProtection::InMemory) {
            report.pass("key usages", "signing only");
        }
    } else {
        report.warn(
            "key usages",
            format!("the key may also be used for {}, beyond signing", extra.join(", ")),
            "least privilege: generate a signing-only key (`ra-signer keygen` makes CKA_SIGN-only token keys and sign-only TPM keys)",
        );
    }
}

/// The protection line of a token or TPM key: a failure when it can leave its hardware.
fn hardware(report: &mut Report, protection: &KeyProtection, attributes: &str) {
    match protection.hardware_refusal() {
        None => report.pass(
            "key protection",
            format!("{attributes}: the key cannot leave the hardware"),
        ),
        Some(why) => report.fail(
            "key protection",
            format!("{why} ({attributes})"),
            "generate a new key inside the token or TPM (`ra-signer keygen`), get a certificate for it, and revoke this one: a key that could be read out may have copies",
        ),
    }
}

/// The network checks: the proxy, DNS, TCP, TLS with the trust store in use, and the clock
/// against the endpoint's `Date`.
fn network(report: &mut Report, client: &Client, now: UtcTime) {
    let url = match url::Url::parse(client.url()) {
        Ok(url) => url,
        Err(e) => {
            report.fail(
                "network",
                format!("the endpoint URL does not parse: {e}"),
                "check --endpoint",
            );
            return;
        }
    };
    let proxy = client.proxy();
    match &proxy {
        Some(p) => report.pass(
            "network proxy",
            format!(
                "{} (from HTTPS_PROXY/ALL_PROXY): DNS and TCP are checked to it",
                crate::proxy::shown(p)
            ),
        ),
        None => report.pass("network proxy", "none: the endpoint is reached directly"),
    }
    let target = proxy.as_ref().unwrap_or(&url);
    let (Some(host), Some(port)) = (target.host_str(), target.port_or_known_default()) else {
        report.fail("network dns", "the URL has no host", "check --endpoint");
        return;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<std::net::SocketAddr> = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            report.fail(
                "network dns",
                format!("{host} does not resolve: {e}"),
                "check the host name in --endpoint (or the region), /etc/resolv.conf, and the DNS server",
            );
            return;
        }
    };
    let Some(first) = addresses.first() else {
        report.fail(
            "network dns",
            format!("{host} resolves to no address"),
            "check the DNS records",
        );
        return;
    };
    report.pass(
        "network dns",
        format!(
            "{host} resolves to {}",
            addresses
                .iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let timeout = client.options().connect_timeout;
    match TcpStream::connect_timeout(first, timeout) {
        Ok(_) => report.pass("network tcp", format!("connected to {first}")),
        Err(e) => {
            report.fail(
                "network tcp",
                format!("cannot connect to {first}: {e}"),
                "check that the endpoint (or proxy) listens there and that no firewall blocks the port",
            );
            return;
        }
    }
    let options = client.options();
    let trust = match (&options.ca_bundle, options.danger_accept_invalid_certs) {
        (_, true) => "no verification (--no-verify-ssl)".to_owned(),
        (Some(path), false) => format!(
            "the CA bundle {} (--ca-bundle or $AWS_CA_BUNDLE)",
            path.display()
        ),
        (None, false) => "the system trust store".to_owned(),
    };
    let probe = match client.probe() {
        Ok(probe) => probe,
        Err(CreateSessionError::Transport {
            detail, tls: true, ..
        }) => {
            report.fail(
                "network tls",
                format!("the endpoint's TLS certificate is not trusted by {trust}: {detail}"),
                "for a private CA pass --ca-bundle FILE (or $AWS_CA_BUNDLE) with the CA that issued the endpoint's certificate",
            );
            return;
        }
        Err(e) => {
            report.fail(
                "network tls",
                e.to_string(),
                "check --endpoint, the network, and HTTPS_PROXY/NO_PROXY",
            );
            return;
        }
    };
    if options.danger_accept_invalid_certs {
        report.warn(
            "network tls",
            format!(
                "HTTP {} over TLS, but the endpoint's certificate is not verified",
                probe.status
            ),
            "drop --no-verify-ssl; pass --ca-bundle FILE for a private CA",
        );
    } else {
        report.pass(
            "network tls",
            format!(
                "HTTP {} over TLS, the endpoint's certificate trusted by {trust}",
                probe.status
            ),
        );
    }
    clock(report, probe.date.as_deref(), now);
}

/// The skew between this machine's clock and the endpoint's `Date`.
fn clock(report: &mut Report, date: Option<&str>, now: UtcTime) {
    let Some(date) = date else {
        report.warn(
            "clock skew",
            "the endpoint sent no Date header: the skew cannot be measured",
            "keep the clock synchronised (timedatectl set-ntp true): SigV4 allows 5 minutes",
        );
        return;
    };
    let Some(theirs) = UtcTime::parse_http_date(date) else {
        report.warn(
            "clock skew",
            format!("the endpoint's Date header \"{date}\" does not parse"),
            "keep the clock synchronised (timedatectl set-ntp true): SigV4 allows 5 minutes",
        );
        return;
    };
    let skew = now.unix().abs_diff(theirs.unix());
    let direction = if now.unix() >= theirs.unix() {
        "ahead of"
    } else {
        "behind"
    };
    let detail = format!(
        "this machine is {skew} s {direction} the endpoint (its Date: {})",
        theirs.rfc3339()
    );
    let fix = "synchronise the clock (timedatectl set-ntp true, chrony or ntpd): SigV4 signatures more than 5 minutes off are refused";
    if skew > SKEW_LIMIT_SECS {
        report.fail("clock skew", detail, fix);
    } else if skew > SKEW_WARNING_SECS {
        report.warn("clock skew", detail, fix);
    } else {
        report.pass("clock skew", detail);
    }
}

/// `--call`: one real CreateSession, with its error explained.
fn call(
    report: &mut Report,
    client: &Client,
    opened: &Result<Identity, OpenFailure>,
    request: &crate::config::SessionRequest,
) {
    let Ok(identity) = opened else {
        report.push(
            "call",
            Status::Warn,
            "not made: the key did not open",
            Some("fix the key check first"),
        );
        return;
    };
    match client.create_session(identity, request, UtcTime::now()) {
        Ok(credentials) => report.pass(
            "call",
            format!(
                "CreateSession issued credentials for {}, expiring at {}",
                request.role_arn,
                credentials.expiration.rfc3339()
            ),
        ),
        Err(e) => {
            let explained = crate::error::session_error(e, identity, request);
            report.fail(
                "call",
                explained.message.clone(),
                explained.hint.unwrap_or_else(|| "see the message".into()),
            );
        }
    }
}
