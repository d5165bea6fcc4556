//! `serve --metrics ADDR`: the Prometheus text exposition (format 0.0.4) of the counters
//! `serve` keeps ([`super::counters`]), with `GET /metrics` and `GET /healthz` on a separate loopback listener.
//!
//! Counters are relaxed atomics in fixed arrays: a request on the IMDS or ECS listener
//! costs one `fetch_add`, and every label set is bounded (a route is one of [`Route`],
//! a status one of [`STATUSES`] or "other", a failure class one of
//! [`ErrorClass::ALL`]), so no client can grow the output. The expiry gauges are computed
//! at scrape time from the published credentials. No metric carries a secret, an access
//! key id or a token: only role names, which are public (`serve` lists them over IMDS).
//!
//! Rendering and routing are pure (the state and the time in, the text out), so every rule
//! is unit-tested without a socket.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use hyper::body::Bytes;
use hyper::header::{ALLOW, HeaderValue};
use hyper::{Method, Request, StatusCode};

use super::counters::{NO_LATENCY, Route, STATUSES};
use super::http::{Resp, respond};
use super::state::Shared;
use crate::error::ErrorClass;
use crate::time::UtcTime;

/// The content type of the text exposition format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value per the text format: backslash, double quote and newline.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The text exposition of `shared`'s metrics at `now`.
pub(crate) fn render(shared: &Shared, now: UtcTime) -> String {
    let m = &shared.metrics;
    let mut out = String::with_capacity(2048);
    let roles: Vec<(String, std::sync::Arc<super::state::Published>)> = shared
        .roles
        .iter()
        .map(|r| (escape(&r.name), r.current()))
        .collect();

    header(
        &mut out,
        "ra_signer_build_info",
        "gauge",
        "The version of ra-signer serving, as a label; always 1.",
    );
    let _ = writeln!(
        out,
        "ra_signer_build_info{{version=\"{}\"}} 1",
        escape(env!("CARGO_PKG_VERSION"))
    );

    header(
        &mut out,
        "ra_signer_credentials_valid",
        "gauge",
        "1 if the role has credentials that have not expired, else 0.",
    );
    for (name, p) in &roles {
        let valid = u8::from(p.valid(now).is_some());
        let _ = writeln!(
            out,
            "ra_signer_credentials_valid{{role=\"{name}\"}} {valid}"
        );
    }

    header(
        &mut out,
        "ra_signer_credentials_expiry_seconds",
        "gauge",
        "Seconds until the role's credentials expire (negative once expired), at scrape time.",
    );
    for (name, p) in &roles {
        if let Some(c) = &p.creds {
            let left = i128::from(c.expiration.unix()) - i128::from(now.unix());
            let _ = writeln!(
                out,
                "ra_signer_credentials_expiry_seconds{{role=\"{name}\"}} {left}"
            );
        }
    }

    header(
        &mut out,
        "ra_signer_credentials_expiry_timestamp_seconds",
        "gauge",
        "When the role's credentials expire, as a Unix time.",
    );
    for (name, p) in &roles {
        if let Some(c) = &p.creds {
            let _ = writeln!(
                out,
                "ra_signer_credentials_expiry_timestamp_seconds{{role=\"{name}\"}} {}",
                c.expiration.unix()
            );
        }
    }

    header(
        &mut out,
        "ra_signer_refreshes_total",
        "counter",
        "Successful refreshes of the role's credentials since start (the first CreateSession at start not counted).",
    );
    for ((name, _), c) in roles.iter().zip(&m.roles) {
        let _ = writeln!(
            out,
            "ra_signer_refreshes_total{{role=\"{name}\"}} {}",
            c.refreshes.load(Ordering::Relaxed)
        );
    }

    header(
        &mut out,
        "ra_signer_refresh_failures_total",
        "counter",
        "Failed refreshes of the role's credentials (every attempt failed), by error class.",
    );
    for ((name, _), c) in roles.iter().zip(&m.roles) {
        for (class, n) in ErrorClass::ALL.iter().zip(&c.failures) {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "ra_signer_refresh_failures_total{{role=\"{name}\",class=\"{}\"}} {n}",
                    class.label()
                );
            }
        }
    }

    header(
        &mut out,
        "ra_signer_create_session_duration_seconds",
        "gauge",
        "How long the role's last successful CreateSession took, retries included.",
    );
    for ((name, _), c) in roles.iter().zip(&m.roles) {
        let micros = c.create_session_micros.load(Ordering::Relaxed);
        if micros != NO_LATENCY {
            let _ = writeln!(
                out,
                "ra_signer_create_session_duration_seconds{{role=\"{name}\"}} {}.{:06}",
                micros / 1_000_000,
                micros % 1_000_000
            );
        }
    }

    header(
        &mut out,
        "ra_signer_http_requests_total",
        "counter",
        "Requests answered on the IMDS or ECS listener, by route and status.",
    );
    for (route, row) in Route::ALL.iter().zip(&m.requests) {
        for (i, n) in row.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            if n == 0 {
                continue;
            }
            let status = STATUSES
                .get(i)
                .map_or_else(|| "other".to_owned(), u16::to_string);
            let _ = writeln!(
                out,
                "ra_signer_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                route.label()
            );
        }
    }
    out
}

/// `Ok` if every role has valid credentials at `now`, else why not (one line).
pub(crate) fn health(shared: &Shared, now: UtcTime) -> Result<(), String> {
    for role in &shared.roles {
        let p = role.current();
        if p.valid(now).is_none() {
            let why = match (&p.creds, &p.error) {
                (_, Some(e)) => e.clone(),
                (Some(_), None) => "they expired and no refresh has succeeded yet".to_owned(),
                (None, None) => "none were obtained yet".to_owned(),
            };
            let line = format!("role {}: no valid credentials: {why}", role.name);
            return Err(line.replace(['\r', '\n'], " "));
        }
    }
    Ok(())
}

const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// Answers one request on the metrics listener at `now`.
pub(crate) fn handle<B>(shared: &Shared, req: &Request<B>, now: UtcTime) -> Resp {
    let plain = |status, body: String| respond(status, TEXT, Bytes::from(body));
    if req.method() != Method::GET {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed\n".into(),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    match req.uri().path() {
        "/metrics" => respond(
            StatusCode::OK,
            HeaderValue::from_static(CONTENT_TYPE),
            Bytes::from(render(shared, now)),
        ),
        "/healthz" => match health(shared, now) {
            Ok(()) => plain(StatusCode::OK, "ok\n".into()),
            Err(why) => plain(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
        _ => plain(StatusCode::NOT_FOUND, "Not Found\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Credentials;
    use crate::secret::Secret;
    use crate::serve::state::Mode;
    use crate::serve::tokens::TokenTable;
    use std::sync::Mutex;
    use std::time::Duration;

    fn creds(exp: u64) -> Credentials {
        Credentials {
            access_key_id: "ASIAEXAMPLEKEYID".into(),
            secret_access_key: Secret::new("SECRETKEY".into()),
            session_token: Secret::new("SESSIONTOKEN".into()),
            expiration: UtcTime::from_unix(exp),
        }
    }

    fn state() -> Shared {
        let s = Shared::new(
            vec!["Reader".into(), "we\"ird\\role\n".into()],
            Mode::Imds(Mutex::new(TokenTable::default())),
        );
        s.roles[0].publish(&creds(2000), UtcTime::from_unix(100));
        s.roles[1].publish(&creds(1500), UtcTime::from_unix(100));
        s
    }

    fn req(method: Method, path: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .expect("request")
    }

    #[test]
    fn renders_every_family_with_escaped_labels_and_no_secret() {
        let s = state();
        s.metrics.refreshed(0);
        s.metrics.refreshed(0);
        s.metrics.failed(1, ErrorClass::Network);
        s.metrics.failed(1, ErrorClass::Network);
        s.metrics.failed(1, ErrorClass::Rejected);
        s.metrics.took(0, Duration::from_micros(1_234_567));
        s.metrics.request(Route::Token, StatusCode::OK);
        s.metrics.request(Route::Other, StatusCode::NOT_FOUND);
        s.metrics
            .request(Route::Other, StatusCode::PAYLOAD_TOO_LARGE);
        let text = render(&s, UtcTime::from_unix(1000));
        for line in [
            "# TYPE ra_signer_credentials_expiry_seconds gauge",
            "ra_signer_credentials_expiry_seconds{role=\"Reader\"} 1000",
            "ra_signer_credentials_expiry_seconds{role=\"we\\\"ird\\\\role\\n\"} 500",
            "ra_signer_credentials_expiry_timestamp_seconds{role=\"Reader\"} 2000",
            "ra_signer_credentials_valid{role=\"Reader\"} 1",
            "# TYPE ra_signer_refreshes_total counter",
            "ra_signer_refreshes_total{role=\"Reader\"} 2",
            "ra_signer_refreshes_total{role=\"we\\\"ird\\\\role\\n\"} 0",
            "ra_signer_refresh_failures_total{role=\"we\\\"ird\\\\role\\n\",class=\"network\"} 2",
            "ra_signer_refresh_failures_total{role=\"we\\\"ird\\\\role\\n\",class=\"rejected\"} 1",
            "ra_signer_create_session_duration_seconds{role=\"Reader\"} 1.234567",
            "ra_signer_http_requests_total{route=\"token\",status=\"200\"} 1",
            "ra_signer_http_requests_total{route=\"other\",status=\"404\"} 1",
            "ra_signer_http_requests_total{route=\"other\",status=\"other\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(text.contains(&format!(
            "ra_signer_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        // Zero counters of bounded sets are left out; a role never timed has no gauge.
        assert!(!text.contains("class=\"usage\""), "{text}");
        assert!(!text.contains("create_session_duration_seconds{role=\"we"));
        for secret in ["ASIAEXAMPLEKEYID", "SECRETKEY", "SESSIONTOKEN"] {
            assert!(!text.contains(secret), "{secret} in\n{text}");
        }
        // Every sample line is a name, labels and a number.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let value = l.rsplit(' ').next().expect("value");
            assert!(value.parse::<f64>().is_ok(), "{l}");
        }
        // Past expiry: negative seconds, not valid.
        let later = render(&s, UtcTime::from_unix(1600));
        assert!(
            later.contains(
                "ra_signer_credentials_expiry_seconds{role=\"we\\\"ird\\\\role\\n\"} -100"
            )
        );
        assert!(later.contains("ra_signer_credentials_valid{role=\"we\\\"ird\\\\role\\n\"} 0"));
    }

    #[test]
    fn healthz_is_503_with_one_line_while_any_role_lacks_valid_credentials() {
        let s = state();
        let at = |secs| handle(&s, &req(Method::GET, "/healthz"), UtcTime::from_unix(secs));
        assert_eq!(at(1000).status(), 200);
        let r = at(1500);
        assert_eq!(r.status(), 503);
        let why = health(&s, UtcTime::from_unix(1500)).expect_err("expired");
        assert!(why.contains("role we\"ird\\role"), "{why}");
        assert!(!why.contains('\n'), "{why}");
        // A failed refresh keeps serving until expiry: still healthy.
        s.roles[0].fail("IAM Roles Anywhere refused CreateSession (HTTP 503)".into());
        assert_eq!(at(1000).status(), 200);
        let why = health(&s, UtcTime::from_unix(2000)).expect_err("expired");
        assert!(
            why.contains("HTTP 503") && why.starts_with("role Reader"),
            "{why}"
        );
        // A role that never got credentials.
        let empty = Shared::new(
            vec!["Nobody".into()],
            Mode::Imds(Mutex::new(TokenTable::default())),
        );
        assert_eq!(
            health(&empty, UtcTime::from_unix(0)).expect_err("none"),
            "role Nobody: no valid credentials: none were obtained yet"
        );
    }

    #[test]
    fn routes_methods_and_content_type() {
        let s = state();
        let now = UtcTime::from_unix(1000);
        let r = handle(&s, &req(Method::GET, "/metrics"), now);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[hyper::header::CONTENT_TYPE], CONTENT_TYPE);
        for path in ["/", "/metrics/", "/latest/api/token", "/healthz/x"] {
            assert_eq!(
                handle(&s, &req(Method::GET, path), now).status(),
                404,
                "{path}"
            );
        }
        for m in [Method::POST, Method::PUT, Method::DELETE, Method::HEAD] {
            let r = handle(&s, &req(m.clone(), "/metrics"), now);
            assert_eq!(r.status(), 405, "{m}");
            assert_eq!(r.headers()[ALLOW], "GET");
        }
    }
}
