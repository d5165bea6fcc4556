//! Request routing for the two endpoint flavours. Pure: a request and the shared state in,
//! a response out, so every rule is unit-tested without a socket.
//!
//! IMDSv2 (PROTOCOL.md §4):
//! - any request with `X-Forwarded-For`: 403;
//! - `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` 1..21600: 200, the
//!   token as text, the TTL header echoed; TTL missing or out of range: 400; other methods:
//!   405;
//! - `GET /latest/meta-data/iam/security-credentials/`: the role names, one per line;
//!   `GET …/<role>`: the credentials JSON; unknown role: 404;
//! - anything else than GET elsewhere: 405; a missing, unknown or expired token: 401.
//!
//! ECS: `GET /` (the first role) or `GET /role/<name>` with `Authorization` equal to the
//! token; missing: 401, wrong: 403.
//!
//! When a role has no valid credentials (the first refresh after expiry keeps failing):
//! 500 with `{"Code":"CredentialsUnavailable","Message":…}`, never "Success".

use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::counters::Route;
use super::state::{Mode, RoleSlot, Shared};
use super::tokens::{self, TokenTable, constant_time_eq};
use crate::time::UtcTime;

/// The IMDSv2 token request path.
pub(crate) const TOKEN_PATH: &str = "/latest/api/token";
/// The IMDS credentials path (role names below it).
pub(crate) const CREDENTIALS_PATH: &str = "/latest/meta-data/iam/security-credentials";
/// The TTL header of the token request and response.
pub(crate) const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
/// The token header of IMDSv2 GETs.
pub(crate) const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// The prefix of per-role ECS paths.
pub(crate) const ECS_ROLE_PREFIX: &str = "/role/";

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain");

/// The response type.
pub(crate) type Resp = Response<Full<Bytes>>;

pub(crate) fn respond(status: StatusCode, content_type: HeaderValue, body: Bytes) -> Resp {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, content_type);
    r
}

fn text(status: StatusCode, body: &'static str) -> Resp {
    respond(status, TEXT, Bytes::from_static(body.as_bytes()))
}

fn not_allowed(allow: &'static str) -> Resp {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

/// The route `path` asks for in `mode`, as the metrics count it: a bounded label, never
/// the path itself.
pub(crate) fn route(mode: &Mode, path: &str) -> Route {
    match mode {
        Mode::Imds(_) if path == TOKEN_PATH => Route::Token,
        Mode::Imds(_) => match path.strip_prefix(CREDENTIALS_PATH) {
            Some("" | "/") => Route::RoleList,
            Some(rest) if rest.starts_with('/') => Route::RoleCredentials,
            _ => Route::Other,
        },
        Mode::Ecs(_) if path == "/" || path.starts_with(ECS_ROLE_PREFIX) => Route::Ecs,
        Mode::Ecs(_) => Route::Other,
    }
}

/// Answers one request at `now` (monotonic, for tokens) and `wall` (for expirations).
pub(crate) fn handle<B>(shared: &Shared, req: &Request<B>, now: Instant, wall: UtcTime) -> Resp {
    if req.headers().contains_key("x-forwarded-for") {
        return text(StatusCode::FORBIDDEN, "Forbidden: X-Forwarded-For\n");
    }
    match &shared.mode {
        Mode::Imds(table) => imds(shared, table, req, now, wall),
        Mode::Ecs(token) => ecs(shared, token.expose().as_bytes(), req, wall),
    }
}

fn imds<B>(
    shared: &Shared,
    table: &std::sync::Mutex<TokenTable>,
    req: &Request<B>,
    now: Instant,
    wall: UtcTime,
) -> Resp {
    let path = req.uri().path();
    if path == TOKEN_PATH {
        if req.method() != Method::PUT {
            return not_allowed("PUT");
        }
        let Some(ttl) = req
            .headers()
            .get(TTL_HEADER)
            .and_then(|v| parse_ttl(v.as_bytes()))
        else {
            return text(
                StatusCode::BAD_REQUEST,
                "Bad Request: X-aws-ec2-metadata-token-ttl-seconds must be 1..21600\n",
            );
        };
        let token = table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .issue(Duration::from_secs(ttl), now);
        let Some(token) = token else {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error: no randomness\n",
            );
        };
        let mut r = respond(StatusCode::OK, TEXT, Bytes::from(token.as_bytes().to_vec()));
        r.headers_mut()
            .insert(HeaderName::from_static(TTL_HEADER), HeaderValue::from(ttl));
        return r;
    }
    if req.method() != Method::GET {
        return not_allowed("GET");
    }
    let valid = req.headers().get(TOKEN_HEADER).is_some_and(|t| {
        table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .check(t.as_bytes(), now)
    });
    if !valid {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
    }
    let Some(rest) = path.strip_prefix(CREDENTIALS_PATH) else {
        return text(StatusCode::NOT_FOUND, "Not Found\n");
    };
    match rest {
        "" | "/" => respond(StatusCode::OK, TEXT, shared.role_list.clone()),
        _ => match rest.strip_prefix('/').and_then(|name| shared.role(name)) {
            Some(role) => credentials(role, wall, true),
            None => text(StatusCode::NOT_FOUND, "Not Found\n"),
        },
    }
}

/// The TTL header: ASCII digits, 1..=21600.
fn parse_ttl(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 5 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let ttl: u64 = std::str::from_utf8(value).ok()?.parse().ok()?;
    (1..=tokens::MAX_TTL).contains(&ttl).then_some(ttl)
}

fn ecs<B>(shared: &Shared, token: &[u8], req: &Request<B>, wall: UtcTime) -> Resp {
    if req.method() != Method::GET {
        return not_allowed("GET");
    }
    match req.headers().get(hyper::header::AUTHORIZATION) {
        None => return text(StatusCode::UNAUTHORIZED, "Unauthorized\n"),
        Some(v) if !constant_time_eq(v.as_bytes(), token) => {
            return text(StatusCode::FORBIDDEN, "Forbidden\n");
        }
        Some(_) => {}
    }
    let path = req.uri().path();
    let role = if path == "/" {
        shared.roles.first()
    } else {
        path.strip_prefix(ECS_ROLE_PREFIX)
            .and_then(|name| shared.role(name))
    };
    match role {
        Some(role) => credentials(role, wall, false),
        None => text(StatusCode::NOT_FOUND, "Not Found\n"),
    }
}

fn credentials(role: &RoleSlot, wall: UtcTime, imds: bool) -> Resp {
    let published = role.current();
    match published.valid(wall) {
        Some(c) => respond(
            StatusCode::OK,
            JSON,
            if imds { c.imds.clone() } else { c.ecs.clone() },
        ),
        None => {
            let reason = match &published.error {
                Some(e) => format!("no valid credentials for role {}: {e}", role.name),
                None => format!(
                    "no valid credentials for role {}: they expired and no refresh has succeeded yet",
                    role.name
                ),
            };
            let body = serde_json::json!({
                "Code": "CredentialsUnavailable",
                "Message": reason,
            });
            respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                JSON,
                Bytes::from(body.to_string()),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Credentials;
    use crate::secret::Secret;
    use std::sync::Mutex;

    fn creds(exp: u64) -> Credentials {
        Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: Secret::new("SECRETKEY".into()),
            session_token: Secret::new("SESSIONTOKEN".into()),
            expiration: UtcTime::from_unix(exp),
        }
    }

    fn imds_state() -> Shared {
        let s = Shared::new(
            vec!["Reader".into(), "Writer".into()],
            Mode::Imds(Mutex::new(TokenTable::default())),
        );
        s.roles[0].publish(&creds(2000), UtcTime::from_unix(100));
        s
    }

    fn req(method: Method, path: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request")
    }

    fn body(r: &Resp) -> String {
        String::from_utf8(collect(r.body().clone())).expect("utf-8")
    }

    // Full<Bytes> yields its one frame synchronously.
    fn collect(full: Full<Bytes>) -> Vec<u8> {
        use hyper::body::Body;
        let mut full = std::pin::pin!(full);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut out = Vec::new();
        while let std::task::Poll::Ready(Some(Ok(frame))) = full.as_mut().poll_frame(&mut cx) {
            if let Ok(data) = frame.into_data() {
                out.extend_from_slice(&data);
            }
        }
        out
    }

    fn token(s: &Shared, now: Instant) -> String {
        let r = handle(
            s,
            &req(Method::PUT, TOKEN_PATH, &[(TTL_HEADER, "21600")]),
            now,
            UtcTime::from_unix(200),
        );
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[TTL_HEADER], "21600");
        body(&r)
    }

    #[test]
    fn token_rules() {
        let s = imds_state();
        let now = Instant::now();
        let wall = UtcTime::from_unix(200);
        for (headers, status) in [
            (&[][..], 400),
            (&[(TTL_HEADER, "0")][..], 400),
            (&[(TTL_HEADER, "21601")][..], 400),
            (&[(TTL_HEADER, "-1")][..], 400),
            (&[(TTL_HEADER, "abc")][..], 400),
            (&[(TTL_HEADER, "1")][..], 200),
            (&[(TTL_HEADER, "21600")][..], 200),
            (
                &[(TTL_HEADER, "60"), ("X-Forwarded-For", "10.0.0.1")][..],
                403,
            ),
        ] {
            let r = handle(&s, &req(Method::PUT, TOKEN_PATH, headers), now, wall);
            assert_eq!(r.status(), status, "{headers:?}");
        }
        let r = handle(
            &s,
            &req(Method::GET, TOKEN_PATH, &[(TTL_HEADER, "60")]),
            now,
            wall,
        );
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()[ALLOW], "PUT");
    }

    #[test]
    fn credential_rules() {
        let s = imds_state();
        let now = Instant::now();
        let wall = UtcTime::from_unix(200);
        let t = token(&s, now);
        let list = format!("{CREDENTIALS_PATH}/");
        let reader = format!("{CREDENTIALS_PATH}/Reader");
        let get = |path: &str, headers: &[(&str, &str)]| {
            handle(&s, &req(Method::GET, path, headers), now, wall)
        };
        let r = get(&list, &[(TOKEN_HEADER, &t)]);
        assert_eq!(
            (r.status().as_u16(), body(&r).as_str()),
            (200, "Reader\nWriter")
        );
        let r = get(&reader, &[(TOKEN_HEADER, &t)]);
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = serde_json::from_str(&body(&r)).expect("json");
        assert_eq!(v["Code"], "Success");
        assert_eq!(v["Type"], "AWS-HMAC");
        assert_eq!(v["Token"], "SESSIONTOKEN");
        assert_eq!(get(&reader, &[]).status(), 401);
        assert_eq!(get(&reader, &[(TOKEN_HEADER, "nope")]).status(), 401);
        assert_eq!(get(&list, &[]).status(), 401);
        assert_eq!(
            get(&format!("{CREDENTIALS_PATH}/Nobody"), &[(TOKEN_HEADER, &t)]).status(),
            404
        );
        assert_eq!(
            get("/latest/meta-data/ami-id", &[(TOKEN_HEADER, &t)]).status(),
            404
        );
        assert_eq!(
            get(
                &reader,
                &[(TOKEN_HEADER, &t), ("X-Forwarded-For", "1.2.3.4")]
            )
            .status(),
            403
        );
        for m in [Method::POST, Method::PUT, Method::DELETE] {
            let r = handle(&s, &req(m, &reader, &[(TOKEN_HEADER, &t)]), now, wall);
            assert_eq!(r.status(), 405);
        }
        // The token expires with its TTL.
        let later = now + Duration::from_secs(21_600);
        let r = handle(
            &s,
            &req(Method::GET, &reader, &[(TOKEN_HEADER, &t)]),
            later,
            wall,
        );
        assert_eq!(r.status(), 401);
    }

    #[test]
    fn no_valid_credentials_is_a_500_with_a_reason() {
        let s = imds_state();
        let now = Instant::now();
        let t = token(&s, now);
        // Writer never got credentials; Reader's expire at 2000.
        s.roles[0].fail("IAM Roles Anywhere refused CreateSession (HTTP 503)".into());
        let at = |path: &str, secs| {
            handle(
                &s,
                &req(Method::GET, path, &[(TOKEN_HEADER, &t)]),
                now,
                UtcTime::from_unix(secs),
            )
        };
        assert_eq!(
            at(&format!("{CREDENTIALS_PATH}/Reader"), 1999).status(),
            200
        );
        for (path, secs) in [("Reader", 2000), ("Writer", 200)] {
            let r = at(&format!("{CREDENTIALS_PATH}/{path}"), secs);
            assert_eq!(r.status(), 500);
            let text = body(&r);
            assert!(
                !text.contains("Success") && !text.contains("SECRETKEY"),
                "{text}"
            );
            assert!(text.contains("CredentialsUnavailable"), "{text}");
        }
        assert!(body(&at(&format!("{CREDENTIALS_PATH}/Reader"), 2000)).contains("HTTP 503"));
    }

    #[test]
    fn routes_are_a_bounded_set() {
        let imds = imds_state();
        let ecs = Shared::new(vec!["R".into()], Mode::Ecs(Secret::new("t".into())));
        for (mode, path, want) in [
            (&imds.mode, TOKEN_PATH, Route::Token),
            (&imds.mode, CREDENTIALS_PATH, Route::RoleList),
            (
                &imds.mode,
                "/latest/meta-data/iam/security-credentials/",
                Route::RoleList,
            ),
            (
                &imds.mode,
                "/latest/meta-data/iam/security-credentials/Reader",
                Route::RoleCredentials,
            ),
            (
                &imds.mode,
                "/latest/meta-data/iam/security-credentials/x/y",
                Route::RoleCredentials,
            ),
            (
                &imds.mode,
                "/latest/meta-data/iam/security-credentialsX",
                Route::Other,
            ),
            (&imds.mode, "/random-7f3a", Route::Other),
            (&imds.mode, "/", Route::Other),
            (&ecs.mode, "/", Route::Ecs),
            (&ecs.mode, "/role/R", Route::Ecs),
            (&ecs.mode, TOKEN_PATH, Route::Other),
        ] {
            assert_eq!(route(mode, path), want, "{path}");
        }
    }

    #[test]
    fn ecs_rules() {
        let s = Shared::new(
            vec!["Reader".into()],
            Mode::Ecs(Secret::new("sekrit-token".into())),
        );
        s.roles[0].publish(&creds(2000), UtcTime::from_unix(100));
        let now = Instant::now();
        let wall = UtcTime::from_unix(200);
        let auth = [("Authorization", "sekrit-token")];
        let get =
            |path: &str, h: &[(&str, &str)]| handle(&s, &req(Method::GET, path, h), now, wall);
        let r = get("/", &auth);
        assert_eq!(r.status(), 200);
        assert_eq!(
            body(&r),
            r#"{"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"SECRETKEY","Token":"SESSIONTOKEN","Expiration":"1970-01-01T00:33:20Z"}"#
        );
        assert_eq!(get("/role/Reader", &auth).status(), 200);
        assert_eq!(get("/role/Other", &auth).status(), 404);
        assert_eq!(get("/", &[]).status(), 401);
        assert_eq!(get("/", &[("Authorization", "sekrit-tokem")]).status(), 403);
        assert_eq!(
            get("/", &[("Authorization", "Bearer sekrit-token")]).status(),
            403
        );
        let h = [
            ("Authorization", "sekrit-token"),
            ("X-Forwarded-For", "1.2.3.4"),
        ];
        assert_eq!(get("/", &h).status(), 403);
        assert_eq!(
            handle(&s, &req(Method::POST, "/", &auth), now, wall).status(),
            405
        );
        // The IMDS paths do not exist here.
        assert_eq!(get(TOKEN_PATH, &auth).status(), 404);
    }
}
