//! The token key behind the [`Signer`] trait: one signing operation (`C_SignInit` + `C_Sign`)
//! per signature, in a session that stays logged in for the life of the signer.
//!
//! RSA uses `CKM_SHA{256,384,512}_RSA_PKCS` when the token lists it and `CKM_RSA_PKCS` over
//! the DER DigestInfo otherwise; ECDSA hashes locally and uses `CKM_ECDSA`, re-encoding the
//! raw `r ‖ s` as DER. A `CKA_ALWAYS_AUTHENTICATE` key gets its context-specific login right
//! after `C_SignInit`; cryptoki 0.12 offers no `C_Sign` apart from `C_SignInit`, so such keys
//! sign multi-part (`C_SignUpdate` + `C_SignFinal`) with the token's hash-and-sign mechanism.

use std::sync::Mutex;

use cryptoki::context::Function;
use cryptoki::error::Error as CkError;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

use crate::cert::KeyType;
use crate::secret::Secret;
use crate::signer::der_sig::ecdsa_raw_to_der;
use crate::signer::{Digest, SignError, Signer};

/// Which signing mechanisms the token offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Mechanisms {
    /// `CKM_RSA_PKCS`.
    pub rsa_pkcs: bool,
    /// `CKM_SHA256_RSA_PKCS`, `CKM_SHA384_RSA_PKCS`, `CKM_SHA512_RSA_PKCS`.
    pub sha_rsa_pkcs: [bool; 3],
    /// `CKM_ECDSA`.
    pub ecdsa: bool,
    /// `CKM_ECDSA_SHA256`, `CKM_ECDSA_SHA384`, `CKM_ECDSA_SHA512`.
    pub ecdsa_sha: [bool; 3],
}

impl Mechanisms {
    /// From the token's mechanism list.
    pub(super) fn from_list(list: &[MechanismType]) -> Self {
        let has = |m: MechanismType| list.contains(&m);
        Mechanisms {
            rsa_pkcs: has(MechanismType::RSA_PKCS),
            sha_rsa_pkcs: [
                has(MechanismType::SHA256_RSA_PKCS),
                has(MechanismType::SHA384_RSA_PKCS),
                has(MechanismType::SHA512_RSA_PKCS),
            ],
            ecdsa: has(MechanismType::ECDSA),
            ecdsa_sha: [
                has(MechanismType::ECDSA_SHA256),
                has(MechanismType::ECDSA_SHA384),
                has(MechanismType::ECDSA_SHA512),
            ],
        }
    }
}

fn index(digest: Digest) -> usize {
    match digest {
        Digest::Sha256 => 0,
        Digest::Sha384 => 1,
        Digest::Sha512 => 2,
    }
}

/// How one signature is made.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// Single-part with the hash-and-sign mechanism of this digest over the message.
    HashAndSign(Digest),
    /// Single-part `CKM_RSA_PKCS` over DigestInfo ‖ hash.
    RsaDigestInfo,
    /// Single-part `CKM_ECDSA` over the hash.
    EcdsaHash,
    /// Multi-part with the hash-and-sign mechanism, for always-authenticate keys.
    MultiPart(Digest),
}

fn hash_and_sign(key_type: KeyType, digest: Digest) -> Mechanism<'static> {
    match (key_type, digest) {
        (KeyType::Rsa, Digest::Sha256) => Mechanism::Sha256RsaPkcs,
        (KeyType::Rsa, Digest::Sha384) => Mechanism::Sha384RsaPkcs,
        (KeyType::Rsa, Digest::Sha512) => Mechanism::Sha512RsaPkcs,
        (_, Digest::Sha256) => Mechanism::EcdsaSha256,
        (_, Digest::Sha384) => Mechanism::EcdsaSha384,
        (_, Digest::Sha512) => Mechanism::EcdsaSha512,
    }
}

/// Chooses the mechanism, or says why none fits.
fn plan(
    key_type: KeyType,
    mechs: &Mechanisms,
    always_auth: bool,
    digest: Digest,
) -> Result<Plan, String> {
    let i = index(digest);
    let rsa = key_type == KeyType::Rsa;
    let hashed = if rsa {
        mechs.sha_rsa_pkcs[i]
    } else {
        mechs.ecdsa_sha[i]
    };
    if always_auth {
        return if hashed {
            Ok(Plan::MultiPart(digest))
        } else {
            Err(format!(
                "the key needs a context-specific login (CKA_ALWAYS_AUTHENTICATE), which \
                 ra-signer can only give with a hash-and-sign mechanism, and the token has no \
                 {}",
                hash_and_sign(key_type, digest).mechanism_type()
            ))
        };
    }
    match (rsa, hashed) {
        (true, true) => Ok(Plan::HashAndSign(digest)),
        (true, false) if mechs.rsa_pkcs => Ok(Plan::RsaDigestInfo),
        (true, false) => Err("the token offers neither CKM_SHA*_RSA_PKCS nor CKM_RSA_PKCS".into()),
        (false, _) if mechs.ecdsa => Ok(Plan::EcdsaHash),
        (false, true) => Ok(Plan::HashAndSign(digest)),
        (false, false) => Err("the token offers no CKM_ECDSA".into()),
    }
}

/// Checks, when the key is opened, that a SHA-256 signature can be made at all.
pub(super) fn check_plan(
    key_type: KeyType,
    mechs: &Mechanisms,
    always_auth: bool,
) -> Result<(), String> {
    plan(key_type, mechs, always_auth, Digest::Sha256).map(|_| ())
}

/// The mechanism a SHA-256 signature (SigV4-X509's) is made with, once [`check_plan`]
/// passed.
pub(super) fn sha256_mechanism(
    key_type: KeyType,
    mechs: &Mechanisms,
    always_auth: bool,
) -> Option<MechanismType> {
    match plan(key_type, mechs, always_auth, Digest::Sha256).ok()? {
        Plan::HashAndSign(d) | Plan::MultiPart(d) => {
            Some(hash_and_sign(key_type, d).mechanism_type())
        }
        Plan::RsaDigestInfo => Some(MechanismType::RSA_PKCS),
        Plan::EcdsaHash => Some(MechanismType::ECDSA),
    }
}

/// A private key on a token.
pub(super) struct TokenSigner {
    session: Mutex<Session>,
    key: ObjectHandle,
    key_type: KeyType,
    public_key: Vec<u8>,
    mechanisms: Mechanisms,
    /// The context-specific PIN of an always-authenticate key.
    context_pin: Option<Secret>,
    always_auth: bool,
    desc: String,
    protection: Option<crate::signer::TokenKeyFlags>,
}

impl TokenSigner {
    /// Wraps an open, logged-in session and a private key handle. `context_pin` is needed
    /// when `always_auth`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        session: Session,
        key: ObjectHandle,
        key_type: KeyType,
        public_key: Vec<u8>,
        mechanisms: Mechanisms,
        always_auth: bool,
        context_pin: Option<Secret>,
        desc: String,
    ) -> Self {
        TokenSigner {
            session: Mutex::new(session),
            key,
            key_type,
            public_key,
            mechanisms,
            context_pin,
            always_auth,
            desc,
            protection: None,
        }
    }

    /// Records the key's protection flags, which [`Signer::protection`] reports.
    pub(super) fn with_protection(mut self, flags: crate::signer::TokenKeyFlags) -> Self {
        self.protection = Some(flags);
        self
    }

    fn fail(&self, function: Function, e: CkError) -> SignError {
        match e {
            CkError::Pkcs11(rv, _) => SignError::Pkcs11 {
                function,
                rv,
                key: self.desc.clone(),
            },
            source => SignError::Pkcs11Library {
                function,
                key: self.desc.clone(),
                source,
            },
        }
    }
}

impl Signer for TokenSigner {
    fn key_type(&self) -> KeyType {
        self.key_type
    }

    fn protection(&self) -> crate::signer::KeyProtection {
        match &self.protection {
            Some(flags) => crate::signer::KeyProtection::Token(flags.clone()),
            // Flags never read: nothing is claimed for the key.
            None => crate::signer::KeyProtection::Token(crate::signer::TokenKeyFlags {
                sensitive: false,
                extractable: true,
                never_extractable: false,
                always_sensitive: false,
                decrypt: false,
                unwrap: false,
                derive: false,
                mechanism: String::new(),
                mechanism_signs: false,
            }),
        }
    }

    fn public_key_bits(&self) -> &[u8] {
        &self.public_key
    }

    fn sign(&self, digest: Digest, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let plan =
            plan(self.key_type, &self.mechanisms, self.always_auth, digest).map_err(|why| {
                SignError::NoMechanism {
                    key: self.desc.clone(),
                    why,
                }
            })?;
        // A panic while holding the lock leaves the session usable: C_Sign ends any operation.
        let session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let raw = match &plan {
            Plan::HashAndSign(d) => session
                .sign(&hash_and_sign(self.key_type, *d), self.key, message)
                .map_err(|e| self.fail(Function::Sign, e))?,
            Plan::RsaDigestInfo => {
                let mut data = digest.digest_info_prefix().to_vec();
                data.extend_from_slice(&digest.hash(message));
                session
                    .sign(&Mechanism::RsaPkcs, self.key, &data)
                    .map_err(|e| self.fail(Function::Sign, e))?
            }
            Plan::EcdsaHash => session
                .sign(&Mechanism::Ecdsa, self.key, &digest.hash(message))
                .map_err(|e| self.fail(Function::Sign, e))?,
            Plan::MultiPart(d) => {
                session
                    .sign_init(&hash_and_sign(self.key_type, *d), self.key)
                    .map_err(|e| self.fail(Function::SignInit, e))?;
                let pin = self
                    .context_pin
                    .as_ref()
                    .map(|p| AuthPin::from(p.expose().to_owned()));
                if let Err(e) = session.login(UserType::ContextSpecific, pin.as_ref()) {
                    // End the operation so the session stays usable; the PIN is not retried.
                    let _ = session.sign_final();
                    return Err(self.fail(Function::Login, e));
                }
                session
                    .sign_update(message)
                    .map_err(|e| self.fail(Function::SignUpdate, e))?;
                session
                    .sign_final()
                    .map_err(|e| self.fail(Function::SignFinal, e))?
            }
        };
        if self.key_type == KeyType::Rsa {
            return Ok(raw);
        }
        ecdsa_raw_to_der(&raw).ok_or_else(|| SignError::MalformedSignature {
            key: self.desc.clone(),
            len: raw.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOFTHSM: Mechanisms = Mechanisms {
        rsa_pkcs: true,
        sha_rsa_pkcs: [true; 3],
        ecdsa: true,
        ecdsa_sha: [false; 3],
    };

    #[test]
    fn mechanism_choice() {
        assert_eq!(
            plan(KeyType::Rsa, &SOFTHSM, false, Digest::Sha384),
            Ok(Plan::HashAndSign(Digest::Sha384))
        );
        let raw_only = Mechanisms {
            sha_rsa_pkcs: [false; 3],
            ..SOFTHSM
        };
        assert_eq!(
            plan(KeyType::Rsa, &raw_only, false, Digest::Sha256),
            Ok(Plan::RsaDigestInfo)
        );
        assert_eq!(
            plan(KeyType::EcP384, &SOFTHSM, false, Digest::Sha256),
            Ok(Plan::EcdsaHash)
        );
        assert_eq!(
            plan(KeyType::Rsa, &SOFTHSM, true, Digest::Sha256),
            Ok(Plan::MultiPart(Digest::Sha256))
        );
        let err =
            plan(KeyType::EcP256, &SOFTHSM, true, Digest::Sha256).expect_err("no ECDSA_SHA256");
        assert!(err.contains("ECDSA_SHA256"), "{err}");
        let pkcs_less = Mechanisms {
            rsa_pkcs: false,
            sha_rsa_pkcs: [false; 3],
            ..SOFTHSM
        };
        assert!(plan(KeyType::Rsa, &pkcs_less, false, Digest::Sha256).is_err());
    }
}
