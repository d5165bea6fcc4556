//! RFC 7512 `pkcs11:` URIs, parsed whole: every path attribute (`token`, `manufacturer`,
//! `model`, `serial`, `slot-description`, `slot-manufacturer`, `slot-id`, `library-*`,
//! `object`, `id`, `type`) and query attribute (`pin-value`, `pin-source`, `module-name`,
//! `module-path`), percent-decoded, with an error that says exactly what is wrong.
//!
//! [`Pkcs11Uri::to_string`] writes the canonical form used to name an object uniquely
//! (as `read-certificate-data` prints it).

use std::fmt;
use std::path::PathBuf;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode, percent_encode_byte};

use crate::display::is_pin_like;
pub use crate::display::redact_pin_value;
use crate::secret::Secret;

/// Why a `pkcs11:` URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed PKCS#11 URI \"{uri}\": {reason}")]
pub struct UriError {
    /// The URI as given, with any `pin-value` blanked out.
    pub uri: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The object class a URI's `type` attribute names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    /// `type=private`: a private key.
    Private,
    /// `type=public`: a public key.
    Public,
    /// `type=cert`: a certificate.
    Cert,
    /// `type=secret-key`: a secret key.
    SecretKey,
    /// `type=data`: a data object.
    Data,
}

impl ObjectType {
    /// The RFC 7512 spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Private => "private",
            ObjectType::Public => "public",
            ObjectType::Cert => "cert",
            ObjectType::SecretKey => "secret-key",
            ObjectType::Data => "data",
        }
    }
}

/// Where the URI says the PIN comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum PinSource {
    /// `pin-source=file:/path` (or a bare absolute path).
    File(PathBuf),
}

impl fmt::Debug for PinSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PinSource::File(p) => write!(f, "File({})", p.display()),
        }
    }
}

/// A parsed `pkcs11:` URI. Absent attributes are `None` and match anything.
#[derive(Debug, Clone, Default)]
pub struct Pkcs11Uri {
    /// `token`: the token label.
    pub token: Option<String>,
    /// `manufacturer`: the token manufacturer.
    pub manufacturer: Option<String>,
    /// `model`: the token model.
    pub model: Option<String>,
    /// `serial`: the token serial number.
    pub serial: Option<String>,
    /// `slot-description`.
    pub slot_description: Option<String>,
    /// `slot-manufacturer`.
    pub slot_manufacturer: Option<String>,
    /// `slot-id` (0 is a valid slot).
    pub slot_id: Option<u64>,
    /// `library-manufacturer`.
    pub library_manufacturer: Option<String>,
    /// `library-description`.
    pub library_description: Option<String>,
    /// `library-version`: major and, when given, minor.
    pub library_version: Option<(u8, Option<u8>)>,
    /// `object`: the object label (CKA_LABEL).
    pub object: Option<String>,
    /// `id`: the object id (CKA_ID), decoded bytes.
    pub id: Option<Vec<u8>>,
    /// `type`: the object class.
    pub object_type: Option<ObjectType>,
    /// `pin-value` (visible in the process list: discouraged).
    pub pin_value: Option<Secret>,
    /// `pin-source`.
    pub pin_source: Option<PinSource>,
    /// `module-name`: a module to find in the usual places.
    pub module_name: Option<String>,
    /// `module-path`: the module file.
    pub module_path: Option<PathBuf>,
}

/// A `pkcs11:` URI as it was given, parsed once where flags are lowered: the parsed form
/// for the backend, the text for fingerprints and (through [`redact_pin_value`]) messages.
#[derive(Clone)]
pub struct TokenUri {
    parsed: Box<Pkcs11Uri>,
    text: String,
}

impl TokenUri {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<TokenUri, UriError> {
        Ok(TokenUri {
            parsed: Box::new(Pkcs11Uri::parse(text)?),
            text: text.to_owned(),
        })
    }

    /// The parsed URI.
    pub fn uri(&self) -> &Pkcs11Uri {
        &self.parsed
    }

    /// The URI as given, `pin-value` included: never show it without [`redact_pin_value`].
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for TokenUri {
    fn eq(&self, other: &TokenUri) -> bool {
        self.text == other.text
    }
}

impl Eq for TokenUri {}

impl fmt::Debug for TokenUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenUri({})", redact_pin_value(&self.text))
    }
}

const PATH_ATTRS: &[&str] = &[
    "token",
    "manufacturer",
    "model",
    "serial",
    "slot-description",
    "slot-manufacturer",
    "slot-id",
    "library-manufacturer",
    "library-description",
    "library-version",
    "object",
    "id",
    "type",
];
const QUERY_ATTRS: &[&str] = &["pin-value", "pin-source", "module-name", "module-path"];

impl Pkcs11Uri {
    /// The same token, module and PIN, selecting no object: every object of the token.
    pub fn token_only(&self) -> Pkcs11Uri {
        Pkcs11Uri {
            object: None,
            id: None,
            object_type: None,
            ..self.clone()
        }
    }

    /// Parses a `pkcs11:` URI.
    pub fn parse(text: &str) -> Result<Self, UriError> {
        let shown = escape_controls(&redact_pin_value(text));
        let bad = |reason: String| UriError {
            uri: shown.clone(),
            reason: escape_controls(&redact_pin_value(&reason)),
        };
        let text = text.trim();
        let rest = match text.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case("pkcs11:") => &text[7..],
            _ => return Err(bad("it must start with \"pkcs11:\"".into())),
        };
        if let Some(c) = rest.chars().find(|c| c.is_control()) {
            return Err(bad(format!("it contains the control character {c:?}")));
        }
        if rest.contains('#') {
            return Err(bad("a PKCS#11 URI has no fragment: write '#' as %23".into()));
        }
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut uri = Pkcs11Uri::default();
        let mut seen: Vec<String> = Vec::new();
        for part in path.split(';').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').ok_or_else(|| {
                bad(format!(
                    "path attribute \"{}\" has no '=' (expected name=value, separated by ';')",
                    if is_pin_like(part) { "pin-…" } else { part }
                ))
            })?;
            let name = name.to_ascii_lowercase();
            refuse_pin_like_name(&name, "path").map_err(bad)?;
            if seen.contains(&name) {
                return Err(bad(format!("attribute \"{name}\" appears twice")));
            }
            seen.push(name.clone());
            let value = decode(value).map_err(|e| bad(format!("attribute \"{name}\": {e}")))?;
            uri.set_path_attr(&name, value).map_err(bad)?;
        }
        if let Some(query) = query {
            for part in query.split('&').filter(|p| !p.is_empty()) {
                let (name, value) = part.split_once('=').ok_or_else(|| {
                    bad(format!(
                        "query attribute \"{}\" has no '=' (expected name=value, separated by '&')",
                        if is_pin_like(part) { "pin-…" } else { part }
                    ))
                })?;
                let name = name.to_ascii_lowercase();
                refuse_pin_like_name(&name, "query").map_err(bad)?;
                if seen.contains(&name) {
                    return Err(bad(format!("attribute \"{name}\" appears twice")));
                }
                seen.push(name.clone());
                let value = decode(value).map_err(|e| bad(format!("attribute \"{name}\": {e}")))?;
                uri.set_query_attr(&name, value).map_err(bad)?;
            }
        }
        if uri.module_name.is_some() && uri.module_path.is_some() {
            // RFC 7512 allows both; module-path then wins. Nothing to refuse.
        }
        Ok(uri)
    }

    fn set_path_attr(&mut self, name: &str, value: Vec<u8>) -> Result<(), String> {
        let text = |value: Vec<u8>| {
            String::from_utf8(value).map_err(|_| format!("attribute \"{name}\" is not UTF-8"))
        };
        match name {
            "token" => self.token = Some(text(value)?),
            "manufacturer" => self.manufacturer = Some(text(value)?),
            "model" => self.model = Some(text(value)?),
            "serial" => self.serial = Some(text(value)?),
            "slot-description" => self.slot_description = Some(text(value)?),
            "slot-manufacturer" => self.slot_manufacturer = Some(text(value)?),
            "slot-id" => {
                let v = text(value)?;
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("slot-id \"{v}\" is not a decimal number"));
                }
                self.slot_id = Some(
                    v.parse()
                        .map_err(|_| format!("slot-id \"{v}\" is too large"))?,
                );
            }
            "library-manufacturer" => self.library_manufacturer = Some(text(value)?),
            "library-description" => self.library_description = Some(text(value)?),
            "library-version" => {
                let v = text(value)?;
                let parse = |s: &str| -> Result<u8, String> {
                    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(format!(
                            "library-version \"{v}\" is not a version (expected M or M.m)"
                        ));
                    }
                    s.parse()
                        .map_err(|_| format!("library-version \"{v}\" is out of range"))
                };
                self.library_version = Some(match v.split_once('.') {
                    Some((maj, min)) => (parse(maj)?, Some(parse(min)?)),
                    None => (parse(&v)?, None),
                });
            }
            "object" => self.object = Some(text(value)?),
            "id" => self.id = Some(value),
            // "object-type" is the name used by drafts of the RFC and old GnuTLS.
            "type" | "object-type" => {
                let v = text(value)?;
                self.object_type = Some(match v.as_str() {
                    "private" => ObjectType::Private,
                    "public" => ObjectType::Public,
                    "cert" => ObjectType::Cert,
                    "secret-key" => ObjectType::SecretKey,
                    "data" => ObjectType::Data,
                    _ => {
                        return Err(format!(
                            "type \"{v}\" is not one of private, public, cert, secret-key, data"
                        ));
                    }
                });
            }
            _ if QUERY_ATTRS.contains(&name) => {
                return Err(format!(
                    "\"{name}\" is a query attribute: write it after '?' (pkcs11:…?{name}=…)"
                ));
            }
            _ => {
                return Err(format!(
                    "unknown path attribute \"{name}\" (known: {})",
                    PATH_ATTRS.join(", ")
                ));
            }
        }
        Ok(())
    }

    fn set_query_attr(&mut self, name: &str, value: Vec<u8>) -> Result<(), String> {
        let text = |value: Vec<u8>| {
            String::from_utf8(value).map_err(|_| format!("attribute \"{name}\" is not UTF-8"))
        };
        match name {
            "pin-value" => self.pin_value = Some(Secret::new(text(value)?)),
            "pin-source" => {
                let v = text(value)?;
                let path = if let Some(rest) = v.strip_prefix("file://") {
                    // file:///path (empty authority) or file://localhost/path
                    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
                    if !rest.starts_with('/') {
                        return Err(format!(
                            "pin-source \"{v}\": only local files are supported (file:///path)"
                        ));
                    }
                    rest.to_owned()
                } else if let Some(rest) = v.strip_prefix("file:") {
                    rest.to_owned()
                } else if v.starts_with('/') {
                    v
                } else {
                    return Err(format!(
                        "pin-source \"{v}\" is not supported: use file:/absolute/path"
                    ));
                };
                if path.is_empty() {
                    return Err("pin-source names no file".into());
                }
                self.pin_source = Some(PinSource::File(PathBuf::from(path)));
            }
            "module-name" => {
                let v = text(value)?;
                if v.is_empty() || v.contains('/') {
                    return Err(format!(
                        "module-name \"{v}\" must be a bare name (use module-path for a path)"
                    ));
                }
                self.module_name = Some(v);
            }
            "module-path" => {
                let v = text(value)?;
                if v.is_empty() {
                    return Err("module-path is empty".into());
                }
                self.module_path = Some(PathBuf::from(v));
            }
            _ if PATH_ATTRS.contains(&name) => {
                return Err(format!(
                    "\"{name}\" is a path attribute: write it before '?' (pkcs11:{name}=…)"
                ));
            }
            _ => {
                return Err(format!(
                    "unknown query attribute \"{name}\" (known: {})",
                    QUERY_ATTRS.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// This URI with `type` replaced.
    pub fn with_type(&self, object_type: ObjectType) -> Self {
        let mut uri = self.clone();
        uri.object_type = Some(object_type);
        uri
    }

    /// Whether any attribute selects an object (`object`, `id`).
    pub fn names_object(&self) -> bool {
        self.object.is_some() || self.id.is_some()
    }

    /// Whether the URI names the slot by its description or manufacturer, which only
    /// `C_GetSlotInfo` tells (`slot-id` is the slot itself).
    pub fn names_slot_info(&self) -> bool {
        self.slot_description.is_some() || self.slot_manufacturer.is_some()
    }

    /// Whether a token described by these values matches the URI's token attributes. A slot
    /// whose information was not read matches no `slot-description` or `slot-manufacturer`.
    pub fn matches_token(&self, token: &TokenDesc) -> bool {
        let slot = token.slot.as_ref();
        eq_opt(&self.token, &token.label)
            && eq_opt(&self.manufacturer, &token.manufacturer)
            && eq_opt(&self.model, &token.model)
            && eq_opt(&self.serial, &token.serial)
            && (self.slot_description.is_none()
                || slot.is_some_and(|s| eq_opt(&self.slot_description, &s.description)))
            && (self.slot_manufacturer.is_none()
                || slot.is_some_and(|s| eq_opt(&self.slot_manufacturer, &s.manufacturer)))
            && self.slot_id.is_none_or(|id| id == token.slot_id)
    }

    /// Whether a module described by these values matches the `library-*` attributes.
    pub fn matches_library(
        &self,
        manufacturer: &str,
        description: &str,
        version: (u8, u8),
    ) -> bool {
        eq_opt(&self.library_manufacturer, manufacturer)
            && eq_opt(&self.library_description, description)
            && self
                .library_version
                .is_none_or(|(maj, min)| maj == version.0 && min.is_none_or(|m| m == version.1))
    }
}

fn eq_opt(want: &Option<String>, have: &str) -> bool {
    want.as_deref().is_none_or(|w| w == have)
}

/// The identifying values of one token in one slot, as a URI can match them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenDesc {
    /// The slot id.
    pub slot_id: u64,
    /// The token label.
    pub label: String,
    /// The token manufacturer.
    pub manufacturer: String,
    /// The token model.
    pub model: String,
    /// The token serial.
    pub serial: String,
    /// The slot's own values, read only for a URI that names them (see
    /// [`Pkcs11Uri::names_slot_info`]): one call per slot saved on every other run.
    pub slot: Option<SlotDesc>,
}

/// What `C_GetSlotInfo` tells of a slot, as a URI can match it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotDesc {
    /// The slot description.
    pub description: String,
    /// The slot manufacturer.
    pub manufacturer: String,
}

impl TokenDesc {
    /// A URI naming this token (model, manufacturer, serial, token), p11tool's order.
    pub fn uri(&self) -> Pkcs11Uri {
        Pkcs11Uri {
            model: Some(self.model.clone()),
            manufacturer: Some(self.manufacturer.clone()),
            serial: Some(self.serial.clone()),
            token: Some(self.label.clone()),
            ..Pkcs11Uri::default()
        }
    }
}

impl fmt::Display for TokenDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "token \"{}\" (serial {}, slot-id {}) {}",
            self.label,
            self.serial,
            self.slot_id,
            self.uri()
        )
    }
}

/// Writes the URI, percent-encoding values; `pin-value` is never written.
impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut path: Vec<String> = Vec::new();
        let mut text = |name: &str, v: &Option<String>| {
            if let Some(v) = v {
                path.push(format!("{name}={}", encode(v.as_bytes(), false)));
            }
        };
        text("model", &self.model);
        text("manufacturer", &self.manufacturer);
        text("serial", &self.serial);
        text("token", &self.token);
        text("slot-description", &self.slot_description);
        text("slot-manufacturer", &self.slot_manufacturer);
        text("library-manufacturer", &self.library_manufacturer);
        text("library-description", &self.library_description);
        if let Some(id) = self.slot_id {
            path.push(format!("slot-id={id}"));
        }
        if let Some((maj, min)) = self.library_version {
            path.push(match min {
                Some(min) => format!("library-version={maj}.{min}"),
                None => format!("library-version={maj}"),
            });
        }
        if let Some(id) = &self.id {
            path.push(format!("id={}", encode(id, true)));
        }
        if let Some(object) = &self.object {
            path.push(format!("object={}", encode(object.as_bytes(), false)));
        }
        if let Some(t) = self.object_type {
            path.push(format!("type={}", t.as_str()));
        }
        write!(f, "pkcs11:{}", path.join(";"))?;
        let mut query: Vec<String> = Vec::new();
        if let Some(PinSource::File(p)) = &self.pin_source {
            query.push(format!(
                "pin-source=file:{}",
                encode(p.to_string_lossy().as_bytes(), false)
            ));
        }
        if let Some(n) = &self.module_name {
            query.push(format!("module-name={}", encode(n.as_bytes(), false)));
        }
        if let Some(p) = &self.module_path {
            query.push(format!(
                "module-path={}",
                encode(p.to_string_lossy().as_bytes(), false)
            ));
        }
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

/// What a value percent-encodes: everything but RFC 3986 unreserved characters and '/',
/// which is harmless in values.
const VALUE_ENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Percent-encodes `bytes`: everything but RFC 3986 unreserved characters (and '/', which
/// is harmless in values), or every byte when `all` (as p11tool writes ids).
pub fn encode(bytes: &[u8], all: bool) -> String {
    if all {
        bytes.iter().map(|&b| percent_encode_byte(b)).collect()
    } else {
        percent_encode(bytes, VALUE_ENCODED).to_string()
    }
}

/// Percent-decodes a value.
fn decode(value: &str) -> Result<Vec<u8>, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
            let Some(hex) = hex else {
                return Err(format!(
                    "'%' at offset {i} is not followed by two hex digits"
                ));
            };
            out.push(u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Refuses an attribute name that looks like a PIN but is not `pin-value` or `pin-source`
/// without repeating it: a mangled name may hold the PIN itself (`pin%3D1234=`).
fn refuse_pin_like_name(name: &str, section: &str) -> Result<(), String> {
    if is_pin_like(name) && name != "pin-value" {
        return Err(format!(
            "unknown {section} attribute \"pin-…\" (a PIN is given as ?pin-value=… or ?pin-source=file:…)"
        ));
    }
    Ok(())
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`): the URI and the values
/// decoded from it are echoed in error lines, which must stay one line each.
fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written encoder `encode` replaced, kept as the oracle.
    fn encode_by_hand(bytes: &[u8], all: bool) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(bytes.len() * 3);
        for &b in bytes {
            let plain = !all && (b.is_ascii_alphanumeric() || b"-._~/".contains(&b));
            if plain {
                out.push(b as char);
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 2048,
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        #[test]
        fn encode_is_the_hand_written_encoder(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            all in proptest::prelude::any::<bool>(),
        ) {
            proptest::prop_assert_eq!(encode(&bytes, all), encode_by_hand(&bytes, all));
            proptest::prop_assert_eq!(decode(&encode(&bytes, all)), Ok(bytes));
        }
    }

    // Printed by `p11tool --list-all --login` (GnuTLS 3.7.9) for SoftHSM2 objects.
    const P11TOOL_PRIVATE: &str = "pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=3fa05383a42bacfe;token=t1;id=%01%02;object=leaf;type=private";
    const P11TOOL_TOKEN: &str =
        "pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=3fa05383a42bacfe;token=t1";
    // Printed by `p11tool --list-tokens` for p11-kit's trust module.
    const P11TOOL_TRUST: &str =
        "pkcs11:model=p11-kit-trust;manufacturer=PKCS%2311%20Kit;serial=1;token=System%20Trust";

    fn parse(s: &str) -> Pkcs11Uri {
        Pkcs11Uri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        Pkcs11Uri::parse(s).expect_err(s).reason
    }

    #[test]
    fn p11tool_object_uri() {
        let u = parse(P11TOOL_PRIVATE);
        assert_eq!(u.model.as_deref(), Some("SoftHSM v2"));
        assert_eq!(u.manufacturer.as_deref(), Some("SoftHSM project"));
        assert_eq!(u.serial.as_deref(), Some("3fa05383a42bacfe"));
        assert_eq!(u.token.as_deref(), Some("t1"));
        assert_eq!(u.id.as_deref(), Some(&[1u8, 2][..]));
        assert_eq!(u.object.as_deref(), Some("leaf"));
        assert_eq!(u.object_type, Some(ObjectType::Private));
        assert!(u.slot_id.is_none() && u.pin_value.is_none());
        // Our writer emits p11tool's order and encoding: the URI round-trips exactly.
        assert_eq!(u.to_string(), P11TOOL_PRIVATE);
    }

    #[test]
    fn p11tool_token_uris() {
        assert_eq!(parse(P11TOOL_TOKEN).to_string(), P11TOOL_TOKEN);
        let trust = parse(P11TOOL_TRUST);
        assert_eq!(trust.manufacturer.as_deref(), Some("PKCS#11 Kit"));
        assert_eq!(trust.token.as_deref(), Some("System Trust"));
        assert_eq!(trust.to_string(), P11TOOL_TRUST);
    }

    #[test]
    fn every_attribute() {
        let u = parse(
            "pkcs11:token=A;manufacturer=B;model=C;serial=D;slot-description=E;\
             slot-manufacturer=F;slot-id=0;library-manufacturer=G;library-description=H;\
             library-version=2.6;object=I;id=%AB%cd;type=cert\
             ?pin-source=file:/run/pin&module-name=softhsm2&module-path=/usr/lib/x.so",
        );
        assert_eq!(u.slot_id, Some(0), "slot-id=0 is a valid slot");
        assert_eq!(u.slot_description.as_deref(), Some("E"));
        assert_eq!(u.slot_manufacturer.as_deref(), Some("F"));
        assert_eq!(u.library_manufacturer.as_deref(), Some("G"));
        assert_eq!(u.library_description.as_deref(), Some("H"));
        assert_eq!(u.library_version, Some((2, Some(6))));
        assert_eq!(u.id, Some(vec![0xab, 0xcd]));
        assert_eq!(u.object_type, Some(ObjectType::Cert));
        assert_eq!(u.pin_source, Some(PinSource::File("/run/pin".into())));
        assert_eq!(u.module_name.as_deref(), Some("softhsm2"));
        assert_eq!(u.module_path, Some(PathBuf::from("/usr/lib/x.so")));
        assert!(u.matches_library("G", "H", (2, 6)));
        assert!(!u.matches_library("G", "H", (2, 5)));
    }

    #[test]
    fn pin_value_and_sources() {
        let u = parse("pkcs11:token=t?pin-value=12%2034");
        assert_eq!(u.pin_value.as_ref().map(Secret::expose), Some("12 34"));
        assert!(
            !u.to_string().contains("12"),
            "pin-value is never written back"
        );
        for (src, path) in [
            ("file:/p", "/p"),
            ("file:///p", "/p"),
            ("file://localhost/p", "/p"),
            ("/p", "/p"),
            ("file:%2Fa%20b", "/a b"),
        ] {
            let u = parse(&format!("pkcs11:?pin-source={src}"));
            assert_eq!(u.pin_source, Some(PinSource::File(path.into())), "{src}");
        }
        assert!(err("pkcs11:?pin-source=|/bin/echo").contains("not supported"));
        assert!(err("pkcs11:?pin-source=file://host/p").contains("local files"));
    }

    #[test]
    fn lenient_forms() {
        assert!(parse("PKCS11:token=a").token.is_some());
        assert_eq!(parse("pkcs11:").to_string(), "pkcs11:");
        assert_eq!(
            parse("pkcs11:token=My Token").token.as_deref(),
            Some("My Token")
        );
        assert_eq!(
            parse("pkcs11:object-type=cert").object_type,
            Some(ObjectType::Cert)
        );
        assert_eq!(parse("pkcs11:token=").token.as_deref(), Some(""));
        assert_eq!(
            parse("pkcs11:library-version=3").library_version,
            Some((3, None))
        );
        assert_eq!(parse("pkcs11:token=a;").token.as_deref(), Some("a"));
        // Reserved characters that RFC 7512 lets values carry unencoded.
        assert_eq!(
            parse("pkcs11:object=a:b@c(d)*+,=&").object.as_deref(),
            Some("a:b@c(d)*+,=&")
        );
    }

    #[test]
    fn malformed_uris_say_why() {
        for (uri, why) in [
            ("token=a", "must start with \"pkcs11:\""),
            ("pkcs12:token=a", "must start with \"pkcs11:\""),
            ("pkcs11:token", "has no '='"),
            ("pkcs11:token=a;token=b", "appears twice"),
            ("pkcs11:token=%4", "two hex digits"),
            ("pkcs11:token=%zz", "two hex digits"),
            ("pkcs11:slot-id=-1", "not a decimal number"),
            ("pkcs11:slot-id=0x1", "not a decimal number"),
            ("pkcs11:slot-id=99999999999999999999999", "too large"),
            ("pkcs11:type=key", "not one of"),
            ("pkcs11:label=a", "unknown path attribute"),
            ("pkcs11:x-vendor=a", "unknown path attribute"),
            ("pkcs11:?pin=1", "unknown query attribute"),
            ("pkcs11:pin-value=1", "query attribute"),
            ("pkcs11:?token=a", "path attribute"),
            ("pkcs11:object=%ff%fe", "not UTF-8"),
            ("pkcs11:library-version=a.b", "not a version"),
            ("pkcs11:token=a#frag", "no fragment"),
            ("pkcs11:token=a\nb", "control character"),
            ("pkcs11:?module-name=../x", "bare name"),
            ("pkcs11:?module-path=", "empty"),
            ("pkcs11:?pin-source=", "not supported"),
        ] {
            let reason = err(uri);
            assert!(reason.contains(why), "{uri}: {reason}");
        }
    }

    /// Found by the fuzz target (tests/it/fuzz/pkcs11_uri.rs): the URI and decoded values
    /// were echoed with their control characters.
    #[test]
    fn errors_are_one_line() {
        for uri in [
            "\u{0}",
            "\u{1b}[2Jpkcs11:token=a",
            "pkcs11:token=a\nra-signer: forged",
            "pkcs11:slot-id=%0Ara-signer:%20forged",
            "pkcs11:type=%1b[2J",
        ] {
            let e = Pkcs11Uri::parse(uri).expect_err(uri).to_string();
            assert!(!e.chars().any(char::is_control), "{uri:?}: {e:?}");
        }
    }

    #[test]
    fn errors_never_show_the_pin() {
        let e = Pkcs11Uri::parse("pkcs11:bogus=1?pin-value=s3cret").expect_err("bad");
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert!(e.to_string().contains("pin-value=***"));
        for uri in [
            "pkcs11:token=t;pin-value=987654",
            "pkcs11:token=t;pin-value=987654?module-name=x",
            "PKCS11:token=t?pin-value=987654",
            " pkcs11:token=t?PIN-VALUE=987654",
            "pkcs11:token=t?pin%2Dvalue=987654",
            "pkcs11:token=t?pin%2dValue=987654&module-name=softhsm2",
            "pkcs11:token=t;pin-value%3D987654",
            "pkcs11:token=t?pin-value=98;7654",
            "pkcs11:token=t?pin-value=987654#frag",
            "pkcs11:token=t?pin-value=987654&pin-value=987654",
            "pkcs11:token=t?pin-valeu=987654",
            "pkcs11:token=t?pin=987654",
            "pkcs11:token=t?pin-value",
            "pkcs11:token=t?pin-value=987654\n",
            "pkcs11:token=t?%70in-value=987654",
            "pkcs11:token=t?bogus&pin-value=987654",
            "pkcs11:token=t;pin-value=98?7654",
            "pkcs11:token=t;pin%3D987654=1",
            "pkcs11:token=t?pin%3D987654=1",
            "pkcs11:token=t?pin-value=1&pin-value=987654",
            // Found by the fuzz target: a `?` before the scheme.
            "?pkcs11:token=t;pin-value=987654",
            "pkcs11:token=t?module-name=m;pin-value=987654",
        ] {
            let shown = redact_pin_value(uri);
            assert!(
                !shown.contains("987654") && !shown.contains("7654"),
                "{uri}: {shown}"
            );
            if let Err(e) = Pkcs11Uri::parse(uri) {
                assert!(!e.to_string().contains("7654"), "{uri}: {e}");
            }
        }
        assert_eq!(
            redact_pin_value("pkcs11:token=t;object=k?pin-source=file:/p&module-name=m"),
            "pkcs11:token=t;object=k?pin-source=file:/p&module-name=m"
        );
        assert_eq!(
            redact_pin_value("PKCS11:token=t?PIN-VALUE=1"),
            "PKCS11:token=t?PIN-VALUE=***"
        );
        // Found by the fuzz target: a pin-value in the path part, in another case, or in
        // text that is no URI at all was echoed whole.
        for uri in [
            "pkcs11:token=a;pin-value=s3cret",
            "pkcs11:token=a;PIN-VALUE=s3cret;object=b",
            "PKCS11:bogus=1?Pin-Value=s3cret&pin-value=s3cret",
            "pin-value=s3cret",
            " pkcs11:x=1?a=b&pin-value=s3cret#frag",
        ] {
            let e = Pkcs11Uri::parse(uri).expect_err(uri).to_string();
            assert!(!e.contains("s3cret"), "{uri}: {e}");
        }
    }

    #[test]
    fn token_matching() {
        let t = TokenDesc {
            slot_id: 0,
            label: "t1".into(),
            manufacturer: "SoftHSM project".into(),
            model: "SoftHSM v2".into(),
            serial: "3fa05383a42bacfe".into(),
            slot: Some(SlotDesc {
                description: "SoftHSM slot ID 0x0".into(),
                manufacturer: "SoftHSM project".into(),
            }),
        };
        assert!(parse(P11TOOL_PRIVATE).matches_token(&t));
        assert!(parse("pkcs11:slot-id=0").matches_token(&t));
        assert!(!parse("pkcs11:slot-id=1").matches_token(&t));
        assert!(!parse("pkcs11:token=t2").matches_token(&t));
        let by_slot = parse("pkcs11:slot-description=SoftHSM%20slot%20ID%200x0");
        assert!(by_slot.names_slot_info() && by_slot.matches_token(&t));
        assert!(!parse("pkcs11:slot-manufacturer=Other").matches_token(&t));
        // Unread slot information never matches a URI that names it.
        let unread = TokenDesc {
            slot: None,
            ..t.clone()
        };
        assert!(!by_slot.matches_token(&unread));
        assert!(parse(P11TOOL_PRIVATE).matches_token(&unread));
        assert!(!parse(P11TOOL_PRIVATE).names_slot_info());
        assert_eq!(t.uri().to_string(), P11TOOL_TOKEN);
    }
}
