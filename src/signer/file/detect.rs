//! Recognising a key file's format from its content: PEM labels, or the shape of the DER.

use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Decode, Reader, SliceReader, Tag, Tagged};
use zeroize::Zeroizing;

use super::FileKeyError;
use crate::cert::{Cert, looks_like_pem, pem_blocks};

/// The container a private key is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// PKCS#8 `PrivateKeyInfo` (`PRIVATE KEY`).
    Pkcs8,
    /// PKCS#8 `EncryptedPrivateKeyInfo` (`ENCRYPTED PRIVATE KEY`).
    EncryptedPkcs8,
    /// SEC1 `ECPrivateKey` (`EC PRIVATE KEY`).
    Sec1,
    /// PKCS#1 `RSAPrivateKey` (`RSA PRIVATE KEY`).
    Pkcs1,
    /// A PKCS#12 `PFX` (DER only).
    Pkcs12,
}

/// The one private key of a file, as DER.
pub(super) struct Block {
    pub(super) kind: Kind,
    pub(super) der: Zeroizing<Vec<u8>>,
}

/// Finds the private key of a file and the certificates beside it (PEM only; PKCS#12
/// certificates come out of the PKCS#12 decoding).
pub(super) fn classify(bytes: &[u8], origin: &str) -> Result<(Block, Vec<Cert>), FileKeyError> {
    if looks_like_pem(bytes) {
        classify_pem(bytes, origin)
    } else {
        let kind = match der_shape(bytes) {
            Some(Shape::Key(kind)) => kind,
            Some(Shape::Certificate) => {
                return Err(FileKeyError::CertificateOnly {
                    path: origin.to_owned(),
                });
            }
            Some(Shape::Tss2) => {
                return Err(FileKeyError::TpmKeyFile {
                    path: origin.to_owned(),
                });
            }
            Some(Shape::Dsa) => return Err(unsupported_dsa(origin)),
            None => {
                return Err(FileKeyError::NotAKey {
                    path: origin.to_owned(),
                });
            }
        };
        let block = Block {
            kind,
            der: Zeroizing::new(bytes.to_vec()),
        };
        Ok((block, Vec::new()))
    }
}

fn classify_pem(bytes: &[u8], origin: &str) -> Result<(Block, Vec<Cert>), FileKeyError> {
    // A TPM key file goes to the TPM backend even when damaged, so that its errors speak of
    // TPM key files.
    if bytes
        .windows(TSS2_PEM_HEADER.len())
        .any(|w| w == TSS2_PEM_HEADER)
    {
        return Err(FileKeyError::TpmKeyFile {
            path: origin.to_owned(),
        });
    }
    let mut keys = Vec::new();
    let mut certificates = Vec::new();
    for block in pem_blocks(bytes) {
        let (label, der) = block.map_err(|detail| FileKeyError::Malformed {
            path: origin.to_owned(),
            format: "PEM file",
            detail,
        })?;
        let der = Zeroizing::new(der);
        let kind = match label.as_str() {
            "PRIVATE KEY" => Kind::Pkcs8,
            "ENCRYPTED PRIVATE KEY" => Kind::EncryptedPkcs8,
            "EC PRIVATE KEY" => Kind::Sec1,
            "RSA PRIVATE KEY" => Kind::Pkcs1,
            "CERTIFICATE" | "X509 CERTIFICATE" | "X.509 CERTIFICATE" => {
                certificates.push(Cert::from_der(&der, origin)?);
                continue;
            }
            "DSA PRIVATE KEY" => return Err(unsupported_dsa(origin)),
            "OPENSSH PRIVATE KEY" => {
                return Err(FileKeyError::UnsupportedFormat {
                    path: origin.to_owned(),
                    what: "an OpenSSH private key".to_owned(),
                    hint: "convert a copy to PKCS#8 with `ssh-keygen -p -m PKCS8 -f COPY`",
                });
            }
            other if other.ends_with(" (legacy encrypted)") => {
                if other.contains("PRIVATE KEY") {
                    return Err(FileKeyError::LegacyEncryptedPem {
                        path: origin.to_owned(),
                    });
                }
                continue;
            }
            // Public keys, parameters ("EC PARAMETERS" from `openssl ecparam -genkey`), CRLs:
            // not ours to read.
            _ => continue,
        };
        keys.push(Block { kind, der });
    }
    match keys.len() {
        0 if !certificates.is_empty() => Err(FileKeyError::CertificateOnly {
            path: origin.to_owned(),
        }),
        0 => Err(FileKeyError::NotAKey {
            path: origin.to_owned(),
        }),
        1 => {
            let key = keys.pop().ok_or_else(|| FileKeyError::NotAKey {
                path: origin.to_owned(),
            })?;
            Ok((key, certificates))
        }
        count => Err(FileKeyError::SeveralKeys {
            path: origin.to_owned(),
            count,
        }),
    }
}

fn unsupported_dsa(origin: &str) -> FileKeyError {
    FileKeyError::UnsupportedKeyType {
        path: origin.to_owned(),
        key_type: "DSA".to_owned(),
    }
}

/// What a DER file looks like.
#[derive(Debug, PartialEq, Eq)]
enum Shape {
    Key(Kind),
    Certificate,
    Tss2,
    Dsa,
}

/// The first line of a TSS2 key file in PEM.
pub const TSS2_PEM_HEADER: &[u8] = b"-----BEGIN TSS2 PRIVATE KEY-----";

/// The TCG's `id-tpmkey` arc (TSS2 key files: loadable, importable, sealed).
const TSS2_ARC: &str = "2.23.133.10.1.";

/// Recognises a DER structure by the tags of its outer SEQUENCE's elements.
fn der_shape(bytes: &[u8]) -> Option<Shape> {
    let outer = AnyRef::from_der(bytes).ok()?;
    if outer.tag() != Tag::Sequence {
        return None;
    }
    let mut reader = SliceReader::new(outer.value()).ok()?;
    let mut elements = Vec::new();
    while !reader.is_finished() {
        elements.push(AnyRef::decode(&mut reader).ok()?);
    }
    let tags: Vec<Tag> = elements.iter().map(AnyRef::tag).collect();
    let small_int = |i: usize| -> Option<u8> {
        let e = elements.get(i)?;
        match (e.tag(), e.value()) {
            (Tag::Integer, [v]) => Some(*v),
            _ => None,
        }
    };
    let all_integers = |n: usize| tags.len() >= n && tags[..n].iter().all(|t| *t == Tag::Integer);
    match tags.as_slice() {
        // PrivateKeyInfo ::= SEQUENCE { version (0 or 1), AlgorithmIdentifier, OCTET STRING, ...}
        [Tag::Integer, Tag::Sequence, Tag::OctetString, ..] if small_int(0)? <= 1 => {
            Some(Shape::Key(Kind::Pkcs8))
        }
        // PFX ::= SEQUENCE { version 3, ContentInfo, MacData OPTIONAL }
        [Tag::Integer, Tag::Sequence] | [Tag::Integer, Tag::Sequence, Tag::Sequence]
            if small_int(0)? == 3 =>
        {
            Some(Shape::Key(Kind::Pkcs12))
        }
        // EncryptedPrivateKeyInfo ::= SEQUENCE { AlgorithmIdentifier, OCTET STRING }
        [Tag::Sequence, Tag::OctetString] => Some(Shape::Key(Kind::EncryptedPkcs8)),
        // ECPrivateKey ::= SEQUENCE { version 1, OCTET STRING, [0] params, [1] public key }
        [Tag::Integer, Tag::OctetString, ..] if small_int(0)? == 1 => Some(Shape::Key(Kind::Sec1)),
        // Certificate ::= SEQUENCE { TBSCertificate, AlgorithmIdentifier, BIT STRING }
        [Tag::Sequence, Tag::Sequence, Tag::BitString] => Some(Shape::Certificate),
        [Tag::ObjectIdentifier, ..] => {
            let oid = elements[0].decode_as::<ObjectIdentifier>().ok()?;
            oid.to_string().starts_with(TSS2_ARC).then_some(Shape::Tss2)
        }
        // RSAPrivateKey ::= SEQUENCE { version, n, e, d, p, q, dP, dQ, qInv, ... }
        _ if all_integers(9) && small_int(0)? <= 1 => Some(Shape::Key(Kind::Pkcs1)),
        // OpenSSL's DSA private key: SEQUENCE { 0, p, q, g, y, x }
        _ if tags.len() == 6 && all_integers(6) && small_int(0)? == 0 => Some(Shape::Dsa),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_shapes() {
        // SEQUENCE { INTEGER 0, SEQUENCE {}, OCTET STRING {} }
        assert_eq!(
            der_shape(&[0x30, 0x07, 0x02, 0x01, 0x00, 0x30, 0x00, 0x04, 0x00]),
            Some(Shape::Key(Kind::Pkcs8))
        );
        // SEQUENCE { INTEGER 3, SEQUENCE {}, SEQUENCE {} }
        assert_eq!(
            der_shape(&[0x30, 0x07, 0x02, 0x01, 0x03, 0x30, 0x00, 0x30, 0x00]),
            Some(Shape::Key(Kind::Pkcs12))
        );
        // SEQUENCE { SEQUENCE {}, OCTET STRING {} }
        assert_eq!(
            der_shape(&[0x30, 0x04, 0x30, 0x00, 0x04, 0x00]),
            Some(Shape::Key(Kind::EncryptedPkcs8))
        );
        // SEQUENCE { INTEGER 1, OCTET STRING {} }
        assert_eq!(
            der_shape(&[0x30, 0x05, 0x02, 0x01, 0x01, 0x04, 0x00]),
            Some(Shape::Key(Kind::Sec1))
        );
        // SEQUENCE { OID 2.23.133.10.1.3 }
        assert_eq!(
            der_shape(&[0x30, 0x08, 0x06, 0x06, 0x67, 0x81, 0x05, 0x0a, 0x01, 0x03]),
            Some(Shape::Tss2)
        );
        assert_eq!(der_shape(b"hello"), None);
        assert_eq!(der_shape(&[]), None);
        // Trailing bytes after the SEQUENCE are not DER.
        assert_eq!(der_shape(&[0x30, 0x04, 0x30, 0x00, 0x04, 0x00, 0x00]), None);
    }
}
