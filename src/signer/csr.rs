//! The PKCS#10 request `keygen` writes, for both backends: the `--subject` parsed once (RFC
//! 4514 `CN=host1,O=Example\, Inc.`, most specific first, or OpenSSL's `/O=Example/CN=host1`,
//! in encoding order) into an X.501 Name, and the request signed by the hardware key
//! through the [`Signer`] trait.

use x509_cert::attr::{Attribute, AttributeTypeAndValue};
use x509_cert::der::asn1::{
    Any, BitString, Ia5StringRef, Null, ObjectIdentifier, OctetString, PrintableStringRef,
    SetOfVec, Utf8StringRef,
};
use x509_cert::der::oid::AssociatedOid;
use x509_cert::der::pem::LineEnding;
use x509_cert::der::{Decode, Encode, EncodePem};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq, Version};
use x509_cert::{AlgorithmIdentifier, SubjectPublicKeyInfo};

use crate::cert::KeyType;
use crate::signer::{Digest, SignError, Signer};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");

/// How an attribute's value is encoded when given as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    /// PrintableString; `Some(n)`: exactly n letters (countryName).
    Printable(Option<usize>),
    Ia5,
}

/// The attribute names `--subject` knows: (name, OID, encoding).
const ATTRIBUTES: &[(&str, &str, Encoding)] = &[
    ("CN", "2.5.4.3", Encoding::Utf8),
    ("SERIALNUMBER", "2.5.4.5", Encoding::Printable(None)),
    ("C", "2.5.4.6", Encoding::Printable(Some(2))),
    ("L", "2.5.4.7", Encoding::Utf8),
    ("ST", "2.5.4.8", Encoding::Utf8),
    ("STREET", "2.5.4.9", Encoding::Utf8),
    ("O", "2.5.4.10", Encoding::Utf8),
    ("OU", "2.5.4.11", Encoding::Utf8),
    ("UID", "0.9.2342.19200300.100.1.1", Encoding::Utf8),
    ("DC", "0.9.2342.19200300.100.1.25", Encoding::Ia5),
    ("EMAILADDRESS", "1.2.840.113549.1.9.1", Encoding::Ia5),
];

/// Why a `--subject` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--subject \"{text}\" is malformed: {why}")]
pub struct SubjectError {
    text: String,
    why: String,
}

/// What to write instead of a malformed subject.
pub const SUBJECT_HINT: &str = "write e.g. --subject \"CN=host1,O=Example\" (RFC 4514, most specific \
     first; escape , + \" \\ ; < > with a backslash) or \"/O=Example/CN=host1\"";

/// One attribute of a subject, its value either text or (`#hex`) the DER of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectAttribute {
    oid: ObjectIdentifier,
    value: AttributeValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AttributeValue {
    Text(String, Encoding),
    Der(Vec<u8>),
}

impl SubjectAttribute {
    /// The attribute type.
    pub fn oid(&self) -> String {
        self.oid.to_string()
    }

    /// The value as text, or `#` and the hex DER for a value given that way.
    pub fn value(&self) -> String {
        match &self.value {
            AttributeValue::Text(s, _) => s.clone(),
            AttributeValue::Der(der) => {
                let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
                format!("#{hex}")
            }
        }
    }

    fn encode(&self) -> Result<AttributeTypeAndValue, String> {
        let value = match &self.value {
            AttributeValue::Der(der) => Any::from_der(der)
                .map_err(|e| format!("the #hex value is not one DER value: {e}"))?,
            AttributeValue::Text(s, Encoding::Utf8) => {
                Any::encode_from(&Utf8StringRef::new(s).map_err(|e| format!("\"{s}\": {e}"))?)
                    .map_err(|e| e.to_string())?
            }
            AttributeValue::Text(s, Encoding::Printable(_)) => Any::encode_from(
                &PrintableStringRef::new(s)
                    .map_err(|_| format!("\"{s}\" has characters a PrintableString cannot hold"))?,
            )
            .map_err(|e| e.to_string())?,
            AttributeValue::Text(s, Encoding::Ia5) => Any::encode_from(
                &Ia5StringRef::new(s).map_err(|_| format!("\"{s}\" is not ASCII (IA5String)"))?,
            )
            .map_err(|e| e.to_string())?,
        };
        Ok(AttributeTypeAndValue {
            oid: self.oid,
            value,
        })
    }
}

/// A parsed `--subject`: its RDNs in encoding order (most general first), each one or more
/// attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    rdns: Vec<Vec<SubjectAttribute>>,
    name: Name,
}

impl Subject {
    /// Parses RFC 4514 (`CN=host1,O=Example`, reversed into encoding order) or, when the
    /// text starts with `/`, OpenSSL's `/O=Example/CN=host1` (already in encoding order).
    ///
    /// RFC 4514: `\,` `\+` `\"` `\\` `\;` `\<` `\>` `\=` `\#` `\ ` and `\XX` hex (UTF-8 bytes)
    /// escapes, a value `#hex` given as the DER of the value, `+` joining the attributes of a
    /// multi-valued RDN, spaces around separators ignored. OpenSSL: `\` takes the next
    /// character literally, `+` joins, `/` separates. Names: CN, O, OU, C, ST, L, STREET, DC,
    /// UID, serialNumber, emailAddress, or a dotted OID.
    pub fn parse(text: &str) -> Result<Subject, SubjectError> {
        let bad = |why: String| SubjectError {
            text: text.to_owned(),
            why,
        };
        let (body, openssl) = match text.trim_start().strip_prefix('/') {
            Some(rest) => (rest, true),
            None => (text, false),
        };
        if body.trim().is_empty() {
            return Err(bad("it is empty (e.g. \"CN=host1,O=Example\")".to_owned()));
        }
        let mut rdns = Lexer::new(body, openssl).rdns().map_err(bad)?;
        if !openssl {
            rdns.reverse();
        }
        let name = encode_name(&rdns).map_err(bad)?;
        Ok(Subject { rdns, name })
    }

    /// The RDNs in encoding order.
    pub fn rdns(&self) -> &[Vec<SubjectAttribute>] {
        &self.rdns
    }

    /// The X.501 Name.
    pub fn name(&self) -> &Name {
        &self.name
    }
}

fn encode_name(rdns: &[Vec<SubjectAttribute>]) -> Result<Name, String> {
    let mut sequence = RdnSequence::default();
    for rdn in rdns {
        let mut set = RelativeDistinguishedName::default();
        let mut seen = Vec::new();
        for attribute in rdn {
            let encoded = attribute.encode()?;
            // A SET OF holds distinct values: one twice is a typo, not a name.
            if seen.contains(&encoded) {
                return Err("an RDN names the same attribute and value twice".to_owned());
            }
            seen.push(encoded.clone());
            set.insert(encoded).map_err(|e| e.to_string())?;
        }
        sequence.push(set);
    }
    // Name has no public constructor from an RdnSequence outside "hazmat": go through DER.
    let der = sequence.to_der().map_err(|e| e.to_string())?;
    Name::from_der(&der).map_err(|e| e.to_string())
}

/// Splits a subject into RDNs of attributes, resolving escapes.
struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    openssl: bool,
}

/// What ended an attribute value.
enum End {
    Rdn,
    Plus,
    Text,
}

impl<'a> Lexer<'a> {
    fn new(body: &'a str, openssl: bool) -> Lexer<'a> {
        Lexer {
            chars: body.chars().peekable(),
            openssl,
        }
    }

    fn separator(&self) -> char {
        if self.openssl { '/' } else { ',' }
    }

    fn rdns(mut self) -> Result<Vec<Vec<SubjectAttribute>>, String> {
        let mut rdns = Vec::new();
        let mut rdn = Vec::new();
        loop {
            let (attribute, end) = self.attribute()?;
            rdn.push(attribute);
            match end {
                End::Plus => {}
                End::Rdn => rdns.push(std::mem::take(&mut rdn)),
                End::Text => {
                    rdns.push(rdn);
                    return Ok(rdns);
                }
            }
        }
    }

    fn attribute(&mut self) -> Result<(SubjectAttribute, End), String> {
        let mut name = String::new();
        loop {
            match self.chars.next() {
                Some('=') => break,
                Some(c) if c == self.separator() || c == '+' => {
                    return Err(if name.trim().is_empty() {
                        "an attribute is empty".to_owned()
                    } else {
                        format!("\"{}\" has no '='", name.trim())
                    });
                }
                Some('\\') => return Err(format!("\"{name}\\\": an escape in an attribute name")),
                Some(c) => name.push(c),
                None if name.trim().is_empty() => {
                    return Err("it ends with a separator (an empty attribute)".to_owned());
                }
                None => return Err(format!("\"{}\" has no '='", name.trim())),
            }
        }
        let name = name.trim();
        let (oid, encoding) = attribute_type(name)?;
        while self.chars.next_if_eq(&' ').is_some() {}
        let (value, end) = if !self.openssl && self.chars.peek() == Some(&'#') {
            self.chars.next();
            let (der, end) = self.hex_value(name)?;
            (AttributeValue::Der(der), end)
        } else {
            let (text, end) = self.text_value(name)?;
            if text.is_empty() {
                return Err(format!("{name} has an empty value"));
            }
            if let Encoding::Printable(Some(n)) = encoding
                && (text.chars().count() != n || !text.chars().all(|c| c.is_ascii_alphabetic()))
            {
                return Err(format!(
                    "{name}={text}: a country is two letters (e.g. C=DE)"
                ));
            }
            (AttributeValue::Text(text, encoding), end)
        };
        Ok((SubjectAttribute { oid, value }, end))
    }

    /// A value after `#`: hex digits, then optional spaces, up to a separator.
    fn hex_value(&mut self, name: &str) -> Result<(Vec<u8>, End), String> {
        let mut digits = String::new();
        let mut spaced = false;
        let end = loop {
            match self.chars.next() {
                None => break End::Text,
                Some('+') => break End::Plus,
                Some(c) if c == self.separator() => break End::Rdn,
                Some(' ') => spaced = true,
                Some(c) if c.is_ascii_hexdigit() && !spaced => digits.push(c),
                Some(c) => return Err(format!("{name}=#{digits}: '{c}' is not a hex digit")),
            }
        };
        if digits.is_empty() || !digits.len().is_multiple_of(2) {
            return Err(format!(
                "{name}=#{digits}: a #value needs an even number of hex digits"
            ));
        }
        let bytes = (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|e| format!("{name}=#{digits}: {e}"))?;
        Ok((bytes, end))
    }

    /// A string value with its escapes resolved and unescaped outer spaces dropped.
    fn text_value(&mut self, name: &str) -> Result<(String, End), String> {
        let mut bytes: Vec<u8> = Vec::new();
        // Length up to the last character that was not an unescaped space.
        let mut kept = 0;
        let end = loop {
            match self.chars.next() {
                None => break End::Text,
                Some('+') => break End::Plus,
                Some(c) if c == self.separator() => break End::Rdn,
                Some('\\') => {
                    let Some(next) = self.chars.next() else {
                        return Err("it ends with a lone backslash".to_owned());
                    };
                    if self.openssl {
                        push_char(&mut bytes, next);
                    } else if next.is_ascii_hexdigit() {
                        let low = self
                            .chars
                            .next()
                            .filter(char::is_ascii_hexdigit)
                            .ok_or_else(|| format!("{name}: \\{next} is not a \\XX hex escape"))?;
                        let pair: String = [next, low].iter().collect();
                        bytes.push(u8::from_str_radix(&pair, 16).map_err(|e| e.to_string())?);
                    } else if "\\\"+,;<>=# ".contains(next) {
                        push_char(&mut bytes, next);
                    } else {
                        return Err(format!("{name}: \\{next} is not an RFC 4514 escape"));
                    }
                    kept = bytes.len();
                }
                Some(c @ ('"' | ';' | '<' | '>')) if !self.openssl => {
                    return Err(format!("{name}: '{c}' must be escaped as \\{c}"));
                }
                Some('\0') => return Err(format!("{name}: a NUL character")),
                Some(c) => {
                    push_char(&mut bytes, c);
                    if c != ' ' {
                        kept = bytes.len();
                    }
                }
            }
        };
        bytes.truncate(kept);
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("{name}: the \\XX escapes are not UTF-8"))?;
        Ok((text, end))
    }
}

fn push_char(bytes: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

fn attribute_type(name: &str) -> Result<(ObjectIdentifier, Encoding), String> {
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        let oid = ObjectIdentifier::new(name).map_err(|_| format!("\"{name}\" is not an OID"))?;
        let encoding = ATTRIBUTES
            .iter()
            .find(|(_, o, _)| *o == name)
            .map_or(Encoding::Utf8, |(_, _, e)| *e);
        return Ok((oid, encoding));
    }
    let upper = name.to_ascii_uppercase();
    let (_, oid, encoding) = ATTRIBUTES
        .iter()
        .find(|(n, _, _)| *n == upper)
        .ok_or_else(|| {
            format!(
                "unknown attribute \"{name}\" (use CN, O, OU, C, ST, L, STREET, DC, UID, \
                 serialNumber, emailAddress or a dotted OID)"
            )
        })?;
    let oid = ObjectIdentifier::new(oid).map_err(|e| e.to_string())?;
    Ok((oid, *encoding))
}

/// Why a CSR could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    /// The key is of a type a CSR is not made for here.
    #[error("a CSR cannot be made for a {0} key")]
    KeyType(KeyType),
    /// The key refused to sign.
    #[error("the key could not sign the CSR: {0}")]
    Sign(#[from] SignError),
    /// DER encoding failed.
    #[error("cannot encode the CSR: {0}")]
    Encode(#[from] x509_cert::der::Error),
}

/// Builds the PEM CSR for `subject` with `signer`'s public key, asking for a client-auth
/// certificate (keyUsage digitalSignature, critical; extendedKeyUsage clientAuth), signed
/// by `signer` (SHA-256; SHA-384 for P-384 keys).
pub fn request_pem(subject: &Subject, signer: &dyn Signer) -> Result<String, CsrError> {
    let bits = signer.public_key_bits();
    let (key_algorithm, signature_algorithm, digest) = match signer.key_type() {
        KeyType::Rsa => (
            AlgorithmIdentifier {
                oid: RSA_ENCRYPTION,
                parameters: Some(Any::encode_from(&Null)?),
            },
            AlgorithmIdentifier {
                oid: SHA256_WITH_RSA,
                parameters: Some(Any::encode_from(&Null)?),
            },
            Digest::Sha256,
        ),
        KeyType::EcP256 => (
            AlgorithmIdentifier {
                oid: EC_PUBLIC_KEY,
                parameters: Some(Any::encode_from(&P256)?),
            },
            AlgorithmIdentifier {
                oid: ECDSA_SHA256,
                parameters: None,
            },
            Digest::Sha256,
        ),
        KeyType::EcP384 => (
            AlgorithmIdentifier {
                oid: EC_PUBLIC_KEY,
                parameters: Some(Any::encode_from(&P384)?),
            },
            AlgorithmIdentifier {
                oid: ECDSA_SHA384,
                parameters: None,
            },
            Digest::Sha384,
        ),
        other => return Err(CsrError::KeyType(other)),
    };
    let extensions = ExtensionReq(vec![
        Extension {
            extn_id: KeyUsage::OID,
            critical: true,
            extn_value: OctetString::new(KeyUsage(KeyUsages::DigitalSignature.into()).to_der()?)?,
        },
        Extension {
            extn_id: ExtendedKeyUsage::OID,
            critical: false,
            extn_value: OctetString::new(ExtendedKeyUsage(vec![CLIENT_AUTH]).to_der()?)?,
        },
    ]);
    let mut attributes = SetOfVec::new();
    attributes.insert(Attribute::try_from(extensions)?)?;
    let info = CertReqInfo {
        version: Version::V1,
        subject: subject.name().clone(),
        public_key: SubjectPublicKeyInfo {
            algorithm: key_algorithm,
            subject_public_key: BitString::from_bytes(bits)?,
        },
        attributes,
    };
    let signature = signer.sign(digest, &info.to_der()?)?;
    let request = CertReq {
        info,
        algorithm: signature_algorithm,
        signature: BitString::from_bytes(&signature)?,
    };
    Ok(request.to_pem(LineEnding::LF)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RDNs as (OID, value) lists, in encoding order.
    fn rdns(text: &str) -> Vec<Vec<(String, String)>> {
        Subject::parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .rdns()
            .iter()
            .map(|rdn| rdn.iter().map(|a| (a.oid(), a.value())).collect())
            .collect()
    }

    fn one(oid: &str, value: &str) -> Vec<(String, String)> {
        vec![(oid.to_owned(), value.to_owned())]
    }

    const CN: &str = "2.5.4.3";
    const O: &str = "2.5.4.10";
    const C: &str = "2.5.4.6";

    #[test]
    fn rfc4514_is_reversed_into_encoding_order() {
        assert_eq!(
            rdns("CN=host1,O=Example,C=DE"),
            vec![one(C, "DE"), one(O, "Example"), one(CN, "host1")]
        );
        // OpenSSL's form is already in encoding order.
        assert_eq!(
            rdns("/C=DE/O=Example/CN=host1"),
            vec![one(C, "DE"), one(O, "Example"), one(CN, "host1")]
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(
            rdns(r"CN=host1,O=Example\, Inc."),
            vec![one(O, "Example, Inc."), one(CN, "host1")]
        );
        assert_eq!(rdns(r"CN=a\+b"), vec![one(CN, "a+b")]);
        assert_eq!(rdns(r#"CN=say \"hi\""#), vec![one(CN, "say \"hi\"")]);
        assert_eq!(rdns(r"CN=back\\slash"), vec![one(CN, r"back\slash")]);
        assert_eq!(rdns(r"CN=\;\<\>\=\#"), vec![one(CN, ";<>=#")]);
        // \XX: UTF-8 bytes, "ü" is C3 BC.
        assert_eq!(rdns(r"CN=M\C3\BCller\2c x"), vec![one(CN, "Müller, x")]);
        assert_eq!(rdns("CN=Müller"), vec![one(CN, "Müller")]);
        // OpenSSL's form: a backslash takes the next character.
        assert_eq!(
            rdns(r"/O=Example, Inc./CN=a\/b\+c"),
            vec![one(O, "Example, Inc."), one(CN, "a/b+c")]
        );
    }

    #[test]
    fn spaces() {
        assert_eq!(
            rdns("  CN = host1 ,  O = Example Org  "),
            vec![one(O, "Example Org"), one(CN, "host1")]
        );
        // Escaped spaces stay.
        assert_eq!(rdns(r"CN=\ padded\ "), vec![one(CN, " padded ")]);
        assert_eq!(rdns(r"CN=\20x\20"), vec![one(CN, " x ")]);
    }

    #[test]
    fn hex_string_values_are_der() {
        // UTF8String "abc".
        assert_eq!(rdns("CN=#0C03616263"), vec![one(CN, "#0c03616263")]);
        assert_eq!(
            rdns("2.5.4.3=#130568656c6c6f,O=x"),
            vec![one(O, "x"), one(CN, "#130568656c6c6f")]
        );
        let subject = Subject::parse("CN=#0C03616263").expect("parse");
        assert_eq!(
            subject.name().to_string(),
            "CN=abc",
            "the DER is taken as the value"
        );
    }

    #[test]
    fn multi_valued_rdns() {
        assert_eq!(
            rdns("CN=host1+UID=42,O=Example"),
            vec![
                one(O, "Example"),
                vec![
                    (CN.to_owned(), "host1".to_owned()),
                    ("0.9.2342.19200300.100.1.1".to_owned(), "42".to_owned())
                ]
            ]
        );
        assert_eq!(
            rdns("/O=Example/CN=host1+UID=42").len(),
            2,
            "OpenSSL's + joins too"
        );
    }

    #[test]
    fn repeated_types_are_kept() {
        let dc = "0.9.2342.19200300.100.1.25";
        assert_eq!(
            rdns("CN=host1,DC=example,DC=com"),
            vec![one(dc, "com"), one(dc, "example"), one(CN, "host1")]
        );
    }

    #[test]
    fn encodes_with_the_right_string_types() {
        let subject = Subject::parse("CN=h,C=DE,DC=example,serialNumber=42").expect("parse");
        let der = subject.name().to_der().expect("der");
        // PrintableString "DE" (13 02 44 45), IA5String "example" (16 07 …), UTF8String "h".
        let has = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
        assert!(has(&[0x13, 0x02, b'D', b'E']));
        assert!(has(&[0x16, 0x07, b'e', b'x']));
        assert!(has(&[0x13, 0x02, b'4', b'2']));
        assert!(has(&[0x0c, 0x01, b'h']));
    }

    #[test]
    fn empty_and_junk_are_refused() {
        for bad in [
            "",
            "   ",
            "/",
            "CN",
            "CN=",
            "CN=a,",
            ",CN=a",
            "CN=a,,O=b",
            "CN=a+",
            "FOO=bar",
            "CN=a\\",
            r"CN=a\q",
            r"CN=a\4",
            r"CN=\ff",
            "CN=a;b",
            "CN=a\"b",
            "CN=<x>",
            "CN=#",
            "CN=#abc",
            "CN=#zz",
            "CN=#0C 03616263",
            "CN=#0C0361",
            "C=Germany",
            "C=D1",
            "DC=exämple",
            "1.2.x=a",
            "CN=a+CN=a",
            "/CN=a/",
            "/CN=a//O=b",
        ] {
            let err = Subject::parse(bad).expect_err(bad);
            assert!(err.to_string().starts_with("--subject \""), "{err}");
        }
    }
}
