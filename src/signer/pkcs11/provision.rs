//! What `keygen` does on a token: generate a key pair that never leaves it (sensitive, never
//! extractable, read back to make sure), and store an issued certificate and its chain
//! beside an existing key. Nothing here prints: the command says what was done.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, CertificateType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::Pkcs11Error;
use super::objects::{self, EC_PARAMS_P256, EC_PARAMS_P384};
use super::session::{self, FoundToken, Module};
use super::signer::{Mechanisms, TokenSigner};
use super::uri::{self, ObjectType, Pkcs11Uri};
use crate::cert::{Cert, KeyType as CertKeyType};
use crate::config::{KeygenKeyType, TokenKeygen};
use crate::secret::Secret;
use crate::signer::{KeyMismatch, Signer};

/// Why keygen's work on a token failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The URI, the module, the token or the login failed.
    #[error(transparent)]
    Token(#[from] Pkcs11Error),
    /// The URI gives the new key no label.
    #[error("the URI must name the new key with object=LABEL")]
    NoLabel,
    /// A key with the new key's label or id is on the token already.
    #[error("a key with label \"{label}\" or id {id} already exists on {token}")]
    KeyExists {
        /// The label asked for.
        label: String,
        /// The id asked for, percent-encoded.
        id: String,
        /// The token.
        token: String,
    },
    /// The system gave no randomness for the new key's id.
    #[error("no randomness for the key id")]
    NoRandomness,
    /// The token did not make the key sensitive and non-extractable; it was deleted.
    #[error(
        "{token} made the key with CKA_SENSITIVE={sensitive} and CKA_EXTRACTABLE={extractable}: \
         it was deleted"
    )]
    Unprotected {
        /// The token.
        token: String,
        /// CKA_SENSITIVE as the token reports it.
        sensitive: bool,
        /// CKA_EXTRACTABLE as the token reports it.
        extractable: bool,
    },
    /// Several private keys match the URI the certificate is to be stored beside.
    #[error("{count} private keys match {uri}: add object= and id=")]
    AmbiguousKey {
        /// How many.
        count: usize,
        /// The URI.
        uri: String,
    },
    /// The key has no public key object, so no certificate can be checked against it.
    #[error("the key has no public key object, so the certificate cannot be checked against it")]
    NoPublicKey,
    /// No certificate was given to store.
    #[error("no certificate to store")]
    NoCertificate,
}

/// A key pair made on a token.
pub struct GeneratedKey {
    /// Signs with the new private key (its CSR).
    pub signer: Box<dyn Signer>,
    /// The new private key's URI (`type=private`).
    pub uri: Pkcs11Uri,
}

/// Generates a key pair on the token `token.uri` names, labelled and identified as the URI
/// says (a random 8-byte id without `id=`), refusing to shadow a key with the same label or
/// id. The private key is sensitive and never extractable, and deleted again if the token
/// says otherwise.
pub fn generate_key_pair(
    token: &TokenKeygen,
    key_type: KeygenKeyType,
    always_authenticate: bool,
) -> Result<GeneratedKey, ProvisionError> {
    let uri = token.uri.uri().clone();
    let label = uri.object.clone().ok_or(ProvisionError::NoLabel)?;
    let id = match &uri.id {
        Some(id) if !id.is_empty() => id.clone(),
        _ => random_id()?,
    };
    let LoggedIn {
        module,
        token: found,
        session: s,
        pin,
    } = log_in(&uri, token)?;
    refuse_shadowing(&s, &found, &label, &id)?;

    let (mechanism, key_specific) = key_pair_mechanism(key_type);
    let mut public = vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        // A signing key's public half verifies only.
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
        Attribute::Derive(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.clone()),
    ];
    public.extend(key_specific);
    let mut private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        // Least privilege: SoftHSM2 and others default these to true.
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.clone()),
    ];
    if always_authenticate {
        private.push(Attribute::AlwaysAuthenticate(true));
    }
    let (_, key) = s
        .generate_key_pair(&mechanism, &public, &private)
        .map_err(|e| Pkcs11Error::call("C_GenerateKeyPair", e, &found.desc))?;
    check_protected(&s, key, &found)?;

    let info = objects::key_info(&s, key, &found.desc)?;
    let public_key = info
        .public_key
        .clone()
        .ok_or_else(|| Pkcs11Error::UnsupportedKey {
            key: info.describe(),
            detail: "the token made no readable public key".into(),
        })?;
    let mechanisms = Mechanisms::from_list(&session::mechanisms(&module, &found)?);
    let mut key_uri = found.desc.uri();
    key_uri.object = Some(label);
    key_uri.id = Some(id);
    key_uri.object_type = Some(ObjectType::Private);
    let signer = TokenSigner::new(
        s,
        key,
        info.key_type,
        public_key,
        mechanisms,
        always_authenticate,
        pin,
        format!("key {key_uri}"),
    );
    Ok(GeneratedKey {
        signer: Box::new(signer),
        uri: key_uri,
    })
}

/// What [`store_certificates`] stored.
#[derive(Debug, Clone)]
pub struct StoredCertificates {
    /// How many certificates were written (those already on the token are not).
    pub written: usize,
    /// The token.
    pub token: String,
    /// The key the leaf was stored beside (`object=…;id=…`).
    pub key: String,
    /// The leaf's subject.
    pub subject: String,
    /// The leaf's serial, decimal.
    pub serial: String,
}

/// Stores, beside the one private key `token.uri` names, the certificate of `certs` that
/// holds its public key (with the key's label and id), and the others as its chain
/// ("LABEL chain N", no id). Certificates already on the token are not written again.
pub fn store_certificates(
    token: &TokenKeygen,
    certs: &[Cert],
) -> Result<StoredCertificates, ProvisionError> {
    let uri = token.uri.uri().clone();
    let LoggedIn {
        token: found,
        session: s,
        ..
    } = log_in(&uri, token)?;
    let handles = objects::private_keys(&s, &uri, &found.desc)?;
    let key = match handles.as_slice() {
        [h] => objects::key_info(&s, *h, &found.desc)?,
        [] => {
            return Err(Pkcs11Error::NoObject {
                what: "private key",
                uri: uri.to_string(),
                token: found.desc.to_string(),
                available: objects::list_private_keys(&s, &found.desc),
            }
            .into());
        }
        _ => {
            return Err(ProvisionError::AmbiguousKey {
                count: handles.len(),
                uri: uri.to_string(),
            });
        }
    };
    let public_key = key.public_key.clone().unwrap_or_default();
    let mine = |c: &Cert| c.key_type() == key.key_type && c.public_key_bits() == public_key;
    let Some(leaf) = certs.iter().find(|c| mine(c)) else {
        let first = certs.first().ok_or(ProvisionError::NoCertificate)?;
        if key.public_key.is_none() && key.key_type != CertKeyType::Rsa {
            return Err(ProvisionError::NoPublicKey);
        }
        return Err(Pkcs11Error::KeyMismatch(KeyMismatch {
            key_desc: format!("{}, key {} on {}", key.key_type, key.describe(), found.desc),
            subject: first.subject(),
            serial: first.serial_decimal(),
            cert_key: first.key_type(),
        })
        .into());
    };
    let existing = objects::certificates(&s, &found.desc)?;
    let stored = |c: &Cert| existing.iter().any(|e| e.cert.der() == c.der());
    let mut written = 0;
    if !stored(leaf) {
        store_certificate(&s, &found, leaf, &key.label, &key.id)?;
        written += 1;
    }
    let chain = certs.iter().filter(|c| c.der() != leaf.der());
    for (n, c) in (1..).zip(chain) {
        if !stored(c) {
            store_certificate(&s, &found, c, &format!("{} chain {n}", key.label), &[])?;
            written += 1;
        }
    }
    Ok(StoredCertificates {
        written,
        token: found.desc.to_string(),
        key: key.describe(),
        subject: leaf.subject(),
        serial: leaf.serial_decimal(),
    })
}

/// A read-write session, logged in, on the one token a URI selects.
struct LoggedIn {
    module: Module,
    token: FoundToken,
    session: Session,
    /// The PIN the login took, for the context-specific login of an always-authenticate key.
    pin: Option<Secret>,
}

fn log_in(uri: &Pkcs11Uri, token: &TokenKeygen) -> Result<LoggedIn, Pkcs11Error> {
    let module = session::load(&session::module_path(uri, &token.pkcs11)?)?;
    let found = session::select_token(&module, uri)?;
    let s = session::open_session(&module, &found, true)?;
    let pin = session::login(&module, &s, &found, &mut || {
        session::user_pin(uri, &token.pkcs11, &found.desc)
    })?;
    Ok(LoggedIn {
        module,
        token: found,
        session: s,
        pin,
    })
}

fn random_id() -> Result<Vec<u8>, ProvisionError> {
    let mut id = vec![0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
        .map_err(|_| ProvisionError::NoRandomness)?;
    Ok(id)
}

/// Refuses a label or id a key on the token has already: URIs naming either would become
/// ambiguous.
fn refuse_shadowing(
    s: &Session,
    token: &FoundToken,
    label: &str,
    id: &[u8],
) -> Result<(), ProvisionError> {
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
        for attr in [
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
        ] {
            let found = s
                .find_objects(&[Attribute::Class(class), attr])
                .map_err(|e| Pkcs11Error::call("C_FindObjects", e, &token.desc))?;
            if !found.is_empty() {
                return Err(ProvisionError::KeyExists {
                    label: label.to_owned(),
                    id: uri::encode(id, true),
                    token: token.desc.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// The key-pair generation mechanism and the public key attributes it needs.
fn key_pair_mechanism(key_type: KeygenKeyType) -> (Mechanism<'static>, Vec<Attribute>) {
    let rsa = |bits: u64| {
        (
            Mechanism::RsaPkcsKeyPairGen,
            vec![
                Attribute::ModulusBits(bits.into()),
                Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
            ],
        )
    };
    let ec = |params: &[u8]| {
        (
            Mechanism::EccKeyPairGen,
            vec![Attribute::EcParams(params.to_vec())],
        )
    };
    match key_type {
        KeygenKeyType::Rsa2048 => rsa(2048),
        KeygenKeyType::Rsa3072 => rsa(3072),
        KeygenKeyType::P256 => ec(EC_PARAMS_P256),
        KeygenKeyType::P384 => ec(EC_PARAMS_P384),
    }
}

/// Refuses (and deletes) a generated key the token did not make sensitive and
/// non-extractable.
fn check_protected(
    s: &Session,
    key: ObjectHandle,
    token: &FoundToken,
) -> Result<(), ProvisionError> {
    let attrs = s
        .get_attributes(key, &[AttributeType::Sensitive, AttributeType::Extractable])
        .map_err(|e| Pkcs11Error::call("C_GetAttributeValue", e, &token.desc))?;
    let (mut sensitive, mut extractable) = (false, true);
    for a in attrs {
        match a {
            Attribute::Sensitive(b) => sensitive = b,
            Attribute::Extractable(b) => extractable = b,
            _ => {}
        }
    }
    if !sensitive || extractable {
        let _ = s.destroy_object(key);
        return Err(ProvisionError::Unprotected {
            token: token.desc.to_string(),
            sensitive,
            extractable,
        });
    }
    Ok(())
}

fn store_certificate(
    s: &Session,
    token: &FoundToken,
    cert: &Cert,
    label: &str,
    id: &[u8],
) -> Result<(), Pkcs11Error> {
    let serial = cert.serial_bytes();
    let mut serial_der = vec![0x02, serial.len() as u8];
    serial_der.extend_from_slice(serial);
    let mut template = vec![
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::CertificateType(CertificateType::X_509),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Subject(cert.subject_der()),
        Attribute::Issuer(cert.issuer_der()),
        Attribute::SerialNumber(serial_der),
        Attribute::Value(cert.der().to_vec()),
    ];
    if !id.is_empty() {
        template.push(Attribute::Id(id.to_vec()));
    }
    s.create_object(&template)
        .map_err(|e| Pkcs11Error::call("C_CreateObject", e, &token.desc))?;
    Ok(())
}
