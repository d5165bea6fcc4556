//! TSS2 PRIVATE KEY files (`-----BEGIN TSS2 PRIVATE KEY-----`), as written by the
//! tpm2-openssl provider, tpm2-tools' `tpm2_encodeobject`, GnuTLS and `ra-signer keygen --tpm`.
//!
//! ```text
//! TPMKey ::= SEQUENCE {
//!     type        OBJECT IDENTIFIER,              -- 2.23.133.10.1.3 loadable
//!     emptyAuth   [0] EXPLICIT BOOLEAN OPTIONAL,
//!     policy      [1] EXPLICIT SEQUENCE OF TPMPolicy OPTIONAL,
//!     secret      [2] EXPLICIT OCTET STRING OPTIONAL,
//!     authPolicy  [3] EXPLICIT SEQUENCE OF TPMAuthPolicy OPTIONAL,
//!     description [4] EXPLICIT UTF8String OPTIONAL,
//!     rsaParent   [5] EXPLICIT BOOLEAN OPTIONAL,
//!     parent      INTEGER,                        -- 0x81xxxxxx or a hierarchy
//!     pubkey      OCTET STRING,                   -- TPM2B_PUBLIC
//!     privkey     OCTET STRING                    -- TPM2B_PRIVATE
//! }
//! ```
//!
//! This module is pure parsing and writing: it checks the structure and the TPM2B size
//! prefixes, and leaves the TPM structures to the caller. Real writers encode `emptyAuth`
//! TRUE as `0x01` (BER), which is accepted; it is written as DER `0xFF`.

use der::asn1::{AnyRef, OctetStringRef, UintRef};
use der::{Decode, Encode, Reader, Tag, TagNumber, Tagged};

/// The PEM label.
pub(super) const PEM_LABEL: &str = "TSS2 PRIVATE KEY";

/// `2.23.133.10.1.3`, a key loadable with TPM2_Load.
const OID_LOADABLE: &[u8] = &[0x67, 0x81, 0x05, 0x0a, 0x01, 0x03];
/// `2.23.133.10.1.4`, a key to import with TPM2_Import.
const OID_IMPORTABLE: &[u8] = &[0x67, 0x81, 0x05, 0x0a, 0x01, 0x04];
/// `2.23.133.10.1.5`, sealed data.
const OID_SEALED: &[u8] = &[0x67, 0x81, 0x05, 0x0a, 0x01, 0x05];

/// The TPM handle of the owner (storage) hierarchy.
pub(super) const TPM_RH_OWNER: u32 = 0x4000_0001;
/// The TPM handle of the null hierarchy.
pub(super) const TPM_RH_NULL: u32 = 0x4000_0007;
/// The TPM handle of the endorsement hierarchy.
pub(super) const TPM_RH_ENDORSEMENT: u32 = 0x4000_000B;
/// The TPM handle of the platform hierarchy.
pub(super) const TPM_RH_PLATFORM: u32 = 0x4000_000C;

/// Why a TSS2 key file could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyFileError {
    /// Neither PEM with a TSS2 PRIVATE KEY block nor DER.
    #[error("it holds no \"-----BEGIN TSS2 PRIVATE KEY-----\" block")]
    NotTss2,
    /// The PEM armour or base64 is broken.
    #[error("its PEM is malformed: {0}")]
    Pem(String),
    /// The ASN.1 structure is malformed.
    #[error("its ASN.1 is malformed: {0}")]
    Asn1(String),
    /// An object identifier other than the loadable-key one.
    #[error("its type {0} is not a TPM key (expected 2.23.133.10.1.3, a loadable key)")]
    WrongType(String),
    /// An importable key (`2.23.133.10.1.4`).
    #[error(
        "it holds an importable key (2.23.133.10.1.4), which is not supported: import it into the TPM first (e.g. tpm2_import) and use the loadable key"
    )]
    Importable,
    /// Sealed data (`2.23.133.10.1.5`).
    #[error("it holds sealed data (2.23.133.10.1.5), not a signing key")]
    Sealed,
    /// The key needs a policy session.
    #[error("the key is bound to a TPM policy ({0}), which is not supported")]
    Policy(&'static str),
    /// The key's parent is an RSA storage key (`rsaParent`).
    #[error("the key's parent is an RSA primary (rsaParent), which is not supported")]
    RsaParent,
    /// The parent handle is neither persistent nor a hierarchy.
    #[error("its parent {0} is neither a persistent handle (0x81xxxxxx) nor a hierarchy")]
    BadParent(String),
    /// A TPM2B size prefix disagrees with the OCTET STRING length.
    #[error("its {what} is {actual} bytes but its TPM2B size prefix says {declared}")]
    Tpm2bLength {
        /// `pubkey` or `privkey`.
        what: &'static str,
        /// The size prefix plus two.
        declared: usize,
        /// The OCTET STRING length.
        actual: usize,
    },
}

/// A parsed loadable TSS2 key.
#[derive(Clone, PartialEq, Eq)]
pub struct TssKey {
    /// `emptyAuth`, when present: a hint that the key has no password (some writers get it
    /// wrong, so it is only a hint).
    pub empty_auth: Option<bool>,
    /// The parent: a persistent handle or a hierarchy.
    pub parent: u32,
    /// The TPM2B_PUBLIC, size prefix included.
    pub public: Vec<u8>,
    /// The TPM2B_PRIVATE, size prefix included (the key wrapped by its parent).
    pub private: Vec<u8>,
}

impl std::fmt::Debug for TssKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TssKey")
            .field("empty_auth", &self.empty_auth)
            .field("parent", &format_args!("{:#010x}", self.parent))
            .field("public_len", &self.public.len())
            .field("private_len", &self.private.len())
            .finish()
    }
}

/// Whether `handle` is a hierarchy a TSS2 key may name as its parent.
pub fn is_hierarchy(handle: u32) -> bool {
    matches!(
        handle,
        TPM_RH_OWNER | TPM_RH_NULL | TPM_RH_ENDORSEMENT | TPM_RH_PLATFORM
    )
}

/// A human name for a parent handle.
pub fn parent_name(handle: u32) -> String {
    match handle {
        TPM_RH_OWNER => "the owner hierarchy".to_owned(),
        TPM_RH_NULL => "the null hierarchy".to_owned(),
        TPM_RH_ENDORSEMENT => "the endorsement hierarchy".to_owned(),
        TPM_RH_PLATFORM => "the platform hierarchy".to_owned(),
        h => format!("persistent handle {h:#010x}"),
    }
}

impl TssKey {
    /// Parses a PEM (`TSS2 PRIVATE KEY`) or DER key file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyFileError> {
        if crate::cert::looks_like_pem(bytes) {
            for block in crate::cert::pem_blocks(bytes) {
                let (label, der) = block.map_err(KeyFileError::Pem)?;
                if label == PEM_LABEL {
                    return Self::from_der(&der);
                }
            }
            Err(KeyFileError::NotTss2)
        } else if bytes.first() == Some(&0x30) {
            Self::from_der(bytes)
        } else {
            Err(KeyFileError::NotTss2)
        }
    }

    /// Parses the DER of a `TPMKey`.
    pub fn from_der(der: &[u8]) -> Result<Self, KeyFileError> {
        let asn1 = |e: der::Error| KeyFileError::Asn1(e.to_string());
        let outer = AnyRef::from_der(der).map_err(asn1)?;
        if outer.tag() != Tag::Sequence {
            return Err(KeyFileError::Asn1(format!(
                "expected a SEQUENCE, found {}",
                outer.tag()
            )));
        }
        let mut reader = der::SliceReader::new(outer.value()).map_err(asn1)?;
        let mut next = |what: &str| -> Result<AnyRef<'_>, KeyFileError> {
            if reader.is_finished() {
                return Err(KeyFileError::Asn1(format!("it ends before {what}")));
            }
            reader.decode::<AnyRef<'_>>().map_err(asn1)
        };

        let oid = next("the type")?;
        if oid.tag() != Tag::ObjectIdentifier {
            return Err(KeyFileError::Asn1(format!(
                "expected the type OID first, found {}",
                oid.tag()
            )));
        }
        match oid.value() {
            OID_LOADABLE => {}
            OID_IMPORTABLE => return Err(KeyFileError::Importable),
            OID_SEALED => return Err(KeyFileError::Sealed),
            other => {
                let text = der::asn1::ObjectIdentifier::from_bytes(other)
                    .map(|o| o.to_string())
                    .unwrap_or_else(|_| "(an invalid OID)".to_owned());
                return Err(KeyFileError::WrongType(text));
            }
        }

        let mut empty_auth = None;
        let mut last_tag = None;
        let parent = loop {
            let item = next("the parent")?;
            match item.tag() {
                Tag::Integer => break item,
                Tag::ContextSpecific {
                    constructed: true,
                    number,
                } => {
                    if last_tag.is_some_and(|t| t >= number.0) {
                        return Err(KeyFileError::Asn1(format!(
                            "tagged field [{}] is out of order",
                            number.0
                        )));
                    }
                    last_tag = Some(number.0);
                    match number.0 {
                        0 => empty_auth = Some(explicit_boolean(item)?),
                        1 => return Err(KeyFileError::Policy("policy [1]")),
                        2 => return Err(KeyFileError::Policy("secret [2] of an importable key")),
                        3 => return Err(KeyFileError::Policy("authPolicy [3]")),
                        // description: free text, ignored.
                        4 => {}
                        5 => {
                            if explicit_boolean(item)? {
                                return Err(KeyFileError::RsaParent);
                            }
                        }
                        n => {
                            return Err(KeyFileError::Asn1(format!("unknown tagged field [{n}]")));
                        }
                    }
                }
                other => {
                    return Err(KeyFileError::Asn1(format!(
                        "expected the parent INTEGER, found {other}"
                    )));
                }
            }
        };
        let parent = parse_parent(parent.value())?;

        let public = next("the public key")?;
        let private = next("the private key")?;
        for (item, what) in [(public, "pubkey"), (private, "privkey")] {
            if item.tag() != Tag::OctetString {
                return Err(KeyFileError::Asn1(format!(
                    "expected the {what} OCTET STRING, found {}",
                    item.tag()
                )));
            }
            check_tpm2b(item.value(), what)?;
        }
        if !reader.is_finished() {
            return Err(KeyFileError::Asn1(
                "unexpected data after the private key".to_owned(),
            ));
        }
        Ok(TssKey {
            empty_auth,
            parent,
            public: public.value().to_vec(),
            private: private.value().to_vec(),
        })
    }

    /// Encodes the key as DER (`emptyAuth` as DER TRUE `0xFF` when set).
    pub fn to_der(&self) -> Result<Vec<u8>, der::Error> {
        let mut body = Vec::new();
        AnyRef::new(Tag::ObjectIdentifier, OID_LOADABLE)?.encode_to_vec(&mut body)?;
        if let Some(flag) = self.empty_auth {
            let boolean = [0x01, 0x01, if flag { 0xff } else { 0x00 }];
            AnyRef::new(
                Tag::ContextSpecific {
                    constructed: true,
                    number: TagNumber(0),
                },
                &boolean,
            )?
            .encode_to_vec(&mut body)?;
        }
        UintRef::new(&self.parent.to_be_bytes())?.encode_to_vec(&mut body)?;
        OctetStringRef::new(&self.public)?.encode_to_vec(&mut body)?;
        OctetStringRef::new(&self.private)?.encode_to_vec(&mut body)?;
        AnyRef::new(Tag::Sequence, &body)?.to_der()
    }

    /// Encodes the key as PEM.
    pub fn to_pem(&self) -> Result<String, der::Error> {
        let der = self.to_der()?;
        der::pem::encode_string(PEM_LABEL, der::pem::LineEnding::LF, &der)
            .map_err(|e| der::Error::from(der::ErrorKind::Pem(e)))
    }
}

/// Reads `[n] EXPLICIT BOOLEAN`, accepting any non-zero byte as TRUE (BER), as real files
/// encode TRUE as `0x01`.
fn explicit_boolean(item: AnyRef<'_>) -> Result<bool, KeyFileError> {
    match item.value() {
        [0x01, 0x01, value] => Ok(*value != 0),
        _ => Err(KeyFileError::Asn1(
            "a tagged BOOLEAN field is not a BOOLEAN".to_owned(),
        )),
    }
}

fn parse_parent(value: &[u8]) -> Result<u32, KeyFileError> {
    let bad = || KeyFileError::BadParent(format!("0x{}", crate::cert::hex_lower(value)));
    if value.first().is_some_and(|b| b & 0x80 != 0) {
        return Err(bad());
    }
    let digits: &[u8] = match value {
        [0, rest @ ..] if !rest.is_empty() => rest,
        v => v,
    };
    if digits.is_empty() || digits.len() > 4 {
        return Err(bad());
    }
    let handle = digits
        .iter()
        .fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
    if handle >> 24 == 0x81 || is_hierarchy(handle) {
        Ok(handle)
    } else {
        Err(KeyFileError::BadParent(format!("{handle:#010x}")))
    }
}

fn check_tpm2b(value: &[u8], what: &'static str) -> Result<(), KeyFileError> {
    let declared = match value {
        [hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])) + 2,
        _ => 2,
    };
    if value.len() < 2 || declared != value.len() || declared == 2 {
        return Err(KeyFileError::Tpm2bLength {
            what,
            declared,
            actual: value.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A P-256 key written by tpm2-openssl 1.1.1 (`openssl genpkey -provider tpm2
    /// -algorithm EC -pkeyopt group:P-256`): emptyAuth `01`, parent the owner hierarchy.
    const OPENSSL_P256: &str = "-----BEGIN TSS2 PRIVATE KEY-----
MIHwBgZngQUKAQOgAwEBAQIEQAAAAQRYAFYAIwALAAYAcgAAABAAEAADABAAIDBV
OqRm4p2ZdBDWMNsO6dz3sURg9gUdAFvpsRyhCfYnACBuN8enRl/8YfEC6OKanF12
lkOmqnhhWfdmOAjJ/U3KFgSBgAB+ACBbJyx9WP42zAUiYbtCYSK3kWlIoY+S8pn7
vvW6OqHq6wAQ/kEwtqud+hdxT7kPYIRDJ0T8xuN5vIGyx74wMbXfEOEls85zwYcJ
vdb3PcHgBwiOfbSheR5k9Q/+pFJwtFaqe5i7tbjo/c8sRLJCXbHWJikhWAO4AGIe
A4BW
-----END TSS2 PRIVATE KEY-----
";

    #[test]
    fn parses_a_tpm2_openssl_file() {
        let key = TssKey::from_bytes(OPENSSL_P256.as_bytes()).expect("parses");
        assert_eq!(key.empty_auth, Some(true));
        assert_eq!(key.parent, TPM_RH_OWNER);
        assert_eq!(key.public.len(), 0x58);
        assert_eq!(&key.public[..4], &[0x00, 0x56, 0x00, 0x23]);
        assert_eq!(key.private.len(), 0x80);
        // Written back, it differs only in the DER TRUE.
        let der = key.to_der().expect("encodes");
        let original = crate::cert::pem_blocks(OPENSSL_P256.as_bytes())
            .next()
            .expect("one block")
            .expect("valid")
            .1;
        assert_eq!(der.len(), original.len());
        let diffs: Vec<usize> = (0..der.len()).filter(|i| der[*i] != original[*i]).collect();
        assert_eq!(diffs, vec![15]);
        assert_eq!((original[15], der[15]), (0x01, 0xff));
        assert_eq!(TssKey::from_der(&der).expect("round trip"), key);
        let pem = key.to_pem().expect("pem");
        assert!(
            pem.starts_with("-----BEGIN TSS2 PRIVATE KEY-----\n"),
            "{pem}"
        );
        assert_eq!(
            TssKey::from_bytes(pem.as_bytes()).expect("pem round trip"),
            key
        );
    }

    fn sample() -> TssKey {
        TssKey {
            empty_auth: None,
            parent: 0x8100_0001,
            public: vec![0, 3, 1, 2, 3],
            private: vec![0, 1, 9],
        }
    }

    #[test]
    fn persistent_parent_and_absent_empty_auth() {
        let key = sample();
        let der = key.to_der().expect("encodes");
        // The parent needs a leading zero: 02 05 00 81 00 00 01.
        assert!(der.windows(7).any(|w| w == [2, 5, 0, 0x81, 0, 0, 1]));
        assert_eq!(TssKey::from_der(&der).expect("parses"), key);
    }

    /// Re-encodes `key` with the given middle fields (after the OID).
    fn with_fields(oid: &[u8], fields: &[&[u8]]) -> Vec<u8> {
        let mut body = vec![0x06, oid.len() as u8];
        body.extend_from_slice(oid);
        for f in fields {
            body.extend_from_slice(f);
        }
        let mut out = vec![0x30, body.len() as u8];
        out.extend_from_slice(&body);
        out
    }

    const PARENT_OWNER: &[u8] = &[0x02, 0x04, 0x40, 0, 0, 1];
    const PUB: &[u8] = &[0x04, 0x04, 0, 2, 0xaa, 0xbb];
    const PRIV: &[u8] = &[0x04, 0x03, 0, 1, 0xcc];

    #[test]
    fn accepts_ber_and_der_booleans() {
        for (byte, want) in [(0x01, true), (0xff, true), (0x00, false)] {
            let ea = [0xa0, 0x03, 0x01, 0x01, byte];
            let der = with_fields(OID_LOADABLE, &[&ea, PARENT_OWNER, PUB, PRIV]);
            let key = TssKey::from_der(&der).expect("parses");
            assert_eq!(key.empty_auth, Some(want));
            assert_eq!(key.parent, TPM_RH_OWNER);
        }
    }

    #[test]
    fn refuses_other_types_and_policies() {
        let cases: Vec<(Vec<u8>, KeyFileError)> = vec![
            (
                with_fields(OID_IMPORTABLE, &[PARENT_OWNER, PUB, PRIV]),
                KeyFileError::Importable,
            ),
            (
                with_fields(OID_SEALED, &[PARENT_OWNER, PUB, PRIV]),
                KeyFileError::Sealed,
            ),
            (
                // 1.2.840.10045.2.1 (id-ecPublicKey): not a TPM key at all.
                with_fields(
                    &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01],
                    &[PARENT_OWNER, PUB, PRIV],
                ),
                KeyFileError::WrongType("1.2.840.10045.2.1".into()),
            ),
            (
                with_fields(
                    OID_LOADABLE,
                    &[&[0xa1, 0x02, 0x30, 0x00], PARENT_OWNER, PUB, PRIV],
                ),
                KeyFileError::Policy("policy [1]"),
            ),
            (
                with_fields(
                    OID_LOADABLE,
                    &[&[0xa3, 0x02, 0x30, 0x00], PARENT_OWNER, PUB, PRIV],
                ),
                KeyFileError::Policy("authPolicy [3]"),
            ),
            (
                with_fields(
                    OID_LOADABLE,
                    &[&[0xa5, 0x03, 0x01, 0x01, 0xff], PARENT_OWNER, PUB, PRIV],
                ),
                KeyFileError::RsaParent,
            ),
        ];
        for (der, want) in cases {
            assert_eq!(TssKey::from_der(&der), Err(want));
        }
        // A description [4] is ignored.
        let described = with_fields(
            OID_LOADABLE,
            &[
                &[0xa4, 0x04, 0x0c, 0x02, b'h', b'i'],
                PARENT_OWNER,
                PUB,
                PRIV,
            ],
        );
        assert!(TssKey::from_der(&described).is_ok());
    }

    #[test]
    fn refuses_bad_lengths_parents_and_truncation() {
        // pubkey says 3 bytes, holds 2.
        let short_pub = with_fields(
            OID_LOADABLE,
            &[PARENT_OWNER, &[0x04, 0x04, 0, 3, 0xaa, 0xbb], PRIV],
        );
        assert_eq!(
            TssKey::from_der(&short_pub),
            Err(KeyFileError::Tpm2bLength {
                what: "pubkey",
                declared: 5,
                actual: 4
            })
        );
        let empty_priv = with_fields(OID_LOADABLE, &[PARENT_OWNER, PUB, &[0x04, 0x00]]);
        assert!(matches!(
            TssKey::from_der(&empty_priv),
            Err(KeyFileError::Tpm2bLength {
                what: "privkey",
                ..
            })
        ));
        let transient_parent = with_fields(
            OID_LOADABLE,
            &[&[0x02, 0x04, 0x00, 0x00, 0x00, 0x01][..], PUB, PRIV],
        );
        assert!(matches!(
            TssKey::from_der(&transient_parent),
            Err(KeyFileError::BadParent(_))
        ));
        let negative_parent = with_fields(OID_LOADABLE, &[&[0x02, 0x01, 0x81][..], PUB, PRIV]);
        assert!(matches!(
            TssKey::from_der(&negative_parent),
            Err(KeyFileError::BadParent(_))
        ));
        let no_priv = with_fields(OID_LOADABLE, &[PARENT_OWNER, PUB]);
        assert!(matches!(
            TssKey::from_der(&no_priv),
            Err(KeyFileError::Asn1(_))
        ));

        let good = with_fields(OID_LOADABLE, &[PARENT_OWNER, PUB, PRIV]);
        assert!(TssKey::from_der(&good).is_ok());
        for cut in 1..good.len() {
            assert!(TssKey::from_der(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good;
        trailing.push(0);
        assert!(TssKey::from_der(&trailing).is_err());
    }

    #[test]
    fn pem_detection() {
        assert_eq!(
            TssKey::from_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            Err(KeyFileError::NotTss2)
        );
        assert_eq!(TssKey::from_bytes(b"hello"), Err(KeyFileError::NotTss2));
        let truncated = &OPENSSL_P256[..OPENSSL_P256.len() - 40];
        assert!(matches!(
            TssKey::from_bytes(truncated.as_bytes()),
            Err(KeyFileError::Pem(_))
        ));
    }
}
