//! The commands: each takes parsed flags, calls the library, and writes its output. Errors
//! are classified here, once, with hints that use what we know about the identity.

use base64::Engine;
use clap::CommandFactory;

use crate::cert::Cert;
use crate::cli::{
    CacheArgs, CacheCommand, CacheListFormat, CertificateDataFormat, Cli, Command, CompletionShell,
    DigestArg, IdentityArgs, ProcessFormat, ReadCertificateDataArgs, SignFormat, SignStringArgs,
};
use crate::config::{
    CacheClearConfig, CertificateSource, ConfigError, CredentialProcessConfig, ExecConfig,
    IdentitySource, PrivateKeySource, SessionConfig,
};
use crate::credentials::Credentials;
use crate::error::Error;
use crate::pkcs11_uri::TokenUri;
use crate::refresh::{Stop, SystemClock, create_session};
use crate::rolesanywhere::Client;
use crate::signer::{self, Digest, Signer};

/// Runs one command, whose flags `--identity` has filled
/// ([`Command::apply_identity_file`], which returned `identity_source`).
pub fn run(command: Command, identity_source: Option<IdentitySource>) -> Result<(), Error> {
    match command {
        Command::CredentialProcess(args) => {
            warn(&args.identity);
            credential_process(args.to_config()?, args.format)
        }
        Command::SignString(args) => sign_string(&args),
        Command::ReadCertificateData(args) => read_certificate_data(&args),
        Command::Serve(args) => {
            warn(&args.identity);
            crate::serve::run(args.to_config()?)
        }
        Command::Update(args) => {
            warn(&args.identity);
            crate::update::run(args.to_config()?)
        }
        Command::Keygen(args) => Ok(crate::keygen::run(&args.to_config()?)?),
        Command::Version => Ok(crate::diag::result(|out| {
            writeln!(out, "ra-signer {}", env!("CARGO_PKG_VERSION"))
        })?),
        Command::Exec(args) => {
            warn(&args.identity);
            exec(args.to_config()?)
        }
        Command::Cache(args) => cache(&args),
        Command::Doctor(args) => {
            warn(&args.identity);
            crate::doctor::run(&args.to_config(identity_source)?)
        }
        Command::Completions(args) => {
            use crate::generate::Shell;
            let shell = match args.shell {
                CompletionShell::Bash => Shell::Bash,
                CompletionShell::Zsh => Shell::Zsh,
                CompletionShell::Fish => Shell::Fish,
            };
            crate::generate::completions(Cli::command(), shell)
        }
        Command::Man(args) => crate::generate::man(Cli::command(), args.out_dir.as_deref()),
    }
}

fn warn(identity: &IdentityArgs) {
    for w in identity.warnings() {
        crate::diag!("ra-signer: warning: {w}");
    }
}

fn credential_process(config: CredentialProcessConfig, format: ProcessFormat) -> Result<(), Error> {
    let region = config.session.client.region.clone();
    let credentials = fetch_credentials(config)?;
    let text = match format {
        ProcessFormat::Json => credentials.to_process_json(),
        ProcessFormat::Env => {
            crate::exec::export_lines(&credentials, &region, crate::env::non_blank)
        }
    };
    Ok(crate::diag::result(|out| {
        writeln!(out, "{}", text.trim_end())
    })?)
}

/// `exec`: the command is checked first (a command that cannot run never costs a
/// signature), then the credentials are fetched, the key closed, and the command replaces
/// this process.
fn exec(config: ExecConfig) -> Result<(), Error> {
    let ExecConfig {
        credentials,
        command,
        override_env,
    } = config;
    let prepared = crate::exec::prepare(command, override_env, crate::env::non_blank)?;
    let region = credentials.session.client.region.clone();
    let fetched = fetch_credentials(credentials)?;
    Err(prepared.exec(&fetched, &region).into())
}

/// The credentials `credential-process` would print: from the cache when `--cache` holds
/// usable ones (unless `--refresh`), else from one CreateSession, cached with `--cache`.
/// The key is closed when this returns.
fn fetch_credentials(config: CredentialProcessConfig) -> Result<Credentials, Error> {
    let CredentialProcessConfig {
        identity: identity_config,
        session: SessionConfig { request, client },
        cache_min_validity,
        cache_refresh,
    } = config;
    // --cache: a hit needs neither the key nor the network.
    let cache_key = cache_min_validity.and_then(|min_validity| {
        crate::cache::key(
            &request,
            &client,
            &identity_config,
            min_validity,
            client.debug,
        )
    });
    let look = |key: &crate::cache::CacheKey| {
        if cache_refresh {
            key.note_refresh();
            None
        } else {
            crate::cache::lookup(key)
        }
    };
    let mut cached = cache_key.as_ref().and_then(look);
    // On a miss, wait for any run already signing for this entry, then look again.
    let _entry_lock = match (&cache_key, &cached) {
        (Some(key), None) => {
            let lock = crate::cache::lock(key);
            if !cache_refresh {
                cached = crate::cache::lookup(key);
            }
            lock
        }
        _ => None,
    };
    let credentials = match cached {
        Some(c) => c,
        None => {
            let identity = signer::open(&identity_config)?;
            let client = Client::new(client)
                .map_err(|e| crate::error::session_error(e, &identity, &request))?;
            let credentials =
                create_session(&client, &identity, &request, &SystemClock, &Stop::default())
                    .map_err(|e| crate::error::session_error(e, &identity, &request))?;
            if let Some(key) = &cache_key {
                crate::cache::store(key, &credentials);
            }
            credentials
        }
    };
    Ok(credentials)
}

/// `cache list` and `cache clear`.
fn cache(args: &CacheArgs) -> Result<(), Error> {
    let text = match &args.command {
        CacheCommand::List(list) => {
            let entries = crate::cache::list()?;
            match list.format {
                CacheListFormat::Text => cache_list_text(&entries, crate::time::UtcTime::now()),
                CacheListFormat::Json => cache_list_json(&entries, crate::time::UtcTime::now()),
            }
        }
        CacheCommand::Clear(clear) => {
            let removed = match clear.to_config()? {
                CacheClearConfig::All => crate::cache::clear_all()?,
                CacheClearConfig::Entry { identity, session } => {
                    let SessionConfig { request, client } = *session;
                    let key = crate::cache::key(
                        &request,
                        &client,
                        &identity,
                        crate::cache::MIN_VALIDITY,
                        client.debug,
                    )
                    .ok_or(crate::cache::CacheError::NoEntryKey)?;
                    usize::from(crate::cache::clear(&key)?)
                }
            };
            match removed {
                1 => "removed 1 cache entry".to_owned(),
                n => format!("removed {n} cache entries"),
            }
        }
    };
    Ok(crate::diag::result(|out| {
        writeln!(out, "{}", text.trim_end())
    })?)
}

/// "in 42m", "in 1h05m", "in 30s", or "expired".
fn expires_in(seconds: u64) -> String {
    match seconds {
        0 => "expired".to_owned(),
        s if s < 60 => format!("in {s}s"),
        s if s < 3600 => format!("in {}m", s / 60),
        s => format!("in {}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// What an entry made by an earlier version (which did not record it) shows.
const NOT_RECORDED: &str = "(not recorded)";

/// One line per entry: role, expiry, identity.
fn cache_list_text(entries: &[crate::cache::EntrySummary], now: crate::time::UtcTime) -> String {
    if entries.is_empty() {
        return "no cached credentials".to_owned();
    }
    entries
        .iter()
        .map(|e| {
            format!(
                "{}  {} ({})  {}\n",
                e.role_arn.as_deref().unwrap_or(NOT_RECORDED),
                e.expiration.rfc3339(),
                expires_in(e.expiration.unix().saturating_sub(now.unix())),
                e.identity.as_deref().unwrap_or(NOT_RECORDED),
            )
        })
        .collect()
}

/// The entries as a JSON array.
fn cache_list_json(entries: &[crate::cache::EntrySummary], now: crate::time::UtcTime) -> String {
    let list: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "roleArn": e.role_arn,
                "expiration": e.expiration.rfc3339(),
                "expiresInSeconds": e.expiration.unix().saturating_sub(now.unix()),
                "identity": e.identity,
                "entry": e.entry,
            })
        })
        .collect();
    serde_json::to_string_pretty(&list).unwrap_or_default()
}

/// The fixed test string of the Go helper's `sign-string`. Its suffix, SHA256("IAM RA" ‖
/// public key), exists there for RSA and EC keys only: for an ML-DSA key v1.8.0 signs the
/// bare prefix, and so do we, so that both helpers give the same (deterministic) signature.
fn test_string(signer: &dyn Signer) -> Vec<u8> {
    let mut s = b"AWS Roles Anywhere Credential Helper Signing Test".to_vec();
    s.extend_from_slice(b"1");
    if signer.algorithm() != signer::Algorithm::MlDsa {
        let mut tagged = b"IAM RA".to_vec();
        tagged.extend_from_slice(signer.public_key_bits());
        s.extend_from_slice(&Digest::Sha256.hash(&tagged));
    }
    s
}

fn sign_string(args: &SignStringArgs) -> Result<(), Error> {
    warn(&args.identity);
    let config = args.identity.to_config()?;
    let digest = match args.digest {
        DigestArg::Sha256 => Digest::Sha256,
        DigestArg::Sha384 => Digest::Sha384,
        DigestArg::Sha512 => Digest::Sha512,
    };
    // A bare key file needs no certificate; every other source opens the whole identity.
    let bare_key;
    let identity;
    let signer: &dyn Signer = match (&config.private_key, &config.certificate) {
        (PrivateKeySource::File(path), None) if !signer::is_tss2_key_file(path) => {
            let what = format!("the password of key file {}", path.display());
            let mut ask = || crate::secret::resolve(&config.key_password_sources, &what);
            bare_key = signer::file::load(path, &mut ask)?.signer;
            if config.require_hardware_key {
                signer::require_hardware(bare_key.as_ref(), &path.display().to_string())
                    .map_err(signer::OpenError::from)?;
            }
            bare_key.as_ref()
        }
        _ => {
            identity = signer::open(&config)?;
            identity.signer()
        }
    };
    if args.debug {
        let (suffix, how) = if signer.algorithm() == signer::Algorithm::MlDsa {
            ("", "pure ML-DSA: --digest does not apply".to_owned())
        } else {
            (
                " || SHA256(\"IAM RA\" || public key)",
                format!("digest {}", digest.name()),
            )
        };
        crate::diag!(
            "ra-signer: debug: signing the fixed string \"AWS Roles Anywhere Credential Helper Signing Test\" || \"1\"{suffix} with the {} key, {how}",
            signer.key_type()
        );
    }
    let signature = signer.sign(digest, &test_string(signer)).map_err(|e| {
        let mut err = Error::from(e);
        err.message = format!("signing failed: {}", err.message);
        err
    })?;
    let hex = crate::cert::hex_lower(&signature);
    // As the Go helper prints them: no line ending.
    Ok(crate::diag::result(|out| match args.format {
        SignFormat::Text => write!(out, "{hex}"),
        SignFormat::Json => write!(out, "{}", serde_json::Value::from(hex)),
        SignFormat::Bin => out.write_all(&signature),
    })?)
}

/// The JSON of `read-certificate-data` for one certificate. `keyType` is "RSA", "EC" or the
/// ML-DSA parameter set ("ML-DSA-65"), and `supportedAlgorithms` is built from it with the
/// three digests for every key type, as the Go helper builds both.
pub fn certificate_data(cert: &Cert) -> serde_json::Value {
    let family = cert.key_type().family();
    let algorithms: Vec<String> = ["SHA256", "SHA384", "SHA512"]
        .iter()
        .map(|d| format!("{family}{d}"))
        .collect();
    serde_json::json!({
        "keyType": family,
        "certificateData": base64::engine::general_purpose::STANDARD.encode(cert.der()),
        "serialNumber": cert.serial_decimal(),
        "supportedAlgorithms": algorithms,
    })
}

fn read_certificate_data(args: &ReadCertificateDataArgs) -> Result<(), Error> {
    let id = &args.identity;
    refuse_key_flags(id)?;
    let config = id.to_config()?;
    let certificate = match (&config.certificate, &config.private_key) {
        (Some(c), _) => c.clone(),
        (None, PrivateKeySource::Pkcs11(uri)) => CertificateSource::Pkcs11(uri.clone()),
        (None, _) => {
            return Err(ConfigError::new(
                "no certificate given: pass --certificate FILE|pkcs11:URI".into(),
            )
            .into());
        }
    };
    let format = args.format.unwrap_or(match certificate {
        CertificateSource::File(_) => CertificateDataFormat::Json,
        CertificateSource::Pkcs11(_) => CertificateDataFormat::Text,
    });
    let text = match certificate {
        CertificateSource::File(path) => {
            if args.debug {
                crate::diag!(
                    "ra-signer: debug: reading the certificate of {}",
                    path.display()
                );
            }
            let cert = file_certificate(&path, id, &config)?;
            match format {
                CertificateDataFormat::Json => {
                    serde_json::to_string_pretty(&certificate_data(&cert)).unwrap_or_default()
                }
                CertificateDataFormat::Text => matching_identities(&[(cert, None)]),
            }
        }
        CertificateSource::Pkcs11(uri) => {
            let found = token_certificates(&uri, &config, args.debug)?;
            match format {
                CertificateDataFormat::Json => serde_json::to_string_pretty(
                    &found.iter().map(token_certificate_data).collect::<Vec<_>>(),
                )
                .unwrap_or_default(),
                CertificateDataFormat::Text => matching_identities(
                    &found
                        .into_iter()
                        .map(|(cert, uri)| (cert, Some(uri)))
                        .collect::<Vec<_>>(),
                ),
            }
        }
    };
    Ok(crate::diag::result(|out| {
        writeln!(out, "{}", text.trim_end())
    })?)
}

/// Flags that name a key or a key's secret mean nothing to a command that reads
/// certificates: refused, so that a user who expects them to act learns they do not.
fn refuse_key_flags(id: &IdentityArgs) -> Result<(), Error> {
    let given = [
        ("--private-key", id.private_key.is_some()),
        ("--intermediates", id.intermediates.is_some()),
        ("--reuse-pin", id.reuse_pin),
        (
            "--pkcs11-context-pin-file",
            id.pkcs11_context_pin_file.is_some(),
        ),
        ("--tpm-tcti", id.tpm_tcti.is_some()),
        ("--tpm-key-password", id.tpm_key_password.is_some()),
        (
            "--tpm-key-password-file",
            id.tpm_key_password_file.is_some(),
        ),
        ("--no-tpm-key-password", id.no_tpm_key_password),
        ("--require-hardware-key", id.require_hardware_key),
    ];
    match crate::cli::first_given(&given) {
        Some(flag) => Err(ConfigError::new(format!(
            "{flag} has no meaning for read-certificate-data, which reads certificates only"
        ))
        .with_hint("drop it; pass the certificate with --certificate FILE|pkcs11:URI")
        .into()),
        None => Ok(()),
    }
}

/// The certificate of a PEM/DER file, or the leaf of a PKCS#12 file. A password flag is
/// meaningful for a PKCS#12 file only.
fn file_certificate(
    path: &std::path::Path,
    id: &IdentityArgs,
    config: &crate::config::IdentityConfig,
) -> Result<Cert, Error> {
    let password_flag = if id.pkcs8_password.is_some() {
        Some("--pkcs8-password")
    } else if id.pkcs8_password_file.is_some() {
        Some("--pkcs8-password-file")
    } else {
        None
    };
    match Cert::first_from_file(path) {
        Ok(cert) => match password_flag {
            Some(flag) => Err(ConfigError::new(format!(
                "{flag} has no meaning here: {} is a certificate, not a PKCS#12 file",
                path.display()
            ))
            .with_hint("drop it")
            .into()),
            None => Ok(cert),
        },
        Err(cert_err) if looks_like_pkcs12(path) => {
            let what = format!("the password of PKCS#12 file {}", path.display());
            let mut ask = || crate::secret::resolve(&config.key_password_sources, &what);
            let mut loaded = signer::file::load(path, &mut ask).map_err(|e| match e {
                signer::file::FileKeyError::Read { .. } => crate::error::cert_error(cert_err),
                other => Error::from(other),
            })?;
            // The loader puts the key's own certificate first.
            if loaded.certificates.is_empty() {
                return Err(signer::OpenError::NoCertificate {
                    origin: path.display().to_string(),
                }
                .into());
            }
            Ok(loaded.certificates.swap_remove(0))
        }
        Err(e) => Err(crate::error::cert_error(e)),
    }
}

/// Whether the file is DER that opens like a PKCS#12 PFX: `SEQUENCE { INTEGER 3, …`.
fn looks_like_pkcs12(path: &std::path::Path) -> bool {
    let Ok(bytes) = crate::input::read(path) else {
        return false;
    };
    let header_len = match bytes.get(1) {
        Some(n) if n & 0x80 == 0 => 2,
        Some(n) => 2 + usize::from(n & 0x7f),
        None => return false,
    };
    bytes.first() == Some(&0x30)
        && bytes.get(header_len..header_len + 3) == Some(&[0x02, 0x01, 0x03])
}

/// The Go helper's listing of certificates.
fn matching_identities(certs: &[(Cert, Option<String>)]) -> String {
    if certs.is_empty() {
        return "No matching identities".into();
    }
    let mut text = String::from("Matching identities\n");
    for (i, (cert, uri)) in certs.iter().enumerate() {
        text.push_str(&format!(
            "{}) {} \"{}\"\n",
            i + 1,
            cert.sha1_hex(),
            cert.subject()
        ));
        if let Some(uri) = uri {
            text.push_str(&format!("\tURI: {uri}\n"));
        }
    }
    text
}

/// The JSON of one certificate on a token: the file fields plus where it is.
fn token_certificate_data((cert, uri): &(Cert, String)) -> serde_json::Value {
    let mut v = certificate_data(cert);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("uri".into(), uri.clone().into());
        obj.insert("subject".into(), cert.subject().into());
        obj.insert("issuer".into(), cert.issuer().into());
        obj.insert("sha1Fingerprint".into(), cert.sha1_hex().into());
        obj.insert(
            "notBefore".into(),
            crate::time::UtcTime::from_unix(cert.not_before())
                .rfc3339()
                .into(),
        );
        obj.insert(
            "notAfter".into(),
            crate::time::UtcTime::from_unix(cert.not_after())
                .rfc3339()
                .into(),
        );
        obj.insert("keyDescription".into(), cert.key_type().to_string().into());
    }
    v
}

#[cfg(feature = "pkcs11")]
fn token_certificates(
    uri: &TokenUri,
    config: &crate::config::IdentityConfig,
    debug: bool,
) -> Result<Vec<(Cert, String)>, Error> {
    if debug {
        crate::diag!(
            "ra-signer: debug: listing the certificates matching {}",
            crate::display::redact_pin_value(uri.as_str())
        );
    }
    Ok(
        signer::pkcs11::list_certificates(uri.uri(), &config.pkcs11, true)?
            .into_iter()
            .map(|t| (t.cert, t.uri))
            .collect(),
    )
}

#[cfg(not(feature = "pkcs11"))]
fn token_certificates(
    _: &TokenUri,
    _: &crate::config::IdentityConfig,
    _: bool,
) -> Result<Vec<(Cert, String)>, Error> {
    Err(signer::OpenError::NoPkcs11Support.into())
}

/// Whether `command` runs with `--debug`, under which a failure prints its whole cause
/// chain ([`Error::chain`]).
pub fn debug_requested(command: &Command) -> bool {
    match command {
        Command::CredentialProcess(a) => a.session.options.debug,
        Command::Serve(a) => a.session.options.debug,
        Command::Update(a) => a.session.options.debug,
        Command::SignString(a) => a.debug,
        Command::ReadCertificateData(a) => a.debug,
        Command::Keygen(_) | Command::Version => false,
        Command::Exec(a) => a.session.options.debug,
        Command::Cache(_) | Command::Completions(_) | Command::Man(_) => false,
        Command::Doctor(a) => a.session.options.debug,
    }
}

/// Whether `command` opens a TPM key (or, for `keygen --tpm`, makes one). A build without
/// the TPM backend hands such a command to the build that has it (`main`).
pub fn needs_tpm(command: &Command) -> bool {
    let tpm_key = |identity: &IdentityArgs| {
        identity.private_key.as_deref().is_some_and(|key| {
            key.starts_with("handle:") || signer::is_tss2_key_file(std::path::Path::new(key))
        })
    };
    match command {
        Command::CredentialProcess(a) => tpm_key(&a.identity),
        Command::SignString(a) => tpm_key(&a.identity),
        Command::Keygen(a) => a.tpm,
        Command::Doctor(a) => tpm_key(&a.identity),
        Command::Serve(a) => tpm_key(&a.identity),
        Command::Update(a) => tpm_key(&a.identity),
        Command::Exec(a) => tpm_key(&a.identity),
        Command::ReadCertificateData(_)
        | Command::Version
        | Command::Cache(_)
        | Command::Completions(_)
        | Command::Man(_) => false,
    }
}

/// Whether `command` may hold TPM objects, which a signal must let it flush before the
/// process ends. Only then is a signal handler worth its cost (a thread and a runtime,
/// about a millisecond of every run). `serve` and `update` stop on signals their own way.
pub fn may_use_tpm(command: &Command) -> bool {
    !matches!(command, Command::Serve(_) | Command::Update(_)) && needs_tpm(command)
}
