//! PKCS#11 backend: keys that never leave a token (an HSM, a smart card, SoftHSM2).
//!
//! [`open`] loads the module once, selects the one token the URI names, reads the
//! certificates (public objects) before logging in, logs the user in once, finds the private
//! key, reads only its public attributes, pairs it with its certificate by public key (no
//! test signature), and returns an [`Identity`] whose signer calls `C_Sign` once per
//! signature. [`list_certificates`] serves `read-certificate-data --pkcs11-uri`;
//! [`generate_key_pair`] and [`store_certificates`] serve `keygen`.

mod objects;
mod provision;
mod session;
mod signer;
pub use crate::pkcs11_uri as uri;

use std::fmt;

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};

use crate::cert::{Cert, CertError};
use crate::config::{CertificateSource, IdentityConfig, Pkcs11Settings, PrivateKeySource};
use crate::secret::{Secret, SecretError};
use crate::signer::{Identity, KeyMismatch};

use objects::{TokenCert, TokenKey};
pub use provision::{
    GeneratedKey, ProvisionError, StoredCertificates, generate_key_pair, store_certificates,
};
use session::{FoundToken, Module};
use signer::{Mechanisms, TokenSigner};
pub use uri::{Pkcs11Uri, UriError};

/// Why the PKCS#11 backend failed. Hardware failures keep the function and the raw `CKR_*`
/// code.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs11Error {
    /// The URI is malformed.
    #[error(transparent)]
    Uri(#[from] UriError),
    /// The module file could not be found.
    #[error("PKCS#11 module \"{name}\" not found{}", searched_in(searched))]
    ModuleNotFound {
        /// The name or path asked for.
        name: String,
        /// Where it was looked for.
        searched: Vec<String>,
    },
    /// The module could not be loaded.
    #[error("cannot load PKCS#11 module {path}: {detail}")]
    ModuleLoad {
        /// The module file.
        path: String,
        /// The loader's complaint.
        detail: String,
    },
    /// No token matches the URI.
    #[error(
        "no token matching {uri} is present in {module}{}",
        list("tokens present", available)
    )]
    TokenAbsent {
        /// The URI's token part.
        uri: String,
        /// The module searched.
        module: String,
        /// The tokens that are there.
        available: Vec<String>,
    },
    /// Several tokens match the URI.
    #[error("{} tokens match {uri}: the URI must select one{}", candidates.len(), list("matching", candidates))]
    AmbiguousToken {
        /// The URI.
        uri: String,
        /// The tokens that match.
        candidates: Vec<String>,
    },
    /// No object of the wanted kind matches the URI.
    #[error("no {what} matching {uri} on {token}{}", list("present", available))]
    NoObject {
        /// "private key" or "certificate".
        what: &'static str,
        /// The URI.
        uri: String,
        /// The token searched.
        token: String,
        /// Objects of that kind that are there.
        available: Vec<String>,
    },
    /// No private key on the token has the certificate's public key.
    #[error(
        "no private key on {token} belongs to the certificate {certificates}{}",
        list("present", available)
    )]
    NoKeyForCertificate {
        /// The subjects of the certificates the URI selected.
        certificates: String,
        /// The token searched.
        token: String,
        /// The private keys that are there.
        available: Vec<String>,
    },
    /// Several objects of the wanted kind match the URI.
    #[error("{} {what}s match {uri} on {token}: add object= or id= to select one{}", candidates.len(), list("matching", candidates))]
    AmbiguousObjects {
        /// "private key" or "certificate".
        what: &'static str,
        /// The URI.
        uri: String,
        /// The token.
        token: String,
        /// The objects that match.
        candidates: Vec<String>,
    },
    /// No PIN could be had (none given and no terminal), or its file could not be read.
    #[error(transparent)]
    Pin(SecretError),
    /// The same for the context-specific PIN of a `CKA_ALWAYS_AUTHENTICATE` key.
    #[error(transparent)]
    ContextPin(SecretError),
    /// The token refused the PIN (CKR_PIN_INCORRECT). Never retried.
    #[error("the token refused the {} PIN (CKR_PIN_INCORRECT) for {token}{}", if *context { "context-specific" } else { "user" }, pin_flags(*count_low, *final_try))]
    PinIncorrect {
        /// The token.
        token: Box<uri::TokenDesc>,
        /// Whether it was the context-specific login of an always-authenticate key.
        context: bool,
        /// CKF_USER_PIN_COUNT_LOW after the failure.
        count_low: bool,
        /// CKF_USER_PIN_FINAL_TRY after the failure.
        final_try: bool,
    },
    /// The user PIN is locked (CKR_PIN_LOCKED or CKF_USER_PIN_LOCKED).
    #[error("the user PIN of {token} is locked (CKR_PIN_LOCKED)")]
    PinLocked {
        /// The token.
        token: Box<uri::TokenDesc>,
    },
    /// The user PIN has expired (CKR_PIN_EXPIRED).
    #[error("the user PIN of {token} has expired (CKR_PIN_EXPIRED)")]
    PinExpired {
        /// The token.
        token: Box<uri::TokenDesc>,
    },
    /// The key is not RSA, P-256 or P-384, or its public half cannot be read.
    #[error("the key {key} cannot be used: {detail}")]
    UnsupportedKey {
        /// The key (object and id).
        key: String,
        /// Why.
        detail: String,
    },
    /// The token offers no mechanism this key can sign with.
    #[error("cannot sign with the key {key}: {detail}")]
    NoMechanism {
        /// The key (object and id).
        key: String,
        /// Why.
        detail: String,
    },
    /// The key and the certificate do not belong together.
    #[error(transparent)]
    KeyMismatch(#[from] KeyMismatch),
    /// A certificate or intermediates file could not be used.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// The key file that goes with a certificate on a token could not be used.
    #[error(transparent)]
    KeyFile(#[from] crate::signer::file::FileKeyError),
    /// A combination of sources this backend cannot serve.
    #[error("{0}")]
    Unsupported(String),
    /// A PKCS#11 call failed.
    #[error("{function} failed with {} ({where_})", ckr_name(rv))]
    Call {
        /// The function, `C_Login`.
        function: &'static str,
        /// The raw return value.
        rv: RvError,
        /// On what.
        where_: String,
    },
    /// A cryptoki failure that is not a return code.
    #[error("{function} failed: {detail} ({where_})")]
    Library {
        /// The function.
        function: &'static str,
        /// cryptoki's description.
        detail: String,
        /// On what.
        where_: String,
    },
}

impl Pkcs11Error {
    /// Wraps a failed call, keeping the raw return value.
    pub fn call(function: &'static str, e: CkError, where_: impl fmt::Display) -> Self {
        match e {
            CkError::Pkcs11(rv, _) => Pkcs11Error::Call {
                function,
                rv,
                where_: where_.to_string(),
            },
            other => Pkcs11Error::Library {
                function,
                detail: other.to_string(),
                where_: where_.to_string(),
            },
        }
    }
}

fn searched_in(dirs: &[String]) -> String {
    if dirs.is_empty() {
        String::new()
    } else {
        format!(" (searched {})", dirs.join(", "))
    }
}

fn list(what: &str, items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut s = format!("; {what}:");
    for i in items {
        s.push_str("\n  ");
        s.push_str(i);
    }
    s
}

fn pin_flags(count_low: bool, final_try: bool) -> &'static str {
    if final_try {
        "; ONE attempt is left before the PIN locks"
    } else if count_low {
        "; the token reports failed attempts: few are left before the PIN locks"
    } else {
        ""
    }
}

/// The `CKR_*` name of a return value: `PinIncorrect` → `CKR_PIN_INCORRECT`.
pub fn ckr_name(rv: &RvError) -> String {
    if let RvError::VendorDefined(code) = rv {
        return format!("CKR_VENDOR_DEFINED({code:#x})");
    }
    let debug = format!("{rv:?}");
    let mut out = String::from("CKR");
    for c in debug.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The C name of a cryptoki function: `Function::SignInit` → `C_SignInit`. A signer's only
/// login is the context-specific one of a `CKA_ALWAYS_AUTHENTICATE` key, and says so.
pub fn call_name(function: Function) -> String {
    match function {
        Function::Login => "C_Login (context-specific)".to_owned(),
        other => format!("C_{other:?}"),
    }
}

/// What a signing failure's return value means, in the message itself.
pub fn sign_failure_note(rv: RvError) -> &'static str {
    match rv {
        RvError::PinIncorrect => {
            " (the context-specific PIN was refused; ra-signer does not retry it)"
        }
        RvError::PinLocked => " (the PIN is locked)",
        RvError::UserNotLoggedIn => {
            " (the token wants a login for this key: is it CKA_ALWAYS_AUTHENTICATE?)"
        }
        RvError::TokenNotPresent | RvError::DeviceRemoved => " (the token was removed)",
        _ => "",
    }
}

/// One certificate on a token, with a URI that selects exactly it.
#[derive(Debug, Clone)]
pub struct TokenCertificate {
    /// The certificate.
    pub cert: Cert,
    /// `pkcs11:model=…;manufacturer=…;serial=…;token=…;id=…;object=…;type=cert`.
    pub uri: String,
}

/// Every certificate matching `uri` (its token attributes and `object`/`id`) on every token
/// it matches. Certificates are public objects, so no login, unless `login_if_hidden` and a
/// token that wants a login shows none: such a token may keep them private (CKA_PRIVATE), and
/// is looked at again logged in, when a PIN is at hand.
pub fn list_certificates(
    uri: &Pkcs11Uri,
    settings: &Pkcs11Settings,
    login_if_hidden: bool,
) -> Result<Vec<TokenCertificate>, Pkcs11Error> {
    if let Some(t) = uri.object_type
        && t != uri::ObjectType::Cert
        && t != uri::ObjectType::Private
    {
        return Err(Pkcs11Error::Unsupported(format!(
            "the URI names type={}, and only certificates can be listed",
            t.as_str()
        )));
    }
    let module = session::load(&session::module_path(uri, settings)?)?;
    let tokens = session::matching_tokens(&module, uri)?;
    if tokens.is_empty() {
        return Err(session::select_token(&module, uri)
            .err()
            .unwrap_or_else(|| Pkcs11Error::Unsupported("no token".into())));
    }
    let mut out = Vec::new();
    for token in &tokens {
        let s = session::open_session(&module, token, false)?;
        let mut found = matching_certificates(&s, token, uri)?;
        if found.is_empty() && login_if_hidden && token.info.login_required() {
            // A PIN given by the user, never a prompt: a mistyped label must not ask for one.
            let unprompted = Pkcs11Settings {
                pin_sources: settings
                    .pin_sources
                    .iter()
                    .filter(|s| !matches!(s, crate::secret::SecretSource::Prompt))
                    .cloned()
                    .collect(),
                ..settings.clone()
            };
            match session::user_pin(uri, &unprompted, &token.desc) {
                Ok(pin) => {
                    session::login(&module, &s, token, &mut || Ok(pin.clone()))?;
                    found = matching_certificates(&s, token, uri)?;
                }
                Err(Pkcs11Error::Pin(SecretError::NoneGiven { .. })) => crate::diag!(
                    "ra-signer: note: {} shows no matching certificate without a login; it may keep \
                     certificates private: give the PIN (--pkcs11-pin-file, or pin-source= in the URI) \
                     to look again",
                    token.desc
                ),
                Err(e) => return Err(e),
            }
        }
        out.extend(found);
    }
    Ok(out)
}

fn matching_certificates(
    session: &cryptoki::session::Session,
    token: &FoundToken,
    uri: &Pkcs11Uri,
) -> Result<Vec<TokenCertificate>, Pkcs11Error> {
    Ok(objects::certificates(session, &token.desc)?
        .into_iter()
        .filter(|c| objects::cert_matches(c, uri))
        .map(|c| {
            let mut u = token.desc.uri();
            u.id = Some(c.id.clone());
            u.object = Some(c.label.clone());
            u.object_type = Some(uri::ObjectType::Cert);
            TokenCertificate {
                cert: c.cert,
                uri: u.to_string(),
            }
        })
        .collect())
}

/// Opens the identity described by `config` where the key or certificate is on a token.
pub fn open(config: &IdentityConfig) -> Result<Identity, Pkcs11Error> {
    let cert_uri = match &config.certificate {
        Some(CertificateSource::Pkcs11(u)) => Some(u.uri().clone()),
        _ => None,
    };
    let key_uri = match &config.private_key {
        PrivateKeySource::Pkcs11(u) => u.uri().clone(),
        // The key is the certificate's own, on its token: search that token's keys.
        PrivateKeySource::MatchingTokenCertificate => match &cert_uri {
            Some(cu) => cu.token_only(),
            None => {
                return Err(Pkcs11Error::Unsupported(
                    "no private key given, and the certificate is not on a token".into(),
                ));
            }
        },
        PrivateKeySource::File(path) => {
            let cert_uri = cert_uri.ok_or_else(|| {
                Pkcs11Error::Unsupported("neither the key nor the certificate is on a token".into())
            })?;
            return open_file_key_with_token_cert(config, &cert_uri, path);
        }
        PrivateKeySource::TpmHandle(_) => {
            return Err(Pkcs11Error::Unsupported(
                "a TPM key with a certificate on a PKCS#11 token is not supported: \
                 export the certificate and pass it with --certificate FILE"
                    .into(),
            ));
        }
    };
    let settings = &config.pkcs11;
    let matching = matches!(
        config.private_key,
        PrivateKeySource::MatchingTokenCertificate
    );
    let module = session::load(&session::module_path(&key_uri, settings)?)?;
    // The certificate URI names the objects that tell which token is meant, when the key
    // URI (its token part) cannot.
    let token_uri = match (&cert_uri, matching) {
        (Some(cu), true) => cu,
        _ => &key_uri,
    };
    let token = token_with_public_match(&module, token_uri)?;
    let session = session::open_session(&module, &token, false)?;

    // Certificates are public objects: the leaf candidates are read before the login.
    let read_candidates =
        |session: &cryptoki::session::Session| -> Result<Vec<TokenCert>, Pkcs11Error> {
            match (&config.certificate, &cert_uri) {
                (Some(CertificateSource::File(path)), _) => Ok(vec![TokenCert {
                    cert: Cert::first_from_file(path)?,
                    label: String::new(),
                    id: Vec::new(),
                }]),
                (_, Some(cu)) => certs_for_uri(&module, &token, session, cu, settings),
                _ => objects::certificates_for(session, &key_uri, &token.desc),
            }
        };
    let mut leaf_candidates = read_candidates(&session)?;

    let user_pin = session::login(&module, &session, &token, &mut || {
        session::user_pin(&key_uri, settings, &token.desc)
    })?;
    if leaf_candidates.is_empty() {
        // A token may keep its certificates private (CKA_PRIVATE): look again, logged in.
        leaf_candidates = read_candidates(&session)?;
    }

    if matching && leaf_candidates.is_empty() {
        return Err(no_certificate(
            &session,
            &token,
            cert_uri.as_ref().unwrap_or(&key_uri),
        ));
    }
    let key = if matching {
        key_for_certificates(&session, &key_uri, &token, &leaf_candidates)?
    } else {
        find_key(&session, &key_uri, &token)?
    };
    // Checked after the key, so that a URI naming nothing says "no private key".
    if leaf_candidates.is_empty() {
        return Err(no_certificate(
            &session,
            &token,
            cert_uri.as_ref().unwrap_or(&key_uri),
        ));
    }
    let leaf_candidates: Vec<Cert> = leaf_candidates.into_iter().map(|c| c.cert).collect();
    let public_key = match &key.public_key {
        Some(p) => p.clone(),
        // No public key object: trust the token's pairing of key and certificate by CKA_ID.
        None => objects::certificates_with_id(&session, &key.id, &token.desc)?
            .into_iter()
            .find(|c| !key.id.is_empty() && c.cert.key_type() == key.key_type)
            .map(|c| c.cert.public_key_bits().to_vec())
            .ok_or_else(|| Pkcs11Error::UnsupportedKey {
                key: key.describe(),
                detail: "the token has no public key or certificate with the key's CKA_ID, \
                         so its public key cannot be read"
                    .into(),
            })?,
    };
    let leaf = pick_leaf(leaf_candidates, key.key_type, &public_key);

    let mechanisms = Mechanisms::from_list(&session::mechanisms(&module, &token)?);
    signer::check_plan(key.key_type, &mechanisms, key.always_auth).map_err(|detail| {
        Pkcs11Error::NoMechanism {
            key: key.describe(),
            detail,
        }
    })?;
    let mechanism = signer::sha256_mechanism(key.key_type, &mechanisms, key.always_auth);
    let mechanism_signs = mechanism.is_some_and(|m| {
        module
            .ctx
            .get_mechanism_info(token.slot, m)
            .is_ok_and(|info| info.sign())
    });
    let protection = objects::key_protection(
        &session,
        key.handle,
        &token.desc,
        mechanism.map(|m| m.to_string()).unwrap_or_default(),
        mechanism_signs,
    )?;
    let context_pin = if key.always_auth {
        Some(context_pin(settings, user_pin, &key_uri, &token, &key)?)
    } else {
        None
    };

    let chain = match &config.intermediates {
        Some(path) => Cert::all_from_file(path)?,
        None => objects::chain_from_token(&session, &leaf, &token.desc)?,
    };
    let key_desc = format!("key {} on {}", key.describe(), token.desc);
    let signer = TokenSigner::new(
        session,
        key.handle,
        key.key_type,
        public_key,
        mechanisms,
        key.always_auth,
        context_pin,
        key_desc.clone(),
    )
    .with_protection(protection);
    Ok(Identity::new(leaf, chain, Box::new(signer), &key_desc)?)
}

/// The leaf: among the candidates, the certificates of this key, the one valid longest (a
/// renewed certificate beside its predecessor); the first candidate when none is of this key
/// (then [`Identity::new`] refuses the mismatch).
fn pick_leaf(mut candidates: Vec<Cert>, key_type: crate::cert::KeyType, public_key: &[u8]) -> Cert {
    let mine = |c: &Cert| c.key_type() == key_type && c.public_key_bits() == public_key;
    let best = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| mine(c))
        .max_by_key(|(_, c)| (c.not_after(), c.not_before()))
        .map(|(i, _)| i)
        .unwrap_or(0);
    candidates.swap_remove(best)
}

/// The one private key the URI selects.
fn find_key(
    session: &cryptoki::session::Session,
    key_uri: &Pkcs11Uri,
    token: &FoundToken,
) -> Result<TokenKey, Pkcs11Error> {
    let handles = objects::private_keys(session, key_uri, &token.desc)?;
    match handles.len() {
        1 => objects::key_info(session, handles[0], &token.desc),
        0 => Err(Pkcs11Error::NoObject {
            what: "private key",
            uri: key_uri.to_string(),
            token: token.desc.to_string(),
            available: objects::list_private_keys(session, &token.desc),
        }),
        _ => {
            let mut candidates = Vec::new();
            for h in handles {
                let k = objects::key_info(session, h, &token.desc)?;
                let mut u = token.desc.uri();
                u.object = Some(k.label.clone());
                u.id = Some(k.id.clone());
                u.object_type = Some(uri::ObjectType::Private);
                candidates.push(format!("{} ({})", u, k.key_type));
            }
            Err(Pkcs11Error::AmbiguousObjects {
                what: "private key",
                uri: key_uri.to_string(),
                token: token.desc.to_string(),
                candidates,
            })
        }
    }
}

/// The certificates a `--certificate pkcs11:` URI names: on the key's token when it matches
/// it (and names no other module), else on the token it names.
fn certs_for_uri(
    key_module: &Module,
    key_token: &FoundToken,
    key_session: &cryptoki::session::Session,
    cert_uri: &Pkcs11Uri,
    settings: &Pkcs11Settings,
) -> Result<Vec<TokenCert>, Pkcs11Error> {
    // Without a module of its own, the certificate URI means the key's module.
    let module = if cert_uri.module_path.is_none() && cert_uri.module_name.is_none() {
        key_module.clone()
    } else {
        session::load(&session::module_path(cert_uri, settings)?)?
    };
    let certs = if module.path == key_module.path && cert_uri.matches_token(&key_token.desc) {
        objects::certificates_for(key_session, cert_uri, &key_token.desc)?
    } else {
        let token = session::select_token(&module, cert_uri)?;
        let s = session::open_session(&module, &token, false)?;
        objects::certificates_for(&s, cert_uri, &token.desc)?
    };
    Ok(certs)
}

/// The token a URI selects. The Go helper's forms (`pkcs11:object=…`, `pkcs11:id=%01`)
/// often name no token: of several tokens the URI matches, the one where a public object
/// (certificate or public key) matches is meant, which needs no login. Several or none:
/// the usual ambiguity error.
fn token_with_public_match(module: &Module, uri: &Pkcs11Uri) -> Result<FoundToken, Pkcs11Error> {
    let mut tokens = session::matching_tokens(module, uri)?;
    // One token: it is the one (the slots are not enumerated a second time to find it).
    if tokens.len() == 1 {
        return Ok(tokens.remove(0));
    }
    if tokens.is_empty() || (uri.object.is_none() && uri.id.is_none()) {
        return session::select_token(module, uri);
    }
    let mut holding = Vec::new();
    for token in tokens {
        let s = session::open_session(module, &token, false)?;
        if objects::has_public_match(&s, uri, &token.desc)? {
            holding.push(token);
        }
    }
    match holding.len() {
        1 => Ok(holding.remove(0)),
        _ => session::select_token(module, uri),
    }
}

fn no_certificate(
    session: &cryptoki::session::Session,
    token: &FoundToken,
    uri: &Pkcs11Uri,
) -> Pkcs11Error {
    Pkcs11Error::NoObject {
        what: "certificate",
        uri: uri.to_string(),
        token: token.desc.to_string(),
        available: list_certificates_on(session, token),
    }
}

/// The private key on the token whose public key is one of the certificates'. The key with
/// a certificate's CKA_ID is tried first (the usual pairing: one search); every key on the
/// token only when that fails, so that a key stored under another id is still found.
fn key_for_certificates(
    session: &cryptoki::session::Session,
    token_uri: &Pkcs11Uri,
    token: &FoundToken,
    certs: &[TokenCert],
) -> Result<TokenKey, Pkcs11Error> {
    let pairs = |key: &TokenKey| {
        certs.iter().any(|c| {
            c.cert.key_type() == key.key_type
                && match &key.public_key {
                    Some(p) => c.cert.public_key_bits() == p.as_slice(),
                    // No public key object: the token pairs key and certificate by CKA_ID.
                    None => !key.id.is_empty() && key.id == c.id,
                }
        })
    };
    let mut tried = Vec::new();
    for cert in certs.iter().filter(|c| !c.id.is_empty()) {
        let by_id = Pkcs11Uri {
            id: Some(cert.id.clone()),
            ..token_uri.clone()
        };
        for handle in objects::private_keys(session, &by_id, &token.desc)? {
            let key = objects::key_info(session, handle, &token.desc)?;
            if pairs(&key) {
                return Ok(key);
            }
            tried.push(handle);
        }
    }
    for handle in objects::private_keys(session, token_uri, &token.desc)? {
        if tried.contains(&handle) {
            continue;
        }
        let key = objects::key_info(session, handle, &token.desc)?;
        if pairs(&key) {
            return Ok(key);
        }
    }
    let subjects: Vec<String> = certs
        .iter()
        .map(|c| format!("\"{}\"", c.cert.subject()))
        .collect();
    Err(Pkcs11Error::NoKeyForCertificate {
        certificates: subjects.join(", "),
        token: token.desc.to_string(),
        available: objects::list_private_keys(session, &token.desc),
    })
}

/// "object=…;id=…" of every certificate on the token, for error messages.
fn list_certificates_on(session: &cryptoki::session::Session, token: &FoundToken) -> Vec<String> {
    objects::certificates(session, &token.desc)
        .unwrap_or_default()
        .iter()
        .map(|c| objects::describe(&c.label, &c.id))
        .collect()
}

fn context_pin(
    settings: &Pkcs11Settings,
    user_pin: Option<Secret>,
    key_uri: &Pkcs11Uri,
    token: &FoundToken,
    key: &TokenKey,
) -> Result<Secret, Pkcs11Error> {
    if settings.reuse_pin {
        return match user_pin {
            Some(p) => Ok(p),
            None => session::user_pin(key_uri, settings, &token.desc),
        };
    }
    session::context_pin(&settings.context_pin_sources, &key.label)
}

/// A certificate on a token with its key in a file (`--certificate pkcs11:… --private-key
/// key.pem`).
fn open_file_key_with_token_cert(
    config: &IdentityConfig,
    cert_uri: &Pkcs11Uri,
    key_path: &std::path::Path,
) -> Result<Identity, Pkcs11Error> {
    let module = session::load(&session::module_path(cert_uri, &config.pkcs11)?)?;
    let token = session::select_token(&module, cert_uri)?;
    let s = session::open_session(&module, &token, false)?;
    let candidates: Vec<Cert> = objects::certificates_for(&s, cert_uri, &token.desc)?
        .into_iter()
        .map(|c| c.cert)
        .collect();
    if candidates.is_empty() {
        return Err(Pkcs11Error::NoObject {
            what: "certificate",
            uri: cert_uri.to_string(),
            token: token.desc.to_string(),
            available: list_certificates_on(&s, &token),
        });
    }
    let what = format!("the password of key file {}", key_path.display());
    let mut ask = || crate::secret::resolve(&config.key_password_sources, &what);
    let loaded = crate::signer::file::load(key_path, &mut ask)?;
    let leaf = pick_leaf(
        candidates,
        loaded.signer.key_type(),
        loaded.signer.public_key_bits(),
    );
    let chain = match &config.intermediates {
        Some(path) => Cert::all_from_file(path)?,
        None => objects::chain_from_token(&s, &leaf, &token.desc)?,
    };
    let key_desc = format!("{} file {}", loaded.format, key_path.display());
    Ok(Identity::new(leaf, chain, loaded.signer, &key_desc)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ckr_names() {
        assert_eq!(ckr_name(&RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(
            ckr_name(&RvError::UserAlreadyLoggedIn),
            "CKR_USER_ALREADY_LOGGED_IN"
        );
        assert_eq!(ckr_name(&RvError::TokenNotPresent), "CKR_TOKEN_NOT_PRESENT");
        assert_eq!(
            ckr_name(&RvError::VendorDefined(0x8000_0001)),
            "CKR_VENDOR_DEFINED(0x80000001)"
        );
    }
}
