//! PKCS#12 (`.p12`/`.pfx`) through `p12-keystore`: the legacy kind (RC2-40 certificates,
//! 3DES key, SHA-1 MAC) and the OpenSSL 3 default (PBES2/AES-256-CBC, SHA-256 MAC).

use p12_keystore::Pkcs12Archive;
use p12_keystore::error::Error as P12Error;
use zeroize::Zeroizing;

use super::FileKeyError;
use super::key::{self, FileKey};
use crate::cert::Cert;
use crate::secret::{Secret, SecretError};
use crate::signer::Signer;

const WHAT: &str = "PKCS#12";

/// Reads the one key of a PKCS#12 file and its certificates, the key's own certificate first.
/// A file protected by the empty password opens without calling `password`.
pub(super) fn load(
    der: &[u8],
    origin: &str,
    password: &mut dyn FnMut() -> Result<Secret, SecretError>,
) -> Result<(FileKey, Vec<Cert>), FileKeyError> {
    let archive = match Pkcs12Archive::from_pkcs12(der, "") {
        Ok(archive) => archive,
        Err(_) => {
            let secret = password()?;
            Pkcs12Archive::from_pkcs12(der, secret.expose()).map_err(|e| map_error(e, origin))?
        }
    };
    let pkcs8 = match archive.keys.as_slice() {
        [] => {
            return Err(FileKeyError::NoKeyInPkcs12 {
                path: origin.to_owned(),
            });
        }
        [one] => Zeroizing::new(one.key.as_der().to_vec()),
        several => {
            return Err(FileKeyError::SeveralKeys {
                path: origin.to_owned(),
                count: several.len(),
            });
        }
    };
    let mut certificates = archive
        .certs
        .iter()
        .map(|bag| Cert::from_der(bag.cert.as_der(), origin))
        .collect::<Result<Vec<_>, _>>()?;
    // p12-keystore keeps its copy of the decrypted key in a plain Vec; drop it now.
    drop(archive);
    let signer = key::from_pkcs8(&pkcs8, origin)?;
    drop(pkcs8);
    if let Some(leaf) = certificates.iter().position(|cert| {
        cert.key_type() == signer.key_type() && cert.public_key_bits() == signer.public_key_bits()
    }) {
        let leaf = certificates.remove(leaf);
        certificates.insert(0, leaf);
    }
    Ok((signer, certificates))
}

fn map_error(error: P12Error, origin: &str) -> FileKeyError {
    match error {
        // A wrong password fails the MAC; in a file without a MAC it fails the decryption.
        P12Error::MacError(_) | P12Error::UnpadError => FileKeyError::WrongPassword {
            path: origin.to_owned(),
            format: WHAT,
        },
        P12Error::Pkcs5Error(detail) if detail.contains("decryption failed") => {
            FileKeyError::WrongPassword {
                path: origin.to_owned(),
                format: WHAT,
            }
        }
        P12Error::UnsupportedEncryptionScheme | P12Error::UnsupportedMacAlgorithm => {
            FileKeyError::UnsupportedEncryption {
                path: origin.to_owned(),
                scheme: format!("a PKCS#12 scheme this build cannot read ({error})"),
            }
        }
        other => FileKeyError::Malformed {
            path: origin.to_owned(),
            format: WHAT,
            detail: other.to_string(),
        },
    }
}
