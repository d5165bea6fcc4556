//! ECDSA signature encodings: hardware returns raw `r ‖ s`, SigV4-X509 wants DER.

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
    fn zero_and_odd_inputs() {
        assert_eq!(
            ecdsa_pair_to_der(&[0, 0], &[0]),
            vec![0x30, 6, 2, 1, 0, 2, 1, 0]
        );
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_none());
    }
}
