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

    /// The signature algorithm family.
    fn algorithm(&self) -> Algorithm {
        match self.key_type() {
            KeyType::Rsa => Algorithm::Rsa,
            KeyType::MlDsa44 | KeyType::MlDsa65 | KeyType::MlDsa87 => Algorithm::MlDsa,
            KeyType::EcP256 | KeyType::EcP384 | KeyType::Other => Algorithm::Ecdsa,
        }
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
        })
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

/// Opens the identity `config` describes: the only place that matches on the backend.
pub fn open(config: &crate::config::IdentityConfig) -> Result<Identity, OpenError> {
    use crate::config::{CertificateSource, PrivateKeySource};
    let on_token = matches!(config.private_key, PrivateKeySource::Pkcs11(_))
        || matches!(config.certificate, Some(CertificateSource::Pkcs11(_)));
    if on_token {
        return open_pkcs11(config);
    }
    match &config.private_key {
        PrivateKeySource::TpmHandle(_) => open_tpm(config),
        PrivateKeySource::File(path) => open_file(path, config),
        PrivateKeySource::Pkcs11(_) | PrivateKeySource::MatchingTokenCertificate => {
            open_pkcs11(config)
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
    crate::input::read(path)
        .map(|b| {
            b.windows(file::TSS2_PEM_HEADER.len())
                .any(|w| w == file::TSS2_PEM_HEADER)
        })
        .unwrap_or(false)
}

#[cfg(feature = "pkcs11")]
fn open_pkcs11(config: &crate::config::IdentityConfig) -> Result<Identity, OpenError> {
    let identity = pkcs11::open(config)?;
    check_validity(identity.leaf(), crate::time::UtcTime::now())?;
    Ok(identity)
}

#[cfg(not(feature = "pkcs11"))]
fn open_pkcs11(_: &crate::config::IdentityConfig) -> Result<Identity, OpenError> {
    Err(OpenError::NoPkcs11Support)
}

#[cfg(feature = "tpm")]
fn open_tpm(config: &crate::config::IdentityConfig) -> Result<Identity, OpenError> {
    let identity = tpm::open(config)?;
    check_validity(identity.leaf(), crate::time::UtcTime::now())?;
    Ok(identity)
}

#[cfg(not(feature = "tpm"))]
fn open_tpm(_: &crate::config::IdentityConfig) -> Result<Identity, OpenError> {
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
) -> Result<Identity, OpenError> {
    use crate::config::CertificateSource;

    let what = format!("the password of key file {}", path.display());
    let mut ask = || crate::secret::resolve(&config.key_password_sources, &what);
    // The loader recognises TPM key files; the TPM backend opens the PEM ones.
    let loaded = match file::load(path, &mut ask) {
        Err(file::FileKeyError::TpmKeyFile { .. }) if is_tss2_key_file(path) => {
            return open_tpm(config);
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
    check_validity(identity.leaf(), crate::time::UtcTime::now())?;
    Ok(identity)
}
