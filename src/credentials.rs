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

/// Parses a CreateSession 201 body into credentials (from `credentialSet[0]`).
pub fn parse_create_session(body: &[u8]) -> Result<Credentials, ResponseError> {
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
    let expiration = UtcTime::parse_rfc3339(&raw.expiration).ok_or_else(|| {
        ResponseError(format!(
            "the CreateSession response has an unreadable expiration \"{}\"",
            raw.expiration
        ))
    })?;
    if raw.access_key_id.is_empty()
        || raw.secret_access_key.is_empty()
        || raw.session_token.is_empty()
    {
        return Err(ResponseError(
            "the CreateSession response has empty credentials".into(),
        ));
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

    const BODY: &str = r#"{"credentialSet":[{"assumedRoleUser":{"arn":"a","assumedRoleId":"b"},"credentials":{"accessKeyId":"ASIAEXAMPLE","expiration":"2025-12-11T16:34:25Z","secretAccessKey":"SECRETKEY","sessionToken":"TOKEN"},"packedPolicySize":0,"roleArn":"r","sourceIdentity":"s"}],"subjectArn":"x"}"#;

    #[test]
    fn parses_and_renders_process_json() {
        let c = parse_create_session(BODY.as_bytes()).expect("parse");
        assert_eq!(
            c.to_process_json().as_str(),
            r#"{"Version":1,"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"SECRETKEY","SessionToken":"TOKEN","Expiration":"2025-12-11T16:34:25Z"}"#
        );
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("SECRETKEY") && !dbg.contains("TOKEN") && !dbg.contains("ASIAEXAMPLE")
        );
    }

    #[test]
    fn bad_bodies_say_why_without_echoing_them() {
        for (body, why) in [
            ("garbage SECRET", "not JSON"),
            (r#"{"credentialSet":[]}"#, "empty credentialSet"),
            (
                r#"{"credentialSet":[{"credentials":{}}]}"#,
                "fields missing",
            ),
            (
                r#"{"credentialSet":[{"credentials":{"accessKeyId":"A","secretAccessKey":"S","sessionToken":"T","expiration":"soon"}}]}"#,
                "expiration",
            ),
        ] {
            let err = parse_create_session(body.as_bytes()).expect_err(body).0;
            assert!(err.contains(why), "{err}");
            assert!(!err.contains("SECRET"));
        }
    }
}
