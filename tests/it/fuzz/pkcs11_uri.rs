//! `pkcs11:` URIs (RFC 7512) through [`Pkcs11Uri::parse`]: mutated seeds, and URIs built
//! from generated attribute values and compared with what was put in.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestCaseResult};
use ra_signer::signer::pkcs11::Pkcs11Uri;
use ra_signer::signer::pkcs11::uri::ObjectType;

use super::{check_message, corpus, fuzz, inputs};

const TOKENS: &[&[u8]] = &[
    b"pkcs11:",
    b";",
    b"?",
    b"&",
    b"=",
    b"%",
    b"%2",
    b"%00",
    b"%ff",
    b"#",
    b"pin-value=",
    b"PIN-VALUE=",
    b"pin-source=file:",
    b"module-path=",
    b"slot-id=",
    b"library-version=",
    b"type=",
    b"id=",
    b"\xc3\xa9",
];

/// The PIN every generated `pin-value` carries: long and odd enough never to appear in a
/// message by accident.
const PIN: &str = "9q8w7e6r5t";

/// The URI without its PIN, as text that compares every attribute.
fn shape(uri: &Pkcs11Uri) -> String {
    let mut uri = uri.clone();
    uri.pin_value = None;
    format!("{uri:?}")
}

/// What holds for any text: parse never panics; a refusal is one line without control
/// characters and never shows a `pin-value`; an accepted URI writes back (Display) without
/// its PIN, to a URI that parses to the same attributes, and writing is idempotent.
fn property(input: &[u8]) -> TestCaseResult {
    let text = String::from_utf8_lossy(input);
    let pins = pin_values(&text);
    let uri = match Pkcs11Uri::parse(&text) {
        Ok(uri) => uri,
        Err(e) => {
            let message = e.to_string();
            check_message("the URI error", &message)?;
            for pin in &pins {
                if message.contains(pin.as_str()) {
                    return Err(TestCaseError::fail(format!(
                        "the URI error shows the pin-value {pin:?}: {message}"
                    )));
                }
            }
            return Ok(());
        }
    };
    let written = uri.to_string();
    let mut names = written
        .trim_start_matches("pkcs11:")
        .split([';', '?', '&'])
        .map(|part| {
            part.split('=')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase()
        });
    if names.any(|name| name == "pin-value") {
        return Err(TestCaseError::fail(format!(
            "the written URI has a pin-value: {written}"
        )));
    }
    let again = Pkcs11Uri::parse(&written)
        .map_err(|e| TestCaseError::fail(format!("the written URI {written:?} is refused: {e}")))?;
    if shape(&again) != shape(&uri) {
        return Err(TestCaseError::fail(format!(
            "{written:?} reads back as {} instead of {}",
            shape(&again),
            shape(&uri)
        )));
    }
    if again.to_string() != written {
        return Err(TestCaseError::fail(format!(
            "writing {written:?} is not idempotent"
        )));
    }
    Ok(())
}

/// The values of the `pin-value` attributes of the text, wherever they stand and whatever
/// their case, that occur nowhere else in it (so that finding one in a message means it was
/// echoed, not that a neighbouring attribute was).
fn pin_values(text: &str) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    lower
        .match_indices("pin-value=")
        .filter(|(at, _)| {
            let before = &lower[..*at];
            before.trim_start().is_empty()
                || before.ends_with("pkcs11:")
                || before.ends_with([';', '?', '&'])
        })
        .map(|(at, name)| {
            text[at + name.len()..]
                .split(['&', ';', '?', '#'])
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .filter(|pin| pin.len() >= 4 && text.matches(pin.as_str()).count() == 1)
        .collect()
}

#[test]
fn pkcs11_uris() {
    let seeds = corpus("pkcs11-uri").into_iter().map(|(_, b)| b).collect();
    fuzz(
        "pkcs11-uri",
        super::cases(4000),
        inputs(seeds, TOKENS),
        property,
    );
}

/// A value for one generated attribute.
#[derive(Debug, Clone)]
enum Value {
    Text(&'static str, String),
    Id(Vec<u8>),
    SlotId(u64),
    Type(ObjectType),
    Version(u8, Option<u8>),
    Pin,
    ModulePath(String),
}

const TEXT_ATTRS: &[&str] = &[
    "token",
    "manufacturer",
    "model",
    "serial",
    "slot-description",
    "slot-manufacturer",
    "library-manufacturer",
    "library-description",
    "object",
];

fn value() -> impl Strategy<Value = Value> {
    let types = proptest::sample::select(vec![
        ObjectType::Private,
        ObjectType::Public,
        ObjectType::Cert,
        ObjectType::SecretKey,
        ObjectType::Data,
    ]);
    prop_oneof![
        6 => (proptest::sample::select(TEXT_ATTRS), any::<String>())
            .prop_map(|(name, v)| Value::Text(name, v)),
        1 => vec(any::<u8>(), 0..20).prop_map(Value::Id),
        1 => any::<u64>().prop_map(Value::SlotId),
        1 => types.prop_map(Value::Type),
        1 => (any::<u8>(), any::<Option<u8>>()).prop_map(|(a, b)| Value::Version(a, b)),
        1 => Just(Value::Pin),
        1 => "/[a-zA-Z0-9 ._%&;?=#-]{1,20}".prop_map(Value::ModulePath),
    ]
}

fn name_of(v: &Value) -> &'static str {
    match v {
        Value::Text(name, _) => name,
        Value::Id(_) => "id",
        Value::SlotId(_) => "slot-id",
        Value::Type(_) => "type",
        Value::Version(..) => "library-version",
        Value::Pin => "pin-value",
        Value::ModulePath(_) => "module-path",
    }
}

/// RFC 3986 percent-encoding of every byte but the unreserved ones, written independently
/// of the crate's encoder.
fn pct(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

/// URIs assembled from generated attributes (any order, names in any case, values fully
/// percent-encoded): each is accepted, each attribute reads back as generated, and the
/// PIN never shows in the written form.
#[test]
fn generated_pkcs11_uris_read_back() {
    let strategy = (vec(value(), 0..10), any::<u32>()).prop_map(|(values, case)| {
        let mut seen = Vec::new();
        let values: Vec<Value> = values
            .into_iter()
            .filter(|v| {
                let fresh = !seen.contains(&name_of(v));
                seen.push(name_of(v));
                fresh
            })
            .collect();
        let shout = |name: &str, bit: usize| {
            if case >> (bit % 32) & 1 == 1 {
                name.to_ascii_uppercase()
            } else {
                name.to_owned()
            }
        };
        let (mut path, mut query) = (Vec::new(), Vec::new());
        for (i, v) in values.iter().enumerate() {
            let name = shout(name_of(v), i);
            match v {
                Value::Text(_, s) => path.push(format!("{name}={}", pct(s.as_bytes()))),
                Value::Id(id) => path.push(format!("{name}={}", pct(id))),
                Value::SlotId(n) => path.push(format!("{name}={n}")),
                Value::Type(t) => path.push(format!("{name}={}", t.as_str())),
                Value::Version(a, Some(b)) => path.push(format!("{name}={a}.{b}")),
                Value::Version(a, None) => path.push(format!("{name}={a}")),
                Value::Pin => query.push(format!("{name}={PIN}")),
                Value::ModulePath(p) => query.push(format!("{name}={}", pct(p.as_bytes()))),
            }
        }
        let scheme = if case & 1 == 1 { "PKCS11:" } else { "pkcs11:" };
        let mut text = format!("{scheme}{}", path.join(";"));
        if !query.is_empty() {
            text = format!("{text}?{}", query.join("&"));
        }
        (text, values)
    });
    let (mut runner, _) = super::runner(super::cases(2000));
    runner
        .run(&strategy, |(text, values)| {
            let uri = Pkcs11Uri::parse(&text)
                .map_err(|e| TestCaseError::fail(format!("{text:?} is refused: {e}")))?;
            for v in &values {
                let ok = match v {
                    Value::Text(name, s) => {
                        let got = match *name {
                            "token" => &uri.token,
                            "manufacturer" => &uri.manufacturer,
                            "model" => &uri.model,
                            "serial" => &uri.serial,
                            "slot-description" => &uri.slot_description,
                            "slot-manufacturer" => &uri.slot_manufacturer,
                            "library-manufacturer" => &uri.library_manufacturer,
                            "library-description" => &uri.library_description,
                            _ => &uri.object,
                        };
                        got.as_deref() == Some(s.as_str())
                    }
                    Value::Id(id) => uri.id.as_deref() == Some(id.as_slice()),
                    Value::SlotId(n) => uri.slot_id == Some(*n),
                    Value::Type(t) => uri.object_type == Some(*t),
                    Value::Version(a, b) => uri.library_version == Some((*a, *b)),
                    Value::Pin => uri.pin_value.as_ref().map(|p| p.expose()) == Some(PIN),
                    Value::ModulePath(p) => {
                        uri.module_path.as_deref() == Some(std::path::Path::new(p))
                    }
                };
                if !ok {
                    return Err(TestCaseError::fail(format!(
                        "{text:?}: {v:?} reads back as {uri:?}"
                    )));
                }
            }
            let written = uri.to_string();
            if written.contains(PIN) {
                return Err(TestCaseError::fail(format!("{written:?} shows the PIN")));
            }
            property(text.as_bytes())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
