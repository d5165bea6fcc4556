//! `ra-signer keygen --tpm`: creates a signing key inside the TPM, writes it as a TSS2 key
//! file (or makes it persistent at a handle), and writes a PKCS#10 CSR signed inside the TPM
//! for the CA to issue the certificate from.

use std::path::{Path, PathBuf};

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
use super::{KeyLocation, OWNER_PASSWORD_ENV, Passwords, TpmError, TpmSigner};
use crate::cert::KeyType;
use crate::secret::{self, Secret, SecretError, SecretSource};
use crate::signer::Signer;
use crate::signer::csr::{self, CsrError, Subject};

/// The key types `keygen --tpm` creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TpmKeyType {
    /// RSA 2048-bit (RSASSA-PKCS1-v1_5 signatures).
    Rsa2048,
    /// ECDSA on NIST P-256.
    P256,
    /// ECDSA on NIST P-384.
    P384,
}

/// Where the new key goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeygenTarget {
    /// A TSS2 key file (the key wrapped by its parent; useless on another TPM).
    File(PathBuf),
    /// A persistent handle (`0x81xxxxxx`), made with the owner hierarchy's authorization.
    Persistent(u32),
}

/// Everything `keygen` needs.
#[derive(Debug, Clone)]
pub struct KeygenRequest {
    /// The TPM.
    pub tcti: Tcti,
    /// The key type.
    pub key_type: TpmKeyType,
    /// Where the key goes.
    pub target: KeygenTarget,
    /// The parent: a hierarchy (the standard ECC storage primary is made under it) or a
    /// persistent storage key.
    pub parent: u32,
    /// The new key's password (`None`: no password, written as emptyAuth TRUE).
    pub key_password: Option<Secret>,
    /// The parent's (or hierarchy's) password.
    pub parent_password: Option<Secret>,
    /// The owner hierarchy's password, for making the key persistent.
    pub owner_password: Option<Secret>,
    /// The CSR's subject, `CN=name,O=org` (or OpenSSL's `/CN=name/O=org`).
    pub subject: String,
    /// Where the PEM CSR goes (`None`: standard output).
    pub csr: Option<PathBuf>,
    /// Replace existing output files.
    pub overwrite: bool,
}

/// What `keygen` made.
#[derive(Debug, Clone)]
pub struct KeygenOutcome {
    /// The key type.
    pub key_type: KeyType,
    /// `--private-key` value for the new key (the file, or `handle:0x81…`).
    pub private_key_arg: String,
    /// The CSR, PEM.
    pub csr_pem: String,
}

/// `ra-signer keygen --tpm` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct TpmKeygenArgs {
    /// Key type to create inside the TPM.
    #[arg(long = "key-type", value_enum, default_value = "p256")]
    pub key_type: TpmKeyType,
    /// Write the new key as a TSS2 PRIVATE KEY file (usable with --private-key and with
    /// OpenSSL's tpm2 provider).
    #[arg(long = "out", value_name = "KEY_FILE", conflicts_with = "persistent")]
    pub out: Option<PathBuf>,
    /// Make the new key persistent at this handle instead (needs the owner hierarchy;
    /// password from $RA_SIGNER_TPM_OWNER_PASSWORD).
    #[arg(long = "persistent", value_name = "handle:0x81xxxxxx")]
    pub persistent: Option<String>,
    /// Parent of the new key: owner (the standard ECC storage primary under the owner
    /// hierarchy), endorsement, or a persistent storage key handle:0x81xxxxxx (its
    /// password from $RA_SIGNER_TPM_PARENT_PASSWORD).
    #[arg(
        long = "parent",
        default_value = "owner",
        value_name = "owner|endorsement|handle:0x81xxxxxx"
    )]
    pub parent: String,
    /// Where to write the PKCS#10 certificate signing request (PEM), signed inside the TPM
    /// (default: standard output).
    #[arg(long = "csr-out", value_name = "FILE")]
    pub csr_out: Option<PathBuf>,
    /// Subject of the CSR: RFC 4514 "CN=host1,O=Example" or OpenSSL's "/O=Example/CN=host1"
    /// (see [`Subject::parse`]).
    #[arg(long = "subject", value_name = "DN")]
    pub subject: String,
    /// TPM TCTI (else $TPM2TOOLS_TCTI, $TSS2_TCTI, $TPM_DEVICE, device:/dev/tpmrm0).
    #[arg(long = "tpm-tcti", value_name = "TCTI")]
    pub tpm_tcti: Option<String>,
    /// File whose first line becomes the new key's password (else
    /// $RA_SIGNER_TPM_KEY_PASSWORD; none if neither is set).
    #[arg(long = "tpm-key-password-file", value_name = "FILE")]
    pub tpm_key_password_file: Option<PathBuf>,
    /// Replace existing output files.
    #[arg(long = "force")]
    pub force: bool,
}

impl TpmKeygenArgs {
    /// Turns the flags (and environment) into a request.
    pub fn to_request(&self) -> Result<KeygenRequest, TpmError> {
        let target = match (&self.out, &self.persistent) {
            (Some(path), None) => KeygenTarget::File(path.clone()),
            (None, Some(handle)) => KeygenTarget::Persistent(parse_persistent(handle)?),
            _ => {
                return Err(TpmError::Keygen(
                    "give either --out KEY_FILE or --persistent handle:0x81xxxxxx".to_owned(),
                ));
            }
        };
        let parent = match self.parent.as_str() {
            "owner" | "o" => keyfile::TPM_RH_OWNER,
            "endorsement" | "e" => keyfile::TPM_RH_ENDORSEMENT,
            other => parse_persistent(other)?,
        };
        let mut sources = Vec::new();
        if let Some(path) = &self.tpm_key_password_file {
            sources.push(SecretSource::File(path.clone()));
        }
        sources.push(SecretSource::Env(crate::env::TPM_KEY_PASSWORD));
        let key_password = optional_secret(&sources, "the new TPM key's password")?;
        let parent_password = super::parent_password()?;
        let owner_password = match optional_secret(
            &[SecretSource::Env(OWNER_PASSWORD_ENV)],
            "the owner hierarchy password",
        )? {
            Some(pw) => Some(pw),
            None if parent == keyfile::TPM_RH_OWNER => parent_password.clone(),
            None => None,
        };
        Ok(KeygenRequest {
            tcti: Tcti::resolve(self.tpm_tcti.as_deref()),
            key_type: self.key_type,
            target,
            parent,
            key_password,
            parent_password,
            owner_password,
            subject: self.subject.clone(),
            csr: self.csr_out.clone(),
            overwrite: self.force,
        })
    }
}

fn optional_secret(sources: &[SecretSource], what: &str) -> Result<Option<Secret>, TpmError> {
    match secret::resolve(sources, what) {
        Ok(s) if s.expose().is_empty() => Ok(None),
        Ok(s) => Ok(Some(s)),
        Err(SecretError::NoneGiven { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn parse_persistent(text: &str) -> Result<u32, TpmError> {
    let with_prefix = if text.starts_with("handle:") {
        text.to_owned()
    } else {
        format!("handle:{text}")
    };
    match crate::config::parse_tpm_handle(&with_prefix) {
        Some(Ok(h)) => Ok(h),
        Some(Err(e)) => Err(TpmError::Keygen(e.0)),
        None => Err(TpmError::Keygen(format!("\"{text}\" is not a TPM handle"))),
    }
}

/// Runs `keygen --tpm`: creates the key, writes the key file or makes it persistent, writes
/// the CSR, and says what to do next on stdout.
pub fn run_keygen(args: &TpmKeygenArgs) -> Result<(), TpmError> {
    let request = args.to_request()?;
    let outcome = keygen(&request)?;
    let csr_place = match &request.csr {
        Some(path) => path.display().to_string(),
        None => {
            crate::diag::result(|out| out.write_all(outcome.csr_pem.as_bytes()))?;
            "standard output".to_owned()
        }
    };
    crate::diag!(
        "created a {} key inside the TPM: --private-key {}\nwrote the certificate signing request to {csr_place}\nnext: have your CA issue a certificate from the CSR, then run ra-signer with --private-key {} --certificate CERT.pem",
        outcome.key_type,
        outcome.private_key_arg,
        outcome.private_key_arg,
    );
    Ok(())
}

/// The template of a new signing key: fixedTPM, fixedParent, sensitiveDataOrigin,
/// userWithAuth, sign; scheme NULL so that any signing scheme may be chosen per signature
/// (ra-signer passes RSASSA or ECDSA explicitly; OpenSSL's tpm2 provider may use PSS).
pub(crate) fn key_template(key_type: TpmKeyType) -> tss_esapi::Result<Public> {
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

fn write_new(path: &Path, contents: &[u8], overwrite: bool) -> Result<(), TpmError> {
    crate::outfile::write(path, contents, overwrite).map_err(|e| {
        TpmError::Keygen(if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "{} exists: not replacing it (--force replaces it)",
                path.display()
            )
        } else {
            format!("cannot write {}: {e}", path.display())
        })
    })
}

/// Creates the key and its CSR.
pub fn keygen(req: &KeygenRequest) -> Result<KeygenOutcome, TpmError> {
    let subject = Subject::parse(&req.subject)?;
    let target_file = match &req.target {
        KeygenTarget::File(p) => Some(p),
        KeygenTarget::Persistent(_) => None,
    };
    for path in req.csr.iter().chain(target_file) {
        if !req.overwrite && path.exists() {
            return Err(TpmError::Keygen(format!(
                "{} exists: not replacing it (--force replaces it)",
                path.display()
            )));
        }
    }
    let tcti = &req.tcti;
    let template = key_template(req.key_type).map_err(|e| TpmError::Keygen(describe_error(&e)))?;
    let key_auth = req
        .key_password
        .as_ref()
        .map(|pw| Auth::try_from(pw.expose().as_bytes()))
        .transpose()
        .map_err(|_| TpmError::Keygen("the key password is longer than 64 bytes".to_owned()))?;
    let job = CreateJob {
        parent: req.parent,
        parent_password: req.parent_password.clone(),
        owner_password: req.owner_password.clone(),
        key_password: req.key_password.clone(),
        persistent: match &req.target {
            KeygenTarget::Persistent(handle) => Some(*handle),
            KeygenTarget::File(_) => None,
        },
    };
    let mut worker = tcti.connect()?;
    let (public, private, key) = worker.call("creating the key", move |ctx| {
        create_on(ctx, template, key_auth, &job)
    })??;

    let passwords = Passwords {
        key: req.key_password.clone(),
        key_origin: "keygen",
        parent: req.parent_password.clone(),
    };
    let (location, private_key_arg) = match &req.target {
        KeygenTarget::File(path) => {
            let tss = TssKey {
                empty_auth: Some(req.key_password.is_none()),
                parent: req.parent,
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
            write_new(path, pem.as_bytes(), req.overwrite)?;
            (
                KeyLocation::File {
                    path: path.clone(),
                    key: tss,
                },
                path.display().to_string(),
            )
        }
        KeygenTarget::Persistent(handle) => (
            KeyLocation::Persistent(*handle),
            format!("handle:{handle:#010x}"),
        ),
    };
    let signer = TpmSigner::from_loaded(tcti.clone(), worker, key, &public, location, passwords)?;
    let csr_pem = csr::request_pem(&subject, &signer).map_err(|e| match e {
        CsrError::Sign(failure) => TpmError::CsrSign(failure),
        other => TpmError::Keygen(other.to_string()),
    })?;
    if let Some(path) = &req.csr {
        write_new(path, csr_pem.as_bytes(), req.overwrite)?;
    }
    Ok(KeygenOutcome {
        key_type: signer.key_type(),
        private_key_arg,
        csr_pem,
    })
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
            hint: format!("set it in {OWNER_PASSWORD_ENV}"),
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
