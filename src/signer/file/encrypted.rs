//! Encrypted PKCS#8 (`EncryptedPrivateKeyInfo`, PBES2): PBKDF2 with HMAC-SHA1/224/256/384/512
//! or scrypt, and AES-128/192/256-CBC (or 3DES-CBC).

use der::Decode;
use pkcs8::pkcs5::{self, EncryptionScheme, pbes2};
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use spki::AlgorithmIdentifierRef;
use zeroize::Zeroizing;

use super::FileKeyError;
use crate::secret::{Secret, SecretError};

const OID_PBES2: &str = "1.2.840.113549.1.5.13";
/// Above this many PBKDF2 iterations a file is refused rather than keeping the CPU busy for
/// minutes (OpenSSL writes 2048; PKCS#12 files from Java use 10000).
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// Above this much memory (128·N·r bytes) an scrypt-protected file is refused.
const MAX_SCRYPT_MEMORY: u64 = 1 << 30;

const WHAT: &str = "encrypted PKCS#8 key";

/// Decrypts `EncryptedPrivateKeyInfo` DER into `PrivateKeyInfo` DER. The scheme is checked
/// before `password` is called; a decryption failure or a plaintext that is not a
/// `PrivateKeyInfo` means the password is wrong.
pub(super) fn decrypt(
    der: &[u8],
    origin: &str,
    password: &mut dyn FnMut() -> Result<Secret, SecretError>,
) -> Result<Zeroizing<Vec<u8>>, FileKeyError> {
    let unsupported = |scheme: String| FileKeyError::UnsupportedEncryption {
        path: origin.to_owned(),
        scheme,
    };
    let scheme_oid = scheme_oid(der).ok_or_else(|| FileKeyError::Malformed {
        path: origin.to_owned(),
        format: WHAT,
        detail: "no encryption algorithm identifier".to_owned(),
    })?;
    if scheme_oid != OID_PBES2 {
        return Err(unsupported(scheme_name(&scheme_oid)));
    }
    let info = EncryptedPrivateKeyInfoRef::from_der(der)
        .map_err(|e| unsupported(format!("PBES2 parameters this build cannot read ({e})")))?;
    let EncryptionScheme::Pbes2(params) = &info.encryption_algorithm else {
        return Err(unsupported("PBES1".to_owned()));
    };
    check_cost(params).map_err(unsupported)?;

    let secret = password()?;
    let mut buffer = Zeroizing::new(info.encrypted_data.as_bytes().to_vec());
    let plaintext = match params.decrypt_in_place(secret.expose().as_bytes(), &mut buffer) {
        Ok(plain) => Zeroizing::new(plain.to_vec()),
        Err(pkcs5::Error::DecryptFailed) => return Err(wrong_password(origin)),
        Err(pkcs5::Error::UnsupportedAlgorithm { oid }) => {
            return Err(unsupported(format!("PBES2 with algorithm {oid}")));
        }
        Err(e) => {
            return Err(FileKeyError::Malformed {
                path: origin.to_owned(),
                format: WHAT,
                detail: e.to_string(),
            });
        }
    };
    drop(buffer);
    drop(secret);
    // Right padding with the wrong key happens (about 1 in 256): the content then is noise.
    if PrivateKeyInfoRef::from_der(&plaintext).is_err() {
        return Err(wrong_password(origin));
    }
    Ok(plaintext)
}

fn wrong_password(origin: &str) -> FileKeyError {
    FileKeyError::WrongPassword {
        path: origin.to_owned(),
        format: WHAT,
    }
}

/// The OID of the `encryptionAlgorithm`, read without knowing the scheme.
fn scheme_oid(der: &[u8]) -> Option<String> {
    let outer = der::asn1::AnyRef::from_der(der).ok()?;
    let mut reader = der::SliceReader::new(outer.value()).ok()?;
    let algorithm: AlgorithmIdentifierRef<'_> = Decode::decode(&mut reader).ok()?;
    Some(algorithm.oid.to_string())
}

/// Names the legacy schemes OpenSSL can still write (`openssl pkcs8 -topk8 -v1 ...`).
pub(super) fn scheme_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.5.1" => "PBES1 pbeWithMD2AndDES-CBC".to_owned(),
        "1.2.840.113549.1.5.3" => "PBES1 pbeWithMD5AndDES-CBC".to_owned(),
        "1.2.840.113549.1.5.4" => "PBES1 pbeWithMD2AndRC2-CBC".to_owned(),
        "1.2.840.113549.1.5.6" => "PBES1 pbeWithMD5AndRC2-CBC".to_owned(),
        "1.2.840.113549.1.5.10" => "PBES1 pbeWithSHA1AndDES-CBC".to_owned(),
        "1.2.840.113549.1.5.11" => "PBES1 pbeWithSHA1AndRC2-CBC".to_owned(),
        "1.2.840.113549.1.12.1.1" => "PKCS#12 pbeWithSHAAnd128BitRC4".to_owned(),
        "1.2.840.113549.1.12.1.2" => "PKCS#12 pbeWithSHAAnd40BitRC4".to_owned(),
        "1.2.840.113549.1.12.1.3" => "PKCS#12 pbeWithSHAAnd3-KeyTripleDES-CBC".to_owned(),
        "1.2.840.113549.1.12.1.4" => "PKCS#12 pbeWithSHAAnd2-KeyTripleDES-CBC".to_owned(),
        "1.2.840.113549.1.12.1.5" => "PKCS#12 pbeWithSHAAnd128BitRC2-CBC".to_owned(),
        "1.2.840.113549.1.12.1.6" => "PKCS#12 pbeWithSHAAnd40BitRC2-CBC".to_owned(),
        other => format!("the scheme {other}"),
    }
}

/// Refuses key-derivation costs that would hang or exhaust memory.
pub(super) fn check_cost(params: &pbes2::Parameters) -> Result<(), String> {
    match &params.kdf {
        pbes2::Kdf::Pbkdf2(p) if p.iteration_count > MAX_PBKDF2_ITERATIONS => Err(format!(
            "PBKDF2 with {} iterations (at most {MAX_PBKDF2_ITERATIONS} accepted)",
            p.iteration_count
        )),
        pbes2::Kdf::Scrypt(s) => {
            let memory = 128u64
                .checked_mul(s.cost_parameter)
                .and_then(|m| m.checked_mul(u64::from(s.block_size)));
            match memory {
                Some(m) if m <= MAX_SCRYPT_MEMORY => Ok(()),
                _ => Err(format!(
                    "scrypt with N={} r={} (needs more than 1 GiB of memory)",
                    s.cost_parameter, s.block_size
                )),
            }
        }
        _ => Ok(()),
    }
}
