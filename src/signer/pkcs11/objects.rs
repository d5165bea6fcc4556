//! Objects on a token: certificates (public, read whole), private keys (found by label and
//! id, and asked only for public attributes), and the public key that pairs them.
//!
//! Private keys are never asked for `CKA_VALUE`, `CKA_PRIVATE_EXPONENT`, primes or any other
//! secret attribute: the attributes requested of them are listed in [`KEY_ATTRIBUTES`] and
//! [`PROTECTION_ATTRIBUTES`].

use cryptoki::error::Error as CkError;
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::Session;

use super::Pkcs11Error;
use super::uri::{Pkcs11Uri, TokenDesc};
use crate::cert::{Cert, KeyType as CertKeyType};
use crate::signer::der_sig::rsa_public_key_der;

/// DER of the P-256 curve OID, as CKA_EC_PARAMS holds it.
pub(super) const EC_PARAMS_P256: &[u8] =
    &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the P-384 curve OID.
pub(super) const EC_PARAMS_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// The only attributes ever read from a private key object: all public.
pub(super) const KEY_ATTRIBUTES: &[AttributeType] = &[
    AttributeType::KeyType,
    AttributeType::Label,
    AttributeType::Id,
    AttributeType::AlwaysAuthenticate,
    AttributeType::Modulus,
    AttributeType::PublicExponent,
    AttributeType::EcParams,
];

/// The boolean attributes read to tell how a private key is protected and what it may do:
/// public, like [`KEY_ATTRIBUTES`].
pub(super) const PROTECTION_ATTRIBUTES: &[AttributeType] = &[
    AttributeType::Sensitive,
    AttributeType::Extractable,
    AttributeType::NeverExtractable,
    AttributeType::AlwaysSensitive,
    AttributeType::Decrypt,
    AttributeType::Unwrap,
    AttributeType::Derive,
];

/// The protection flags of a private key; an attribute the token does not report counts as
/// the unsafe value for the protection flags and as absent for the usages.
pub(super) fn key_protection(
    session: &Session,
    handle: ObjectHandle,
    token: &TokenDesc,
    mechanism: String,
    mechanism_signs: bool,
) -> Result<crate::signer::TokenKeyFlags, Pkcs11Error> {
    let attrs = session
        .get_attributes(handle, PROTECTION_ATTRIBUTES)
        .map_err(call("C_GetAttributeValue", token))?;
    let mut flags = crate::signer::TokenKeyFlags {
        sensitive: false,
        extractable: true,
        never_extractable: false,
        always_sensitive: false,
        decrypt: false,
        unwrap: false,
        derive: false,
        mechanism,
        mechanism_signs,
    };
    for a in attrs {
        match a {
            Attribute::Sensitive(b) => flags.sensitive = b,
            Attribute::Extractable(b) => flags.extractable = b,
            Attribute::NeverExtractable(b) => flags.never_extractable = b,
            Attribute::AlwaysSensitive(b) => flags.always_sensitive = b,
            Attribute::Decrypt(b) => flags.decrypt = b,
            Attribute::Unwrap(b) => flags.unwrap = b,
            Attribute::Derive(b) => flags.derive = b,
            _ => {}
        }
    }
    Ok(flags)
}

/// A certificate object.
#[derive(Debug, Clone)]
pub(super) struct TokenCert {
    /// The parsed certificate.
    pub cert: Cert,
    /// CKA_LABEL.
    pub label: String,
    /// CKA_ID.
    pub id: Vec<u8>,
}

/// A private key object and its public half.
#[derive(Debug, Clone)]
pub(super) struct TokenKey {
    /// The object.
    pub handle: ObjectHandle,
    /// CKA_LABEL.
    pub label: String,
    /// CKA_ID.
    pub id: Vec<u8>,
    /// RSA, P-256 or P-384.
    pub key_type: CertKeyType,
    /// The public key as a certificate's SPKI holds it (RSAPublicKey DER or EC point).
    pub public_key: Option<Vec<u8>>,
    /// CKA_ALWAYS_AUTHENTICATE.
    pub always_auth: bool,
}

impl TokenKey {
    /// "label=…, id=…" for messages.
    pub(super) fn describe(&self) -> String {
        describe(&self.label, &self.id)
    }
}

/// "object=…;id=…" for messages.
pub(super) fn describe(label: &str, id: &[u8]) -> String {
    format!(
        "object={};id={}",
        super::uri::encode(label.as_bytes(), false),
        super::uri::encode(id, true)
    )
}

fn call<'a>(function: &'static str, token: &'a TokenDesc) -> impl Fn(CkError) -> Pkcs11Error + 'a {
    move |e| Pkcs11Error::call(function, e, token)
}

fn find(
    session: &Session,
    template: &[Attribute],
    token: &TokenDesc,
) -> Result<Vec<ObjectHandle>, Pkcs11Error> {
    session
        .find_objects(template)
        .map_err(call("C_FindObjects", token))
}

fn label_id_template(class: ObjectClass, uri: Option<&Pkcs11Uri>) -> Vec<Attribute> {
    let mut template = vec![Attribute::Class(class)];
    if let Some(uri) = uri {
        if let Some(label) = &uri.object {
            template.push(Attribute::Label(label.as_bytes().to_vec()));
        }
        if let Some(id) = &uri.id {
            template.push(Attribute::Id(id.clone()));
        }
    }
    template
}

/// Every X.509 certificate on the token (public objects: no login needed). Unparsable
/// certificates are skipped.
pub(super) fn certificates(
    session: &Session,
    token: &TokenDesc,
) -> Result<Vec<TokenCert>, Pkcs11Error> {
    find_certificates(session, &[], token)
}

/// The certificates the URI's `object` and `id` select.
pub(super) fn certificates_for(
    session: &Session,
    uri: &Pkcs11Uri,
    token: &TokenDesc,
) -> Result<Vec<TokenCert>, Pkcs11Error> {
    let mut template = Vec::new();
    if let Some(label) = &uri.object {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        template.push(Attribute::Id(id.clone()));
    }
    find_certificates(session, &template, token)
}

/// The certificates whose subject is `subject` (DER): the possible issuers of a certificate.
pub(super) fn certificates_with_subject(
    session: &Session,
    subject: Vec<u8>,
    token: &TokenDesc,
) -> Result<Vec<TokenCert>, Pkcs11Error> {
    find_certificates(session, &[Attribute::Subject(subject)], token)
}

/// The certificates with this CKA_ID.
pub(super) fn certificates_with_id(
    session: &Session,
    id: &[u8],
    token: &TokenDesc,
) -> Result<Vec<TokenCert>, Pkcs11Error> {
    find_certificates(session, &[Attribute::Id(id.to_vec())], token)
}

fn find_certificates(
    session: &Session,
    extra: &[Attribute],
    token: &TokenDesc,
) -> Result<Vec<TokenCert>, Pkcs11Error> {
    let mut template = vec![
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::CertificateType(CertificateType::X_509),
    ];
    template.extend_from_slice(extra);
    let mut out = Vec::new();
    for handle in find(session, &template, token)? {
        let attrs = session
            .get_attributes(
                handle,
                &[
                    AttributeType::Value,
                    AttributeType::Label,
                    AttributeType::Id,
                ],
            )
            .map_err(call("C_GetAttributeValue", token))?;
        let (mut der, mut label, mut id) = (None, String::new(), Vec::new());
        for a in attrs {
            match a {
                Attribute::Value(v) => der = Some(v),
                Attribute::Label(l) => label = String::from_utf8_lossy(&l).into_owned(),
                Attribute::Id(i) => id = i,
                _ => {}
            }
        }
        let Some(der) = der else { continue };
        let origin = format!("certificate {} on {}", describe(&label, &id), token);
        if let Ok(cert) = Cert::from_der(&der, &origin) {
            out.push(TokenCert { cert, label, id });
        }
    }
    Ok(out)
}

/// The intermediates on the token on the issuer path of `leaf`, in path order: each step
/// looks up the certificates whose CKA_SUBJECT is the current certificate's issuer. Stops at
/// a self-signed root (not sent: the trust anchor holds it) or when no issuer is on the token.
/// Unrelated certificates are never read.
pub(super) fn chain_from_token(
    session: &Session,
    leaf: &Cert,
    token: &TokenDesc,
) -> Result<Vec<Cert>, Pkcs11Error> {
    let mut chain: Vec<Cert> = Vec::new();
    let mut current = leaf.clone();
    while chain.len() < 8 && !current.is_issued_by(&current) {
        let issuer = certificates_with_subject(session, current.issuer_der(), token)?
            .into_iter()
            .map(|c| c.cert)
            .find(|c| current.is_issued_by(c) && c.der() != current.der());
        let Some(issuer) = issuer else { break };
        if issuer.is_issued_by(&issuer) || chain.iter().any(|c| c.der() == issuer.der()) {
            break;
        }
        chain.push(issuer.clone());
        current = issuer;
    }
    Ok(chain)
}

/// Whether a certificate object matches the URI's `object` and `id`.
pub(super) fn cert_matches(c: &TokenCert, uri: &Pkcs11Uri) -> bool {
    uri.object
        .as_deref()
        .is_none_or(|o| o.as_bytes() == c.label.as_bytes())
        && uri.id.as_deref().is_none_or(|i| i == c.id.as_slice())
}

/// The private keys matching the URI's `object` and `id`.
pub(super) fn private_keys(
    session: &Session,
    uri: &Pkcs11Uri,
    token: &TokenDesc,
) -> Result<Vec<ObjectHandle>, Pkcs11Error> {
    find(
        session,
        &label_id_template(ObjectClass::PRIVATE_KEY, Some(uri)),
        token,
    )
}

/// Whether a public object (certificate or public key) matches the URI's `object` and `id`:
/// what can tell, without a login, which token a URI that names none means.
pub(super) fn has_public_match(
    session: &Session,
    uri: &Pkcs11Uri,
    token: &TokenDesc,
) -> Result<bool, Pkcs11Error> {
    if !certificates_for(session, uri, token)?.is_empty() {
        return Ok(true);
    }
    Ok(!find(
        session,
        &label_id_template(ObjectClass::PUBLIC_KEY, Some(uri)),
        token,
    )?
    .is_empty())
}

/// Labels and ids of every private key on the token, for error messages.
pub(super) fn list_private_keys(session: &Session, token: &TokenDesc) -> Vec<String> {
    let Ok(handles) = find(
        session,
        &label_id_template(ObjectClass::PRIVATE_KEY, None),
        token,
    ) else {
        return Vec::new();
    };
    handles
        .into_iter()
        .filter_map(|h| {
            let attrs = session
                .get_attributes(h, &[AttributeType::Label, AttributeType::Id])
                .ok()?;
            let (mut label, mut id) = (String::new(), Vec::new());
            for a in attrs {
                match a {
                    Attribute::Label(l) => label = String::from_utf8_lossy(&l).into_owned(),
                    Attribute::Id(i) => id = i,
                    _ => {}
                }
            }
            Some(describe(&label, &id))
        })
        .collect()
}

/// Reads a private key's public attributes and finds its public key: the modulus and
/// exponent of an RSA key, or for EC the CKA_EC_POINT of the public key object with the same
/// CKA_ID (without one, `public_key` is `None` and the caller pairs by CKA_ID).
pub(super) fn key_info(
    session: &Session,
    handle: ObjectHandle,
    token: &TokenDesc,
) -> Result<TokenKey, Pkcs11Error> {
    let attrs = session
        .get_attributes(handle, KEY_ATTRIBUTES)
        .map_err(call("C_GetAttributeValue", token))?;
    let mut key = TokenKey {
        handle,
        label: String::new(),
        id: Vec::new(),
        key_type: CertKeyType::Other,
        public_key: None,
        always_auth: false,
    };
    let (mut ck_type, mut modulus, mut exponent, mut params) = (None, None, None, None);
    for a in attrs {
        match a {
            Attribute::KeyType(t) => ck_type = Some(t),
            Attribute::Label(l) => key.label = String::from_utf8_lossy(&l).into_owned(),
            Attribute::Id(i) => key.id = i,
            Attribute::AlwaysAuthenticate(b) => key.always_auth = b,
            Attribute::Modulus(m) => modulus = Some(m),
            Attribute::PublicExponent(e) => exponent = Some(e),
            Attribute::EcParams(p) => params = Some(p),
            _ => {}
        }
    }
    let unsupported = |what: String| Pkcs11Error::UnsupportedKey {
        key: describe(&key.label, &key.id),
        detail: what,
    };
    match ck_type {
        Some(KeyType::RSA) => {
            key.key_type = CertKeyType::Rsa;
            match (modulus, exponent) {
                (Some(n), Some(e)) if !n.is_empty() && !e.is_empty() => {
                    key.public_key = Some(rsa_public_key_der(&n, &e));
                }
                _ => {
                    // Some tokens hide the modulus on the private object: use the public one.
                    key.public_key = public_object_rsa(session, &key.id, token)?;
                }
            }
        }
        Some(KeyType::EC) => {
            let params = params.unwrap_or_default();
            key.key_type = curve(&params).ok_or_else(|| {
                unsupported(format!(
                    "the EC curve {} is not P-256 or P-384",
                    crate::cert::hex_lower(&params)
                ))
            })?;
            key.public_key = public_object_ec(session, &key.id, key.key_type, token)?;
        }
        Some(other) => return Err(unsupported(format!("key type {other} is not RSA or EC"))),
        None => return Err(unsupported("the token does not tell its key type".into())),
    }
    Ok(key)
}

fn curve(params: &[u8]) -> Option<CertKeyType> {
    match params {
        EC_PARAMS_P256 => Some(CertKeyType::EcP256),
        EC_PARAMS_P384 => Some(CertKeyType::EcP384),
        _ => None,
    }
}

fn public_objects(
    session: &Session,
    id: &[u8],
    key_type: KeyType,
    token: &TokenDesc,
) -> Result<Vec<ObjectHandle>, Pkcs11Error> {
    if id.is_empty() {
        return Ok(Vec::new());
    }
    find(
        session,
        &[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(key_type),
            Attribute::Id(id.to_vec()),
        ],
        token,
    )
}

fn public_object_rsa(
    session: &Session,
    id: &[u8],
    token: &TokenDesc,
) -> Result<Option<Vec<u8>>, Pkcs11Error> {
    for h in public_objects(session, id, KeyType::RSA, token)? {
        let attrs = session
            .get_attributes(h, &[AttributeType::Modulus, AttributeType::PublicExponent])
            .map_err(call("C_GetAttributeValue", token))?;
        let (mut n, mut e) = (None, None);
        for a in attrs {
            match a {
                Attribute::Modulus(m) => n = Some(m),
                Attribute::PublicExponent(x) => e = Some(x),
                _ => {}
            }
        }
        if let (Some(n), Some(e)) = (n, e) {
            return Ok(Some(rsa_public_key_der(&n, &e)));
        }
    }
    Ok(None)
}

fn public_object_ec(
    session: &Session,
    id: &[u8],
    key_type: CertKeyType,
    token: &TokenDesc,
) -> Result<Option<Vec<u8>>, Pkcs11Error> {
    for h in public_objects(session, id, KeyType::EC, token)? {
        let attrs = session
            .get_attributes(h, &[AttributeType::EcPoint])
            .map_err(call("C_GetAttributeValue", token))?;
        for a in attrs {
            if let Attribute::EcPoint(p) = a
                && let Some(point) = unwrap_ec_point(&p, key_type)
            {
                return Ok(Some(point));
            }
        }
    }
    Ok(None)
}

/// The uncompressed point of CKA_EC_POINT, which PKCS#11 says is a DER OCTET STRING and some
/// tokens return raw. The curve's point length tells the two apart.
pub(super) fn unwrap_ec_point(value: &[u8], key_type: CertKeyType) -> Option<Vec<u8>> {
    let len = match key_type {
        CertKeyType::EcP256 => 65,
        CertKeyType::EcP384 => 97,
        _ => return None,
    };
    if value.len() == len && value[0] == 0x04 {
        return Some(value.to_vec());
    }
    if value.len() == len + 2
        && value[0] == 0x04
        && usize::from(value[1]) == len
        && value[2] == 0x04
    {
        return Some(value[2..].to_vec());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_points_wrapped_or_raw() {
        let mut raw = vec![0x04u8];
        raw.extend_from_slice(&[0x41; 64]);
        let mut wrapped = vec![0x04, 65];
        wrapped.extend_from_slice(&raw);
        assert_eq!(
            unwrap_ec_point(&raw, CertKeyType::EcP256),
            Some(raw.clone())
        );
        assert_eq!(
            unwrap_ec_point(&wrapped, CertKeyType::EcP256),
            Some(raw.clone())
        );
        assert_eq!(unwrap_ec_point(&wrapped, CertKeyType::EcP384), None);
        assert_eq!(unwrap_ec_point(&raw[..64], CertKeyType::EcP256), None);
        let mut raw384 = vec![0x04u8];
        raw384.extend_from_slice(&[7; 96]);
        let mut wrapped384 = vec![0x04, 97];
        wrapped384.extend_from_slice(&raw384);
        assert_eq!(
            unwrap_ec_point(&wrapped384, CertKeyType::EcP384),
            Some(raw384)
        );
    }
}
