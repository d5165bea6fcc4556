//! The small DER encodings the hardware backends share: ECDSA signatures (hardware returns
//! raw `r ‖ s`, SigV4-X509 wants DER) and RSA public keys (hardware returns modulus and
//! exponent, certificates carry PKCS#1 `RSAPublicKey`).

/// Encodes a raw `r ‖ s` ECDSA signature (both halves the same length) as DER
/// `SEQUENCE { INTEGER r, INTEGER s }`. Leading zeros are stripped and a zero byte is
/// prepended where the high bit is set, as DER INTEGERs require.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    Some(ecdsa_pair_to_der(r, s))
}

/// Encodes `r` and `s` (big-endian, any length, possibly with leading zeros stripped) as DER.
pub fn ecdsa_pair_to_der(r: &[u8], s: &[u8]) -> Vec<u8> {
    let r = der_integer(r);
    let s = der_integer(s);
    let mut out = Vec::with_capacity(r.len() + s.len() + 4);
    out.push(0x30);
    push_len(&mut out, r.len() + s.len());
    out.extend_from_slice(&r);
    out.extend_from_slice(&s);
    out
}

/// PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` in DER,
/// exactly as a certificate's SubjectPublicKeyInfo carries it. Both inputs are big-endian
/// unsigned, with or without leading zeros.
pub fn rsa_public_key_der(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let n = der_integer(modulus);
    let e = der_integer(exponent);
    let mut out = Vec::with_capacity(n.len() + e.len() + 4);
    out.push(0x30);
    push_len(&mut out, n.len() + e.len());
    out.extend_from_slice(&n);
    out.extend_from_slice(&e);
    out
}

fn der_integer(value: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = match value.iter().position(|b| *b != 0) {
        Some(i) => &value[i..],
        None => &[0],
    };
    let pad = trimmed[0] & 0x80 != 0;
    let mut out = Vec::with_capacity(trimmed.len() + 3);
    out.push(0x02);
    push_len(&mut out, trimmed.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
    out
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_zeros_and_pads_high_bit() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0;
        raw[1] = 0x7f;
        raw[32] = 0x80;
        let der = ecdsa_raw_to_der(&raw).expect("even length");
        // r: 31 bytes starting 0x7f; s: 33 bytes (0x00 pad + 32).
        assert_eq!(&der[..4], &[0x30, 2 + 31 + 2 + 33, 0x02, 31]);
        assert_eq!(der[4], 0x7f);
        assert_eq!(&der[35..38], &[0x02, 33, 0x00]);
        assert_eq!(der[38], 0x80);
    }

    #[test]
    fn p384_with_both_high_bits_set() {
        let raw = vec![0xffu8; 96];
        let der = ecdsa_raw_to_der(&raw).expect("even length");
        assert_eq!(&der[..5], &[0x30, 2 * (2 + 49), 0x02, 49, 0x00]);
        assert_eq!(der.len(), 104);
    }

    #[test]
    fn rsa_public_key_pads_high_bit_and_strips_zeros() {
        let der = rsa_public_key_der(&[0x80, 0x01], &65537u32.to_be_bytes());
        assert_eq!(
            der,
            [
                0x30, 0x0a, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x03, 0x01, 0x00, 0x01
            ]
        );
        let long = rsa_public_key_der(&[0xc0; 256], &[1, 0, 1]);
        assert_eq!(&long[..4], &[0x30, 0x82, 0x01, 0x0a]);
    }

    #[test]
    fn rsa_public_key_lengths_short_and_long() {
        // The modulus and exponent of a 1024-bit key, with CKA_MODULUS's leading-zero-free
        // encoding; the DER must add the sign byte.
        let n = [0xc0u8; 128];
        let der = rsa_public_key_der(&n, &[0x01, 0x00, 0x01]);
        assert_eq!(&der[..4], &[0x30, 0x81, 0x89, 0x02]);
        assert_eq!(&der[4..7], &[0x81, 0x81, 0x00]);
        assert_eq!(&der[der.len() - 5..], &[0x02, 0x03, 0x01, 0x00, 0x01]);
        // 2048-bit: long-form lengths.
        let der = rsa_public_key_der(&[0x80; 256], &[0x00, 0x01, 0x00, 0x01]);
        assert_eq!(&der[..8], &[0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01]);
        assert_eq!(&der[der.len() - 5..], &[0x02, 0x03, 0x01, 0x00, 0x01]);
    }

    #[test]
    fn zero_and_odd_inputs() {
        assert_eq!(
            ecdsa_pair_to_der(&[0, 0], &[0]),
            vec![0x30, 6, 2, 1, 0, 2, 1, 0]
        );
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_none());
    }
}
