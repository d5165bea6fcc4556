//! [`TpmSigner`]: a key loaded once into the TPM, signing through TPM2_Sign.

use std::sync::{Mutex, MutexGuard};

use tss_esapi::Context;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::handles::{KeyHandle, ObjectHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Auth, Digest as TpmDigest, EccPoint, EccScheme, HashScheme, HashcheckTicket, Private, Public,
    PublicBuffer, PublicEccParametersBuilder, RsaScheme, Signature, SignatureScheme,
    SymmetricDefinitionObject,
};
use tss_esapi::traits::UnMarshall;
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;

use super::context::{OUT_OF_MEMORY_HINT, Rc, Tcti, TpmContext, Worker, describe_error};
use super::keyfile::{self, TssKey};
use super::{KeyLocation, Passwords, TpmError};
use crate::cert::KeyType;
use crate::secret::Secret;
use crate::signer::der_sig::{ecdsa_pair_to_der, rsa_public_key_der};
use crate::signer::{Digest, SignError, Signer};

/// What the key is, read from its public area.
#[derive(Debug, Clone)]
pub(crate) struct KeyInfo {
    pub key_type: KeyType,
    /// PKCS#1 RSAPublicKey DER, or the uncompressed EC point.
    pub public_bits: Vec<u8>,
    /// The hash the key's own scheme fixes, if it fixes one.
    pub fixed_hash: Option<HashingAlgorithm>,
    /// Its object attributes that say whether it can leave the TPM, and whether it decrypts.
    pub flags: crate::signer::TpmKeyFlags,
}

/// A TPM key, loaded once and kept loaded: one worker thread holding the context, one key
/// handle, behind a mutex.
pub struct TpmSigner {
    info: KeyInfo,
    desc: String,
    inner: Mutex<Inner>,
}

struct Inner {
    tcti: Tcti,
    location: KeyLocation,
    passwords: Passwords,
    loaded: Option<Loaded>,
    /// Set once the TPM refused a password (the refusal and its hint): the password is
    /// never sent again from this process.
    refused: Option<(String, Option<String>)>,
}

/// A key in the TPM. Dropping it flushes the key (when transient) and closes the context,
/// waiting at most the TPM timeout.
struct Loaded {
    worker: Worker,
    key: KeyHandle,
}

impl std::fmt::Debug for TpmSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmSigner")
            .field("key", &self.desc)
            .field("key_type", &self.info.key_type)
            .finish()
    }
}

impl TpmSigner {
    /// Connects to the TPM and loads the key (a key file under its parent, or a persistent
    /// object), checking that it can sign.
    pub fn open(
        tcti: Tcti,
        location: KeyLocation,
        passwords: Passwords,
    ) -> Result<TpmSigner, TpmError> {
        let desc = location.describe();
        // A key file tells what it is before the TPM is asked anything.
        if let KeyLocation::File { key, .. } = &location {
            inspect(&file_public(key, &desc)?, &desc)?;
        }
        let (loaded, public) = load(&tcti, &location, &passwords, &desc)?;
        TpmSigner::new(tcti, loaded, &public, location, passwords)
    }

    /// Wraps a key already loaded in `ctx` (keygen).
    pub(crate) fn from_loaded(
        tcti: Tcti,
        worker: Worker,
        key: KeyHandle,
        public: &Public,
        location: KeyLocation,
        passwords: Passwords,
    ) -> Result<TpmSigner, TpmError> {
        let loaded = Loaded { worker, key };
        TpmSigner::new(tcti, loaded, public, location, passwords)
    }

    fn new(
        tcti: Tcti,
        loaded: Loaded,
        public: &Public,
        location: KeyLocation,
        passwords: Passwords,
    ) -> Result<TpmSigner, TpmError> {
        let desc = location.describe();
        let info = inspect(public, &desc)?;
        Ok(TpmSigner {
            info,
            desc,
            inner: Mutex::new(Inner {
                tcti,
                location,
                passwords,
                loaded: Some(loaded),
                refused: None,
            }),
        })
    }

    /// Names the key ("TPM key file key.pem").
    pub fn description(&self) -> &str {
        &self.desc
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while signing leaves nothing half-done that matters here.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Signs a digest computed by the caller with the key's scheme for `digest`.
    pub fn sign_digest(&self, digest: Digest, hash: &[u8]) -> Result<Vec<u8>, TpmError> {
        let hash_alg = hashing_algorithm(digest);
        if let Some(fixed) = self.info.fixed_hash
            && fixed != hash_alg
        {
            return Err(TpmError::CannotSign {
                key: self.desc.clone(),
                why: format!("its scheme is fixed to {fixed:?}, not {hash_alg:?}"),
            });
        }
        let scheme = match self.info.key_type {
            KeyType::Rsa => SignatureScheme::RsaSsa {
                hash_scheme: HashScheme::new(hash_alg),
            },
            _ => SignatureScheme::EcDsa {
                hash_scheme: HashScheme::new(hash_alg),
            },
        };
        let tpm_digest =
            TpmDigest::try_from(hash).map_err(|e| tpm_err("TPM2_Sign", &self.desc, &e))?;

        let mut inner = self.lock();
        if let Some((why, hint)) = &inner.refused {
            return Err(TpmError::RefusedBefore {
                key: self.desc.clone(),
                why: why.clone(),
                hint: hint.clone(),
            });
        }
        let mut reloaded = false;
        loop {
            if inner.loaded.is_none() {
                let (loaded, public) =
                    load(&inner.tcti, &inner.location, &inner.passwords, &self.desc)?;
                let info = inspect(&public, &self.desc)?;
                if info.public_bits != self.info.public_bits {
                    return Err(TpmError::CannotSign {
                        key: self.desc.clone(),
                        why: "the key loaded again is not the key loaded first".to_owned(),
                    });
                }
                inner.loaded = Some(loaded);
            }
            let Some(loaded) = inner.loaded.as_mut() else {
                continue;
            };
            let key = loaded.key;
            let digest = tpm_digest.clone();
            let result = match loaded.worker.call("signing", move |ctx| {
                ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.sign(key, digest, scheme, null_ticket()?)
                })
            }) {
                Ok(result) => result,
                Err(e) => {
                    // A stalled TPM: the next signature opens a new context (the stalled
                    // one flushes its key if the TPM ever answers it).
                    inner.loaded = None;
                    return Err(e);
                }
            };
            match result {
                Ok(signature) => return self.encode(signature),
                Err(e) => {
                    let rc = Rc::of(&e);
                    let stale = rc.is_some_and(|rc| rc.is_connection_lost() || rc.is_object_gone());
                    if stale && !reloaded {
                        // The TPM was reset or the simulator restarted: load the key again,
                        // once.
                        reloaded = true;
                        drop(inner.loaded.take());
                        continue;
                    }
                    let err = self.sign_error(&inner, &e);
                    if matches!(
                        err,
                        TpmError::WrongPassword { .. } | TpmError::Lockout { .. }
                    ) {
                        inner.refused = Some((err.to_string(), err.hint()));
                    }
                    return Err(err);
                }
            }
        }
    }

    fn sign_error(&self, inner: &Inner, e: &tss_esapi::Error) -> TpmError {
        let Some(rc) = Rc::of(e) else {
            return tpm_err("TPM2_Sign", &self.desc, e);
        };
        if rc.is_lockout() {
            return TpmError::Lockout { rc };
        }
        if rc.is_out_of_memory() {
            return tpm_rc_err("TPM2_Sign", &self.desc, rc);
        }
        if rc.is_auth_failure() {
            let origin = inner.passwords.key_origin;
            let file_says_empty = matches!(
                &inner.location,
                KeyLocation::File { key, .. } if key.empty_auth == Some(true)
            );
            let sources = "--tpm-key-password-file, --tpm-key-password or \
                           $RA_SIGNER_TPM_KEY_PASSWORD, else asked on a terminal";
            let hint = if inner.passwords.key.is_none() {
                format!("the key has a password: give it ({sources})")
            } else if file_says_empty {
                format!(
                    "check the key password, which came from {origin} (it is read from \
                     {sources}); the key file marks the key as having none (emptyAuth): if \
                     so, pass --no-tpm-key-password"
                )
            } else {
                format!(
                    "check the key password, which came from {origin} (it is read from \
                     {sources}); ra-signer sent it once, so the TPM's dictionary-attack \
                     counter moved only once"
                )
            };
            return TpmError::WrongPassword {
                what: "the password",
                key: self.desc.clone(),
                rc,
                hint,
            };
        }
        TpmError::Tpm {
            call: "TPM2_Sign",
            key: self.desc.clone(),
            rc,
            hint: None,
        }
    }

    fn encode(&self, signature: Signature) -> Result<Vec<u8>, TpmError> {
        match signature {
            Signature::RsaSsa(sig) => Ok(sig.signature().value().to_vec()),
            Signature::EcDsa(sig) => Ok(ecdsa_pair_to_der(
                sig.signature_r().value(),
                sig.signature_s().value(),
            )),
            other => Err(TpmError::CannotSign {
                key: self.desc.clone(),
                why: format!("the TPM returned a {:?} signature", other.algorithm()),
            }),
        }
    }
}

impl Signer for TpmSigner {
    fn key_type(&self) -> KeyType {
        self.info.key_type
    }

    fn protection(&self) -> crate::signer::KeyProtection {
        crate::signer::KeyProtection::Tpm(self.info.flags)
    }

    fn public_key_bits(&self) -> &[u8] {
        &self.info.public_bits
    }

    fn sign(&self, digest: Digest, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let hash = digest.hash(message);
        self.sign_digest(digest, &hash).map_err(SignError::from)
    }
}

impl From<TpmError> for SignError {
    /// Keeps the response code typed where the TPM gave one; the rest (a refused password,
    /// a key that would not load again) keeps the backend's whole error.
    fn from(e: TpmError) -> Self {
        match e {
            // A hint of the backend's own (where the key came from) stays with the error.
            TpmError::Tpm {
                call,
                key,
                rc,
                hint: None,
            } => SignError::Tpm {
                call,
                key,
                rc: rc.code(),
            },
            TpmError::Tpm {
                call,
                key,
                rc,
                hint: Some(_),
            } if rc.is_out_of_memory() => SignError::Tpm {
                call,
                key,
                rc: rc.code(),
            },
            TpmError::Lockout { rc } => SignError::TpmLockout { rc: rc.code() },
            TpmError::Timeout {
                call,
                tcti,
                origin,
                secs,
            } => SignError::TpmTimeout {
                call,
                tcti,
                origin,
                secs,
            },
            other => SignError::TpmKey(Box::new(other)),
        }
    }
}

fn hashing_algorithm(digest: Digest) -> HashingAlgorithm {
    match digest {
        Digest::Sha256 => HashingAlgorithm::Sha256,
        Digest::Sha384 => HashingAlgorithm::Sha384,
        Digest::Sha512 => HashingAlgorithm::Sha512,
    }
}

/// The NULL hashcheck ticket an unrestricted key signs with.
fn null_ticket() -> tss_esapi::Result<HashcheckTicket> {
    HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
}

/// The public area stored in a key file.
pub(crate) fn file_public(key: &TssKey, desc: &str) -> Result<Public, TpmError> {
    PublicBuffer::unmarshall(&key.public)
        .and_then(Public::try_from)
        .map_err(|e| TpmError::Unsupported {
            key: desc.to_owned(),
            why: format!("its public area cannot be decoded ({})", describe_error(&e)),
        })
}

/// Reads type, public key and scheme from a public area, refusing keys that cannot make
/// SigV4-X509 signatures.
pub(crate) fn inspect(public: &Public, desc: &str) -> Result<KeyInfo, TpmError> {
    let cannot = |why: &str| TpmError::CannotSign {
        key: desc.to_owned(),
        why: why.to_owned(),
    };
    let unsupported = |why: String| TpmError::Unsupported {
        key: desc.to_owned(),
        why,
    };
    let attrs = public.object_attributes();
    let flags = crate::signer::TpmKeyFlags {
        fixed_tpm: attrs.fixed_tpm(),
        fixed_parent: attrs.fixed_parent(),
        sensitive_data_origin: attrs.sensitive_data_origin(),
        decrypt: attrs.decrypt(),
    };
    if !attrs.sign_encrypt() {
        return Err(cannot(
            "it is a decrypt-only key (its sign attribute is clear); create a signing key",
        ));
    }
    if attrs.restricted() {
        return Err(unsupported(
            "restricted signing keys (attestation keys) are not supported: they sign only \
             TPM-generated data"
                .to_owned(),
        ));
    }
    if !attrs.user_with_auth() {
        return Err(unsupported(
            "the key is used through a policy session (userWithAuth is clear), which is not \
             supported"
                .to_owned(),
        ));
    }
    match public {
        Public::Rsa {
            parameters, unique, ..
        } => {
            let fixed_hash = match parameters.rsa_scheme() {
                RsaScheme::Null => None,
                RsaScheme::RsaSsa(h) => Some(h.hashing_algorithm()),
                RsaScheme::RsaPss(_) => {
                    return Err(unsupported(
                        "the key is bound to RSA-PSS; SigV4-X509 needs RSASSA-PKCS1-v1_5"
                            .to_owned(),
                    ));
                }
                other => return Err(unsupported(format!("its scheme {other:?} cannot sign"))),
            };
            if fixed_hash.is_some_and(|h| h != HashingAlgorithm::Sha256) {
                return Err(unsupported(format!(
                    "its scheme is fixed to RSASSA with {fixed_hash:?}; SigV4-X509 needs SHA-256"
                )));
            }
            let exponent = match parameters.exponent().value() {
                0 => 65537,
                e => e,
            };
            Ok(KeyInfo {
                key_type: KeyType::Rsa,
                public_bits: rsa_public_key_der(unique.value(), &exponent.to_be_bytes()),
                fixed_hash,
                flags,
            })
        }
        Public::Ecc {
            parameters, unique, ..
        } => {
            let (key_type, size) = match parameters.ecc_curve() {
                EccCurve::NistP256 => (KeyType::EcP256, 32),
                EccCurve::NistP384 => (KeyType::EcP384, 48),
                other => {
                    return Err(unsupported(format!(
                        "its curve {other:?} is not supported (P-256 and P-384 are)"
                    )));
                }
            };
            let fixed_hash = match parameters.ecc_scheme() {
                EccScheme::Null => None,
                EccScheme::EcDsa(h) => Some(h.hashing_algorithm()),
                other => {
                    return Err(unsupported(format!("its scheme {other:?} is not ECDSA")));
                }
            };
            if fixed_hash.is_some_and(|h| h != HashingAlgorithm::Sha256) {
                return Err(unsupported(format!(
                    "its scheme is fixed to ECDSA with {fixed_hash:?}; SigV4-X509 needs SHA-256"
                )));
            }
            Ok(KeyInfo {
                key_type,
                public_bits: ec_point(unique, size)
                    .ok_or_else(|| unsupported("its EC point is malformed".to_owned()))?,
                fixed_hash,
                flags,
            })
        }
        _ => Err(unsupported(
            "it is not an RSA or ECC key (a keyed hash or symmetric object)".to_owned(),
        )),
    }
}

/// `0x04 ‖ x ‖ y`, each coordinate left-padded to the curve size.
fn ec_point(point: &EccPoint, size: usize) -> Option<Vec<u8>> {
    let (x, y) = (point.x().value(), point.y().value());
    if x.len() > size || y.len() > size {
        return None;
    }
    let mut out = Vec::with_capacity(1 + 2 * size);
    out.push(0x04);
    for c in [x, y] {
        out.extend(std::iter::repeat_n(0u8, size - c.len()));
        out.extend_from_slice(c);
    }
    Some(out)
}

fn auth(secret: &Secret, what: &str) -> Result<Auth, TpmError> {
    Auth::try_from(secret.expose().as_bytes())
        .map_err(|_| TpmError::Keygen(format!("{what} is too long for the TPM (at most 64 bytes)")))
}

/// The standard ECC P-256 storage primary template (TCG provisioning guidance, as
/// tpm2-openssl and tpm2-tss-engine make it): restricted decrypt, AES-128-CFB, noDA.
pub(crate) fn srk_template() -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()?;
    Public::builder()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

pub(crate) fn hierarchy(handle: u32) -> Option<Hierarchy> {
    match handle {
        keyfile::TPM_RH_OWNER => Some(Hierarchy::Owner),
        keyfile::TPM_RH_NULL => Some(Hierarchy::Null),
        keyfile::TPM_RH_ENDORSEMENT => Some(Hierarchy::Endorsement),
        keyfile::TPM_RH_PLATFORM => Some(Hierarchy::Platform),
        _ => None,
    }
}

/// A persistent object as an ESYS handle (no session: `tr_from_tpm_public` crashes with a
/// password session set).
pub(crate) fn persistent_object(
    ctx: &mut Context,
    handle: u32,
    role: &'static str,
    desc: &str,
) -> Result<ObjectHandle, TpmError> {
    let tpm_handle = PersistentTpmHandle::new(handle)
        .map(TpmHandle::Persistent)
        .map_err(|_| TpmError::NoObject { handle, role })?;
    ctx.execute_without_session(|c| c.tr_from_tpm_public(tpm_handle))
        .map_err(|e| match Rc::of(&e) {
            Some(rc) if rc.is_bad_handle() => TpmError::NoObject { handle, role },
            _ => tpm_err("TPM2_ReadPublic", desc, &e),
        })
}

/// Makes the parent of a key file usable: the persistent parent, or the SRK created under
/// the hierarchy. Returns the handle and whether it must be flushed after use (until it
/// is, the context flushes it when it goes).
pub(crate) fn parent_handle(
    ctx: &mut TpmContext,
    parent: u32,
    password: Option<&Secret>,
    desc: &str,
) -> Result<(KeyHandle, bool), TpmError> {
    if let Some(hierarchy) = hierarchy(parent) {
        if let Some(pw) = password {
            let value = auth(pw, "the hierarchy password")?;
            ctx.tr_set_auth(ObjectHandle::from(hierarchy), value)
                .map_err(|e| tpm_err("Esys_TR_SetAuth", desc, &e))?;
        }
        let template = srk_template().map_err(|e| tpm_err("TPM2_CreatePrimary", desc, &e))?;
        let created = ctx.execute_with_session(Some(AuthSession::Password), |c| {
            c.create_primary(hierarchy, template, None, None, None, None)
        });
        match created {
            Ok(primary) => {
                ctx.track(primary.key_handle);
                Ok((primary.key_handle, true))
            }
            Err(e) => Err(match Rc::of(&e) {
                Some(rc) if rc.is_auth_failure() => TpmError::WrongPassword {
                    what: "the hierarchy password",
                    key: keyfile::parent_name(parent),
                    rc,
                    hint: format!(
                        "set the password of {} in RA_SIGNER_TPM_PARENT_PASSWORD (or \
                         RA_SIGNER_TPM_PARENT_PASSWORD_FILE, TPM2OPENSSL_PARENT_AUTH)",
                        keyfile::parent_name(parent)
                    ),
                },
                Some(rc) if rc.is_lockout() => TpmError::Lockout { rc },
                Some(rc) => tpm_rc_err("TPM2_CreatePrimary", desc, rc),
                None => tpm_err("TPM2_CreatePrimary", desc, &e),
            }),
        }
    } else {
        let object = persistent_object(ctx, parent, "the key file's parent", desc)?;
        if let Some(pw) = password {
            let value = auth(pw, "the parent password")?;
            ctx.tr_set_auth(object, value)
                .map_err(|e| tpm_err("Esys_TR_SetAuth", desc, &e))?;
        }
        Ok((KeyHandle::from(object), false))
    }
}

/// Releases what [`parent_handle`] returned.
pub(crate) fn release_parent(ctx: &mut TpmContext, handle: KeyHandle, flush: bool) {
    if flush {
        ctx.flush(handle);
    } else {
        // A failure leaves only an ESYS handle, which the context's close frees.
        let _ = ctx.tr_close(&mut ObjectHandle::from(handle));
    }
}

pub(crate) fn tpm_err(call: &'static str, desc: &str, e: &tss_esapi::Error) -> TpmError {
    match Rc::of(e) {
        Some(rc) => tpm_rc_err(call, desc, rc),
        None => TpmError::Wrapper {
            call,
            key: desc.to_owned(),
            source: *e,
        },
    }
}

/// A failed TPM command, with the hint its return code calls for.
pub(crate) fn tpm_rc_err(call: &'static str, desc: &str, rc: Rc) -> TpmError {
    TpmError::Tpm {
        call,
        key: desc.to_owned(),
        rc,
        hint: rc.is_out_of_memory().then(|| OUT_OF_MEMORY_HINT.to_owned()),
    }
}

fn load(
    tcti: &Tcti,
    location: &KeyLocation,
    passwords: &Passwords,
    desc: &str,
) -> Result<(Loaded, Public), TpmError> {
    let mut worker = tcti.connect()?;
    let (location, passwords, desc) = (location.clone(), passwords.clone(), desc.to_owned());
    let (key, public) = worker.call("loading the key", move |ctx| {
        load_on(ctx, &location, &passwords, &desc)
    })??;
    Ok((Loaded { worker, key }, public))
}

/// Loads the key on the worker's thread; a transient key is tracked, to be flushed when
/// the context goes.
fn load_on(
    ctx: &mut TpmContext,
    location: &KeyLocation,
    passwords: &Passwords,
    desc: &str,
) -> Result<(KeyHandle, Public), TpmError> {
    let (key, public) = match location {
        KeyLocation::Persistent(handle) => {
            let object = persistent_object(ctx, *handle, "the key", desc)?;
            let key = KeyHandle::from(object);
            let (public, _, _) = ctx
                .execute_without_session(|c| c.read_public(key))
                .map_err(|e| tpm_err("TPM2_ReadPublic", desc, &e))?;
            (key, public)
        }
        KeyLocation::File { key: file, .. } => {
            let public = file_public(file, desc)?;
            let private =
                Private::try_from(&file.private[2..]).map_err(|e| TpmError::Unsupported {
                    key: desc.to_owned(),
                    why: format!("its private blob is unusable ({})", describe_error(&e)),
                })?;
            let (parent, flush) = parent_handle(ctx, file.parent, passwords.parent.as_ref(), desc)?;
            let loaded = ctx.execute_with_session(Some(AuthSession::Password), |c| {
                c.load(parent, private, public.clone())
            });
            if let Ok(key) = loaded {
                ctx.track(key);
            }
            release_parent(ctx, parent, flush);
            let key = loaded.map_err(|e| load_error(&e, file, desc))?;
            (key, public)
        }
    };
    if let Some(pw) = &passwords.key {
        let value = auth(pw, "the key password")?;
        ctx.tr_set_auth(key.into(), value)
            .map_err(|e| tpm_err("Esys_TR_SetAuth", desc, &e))?;
    }
    Ok((key, public))
}

fn load_error(e: &tss_esapi::Error, file: &TssKey, desc: &str) -> TpmError {
    let parent = keyfile::parent_name(file.parent);
    match Rc::of(e) {
        Some(rc) if rc.is_auth_failure() => TpmError::WrongPassword {
            what: "the parent password",
            key: parent.clone(),
            rc,
            hint: format!(
                "set the password of {parent} in RA_SIGNER_TPM_PARENT_PASSWORD (or \
                 RA_SIGNER_TPM_PARENT_PASSWORD_FILE, TPM2OPENSSL_PARENT_AUTH)"
            ),
        },
        Some(rc) if rc.is_lockout() => TpmError::Lockout { rc },
        Some(rc) if rc.is_out_of_memory() => tpm_rc_err("TPM2_Load", desc, rc),
        Some(rc) => TpmError::Tpm {
            call: "TPM2_Load",
            key: desc.to_owned(),
            rc,
            hint: Some(format!(
                "the key was not made under {parent} of this TPM: it belongs to another TPM, \
                 its parent was made from another template, or the TPM was cleared since"
            )),
        },
        None => tpm_err("TPM2_Load", desc, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_points_are_padded() {
        use tss_esapi::structures::EccParameter;
        let point = EccPoint::new(
            EccParameter::try_from(vec![1u8; 31]).expect("x"),
            EccParameter::try_from(vec![2u8; 32]).expect("y"),
        );
        let bits = ec_point(&point, 32).expect("fits");
        assert_eq!(bits.len(), 65);
        assert_eq!(&bits[..3], &[0x04, 0x00, 0x01]);
        assert!(ec_point(&point, 16).is_none());
    }
}
