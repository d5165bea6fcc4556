//! A minimal S3 `ListBuckets` (`GET /`, path style) that accepts only the credentials this
//! emulator issued: it proves that what `CreateSession` hands out signs real requests, and
//! lets a fresh machine go as far as `aws s3 ls` without AWS.
//!
//! The check is standard SigV4 (`AWS4-HMAC-SHA256`) verified the way S3 does, written from
//! the public "Signature Version 4 signing process" and independent of any client: the
//! `Authorization` header, the canonical request from the request as received, the string
//! to sign, the HMAC key derivation and a constant-time comparison; then the date against
//! the emulator's clock, and the access key, its expiry and its session token against what
//! [`IssuedStore`] remembers. Everything here is pure: the time is passed in.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use hyper::HeaderMap;
use ring::hmac;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::arn::Arn;
use crate::clock;
use crate::sigv4::{self, CanonicalRequest};
use crate::verify::Request;

/// The only algorithm S3 takes in an `Authorization` header today.
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service name in the credential scope.
pub(crate) const SERVICE: &str = "s3";
/// S3 refuses a request signed more than 15 minutes away from its clock.
pub(crate) const MAX_SKEW: u64 = 15 * 60;
/// The most credentials remembered: a long-running emulator must not grow without bound.
pub(crate) const MAX_ISSUED: usize = 10_000;
/// S3's limit on the request header section (names, values and separators).
pub(crate) const MAX_HEADER_SECTION: usize = 8 * 1024;
/// `x-amz-content-sha256` for a payload the client chose not to hash.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The namespace of every S3 XML document.
const XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// What the emulator issued under one access key id.
pub(crate) struct Issued {
    /// The secret access key the client signs with.
    pub secret: Zeroizing<String>,
    /// The session token that must come with it; `None` for a long-term key (only the
    /// unit tests' published AWS example keys).
    pub session_token: Option<Zeroizing<String>>,
    /// Expiration, Unix seconds of the emulator's clock.
    pub expires: u64,
    /// The role the session assumed.
    pub role: Arn,
    /// The role session name.
    pub session_name: String,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("secret", &"** redacted **")
            .field("session_token", &"** redacted **")
            .field("expires", &self.expires)
            .field("role", &self.role.to_string())
            .field("session_name", &self.session_name)
            .finish()
    }
}

/// The credentials issued so far, at most `capacity`: when full, the expired ones go
/// first, then the oldest.
#[derive(Debug)]
pub(crate) struct IssuedStore {
    by_key: HashMap<String, Issued>,
    /// Access key ids, oldest first.
    order: VecDeque<String>,
    capacity: usize,
}

impl IssuedStore {
    /// An empty store holding at most `capacity` (≥ 1) credentials.
    pub(crate) fn new(capacity: usize) -> IssuedStore {
        IssuedStore {
            by_key: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Remembers `issued` under `access_key_id` at `now`, making room if needed.
    pub(crate) fn insert(&mut self, access_key_id: String, issued: Issued, now: u64) {
        if !self.by_key.contains_key(&access_key_id) && self.by_key.len() >= self.capacity {
            let by_key = &mut self.by_key;
            self.order.retain(|k| {
                let expired = by_key.get(k).is_none_or(|i| i.expires <= now);
                if expired {
                    by_key.remove(k);
                }
                !expired
            });
            while self.by_key.len() >= self.capacity {
                match self.order.pop_front() {
                    Some(oldest) => {
                        self.by_key.remove(&oldest);
                    }
                    None => break,
                }
            }
        }
        if self.by_key.insert(access_key_id.clone(), issued).is_none() {
            self.order.push_back(access_key_id);
        }
    }

    /// The credentials issued under `access_key_id`, expired or not.
    pub(crate) fn get(&self, access_key_id: &str) -> Option<&Issued> {
        self.by_key.get(access_key_id)
    }

    /// How many credentials are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }
}

/// An S3 error as S3 answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct S3Error {
    /// HTTP status.
    pub status: u16,
    /// S3 error code (`<Code>`).
    pub code: &'static str,
    /// `<Message>`.
    pub message: String,
    /// Stable name of the failed check, for the log and tests.
    pub check: &'static str,
    /// The access key id claimed, once parsed (an identifier, not a secret).
    pub access_key: Option<String>,
}

/// Who a verified request came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The access key id.
    pub access_key: String,
    /// The role its session assumed.
    pub role: Arn,
    /// The role session name.
    pub session_name: String,
}

/// A syntactically valid SigV4 `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authorization {
    /// The access key id.
    pub access_key: String,
    /// `YYYYMMDD` of the scope.
    pub date: String,
    /// The region of the scope.
    pub region: String,
    /// The service of the scope.
    pub service: String,
    /// Signed header names: lower-case, sorted, unique.
    pub signed_headers: Vec<String>,
    /// The signature: 32 bytes.
    pub signature: Vec<u8>,
}

impl Authorization {
    /// `date/region/service/aws4_request`.
    pub(crate) fn scope(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.date,
            self.region,
            self.service,
            sigv4::TERMINATOR
        )
    }
}

/// Why an `Authorization` value was refused, before any credential is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthProblem {
    /// Not SigV4 (SigV2's `AWS `, a bearer token, …): S3 does not know who is asking.
    Unsupported(String),
    /// SigV4, but malformed.
    Malformed(String),
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/YYYYMMDD/REGION/SERVICE/aws4_request,
/// SignedHeaders=a;b;c, Signature=<64 hex>`. Components in any order, separated by commas
/// with optional spaces, each exactly once. The service and region are checked by the
/// caller, which knows what this endpoint is.
pub(crate) fn parse_authorization(value: &str) -> Result<Authorization, AuthProblem> {
    let malformed =
        |why: &str| AuthProblem::Malformed(format!("The authorization header is malformed; {why}"));
    let value = value.trim();
    let (alg, rest) = value.split_once(' ').unwrap_or((value, ""));
    if alg != ALGORITHM {
        return Err(AuthProblem::Unsupported(if alg == "AWS" {
            "Signature Version 2 is not supported by ra-emulator; sign with AWS4-HMAC-SHA256"
                .to_string()
        } else {
            "Unsupported Authorization Type".to_string()
        }));
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        let Some((key, val)) = part.split_once('=') else {
            return Err(malformed(&format!(
                "the component '{part}' is not KEY=VALUE."
            )));
        };
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return Err(malformed(&format!("unknown component '{key}'."))),
        };
        if slot.replace(val).is_some() {
            return Err(malformed(&format!("the component '{key}' appears twice.")));
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(malformed(
            "it needs Credential, SignedHeaders and Signature.",
        ));
    };

    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, terminator] = parts[..] else {
        return Err(malformed(
            "the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".",
        ));
    };
    if access_key.is_empty() || region.is_empty() {
        return Err(malformed(
            "the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".",
        ));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(&format!(
            "incorrect date format '{date}'. This date in the credential must be in the format \"yyyyMMdd\"."
        )));
    }
    if terminator != sigv4::TERMINATOR {
        return Err(malformed(&format!(
            "incorrect terminal '{terminator}'. This endpoint uses '{}'.",
            sigv4::TERMINATOR
        )));
    }
    let signed_headers: Vec<String> = signed.split(';').map(str::to_string).collect();
    let well_formed = signed_headers.iter().all(|n| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    });
    if !well_formed || signed_headers.windows(2).any(|w| w[0] >= w[1]) {
        return Err(malformed(&format!(
            "SignedHeaders '{signed}' must be lower-case header names, sorted, unique, separated by ';'."
        )));
    }
    let signature = decode_signature(signature)
        .ok_or_else(|| malformed("the Signature must be 64 lower-case hexadecimal characters."))?;
    Ok(Authorization {
        access_key: access_key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers,
        signature,
    })
}

fn decode_signature(s: &str) -> Option<Vec<u8>> {
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        }
    }
    if s.len() != 64 {
        return None;
    }
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// The canonical URI as S3 builds it: the path decoded, then each segment encoded once
/// (RFC 3986, upper-case hex), `/` kept. Other services encode twice; S3 does not, nor
/// does it remove `.` or `..` segments or repeated slashes.
pub(crate) fn canonical_uri(path: &str) -> Result<String, String> {
    let decoded = sigv4::percent_decode(path)
        .ok_or_else(|| format!("Malformed percent-encoding in the path '{path}'"))?;
    let encoded: Vec<String> = decoded
        .split(|&b| b == b'/')
        .map(sigv4::uri_encode)
        .collect();
    let uri = encoded.join("/");
    Ok(if uri.is_empty() { "/".to_string() } else { uri })
}

/// `AWS4-HMAC-SHA256\nX-Amz-Date\nscope\nhex(sha256(canonical request))`.
pub(crate) fn string_to_sign(amz_date: &str, scope: &str, canonical: &CanonicalRequest) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sigv4::sha256_hex(canonical.to_string().as_bytes())
    )
}

/// The signing key: HMAC-SHA256 chained over the date, region, service and
/// `aws4_request`, starting from `"AWS4" + secret`.
pub(crate) fn signing_key(
    secret: &str,
    date: &str,
    region: &str,
    service: &str,
) -> Zeroizing<Vec<u8>> {
    let mut key = Zeroizing::new(format!("AWS4{secret}").into_bytes());
    for step in [date, region, service, sigv4::TERMINATOR] {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), step.as_bytes());
        key = Zeroizing::new(tag.as_ref().to_vec());
    }
    key
}

/// The total size of the header section as S3 counts it: `name: value\r\n` per header.
fn header_section_len(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum()
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Verifies a signed S3 request at `now` (the emulator's clock, Unix seconds) for an
/// endpoint in `region`, against the credentials in `store`. The first failure decides
/// the error, in this order: the header's form, the date, what is signed, the access key,
/// its expiry, its session token, and only then the signature (S3 does not publish its
/// order; this one never computes an HMAC for a key it does not know).
pub(crate) fn authenticate(
    req: &Request<'_>,
    store: &IssuedStore,
    region: &str,
    now: u64,
) -> Result<Caller, S3Error> {
    let mut access_key = None;
    let fail = |status, code, check, message: String, key: &Option<String>| S3Error {
        status,
        code,
        message,
        check,
        access_key: key.clone(),
    };

    if header_section_len(req.headers) > MAX_HEADER_SECTION {
        return Err(fail(
            400,
            "RequestHeaderSectionTooLarge",
            "headers",
            format!(
                "Your request header section exceeds the maximum allowed size of {MAX_HEADER_SECTION} bytes."
            ),
            &access_key,
        ));
    }

    // The form of the Authorization header.
    let Some(auth_value) = req.headers.get("authorization") else {
        let presigned = sigv4::query_params(req.query.unwrap_or(""))
            .unwrap_or_default()
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(b"X-Amz-Algorithm"));
        let message = if presigned {
            "Query-string (presigned URL) authentication is not supported by ra-emulator"
        } else {
            "Access Denied"
        };
        return Err(fail(
            403,
            "AccessDenied",
            "authorization",
            message.into(),
            &access_key,
        ));
    };
    let malformed = |m: String, key: &Option<String>| {
        fail(400, "AuthorizationHeaderMalformed", "authorization", m, key)
    };
    let auth_value = auth_value.to_str().map_err(|_| {
        malformed(
            "The authorization header is malformed; it is not ASCII.".into(),
            &None,
        )
    })?;
    let auth = parse_authorization(auth_value).map_err(|p| match p {
        AuthProblem::Unsupported(m) => fail(403, "AccessDenied", "authorization", m, &None),
        AuthProblem::Malformed(m) => malformed(m, &None),
    })?;
    access_key = Some(auth.access_key.clone());
    if auth.service != SERVICE {
        return Err(malformed(
            format!(
                "The authorization header is malformed; incorrect service '{}'. This endpoint belongs to '{SERVICE}'.",
                auth.service
            ),
            &access_key,
        ));
    }
    if auth.region != region {
        return Err(malformed(
            format!(
                "The authorization header is malformed; the region '{}' is wrong; expecting '{region}'",
                auth.region
            ),
            &access_key,
        ));
    }

    // The date, against the emulator's clock.
    let amz_date = header(req.headers, "x-amz-date").unwrap_or("");
    let Some(signed_at) = clock::parse_amz_date(amz_date) else {
        return Err(fail(
            403,
            "AccessDenied",
            "date",
            "AWS authentication requires a valid x-amz-date header (YYYYMMDD'T'HHMMSS'Z'); ra-emulator does not take Date instead".into(),
            &access_key,
        ));
    };
    if signed_at.abs_diff(now) > MAX_SKEW {
        return Err(fail(
            403,
            "RequestTimeTooSkewed",
            "date",
            format!(
                "The difference between the request time and the current time is too large. (request time {amz_date}, server time {}, maximum {MAX_SKEW} seconds)",
                clock::amz_date(now)
            ),
            &access_key,
        ));
    }
    if auth.date != amz_date[..8] {
        return Err(malformed(
            format!(
                "The authorization header is malformed; Invalid credential date \"{}\". This date is not the same as X-Amz-Date: \"{}\".",
                auth.date,
                &amz_date[..8]
            ),
            &access_key,
        ));
    }

    // What must be signed: host, x-amz-date, and every x-amz-* header sent (the content
    // hash and the session token among them), so none can be swapped in transit.
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(fail(
                403,
                "AccessDenied",
                "signed-headers",
                format!("The request must sign the '{required}' header"),
                &access_key,
            ));
        }
    }
    let mut unsigned: Vec<&str> = req
        .headers
        .keys()
        .map(hyper::header::HeaderName::as_str)
        .filter(|n| n.starts_with("x-amz-") && !auth.signed_headers.iter().any(|h| h == n))
        .collect();
    if !unsigned.is_empty() {
        unsigned.sort_unstable();
        unsigned.dedup();
        return Err(fail(
            403,
            "AccessDenied",
            "signed-headers",
            format!(
                "There were headers present in the request which were not signed: {}",
                unsigned.join(", ")
            ),
            &access_key,
        ));
    }

    // The credentials: known, unexpired, with their session token.
    let Some(issued) = store.get(&auth.access_key) else {
        return Err(fail(
            403,
            "InvalidAccessKeyId",
            "access-key",
            "The AWS Access Key Id you provided does not exist in our records.".into(),
            &access_key,
        ));
    };
    if issued.expires <= now {
        return Err(fail(
            400,
            "ExpiredToken",
            "expired",
            "The provided token has expired.".into(),
            &access_key,
        ));
    }
    let sent_token = req
        .headers
        .get("x-amz-security-token")
        .map(hyper::header::HeaderValue::as_bytes);
    let token_ok = match (&issued.session_token, sent_token) {
        (Some(expected), Some(sent)) => bool::from(expected.as_bytes().ct_eq(sent)),
        (None, None) => true,
        _ => false,
    };
    if !token_ok {
        return Err(fail(
            400,
            "InvalidToken",
            "session-token",
            "The provided token is malformed or otherwise invalid.".into(),
            &access_key,
        ));
    }

    // The payload hash the client signed.
    let content_sha256 = header(req.headers, "x-amz-content-sha256");
    let body_hash = sigv4::sha256_hex(req.body);
    let payload_hash = match content_sha256 {
        None => body_hash.clone(),
        Some(UNSIGNED_PAYLOAD) => UNSIGNED_PAYLOAD.to_string(),
        Some(h) if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            h.to_string()
        }
        Some(_) => {
            return Err(fail(
                400,
                "InvalidArgument",
                "content-sha256",
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a valid sha256 value.".into(),
                &access_key,
            ));
        }
    };

    // The signature over the request as received.
    let bad_request = |m: String| fail(400, "InvalidArgument", "canonical", m, &access_key);
    let canonical = CanonicalRequest {
        method: req.method.to_string(),
        path: canonical_uri(req.path).map_err(bad_request)?,
        query: sigv4::canonical_query(req.query.unwrap_or("")).map_err(bad_request)?,
        headers: sigv4::canonical_headers(req.headers, &auth.signed_headers)
            .map_err(|m| fail(403, "SignatureDoesNotMatch", "signature", m, &access_key))?,
        signed_headers: auth.signed_headers.join(";"),
        payload_hash,
    };
    let to_sign = string_to_sign(amz_date, &auth.scope(), &canonical);
    let key = signing_key(&issued.secret, &auth.date, &auth.region, &auth.service);
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, &key),
        to_sign.as_bytes(),
        &auth.signature,
    )
    .map_err(|_| {
        fail(
            403,
            "SignatureDoesNotMatch",
            "signature",
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.".into(),
            &access_key,
        )
    })?;
    if content_sha256.is_some_and(|h| h != UNSIGNED_PAYLOAD && h != body_hash) {
        return Err(fail(
            400,
            "XAmzContentSHA256Mismatch",
            "content-sha256",
            "The provided 'x-amz-content-sha256' header does not match what was computed.".into(),
            &access_key,
        ));
    }
    Ok(Caller {
        access_key: auth.access_key,
        role: issued.role.clone(),
        session_name: issued.session_name.clone(),
    })
}

/// Checks a `--s3-bucket` name: 3–63 characters of lower-case letters, digits, dots and
/// hyphens, beginning and ending with a letter or digit, no two dots in a row.
pub(crate) fn valid_bucket_name(name: &str) -> Result<(), String> {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ok = (3..=63).contains(&name.len())
        && name.bytes().all(|b| alnum(b) || b == b'.' || b == b'-')
        && name.bytes().next().is_some_and(alnum)
        && name.bytes().last().is_some_and(alnum)
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a bucket name: 3-63 lower-case letters, digits, dots and hyphens, beginning and ending with a letter or digit"
        ))
    }
}

/// Escapes text for an XML element.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push_str(&format!("&#x{:X};", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// The `ListAllMyBucketsResult` for the account `owner_account`: every bucket created at
/// `created` (Unix seconds).
pub(crate) fn list_buckets_body(owner_account: &str, buckets: &[String], created: u64) -> String {
    // S3's canonical user id is 64 hex digits; a hash of the account gives a stable one.
    let owner_id =
        sigv4::sha256_hex(format!("ra-emulator canonical user {owner_account}").as_bytes());
    let date = clock::iso8601_millis(std::time::Duration::from_secs(created));
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListAllMyBucketsResult xmlns=\"{XMLNS}\"><Owner><ID>{owner_id}</ID><DisplayName>{}</DisplayName></Owner><Buckets>",
        xml_escape(owner_account)
    );
    for name in buckets {
        body.push_str(&format!(
            "<Bucket><Name>{}</Name><CreationDate>{date}</CreationDate></Bucket>",
            xml_escape(name)
        ));
    }
    body.push_str("</Buckets></ListAllMyBucketsResult>");
    body
}

/// `<Error><Code/><Message/><RequestId/></Error>`.
pub(crate) fn error_body(code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><RequestId>{}</RequestId></Error>",
        xml_escape(code),
        xml_escape(message),
        xml_escape(request_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::{HeaderName, HeaderValue};

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    fn role() -> Arn {
        crate::arn::parse(
            "arn:aws:iam::123456789012:role/Role1",
            crate::arn::Kind::Role,
        )
        .expect("role")
    }

    fn issued(secret: &str, token: Option<&str>, expires: u64) -> Issued {
        Issued {
            secret: Zeroizing::new(secret.to_string()),
            session_token: token.map(|t| Zeroizing::new(t.to_string())),
            expires,
            role: role(),
            session_name: "51".into(),
        }
    }

    /// The SigV4 documentation's "Example: GET request" (IAM ListUsers, 2015-08-30), stage
    /// by stage: the canonical request's hash, the signing key and the signature.
    #[test]
    fn aws_docs_get_request_example() {
        let h = headers(&[
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("host", "iam.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
        ]);
        let signed: Vec<String> = ["content-type", "host", "x-amz-date"]
            .map(String::from)
            .to_vec();
        let canonical = CanonicalRequest {
            method: "GET".into(),
            path: canonical_uri("/").expect("path"),
            query: sigv4::canonical_query("Version=2010-05-08&Action=ListUsers").expect("query"),
            headers: sigv4::canonical_headers(&h, &signed).expect("headers"),
            signed_headers: signed.join(";"),
            payload_hash: sigv4::sha256_hex(b""),
        };
        assert_eq!(
            canonical.to_string(),
            "GET\n/\nAction=ListUsers&Version=2010-05-08\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\nhost:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let to_sign = string_to_sign(
            "20150830T123600Z",
            "20150830/us-east-1/iam/aws4_request",
            &canonical,
        );
        assert_eq!(
            to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\nf536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            sigv4::hex(&key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), to_sign.as_bytes());
        assert_eq!(
            sigv4::hex(tag.as_ref()),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    /// The S3 documentation's GetObject example (`/test.txt` with a `Range`, 2013-05-24),
    /// through the whole check: a long-term key, no session token.
    #[test]
    fn s3_docs_get_object_example() {
        let mut store = IssuedStore::new(4);
        let now = clock::parse_amz_date("20130524T000000Z").expect("date");
        store.insert(
            "AKIAIOSFODNN7EXAMPLE".into(),
            issued("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None, now + 3600),
            now,
        );
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            ),
        ]);
        let req = Request {
            method: "GET",
            path: "/test.txt",
            query: None,
            headers: &h,
            body: b"",
        };
        let caller = authenticate(&req, &store, "us-east-1", now).expect("the docs' example");
        assert_eq!(caller.access_key, "AKIAIOSFODNN7EXAMPLE");
        // One byte of the signed path changed: the same signature no longer matches.
        let other = Request {
            path: "/test.txT",
            ..req
        };
        let err = authenticate(&other, &store, "us-east-1", now).expect_err("tampered");
        assert_eq!(err.code, "SignatureDoesNotMatch");
    }

    const AKID: &str = "ASIAEMULATOREXAMPLE7";
    const SECRET: &str = "k9Qe/3Zp+TLfYw1nR8sVbXo2MdJcH4uAy6EiGq0F";
    const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLETOKEN/+=";
    const SIGNED_AT: &str = "20251211T163425Z";
    /// Made by botocore 1.44.8's `S3SigV4Auth` (the signer of boto3 and the AWS CLI) for
    /// `GET https://127.0.0.1:8443/` with the credentials above.
    const BOTOCORE_AUTH: &str = "AWS4-HMAC-SHA256 Credential=ASIAEMULATOREXAMPLE7/20251211/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=d4f4e3fbf34a79d016bf69e5364c11ac98666c5e5e5709cbfecfbd4e4cc48d2a";
    /// The same for `GET https://localhost:8443/?x-id=ListBuckets`.
    const BOTOCORE_AUTH_X_ID: &str = "AWS4-HMAC-SHA256 Credential=ASIAEMULATOREXAMPLE7/20251211/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=ac5a8d5060b215936c7331f342702b65a3e8332d2c1accc0722aa667543dbb28";

    fn now() -> u64 {
        clock::parse_amz_date(SIGNED_AT).expect("date")
    }

    fn store() -> IssuedStore {
        let mut s = IssuedStore::new(MAX_ISSUED);
        s.insert(
            AKID.into(),
            issued(SECRET, Some(TOKEN), now() + 3600),
            now(),
        );
        s
    }

    fn botocore_headers() -> Vec<(String, String)> {
        [
            ("host", "127.0.0.1:8443"),
            ("x-amz-date", SIGNED_AT),
            ("x-amz-security-token", TOKEN),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("authorization", BOTOCORE_AUTH),
            ("user-agent", "Boto3/1.44.8"),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
        .collect()
    }

    /// Runs the check on the botocore request with its headers changed by `edit`.
    fn check_with(
        edit: impl FnOnce(&mut Vec<(String, String)>),
        store: &IssuedStore,
        now: u64,
        body: &[u8],
    ) -> Result<Caller, S3Error> {
        let mut pairs = botocore_headers();
        edit(&mut pairs);
        let h = headers(
            &pairs
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        );
        let req = Request {
            method: "GET",
            path: "/",
            query: None,
            headers: &h,
            body,
        };
        authenticate(&req, store, "us-east-1", now)
    }

    fn set(pairs: &mut Vec<(String, String)>, name: &str, value: &str) {
        pairs.retain(|(n, _)| n != name);
        pairs.push((name.into(), value.into()));
    }

    #[test]
    fn accepts_what_botocore_signs() {
        let caller = check_with(|_| {}, &store(), now(), b"").expect("botocore's request");
        assert_eq!(caller.access_key, AKID);
        assert_eq!(caller.session_name, "51");
        assert_eq!(caller.role, role());
        // The query the newer SDKs add is part of the canonical request.
        let h = headers(&[
            ("host", "localhost:8443"),
            ("x-amz-date", SIGNED_AT),
            ("x-amz-security-token", TOKEN),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("authorization", BOTOCORE_AUTH_X_ID),
        ]);
        let req = Request {
            method: "GET",
            path: "/",
            query: Some("x-id=ListBuckets"),
            headers: &h,
            body: b"",
        };
        authenticate(&req, &store(), "us-east-1", now()).expect("with x-id");
        let without = Request { query: None, ..req };
        assert_eq!(
            authenticate(&without, &store(), "us-east-1", now())
                .expect_err("query dropped")
                .code,
            "SignatureDoesNotMatch"
        );
        // Fifteen minutes either way is still on time.
        for t in [now() - MAX_SKEW, now() + MAX_SKEW] {
            check_with(|_| {}, &store(), t, b"").expect("within the skew");
        }
    }

    #[test]
    fn every_rejection_has_its_s3_code() {
        let auth_with = |from: &str, to: &str| BOTOCORE_AUTH.replace(from, to);
        type Edit = Box<dyn FnOnce(&mut Vec<(String, String)>)>;
        let cases: Vec<(&str, Edit, u16, &str, &str)> = vec![
            (
                "no Authorization",
                Box::new(|p| p.retain(|(n, _)| n != "authorization")),
                403,
                "AccessDenied",
                "Access Denied",
            ),
            (
                "Signature Version 2",
                Box::new(|p| set(p, "authorization", "AWS ASIAEMULATOREXAMPLE7:c2lnbmF0dXJl")),
                403,
                "AccessDenied",
                "Signature Version 2",
            ),
            (
                "bearer token",
                Box::new(|p| set(p, "authorization", "Bearer abc")),
                403,
                "AccessDenied",
                "Unsupported Authorization Type",
            ),
            (
                "credential in four parts",
                Box::new(move |p| {
                    set(
                        p,
                        "authorization",
                        &auth_with("/us-east-1/s3/", "/us-east-1/"),
                    );
                }),
                400,
                "AuthorizationHeaderMalformed",
                "the Credential is mal-formed",
            ),
            (
                "service iam",
                Box::new(move |p| set(p, "authorization", &auth_with("/s3/", "/iam/"))),
                400,
                "AuthorizationHeaderMalformed",
                "incorrect service 'iam'",
            ),
            (
                "region us-west-2",
                Box::new(move |p| {
                    set(p, "authorization", &auth_with("/us-east-1/", "/us-west-2/"));
                }),
                400,
                "AuthorizationHeaderMalformed",
                "the region 'us-west-2' is wrong; expecting 'us-east-1'",
            ),
            (
                "terminator",
                Box::new(move |p| {
                    set(
                        p,
                        "authorization",
                        &auth_with("aws4_request", "aws5_request"),
                    );
                }),
                400,
                "AuthorizationHeaderMalformed",
                "incorrect terminal",
            ),
            (
                "scope date not X-Amz-Date's",
                Box::new(move |p| set(p, "authorization", &auth_with("/20251211/", "/20251210/"))),
                400,
                "AuthorizationHeaderMalformed",
                "This date is not the same as X-Amz-Date",
            ),
            (
                "upper-case signature",
                Box::new(move |p| set(p, "authorization", &auth_with("d4f4e3fb", "D4F4E3FB"))),
                400,
                "AuthorizationHeaderMalformed",
                "64 lower-case hexadecimal",
            ),
            (
                "signed headers unsorted",
                Box::new(move |p| {
                    set(
                        p,
                        "authorization",
                        &auth_with("host;x-amz-content-sha256", "x-amz-content-sha256;host"),
                    );
                }),
                400,
                "AuthorizationHeaderMalformed",
                "sorted",
            ),
            (
                "no X-Amz-Date",
                Box::new(|p| p.retain(|(n, _)| n != "x-amz-date")),
                403,
                "AccessDenied",
                "requires a valid x-amz-date header",
            ),
            (
                "host not signed",
                Box::new(move |p| set(p, "authorization", &auth_with("=host;", "="))),
                403,
                "AccessDenied",
                "must sign the 'host' header",
            ),
            (
                "an x-amz-* header not signed",
                Box::new(|p| set(p, "x-amz-meta-extra", "1")),
                403,
                "AccessDenied",
                "not signed: x-amz-meta-extra",
            ),
            (
                "access key never issued",
                Box::new(move |p| {
                    set(
                        p,
                        "authorization",
                        &auth_with(AKID, "ASIAEMULATORNEVERSEEN"),
                    );
                }),
                403,
                "InvalidAccessKeyId",
                "does not exist in our records",
            ),
            (
                "session token missing",
                Box::new(|p| p.retain(|(n, _)| n != "x-amz-security-token")),
                400,
                "InvalidToken",
                "malformed or otherwise invalid",
            ),
            (
                "session token of another session",
                Box::new(|p| set(p, "x-amz-security-token", "IQoJb3JpZ2luX2VjOTHER")),
                400,
                "InvalidToken",
                "malformed or otherwise invalid",
            ),
            (
                "streaming payload",
                Box::new(|p| {
                    set(
                        p,
                        "x-amz-content-sha256",
                        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                    );
                }),
                400,
                "InvalidArgument",
                "UNSIGNED-PAYLOAD or a valid sha256",
            ),
            (
                "a signed header changed",
                Box::new(|p| set(p, "host", "127.0.0.1:8444")),
                403,
                "SignatureDoesNotMatch",
                "does not match the signature you provided",
            ),
            (
                "signature of another request",
                Box::new(move |p| set(p, "authorization", &auth_with("d4f4e3fb", "d4f4e3fc"))),
                403,
                "SignatureDoesNotMatch",
                "does not match the signature you provided",
            ),
            (
                "header section over 8 KiB",
                Box::new(|p| set(p, "user-agent", &"u".repeat(MAX_HEADER_SECTION))),
                400,
                "RequestHeaderSectionTooLarge",
                "exceeds the maximum allowed size",
            ),
        ];
        for (name, edit, status, code, message) in cases {
            let err = check_with(edit, &store(), now(), b"").expect_err(name);
            assert_eq!((err.status, err.code), (status, code), "{name}: {err:?}");
            assert!(err.message.contains(message), "{name}: {err:?}");
        }
    }

    #[test]
    fn time_expiry_secret_and_payload_are_checked() {
        let code = |r: Result<Caller, S3Error>| r.expect_err("refused").code;
        // Signed more than fifteen minutes from the emulator's clock, either way.
        for t in [now() - MAX_SKEW - 1, now() + MAX_SKEW + 1] {
            assert_eq!(
                code(check_with(|_| {}, &store(), t, b"")),
                "RequestTimeTooSkewed"
            );
        }
        // Expired on the emulator's clock, though signed on time.
        let mut expired = IssuedStore::new(4);
        expired.insert(AKID.into(), issued(SECRET, Some(TOKEN), now()), now() - 900);
        assert_eq!(
            code(check_with(|_| {}, &expired, now(), b"")),
            "ExpiredToken"
        );
        // Another secret under the same key: the signature is not the client's.
        let mut wrong = IssuedStore::new(4);
        let other_secret = SECRET.replace('k', "K");
        wrong.insert(
            AKID.into(),
            issued(&other_secret, Some(TOKEN), now() + 60),
            now(),
        );
        assert_eq!(
            code(check_with(|_| {}, &wrong, now(), b"")),
            "SignatureDoesNotMatch"
        );
        // The body is not the one whose hash was signed.
        assert_eq!(
            code(check_with(|_| {}, &store(), now(), b"smuggled")),
            "XAmzContentSHA256Mismatch"
        );
        // A key with a recorded token never passes without it, nor a long-term key with one.
        let mut long_term = IssuedStore::new(4);
        long_term.insert(AKID.into(), issued(SECRET, None, now() + 60), now());
        assert_eq!(
            code(check_with(|_| {}, &long_term, now(), b"")),
            "InvalidToken"
        );
    }

    #[test]
    fn presigned_urls_are_refused_as_unsupported() {
        let h = headers(&[("host", "127.0.0.1:8443")]);
        let req = Request {
            method: "GET",
            path: "/",
            query: Some("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00"),
            headers: &h,
            body: b"",
        };
        let err = authenticate(&req, &store(), "us-east-1", now()).expect_err("presigned");
        assert_eq!((err.status, err.code), (403, "AccessDenied"));
        assert!(err.message.contains("presigned"), "{err:?}");
    }

    #[test]
    fn canonical_uri_encodes_each_segment_once() {
        assert_eq!(canonical_uri("/").expect("root"), "/");
        assert_eq!(canonical_uri("").expect("empty"), "/");
        assert_eq!(
            canonical_uri("/my%20photo/a+b~c=d").expect("key"),
            "/my%20photo/a%2Bb~c%3Dd"
        );
        // Not normalised, not encoded twice.
        assert_eq!(
            canonical_uri("/a//./b/../c%25").expect("raw"),
            "/a//./b/../c%25"
        );
        assert!(canonical_uri("/%zz").is_err());
    }

    #[test]
    fn the_store_is_bounded_expired_first_then_oldest() {
        let mut s = IssuedStore::new(3);
        s.insert("A".into(), issued("a", Some("t"), 100), 0);
        s.insert("B".into(), issued("b", Some("t"), 50), 0);
        s.insert("C".into(), issued("c", Some("t"), 100), 0);
        // Full at 60: B has expired, so it goes, though A is older.
        s.insert("D".into(), issued("d", Some("t"), 100), 60);
        assert_eq!(s.len(), 3);
        assert!(s.get("B").is_none() && s.get("A").is_some());
        // Full again, nothing expired: the oldest, A, goes.
        s.insert("E".into(), issued("e", Some("t"), 100), 60);
        assert_eq!(s.len(), 3);
        assert!(s.get("A").is_none());
        for k in ["C", "D", "E"] {
            assert!(s.get(k).is_some(), "{k}");
        }
        assert!(
            !format!("{:?}", s.get("E")).contains("\"e\""),
            "Debug redacts"
        );
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        for good in [
            "ra-signer-demo",
            "abc",
            "a.b-c",
            &"a".repeat(63),
            "0bucket9",
        ] {
            assert!(valid_bucket_name(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "Upper",
            "under_score",
            "-lead",
            "trail.",
            "a..b",
            "sp ace",
        ] {
            assert!(valid_bucket_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn xml_bodies_have_s3_shape() {
        let body = list_buckets_body("123456789012", &["ra-signer-demo".into()], 1_765_470_865);
        assert!(body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Owner><ID>"), "{body}");
        assert!(body.ends_with("<DisplayName>123456789012</DisplayName></Owner><Buckets><Bucket><Name>ra-signer-demo</Name><CreationDate>2025-12-11T16:34:25.000Z</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>"), "{body}");
        assert!(
            list_buckets_body("1", &[], 0)
                .ends_with("<Buckets></Buckets></ListAllMyBucketsResult>")
        );
        assert_eq!(
            error_body("AccessDenied", "a <b> & \"c\"", "rid"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>a &lt;b&gt; &amp; &quot;c&quot;</Message><RequestId>rid</RequestId></Error>"
        );
    }
}
