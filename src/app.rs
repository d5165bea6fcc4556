//! The commands: each takes parsed flags, calls the library, and writes its output. Errors
//! are classified here, once, with hints that use what we know about the identity.

use std::io::Write;

use base64::Engine;

use crate::cert::Cert;
use crate::cli::{
    Command, CredentialProcessArgs, DigestArg, IdentityArgs, ReadCertificateDataArgs, SignFormat,
    SignStringArgs,
};
use crate::config::{CertificateSource, ConfigError, PrivateKeySource};
use crate::error::{Error, ErrorClass};
use crate::rolesanywhere::{Client, CreateSessionError};
use crate::signer::{self, Digest, Identity, Signer};

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::new(ErrorClass::Usage, e.0)
    }
}

/// Runs one command.
pub fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::CredentialProcess(args) => credential_process(&args),
        Command::SignString(args) => sign_string(&args),
        Command::ReadCertificateData(args) => read_certificate_data(&args),
        Command::Serve(args) => crate::serve::run(&args),
        Command::Update(args) => crate::update::run(&args),
        Command::Keygen(args) => crate::keygen::run(&args),
        Command::Version => {
            println!("ra-signer {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}

fn warn(identity: &IdentityArgs) {
    for w in identity.warnings() {
        eprintln!("ra-signer: warning: {w}");
    }
}

fn credential_process(args: &CredentialProcessArgs) -> Result<(), Error> {
    warn(&args.identity);
    let request = args.session.to_request()?;
    let options = args.session.client_options(&request)?;
    let identity_config = args.identity.to_config()?;
    // --cache: a hit needs neither the key nor the network.
    let cache_key = args
        .cache
        .then(|| {
            let (min_validity, debug) = (args.cache_min_validity, args.session.options.debug);
            crate::cache::key(&request, &options, &identity_config, min_validity, debug)
        })
        .flatten();
    let mut cached = cache_key.as_ref().and_then(crate::cache::lookup);
    // On a miss, wait for any run already signing for this entry, then look again.
    let _entry_lock = match (&cache_key, &cached) {
        (Some(key), None) => {
            let lock = crate::cache::lock(key);
            cached = crate::cache::lookup(key);
            lock
        }
        _ => None,
    };
    let credentials = match cached {
        Some(c) => c,
        None => {
            let identity = signer::open(&identity_config)?;
            let client = Client::new(options).map_err(|e| session_error(e, &identity, &request))?;
            let credentials = client
                .create_session(&identity, &request)
                .map_err(|e| session_error(e, &identity, &request))?;
            if let Some(key) = &cache_key {
                crate::cache::store(key, &credentials);
            }
            credentials
        }
    };
    let json = credentials.to_process_json();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", json.as_str())
        .and_then(|()| out.flush())
        .map_err(|e| Error::new(ErrorClass::Other, format!("cannot write to stdout: {e}")))
}

/// Turns a CreateSession failure into a sentence, a hint and a class.
pub fn session_error(
    e: CreateSessionError,
    identity: &Identity,
    request: &crate::config::SessionRequest,
) -> Error {
    let message = e.to_string();
    match &e {
        CreateSessionError::Setup(_) => Error::new(ErrorClass::Usage, message),
        CreateSessionError::Sign(failure) => Error::new(ErrorClass::Identity, message).with_hint(
            failure.hint().unwrap_or(
                "the key refused to sign: check the token or TPM and that the key may sign",
            ),
        ),
        CreateSessionError::Transport { tls: true, .. } => Error::new(ErrorClass::Network, message)
            .with_hint("the endpoint's TLS certificate is not trusted: for a private CA pass --ca-bundle FILE (or $AWS_CA_BUNDLE)"),
        CreateSessionError::Transport { .. } => Error::new(ErrorClass::Network, message)
            .with_hint("check --endpoint/--region, the network, and HTTPS_PROXY/NO_PROXY"),
        CreateSessionError::BadResponse { .. } => Error::new(ErrorClass::Network, message)
            .with_hint("the endpoint is not answering like IAM Roles Anywhere: check --endpoint"),
        CreateSessionError::Service { status, code, message: aws, .. } => {
            let class = if *status >= 500 || *status == 429 || code.contains("Throttl") {
                ErrorClass::Network
            } else {
                ErrorClass::Rejected
            };
            let hint = service_hint(*status, code, aws, identity, request);
            let err = Error::new(class, message);
            match hint {
                Some(h) => err.with_hint(h),
                None => err,
            }
        }
    }
}

fn service_hint(
    status: u16,
    code: &str,
    message: &str,
    identity: &Identity,
    request: &crate::config::SessionRequest,
) -> Option<String> {
    let leaf = identity.leaf();
    let lower = message.to_ascii_lowercase();
    if lower.contains("untrusted signing certificate") {
        let sent = if identity.chain().is_empty() {
            "no intermediate certificates were sent".to_owned()
        } else {
            format!(
                "{} intermediate(s) were sent: {}",
                identity.chain().len(),
                identity
                    .chain()
                    .iter()
                    .map(|c| format!("\"{}\"", c.subject()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Some(format!(
            "no chain leads from trust anchor {} to the certificate \"{}\", issued by \"{}\"; {sent}. The trust anchor must hold the root CA, and any intermediate CA must be passed with --intermediates",
            request.trust_anchor_arn,
            leaf.subject(),
            leaf.issuer()
        ));
    }
    if lower.contains("invalid signature") || lower.contains("signature") {
        return Some("the service could not verify the signature: check this machine's clock (X-Amz-Date), the region (--region), and run with --debug to see the canonical request and string to sign".into());
    }
    if lower.contains("rolesessionname") {
        return Some("the profile does not accept role session names: drop --role-session-name or enable acceptRoleSessionName on the profile".into());
    }
    if code.contains("ResourceNotFound") || status == 404 {
        return Some(format!(
            "check the trust anchor and profile ARNs, and that they exist in {}",
            request.default_region()
        ));
    }
    if code.contains("Validation") {
        return Some(
            "check --session-duration against the profile's durationSeconds, and the ARNs".into(),
        );
    }
    if code.contains("AccessDenied") {
        return Some("check that the profile lists the role, that the role trusts rolesanywhere.amazonaws.com, and its conditions on the certificate".into());
    }
    if status >= 500 || status == 429 || code.contains("Throttl") {
        return Some("the service is failing or throttling (about 10 CreateSession calls a second are allowed): retry later, or share credentials with `serve`".into());
    }
    None
}

/// The fixed test string of the Go helper's `sign-string`.
fn test_string(public_key_bits: &[u8]) -> Vec<u8> {
    let mut tagged = b"IAM RA".to_vec();
    tagged.extend_from_slice(public_key_bits);
    let mut s = b"AWS Roles Anywhere Credential Helper Signing Test".to_vec();
    s.extend_from_slice(b"1");
    s.extend_from_slice(&Digest::Sha256.hash(&tagged));
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
            bare_key.as_ref()
        }
        _ => {
            identity = signer::open(&config)?;
            identity.signer()
        }
    };
    let signature = signer
        .sign(digest, &test_string(signer.public_key_bits()))
        .map_err(|e| Error::new(ErrorClass::Identity, format!("signing failed: {e}")))?;
    let hex = crate::cert::hex_lower(&signature);
    let mut out = std::io::stdout().lock();
    let written = match args.format {
        SignFormat::Text => writeln!(out, "{hex}"),
        SignFormat::Json => writeln!(out, "{}", serde_json::Value::from(hex)),
        SignFormat::Bin => out.write_all(&signature),
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| Error::new(ErrorClass::Other, format!("cannot write to stdout: {e}")))
}

/// The JSON of `read-certificate-data` for one certificate.
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
    let source = match (&id.pkcs11_uri, &id.certificate) {
        (Some(uri), _) => CertificateSource::Pkcs11(uri.clone()),
        (None, Some(c)) if c.starts_with("pkcs11:") => CertificateSource::Pkcs11(c.clone()),
        (None, Some(c)) => CertificateSource::File(c.into()),
        (None, None) => {
            return Err(Error::new(
                ErrorClass::Usage,
                "no certificate given: pass --certificate FILE or --pkcs11-uri URI",
            ));
        }
    };
    let value = match source {
        CertificateSource::File(path) => {
            let cert = Cert::first_from_file(&path).map_err(signer::cert_error)?;
            certificate_data(&cert)
        }
        CertificateSource::Pkcs11(uri) => token_certificates(&uri, id)?,
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    );
    Ok(())
}

#[cfg(feature = "pkcs11")]
fn token_certificates(uri: &str, id: &IdentityArgs) -> Result<serde_json::Value, Error> {
    let config = id.to_config()?;
    let found = signer::pkcs11::list_certificates(uri, &config.pkcs11)?;
    Ok(serde_json::Value::Array(
        found
            .iter()
            .map(|t| {
                let mut v = certificate_data(&t.cert);
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("uri".into(), t.uri.clone().into());
                    obj.insert("subject".into(), t.cert.subject().into());
                    obj.insert("issuer".into(), t.cert.issuer().into());
                    obj.insert("sha1Fingerprint".into(), t.cert.sha1_hex().into());
                    obj.insert(
                        "notBefore".into(),
                        crate::time::UtcTime::from_unix(t.cert.not_before())
                            .rfc3339()
                            .into(),
                    );
                    obj.insert(
                        "notAfter".into(),
                        crate::time::UtcTime::from_unix(t.cert.not_after())
                            .rfc3339()
                            .into(),
                    );
                    obj.insert(
                        "keyDescription".into(),
                        t.cert.key_type().to_string().into(),
                    );
                }
                v
            })
            .collect(),
    ))
}

#[cfg(not(feature = "pkcs11"))]
fn token_certificates(_: &str, _: &IdentityArgs) -> Result<serde_json::Value, Error> {
    Err(Error::new(
        ErrorClass::Usage,
        "this ra-signer was built without PKCS#11 support",
    ))
}
