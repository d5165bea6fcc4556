//! The listener: HTTPS (a throw-away local CA and server certificate made with rcgen)
//! or plain HTTP on a loopback address, routing `POST /sessions` through faults and
//! verification, S3 `GET /` (ListBuckets) for the credentials it issued, the
//! `/_emulator/*` control endpoints, JSON-lines logging, and shutdown on SIGTERM, SIGINT or
//! `--exit-after`.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use ring::rand::SystemRandom;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use crate::clock;
use crate::config::Config;
use crate::faults::{self, Faults, Kind};
use crate::response::{self, Body};
use crate::s3;
use crate::verify::{self, Policy};

/// Largest request body read.
const MAX_BODY: usize = 1 << 20;
/// Time allowed for a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// JSON-lines log sink (a file or stderr). Lines never contain credentials.
pub(crate) struct Logger {
    out: Mutex<Box<dyn Write + Send>>,
}

impl Logger {
    /// Appends to `path`, or writes to stderr when `None`.
    pub(crate) fn open(path: Option<&Path>) -> std::io::Result<Logger> {
        let out: Box<dyn Write + Send> = match path {
            Some(p) => Box::new(fs::OpenOptions::new().create(true).append(true).open(p)?),
            None => Box::new(std::io::stderr()),
        };
        Ok(Logger {
            out: Mutex::new(out),
        })
    }

    /// Writes one JSON object on one line: `ts` plus the given fields (keys come out
    /// in alphabetical order).
    pub(crate) fn line(&self, fields: Value) {
        let mut obj = serde_json::Map::new();
        obj.insert(
            "ts".into(),
            Value::String(clock::iso8601_millis(clock::now())),
        );
        if let Value::Object(map) = fields {
            obj.extend(map);
        }
        let mut text = Value::Object(obj).to_string();
        text.push('\n');
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        // A log that cannot be written must not stop the emulator.
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    }
}

/// Counters served by `GET /_emulator/stats`.
#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    issued: AtomicU64,
    rejected: AtomicU64,
    faulted: AtomicU64,
    s3_requests: AtomicU64,
    s3_denied: AtomicU64,
}

/// Everything a request handler needs.
pub(crate) struct State {
    policy: Policy,
    faults: Mutex<Faults>,
    /// Seconds added to the system clock: a test moves the service's time with its own.
    clock_offset: AtomicI64,
    stats: Stats,
    log: Logger,
    rng: SystemRandom,
    /// The credentials CreateSession handed out, for S3 to check requests against.
    issued: Mutex<s3::IssuedStore>,
    /// What S3 ListBuckets lists (`--s3-bucket`).
    s3_buckets: Vec<String>,
    /// Unix seconds at start-up: the buckets' creation date.
    started: u64,
}

impl State {
    /// The service's time in Unix seconds: the system's, moved by the clock offset.
    fn now(&self) -> u64 {
        let now = i64::try_from(clock::now().as_secs()).unwrap_or(i64::MAX);
        u64::try_from(now.saturating_add(self.clock_offset.load(Ordering::Relaxed))).unwrap_or(0)
    }

    /// Shared state for a policy, initial faults and a log.
    pub(crate) fn new(policy: Policy, faults: Vec<faults::Fault>, log: Logger) -> State {
        State {
            policy,
            faults: Mutex::new(Faults::new(faults)),
            clock_offset: AtomicI64::new(0),
            stats: Stats::default(),
            log,
            rng: SystemRandom::new(),
            issued: Mutex::new(s3::IssuedStore::new(s3::MAX_ISSUED)),
            s3_buckets: Vec::new(),
            started: clock::now().as_secs(),
        }
    }

    /// The buckets S3 ListBuckets answers with.
    pub(crate) fn with_s3_buckets(mut self, buckets: Vec<String>) -> State {
        self.s3_buckets = buckets;
        self
    }
}

/// Tells hyper to drop the connection without answering (the `close` fault).
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

/// One decision log line.
struct Decision<'a> {
    request_id: &'a str,
    status: Option<u16>,
    decision: &'a str,
    code: Option<&'a str>,
    reason: Option<&'a str>,
    serial: Option<&'a str>,
    alg: Option<&'a str>,
    extra: Value,
}

impl State {
    fn log_decision(&self, d: Decision<'_>) {
        let mut fields = json!({
            "request_id": d.request_id,
            "status": d.status,
            "decision": d.decision,
            "code": d.code,
            "reason": d.reason,
            "serial": d.serial,
            "alg": d.alg,
        });
        if let (Value::Object(base), Value::Object(extra)) = (&mut fields, d.extra) {
            base.extend(extra);
        }
        self.log.line(fields);
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let rid = response::request_id(&state.rng);
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let resp = match path.as_str() {
        "/sessions" if method == Method::POST => return create_session(&state, req, &rid).await,
        "/" if method == Method::GET => s3_list_buckets(&state, req, &rid).await,
        "/" => {
            let mut r = s3_error(
                405,
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
                &rid,
            );
            r.headers_mut().insert(
                hyper::header::ALLOW,
                hyper::header::HeaderValue::from_static("GET"),
            );
            r
        }
        "/_emulator/stats" if method == Method::GET => stats(&state, &rid),
        "/_emulator/faults" if method == Method::GET => {
            let specs = state
                .faults
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .specs();
            response::respond(
                200,
                "application/json",
                json!({ "faults": specs }).to_string(),
                &rid,
            )
        }
        "/_emulator/faults" if method == Method::POST => set_faults(&state, req, &rid).await,
        "/_emulator/clock" if method == Method::GET => clock_offset(&state, &rid),
        "/_emulator/clock" if method == Method::POST => set_clock(&state, req, &rid).await,
        "/sessions" | "/_emulator/stats" | "/_emulator/faults" | "/_emulator/clock" => {
            let mut r = response::error(
                405,
                "MethodNotAllowedException",
                &format!("Method {method} is not allowed on {path}"),
                &rid,
            );
            let allow = if path == "/sessions" {
                "POST"
            } else if path == "/_emulator/stats" {
                "GET"
            } else {
                "GET, POST"
            };
            r.headers_mut().insert(
                hyper::header::ALLOW,
                hyper::header::HeaderValue::from_static(allow),
            );
            r
        }
        _ => response::error(
            404,
            "UnknownOperationException",
            &format!("No operation at {method} {path}"),
            &rid,
        ),
    };
    Ok(resp)
}

fn stats(state: &State, rid: &str) -> Response<Body> {
    let s = &state.stats;
    let body = json!({
        "requests": s.requests.load(Ordering::Relaxed),
        "issued": s.issued.load(Ordering::Relaxed),
        "rejected": s.rejected.load(Ordering::Relaxed),
        "faulted": s.faulted.load(Ordering::Relaxed),
        "s3_requests": s.s3_requests.load(Ordering::Relaxed),
        "s3_denied": s.s3_denied.load(Ordering::Relaxed),
    });
    response::respond(200, "application/json", body.to_string(), rid)
}

async fn read_body(body: Incoming) -> Option<hyper::body::Bytes> {
    Limited::new(body, MAX_BODY)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes())
}

/// The most the clock may be moved: ten years.
const MAX_CLOCK_OFFSET: i64 = 10 * 366 * 86_400;

fn clock_offset(state: &State, rid: &str) -> Response<Body> {
    let offset = state.clock_offset.load(Ordering::Relaxed);
    response::respond(
        200,
        "application/json",
        json!({ "offset": offset, "now": state.now() }).to_string(),
        rid,
    )
}

/// `POST /_emulator/clock` with `{"offset": SECONDS}`: the service's time becomes the
/// system's plus SECONDS (negative: behind), for X-Amz-Date checks, certificate validity and
/// credential expirations alike.
async fn set_clock(state: &State, req: Request<Incoming>, rid: &str) -> Response<Body> {
    let parsed = match read_body(req.into_body()).await {
        None => Err("request body unreadable or too large".to_string()),
        Some(bytes) => serde_json::from_slice::<Value>(&bytes)
            .map_err(|e| format!("expected {{\"offset\": SECONDS}}: {e}"))
            .and_then(|v| {
                v.get("offset")
                    .and_then(Value::as_i64)
                    .filter(|o| o.abs() <= MAX_CLOCK_OFFSET)
                    .ok_or_else(|| {
                        format!(
                            "expected {{\"offset\": SECONDS}} with |SECONDS| <= {MAX_CLOCK_OFFSET}"
                        )
                    })
            }),
    };
    match parsed {
        Ok(offset) => {
            state.clock_offset.store(offset, Ordering::Relaxed);
            state
                .log
                .line(json!({ "event": "clock", "request_id": rid, "offset": offset }));
            clock_offset(state, rid)
        }
        Err(message) => response::error(400, "ValidationException", &message, rid),
    }
}

async fn set_faults(state: &State, req: Request<Incoming>, rid: &str) -> Response<Body> {
    let parsed = match read_body(req.into_body()).await {
        None => Err("request body unreadable or too large".to_string()),
        Some(bytes) => serde_json::from_slice::<Vec<String>>(&bytes)
            .map_err(|e| format!("expected a JSON array of fault specs: {e}"))
            .and_then(|specs| faults::parse_all(&specs)),
    };
    match parsed {
        Ok(list) => {
            let mut faults = state.faults.lock().unwrap_or_else(PoisonError::into_inner);
            faults.replace(list);
            let specs = faults.specs();
            drop(faults);
            state
                .log
                .line(json!({ "event": "faults", "request_id": rid, "faults": specs }));
            response::respond(
                200,
                "application/json",
                json!({ "faults": specs }).to_string(),
                rid,
            )
        }
        Err(message) => response::error(400, "ValidationException", &message, rid),
    }
}

fn fault_status_code(status: u16) -> &'static str {
    match status {
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        409 => "ConflictException",
        429 => "ThrottlingException",
        400..=499 => "ValidationException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    }
}

async fn create_session(
    state: &State,
    req: Request<Incoming>,
    rid: &str,
) -> Result<Response<Body>, DropConnection> {
    state.stats.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let body = read_body(body).await;

    let applied = state
        .faults
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .next_request();
    if applied.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(applied.delay_ms)).await;
    }
    if let Some(kind) = applied.answer {
        state.stats.faulted.fetch_add(1, Ordering::Relaxed);
        let fault = faults::Fault {
            kind,
            remaining: None,
        }
        .to_string();
        let (status, code, resp) = match kind {
            Kind::Status(status) => {
                let code = fault_status_code(status);
                let message = format!("Injected fault: {fault}");
                (
                    Some(status),
                    Some(code),
                    Some(response::error(status, code, &message, rid)),
                )
            }
            Kind::Throttle => {
                let code = "ThrottlingException";
                (
                    Some(429),
                    Some(code),
                    Some(response::error(429, code, "Rate exceeded", rid)),
                )
            }
            Kind::Garbage => (
                Some(201),
                None,
                Some(response::respond(
                    201,
                    "application/json",
                    "<html>injected fault: this is not JSON".into(),
                    rid,
                )),
            ),
            Kind::EmptySet => (
                Some(201),
                None,
                Some(response::respond(
                    201,
                    "application/json",
                    r#"{"credentialSet":[]}"#.into(),
                    rid,
                )),
            ),
            Kind::Hostile | Kind::Expired => (
                Some(201),
                None,
                Some(response::respond(
                    201,
                    "application/json",
                    response::faulty_credentials(kind == Kind::Hostile, state.now()),
                    rid,
                )),
            ),
            Kind::EndlessBody => (Some(201), None, Some(response::endless(rid))),
            Kind::SlowBody => (Some(201), None, Some(response::slow_body(rid))),
            Kind::HugeMessage => {
                let code = "AccessDeniedException";
                (
                    Some(403),
                    Some(code),
                    Some(response::error(403, code, &response::huge_message(), rid)),
                )
            }
            Kind::ControlChars => (
                Some(403),
                Some("AccessDeniedException"),
                Some(response::control_chars(rid)),
            ),
            Kind::Close | Kind::Delay(_) => (None, None, None),
        };
        state.log_decision(Decision {
            request_id: rid,
            status,
            decision: "fault",
            code,
            reason: Some(&format!("injected fault {fault}")),
            serial: None,
            alg: None,
            extra: json!({ "fault": fault }),
        });
        return resp.ok_or(DropConnection);
    }

    let Some(body) = body else {
        state.stats.rejected.fetch_add(1, Ordering::Relaxed);
        let message = format!("Request body unreadable or larger than {MAX_BODY} bytes");
        state.log_decision(Decision {
            request_id: rid,
            status: Some(413),
            decision: "rejected",
            code: Some("ValidationException"),
            reason: Some(&message),
            serial: None,
            alg: None,
            extra: json!({ "check": "body" }),
        });
        return Ok(response::error(413, "ValidationException", &message, rid));
    };

    let now = state.now();
    let request = verify::Request::of(&parts, &body);
    match verify::verify(&request, &state.policy, now) {
        Ok(accepted) => {
            state.stats.issued.fetch_add(1, Ordering::Relaxed);
            let credentials = response::new_credentials(&state.rng, now + accepted.duration);
            state
                .issued
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(
                    credentials.access_key_id.clone(),
                    s3::Issued {
                        secret: credentials.secret_access_key.clone(),
                        session_token: Some(credentials.session_token.clone()),
                        expires: credentials.expiration,
                        role: accepted.role.clone(),
                        session_name: response::session_name(&accepted),
                    },
                    now,
                );
            let body = response::success_body(&accepted, &credentials, &state.rng);
            state.log_decision(Decision {
                request_id: rid,
                status: Some(201),
                decision: "issued",
                code: None,
                reason: None,
                serial: Some(&accepted.leaf.serial_decimal()),
                alg: Some(accepted.alg.name()),
                extra: json!({
                    "role": accepted.role.to_string(),
                    "duration": accepted.duration,
                    "role_session_name": accepted.role_session_name,
                    "trust_anchor": accepted.trust_anchor.to_string(),
                    "profile": accepted.profile.to_string(),
                    "session_tags": accepted
                        .session_tags
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect::<serde_json::Map<String, Value>>(),
                    "allowed_by": accepted.statement,
                    "session_policy": accepted.session_policy,
                    "managed_policy_arns": accepted.managed_policy_arns,
                }),
            });
            Ok(response::respond(201, "application/json", body, rid))
        }
        Err(rej) => {
            state.stats.rejected.fetch_add(1, Ordering::Relaxed);
            state.log_decision(Decision {
                request_id: rid,
                status: Some(rej.status),
                decision: "rejected",
                code: Some(rej.code),
                reason: Some(&rej.message),
                serial: rej.serial.as_deref(),
                alg: rej.alg.map(|a| a.name()),
                extra: json!({ "check": rej.check, "detail": rej.detail }),
            });
            Ok(response::error(rej.status, rej.code, &rej.message, rid))
        }
    }
}

/// An S3 answer: the body in `content_type`, and the request id also as S3 names it.
fn s3_respond(status: u16, content_type: &str, body: String, rid: &str) -> Response<Body> {
    let mut r = response::respond(status, content_type, body, rid);
    if let Ok(v) = hyper::header::HeaderValue::from_str(rid) {
        r.headers_mut().insert("x-amz-request-id", v);
    }
    r
}

/// An S3 XML error.
fn s3_error(status: u16, code: &str, message: &str, rid: &str) -> Response<Body> {
    s3_respond(
        status,
        "application/xml",
        s3::error_body(code, message, rid),
        rid,
    )
}

/// `GET /`: S3 ListBuckets, for a request signed with credentials this emulator issued.
async fn s3_list_buckets(state: &State, req: Request<Incoming>, rid: &str) -> Response<Body> {
    state.stats.s3_requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let outcome = match read_body(body).await {
        None => Err(s3::S3Error {
            status: 400,
            code: "MaxMessageLengthExceeded",
            message: format!("Your request was too big (more than {MAX_BODY} bytes)."),
            check: "body",
            access_key: None,
        }),
        Some(body) => {
            let request = verify::Request::of(&parts, &body);
            let store = state.issued.lock().unwrap_or_else(PoisonError::into_inner);
            s3::authenticate(&request, &store, &state.policy.account.region, state.now())
        }
    };
    match outcome {
        Ok(caller) => {
            state.log.line(json!({
                "event": "s3",
                "operation": "ListBuckets",
                "outcome": "allowed",
                "request_id": rid,
                "status": 200,
                "access_key": caller.access_key,
                "role": caller.role.to_string(),
                "role_session_name": caller.session_name,
                "buckets": state.s3_buckets.len(),
            }));
            s3_respond(
                200,
                "application/xml",
                s3::list_buckets_body(&caller.role.account, &state.s3_buckets, state.started),
                rid,
            )
        }
        Err(e) => {
            state.stats.s3_denied.fetch_add(1, Ordering::Relaxed);
            state.log.line(json!({
                "event": "s3",
                "operation": "ListBuckets",
                "outcome": "denied",
                "request_id": rid,
                "status": e.status,
                "code": e.code,
                "reason": e.message,
                "check": e.check,
                "access_key": e.access_key,
            }));
            s3_error(e.status, e.code, &e.message, rid)
        }
    }
}

/// Makes a local CA and a server certificate for 127.0.0.1, localhost and ::1. Returns
/// the TLS acceptor and the CA's PEM.
fn make_tls(extra_names: &[String]) -> Result<(TlsAcceptor, String), String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, date_time_ymd,
    };
    let err = |e: rcgen::Error| format!("cannot generate the TLS certificate: {e}");
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "ra-emulator local CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = date_time_ymd(2020, 1, 1);
    ca.not_after = date_time_ymd(2100, 1, 1);
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;

    let key = KeyPair::generate().map_err(err)?;
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    names.extend(extra_names.iter().cloned());
    let mut leaf = CertificateParams::new(names).map_err(err)?;
    leaf.distinguished_name = rcgen::DistinguishedName::new();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = date_time_ymd(2020, 1, 1);
    leaf.not_after = date_time_ymd(2100, 1, 1);
    let issuer = Issuer::from_params(&ca, &ca_key);
    let leaf_cert = leaf.signed_by(&key, &issuer).map_err(err)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone(), ca_cert.der().clone()],
            key_der,
        )
        .map_err(|e| format!("TLS configuration: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), ca_cert.pem()))
}

/// Writes `contents` to `path` through a temporary file and a rename.
fn write_atomically(path: &Path, contents: &str) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    fs::write(&tmp, contents)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            format!("cannot write {}: {e}", path.display())
        })
}

async fn serve_connection(state: Arc<State>, stream: TcpStream, tls: Option<TlsAcceptor>) {
    let service = service_fn(move |req| {
        let state = Arc::clone(&state);
        async move {
            let mut resp = handle(Arc::clone(&state), req).await?;
            // The service's own clock, moved by /_emulator/clock (hyper would send the
            // system's): clients measure their skew against it.
            if let Ok(date) = hyper::header::HeaderValue::from_str(&clock::http_date(state.now())) {
                resp.headers_mut().insert(hyper::header::DATE, date);
            }
            Ok::<_, DropConnection>(resp)
        }
    });
    let builder = {
        let mut b = http1::Builder::new();
        b.timer(TokioTimer::new());
        b
    };
    // Errors here are client disconnects, bad requests or the `close` fault: nothing to do.
    match tls {
        None => {
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
        Some(acceptor) => {
            if let Ok(Ok(tls_stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
            {
                let _ = builder
                    .serve_connection(TokioIo::new(tls_stream), service)
                    .await;
            }
        }
    }
}

/// Binds, announces readiness (TLS CA file, ready file, URL on stdout), serves until a
/// signal or the time limit, and returns why it stopped.
pub(crate) async fn run(config: &Config, state: State) -> Result<&'static str, String> {
    // Handlers first, so a signal sent right after the ready file appears is caught.
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot install a SIGTERM handler: {e}"))?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| format!("cannot install a SIGINT handler: {e}"))?;

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    let tls = if config.tls {
        let (acceptor, ca_pem) = make_tls(&config.tls_names)?;
        if let Some(path) = &config.tls_ca_out {
            write_atomically(path, &ca_pem)?;
        }
        Some(acceptor)
    } else {
        None
    };
    let url = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
    if let Some(path) = &config.ready_file {
        write_atomically(path, &format!("{url}\n"))?;
    }
    let state = Arc::new(state);
    state.log.line(json!({ "event": "ready", "url": url }));
    // stdout carries only this line; a closed stdout is not an error.
    let _ = writeln!(std::io::stdout(), "{url}").and_then(|()| std::io::stdout().flush());

    let limit = config.exit_after;
    let deadline = async move {
        match limit {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(deadline);
    let reason = loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((stream, _peer)) => {
                        // Answers go out in more than one write: without this, Nagle's
                        // algorithm and the client's delayed ACK add ~40 ms to each one.
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(serve_connection(Arc::clone(&state), stream, tls.clone()));
                    }
                    // Out of file descriptors and the like: back off instead of spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
            () = &mut deadline => break "exit-after",
        }
    };
    state.log.line(json!({ "event": "stop", "reason": reason }));
    Ok(reason)
}
