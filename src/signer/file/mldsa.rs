//! ML-DSA private keys in PKCS#8 (FIPS 204; RFC 9881, the IETF LAMPS format), signing
//! through RustCrypto's `ml-dsa`.
//!
//! The PKCS#8 `privateKey` OCTET STRING holds one of
//!
//! ```text
//! ML-DSA-xx-PrivateKey ::= CHOICE {
//!     seed        [0] IMPLICIT OCTET STRING (SIZE (32)),
//!     expandedKey OCTET STRING (SIZE (2560 | 4032 | 4896)),
//!     both        SEQUENCE { seed OCTET STRING (SIZE (32)), expandedKey OCTET STRING } }
//! ```
//!
//! The seed is the preferred form: the key is derived from it (FIPS 204 `KeyGen_internal`).
//! An expanded key alone is decoded (`skDecode`) after its coefficients are range-checked,
//! because the crate asserts on out-of-range values instead of returning an error; its
//! public key is derived from it and a test signature proves it self-consistent. In the
//! `both` form the expanded key must be the one the seed gives.
//!
//! Signing is the deterministic variant of FIPS 204 `ML-DSA.Sign` with an empty context,
//! as the Go helper signs (circl's `SignTo(…, randomized=false)`): the same string to sign
//! gives the same signature, and no random number generator is needed. Every secret buffer
//! is zeroized: the seed and DER copies here, the expanded key by the crate (its `zeroize`
//! feature).

use der::asn1::AnyRef;
use der::{Decode, Reader, SliceReader, Tag, TagNumber, Tagged};
use ml_dsa::{
    ExpandedSigningKey, ExpandedSigningKeyBytes, MlDsa44, MlDsa65, MlDsa87, MlDsaParams, Seed,
};
use zeroize::Zeroizing;

use super::FileKeyError;
use crate::cert::KeyType;
use crate::signer::SignError;

const FORMAT: &str = "ML-DSA PKCS#8 key";
const SEED_LEN: usize = 32;

/// An ML-DSA signing key of one of the three parameter sets.
pub(super) enum MlDsaKey {
    P44(Box<ExpandedSigningKey<MlDsa44>>),
    P65(Box<ExpandedSigningKey<MlDsa65>>),
    P87(Box<ExpandedSigningKey<MlDsa87>>),
}

impl MlDsaKey {
    /// The parameter set.
    pub(super) fn key_type(&self) -> KeyType {
        match self {
            MlDsaKey::P44(_) => KeyType::MlDsa44,
            MlDsaKey::P65(_) => KeyType::MlDsa65,
            MlDsaKey::P87(_) => KeyType::MlDsa87,
        }
    }

    /// Pure ML-DSA over `message`, empty context, deterministic; the FIPS 204 signature
    /// encoding.
    pub(super) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let signed = match self {
            MlDsaKey::P44(k) => sign_with(k, message),
            MlDsaKey::P65(k) => sign_with(k, message),
            MlDsaKey::P87(k) => sign_with(k, message),
        };
        signed.ok_or_else(|| SignError::MlDsa {
            key_type: self.key_type(),
        })
    }
}

fn sign_with<P: MlDsaParams>(key: &ExpandedSigningKey<P>, message: &[u8]) -> Option<Vec<u8>> {
    key.sign_deterministic(message, &[])
        .ok()
        .map(|s| s.encode().to_vec())
}

/// The three shapes of `ML-DSA-xx-PrivateKey`.
enum Form<'a> {
    Seed(&'a [u8]),
    Expanded(&'a [u8]),
    Both { seed: &'a [u8], expanded: &'a [u8] },
}

/// Builds the key of parameter set `key_type` from the PKCS#8 `privateKey` contents.
/// Returns the key and its encoded public key (the certificate's key bits).
pub(super) fn from_private_key(
    key_type: KeyType,
    private_key: &[u8],
    origin: &str,
) -> Result<(MlDsaKey, Vec<u8>), FileKeyError> {
    let form = parse_form(private_key, key_type, origin)?;
    match key_type {
        KeyType::MlDsa44 => {
            build::<MlDsa44>(&form, key_type, origin).map(|(k, p)| (MlDsaKey::P44(k), p))
        }
        KeyType::MlDsa65 => {
            build::<MlDsa65>(&form, key_type, origin).map(|(k, p)| (MlDsaKey::P65(k), p))
        }
        KeyType::MlDsa87 => {
            build::<MlDsa87>(&form, key_type, origin).map(|(k, p)| (MlDsaKey::P87(k), p))
        }
        other => Err(malformed(origin, format!("{other} is not an ML-DSA key"))),
    }
}

fn parse_form<'a>(
    private_key: &'a [u8],
    key_type: KeyType,
    origin: &str,
) -> Result<Form<'a>, FileKeyError> {
    let bad = |e: der::Error| {
        malformed(
            origin,
            format!("the {key_type} private key is not a seed, an expanded key or both ({e})"),
        )
    };
    let outer = AnyRef::from_der(private_key).map_err(bad)?;
    let seed_tag = Tag::ContextSpecific {
        constructed: false,
        number: TagNumber(0),
    };
    match outer.tag() {
        t if t == seed_tag => Ok(Form::Seed(outer.value())),
        Tag::OctetString => Ok(Form::Expanded(outer.value())),
        Tag::Sequence => {
            let mut reader = SliceReader::new(outer.value()).map_err(bad)?;
            let seed = AnyRef::decode(&mut reader).map_err(bad)?;
            let expanded = AnyRef::decode(&mut reader).map_err(bad)?;
            if !reader.is_finished()
                || seed.tag() != Tag::OctetString
                || expanded.tag() != Tag::OctetString
            {
                return Err(malformed(
                    origin,
                    format!(
                        "the {key_type} private key SEQUENCE must hold exactly two OCTET STRINGs (seed, expanded key)"
                    ),
                ));
            }
            Ok(Form::Both {
                seed: seed.value(),
                expanded: expanded.value(),
            })
        }
        other => Err(malformed(
            origin,
            format!(
                "the {key_type} private key starts with {other}; expected a seed [0], an expanded key OCTET STRING or a SEQUENCE of both"
            ),
        )),
    }
}

fn build<P: MlDsaParams>(
    form: &Form<'_>,
    key_type: KeyType,
    origin: &str,
) -> Result<(Box<ExpandedSigningKey<P>>, Vec<u8>), FileKeyError> {
    let key = match *form {
        Form::Seed(seed) => {
            let seed = seed_of(seed, key_type, origin)?;
            Box::new(ExpandedSigningKey::<P>::from_seed(&seed))
        }
        Form::Expanded(expanded) => {
            let key = decode_expanded::<P>(expanded, key_type, origin)?;
            self_test(&key, key_type, origin)?;
            key
        }
        Form::Both { seed, expanded } => {
            let seed = seed_of(seed, key_type, origin)?;
            let from_seed = Box::new(ExpandedSigningKey::<P>::from_seed(&seed));
            let stored = decode_expanded::<P>(expanded, key_type, origin)?;
            // Constant-time comparison of every component (the crate's `CtEq`).
            if *from_seed != *stored {
                return Err(FileKeyError::KeyRejected {
                    path: origin.to_owned(),
                    detail: format!(
                        "its {key_type} seed and expanded key are not the same key (a corrupt or spliced file); keep only the seed"
                    ),
                });
            }
            from_seed
        }
    };
    let public = key.verifying_key().encode().to_vec();
    Ok((key, public))
}

fn seed_of(seed: &[u8], key_type: KeyType, origin: &str) -> Result<Zeroizing<Seed>, FileKeyError> {
    if seed.len() != SEED_LEN {
        return Err(malformed(
            origin,
            format!(
                "the {key_type} seed is {} bytes; FIPS 204 seeds are {SEED_LEN}",
                seed.len()
            ),
        ));
    }
    Seed::try_from(seed).map(Zeroizing::new).map_err(|_| {
        malformed(
            origin,
            format!("the {key_type} seed is not {SEED_LEN} bytes"),
        )
    })
}

/// `skDecode` of an expanded key, after checking its length and coefficient ranges.
#[allow(deprecated)] // `from_expanded` is deprecated in favour of seeds; files still carry it.
fn decode_expanded<P: MlDsaParams>(
    expanded: &[u8],
    key_type: KeyType,
    origin: &str,
) -> Result<Box<ExpandedSigningKey<P>>, FileKeyError> {
    let layout = Layout::of(key_type).ok_or_else(|| malformed(origin, "not ML-DSA"))?;
    if expanded.len() != layout.expanded_len() {
        return Err(malformed(
            origin,
            format!(
                "the {key_type} expanded key is {} bytes; it must be {}",
                expanded.len(),
                layout.expanded_len()
            ),
        ));
    }
    if !layout.secret_vectors_in_range(expanded) {
        return Err(FileKeyError::KeyRejected {
            path: origin.to_owned(),
            detail: format!(
                "its {key_type} expanded key has coefficients outside [-η, η] (not a FIPS 204 key)"
            ),
        });
    }
    let bytes = Zeroizing::new(
        ExpandedSigningKeyBytes::<P>::try_from(expanded).map_err(|_| {
            malformed(
                origin,
                format!("the {key_type} expanded key has the wrong size"),
            )
        })?,
    );
    Ok(Box::new(ExpandedSigningKey::<P>::from_expanded(&bytes)))
}

/// Signs and verifies a fixed message with the public key derived from an expanded key:
/// the key's stored `tr` (the hash of its public key) is not checked by decoding, and a
/// wrong one makes every signature invalid. Better refused here than by the service.
fn self_test<P: MlDsaParams>(
    key: &ExpandedSigningKey<P>,
    key_type: KeyType,
    origin: &str,
) -> Result<(), FileKeyError> {
    const PROBE: &[u8] = b"ra-signer ML-DSA expanded key self-test";
    let verifying = key.verifying_key();
    let good = key
        .sign_deterministic(PROBE, &[])
        .is_ok_and(|sig| verifying.verify_with_context(PROBE, &[], &sig));
    if good {
        Ok(())
    } else {
        Err(FileKeyError::KeyRejected {
            path: origin.to_owned(),
            detail: format!(
                "its {key_type} expanded key is inconsistent (its signatures do not verify under its own public key)"
            ),
        })
    }
}

/// The sizes FIPS 204 §4 (Table 1/2) gives each parameter set.
struct Layout {
    eta: u8,
    k: usize,
    l: usize,
}

impl Layout {
    fn of(key_type: KeyType) -> Option<Layout> {
        match key_type {
            KeyType::MlDsa44 => Some(Layout { eta: 2, k: 4, l: 4 }),
            KeyType::MlDsa65 => Some(Layout { eta: 4, k: 6, l: 5 }),
            KeyType::MlDsa87 => Some(Layout { eta: 2, k: 8, l: 7 }),
            _ => None,
        }
    }

    /// Bits per packed coefficient of s1 and s2: bitlen(2η).
    fn eta_bits(&self) -> usize {
        if self.eta == 2 { 3 } else { 4 }
    }

    /// ρ ‖ K ‖ tr ‖ s1 ‖ s2 ‖ t0 (32 + 32 + 64 bytes, then 256 coefficients a polynomial).
    fn expanded_len(&self) -> usize {
        128 + (self.l + self.k) * 32 * self.eta_bits() + self.k * 32 * 13
    }

    /// Whether every packed s1/s2 value is at most 2η, i.e. the coefficient η − value is
    /// in [-η, η] (FIPS 204 Algorithm 17 `BitUnpack` with a = b = η).
    fn secret_vectors_in_range(&self, expanded: &[u8]) -> bool {
        let bits = self.eta_bits();
        let count = (self.l + self.k) * 256;
        let packed = &expanded[128..128 + count * bits / 8];
        let mask = (1u16 << bits) - 1;
        (0..count).all(|i| {
            let bit = i * bits;
            let lo = u16::from(packed[bit / 8]);
            let hi = packed.get(bit / 8 + 1).map_or(0, |b| u16::from(*b));
            let value = ((lo | (hi << 8)) >> (bit % 8)) & mask;
            value <= u16::from(2 * self.eta)
        })
    }
}

fn malformed(origin: &str, detail: impl Into<String>) -> FileKeyError {
    FileKeyError::Malformed {
        path: origin.to_owned(),
        format: FORMAT,
        detail: detail.into(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ml_dsa::{EncodedVerifyingKey, Signature, VerifyingKey};

    /// The public key (`pkEncode` bytes) is what the certificate carries; a key decodes from
    /// any correctly sized byte string, so only the size can be wrong.
    fn verifying_key_from_bits<P: MlDsaParams>(bits: &[u8]) -> Option<VerifyingKey<P>> {
        EncodedVerifyingKey::<P>::try_from(bits)
            .ok()
            .map(|enc| VerifyingKey::<P>::decode(&enc))
    }

    /// Verifies a pure ML-DSA signature (empty context) of `key_type` by its encoded public
    /// key.
    pub(crate) fn verify(
        key_type: KeyType,
        public: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        fn with<P: MlDsaParams>(public: &[u8], message: &[u8], signature: &[u8]) -> bool {
            let (Some(key), Ok(sig)) = (
                verifying_key_from_bits::<P>(public),
                Signature::<P>::try_from(signature),
            ) else {
                return false;
            };
            key.verify_with_context(message, &[], &sig)
        }
        match key_type {
            KeyType::MlDsa44 => with::<MlDsa44>(public, message, signature),
            KeyType::MlDsa65 => with::<MlDsa65>(public, message, signature),
            KeyType::MlDsa87 => with::<MlDsa87>(public, message, signature),
            _ => false,
        }
    }

    #[test]
    fn layouts_match_fips_204_sizes() {
        assert_eq!(
            Layout::of(KeyType::MlDsa44).map(|l| l.expanded_len()),
            Some(2560)
        );
        assert_eq!(
            Layout::of(KeyType::MlDsa65).map(|l| l.expanded_len()),
            Some(4032)
        );
        assert_eq!(
            Layout::of(KeyType::MlDsa87).map(|l| l.expanded_len()),
            Some(4896)
        );
        assert!(Layout::of(KeyType::EcP256).is_none());
    }

    #[test]
    #[allow(deprecated)]
    fn range_check_accepts_real_keys_and_refuses_out_of_range() {
        for seed_byte in [0u8, 7, 0xff] {
            let seed = Seed::from([seed_byte; 32]);
            let real44 = ExpandedSigningKey::<MlDsa44>::from_seed(&seed).to_expanded();
            let real65 = ExpandedSigningKey::<MlDsa65>::from_seed(&seed).to_expanded();
            let real87 = ExpandedSigningKey::<MlDsa87>::from_seed(&seed).to_expanded();
            let (l44, l65, l87) = (
                Layout::of(KeyType::MlDsa44).expect("44"),
                Layout::of(KeyType::MlDsa65).expect("65"),
                Layout::of(KeyType::MlDsa87).expect("87"),
            );
            assert!(l44.secret_vectors_in_range(&real44));
            assert!(l65.secret_vectors_in_range(&real65));
            assert!(l87.secret_vectors_in_range(&real87));
            // 0b111 (7 > 2η = 4) as the first 3-bit value of s1.
            let mut bad44 = real44.to_vec();
            bad44[128] |= 0b111;
            assert!(!l44.secret_vectors_in_range(&bad44));
            // 0xF (15 > 2η = 8) as the last nibble of s2.
            let mut bad65 = real65.to_vec();
            let end = 128 + (5 + 6) * 32 * 4 - 1;
            bad65[end] |= 0xf0;
            assert!(!l65.secret_vectors_in_range(&bad65));
        }
    }

    fn der_octets(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match body.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(body);
        out
    }

    #[test]
    #[allow(deprecated)]
    fn the_three_forms_give_one_key_and_a_mismatch_is_refused() {
        let seed = [0x42u8; 32];
        let expanded = ExpandedSigningKey::<MlDsa65>::from_seed(&Seed::from(seed)).to_expanded();
        let seed_form = der_octets(0x80, &seed);
        let expanded_form = der_octets(0x04, &expanded);
        let mut both_body = der_octets(0x04, &seed);
        both_body.extend(der_octets(0x04, &expanded));
        let both_form = der_octets(0x30, &both_body);
        let mut publics = Vec::new();
        for form in [&seed_form, &expanded_form, &both_form] {
            let (key, public) = from_private_key(KeyType::MlDsa65, form, "t").expect("valid form");
            assert_eq!(key.key_type(), KeyType::MlDsa65);
            let sig = key.sign(b"msg").expect("sign");
            assert_eq!(sig.len(), 3309);
            assert!(verify(KeyType::MlDsa65, &public, b"msg", &sig));
            assert!(!verify(KeyType::MlDsa65, &public, b"msh", &sig));
            // Deterministic: the same message, the same signature.
            assert_eq!(key.sign(b"msg").expect("sign"), sig);
            publics.push(public);
        }
        assert!(publics.windows(2).all(|w| w[0] == w[1]));

        let other =
            ExpandedSigningKey::<MlDsa65>::from_seed(&Seed::from([0x43u8; 32])).to_expanded();
        let mut spliced = der_octets(0x04, &seed);
        spliced.extend(der_octets(0x04, &other));
        let err = from_private_key(KeyType::MlDsa65, &der_octets(0x30, &spliced), "k.pem")
            .err()
            .expect("mismatch refused");
        assert!(err.to_string().contains("not the same key"), "{err}");

        let short = der_octets(0x80, &seed[..31]);
        let err = from_private_key(KeyType::MlDsa65, &short, "k.pem")
            .err()
            .expect("short seed refused");
        assert!(err.to_string().contains("seed is 31 bytes"), "{err}");

        let truncated = der_octets(0x04, &expanded[..4000]);
        let err = from_private_key(KeyType::MlDsa65, &truncated, "k.pem")
            .err()
            .expect("truncated refused");
        assert!(err.to_string().contains("4000 bytes"), "{err}");

        // A flipped bit in tr (the public key's hash) passes decoding but not the self-test.
        let mut corrupt = expanded.to_vec();
        corrupt[70] ^= 0x01;
        let err = from_private_key(KeyType::MlDsa65, &der_octets(0x04, &corrupt), "k.pem")
            .err()
            .expect("inconsistent refused");
        assert!(err.to_string().contains("inconsistent"), "{err}");
    }
}
