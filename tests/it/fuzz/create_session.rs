//! CreateSession response bodies through [`parse_create_session`]: what the endpoint (or a
//! proxy, or anything behind `--no-verify-ssl`) sends before it reaches an INI file, a JSON
//! line or an HTTP header.

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestCaseResult};
use ra_signer::credentials::{MIN_FRESH_VALIDITY, parse_create_session};
use ra_signer::time::UtcTime;

use super::{check_message, corpus, fuzz, inputs};

const TOKENS: &[&[u8]] = &[
    b"\"credentialSet\":[",
    b"{\"credentials\":{",
    b"\"accessKeyId\":\"",
    b"\"secretAccessKey\":\"",
    b"\"sessionToken\":\"",
    b"\"expiration\":\"",
    b"\"2030-01-01T00:00:00Z\"",
    b"\\n[evil]\\ncredential_process = x\\n",
    b"\\u0000",
    b"\\u001b[2J",
    b"\\ud800",
    b"\"",
    b",",
    b"}",
    b"]",
    b"null",
    b"1e999",
];

/// The instant the fuzz runs at: the seeds expire in 2030.
fn now() -> UtcTime {
    UtcTime::from_unix(1_767_225_600) // 2026-01-01T00:00:00Z
}

fn in_alphabet(value: &str, lengths: std::ops::RangeInclusive<usize>, ok: fn(u8) -> bool) -> bool {
    lengths.contains(&value.len()) && value.bytes().all(ok)
}

fn base64ish(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

/// The documented rules (docs/security.md): access key id 16..=128 word characters, secret
/// 16..=128 base64 characters, session token 16..=16384 base64 or base64url characters, an
/// RFC 3339 expiration at least a minute ahead.
fn accepted_is_valid(creds: &ra_signer::credentials::Credentials) -> TestCaseResult {
    let checks = [
        (
            "accessKeyId",
            in_alphabet(&creds.access_key_id, 16..=128, |b| {
                b.is_ascii_alphanumeric() || b == b'_'
            }),
        ),
        (
            "secretAccessKey",
            in_alphabet(creds.secret_access_key.expose(), 16..=128, base64ish),
        ),
        (
            "sessionToken",
            in_alphabet(creds.session_token.expose(), 16..=16384, |b| {
                base64ish(b) || matches!(b, b'-' | b'_')
            }),
        ),
        (
            "expiration",
            creds.expiration.unix() >= now().unix() + MIN_FRESH_VALIDITY,
        ),
    ];
    match checks.iter().find(|(_, ok)| !ok) {
        Some((field, _)) => Err(TestCaseError::fail(format!("accepted a bad {field}"))),
        None => Ok(()),
    }
}

/// Strings of the seeds that must never be echoed in an error.
const SECRETS: &[&str] = &[
    "EXAMPLEKEY",
    "EXAMPLE+/TOKEN",
    "Example_Token",
    "evil",
    "credential_process",
];

fn property(input: &[u8]) -> TestCaseResult {
    match parse_create_session(input, now()) {
        Ok(creds) => {
            accepted_is_valid(&creds)?;
            let json = creds.to_process_json();
            let back: serde_json::Value = serde_json::from_str(&json)
                .map_err(|e| TestCaseError::fail(format!("the process JSON is not JSON: {e}")))?;
            if back["SecretAccessKey"].as_str() != Some(creds.secret_access_key.expose()) {
                return Err(TestCaseError::fail("the process JSON changed the secret"));
            }
            Ok(())
        }
        Err(e) => {
            check_message("the CreateSession error", &e.0)?;
            match SECRETS.iter().find(|s| e.0.contains(*s)) {
                Some(s) => Err(TestCaseError::fail(format!(
                    "the error echoes {s:?}: {}",
                    e.0
                ))),
                None => Ok(()),
            }
        }
    }
}

#[test]
fn create_session_bodies() {
    let seeds = corpus("create-session")
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    fuzz(
        "create-session",
        super::cases(5000),
        inputs(seeds, TOKENS),
        property,
    );
}

/// Bodies whose four fields are drawn from near their alphabets (mostly valid characters,
/// sometimes any character, lengths around the bounds) and expirations around `now`: the
/// parser accepts exactly the ones the documented rules accept.
#[test]
fn generated_credentials_accepted_exactly_when_valid() {
    fn field(len: std::ops::Range<usize>, alphabet: &'static str) -> BoxedStrategy<String> {
        let chars: Vec<char> = alphabet.chars().collect();
        let good = proptest::sample::select(chars);
        let ch = prop_oneof![30 => good, 1 => any::<char>()];
        proptest::collection::vec(ch, len)
            .prop_map(|v| v.into_iter().collect())
            .boxed()
    }
    const WORD: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";
    const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
    const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_";
    let expiration = (-120i64..7200, any::<bool>()).prop_map(|(delta, frac)| {
        let t = UtcTime::from_unix(now().unix().saturating_add_signed(delta));
        let text = t.rfc3339();
        if frac {
            text.replace('Z', ".5+00:00")
        } else {
            text
        }
    });
    let strategy = (
        field(12..132, WORD),
        field(12..132, B64),
        prop_oneof![
            3 => field(12..600, B64URL),
            // Around the 16 KiB bound: a generated chunk repeated, as generating each of
            // 16 K characters would take most of the budget.
            1 => (field(1..64, B64URL), 16380usize..16390)
                .prop_map(|(chunk, len)| chunk.chars().cycle().take(len).collect()),
        ],
        expiration,
    );
    let (mut runner, _) = super::runner(super::cases(1000));
    runner
        .run(&strategy, |(key_id, secret, token, expiration)| {
            let body = serde_json::json!({"credentialSet": [{"credentials": {
                "accessKeyId": key_id, "secretAccessKey": secret,
                "sessionToken": token, "expiration": expiration,
            }}]})
            .to_string();
            let valid = in_alphabet(&key_id, 16..=128, |b| {
                b.is_ascii_alphanumeric() || b == b'_'
            }) && in_alphabet(&secret, 16..=128, base64ish)
                && in_alphabet(&token, 16..=16384, |b| {
                    base64ish(b) || matches!(b, b'-' | b'_')
                })
                && super::rfc3339::reference(&expiration)
                    .is_some_and(|t| t >= now().unix() + MIN_FRESH_VALIDITY);
            match parse_create_session(body.as_bytes(), now()) {
                Ok(creds) if valid => {
                    if creds.access_key_id != key_id || creds.secret_access_key.expose() != secret {
                        return Err(TestCaseError::fail("the credentials changed on the way"));
                    }
                    Ok(())
                }
                Ok(_) => Err(TestCaseError::fail(format!(
                    "accepted invalid credentials (expiration {expiration:?})"
                ))),
                Err(e) if valid => Err(TestCaseError::fail(format!(
                    "refused valid credentials: {}",
                    e.0
                ))),
                Err(e) => check_message("the CreateSession error", &e.0),
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
