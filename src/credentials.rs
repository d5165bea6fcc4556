//! Temporary AWS credentials: zeroized on drop, redacted in `Debug`, and rendered in the
//! forms the SDKs read.

use std::fmt;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::secret::Secret;
use crate::time::UtcTime;

/// A set of temporary credentials from CreateSession.
#[derive(Clone)]
pub struct Credentials {
    /// The access key id (not secret, but not logged either).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token.
    pub session_token: Secret,
    /// When they expire.
    pub expiration: UtcTime,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &"** redacted **")
            .field("expiration", &self.expiration.rfc3339())
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessOutput<'a> {
    version: u8,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: &'a str,
    expiration: String,
}

impl Credentials {
    /// The `credential_process` JSON (one line, no trailing newline), in a buffer that is
    /// zeroized when dropped.
    pub fn to_process_json(&self) -> Zeroizing<String> {
        let out = ProcessOutput {
            version: 1,
            access_key_id: &self.access_key_id,
            secret_access_key: self.secret_access_key.expose(),
            session_token: self.session_token.expose(),
            expiration: self.expiration.rfc3339(),
        };
        Zeroizing::new(serde_json::to_string(&out).unwrap_or_default())
    }

    /// Seconds left before expiry at `now` (0 when expired).
    pub fn seconds_left(&self, now: UtcTime) -> u64 {
        self.expiration.unix().saturating_sub(now.unix())
    }
}

/// Why a CreateSession response body could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ResponseError(pub String);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionResponse {
    credential_set: Vec<CredentialSetEntry>,
}

#[derive(Deserialize)]
struct CredentialSetEntry {
    credentials: RawCredentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
}

/// The least validity accepted from the endpoint: credentials expiring sooner are useless to
/// the SDKs (they refresh at once) and would make `serve` answer with dead ones.
pub const MIN_FRESH_VALIDITY: u64 = 60;

/// Checks one credential field against its alphabet and length, so that no byte of the
/// endpoint's can reach an INI file, a JSON line or an HTTP header as anything but a value.
/// The value itself is never put in the error.
fn check_field(
    name: &str,
    value: &str,
    lengths: std::ops::RangeInclusive<usize>,
    allowed: fn(u8) -> bool,
) -> Result<(), ResponseError> {
    if !lengths.contains(&value.len()) {
        return Err(ResponseError(format!(
            "the CreateSession response has a {name} of {} bytes (expected {}..={})",
            value.len(),
            lengths.start(),
            lengths.end()
        )));
    }
    if let Some(bad) = value.bytes().find(|b| !allowed(*b)) {
        let shown = if bad.is_ascii_graphic() {
            format!("'{}'", bad as char)
        } else {
            format!("byte 0x{bad:02x}")
        };
        return Err(ResponseError(format!(
            "the CreateSession response has a {name} holding {shown}, which no AWS credential holds: refused"
        )));
    }
    Ok(())
}

fn base64ish(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

/// Parses a CreateSession 201 body into credentials (from `credentialSet[0]`), refusing
/// fields outside their alphabet and length, and credentials that are expired or expire
/// within [`MIN_FRESH_VALIDITY`] of `now`.
pub fn parse_create_session(body: &[u8], now: UtcTime) -> Result<Credentials, ResponseError> {
    let parsed: SessionResponse = serde_json::from_slice(body).map_err(|e| {
        ResponseError(format!(
            "the CreateSession response is not the expected JSON ({})",
            e.classify_name()
        ))
    })?;
    let entry = parsed.credential_set.into_iter().next().ok_or_else(|| {
        ResponseError("the CreateSession response has no credentials (empty credentialSet)".into())
    })?;
    let raw = entry.credentials;
    if raw.access_key_id.is_empty()
        || raw.secret_access_key.is_empty()
        || raw.session_token.is_empty()
    {
        return Err(ResponseError(
            "the CreateSession response has empty credentials".into(),
        ));
    }
    // STS: access key ids are 16..128 word characters; secrets are 40 base64 characters;
    // session tokens are base64, a few KB at most even with session tags and policies.
    check_field("accessKeyId", &raw.access_key_id, 16..=128, |b| {
        b.is_ascii_alphanumeric() || b == b'_'
    })?;
    check_field(
        "secretAccessKey",
        &raw.secret_access_key,
        16..=128,
        base64ish,
    )?;
    check_field("sessionToken", &raw.session_token, 16..=16384, |b| {
        base64ish(b) || matches!(b, b'-' | b'_')
    })?;
    check_field("expiration", &raw.expiration, 20..=40, |b| {
        b.is_ascii_digit() || matches!(b, b'-' | b':' | b'.' | b'T' | b'Z' | b'+')
    })?;
    let expiration = UtcTime::parse_rfc3339(&raw.expiration).ok_or_else(|| {
        ResponseError(
            "the CreateSession response has an expiration that is not an RFC 3339 time".into(),
        )
    })?;
    if expiration.unix() < now.unix().saturating_add(MIN_FRESH_VALIDITY) {
        return Err(ResponseError(format!(
            "the CreateSession response holds credentials that {} ({}): refused",
            if expiration.unix() <= now.unix() {
                "have already expired"
            } else {
                "expire within a minute"
            },
            expiration.rfc3339()
        )));
    }
    Ok(Credentials {
        access_key_id: raw.access_key_id,
        secret_access_key: Secret::new(raw.secret_access_key),
        session_token: Secret::new(raw.session_token),
        expiration,
    })
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "fields missing or of the wrong type",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_ID: &str = "ASIAEXAMPLEEXAMPLE12";
    const SECRET: &str = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEYab";
    const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE+/TOKEN==";

    fn now() -> UtcTime {
        UtcTime::parse_rfc3339("2025-12-11T15:34:25Z").expect("time")
    }

    fn body(key_id: &str, secret: &str, token: &str, expiration: &str) -> String {
        serde_json::json!({
            "credentialSet": [{
                "assumedRoleUser": {"arn": "a", "assumedRoleId": "b"},
                "credentials": {
                    "accessKeyId": key_id,
                    "expiration": expiration,
                    "secretAccessKey": secret,
                    "sessionToken": token,
                },
                "packedPolicySize": 0, "roleArn": "r", "sourceIdentity": "s",
            }],
            "subjectArn": "x",
        })
        .to_string()
    }

    #[test]
    fn parses_and_renders_process_json() {
        let b = body(KEY_ID, SECRET, TOKEN, "2025-12-11T16:34:25Z");
        let c = parse_create_session(b.as_bytes(), now()).expect("parse");
        assert_eq!(
            c.to_process_json().as_str(),
            format!(
                r#"{{"Version":1,"AccessKeyId":"{KEY_ID}","SecretAccessKey":"{SECRET}","SessionToken":"{TOKEN}","Expiration":"2025-12-11T16:34:25Z"}}"#
            )
        );
        let dbg = format!("{c:?}");
        assert!(!dbg.contains(SECRET) && !dbg.contains(TOKEN) && !dbg.contains(KEY_ID));
    }

    #[test]
    fn bad_bodies_say_why_without_echoing_them() {
        for (body, why) in [
            ("garbage SECRET".to_owned(), "not JSON"),
            (r#"{"credentialSet":[]}"#.to_owned(), "empty credentialSet"),
            (
                r#"{"credentialSet":[{"credentials":{}}]}"#.to_owned(),
                "fields missing",
            ),
            (body(KEY_ID, SECRET, TOKEN, "soon SECRET"), "expiration"),
        ] {
            let err = parse_create_session(body.as_bytes(), now())
                .expect_err(&body)
                .0;
            assert!(err.contains(why), "{err}");
            assert!(!err.contains("SECRET"), "{err}");
        }
    }

    /// What a hostile endpoint (or a proxy, or --no-verify-ssl) could send: each refused,
    /// and the value never echoed.
    #[test]
    fn fields_outside_their_alphabet_or_length_are_refused() {
        let long = "A".repeat(129);
        let huge = "A".repeat(16385);
        let injected = format!("{SECRET}\n[evil]\ncredential_process = touch /tmp/x");
        let later = "2025-12-11T16:34:25Z";
        for (body, field) in [
            (body(&injected, SECRET, TOKEN, later), "accessKeyId"),
            (body("ASIA\"}{x", SECRET, TOKEN, later), "accessKeyId"),
            (body("ASIA", SECRET, TOKEN, later), "accessKeyId"),
            (body(&long, SECRET, TOKEN, later), "accessKeyId"),
            (body(KEY_ID, &injected, TOKEN, later), "secretAccessKey"),
            (
                body(KEY_ID, "wJalr Xutn FEMI K7MD", TOKEN, later),
                "secretAccessKey",
            ),
            (body(KEY_ID, &long, TOKEN, later), "secretAccessKey"),
            (
                body(KEY_ID, SECRET, &format!("{TOKEN}\r\nX-Evil: 1"), later),
                "sessionToken",
            ),
            (
                body(KEY_ID, SECRET, &format!("{TOKEN}\u{1b}[2J"), later),
                "sessionToken",
            ),
            (body(KEY_ID, SECRET, &huge, later), "sessionToken"),
            (
                body(KEY_ID, SECRET, TOKEN, "2025-12-11T16:34:25Z\n[x]"),
                "expiration",
            ),
            (
                body(KEY_ID, SECRET, TOKEN, "2025-13-45T99:99:99Z"),
                "expiration",
            ),
        ] {
            let err = parse_create_session(body.as_bytes(), now())
                .expect_err(&body)
                .0;
            assert!(err.contains(field), "{field}: {err}");
            assert!(
                !err.contains("evil") && !err.contains("touch") && !err.contains('\n'),
                "{err}"
            );
        }
    }

    #[test]
    fn expired_or_nearly_expired_credentials_are_refused() {
        for (expiration, why) in [
            ("2025-12-11T14:34:25Z", "already expired"),
            ("2025-12-11T15:34:25Z", "already expired"),
            ("2025-12-11T15:35:00Z", "within a minute"),
        ] {
            let b = body(KEY_ID, SECRET, TOKEN, expiration);
            let err = parse_create_session(b.as_bytes(), now())
                .expect_err(expiration)
                .0;
            assert!(err.contains(why), "{expiration}: {err}");
        }
        let b = body(KEY_ID, SECRET, TOKEN, "2025-12-11T15:35:25Z");
        assert!(
            parse_create_session(b.as_bytes(), now()).is_ok(),
            "a minute is enough"
        );
    }
}
