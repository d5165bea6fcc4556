//! The floor of a TPM credential with a TSS2 key file: open the TCTI, make the key's parent
//! usable (the persistent parent, or the standard P-256 storage primary created under the
//! hierarchy), load the key, flush the primary, sign one SHA-256 digest, flush the key,
//! exit. Nothing else (no certificate, no worker thread, no checks before the TCTI; HTTP
//! only when asked). `bench/instructions.sh` counts it beside `ra-signer
//! credential-process`, alone and with the HTTPS call of `floor/https.rs` after the
//! signature, and the TPM commands each sends.
//!
//! Usage: `tpm_floor TCTI KEY-FILE [URL CA-FILE]` (the key without a password, the parent
//! without one).

#[path = "floor/https.rs"]
mod https;

use std::str::FromStr;

use tss_esapi::Context;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::handles::{KeyHandle, ObjectHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Digest, EccPoint, HashScheme, HashcheckTicket, Private, Public, PublicBuffer,
    PublicEccParametersBuilder, SignatureScheme, SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::UnMarshall;
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;

use ra_signer::signer::tpm::TssKey;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, tcti, key_file, tail @ ..] = args.as_slice() else {
        return Err("usage: tpm_floor TCTI KEY-FILE [URL CA-FILE]".into());
    };
    let key = TssKey::from_bytes(&std::fs::read(key_file)?)?;
    let public = Public::try_from(PublicBuffer::unmarshall(&key.public)?)?;
    // The key file's private part is a TPM2B: its two-byte size, then the blob.
    let private = Private::try_from(&key.private[2..])?;
    let mut ctx = Context::new(TctiNameConf::from_str(tcti)?)?;

    let hierarchy = match key.parent {
        0x4000_0001 => Some(Hierarchy::Owner),
        0x4000_000b => Some(Hierarchy::Endorsement),
        0x4000_000c => Some(Hierarchy::Platform),
        0x4000_0007 => Some(Hierarchy::Null),
        _ => None,
    };
    let (parent, created) = match hierarchy {
        Some(hierarchy) => {
            let primary = ctx.execute_with_session(Some(AuthSession::Password), |c| {
                c.create_primary(hierarchy, srk_template()?, None, None, None, None)
            })?;
            (primary.key_handle, true)
        }
        None => {
            let handle = TpmHandle::Persistent(PersistentTpmHandle::new(key.parent)?);
            let object = ctx.execute_without_session(|c| c.tr_from_tpm_public(handle))?;
            (KeyHandle::from(object), false)
        }
    };
    let loaded = ctx.execute_with_session(Some(AuthSession::Password), |c| {
        c.load(parent, private, public)
    })?;
    if created {
        ctx.flush_context(ObjectHandle::from(parent))?;
    }

    let message = b"AWS4-X509-ECDSA-SHA256\n20250101T000000Z\nscope\nhash";
    let hash = ring::digest::digest(&ring::digest::SHA256, message);
    let ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })?;
    let scheme = SignatureScheme::EcDsa {
        hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
    };
    let signature = ctx.execute_with_session(Some(AuthSession::Password), |c| {
        c.sign(loaded, Digest::try_from(hash.as_ref())?, scheme, ticket)
    })?;
    ctx.flush_context(ObjectHandle::from(loaded))?;
    println!("{:?}", signature.algorithm());
    https::post_if_asked(tail)
}

/// The standard ECC P-256 storage primary (as tpm2-openssl and ra-signer make it).
fn srk_template() -> tss_esapi::Result<Public> {
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
