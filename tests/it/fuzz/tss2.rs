//! TSS2 PRIVATE KEY files (PEM and DER) through [`TssKey::from_bytes`]; an accepted file
//! writes back (`to_der`) to the same key.

use proptest::test_runner::{TestCaseError, TestCaseResult};
use ra_signer::signer::tpm::{TssKey, is_hierarchy, parent_name};

use super::{check_message, corpus, fuzz, inputs};

const TOKENS: &[&[u8]] = &[
    b"-----BEGIN TSS2 PRIVATE KEY-----\n",
    b"\n-----END TSS2 PRIVATE KEY-----\n",
    b"\x06\x06\x67\x81\x05\x0a\x01\x03",
    b"\x06\x06\x67\x81\x05\x0a\x01\x04",
    b"\xa0\x03\x01\x01\xff",
    b"\xa4\x02\x0c\x00",
    b"\xa5\x03\x01\x01\x00",
    b"\x02\x05\x00\x81\x00\x00\x01",
    b"\x02\x04\x40\x00\x00\x01",
    b"\x04\x02\x00\x00",
];

fn property(input: &[u8]) -> TestCaseResult {
    let key = match TssKey::from_bytes(input) {
        Ok(key) => key,
        Err(e) => return check_message("the TSS2 key file error", &e.to_string()),
    };
    if !(key.parent >> 24 == 0x81 || is_hierarchy(key.parent)) {
        return Err(TestCaseError::fail(format!(
            "accepted parent {}",
            parent_name(key.parent)
        )));
    }
    for (what, tpm2b) in [("public", &key.public), ("private", &key.private)] {
        let declared = tpm2b
            .get(..2)
            .map(|s| usize::from(u16::from_be_bytes([s[0], s[1]])) + 2);
        if declared != Some(tpm2b.len()) || tpm2b.len() == 2 {
            return Err(TestCaseError::fail(format!(
                "accepted a {what} TPM2B whose size prefix is wrong"
            )));
        }
    }
    let der = key
        .to_der()
        .map_err(|e| TestCaseError::fail(format!("an accepted key does not encode: {e}")))?;
    let again = TssKey::from_der(&der)
        .map_err(|e| TestCaseError::fail(format!("the written key does not parse: {e}")))?;
    if again != key {
        return Err(TestCaseError::fail(format!(
            "the written key reads back as {again:?}, not {key:?}"
        )));
    }
    let pem = key
        .to_pem()
        .map_err(|e| TestCaseError::fail(format!("an accepted key does not encode: {e}")))?;
    if TssKey::from_bytes(pem.as_bytes()).ok().as_ref() != Some(&key) {
        return Err(TestCaseError::fail("the written PEM does not read back"));
    }
    Ok(())
}

#[test]
fn tss2_key_files() {
    let seeds = corpus("tss2").into_iter().map(|(_, b)| b).collect();
    fuzz("tss2", super::cases(3000), inputs(seeds, TOKENS), property);
}
