//! The PKCS#10 request `keygen` writes, for both backends: the [`Subject`] parsed at the
//! command line and the key's public half, signed by the hardware key through the [`Signer`]
//! trait.

use x509_cert::attr::Attribute;
use x509_cert::der::asn1::{Any, BitString, Null, ObjectIdentifier, OctetString, SetOfVec};
use x509_cert::der::oid::AssociatedOid;
use x509_cert::der::pem::LineEnding;
use x509_cert::der::{Encode, EncodePem};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq, Version};
use x509_cert::{AlgorithmIdentifier, SubjectPublicKeyInfo};

use crate::cert::KeyType;
use crate::signer::{Digest, SignError, Signer};
use crate::subject::Subject;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");

/// Why a CSR could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    /// The key is of a type a CSR is not made for here.
    #[error("a CSR cannot be made for a {0} key")]
    KeyType(KeyType),
    /// The key refused to sign.
    #[error("the key could not sign the CSR: {0}")]
    Sign(#[from] SignError),
    /// DER encoding failed.
    #[error("cannot encode the CSR: {0}")]
    Encode(#[from] der::Error),
}

/// Builds the PEM CSR for `subject` with `signer`'s public key, asking for a client-auth
/// certificate (keyUsage digitalSignature, critical; extendedKeyUsage clientAuth), signed
/// by `signer` (SHA-256; SHA-384 for P-384 keys).
pub fn request_pem(subject: &Subject, signer: &dyn Signer) -> Result<String, CsrError> {
    let bits = signer.public_key_bits();
    let (key_algorithm, signature_algorithm, digest) = match signer.key_type() {
        KeyType::Rsa => (
            AlgorithmIdentifier {
                oid: RSA_ENCRYPTION,
                parameters: Some(Any::encode_from(&Null)?),
            },
            AlgorithmIdentifier {
                oid: SHA256_WITH_RSA,
                parameters: Some(Any::encode_from(&Null)?),
            },
            Digest::Sha256,
        ),
        KeyType::EcP256 => (
            AlgorithmIdentifier {
                oid: EC_PUBLIC_KEY,
                parameters: Some(Any::encode_from(&P256)?),
            },
            AlgorithmIdentifier {
                oid: ECDSA_SHA256,
                parameters: None,
            },
            Digest::Sha256,
        ),
        KeyType::EcP384 => (
            AlgorithmIdentifier {
                oid: EC_PUBLIC_KEY,
                parameters: Some(Any::encode_from(&P384)?),
            },
            AlgorithmIdentifier {
                oid: ECDSA_SHA384,
                parameters: None,
            },
            Digest::Sha384,
        ),
        other => return Err(CsrError::KeyType(other)),
    };
    let extensions = ExtensionReq(vec![
        Extension {
            extn_id: KeyUsage::OID,
            critical: true,
            extn_value: OctetString::new(KeyUsage(KeyUsages::DigitalSignature.into()).to_der()?)?,
        },
        Extension {
            extn_id: ExtendedKeyUsage::OID,
            critical: false,
            extn_value: OctetString::new(ExtendedKeyUsage(vec![CLIENT_AUTH]).to_der()?)?,
        },
    ]);
    let mut attributes = SetOfVec::new();
    attributes.insert(Attribute::try_from(extensions)?)?;
    let info = CertReqInfo {
        version: Version::V1,
        subject: subject.name().clone(),
        public_key: SubjectPublicKeyInfo {
            algorithm: key_algorithm,
            subject_public_key: BitString::from_bytes(bits)?,
        },
        attributes,
    };
    let signature = signer.sign(digest, &info.to_der()?)?;
    let request = CertReq {
        info,
        algorithm: signature_algorithm,
        signature: BitString::from_bytes(&signature)?,
    };
    Ok(request.to_pem(LineEnding::LF)?)
}
