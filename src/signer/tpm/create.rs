//! What `keygen --tpm` does in the TPM: create a signing key under its parent, load it, make
//! it persistent when asked, and hand back a signer for its CSR with the key file's contents.
//! Nothing here writes a file or prints: the command does.

use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
use tss_esapi::handles::{KeyHandle, ObjectHandle, PersistentTpmHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::Provision;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Auth, EccPoint, EccScheme, KeyDerivationFunctionScheme, Private, Public, PublicBuffer,
    PublicEccParameters, PublicKeyRsa, PublicRsaParameters, RsaExponent, RsaScheme,
    SymmetricDefinitionObject,
};
use tss_esapi::traits::Marshall;

use super::context::{Rc, Tcti, TpmContext, describe_error};
use super::keyfile::{self, TssKey};
use super::signer::{parent_handle, release_parent, tpm_err};
use super::{KeyLocation, Passwords, TpmError, TpmSigner};
use crate::config::{TpmKeyTarget, TpmKeyType, TpmParent};
use crate::secret::Secret;

/// The key `keygen --tpm` creates.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The key type.
    pub key_type: TpmKeyType,
    /// Where the key goes.
    pub target: TpmKeyTarget,
    /// Its parent.
    pub parent: TpmParent,
    /// The new key's password (`None`: no password, written as emptyAuth TRUE).
    pub key_password: Option<Secret>,
    /// The parent's (or hierarchy's) password.
    pub parent_password: Option<Secret>,
    /// The owner hierarchy's password, for making the key persistent.
    pub owner_password: Option<Secret>,
}

/// A key created inside the TPM.
pub struct CreatedKey {
    /// Signs with the new key (its CSR).
    pub signer: TpmSigner,
    /// The TSS2 PRIVATE KEY file to write, PEM, for a key that is not persistent.
    pub key_file: Option<String>,
    /// The `--private-key` value that names the new key (the file, or `handle:0x81…`).
    pub private_key_arg: String,
}

/// Creates the key in the TPM at `tcti` (persistent when the target says so) and loads it
/// for signing its CSR.
pub fn create_key(tcti: Tcti, new: &NewKey) -> Result<CreatedKey, TpmError> {
    let template = key_template(new.key_type).map_err(|e| TpmError::Keygen(describe_error(&e)))?;
    let key_auth = new
        .key_password
        .as_ref()
        .map(|pw| Auth::try_from(pw.expose().as_bytes()))
        .transpose()
        .map_err(|_| TpmError::Keygen("the key password is longer than 64 bytes".to_owned()))?;
    let parent = match new.parent {
        TpmParent::Owner => keyfile::TPM_RH_OWNER,
        TpmParent::Endorsement => keyfile::TPM_RH_ENDORSEMENT,
        TpmParent::Persistent(handle) => handle,
    };
    let job = CreateJob {
        parent,
        parent_password: new.parent_password.clone(),
        owner_password: new.owner_password.clone(),
        key_password: new.key_password.clone(),
        persistent: match &new.target {
            TpmKeyTarget::Persistent(handle) => Some(*handle),
            TpmKeyTarget::File(_) => None,
        },
    };
    let mut worker = tcti.connect()?;
    let (public, private, key) = worker.call("creating the key", move |ctx| {
        create_on(ctx, template, key_auth, &job)
    })??;

    let passwords = Passwords {
        key: new.key_password.clone(),
        key_origin: "keygen",
        parent: new.parent_password.clone(),
    };
    let (location, key_file, private_key_arg) = match &new.target {
        TpmKeyTarget::File(path) => {
            let tss = TssKey {
                empty_auth: Some(new.key_password.is_none()),
                parent,
                public: PublicBuffer::try_from(public.clone())
                    .and_then(|b| b.marshall())
                    .map_err(|e| TpmError::Keygen(describe_error(&e)))?,
                private: {
                    let blob = private.value();
                    let mut v = Vec::with_capacity(blob.len() + 2);
                    v.extend_from_slice(&(blob.len() as u16).to_be_bytes());
                    v.extend_from_slice(blob);
                    v
                },
            };
            let pem = tss
                .to_pem()
                .map_err(|e| TpmError::Keygen(format!("cannot encode the key file: {e}")))?;
            (
                KeyLocation::File {
                    path: path.clone(),
                    key: tss,
                },
                Some(pem),
                path.display().to_string(),
            )
        }
        TpmKeyTarget::Persistent(handle) => (
            KeyLocation::Persistent(*handle),
            None,
            format!("handle:{handle:#010x}"),
        ),
    };
    let signer = TpmSigner::from_loaded(tcti, worker, key, &public, location, passwords)?;
    Ok(CreatedKey {
        signer,
        key_file,
        private_key_arg,
    })
}

/// The template of a new signing key: fixedTPM, fixedParent, sensitiveDataOrigin,
/// userWithAuth, sign; scheme NULL so that any signing scheme may be chosen per signature
/// (ra-signer passes RSASSA or ECDSA explicitly; OpenSSL's tpm2 provider may use PSS).
fn key_template(key_type: TpmKeyType) -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_sign_encrypt(true)
        .build()?;
    let builder = Public::builder()
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes);
    match key_type {
        TpmKeyType::Rsa2048 => builder
            .with_public_algorithm(PublicAlgorithm::Rsa)
            .with_rsa_parameters(PublicRsaParameters::new(
                SymmetricDefinitionObject::Null,
                RsaScheme::Null,
                RsaKeyBits::Rsa2048,
                RsaExponent::default(),
            ))
            .with_rsa_unique_identifier(PublicKeyRsa::default())
            .build(),
        TpmKeyType::P256 | TpmKeyType::P384 => builder
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_ecc_parameters(PublicEccParameters::new(
                SymmetricDefinitionObject::Null,
                EccScheme::Null,
                if key_type == TpmKeyType::P256 {
                    EccCurve::NistP256
                } else {
                    EccCurve::NistP384
                },
                KeyDerivationFunctionScheme::Null,
            ))
            .with_ecc_unique_identifier(EccPoint::default())
            .build(),
    }
}

/// What the worker thread needs to create the key.
struct CreateJob {
    parent: u32,
    parent_password: Option<Secret>,
    owner_password: Option<Secret>,
    key_password: Option<Secret>,
    persistent: Option<u32>,
}

/// Creates and loads the key on the worker's thread (making it persistent when asked):
/// its public and private areas and the handle to sign with.
fn create_on(
    ctx: &mut TpmContext,
    template: Public,
    key_auth: Option<Auth>,
    job: &CreateJob,
) -> Result<(Public, Private, KeyHandle), TpmError> {
    let desc = "the new key";
    let (parent, flush_parent) =
        parent_handle(ctx, job.parent, job.parent_password.as_ref(), desc)?;
    let created = ctx.execute_with_session(Some(AuthSession::Password), |c| {
        c.create(parent, template, key_auth, None, None, None)
    });
    let created = match created {
        Ok(c) => c,
        Err(e) => {
            release_parent(ctx, parent, flush_parent);
            return Err(create_error(&e, job.parent));
        }
    };
    let loaded = ctx.execute_with_session(Some(AuthSession::Password), |c| {
        c.load(
            parent,
            created.out_private.clone(),
            created.out_public.clone(),
        )
    });
    if let Ok(key) = loaded {
        ctx.track(key);
    }
    release_parent(ctx, parent, flush_parent);
    let mut key = loaded.map_err(|e| tpm_err("TPM2_Load", desc, &e))?;
    if let Some(handle) = job.persistent {
        let persistent = PersistentTpmHandle::new(handle)
            .map_err(|_| TpmError::Keygen(format!("{handle:#x} is not persistent")))?;
        if let Some(pw) = &job.owner_password {
            let value = Auth::try_from(pw.expose().as_bytes()).map_err(|_| {
                TpmError::Keygen("the owner password is longer than 64 bytes".to_owned())
            })?;
            ctx.tr_set_auth(ObjectHandle::Owner, value)
                .map_err(|e| TpmError::Keygen(describe_error(&e)))?;
        }
        let evicted = ctx.execute_with_session(Some(AuthSession::Password), |c| {
            c.evict_control(
                Provision::Owner,
                key.into(),
                Persistent::Persistent(persistent),
            )
        });
        // The persistent copy is the key from now on; the transient one goes either way.
        ctx.flush(key);
        key = evicted.map_err(|e| evict_error(&e, handle))?.into();
    }
    if let Some(pw) = &job.key_password {
        let value = Auth::try_from(pw.expose().as_bytes())
            .map_err(|_| TpmError::Keygen("the key password is too long".to_owned()))?;
        ctx.tr_set_auth(key.into(), value)
            .map_err(|e| TpmError::Keygen(describe_error(&e)))?;
    }
    Ok((created.out_public, created.out_private, key))
}

fn create_error(e: &tss_esapi::Error, parent: u32) -> TpmError {
    match Rc::of(e) {
        Some(rc) if rc.is_auth_failure() => TpmError::WrongPassword {
            what: "the parent password",
            key: keyfile::parent_name(parent),
            rc,
            hint: "set it in RA_SIGNER_TPM_PARENT_PASSWORD".to_owned(),
        },
        _ => tpm_err("TPM2_Create", "the new key", e),
    }
}

fn evict_error(e: &tss_esapi::Error, handle: u32) -> TpmError {
    match Rc::of(e) {
        Some(rc) if rc.is_auth_failure() => TpmError::WrongPassword {
            what: "the owner hierarchy password",
            key: "the owner hierarchy".to_owned(),
            rc,
            hint: format!("set it in {}", crate::env::TPM_OWNER_PASSWORD),
        },
        Some(rc)
            if rc.code().kind() == Some(Tss2ResponseCodeKind::NvDefined) && rc.layer() == 0 =>
        {
            TpmError::Keygen(format!(
                "persistent handle {handle:#010x} is already in use: pick another, or free it with \
                 `tpm2_evictcontrol -C o -c {handle:#010x}`"
            ))
        }
        _ => tpm_err("TPM2_EvictControl", &format!("handle {handle:#010x}"), e),
    }
}
