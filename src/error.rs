//! The top-level error: every layer's typed error is classified once, here, into a
//! message, an optional hint (what to do), an exit code, and whether another attempt may
//! succeed. The typed error stays as the [`Error`]'s source, so `--debug` can print the
//! whole cause chain ([`Error::chain`]).
//!
//! This module sits above the backends (it knows all their errors) and below the commands;
//! no backend imports it.

use std::fmt;
use std::process::ExitCode;

use crate::cert::CertError;
use crate::config::{ConfigError, SessionRequest};
use crate::keygen::KeygenError;
use crate::rolesanywhere::CreateSessionError;
use crate::secret::SecretError;
use crate::signer::file::FileKeyError;
#[cfg(feature = "pkcs11")]
use crate::signer::pkcs11::Pkcs11Error;
#[cfg(feature = "tpm")]
use crate::signer::tpm::TpmError;
use crate::signer::{Identity, OpenError, SignError, ValidityError};

/// A cause kept under an [`Error`].
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The classes of failure, each with its own exit code (documented in `docs/exit-codes.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Anything not classified below. Exit 1.
    Other,
    /// Bad flags or values (malformed ARN, URI, duration). Exit 2.
    Usage,
    /// The certificate, key, token or TPM could not be used (missing, malformed, mismatched,
    /// wrong PIN or password, token absent). Exit 3.
    Identity,
    /// AWS (or the endpoint) answered and refused the request (4xx). Exit 4.
    Rejected,
    /// The endpoint could not be reached, or kept failing (connect, TLS, timeout, 5xx,
    /// throttling after retries, unusable response). Exit 5.
    Network,
    /// `serve` cannot listen: the address is in use, not on this machine, or the port is
    /// privileged. Exit 6.
    Listen,
    /// `doctor` ran its checks and at least one failed. Exit 7.
    ChecksFailed,
    /// `exec`: the command exists but cannot be run (as shells say it). Exit 126.
    CommandNotExecutable,
    /// `exec`: the command is not found (as shells say it). Exit 127.
    CommandNotFound,
}

impl ErrorClass {
    /// The process exit code for this class.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorClass::Other => 1,
            ErrorClass::Usage => 2,
            ErrorClass::Identity => 3,
            ErrorClass::Rejected => 4,
            ErrorClass::Network => 5,
            ErrorClass::Listen => 6,
            ErrorClass::ChecksFailed => 7,
            ErrorClass::CommandNotExecutable => 126,
            ErrorClass::CommandNotFound => 127,
        }
    }

    /// The class as a stable snake_case name (`serve --metrics` labels failures with it).
    pub fn label(self) -> &'static str {
        match self {
            ErrorClass::Other => "other",
            ErrorClass::Usage => "usage",
            ErrorClass::Identity => "identity",
            ErrorClass::Rejected => "rejected",
            ErrorClass::Network => "network",
            ErrorClass::Listen => "listen",
            ErrorClass::ChecksFailed => "checks_failed",
            ErrorClass::CommandNotExecutable => "command_not_executable",
            ErrorClass::CommandNotFound => "command_not_found",
        }
    }

    /// Every class, in exit-code order.
    pub const ALL: [ErrorClass; 9] = [
        ErrorClass::Other,
        ErrorClass::Usage,
        ErrorClass::Identity,
        ErrorClass::Rejected,
        ErrorClass::Network,
        ErrorClass::Listen,
        ErrorClass::ChecksFailed,
        ErrorClass::CommandNotExecutable,
        ErrorClass::CommandNotFound,
    ];
}

/// A failure ready to show a person: one sentence, an optional hint, a class, and the
/// typed error it came from.
#[derive(Debug)]
pub struct Error {
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// Which exit code.
    pub class: ErrorClass,
    source: Option<Source>,
}

impl Error {
    /// Builds an error.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            hint: None,
            class,
            source: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a hint when there is one.
    pub fn with_optional_hint(mut self, hint: Option<impl Into<String>>) -> Self {
        self.hint = hint.map(Into::into);
        self
    }

    /// Keeps the typed error this one was made from.
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.class.exit_code())
    }

    /// The causes under the message that say something the line above them did not (a
    /// cause that a message already quotes, or a transparent wrapper, is left out).
    pub fn causes(&self) -> Vec<String> {
        let mut causes = Vec::new();
        let mut above = self.message.clone();
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            let text = e.to_string();
            if !above.contains(&text) {
                causes.push(text.clone());
            }
            above = text;
            cause = e.source();
        }
        causes
    }

    /// The message, each of its [`causes`](Error::causes), and the hint: what `--debug`
    /// prints.
    pub fn chain(&self) -> String {
        let mut out = format!("error: {}", self.message);
        for cause in self.causes() {
            out.push_str("\n  caused by: ");
            out.push_str(&cause);
        }
        if let Some(hint) = &self.hint {
            out.push_str("\nhint: ");
            out.push_str(hint);
        }
        out
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Whether another CreateSession attempt may succeed: throttling, a 5xx, transport trouble
/// other than an untrusted certificate. The one retry predicate.
pub fn is_retryable(e: &CreateSessionError) -> bool {
    match e {
        CreateSessionError::Service { status, code, .. } => is_transient_refusal(*status, code),
        CreateSessionError::Transport { tls, .. } => !tls,
        CreateSessionError::BadResponse { status, .. } => *status >= 500,
        _ => false,
    }
}

/// The service is failing or throttling rather than refusing this request.
fn is_transient_refusal(status: u16, code: &str) -> bool {
    status >= 500 || status == 429 || code.contains("Throttl")
}

/// The hint of a signature that failed without a more precise one.
pub const SIGN_HINT: &str =
    "the key refused to sign: check the token or TPM and that the key may sign";

/// What to do about a failed signature, when its cause says more than [`SIGN_HINT`].
pub fn sign_hint(e: &SignError) -> Option<String> {
    let hint: &str = match e {
        #[cfg(feature = "pkcs11")]
        SignError::Pkcs11 { rv, .. } => return pkcs11_sign_hint(*rv).map(str::to_owned),
        #[cfg(feature = "pkcs11")]
        SignError::Pkcs11Library { .. } => {
            "the module misbehaved; check it with `pkcs11-tool --module … -L`"
        }
        SignError::NoMechanism { .. } => {
            "use a key without CKA_ALWAYS_AUTHENTICATE, or a token that offers the \
             hash-and-sign mechanism (see docs/pkcs11.md)"
        }
        SignError::MalformedSignature { .. } => {
            "check the token: its module returned something that is not a signature"
        }
        #[cfg(feature = "tpm")]
        SignError::Tpm { rc, .. } => {
            let rc = crate::signer::tpm::Rc::from(*rc);
            if rc.is_out_of_memory() {
                crate::signer::tpm::OUT_OF_MEMORY_HINT
            } else if rc.is_connection_lost() {
                "check the TPM: the connection to it broke (a restarted simulator or resource \
                 manager); the next signature connects again"
            } else {
                return None;
            }
        }
        #[cfg(feature = "tpm")]
        SignError::TpmLockout { .. } => crate::signer::tpm::LOCKOUT_HINT,
        #[cfg(feature = "tpm")]
        SignError::TpmTimeout { .. } => return Some(crate::signer::tpm::timeout_hint()),
        #[cfg(feature = "tpm")]
        SignError::TpmKey(e) => return e.hint(),
        SignError::RsaInconsistent => "the key file is damaged: restore it or issue a new key",
        SignError::Ecdsa { .. } | SignError::OddEcdsaLength | SignError::MlDsa { .. } => {
            return None;
        }
    };
    Some(hint.to_owned())
}

/// What a `CKR_*` at signing time asks of the person at the token.
#[cfg(feature = "pkcs11")]
fn pkcs11_sign_hint(rv: cryptoki::error::RvError) -> Option<&'static str> {
    use cryptoki::error::RvError as R;
    Some(match rv {
        R::TokenNotPresent | R::DeviceRemoved | R::SlotIdInvalid => {
            "re-insert the token: it was removed while ra-signer was using it"
        }
        R::SessionHandleInvalid
        | R::SessionClosed
        | R::DeviceError
        | R::DeviceMemory
        | R::GeneralError
        | R::TokenNotRecognized
        | R::KeyHandleInvalid
        | R::ObjectHandleInvalid
        | R::CryptokiNotInitialized => {
            "check the token: it was reset, reinitialised or failed under ra-signer \
             (`pkcs11-tool --list-slots` shows whether it is there)"
        }
        R::PinIncorrect => {
            "check the context-specific PIN (--pkcs11-context-pin-file, \
             RA_SIGNER_PKCS11_CONTEXT_PIN, or --reuse-pin for the user PIN)"
        }
        R::PinLocked => {
            "the token's security officer must unlock it (e.g. `pkcs11-tool --login --login-type so --init-pin`)"
        }
        R::UserNotLoggedIn => {
            "the key asks for its PIN at each signature (CKA_ALWAYS_AUTHENTICATE): give it \
             with --pkcs11-context-pin-file or --reuse-pin"
        }
        _ => return None,
    })
}

impl From<SignError> for Error {
    fn from(e: SignError) -> Self {
        let hint = sign_hint(&e).unwrap_or_else(|| SIGN_HINT.to_owned());
        Error::new(ErrorClass::Identity, e.to_string())
            .with_hint(hint)
            .with_source(e)
    }
}

/// Turns a CreateSession failure into a sentence, a hint and a class. The identity and the
/// request make the hints precise (which chain was sent, which trust anchor).
pub fn session_error(
    e: CreateSessionError,
    identity: &Identity,
    request: &SessionRequest,
) -> Error {
    let message = e.to_string();
    let err = match &e {
        CreateSessionError::Setup(_) => Error::new(ErrorClass::Usage, message),
        CreateSessionError::Sign(failure) => Error::new(ErrorClass::Identity, message)
            .with_hint(sign_hint(failure).unwrap_or_else(|| SIGN_HINT.to_owned())),
        CreateSessionError::Transport { tls: true, .. } => Error::new(ErrorClass::Network, message)
            .with_hint("the endpoint's TLS certificate is not trusted: for a private CA pass --ca-bundle FILE (or $AWS_CA_BUNDLE)"),
        CreateSessionError::Transport { .. } => Error::new(ErrorClass::Network, message)
            .with_hint("check --endpoint/--region, the network, and HTTPS_PROXY/NO_PROXY"),
        CreateSessionError::BadResponse { .. } => Error::new(ErrorClass::Network, message)
            .with_hint("the endpoint is not answering like IAM Roles Anywhere: check --endpoint"),
        CreateSessionError::Service { status, code, message: aws, .. } => {
            let class = if is_retryable(&e) {
                ErrorClass::Network
            } else {
                ErrorClass::Rejected
            };
            Error::new(class, message)
                .with_optional_hint(service_hint(*status, code, aws, identity, request))
        }
    };
    err.with_source(e)
}

fn service_hint(
    status: u16,
    code: &str,
    message: &str,
    identity: &Identity,
    request: &SessionRequest,
) -> Option<String> {
    let leaf = identity.leaf();
    let lower = message.to_ascii_lowercase();
    if lower.starts_with("unable to assume role") {
        return Some(format!(
            "the role's trust policy refused this certificate (subject \"{}\", issuer \"{}\", trust anchor {}): check its conditions on aws:PrincipalTag/x509Subject/…, x509Issuer/…, x509SAN/… and aws:SourceArn, and that the profile's attribute mappings map the fields they test",
            leaf.subject(),
            leaf.issuer(),
            request.trust_anchor_arn
        ));
    }
    if lower.contains("certificate revoked") {
        return Some(format!(
            "the certificate \"{}\" or one of its CA certificates is on a CRL imported into trust anchor {}: this machine needs a new certificate",
            leaf.subject(),
            request.trust_anchor_arn
        ));
    }
    if lower.starts_with("trust anchor") && lower.ends_with("is disabled") {
        return Some(format!(
            "trust anchor {} is disabled: enable it (aws rolesanywhere enable-trust-anchor)",
            request.trust_anchor_arn
        ));
    }
    if lower.starts_with("profile") && lower.ends_with("is disabled") {
        return Some(format!(
            "profile {} is disabled: enable it (aws rolesanywhere enable-profile)",
            request.profile_arn
        ));
    }
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
    if lower.contains("durationseconds") && (lower.contains("exceeds") || lower.contains("limit")) {
        return Some("the profile allows shorter sessions than --session-duration asks for: give a --session-duration within the profile's durationSeconds (the message names it), or raise it on the profile".into());
    }
    if code.contains("Validation") {
        return Some(
            "check --session-duration against the profile's durationSeconds, and the ARNs".into(),
        );
    }
    if code.contains("AccessDenied") {
        return Some("check that the profile lists the role, that the role trusts rolesanywhere.amazonaws.com, and its conditions on the certificate".into());
    }
    if is_transient_refusal(status, code) {
        return Some("the service is failing or throttling (about 10 CreateSession calls a second are allowed): retry later, or share credentials with `serve`".into());
    }
    None
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::new(ErrorClass::Usage, e.message).with_optional_hint(e.hint)
    }
}

impl From<crate::diag::StdoutError> for Error {
    fn from(e: crate::diag::StdoutError) -> Self {
        classify_stdout(&e).with_source(e)
    }
}

fn classify_stdout(e: &crate::diag::StdoutError) -> Error {
    let error = Error::new(ErrorClass::Other, e.to_string());
    if e.0.kind() == std::io::ErrorKind::BrokenPipe {
        error.with_hint("stdout was closed before ra-signer could write: run it with stdout open to a reader (a pipe, a file or a terminal)")
    } else {
        error
    }
}

impl From<OpenError> for Error {
    fn from(e: OpenError) -> Self {
        classify_open(&e).with_source(e)
    }
}

fn classify_open(e: &OpenError) -> Error {
    let message = e.to_string();
    let id = |hint: &str| Error::new(ErrorClass::Identity, message.clone()).with_hint(hint);
    match e {
        #[cfg(feature = "pkcs11")]
        OpenError::Pkcs11(p) => classify_pkcs11(p),
        #[cfg(feature = "tpm")]
        OpenError::Tpm(t) => classify_tpm(t),
        OpenError::FileKey(f) => classify_file_key(f),
        OpenError::Cert(c) => classify_cert(c),
        OpenError::NoCertificate { .. } => id("pass the certificate with --certificate FILE"),
        OpenError::KeyMismatch(_) => id(
            "pass the key that belongs to this certificate (compare `openssl x509 -pubkey` with `openssl pkey -pubout`)",
        ),
        OpenError::Validity(v) => classify_validity(v),
        OpenError::NotHardwareKey(_) => id(
            "make the key inside the token or TPM (`ra-signer keygen`), or drop --require-hardware-key",
        ),
        OpenError::NoPkcs11Support => Error::new(ErrorClass::Usage, message)
            .with_hint("rebuild with `cargo build --release --features pkcs11`"),
        OpenError::NoTpmSupport => {
            Error::new(ErrorClass::Usage, message).with_hint(NO_TPM_BUILD_HINT)
        }
    }
}

/// What to do when a build without the TPM backend meets a TPM key and finds no TPM build
/// beside it ([`crate::tpm_build`]).
const NO_TPM_BUILD_HINT: &str = "install the ra-signer package, whose /usr/lib/ra-signer/ra-signer-tpm runs TPM commands in this binary's place, or rebuild with `cargo build --release --features tpm` (needs libtss2-dev)";

impl From<crate::tpm_build::TpmBuildError> for Error {
    fn from(e: crate::tpm_build::TpmBuildError) -> Self {
        let hint = format!(
            "{} must be an executable file, as the package installs it; reinstall the package",
            e.path.display()
        );
        Error::new(ErrorClass::Other, e.to_string())
            .with_hint(hint)
            .with_source(e)
    }
}

impl From<ValidityError> for Error {
    fn from(e: ValidityError) -> Self {
        classify_validity(&e).with_source(e)
    }
}

fn classify_validity(e: &ValidityError) -> Error {
    let hint = match e {
        ValidityError::Expired { .. } => "renew the certificate with your CA",
        ValidityError::NotYetValid { .. } => "check this machine's clock",
    };
    Error::new(ErrorClass::Identity, e.to_string()).with_hint(hint)
}

/// What to do about an input that could not be read: a file, or an `env:NAME` variable.
pub fn read_hint(origin: &str) -> String {
    match crate::input::env_name(std::path::Path::new(origin)) {
        Some(name) => format!(
            "set the environment variable {name} to the PEM text or the base64 of the DER \
             (a file whose name starts with env: is reached as ./env:…)"
        ),
        None => "check the path and that this user may read it".to_owned(),
    }
}

impl From<CertError> for Error {
    fn from(e: CertError) -> Self {
        classify_cert(&e).with_source(e)
    }
}

/// Classifies a certificate problem.
pub fn cert_error(e: CertError) -> Error {
    Error::from(e)
}

fn classify_cert(e: &CertError) -> Error {
    let hint = match e {
        CertError::Read { path, .. } => read_hint(path),
        CertError::NoCertificate { .. } | CertError::Malformed { .. } => {
            "pass a PEM (-----BEGIN CERTIFICATE-----) or DER X.509 certificate".to_owned()
        }
    };
    Error::new(ErrorClass::Identity, e.to_string()).with_hint(hint)
}

impl From<FileKeyError> for Error {
    fn from(e: FileKeyError) -> Self {
        classify_file_key(&e).with_source(e)
    }
}

fn classify_file_key(e: &FileKeyError) -> Error {
    let hint = match e {
        FileKeyError::Read { path, .. } => Some(read_hint(path)),
        FileKeyError::Password(SecretError::NoneGiven { .. }) => Some(format!(
            "give it with --pkcs8-password-file FILE or ${}",
            crate::env::PKCS8_PASSWORD
        )),
        _ => None,
    };
    Error::new(ErrorClass::Identity, e.to_string()).with_optional_hint(hint)
}

#[cfg(feature = "pkcs11")]
impl From<Pkcs11Error> for Error {
    fn from(e: Pkcs11Error) -> Self {
        classify_pkcs11(&e).with_source(e)
    }
}

#[cfg(feature = "pkcs11")]
fn classify_pkcs11(e: &Pkcs11Error) -> Error {
    use Pkcs11Error as P;
    use cryptoki::error::RvError;
    {
        // The file backend's failures read the same whichever backend met them.
        if let P::KeyFile(f) = e {
            return classify_file_key(f);
        }
        let message = e.to_string();
        let id = |hint: &str| Error::new(ErrorClass::Identity, message.clone()).with_hint(hint);
        match e {
            P::Uri(_) => Error::new(ErrorClass::Usage, message).with_hint(
                "write it as pkcs11:token=LABEL;object=LABEL (percent-encode special characters); \
                 `p11tool --list-all` prints the URI of every object",
            ),
            P::ModuleNotFound { .. } | P::ModuleLoad { .. } => id(
                "pass the module with --pkcs11-lib PATH or module-path= in the URI \
                 (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)",
            ),
            P::TokenAbsent { .. } => id(
                "insert the token, or fix token=/serial=/slot-id= in the URI \
                 (`p11tool --list-tokens` shows them)",
            ),
            P::AmbiguousToken { .. } => {
                id("add serial= (or slot-id=) to the URI to pick one token")
            }
            P::NoObject {
                what: "certificate",
                ..
            } => id(
                "store the certificate on the token next to the key (ra-signer keygen --import-cert), \
                 or pass it with --certificate FILE",
            ),
            P::NoObject { .. } => {
                id("fix object= or id= in the URI; the keys present are listed above")
            }
            P::NoKeyForCertificate { .. } => id(
                "store the key on the same token as its certificate, or name it with --private-key pkcs11:URI",
            ),
            P::AmbiguousObjects { .. } => id("use one of the URIs listed above"),
            P::Pin(SecretError::NoneGiven { .. }) => id(
                "give the PIN with --pkcs11-pin-file FILE, RA_SIGNER_PKCS11_PIN, or pin-source=file:… \
                 in the URI (no terminal to ask on)",
            ),
            P::Pin(SecretError::Empty { .. } | SecretError::EmptyFirstLine { .. }) => id(
                "put the PIN on the first line of the PIN file (no blank line before it); \
                 nothing was sent to the token",
            ),
            P::Pin(_) => id("check the PIN file's path and permissions"),
            P::ContextPin(SecretError::NoneGiven { .. }) => id(
                "the key asks for its PIN again at each signature (CKA_ALWAYS_AUTHENTICATE): pass \
                 --reuse-pin to answer with the user PIN, or give it with \
                 --pkcs11-context-pin-file FILE or RA_SIGNER_PKCS11_CONTEXT_PIN (no terminal to ask on)",
            ),
            P::ContextPin(_) => id("check the context PIN file's path and permissions"),
            P::PinIncorrect { .. } => id(
                "check the PIN; ra-signer tried it once and will not retry, so the token's \
                 retry counter is not run down",
            ),
            P::PinLocked { .. } => id(
                "the token's security officer must unlock it (e.g. `pkcs11-tool --login --login-type so --init-pin`)",
            ),
            P::PinExpired { .. } => id("change the PIN (e.g. `pkcs11-tool --login --change-pin`)"),
            P::UnsupportedKey { .. } => id("use an RSA, P-256 or P-384 key"),
            P::NoMechanism { .. } => id(
                "use a key without CKA_ALWAYS_AUTHENTICATE, or a token that offers the \
                 hash-and-sign mechanism (see docs/pkcs11.md)",
            ),
            P::KeyMismatch(_) => id(
                "pass the certificate issued for this key, or the key the certificate was issued for \
                 (compare `p11tool --export-pubkey` with `openssl x509 -pubkey`)",
            ),
            P::Cert(c) => id(&match c {
                CertError::Read { path, .. } => read_hint(path),
                _ => "pass a PEM or DER X.509 certificate".to_owned(),
            }),
            P::KeyFile(_) => Error::new(ErrorClass::Identity, message),
            P::Unsupported(_) => Error::new(ErrorClass::Usage, message),
            P::Call { rv, .. } => match rv {
                RvError::TokenNotPresent | RvError::DeviceRemoved | RvError::SlotIdInvalid => {
                    id("insert the token and try again")
                }
                RvError::UserNotLoggedIn => id("the token wants a login: give the PIN"),
                _ => id("the token or its module failed; `pkcs11-tool --test` may say more"),
            },
            P::Library { .. } => {
                id("the module misbehaved; check it with `pkcs11-tool --module … -L`")
            }
        }
    }
}

#[cfg(feature = "tpm")]
impl From<TpmError> for Error {
    fn from(e: TpmError) -> Self {
        classify_tpm(&e).with_source(e)
    }
}

#[cfg(feature = "tpm")]
fn classify_tpm(e: &TpmError) -> Error {
    let class = match e {
        TpmError::Keygen(_) | TpmError::BadTcti { .. } => ErrorClass::Usage,
        _ => ErrorClass::Identity,
    };
    let hint = match e {
        TpmError::CsrSign(failure) => sign_hint(failure),
        other => other.hint(),
    };
    Error::new(class, e.to_string()).with_optional_hint(hint)
}

impl From<KeygenError> for Error {
    fn from(e: KeygenError) -> Self {
        let message = e.to_string();
        let usage = || Error::new(ErrorClass::Usage, message.clone());
        match e {
            #[cfg(feature = "pkcs11")]
            KeygenError::Token(e) => {
                use crate::signer::pkcs11::ProvisionError as P;
                match e {
                    P::Token(e) => Error::from(e),
                    P::NoLabel => usage()
                        .with_hint("e.g. --pkcs11-uri 'pkcs11:token=prod;object=ra-signer;id=%01'"),
                    P::KeyExists { .. } => {
                        usage().with_hint("choose another object= and id=, or delete the old key")
                    }
                    P::AmbiguousKey { .. } | P::NoPublicKey | P::NoCertificate => usage(),
                    P::Unprotected { .. } => Error::new(ErrorClass::Identity, message),
                    P::NoRandomness => Error::new(ErrorClass::Other, message),
                }
            }
            #[cfg(feature = "tpm")]
            KeygenError::Tpm(e) => Error::from(e),
            KeygenError::Certificate(e) => cert_error(e),
            KeygenError::NoCertificate { .. } | KeygenError::Exists { .. } => usage(),
            KeygenError::SignCsr { source, .. } => {
                Error::new(ErrorClass::Identity, message).with_optional_hint(sign_hint(&source))
            }
            KeygenError::Csr(_) | KeygenError::Write { .. } => {
                Error::new(ErrorClass::Other, message)
            }
            KeygenError::NoPkcs11Support => usage(),
            KeygenError::Stdout(e) => Error::from(e),
            KeygenError::NoTpmSupport => usage().with_hint(NO_TPM_BUILD_HINT),
        }
    }
}

/// What `serve` and `update` themselves can fail at; the layers below bring their own errors.
#[derive(Debug, thiserror::Error)]
pub enum ModeError {
    /// The ECS token file holds no usable token.
    #[error(
        "the authorization token in {} must be at least 16 printable characters without spaces",
        path.display()
    )]
    BadToken {
        /// The token file.
        path: std::path::PathBuf,
    },
    /// The ECS token file cannot be read.
    #[error(transparent)]
    TokenFile(SecretError),
    /// No randomness for a new ECS token.
    #[error("the system RNG failed")]
    Rng,
    /// A new ECS token cannot be written.
    #[error("cannot write the ECS authorization token to {}: {source}", path.display())]
    WriteToken {
        /// The token file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `serve` cannot listen.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The credentials file is one botocore refuses.
    #[error(
        "the credentials file {} is not one botocore reads ({refused}): not rewriting it",
        path.display()
    )]
    RefusedFile {
        /// The file.
        path: std::path::PathBuf,
        /// What botocore refuses, with its line.
        refused: String,
    },
    /// The credentials file cannot be read or written.
    #[error("cannot write the credentials file {}: {source}", path.display())]
    WriteFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `man --out-dir`: a page cannot be written.
    #[error("cannot write the manual page {}: {source}", path.display())]
    WritePage {
        /// The page, or the directory that could not be made.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The identity was closed before the first CreateSession (it is opened just before).
    #[error("the identity did not open")]
    NoIdentity,
    /// The process cannot start what the mode runs on (a thread, the runtime, signals).
    #[error("cannot {what}: {source}")]
    Process {
        /// What was being started.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl From<ModeError> for Error {
    fn from(e: ModeError) -> Self {
        let message = e.to_string();
        let error = match &e {
            ModeError::BadToken { .. } | ModeError::TokenFile(_) => {
                Error::new(ErrorClass::Usage, message)
            }
            ModeError::Rng
            | ModeError::WriteToken { .. }
            | ModeError::NoIdentity
            | ModeError::Process { .. } => Error::new(ErrorClass::Other, message),
            ModeError::Listen { source, .. } => {
                let hint = match source.kind() {
                    std::io::ErrorKind::AddrInUse => {
                        "another process listens there: pick another --port, or stop it (`ss -ltnp` names it)"
                    }
                    std::io::ErrorKind::PermissionDenied => {
                        "ports below 1024 need CAP_NET_BIND_SERVICE: pick a --port of 1024 or more"
                    }
                    std::io::ErrorKind::AddrNotAvailable => {
                        "--bind must be an address of this machine (127.0.0.1, ::1, or one of `ip addr`)"
                    }
                    _ => "pick another --port or --bind address",
                };
                Error::new(ErrorClass::Listen, message).with_hint(hint)
            }
            ModeError::RefusedFile { .. } => Error::new(ErrorClass::Usage, message).with_hint(
                "fix that line (the AWS CLI and SDKs refuse the file as it is), then run again",
            ),
            ModeError::WriteFile { .. } | ModeError::WritePage { .. } => {
                Error::new(ErrorClass::Other, message)
                    .with_hint("check that this user may write the file and its directory")
            }
        };
        error.with_source(e)
    }
}

impl From<crate::exec::ExecError> for Error {
    fn from(e: crate::exec::ExecError) -> Self {
        use crate::exec::ExecError as E;
        let message = e.to_string();
        let error = match &e {
            E::Inherited { .. } => Error::new(ErrorClass::Usage, message).with_hint(
                "unset it, or pass --override-env to give the command these credentials instead \
                 (AWS_PROFILE and AWS_DEFAULT_PROFILE are then removed from its environment)",
            ),
            E::NotFound { .. } => Error::new(ErrorClass::CommandNotFound, message).with_hint(
                "check the name and $PATH; the command runs directly, not through a shell \
                 (for shell syntax: -- sh -c '…')",
            ),
            E::NotExecutable { .. } | E::Exec { .. } => {
                Error::new(ErrorClass::CommandNotExecutable, message)
                    .with_hint("check the file's permissions and its #! line")
            }
        };
        error.with_source(e)
    }
}

impl From<crate::cache::CacheError> for Error {
    fn from(e: crate::cache::CacheError) -> Self {
        use crate::cache::CacheError as E;
        let message = e.to_string();
        let error = match &e {
            E::Unavailable(_) | E::ProcKeys(_) => Error::new(ErrorClass::Other, message).with_hint(
                "--cache works only where the keyctl system calls are allowed (Docker's default \
                 seccomp profile denies them); see docs/cache.md",
            ),
            E::NoEntryKey => Error::new(ErrorClass::Identity, message).with_hint(
                "check --certificate; an identity whose certificate cannot be read is never cached",
            ),
        };
        error.with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The class and hint a signing failure gets (`SIGN_HINT` when the cause says no more).
    fn classified(e: SignError) -> (String, ErrorClass, String) {
        let message = e.to_string();
        let err = Error::from(e);
        assert_eq!(err.message, message, "the message is the typed error's");
        (message, err.class, err.hint.unwrap_or_default())
    }

    #[cfg(feature = "pkcs11")]
    #[test]
    fn pkcs11_signing_failures_keep_their_ckr_name_and_say_what_to_do() {
        use cryptoki::context::Function;
        use cryptoki::error::RvError;
        let on = |function, rv| {
            classified(SignError::Pkcs11 {
                function,
                rv,
                key: "key object=p256".into(),
            })
        };
        let cases: &[(Function, RvError, &str, &str)] = &[
            (
                Function::Sign,
                RvError::DeviceRemoved,
                "C_Sign failed with CKR_DEVICE_REMOVED for key object=p256 (the token was removed)",
                "re-insert the token",
            ),
            (
                Function::SignInit,
                RvError::TokenNotPresent,
                "C_SignInit failed with CKR_TOKEN_NOT_PRESENT",
                "re-insert the token",
            ),
            (
                Function::Sign,
                RvError::ObjectHandleInvalid,
                "C_Sign failed with CKR_OBJECT_HANDLE_INVALID",
                "check the token",
            ),
            (
                Function::Sign,
                RvError::SessionHandleInvalid,
                "CKR_SESSION_HANDLE_INVALID",
                "check the token",
            ),
            (
                Function::Sign,
                RvError::DeviceError,
                "CKR_DEVICE_ERROR",
                "check the token",
            ),
            (
                Function::Login,
                RvError::PinIncorrect,
                "C_Login (context-specific) failed with CKR_PIN_INCORRECT",
                "check the context-specific PIN",
            ),
            (
                Function::Login,
                RvError::PinLocked,
                "CKR_PIN_LOCKED for key object=p256 (the PIN is locked)",
                "security officer must unlock it",
            ),
            (
                Function::SignInit,
                RvError::UserNotLoggedIn,
                "CKR_USER_NOT_LOGGED_IN",
                "CKA_ALWAYS_AUTHENTICATE",
            ),
            (
                Function::SignFinal,
                RvError::FunctionFailed,
                "C_SignFinal failed with CKR_FUNCTION_FAILED",
                SIGN_HINT,
            ),
        ];
        for (function, rv, message, hint) in cases {
            let (got, class, got_hint) = on(*function, *rv);
            assert!(got.contains(message), "{got}");
            assert_eq!(class, ErrorClass::Identity, "{got}");
            assert!(got_hint.contains(hint), "{got}: {got_hint}");
        }
        let (message, class, hint) = classified(SignError::Pkcs11Library {
            function: Function::Sign,
            key: "key object=p256".into(),
            source: cryptoki::error::Error::NullFunctionPointer,
        });
        assert!(message.starts_with("C_Sign failed with "), "{message}");
        assert_eq!(class, ErrorClass::Identity);
        assert!(hint.contains("the module misbehaved"), "{hint}");
    }

    #[cfg(feature = "tpm")]
    #[test]
    fn tpm_signing_failures_keep_their_response_code_and_say_what_to_do() {
        use crate::signer::tpm::Rc;
        let tpm = |raw| {
            classified(SignError::Tpm {
                call: "TPM2_Sign",
                key: "TPM key handle:0x81000101".into(),
                rc: Rc::from_raw(raw).code(),
            })
        };
        let (message, class, hint) = tpm(0x902);
        assert_eq!(
            message,
            "TPM2_Sign failed for TPM key handle:0x81000101: TPM_RC_OBJECT_MEMORY (0x902)"
        );
        assert_eq!(class, ErrorClass::Identity);
        assert!(hint.contains("tpm2_flushcontext"), "{hint}");
        let (message, _, hint) = tpm(0xa000a);
        assert!(
            message.contains("TSS2_TCTI_RC_IO_ERROR (0xa000a)"),
            "{message}"
        );
        assert!(hint.contains("check the TPM"), "{hint}");
        let (message, _, hint) = tpm(0x101);
        assert!(message.contains("TPM_RC_FAILURE (0x101)"), "{message}");
        assert_eq!(hint, SIGN_HINT);

        let (message, class, hint) = classified(SignError::TpmLockout {
            rc: Rc::from_raw(0x921).code(),
        });
        assert!(message.contains("TPM_RC_LOCKOUT (0x921)"), "{message}");
        assert_eq!(class, ErrorClass::Identity);
        assert!(hint.contains("tpm2_dictionarylockout"), "{hint}");

        let (message, class, hint) = classified(SignError::TpmTimeout {
            call: "signing",
            tcti: "swtpm:port=2321".into(),
            origin: "--tpm-tcti",
            secs: 2,
        });
        assert!(
            message.contains("did not answer within 2 s while signing"),
            "{message}"
        );
        assert_eq!(class, ErrorClass::Identity);
        assert!(hint.contains(crate::env::TPM_TIMEOUT), "{hint}");

        let (message, class, hint) =
            classified(SignError::TpmKey(Box::new(TpmError::WrongPassword {
                what: "the password",
                key: "TPM key handle:0x81000102".into(),
                rc: Rc::from_raw(0x98e),
                hint: "check the key password".into(),
            })));
        assert!(message.contains("TPM_RC_AUTH_FAIL (0x98e)"), "{message}");
        assert_eq!(class, ErrorClass::Identity);
        assert_eq!(hint, "check the key password");
        let (_, _, hint) = classified(SignError::TpmKey(Box::new(TpmError::Released)));
        assert_eq!(hint, SIGN_HINT);
    }

    #[cfg(feature = "tpm")]
    #[test]
    fn tpm_errors_from_a_tpm_sign_keep_the_typed_code() {
        use crate::signer::tpm::Rc;
        let from = |e: TpmError| SignError::from(e);
        let sign = from(TpmError::Tpm {
            call: "TPM2_Sign",
            key: "k".into(),
            rc: Rc::from_raw(0x921),
            hint: None,
        });
        assert!(
            matches!(
                sign,
                SignError::Tpm {
                    call: "TPM2_Sign",
                    ..
                }
            ),
            "{sign:?}"
        );
        let lockout = from(TpmError::Lockout {
            rc: Rc::from_raw(0x921),
        });
        assert!(
            matches!(lockout, SignError::TpmLockout { .. }),
            "{lockout:?}"
        );
        // A hint only the backend knows (where the key came from) keeps the whole error.
        let load = from(TpmError::Tpm {
            call: "TPM2_Load",
            key: "k".into(),
            rc: Rc::from_raw(0x1df),
            hint: Some("the key was not made under this parent".into()),
        });
        assert!(matches!(load, SignError::TpmKey(_)), "{load:?}");
        assert_eq!(
            sign_hint(&load).as_deref(),
            Some("the key was not made under this parent")
        );
    }

    #[test]
    fn file_and_token_signing_failures_are_identity_errors() {
        let cases = [
            (
                SignError::NoMechanism {
                    key: "key object=k".into(),
                    why: "no SHA-384 mechanism".into(),
                },
                "hash-and-sign mechanism",
            ),
            (
                SignError::MalformedSignature {
                    key: "key object=k".into(),
                    len: 3,
                },
                "check the token",
            ),
            (SignError::RsaInconsistent, "the key file is damaged"),
            (
                SignError::Ecdsa {
                    curve: "P-256",
                    detail: "bad".into(),
                },
                SIGN_HINT,
            ),
            (SignError::OddEcdsaLength, SIGN_HINT),
            (
                SignError::MlDsa {
                    key_type: crate::cert::KeyType::MlDsa65,
                },
                SIGN_HINT,
            ),
        ];
        for (e, hint) in cases {
            let (message, class, got) = classified(e);
            assert_eq!(class, ErrorClass::Identity, "{message}");
            assert!(got.contains(hint), "{message}: {got}");
        }
    }

    #[cfg(feature = "pkcs11")]
    #[test]
    fn pkcs11_open_errors_are_classified() {
        use crate::signer::pkcs11::Pkcs11Uri;
        let uri = Pkcs11Error::from(Pkcs11Uri::parse("nope").expect_err("bad"));
        assert_eq!(Error::from(uri).class, ErrorClass::Usage);
        let absent = Pkcs11Error::TokenAbsent {
            uri: "pkcs11:token=x".into(),
            module: "m.so".into(),
            available: vec!["token \"a\"".into()],
        };
        let e = Error::from(OpenError::from(absent));
        assert_eq!(e.class, ErrorClass::Identity);
        assert!(
            e.message.contains("no token matching pkcs11:token=x"),
            "{}",
            e.message
        );
        assert!(e.message.contains("token \"a\""), "{}", e.message);
        assert!(
            e.hint
                .as_deref()
                .unwrap_or_default()
                .contains("insert the token")
        );
    }

    #[test]
    fn the_chain_adds_what_the_message_does_not_say() {
        let quoted = std::io::Error::other("permission denied");
        let err = Error::new(
            ErrorClass::Identity,
            "cannot read key.pem: permission denied",
        )
        .with_hint("check the path")
        .with_source(quoted);
        assert_eq!(
            err.chain(),
            "error: cannot read key.pem: permission denied\nhint: check the path"
        );
        let err = Error::from(SignError::MlDsa {
            key_type: crate::cert::KeyType::MlDsa44,
        });
        assert_eq!(
            err.to_string(),
            format!("error: ML-DSA-44 signing failed\nhint: {SIGN_HINT}")
        );
        let outer = Error::new(ErrorClass::Other, "refresh failed")
            .with_source(std::io::Error::other("the disk is full"));
        assert_eq!(outer.to_string(), "error: refresh failed");
        assert_eq!(
            outer.chain(),
            "error: refresh failed\n  caused by: the disk is full"
        );
    }

    #[test]
    fn one_retry_predicate() {
        let service = |status, code: &str| CreateSessionError::Service {
            status,
            code: code.into(),
            message: String::new(),
            request_id: None,
        };
        assert!(is_retryable(&service(500, "InternalError")));
        assert!(is_retryable(&service(429, "TooManyRequests")));
        assert!(is_retryable(&service(400, "ThrottlingException")));
        assert!(!is_retryable(&service(403, "AccessDeniedException")));
        let transport = |tls| CreateSessionError::Transport {
            endpoint: "e".into(),
            detail: "d".into(),
            tls,
        };
        assert!(is_retryable(&transport(false)));
        assert!(!is_retryable(&transport(true)));
        assert!(!is_retryable(&CreateSessionError::Setup("x".into())));
    }

    #[test]
    fn the_modes_own_failures_have_their_class_and_hint() {
        let listen = |kind| {
            Error::from(ModeError::Listen {
                addr: "127.0.0.1:80".parse().expect("addr"),
                source: std::io::Error::from(kind),
            })
        };
        let in_use = listen(std::io::ErrorKind::AddrInUse);
        assert_eq!(in_use.class, ErrorClass::Listen);
        assert!(in_use.hint.is_some_and(|h| h.contains("ss -ltnp")));
        let low = listen(std::io::ErrorKind::PermissionDenied);
        assert!(low.hint.is_some_and(|h| h.contains("CAP_NET_BIND_SERVICE")));
        let refused = Error::from(ModeError::RefusedFile {
            path: "credentials".into(),
            refused: "line 3: a second [default] section".into(),
        });
        assert_eq!(refused.class, ErrorClass::Usage);
        assert!(refused.message.contains("line 3"), "{}", refused.message);
        let token = Error::from(ModeError::BadToken {
            path: "token".into(),
        });
        assert_eq!(token.class.exit_code(), 2);
        let write = Error::from(ModeError::WriteFile {
            path: "credentials".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        });
        assert_eq!(write.class.exit_code(), 1);
        assert!(write.hint.is_some_and(|h| h.contains("may write")));
        assert!(write.source.is_some(), "the io error is kept as the cause");
    }

    /// keygen's failures.
    mod keygen {
        use super::*;
        use crate::keygen::KeygenError;
        use crate::signer::SignError;
        use std::path::PathBuf;

        fn classified(e: KeygenError) -> (u8, String, Option<String>) {
            let e = Error::from(e);
            (e.class.exit_code(), e.message, e.hint)
        }

        #[test]
        fn every_failure_has_its_class_and_hint() {
            let path = || PathBuf::from("out.csr");
            let (code, message, _) = classified(KeygenError::Exists { path: path() });
            assert_eq!(code, 2);
            assert_eq!(
                message,
                "out.csr exists: not replacing it (--force replaces it)"
            );
            let write = KeygenError::Write {
                path: path(),
                source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            };
            assert_eq!(classified(write).0, 1);
            assert_eq!(classified(KeygenError::NoCertificate { path: path() }).0, 2);
            let failure = || SignError::MalformedSignature {
                key: "key pkcs11:object=k".into(),
                len: 3,
            };
            let sign = KeygenError::SignCsr {
                key: "key pkcs11:object=k".into(),
                source: failure(),
            };
            let (code, message, hint) = classified(sign);
            assert_eq!(code, 3);
            assert!(
                message.starts_with("cannot sign the CSR with key pkcs11:object=k: "),
                "{message}"
            );
            assert_eq!(hint, sign_hint(&failure()));
            let (code, _, hint) = classified(KeygenError::NoTpmSupport);
            assert_eq!(code, 2);
            assert!(hint.is_some_and(|h| h.contains("--features tpm")));
            assert_eq!(classified(KeygenError::NoPkcs11Support).0, 2);
        }

        #[cfg(feature = "pkcs11")]
        #[test]
        fn token_refusals_have_their_class_and_hint() {
            use crate::signer::pkcs11::ProvisionError as P;
            let exists = P::KeyExists {
                label: "k".into(),
                id: "%01".into(),
                token: "token \"t\"".into(),
            };
            let (code, message, hint) = classified(exists.into());
            assert_eq!(code, 2);
            assert!(message.contains("already exists"), "{message}");
            assert!(hint.is_some_and(|h| h.contains("choose another object=")));
            let (code, _, hint) = classified(P::NoLabel.into());
            assert_eq!(code, 2);
            assert!(hint.is_some_and(|h| h.contains("object=")));
            let unprotected = P::Unprotected {
                token: "token \"t\"".into(),
                sensitive: false,
                extractable: true,
            };
            assert_eq!(classified(unprotected.into()).0, 3);
            let ambiguous = P::AmbiguousKey {
                count: 2,
                uri: "pkcs11:token=t".into(),
            };
            assert_eq!(classified(ambiguous.into()).0, 2);
        }
    }

    #[test]
    fn exec_and_cache_failures_get_their_exit_codes_and_hints() {
        use crate::cache::CacheError;
        use crate::exec::ExecError;
        let not_found = Error::from(ExecError::NotFound {
            program: "terrafrom".into(),
        });
        assert_eq!(
            (not_found.class.exit_code(), not_found.message.as_str()),
            (127, "command not found: terrafrom")
        );
        assert!(not_found.hint.is_some_and(|h| h.contains("$PATH")));
        let cannot = Error::from(ExecError::NotExecutable {
            program: "./x".into(),
            why: "it is a directory".into(),
        });
        assert_eq!(cannot.class.exit_code(), 126);
        let inherited = Error::from(ExecError::Inherited {
            name: "AWS_PROFILE",
        });
        assert_eq!(inherited.class, ErrorClass::Usage);
        assert!(inherited.hint.is_some_and(|h| h.contains("--override-env")));
        let no_keyring = Error::from(CacheError::Unavailable("OperationNotSupported".into()));
        assert_eq!(no_keyring.class.exit_code(), 1);
        assert_eq!(
            no_keyring.message,
            "the kernel keyring is not available (OperationNotSupported)"
        );
        assert!(no_keyring.hint.is_some_and(|h| h.contains("docs/cache.md")));
    }
}
