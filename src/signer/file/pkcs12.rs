//! PKCS#12 (`.p12`/`.pfx`, RFC 7292) read with `der` and `pkcs5`: the OpenSSL 3 default
//! (PBES2 with PBKDF2 and AES-CBC, HMAC-SHA-256 MAC) and the legacy kind
//! `openssl pkcs12 -legacy` writes (pbeWithSHAAnd40BitRC2-CBC certificates,
//! pbeWithSHAAnd3-KeyTripleDES-CBC key, HMAC-SHA-1 MAC). Other schemes are refused by name.
//!
//! `PFX → AuthenticatedSafe → SafeContents → {ShroudedKeyBag, KeyBag, CertBag}`: the MAC is
//! checked before anything is decrypted, and whatever is decrypted lives in a
//! [`Zeroizing`] buffer. What an attacker controls is bounded: the KDF iterations, the number
//! of decryptions and the nesting of `SafeContents` bags; DER lengths are checked by `der`
//! against the input, which [`crate::input`] bounds.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, InnerIvInit, KeyIvInit};
use der::asn1::{AnyRef, ObjectIdentifier, OctetStringRef};
use der::{Decode, Sequence};
use hmac::digest::Digest;
use hmac::digest::block_api::BlockSizeUser;
use hmac::{KeyInit, Mac, SimpleHmac};
use pkcs8::PrivateKeyInfoRef;
use pkcs8::pkcs5::{self, pbes2};
use spki::AlgorithmIdentifierRef;
use zeroize::Zeroizing;

use super::FileKeyError;
use super::key::{self, FileKey};
use crate::cert::Cert;
use crate::secret::{Secret, SecretError};
use crate::signer::Signer;

const WHAT: &str = "PKCS#12";

const OID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const OID_ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const OID_KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.1");
const OID_SHROUDED_KEY_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.2");
const OID_CERT_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.3");
const OID_SAFE_CONTENTS_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.6");
const OID_X509_CERTIFICATE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
const OID_PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
const OID_PBMAC1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.14");
const OID_PBE_SHA1_3DES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.3");
const OID_PBE_SHA1_RC2_40: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.6");
const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA224: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.4");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// Above this many iterations of the PKCS#12 key derivation (MAC key, legacy ciphers) a file
/// is refused rather than keeping the CPU busy (OpenSSL writes 2048, Java 10000 to 100000).
const MAX_KDF_ITERATIONS: u32 = 1_000_000;
/// At most this many encrypted parts are decrypted: each costs a key derivation.
const MAX_DECRYPTIONS: usize = 8;
/// `SafeContents` bags nested deeper than this are refused (real files do not nest them).
const MAX_NESTING: usize = 4;

/// `PFX ::= SEQUENCE { version INTEGER {v3(3)}, authSafe ContentInfo, macData MacData OPTIONAL }`
#[derive(Sequence)]
struct Pfx<'a> {
    version: u8,
    auth_safe: ContentInfo<'a>,
    mac_data: Option<MacData<'a>>,
}

/// `ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY OPTIONAL }` (CMS).
#[derive(Sequence)]
struct ContentInfo<'a> {
    content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    content: Option<AnyRef<'a>>,
}

/// `MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }`
#[derive(Sequence)]
struct MacData<'a> {
    mac: DigestInfo<'a>,
    mac_salt: &'a OctetStringRef,
    #[asn1(default = "default_mac_iterations")]
    iterations: u32,
}

fn default_mac_iterations() -> u32 {
    1
}

/// `DigestInfo ::= SEQUENCE { digestAlgorithm AlgorithmIdentifier, digest OCTET STRING }`
#[derive(Sequence)]
struct DigestInfo<'a> {
    algorithm: AlgorithmIdentifierRef<'a>,
    digest: &'a OctetStringRef,
}

/// `EncryptedData ::= SEQUENCE { version INTEGER (0), encryptedContentInfo }` (CMS).
#[derive(Sequence)]
struct EncryptedData<'a> {
    version: u8,
    content_info: EncryptedContentInfo<'a>,
}

/// `EncryptedContentInfo ::= SEQUENCE { contentType OID, contentEncryptionAlgorithm
/// AlgorithmIdentifier, encryptedContent [0] IMPLICIT OCTET STRING OPTIONAL }` (CMS).
#[derive(Sequence)]
struct EncryptedContentInfo<'a> {
    content_type: ObjectIdentifier,
    algorithm: AlgorithmIdentifierRef<'a>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    encrypted_content: Option<&'a OctetStringRef>,
}

/// `SafeBag ::= SEQUENCE { bagId OID, bagValue [0] EXPLICIT ANY, bagAttributes SET OPTIONAL }`
#[derive(Sequence)]
struct SafeBag<'a> {
    bag_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    bag_value: AnyRef<'a>,
    bag_attributes: Option<AnyRef<'a>>,
}

/// `CertBag ::= SEQUENCE { certId OID, certValue [0] EXPLICIT ANY }`
#[derive(Sequence)]
struct CertBag<'a> {
    cert_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    cert_value: AnyRef<'a>,
}

/// `EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm, encryptedData OCTET STRING }`
#[derive(Sequence)]
struct EncryptedPrivateKeyInfo<'a> {
    algorithm: AlgorithmIdentifierRef<'a>,
    encrypted_data: &'a OctetStringRef,
}

/// `pkcs-12PbeParams ::= SEQUENCE { salt OCTET STRING, iterations INTEGER }`
#[derive(Sequence)]
struct PbeParams<'a> {
    salt: &'a OctetStringRef,
    iterations: u32,
}

/// Reads the one key of a PKCS#12 file and its certificates, the key's own certificate first.
/// A file protected by the empty password opens without calling `password`.
pub(super) fn load(
    der: &[u8],
    origin: &str,
    password: &mut dyn FnMut() -> Result<Secret, SecretError>,
) -> Result<(FileKey, Vec<Cert>), FileKeyError> {
    let contents = open(der, password).map_err(|failure| failure.into_error(origin))?;
    let Contents { mut keys, certs } = contents;
    let pkcs8 = match keys.len() {
        0 => {
            return Err(FileKeyError::NoKeyInPkcs12 {
                path: origin.to_owned(),
            });
        }
        1 => keys.remove(0),
        count => {
            return Err(FileKeyError::SeveralKeys {
                path: origin.to_owned(),
                count,
            });
        }
    };
    let signer = key::from_pkcs8(&pkcs8, origin)?;
    drop(pkcs8);
    let mut certificates = certs
        .iter()
        .map(|der| Cert::from_der(der, origin))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(leaf) = certificates.iter().position(|cert| {
        cert.key_type() == signer.key_type() && cert.public_key_bits() == signer.public_key_bits()
    }) {
        let leaf = certificates.remove(leaf);
        certificates.insert(0, leaf);
    }
    Ok((signer, certificates))
}

/// Why a PKCS#12 file could not be read, before it is told in terms of the file.
#[derive(Debug)]
enum Failure {
    /// A part does not decrypt (bad padding, or noise where DER was expected): without a MAC
    /// that proved the password, the password is wrong.
    Undecryptable,
    /// The MAC refuses the password and no encrypted part decrypts with it.
    WrongPassword,
    /// The MAC refuses the password although an encrypted part decrypts with it.
    Altered,
    /// A scheme this reader does not implement, named.
    Unsupported(String),
    /// Broken structure or a limit exceeded.
    Malformed(String),
    /// The password could not be had.
    Password(SecretError),
}

impl Failure {
    fn into_error(self, origin: &str) -> FileKeyError {
        let path = origin.to_owned();
        match self {
            Failure::Undecryptable | Failure::WrongPassword => {
                FileKeyError::WrongPassword { path, format: WHAT }
            }
            Failure::Altered => FileKeyError::Malformed {
                path,
                format: WHAT,
                detail: "its integrity check (MAC) fails although the password decrypts it: \
                         the file was altered or damaged"
                    .to_owned(),
            },
            Failure::Unsupported(scheme) => FileKeyError::UnsupportedEncryption { path, scheme },
            Failure::Malformed(detail) => FileKeyError::Malformed {
                path,
                format: WHAT,
                detail,
            },
            Failure::Password(source) => FileKeyError::Password(source),
        }
    }
}

fn malformed(what: &str) -> impl Fn(der::Error) -> Failure + '_ {
    move |e| Failure::Malformed(format!("{what}: {e}"))
}

/// A password in the two encodings PKCS#12 uses: UTF-8 for PBES2 (as OpenSSL does), and
/// big-endian UTF-16 with a terminating NUL for its own key derivation (RFC 7292 B.1).
struct Password {
    utf8: Zeroizing<Vec<u8>>,
    bmp: Zeroizing<Vec<u8>>,
}

impl Password {
    fn new(text: &str) -> Self {
        let mut bmp = Zeroizing::new(Vec::with_capacity(2 * text.len() + 2));
        for unit in text.encode_utf16().chain([0]) {
            bmp.extend_from_slice(&unit.to_be_bytes());
        }
        Password {
            utf8: Zeroizing::new(text.as_bytes().to_vec()),
            bmp,
        }
    }

    /// The empty password as OpenSSL writes it (a lone NUL), then as some other writers do
    /// (no bytes at all); OpenSSL's own reader tries both.
    fn empty_candidates() -> [Password; 2] {
        [
            Password::new(""),
            Password {
                utf8: Zeroizing::new(Vec::new()),
                bmp: Zeroizing::new(Vec::new()),
            },
        ]
    }
}

/// Parses the file, finds the password (the empty one first, then `ask`) and reads the bags.
fn open(
    der: &[u8],
    ask: &mut dyn FnMut() -> Result<Secret, SecretError>,
) -> Result<Contents, Failure> {
    let pfx = Pfx::from_der(der).map_err(malformed("PFX"))?;
    if pfx.version != 3 {
        return Err(Failure::Malformed(format!(
            "PFX version {} (3 expected)",
            pfx.version
        )));
    }
    let auth_safe_der = data_octets(&pfx.auth_safe)?;
    let safes =
        Vec::<ContentInfo<'_>>::from_der(auth_safe_der).map_err(malformed("AuthenticatedSafe"))?;
    let given = |ask: &mut dyn FnMut() -> Result<Secret, SecretError>| {
        ask()
            .map(|secret| Password::new(secret.expose()))
            .map_err(Failure::Password)
    };

    let Some(mac_data) = &pfx.mac_data else {
        // Without a MAC only decryption can tell a wrong password.
        for empty in Password::empty_candidates() {
            match Contents::read(&safes, &empty) {
                Err(Failure::Undecryptable) => {}
                other => return other,
            }
        }
        return Contents::read(&safes, &given(ask)?);
    };
    let mac = MacCheck::parse(mac_data, auth_safe_der)?;
    let password = match Password::empty_candidates()
        .into_iter()
        .find(|candidate| mac.matches(candidate))
    {
        Some(empty) => empty,
        None => {
            let password = given(ask)?;
            if !mac.matches(&password) {
                return Err(if decrypts_any_part(&safes, &password) {
                    Failure::Altered
                } else {
                    Failure::WrongPassword
                });
            }
            password
        }
    };
    Contents::read(&safes, &password).map_err(|failure| match failure {
        Failure::Undecryptable => Failure::Malformed(
            "a part does not decrypt with the password its MAC accepts".to_owned(),
        ),
        other => other,
    })
}

/// Whether `password` decrypts at least one encrypted part, each part tried on its own (all
/// within one decryption budget); what is decrypted here is only counted, never used.
fn decrypts_any_part(safes: &[ContentInfo<'_>], password: &Password) -> bool {
    let mut reader = Reader::new(password);
    safes.iter().any(|safe| {
        let before = reader.decrypted;
        reader.content_info(safe).is_ok() && reader.decrypted > before
    })
}

/// The octets of a `ContentInfo` of type `data`.
fn data_octets<'a>(info: &ContentInfo<'a>) -> Result<&'a [u8], Failure> {
    if info.content_type != OID_DATA {
        return Err(Failure::Unsupported(format!(
            "a PKCS#12 content of type {} (only data and encryptedData are read)",
            info.content_type
        )));
    }
    let content = info
        .content
        .ok_or_else(|| Failure::Malformed("a data ContentInfo without content".to_owned()))?;
    let octets: &'a OctetStringRef = content.decode_as().map_err(malformed("data content"))?;
    Ok(octets.as_bytes())
}

/// The MAC of a PFX, ready to check passwords against.
struct MacCheck<'a> {
    digest: MacDigest,
    salt: &'a [u8],
    iterations: u32,
    expected: &'a [u8],
    data: &'a [u8],
}

#[derive(Clone, Copy)]
enum MacDigest {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl<'a> MacCheck<'a> {
    fn parse(mac_data: &MacData<'a>, data: &'a [u8]) -> Result<Self, Failure> {
        let digest = match mac_data.mac.algorithm.oid {
            OID_SHA1 => MacDigest::Sha1,
            OID_SHA224 => MacDigest::Sha224,
            OID_SHA256 => MacDigest::Sha256,
            OID_SHA384 => MacDigest::Sha384,
            OID_SHA512 => MacDigest::Sha512,
            OID_PBMAC1 => {
                return Err(Failure::Unsupported(
                    "a PKCS#12 integrity check by PBMAC1 (RFC 9579)".to_owned(),
                ));
            }
            other => {
                return Err(Failure::Unsupported(format!(
                    "a PKCS#12 integrity check by the digest {other}"
                )));
            }
        };
        check_iterations(mac_data.iterations)?;
        Ok(MacCheck {
            digest,
            salt: mac_data.mac_salt.as_bytes(),
            iterations: mac_data.iterations,
            expected: mac_data.mac.digest.as_bytes(),
            data,
        })
    }

    fn matches(&self, password: &Password) -> bool {
        match self.digest {
            MacDigest::Sha1 => self.matches_with::<sha1::Sha1>(password),
            MacDigest::Sha224 => self.matches_with::<sha2::Sha224>(password),
            MacDigest::Sha256 => self.matches_with::<sha2::Sha256>(password),
            MacDigest::Sha384 => self.matches_with::<sha2::Sha384>(password),
            MacDigest::Sha512 => self.matches_with::<sha2::Sha512>(password),
        }
    }

    fn matches_with<D: Digest + BlockSizeUser>(&self, password: &Password) -> bool {
        let key = kdf::<D>(
            &password.bmp,
            self.salt,
            KdfPurpose::Mac,
            self.iterations,
            <D as Digest>::output_size(),
        );
        let Ok(mut mac) = <SimpleHmac<D> as KeyInit>::new_from_slice(&key) else {
            return false;
        };
        mac.update(self.data);
        mac.verify_slice(self.expected).is_ok()
    }
}

fn check_iterations(iterations: u32) -> Result<(), Failure> {
    match iterations {
        0 => Err(Failure::Malformed(
            "an iteration count of 0 in its key derivation".to_owned(),
        )),
        n if n > MAX_KDF_ITERATIONS => Err(Failure::Unsupported(format!(
            "a PKCS#12 key derivation with {n} iterations (at most {MAX_KDF_ITERATIONS} accepted)"
        ))),
        _ => Ok(()),
    }
}

/// What the bags held: PKCS#8 keys (decrypted, zeroized on drop) and certificate DER.
struct Contents {
    keys: Vec<Zeroizing<Vec<u8>>>,
    certs: Vec<Vec<u8>>,
}

impl Contents {
    fn read(safes: &[ContentInfo<'_>], password: &Password) -> Result<Contents, Failure> {
        let mut reader = Reader::new(password);
        for safe in safes {
            reader.content_info(safe)?;
        }
        Ok(reader.contents)
    }
}

/// Walks the bags with one password, counting what it decrypts.
struct Reader<'p> {
    password: &'p Password,
    /// Decryptions tried, failed ones included: each costs a key derivation.
    attempts: usize,
    /// Decryptions that succeeded.
    decrypted: usize,
    contents: Contents,
}

impl<'p> Reader<'p> {
    fn new(password: &'p Password) -> Self {
        Reader {
            password,
            attempts: 0,
            decrypted: 0,
            contents: Contents {
                keys: Vec::new(),
                certs: Vec::new(),
            },
        }
    }

    /// One element of the `AuthenticatedSafe`: plain (`data`) or encrypted `SafeContents`.
    fn content_info(&mut self, info: &ContentInfo<'_>) -> Result<(), Failure> {
        if info.content_type != OID_ENCRYPTED_DATA {
            let bags = Vec::<SafeBag<'_>>::from_der(data_octets(info)?)
                .map_err(malformed("SafeContents"))?;
            return self.bags(&bags, 0);
        }
        let content = info
            .content
            .ok_or_else(|| Failure::Malformed("an encryptedData without content".to_owned()))?;
        let encrypted: EncryptedData<'_> =
            content.decode_as().map_err(malformed("encryptedData"))?;
        if encrypted.version != 0 {
            return Err(Failure::Malformed(format!(
                "encryptedData version {} (0 expected)",
                encrypted.version
            )));
        }
        let inner = &encrypted.content_info;
        if inner.content_type != OID_DATA {
            return Err(Failure::Malformed(format!(
                "encrypted content of type {} (data expected)",
                inner.content_type
            )));
        }
        let Some(ciphertext) = inner.encrypted_content else {
            return Ok(());
        };
        let plain = self.decrypt(&inner.algorithm, ciphertext.as_bytes())?;
        // Noise where SafeContents should be: the key was wrong and the padding looked right.
        let bags = Vec::<SafeBag<'_>>::from_der(&plain).map_err(|_| Failure::Undecryptable)?;
        self.bags(&bags, 0)
    }

    fn bags(&mut self, bags: &[SafeBag<'_>], depth: usize) -> Result<(), Failure> {
        for bag in bags {
            match bag.bag_id {
                OID_KEY_BAG => {
                    let key = Zeroizing::new(
                        der::Encode::to_der(&bag.bag_value).map_err(malformed("keyBag"))?,
                    );
                    PrivateKeyInfoRef::from_der(&key).map_err(malformed("keyBag"))?;
                    self.contents.keys.push(key);
                }
                OID_SHROUDED_KEY_BAG => {
                    let shrouded: EncryptedPrivateKeyInfo<'_> = bag
                        .bag_value
                        .decode_as()
                        .map_err(malformed("pkcs8ShroudedKeyBag"))?;
                    let plain =
                        self.decrypt(&shrouded.algorithm, shrouded.encrypted_data.as_bytes())?;
                    // Right padding with the wrong key happens (about 1 in 256).
                    if PrivateKeyInfoRef::from_der(&plain).is_err() {
                        return Err(Failure::Undecryptable);
                    }
                    self.contents.keys.push(plain);
                }
                OID_CERT_BAG => {
                    let cert: CertBag<'_> =
                        bag.bag_value.decode_as().map_err(malformed("certBag"))?;
                    // Other certificate types (SDSI) are not X.509: nothing to use.
                    if cert.cert_id == OID_X509_CERTIFICATE {
                        let der: &OctetStringRef = cert
                            .cert_value
                            .decode_as()
                            .map_err(malformed("x509Certificate"))?;
                        self.contents.certs.push(der.as_bytes().to_vec());
                    }
                }
                OID_SAFE_CONTENTS_BAG => {
                    if depth >= MAX_NESTING {
                        return Err(Failure::Malformed(format!(
                            "SafeContents nested more than {MAX_NESTING} deep"
                        )));
                    }
                    let inner: Vec<SafeBag<'_>> = bag
                        .bag_value
                        .decode_as()
                        .map_err(malformed("safeContentsBag"))?;
                    self.bags(&inner, depth + 1)?;
                }
                // CRL and secret bags, and bags from later standards: nothing a signer uses.
                _ => {}
            }
        }
        Ok(())
    }

    /// Decrypts one encrypted part (a shrouded key or an encrypted `SafeContents`).
    fn decrypt(
        &mut self,
        algorithm: &AlgorithmIdentifierRef<'_>,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Failure> {
        if self.attempts >= MAX_DECRYPTIONS {
            return Err(Failure::Malformed(format!(
                "more than {MAX_DECRYPTIONS} encrypted parts"
            )));
        }
        self.attempts += 1;
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let plain_len = match algorithm.oid {
            OID_PBES2 => self.pbes2(algorithm, &mut buffer)?,
            OID_PBE_SHA1_3DES => self.legacy(algorithm, LegacyCipher::TripleDes, &mut buffer)?,
            OID_PBE_SHA1_RC2_40 => {
                self.legacy(algorithm, LegacyCipher::Rc2With40Bits, &mut buffer)?
            }
            other => {
                return Err(Failure::Unsupported(super::encrypted::scheme_name(
                    &other.to_string(),
                )));
            }
        };
        // Decryption is in place: the plaintext is the start of the buffer, and the rest
        // (padding) is zeroized with it.
        buffer.truncate(plain_len);
        self.decrypted += 1;
        Ok(buffer)
    }

    fn pbes2(
        &self,
        algorithm: &AlgorithmIdentifierRef<'_>,
        buffer: &mut [u8],
    ) -> Result<usize, Failure> {
        let parameters = algorithm
            .parameters
            .ok_or_else(|| Failure::Malformed("PBES2 without parameters".to_owned()))?;
        let parameters = pbes2::Parameters::try_from(parameters).map_err(|e| {
            Failure::Unsupported(format!("PBES2 parameters this build cannot read ({e})"))
        })?;
        super::encrypted::check_cost(&parameters).map_err(Failure::Unsupported)?;
        match parameters.decrypt_in_place(self.password.utf8.as_slice(), buffer) {
            Ok(plain) => Ok(plain.len()),
            Err(pkcs5::Error::DecryptFailed) => Err(Failure::Undecryptable),
            Err(pkcs5::Error::UnsupportedAlgorithm { oid }) => {
                Err(Failure::Unsupported(format!("PBES2 with algorithm {oid}")))
            }
            Err(e) => Err(Failure::Malformed(format!("PBES2: {e}"))),
        }
    }

    /// RFC 7292 appendix C: SHA-1 derives the key and IV from the password.
    fn legacy(
        &self,
        algorithm: &AlgorithmIdentifierRef<'_>,
        cipher: LegacyCipher,
        buffer: &mut [u8],
    ) -> Result<usize, Failure> {
        let parameters: PbeParams<'_> = algorithm
            .parameters
            .ok_or_else(|| Failure::Malformed("PKCS#12 PBE without parameters".to_owned()))?
            .decode_as()
            .map_err(malformed("PKCS#12 PBE parameters"))?;
        check_iterations(parameters.iterations)?;
        let derive = |purpose, len| {
            kdf::<sha1::Sha1>(
                &self.password.bmp,
                parameters.salt.as_bytes(),
                purpose,
                parameters.iterations,
                len,
            )
        };
        let iv = derive(KdfPurpose::Iv, 8);
        let bad_length = |_| Failure::Malformed("PKCS#12 PBE key or IV length".to_owned());
        let plain = match cipher {
            LegacyCipher::TripleDes => {
                let key = derive(KdfPurpose::Key, 24);
                cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
                    .map_err(bad_length)?
                    .decrypt_padded::<Pkcs7>(buffer)
            }
            LegacyCipher::Rc2With40Bits => {
                let key = derive(KdfPurpose::Key, 5);
                let rc2 = rc2::Rc2::new_with_eff_key_len(&key, 40);
                cbc::Decryptor::<rc2::Rc2>::inner_iv_slice_init(rc2, &iv)
                    .map_err(bad_length)?
                    .decrypt_padded::<Pkcs7>(buffer)
            }
        };
        plain.map(<[u8]>::len).map_err(|_| Failure::Undecryptable)
    }
}

#[derive(Clone, Copy)]
enum LegacyCipher {
    TripleDes,
    Rc2With40Bits,
}

/// The diversifier `ID` of RFC 7292 B.3.
#[derive(Clone, Copy)]
pub(super) enum KdfPurpose {
    Key = 1,
    Iv = 2,
    Mac = 3,
}

/// The PKCS#12 key derivation (RFC 7292 appendix B.2) of `len` bytes from `password` (already
/// in its BMPString form), every intermediate zeroized.
pub(super) fn kdf<D: Digest + BlockSizeUser>(
    password: &[u8],
    salt: &[u8],
    purpose: KdfPurpose,
    iterations: u32,
    len: usize,
) -> Zeroizing<Vec<u8>> {
    let v = <D as BlockSizeUser>::block_size();
    let repeat_to_blocks = |source: &[u8], into: &mut Vec<u8>| {
        let total = v * source.len().div_ceil(v);
        into.extend(source.iter().cycle().take(total));
    };
    let mut input = Zeroizing::new(Vec::with_capacity(
        v * (salt.len().div_ceil(v) + password.len().div_ceil(v)),
    ));
    repeat_to_blocks(salt, &mut input);
    repeat_to_blocks(password, &mut input);
    let diversifier = vec![purpose as u8; v];

    let mut out = Zeroizing::new(Vec::with_capacity(len + <D as Digest>::output_size()));
    let mut block = Zeroizing::new(vec![0u8; v]);
    loop {
        let mut hash = D::new();
        hash.update(&diversifier);
        hash.update(input.as_slice());
        let mut a = Zeroizing::new(hash.finalize());
        for _ in 1..iterations {
            let next = Zeroizing::new(D::digest(a.as_slice()));
            a.copy_from_slice(next.as_slice());
        }
        let wanted = (len - out.len()).min(a.len());
        out.extend_from_slice(&a[..wanted]);
        if out.len() == len {
            return out;
        }
        // I_j = (I_j + B + 1) mod 2^(8v), B being A repeated to v bytes.
        for (b, a) in block.iter_mut().zip(a.iter().cycle()) {
            *b = *a;
        }
        for chunk in input.chunks_mut(v) {
            let mut carry = 1u16;
            for (i, b) in chunk.iter_mut().zip(block.iter()).rev() {
                let sum = u16::from(*i) + u16::from(*b) + carry;
                *i = sum.to_le_bytes()[0];
                carry = sum >> 8;
            }
        }
    }
}

/// A PKCS#12 writer for files `openssl pkcs12` cannot make (bag orders, nesting, hostile
/// lengths and counts): one `data` `SafeContents`, an HMAC-SHA-256 MAC.
#[cfg(test)]
pub(super) mod testing {
    use der::Encode;
    use der::asn1::OctetString;

    use super::*;

    /// A bag of `kind` holding `value` (the DER of the bag's content).
    pub(in super::super) struct Bag {
        kind: ObjectIdentifier,
        value: Vec<u8>,
    }

    impl Bag {
        pub(in super::super) fn certificate(der: &[u8]) -> Bag {
            let octets = OctetString::new(der)
                .expect("octets")
                .to_der()
                .expect("DER");
            let cert_bag = CertBag {
                cert_id: OID_X509_CERTIFICATE,
                cert_value: AnyRef::from_der(&octets).expect("any"),
            };
            Bag {
                kind: OID_CERT_BAG,
                value: cert_bag.to_der().expect("DER"),
            }
        }

        /// `encrypted_pkcs8`: `EncryptedPrivateKeyInfo` DER.
        pub(in super::super) fn shrouded_key(encrypted_pkcs8: &[u8]) -> Bag {
            Bag {
                kind: OID_SHROUDED_KEY_BAG,
                value: encrypted_pkcs8.to_vec(),
            }
        }

        pub(in super::super) fn nested(bags: &[Bag]) -> Bag {
            Bag {
                kind: OID_SAFE_CONTENTS_BAG,
                value: safe_contents(bags),
            }
        }
    }

    /// `SafeContents` DER holding `bags` in order.
    pub(in super::super) fn safe_contents(bags: &[Bag]) -> Vec<u8> {
        let bags = bags
            .iter()
            .map(|bag| SafeBag {
                bag_id: bag.kind,
                bag_value: AnyRef::from_der(&bag.value).expect("bag DER"),
                bag_attributes: None,
            })
            .collect::<Vec<_>>();
        bags.to_der().expect("DER")
    }

    /// A PFX whose one `data` part holds `safe_contents` (any bytes), with a MAC of
    /// `mac_iterations` under `password` (a zero MAC above what the reader accepts).
    pub(in super::super) fn pfx(
        safe_contents: &[u8],
        password: &str,
        mac_iterations: u32,
    ) -> Vec<u8> {
        pfx_of_parts(&[safe_contents], password, mac_iterations)
    }

    /// [`pfx`] with one `data` part per element of `parts`.
    fn pfx_of_parts(parts: &[&[u8]], password: &str, mac_iterations: u32) -> Vec<u8> {
        let data = |bytes: &[u8]| {
            OctetString::new(bytes)
                .expect("octets")
                .to_der()
                .expect("DER")
        };
        let parts: Vec<Vec<u8>> = parts.iter().map(|part| data(part)).collect();
        let auth_safe = parts
            .iter()
            .map(|part| ContentInfo {
                content_type: OID_DATA,
                content: Some(AnyRef::from_der(part).expect("any")),
            })
            .collect::<Vec<_>>()
            .to_der()
            .expect("DER");
        let salt = [7u8; 8];
        let digest = if mac_iterations <= MAX_KDF_ITERATIONS {
            let key = kdf::<sha2::Sha256>(
                &Password::new(password).bmp,
                &salt,
                KdfPurpose::Mac,
                mac_iterations,
                32,
            );
            let mut mac = <SimpleHmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).expect("key");
            mac.update(&auth_safe);
            mac.finalize().into_bytes().to_vec()
        } else {
            vec![0; 32]
        };
        let outer = data(&auth_safe);
        Pfx {
            version: 3,
            auth_safe: ContentInfo {
                content_type: OID_DATA,
                content: Some(AnyRef::from_der(&outer).expect("any")),
            },
            mac_data: Some(MacData {
                mac: DigestInfo {
                    algorithm: AlgorithmIdentifierRef {
                        oid: OID_SHA256,
                        parameters: None,
                    },
                    digest: OctetStringRef::new(&digest).expect("octets"),
                },
                mac_salt: OctetStringRef::new(&salt).expect("octets"),
                iterations: mac_iterations,
            }),
        }
        .to_der()
        .expect("DER")
    }

    /// Where in `der` (a PFX) the MAC's digest and the first encrypted part's ciphertext start.
    pub(in super::super) fn offsets(der: &[u8]) -> (usize, usize) {
        let offset = |part: &[u8]| part.as_ptr() as usize - der.as_ptr() as usize;
        let pfx = Pfx::from_der(der).expect("PFX");
        let mac = offset(pfx.mac_data.as_ref().expect("MAC").mac.digest.as_bytes());
        let safes = Vec::<ContentInfo<'_>>::from_der(data_octets(&pfx.auth_safe).expect("data"))
            .expect("AuthenticatedSafe");
        let encrypted = safes
            .iter()
            .find(|safe| safe.content_type == OID_ENCRYPTED_DATA)
            .expect("an encryptedData part");
        let encrypted: EncryptedData<'_> = encrypted
            .content
            .expect("content")
            .decode_as()
            .expect("encryptedData");
        let ciphertext = encrypted
            .content_info
            .encrypted_content
            .expect("ciphertext");
        (mac, offset(ciphertext.as_bytes()))
    }

    /// The BMPString form of `password` the key derivation takes.
    pub(in super::super) fn bmp(password: &str) -> Vec<u8> {
        Password::new(password).bmp.to_vec()
    }

    /// Failed decryptions count against the budget too: a wrong password costs at most
    /// `MAX_DECRYPTIONS` key derivations however many encrypted parts a file holds.
    #[test]
    fn the_decryption_budget_counts_failures() {
        // An EncryptedPrivateKeyInfo under PKCS#12 3DES with garbage for ciphertext.
        let params = PbeParams {
            salt: OctetStringRef::new(&[1; 8]).expect("salt"),
            iterations: 2048,
        }
        .to_der()
        .expect("DER");
        let shrouded = EncryptedPrivateKeyInfo {
            algorithm: AlgorithmIdentifierRef {
                oid: OID_PBE_SHA1_3DES,
                parameters: Some(AnyRef::from_der(&params).expect("any")),
            },
            encrypted_data: OctetStringRef::new(&[0x5a; 64]).expect("octets"),
        }
        .to_der()
        .expect("DER");
        let part = safe_contents(&[Bag::shrouded_key(&shrouded)]);
        let parts = vec![part.as_slice(); 50];
        let der = pfx_of_parts(&parts, "right", 1);
        let pfx = Pfx::from_der(&der).expect("PFX");
        let safes = Vec::<ContentInfo<'_>>::from_der(data_octets(&pfx.auth_safe).expect("data"))
            .expect("AuthenticatedSafe");
        let password = Password::new("wrong");
        let mut reader = Reader::new(&password);
        let failures = safes
            .iter()
            .filter(|safe| reader.content_info(safe).is_err())
            .count();
        assert_eq!(
            (failures, reader.attempts, reader.decrypted),
            (50, MAX_DECRYPTIONS, 0)
        );
        assert!(!decrypts_any_part(&safes, &password));

        let mut ask = || Ok(Secret::new("wrong".to_owned()));
        let err = load(&der, "many.p12", &mut ask).expect_err("refused");
        assert!(matches!(err, FileKeyError::WrongPassword { .. }), "{err:?}");
    }
}
