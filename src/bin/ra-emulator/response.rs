//! What the emulator answers: AWS restJson1 errors, the CreateSession success body with
//! random (never logged) credentials, and request ids. Randomness comes from
//! `ring::rand::SystemRandom`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::{Either, Full};
use hyper::body::{Bytes, Frame};
use hyper::{Response, StatusCode};
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::json;
use zeroize::Zeroizing;

use crate::clock;
use crate::verify::Accepted;

/// The body type of every response: whole, or endless (the `endless-body` and `slow-body`
/// faults).
pub(crate) type Body = Either<Full<Bytes>, Endless>;

/// A body that never ends: the start of a CreateSession answer, then spaces (still valid
/// JSON so far) until the client goes away: in 64 KiB frames, or one byte every
/// [`SLOW_BODY_PACE`] (the `slow-body` fault: a body that trickles, for clients whose
/// timeout must cover the body too).
#[derive(Debug, Default)]
pub(crate) struct Endless {
    started: bool,
    slow: bool,
    pace: Option<Pin<Box<tokio::time::Sleep>>>,
}

static FILLER: [u8; 64 * 1024] = [b' '; 64 * 1024];

/// The time between two bytes of a `slow-body` answer.
pub(crate) const SLOW_BODY_PACE: std::time::Duration = std::time::Duration::from_millis(200);

impl hyper::body::Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if !self.started {
            self.started = true;
            let start = Bytes::from_static(br#"{"credentialSet":[{"credentials":{"accessKeyId":"#);
            return Poll::Ready(Some(Ok(Frame::data(start))));
        }
        if !self.slow {
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&FILLER)))));
        }
        let pace = self
            .pace
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(SLOW_BODY_PACE)));
        if pace.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.pace = None;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b" ")))))
    }
}

/// A 201 whose body never ends (no `content-length`: chunked).
pub(crate) fn endless(request_id: &str) -> Response<Body> {
    let mut resp = respond(201, "application/json", String::new(), request_id);
    *resp.body_mut() = Either::Right(Endless::default());
    resp
}

/// A 201 whose headers come at once and whose body never ends, one byte at a time.
pub(crate) fn slow_body(request_id: &str) -> Response<Body> {
    let mut resp = respond(201, "application/json", String::new(), request_id);
    *resp.body_mut() = Either::Right(Endless {
        slow: true,
        ..Endless::default()
    });
    resp
}

/// The `huge-message` fault's error message: about 900 KB.
pub(crate) fn huge_message() -> String {
    format!("Huge message: {}", "A".repeat(900_000))
}

/// The `control-chars` fault's answer: a message that would clear the screen, ring the
/// bell, forge a log line and reverse the text after it if printed raw, and a request id
/// with a tab and a bidi override (as obs-text bytes, which HTTP allows).
pub(crate) fn control_chars(request_id: &str) -> Response<Body> {
    let message = "Denied\nra-signer: error: forged line\r\u{1b}[2J\u{7}bell \u{202e}desrever";
    let mut resp = error(403, "AccessDeniedException", message, request_id);
    let id = format!("{request_id}\t\u{202e}forged");
    if let Ok(v) = hyper::header::HeaderValue::from_bytes(id.as_bytes()) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    resp
}

/// Suffix of `x-amzn-ErrorType`.
const ERROR_NAMESPACE: &str = "http://internal.amazon.com/coral/com.amazonaws.rolesanywhere/";

/// `n` random bytes. ring's system RNG only fails if the OS RNG is unusable, which
/// would make any answer meaningless; fall back to a hash of the time in that case.
fn random_bytes(rng: &SystemRandom, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    if rng.fill(&mut buf).is_err() {
        let seed = clock::now().as_nanos().to_le_bytes();
        let mut block = digest::digest(&digest::SHA256, &seed).as_ref().to_vec();
        for (i, b) in buf.iter_mut().enumerate() {
            if i % 32 == 0 && i > 0 {
                block = digest::digest(&digest::SHA256, &block).as_ref().to_vec();
            }
            *b = block[i % 32];
        }
    }
    buf
}

/// Random characters drawn from `alphabet` (modulo bias is irrelevant here).
fn random_chars(rng: &SystemRandom, alphabet: &[u8], n: usize) -> String {
    random_bytes(rng, n)
        .iter()
        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
        .collect()
}

/// Formats 16 bytes as a UUID string.
fn uuid_from(bytes: &[u8]) -> String {
    let h = crate::sigv4::hex(&bytes[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A random version-4 UUID, used as `x-amzn-RequestId`.
pub(crate) fn request_id(rng: &SystemRandom) -> String {
    let mut b = random_bytes(rng, 16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_from(&b)
}

const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const BASE64ISH: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Credentials made for one CreateSession: the server remembers them (for S3's check)
/// before they go out in the body. `Debug` redacts the secrets.
pub(crate) struct Credentials {
    /// `ASIA` and 16 base-32 characters, as STS's temporary keys.
    pub access_key_id: String,
    /// 40 characters.
    pub secret_access_key: Zeroizing<String>,
    /// The session token.
    pub session_token: Zeroizing<String>,
    /// Unix seconds of the emulator's clock.
    pub expiration: u64,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field("session_token", &"** redacted **")
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// Fresh random credentials that expire at `expiration` (Unix seconds).
pub(crate) fn new_credentials(rng: &SystemRandom, expiration: u64) -> Credentials {
    let token = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        random_bytes(rng, 216),
    );
    Credentials {
        access_key_id: format!("ASIA{}", random_chars(rng, BASE32, 16)),
        secret_access_key: Zeroizing::new(random_chars(rng, BASE64ISH, 40)),
        session_token: Zeroizing::new(format!("IQoJb3JpZ2luX2Vj{token}")),
        expiration,
    }
}

/// The role session name: `roleSessionName`, or the leaf serial in lower-case hex.
pub(crate) fn session_name(accepted: &Accepted) -> String {
    accepted
        .role_session_name
        .clone()
        .unwrap_or_else(|| accepted.leaf.serial_hex())
}

/// The CreateSession success body for `accepted`, carrying `credentials`.
pub(crate) fn success_body(
    accepted: &Accepted,
    credentials: &Credentials,
    rng: &SystemRandom,
) -> String {
    let role = &accepted.role;
    let session = session_name(accepted);
    let source_identity = crate::verify::source_identity(&accepted.leaf);
    let subject_id =
        uuid_from(digest::digest(&digest::SHA256, accepted.leaf.subject_der()).as_ref());
    json!({
        "credentialSet": [{
            "assumedRoleUser": {
                "arn": format!("arn:{}:sts::{}:assumed-role/{}/{session}", role.partition, role.account, role.name()),
                "assumedRoleId": format!("AROA{}:{session}", random_chars(rng, UPPER_DIGITS, 17)),
            },
            "credentials": {
                "accessKeyId": credentials.access_key_id,
                "expiration": clock::iso8601(credentials.expiration),
                "secretAccessKey": credentials.secret_access_key.as_str(),
                "sessionToken": credentials.session_token.as_str(),
            },
            "packedPolicySize": 0,
            "roleArn": role.to_string(),
            "sourceIdentity": source_identity,
        }],
        "subjectArn": format!(
            "arn:{}:rolesanywhere:{}:{}:subject/{subject_id}",
            accepted.trust_anchor.partition, accepted.trust_anchor.region, accepted.trust_anchor.account
        ),
    })
    .to_string()
}

/// A CreateSession answer whose credentials a client must refuse: with `hostile`, a secret
/// that would add an `[evil]` profile running a command to an INI file written naively;
/// otherwise well-formed credentials that expired an hour before `now`. These are never
/// remembered as issued: S3 answers them `InvalidAccessKeyId`.
pub(crate) fn faulty_credentials(hostile: bool, now: u64) -> String {
    let (secret, expiration) = if hostile {
        (
            "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY\n[evil]\ncredential_process = touch /tmp/ra-signer-pwned".to_owned(),
            clock::iso8601(now + 3600),
        )
    } else {
        (
            "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY".to_owned(),
            clock::iso8601(now.saturating_sub(3600)),
        )
    };
    json!({
        "credentialSet": [{
            "credentials": {
                "accessKeyId": "ASIAFAULTYFAULTYFAUL",
                "expiration": expiration,
                "secretAccessKey": secret,
                "sessionToken": "IQoJb3JpZ2luX2VjEFaultyFaultyFaultyToken",
            },
            "roleArn": "arn:aws:iam::123456789012:role/fault",
        }],
    })
    .to_string()
}

/// A response with a body, content type and request id.
pub(crate) fn respond(
    status: u16,
    content_type: &str,
    body: String,
    request_id: &str,
) -> Response<Body> {
    let mut resp = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    if let Ok(v) = content_type.parse() {
        headers.insert(hyper::header::CONTENT_TYPE, v);
    }
    if let Ok(v) = request_id.parse() {
        headers.insert("x-amzn-RequestId", v);
    }
    resp
}

/// An AWS-style error: `{"message":…}` plus `x-amzn-ErrorType: <code>:<namespace>`.
pub(crate) fn error(status: u16, code: &str, message: &str, request_id: &str) -> Response<Body> {
    let mut resp = respond(
        status,
        "application/json",
        json!({ "message": message }).to_string(),
        request_id,
    );
    if let Ok(v) = format!("{code}:{ERROR_NAMESPACE}").parse() {
        resp.headers_mut().insert("x-amzn-ErrorType", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuid_v4_shaped() {
        let rng = SystemRandom::new();
        let id = request_id(&rng);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, request_id(&rng));
    }

    #[test]
    fn errors_carry_type_and_request_id() {
        let r = error(403, "AccessDeniedException", "Invalid signature", "rid");
        assert_eq!(r.status(), 403);
        assert_eq!(
            r.headers()["x-amzn-errortype"],
            "AccessDeniedException:http://internal.amazon.com/coral/com.amazonaws.rolesanywhere/"
        );
        assert_eq!(r.headers()["x-amzn-requestid"], "rid");
    }
}
