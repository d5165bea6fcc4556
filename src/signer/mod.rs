//! The `Signer` trait every key backend implements, and the `Identity` that pairs a signer
//! with its certificate chain.
//!
//! [`open`] is the only place that matches on the backend; everything above it sees an
//! [`Identity`].

pub mod csr;
pub mod der_sig;
pub mod file;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
#[cfg(feature = "tpm")]
pub mod tpm;

use std::fmt;

use crate::cert::{Cert, KeyType};

/// The digest a signature is computed over. SigV4-X509 always uses SHA-256; `sign-string`
/// can ask for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Digest {
    /// Hashes `message`.
    pub fn hash(self, message: &[u8]) -> Vec<u8> {
        let alg = match self {
            Digest::Sha256 => &ring::digest::SHA256,
            Digest::Sha384 => &ring::digest::SHA384,
            Digest::Sha512 => &ring::digest::SHA512,
        };
        ring::digest::digest(alg, message).as_ref().to_vec()
    }

    /// The name as the Go helper's `--digest` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Digest::Sha256 => "SHA256",
            Digest::Sha384 => "SHA384",
            Digest::Sha512 => "SHA512",
        }
    }

    /// The DER DigestInfo prefix for RSA PKCS#1 v1.5 (RFC 8017 §9.2, note 1).
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Digest::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            Digest::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            Digest::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// The signature algorithm of a key, as SigV4-X509 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5.
    Rsa,
    /// ECDSA with a DER `SEQUENCE { r, s }` signature.
    Ecdsa,
    /// Pure ML-DSA (FIPS 204) over the message itself, empty context; no digest.
    MlDsa,
}

impl Algorithm {
    /// The SigV4-X509 algorithm name (`AWS4-X509-MLDSA` for every ML-DSA parameter set).
    pub fn sigv4_name(self) -> &'static str {
        match self {
            Algorithm::Rsa => "AWS4-X509-RSA-SHA256",
            Algorithm::Ecdsa => "AWS4-X509-ECDSA-SHA256",
            Algorithm::MlDsa => "AWS4-X509-MLDSA",
        }
    }
}

/// Why a signature could not be made, typed to the hardware: the PKCS#11 function and its
/// `CKR_*` return value, the TPM command and its response code, as cryptoki's own
/// `Error::Pkcs11(RvError, Function)` keeps them. The top-level error module says what each means.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A PKCS#11 call returned an error code.
    #[cfg(feature = "pkcs11")]
    #[error(
        "{} failed with {} for {key}{}",
        pkcs11::call_name(*function),
        pkcs11::ckr_name(rv),
        pkcs11::sign_failure_note(*rv)
    )]
    Pkcs11 {
        /// The function (`C_Sign`; `C_Login` is the context-specific login).
        function: cryptoki::context::Function,
        /// The return value.
        rv: cryptoki::error::RvError,
        /// The key (object and id).
        key: String,
    },
    /// cryptoki failed before the token answered (a function the module lacks).
    #[cfg(feature = "pkcs11")]
    #[error("{} failed with {source} for {key}", pkcs11::call_name(*function))]
    Pkcs11Library {
        /// The function.
        function: cryptoki::context::Function,
        /// The key.
        key: String,
        /// cryptoki's error.
        source: cryptoki::error::Error,
    },
    /// The token offers no mechanism for this key and digest.
    #[error("cannot sign with {key}: {why}")]
    NoMechanism {
        /// The key.
        key: String,
        /// What is missing.
        why: String,
    },
    /// The token answered with something that is not an ECDSA signature.
    #[error("{key} returned a malformed ECDSA signature ({len} bytes)")]
    MalformedSignature {
        /// The key.
        key: String,
        /// The length of what came back.
        len: usize,
    },
    /// A TPM command failed with a response code.
    #[cfg(feature = "tpm")]
    #[error("{call} failed for {key}: {}", tpm::Rc::from(*rc))]
    Tpm {
        /// The command (`TPM2_Sign`).
        call: &'static str,
        /// The key.
        key: String,
        /// The TPM's (or the TSS's) answer.
        rc: tss_esapi::constants::response_code::Tss2ResponseCode,
    },
    /// The TPM is in dictionary-attack lockout.
    #[cfg(feature = "tpm")]
    #[error(
        "the TPM is in dictionary-attack lockout and refuses passwords ({})",
        tpm::Rc::from(*rc)
    )]
    TpmLockout {
        /// The TPM's answer.
        rc: tss_esapi::constants::response_code::Tss2ResponseCode,
    },
    /// The TPM did not answer in time.
    #[cfg(feature = "tpm")]
    #[error("the TPM at \"{tcti}\" (from {origin}) did not answer within {secs} s while {call}")]
    TpmTimeout {
        /// What was being done ("signing").
        call: &'static str,
        /// The TCTI string.
        tcti: String,
        /// Where it came from.
        origin: &'static str,
        /// The limit.
        secs: u64,
    },
    /// The TPM key could not be used at signing time for another reason: its password was
    /// refused, it could not be loaded again, the TPM was released.
    #[cfg(feature = "tpm")]
    #[error(transparent)]
    TpmKey(Box<tpm::TpmError>),
    /// A file key's RSA components do not agree (`ring` checks each signature it makes).
    #[error("RSA signing with the file key failed: its RSA components are inconsistent")]
    RsaInconsistent,
    /// A file key's ECDSA signing failed.
    #[error("ECDSA {curve} signing failed: {detail}")]
    Ecdsa {
        /// "P-256" or "P-384".
        curve: &'static str,
        /// The library's complaint.
        detail: String,
    },
    /// An ECDSA signature came out with an odd length.
    #[error("ECDSA signature has an odd length")]
    OddEcdsaLength,
    /// A file ML-DSA key did not sign.
    #[error("{key_type} signing failed")]
    MlDsa {
        /// The parameter set.
        key_type: KeyType,
    },
}

/// A private key that signs, wherever it lives. Implementations hash the message
/// themselves (or have the hardware do it) and return the signature in wire format:
/// PKCS#1 v1.5 bytes for RSA, DER `SEQUENCE { r, s }` for ECDSA, the FIPS 204 signature
/// encoding for ML-DSA.
pub trait Signer: Send {
    /// The key's type (RSA, P-256, P-384, ML-DSA-44/65/87).
    fn key_type(&self) -> KeyType;

    /// The public key as a DER SubjectPublicKeyInfo's raw key bits: the PKCS#1
    /// RSAPublicKey DER for RSA, the uncompressed point for EC, the encoded public key
    /// (`pkEncode`) for ML-DSA.
    fn public_key_bits(&self) -> &[u8];

    /// Signs `message` hashed with `digest`. ML-DSA keys sign the message itself (pure
    /// ML-DSA, empty context) and ignore `digest`, as the Go helper does.
    fn sign(&self, digest: Digest, message: &[u8]) -> Result<Vec<u8>, SignError>;

    /// How the key is held, from attributes that are public (never the key itself). A
    /// signer holding its key in this process's memory keeps the default.
    fn protection(&self) -> KeyProtection {
        KeyProtection::InMemory
    }

    /// The signature algorithm family.
    fn algorithm(&self) -> Algorithm {
        match self.key_type() {
            KeyType::Rsa => Algorithm::Rsa,
            KeyType::MlDsa44 | KeyType::MlDsa65 | KeyType::MlDsa87 => Algorithm::MlDsa,
            KeyType::EcP256 | KeyType::EcP384 | KeyType::Other => Algorithm::Ecdsa,
        }
    }
}

/// Where a key lives and what it may do, as its backend reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProtection {
    /// In this process's memory, read from a file or the environment.
    InMemory,
    /// On a PKCS#11 token.
    Token(TokenKeyFlags),
    /// In a TPM.
    Tpm(TpmKeyFlags),
}

/// The boolean attributes of a token's private key that say whether it can leave the token
/// and what else it may do. An attribute the token does not report counts as the unsafe
/// value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKeyFlags {
    /// `CKA_SENSITIVE`.
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE`.
    pub extractable: bool,
    /// `CKA_NEVER_EXTRACTABLE`.
    pub never_extractable: bool,
    /// `CKA_ALWAYS_SENSITIVE`.
    pub always_sensitive: bool,
    /// `CKA_DECRYPT`.
    pub decrypt: bool,
    /// `CKA_UNWRAP`.
    pub unwrap: bool,
    /// `CKA_DERIVE`.
    pub derive: bool,
    /// The mechanism a SigV4-X509 signature is made with (`CKM_ECDSA`).
    pub mechanism: String,
    /// Whether `C_GetMechanismInfo` says that mechanism signs (`CKF_SIGN`).
    pub mechanism_signs: bool,
}

/// The object attributes of a TPM key, from its public area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TpmKeyFlags {
    /// `fixedTPM`: the key cannot be duplicated to another TPM.
    pub fixed_tpm: bool,
    /// `fixedParent`: the key cannot be moved to another parent.
    pub fixed_parent: bool,
    /// `sensitiveDataOrigin`: the TPM generated the private part.
    pub sensitive_data_origin: bool,
    /// `decrypt`: the key may also decrypt.
    pub decrypt: bool,
}

impl KeyProtection {
    /// Why the key is not a hardware key that never left (and never can leave) its
    /// hardware, naming each missing property; `None` when it is.
    pub fn hardware_refusal(&self) -> Option<String> {
        let missing = |checks: &[(&str, bool)]| {
            let bad: Vec<&str> = checks
                .iter()
                .filter(|(_, ok)| !ok)
                .map(|(name, _)| *name)
                .collect();
            (!bad.is_empty()).then(|| bad.join(", "))
        };
        match self {
            KeyProtection::InMemory => {
                Some("it is a key file, read into memory (not a token or TPM key)".into())
            }
            KeyProtection::Token(t) => missing(&[
                ("CKA_SENSITIVE is false", t.sensitive),
                ("CKA_EXTRACTABLE is true", !t.extractable),
                ("CKA_NEVER_EXTRACTABLE is false", t.never_extractable),
                ("CKA_ALWAYS_SENSITIVE is false", t.always_sensitive),
            ])
            .map(|why| format!("the token key can be (or once could be) read out: {why}")),
            KeyProtection::Tpm(t) => missing(&[
                ("fixedTPM is clear", t.fixed_tpm),
                ("fixedParent is clear", t.fixed_parent),
                ("sensitiveDataOrigin is clear", t.sensitive_data_origin),
            ])
            .map(|why| format!("the TPM key can be duplicated or was made outside the TPM: {why}")),
        }
    }

    /// The usages the key has beyond signing (`CKA_DECRYPT`, `decrypt`, …).
    pub fn extra_usages(&self) -> Vec<&'static str> {
        match self {
            KeyProtection::InMemory => Vec::new(),
            KeyProtection::Token(t) => [
                ("CKA_DECRYPT", t.decrypt),
                ("CKA_UNWRAP", t.unwrap),
                ("CKA_DERIVE", t.derive),
            ]
            .iter()
            .filter(|(_, on)| *on)
            .map(|(name, _)| *name)
            .collect(),
            KeyProtection::Tpm(t) => {
                if t.decrypt {
                    vec!["decrypt"]
                } else {
                    Vec::new()
                }
            }
        }
    }
}

/// A key refused by `--require-hardware-key`.
#[derive(Debug, thiserror::Error)]
#[error("--require-hardware-key refuses the key ({key}): {why}")]
pub struct NotHardwareKey {
    /// The key.
    pub key: String,
    /// What makes it no hardware key.
    pub why: String,
}

/// Refuses, before it signs, a signer whose key is not held by hardware it cannot leave.
pub fn require_hardware(signer: &dyn Signer, key: &str) -> Result<(), NotHardwareKey> {
    match signer.protection().hardware_refusal() {
        Some(why) => Err(NotHardwareKey {
            key: key.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

/// Why a key does not belong with a certificate.
#[derive(Debug, thiserror::Error)]
#[error(
    "the private key ({key_desc}) does not match the certificate \"{subject}\" (serial {serial}, {cert_key})"
)]
pub struct KeyMismatch {
    /// Describes the key (its type and where it is).
    pub key_desc: String,
    /// The certificate's subject.
    pub subject: String,
    /// The certificate's serial, decimal.
    pub serial: String,
    /// The certificate's key type.
    pub cert_key: KeyType,
}

/// A leaf certificate, the intermediates to send with it, and the key that signs for it.
pub struct Identity {
    leaf: Cert,
    chain: Vec<Cert>,
    signer: Box<dyn Signer>,
    key_desc: String,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("leaf", &self.leaf)
            .field("chain", &self.chain)
            .field("key_type", &self.signer.key_type())
            .finish()
    }
}

impl Identity {
    /// Pairs a signer with its certificate, refusing a key whose public key is not the
    /// certificate's. `key_desc` names the key in that error ("PKCS#8 file key.pem").
    pub fn new(
        leaf: Cert,
        chain: Vec<Cert>,
        signer: Box<dyn Signer>,
        key_desc: &str,
    ) -> Result<Self, KeyMismatch> {
        if signer.key_type() != leaf.key_type()
            || signer.public_key_bits() != leaf.public_key_bits()
        {
            return Err(KeyMismatch {
                key_desc: format!("{}, {}", signer.key_type(), key_desc),
                subject: leaf.subject(),
                serial: leaf.serial_decimal(),
                cert_key: leaf.key_type(),
            });
        }
        Ok(Identity {
            leaf,
            chain,
            signer,
            key_desc: key_desc.to_owned(),
        })
    }

    /// Names the key and where it is ("PKCS#8 file key.pem").
    pub fn key_description(&self) -> &str {
        &self.key_desc
    }

    /// The end-entity certificate.
    pub fn leaf(&self) -> &Cert {
        &self.leaf
    }

    /// The intermediates sent in `X-Amz-X509-Chain`, in order.
    pub fn chain(&self) -> &[Cert] {
        &self.chain
    }

    /// The key.
    pub fn signer(&self) -> &dyn Signer {
        self.signer.as_ref()
    }
}

/// Why an identity could not be opened, from whichever backend.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The PKCS#11 backend failed.
    #[cfg(feature = "pkcs11")]
    #[error(transparent)]
    Pkcs11(#[from] pkcs11::Pkcs11Error),
    /// The TPM backend failed.
    #[cfg(feature = "tpm")]
    #[error(transparent)]
    Tpm(#[from] tpm::TpmError),
    /// The key file could not be used.
    #[error(transparent)]
    FileKey(#[from] file::FileKeyError),
    /// A certificate or intermediates file could not be used.
    #[error(transparent)]
    Cert(#[from] crate::cert::CertError),
    /// Neither `--certificate` nor the key's own file holds a certificate.
    #[error("no certificate found in {origin}")]
    NoCertificate {
        /// The file looked in.
        origin: String,
    },
    /// The file key is not the certificate's.
    #[error(transparent)]
    KeyMismatch(#[from] KeyMismatch),
    /// The certificate is expired or not yet valid.
    #[error(transparent)]
    Validity(#[from] ValidityError),
    /// `--require-hardware-key` refuses the key.
    #[error(transparent)]
    NotHardwareKey(#[from] NotHardwareKey),
    /// The identity is on a token and this build has no PKCS#11.
    #[error("this ra-signer was built without PKCS#11 support")]
    NoPkcs11Support,
    /// The key is in a TPM and this build has no TPM support.
    #[error("the key is a TPM 2.0 key, and this ra-signer was built without TPM support")]
    NoTpmSupport,
}

/// A leaf certificate used outside its validity period.
#[derive(Debug, thiserror::Error)]
pub enum ValidityError {
    /// Past `notAfter`.
    #[error("the certificate \"{subject}\" (serial {serial}) expired on {at}")]
    Expired {
        /// The subject.
        subject: String,
        /// The serial, decimal.
        serial: String,
        /// `notAfter`, RFC 3339.
        at: String,
    },
    /// Before `notBefore`.
    #[error("the certificate \"{subject}\" (serial {serial}) is not valid before {at}")]
    NotYetValid {
        /// The subject.
        subject: String,
        /// The serial, decimal.
        serial: String,
        /// `notBefore`, RFC 3339.
        at: String,
    },
}

/// Opens the identity `config` describes: the only place that matches on the backend. A
/// certificate outside its validity period is refused, and with `--require-hardware-key` a
/// key that is not held by hardware it cannot leave, before anything is signed.
pub fn open(config: &crate::config::IdentityConfig) -> Result<Identity, OpenError> {
    let identity = open_backend(config, Checks::VALIDITY)?;
    if config.require_hardware_key {
        require_hardware(identity.signer(), identity.key_description())?;
    }
    Ok(identity)
}

/// Opens the identity as [`open`] does, but for the validity of the certificate and the
/// hardware policy, which the caller judges itself (`doctor` reports them as checks). The
/// key and certificate must still belong together.
pub fn open_for_inspection(config: &crate::config::IdentityConfig) -> Result<Identity, OpenError> {
    open_backend(config, Checks::NONE)
}

/// What opening checks beyond the key belonging to the certificate.
#[derive(Debug, Clone, Copy)]
struct Checks {
    validity: bool,
}

impl Checks {
    const VALIDITY: Checks = Checks { validity: true };
    const NONE: Checks = Checks { validity: false };

    fn validity(self, leaf: &Cert) -> Result<(), ValidityError> {
        if self.validity {
            check_validity(leaf, crate::time::UtcTime::now())?;
        }
        Ok(())
    }
}

fn open_backend(
    config: &crate::config::IdentityConfig,
    checks: Checks,
) -> Result<Identity, OpenError> {
    use crate::config::{CertificateSource, PrivateKeySource};
    let on_token = matches!(config.private_key, PrivateKeySource::Pkcs11(_))
        || matches!(config.certificate, Some(CertificateSource::Pkcs11(_)));
    if on_token {
        return open_pkcs11(config, checks);
    }
    match &config.private_key {
        PrivateKeySource::TpmHandle(_) => open_tpm(config, checks),
        PrivateKeySource::File(path) => open_file(path, config, checks),
        PrivateKeySource::Pkcs11(_) | PrivateKeySource::MatchingTokenCertificate => {
            open_pkcs11(config, checks)
        }
    }
}

/// Lets go of what the hardware would keep after the process ends (a TPM without a
/// resource manager keeps transient objects, and has room for only a few), waiting at most
/// the TPM timeout; no TPM context opens afterwards. For a process about to end on a
/// signal.
pub fn release_hardware() {
    #[cfg(feature = "tpm")]
    tpm::release_all();
}

/// Whether `path` holds a TPM 2.0 key (a TSS2 PRIVATE KEY PEM), for callers that must know
/// before opening it; unreadable files count as not.
pub fn is_tss2_key_file(path: &std::path::Path) -> bool {
    // The file may be a plaintext key file: its copy is wiped like every other.
    crate::input::read(path)
        .map(|b| {
            zeroize::Zeroizing::new(b)
                .windows(file::TSS2_PEM_HEADER.len())
                .any(|w| w == file::TSS2_PEM_HEADER)
        })
        .unwrap_or(false)
}

#[cfg(feature = "pkcs11")]
fn open_pkcs11(
    config: &crate::config::IdentityConfig,
    checks: Checks,
) -> Result<Identity, OpenError> {
    let identity = pkcs11::open(config)?;
    checks.validity(identity.leaf())?;
    Ok(identity)
}

#[cfg(not(feature = "pkcs11"))]
fn open_pkcs11(_: &crate::config::IdentityConfig, _: Checks) -> Result<Identity, OpenError> {
    Err(OpenError::NoPkcs11Support)
}

#[cfg(feature = "tpm")]
fn open_tpm(config: &crate::config::IdentityConfig, checks: Checks) -> Result<Identity, OpenError> {
    let identity = tpm::open(config)?;
    checks.validity(identity.leaf())?;
    Ok(identity)
}

#[cfg(not(feature = "tpm"))]
fn open_tpm(_: &crate::config::IdentityConfig, _: Checks) -> Result<Identity, OpenError> {
    Err(OpenError::NoTpmSupport)
}

/// Picks, from `candidates`, the certificates on the issuer path of `leaf`, in path order,
/// leaving out self-signed roots (the trust anchor holds those) and anything unrelated.
pub fn chain_for(leaf: &Cert, candidates: &[Cert]) -> Vec<Cert> {
    let mut chain: Vec<Cert> = Vec::new();
    let mut current = leaf.clone();
    while chain.len() < 8 {
        let Some(issuer) = candidates
            .iter()
            .find(|c| current.is_issued_by(c) && c.der() != current.der())
        else {
            break;
        };
        if issuer.is_issued_by(issuer) || chain.iter().any(|c| c.der() == issuer.der()) {
            break;
        }
        chain.push(issuer.clone());
        current = issuer.clone();
    }
    chain
}

/// Refuses a leaf certificate that is expired or not yet valid at `now`.
pub fn check_validity(leaf: &Cert, now: crate::time::UtcTime) -> Result<(), ValidityError> {
    use crate::time::UtcTime;
    if now.unix() > leaf.not_after() {
        return Err(ValidityError::Expired {
            subject: leaf.subject(),
            serial: leaf.serial_decimal(),
            at: UtcTime::from_unix(leaf.not_after()).rfc3339(),
        });
    }
    if now.unix() < leaf.not_before() {
        return Err(ValidityError::NotYetValid {
            subject: leaf.subject(),
            serial: leaf.serial_decimal(),
            at: UtcTime::from_unix(leaf.not_before()).rfc3339(),
        });
    }
    Ok(())
}

/// A key file, with its certificate from `--certificate` or from the key's own file.
fn open_file(
    path: &std::path::Path,
    config: &crate::config::IdentityConfig,
    checks: Checks,
) -> Result<Identity, OpenError> {
    use crate::config::CertificateSource;

    let what = format!("the password of key file {}", path.display());
    let mut ask = || crate::secret::resolve(&config.key_password_sources, &what);
    // The loader recognises TPM key files; the TPM backend opens the PEM ones.
    let loaded = match file::load(path, &mut ask) {
        Err(file::FileKeyError::TpmKeyFile { .. }) if is_tss2_key_file(path) => {
            return open_tpm(config, checks);
        }
        loaded => loaded?,
    };
    let key_desc = format!("{} file {}", loaded.format, path.display());

    let mut certs = match &config.certificate {
        Some(CertificateSource::File(cert_path)) if cert_path != path => {
            Cert::all_from_file(cert_path)?
        }
        _ => loaded.certificates.clone(),
    };
    if certs.is_empty() {
        let origin = match &config.certificate {
            Some(CertificateSource::File(p)) => p.display().to_string(),
            _ => path.display().to_string(),
        };
        return Err(OpenError::NoCertificate { origin });
    }
    // The leaf is the certificate whose key is ours; the first one when none is.
    let leaf_index = certs
        .iter()
        .position(|c| c.public_key_bits() == loaded.signer.public_key_bits())
        .unwrap_or(0);
    let leaf = certs.remove(leaf_index);
    let chain = match &config.intermediates {
        Some(p) => Cert::all_from_file(p)?,
        None => chain_for(&leaf, &certs),
    };
    let identity = Identity::new(leaf, chain, loaded.signer, &key_desc)?;
    checks.validity(identity.leaf())?;
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(f: impl FnOnce(&mut TokenKeyFlags)) -> KeyProtection {
        let mut flags = TokenKeyFlags {
            sensitive: true,
            extractable: false,
            never_extractable: true,
            always_sensitive: true,
            decrypt: false,
            unwrap: false,
            derive: false,
            mechanism: "CKM_ECDSA".into(),
            mechanism_signs: true,
        };
        f(&mut flags);
        KeyProtection::Token(flags)
    }

    #[test]
    fn only_keys_that_never_left_their_hardware_pass_the_policy() {
        assert!(token(|_| {}).hardware_refusal().is_none());
        let all = token(|f| {
            f.sensitive = false;
            f.extractable = true;
            f.never_extractable = false;
            f.always_sensitive = false;
        })
        .hardware_refusal()
        .expect("refused");
        for says in [
            "CKA_SENSITIVE is false",
            "CKA_EXTRACTABLE is true",
            "CKA_NEVER_EXTRACTABLE is false",
            "CKA_ALWAYS_SENSITIVE is false",
        ] {
            assert!(all.contains(says), "{all}");
        }
        // Imported: not extractable now, but it was outside the token.
        let imported = token(|f| f.never_extractable = false)
            .hardware_refusal()
            .expect("refused");
        assert!(!imported.contains("CKA_EXTRACTABLE"), "{imported}");
        assert!(KeyProtection::InMemory.hardware_refusal().is_some());
        let tpm = TpmKeyFlags {
            fixed_tpm: true,
            fixed_parent: true,
            sensitive_data_origin: true,
            decrypt: false,
        };
        assert!(KeyProtection::Tpm(tpm).hardware_refusal().is_none());
        let duplicable = KeyProtection::Tpm(TpmKeyFlags {
            fixed_tpm: false,
            ..tpm
        });
        assert!(
            duplicable
                .hardware_refusal()
                .is_some_and(|w| w.contains("fixedTPM is clear") && !w.contains("fixedParent"))
        );
    }

    #[test]
    fn usages_beyond_signing_are_named() {
        assert!(token(|_| {}).extra_usages().is_empty());
        assert_eq!(
            token(|f| {
                f.decrypt = true;
                f.derive = true;
            })
            .extra_usages(),
            ["CKA_DECRYPT", "CKA_DERIVE"]
        );
        let decrypting = TpmKeyFlags {
            fixed_tpm: true,
            fixed_parent: true,
            sensitive_data_origin: true,
            decrypt: true,
        };
        assert_eq!(KeyProtection::Tpm(decrypting).extra_usages(), ["decrypt"]);
        assert!(KeyProtection::InMemory.extra_usages().is_empty());
    }
}
