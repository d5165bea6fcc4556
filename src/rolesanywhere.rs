//! The CreateSession call over HTTPS, to the endpoint [`crate::endpoint`] chose: TLS trust,
//! one signed attempt (retries are [`crate::refresh::create_session`]'s), and AWS error mapping.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::config::SessionRequest;
use crate::credentials::{Credentials, parse_create_session};
use crate::signer::{Identity, SignError};
use crate::sigv4x509::{self, RequestParts};
use crate::time::UtcTime;

pub use crate::config::ClientOptions;

/// The most of a response body that is read. A CreateSession answer is a few KiB (the
/// session token dominates); an error body is smaller still.
pub const MAX_RESPONSE_BYTES: u64 = 1024 * 1024;

/// Why CreateSession failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateSessionError {
    /// The client could not be set up (bad CA bundle, bad endpoint URL).
    #[error("{0}")]
    Setup(String),
    /// The key could not sign.
    #[error("signing failed: {0}")]
    Sign(#[from] SignError),
    /// The endpoint could not be reached or did not answer in time.
    #[error("cannot reach {endpoint}: {detail}")]
    Transport {
        /// The endpoint.
        endpoint: String,
        /// What happened (connection refused, timeout, TLS failure).
        detail: String,
        /// Whether it was a TLS certificate problem.
        tls: bool,
    },
    /// The service answered with an error.
    #[error("{}", service_message(*.status, .code, .message, .request_id))]
    Service {
        /// HTTP status.
        status: u16,
        /// AWS error code (`AccessDeniedException`).
        code: String,
        /// AWS error message.
        message: String,
        /// `x-amzn-RequestId`, when sent.
        request_id: Option<String>,
    },
    /// The service answered success with a body we cannot use.
    #[error("{endpoint} answered HTTP {status} but {detail}")]
    BadResponse {
        /// The endpoint.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// What is wrong with it.
        detail: String,
    },
}

fn service_message(status: u16, code: &str, message: &str, request_id: &Option<String>) -> String {
    let mut s = format!("IAM Roles Anywhere refused CreateSession (HTTP {status} {code})");
    if !message.is_empty() {
        s.push_str(&format!(": {message}"));
    }
    if let Some(id) = request_id {
        s.push_str(&format!(" [request id {id}]"));
    }
    s
}

/// What a [`Client::probe`] learnt.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The HTTP status of the answer.
    pub status: u16,
    /// Its `Date` header, made safe to print.
    pub date: Option<String>,
}

/// A CreateSession client for one endpoint.
///
/// One POST needs no thread of its own: reqwest's async client runs on a current-thread
/// runtime driven by the calling thread, for the length of each call. The caller must not be
/// inside a Tokio runtime itself (serve and update call from their own refresher threads).
pub struct Client {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    url: reqwest::Url,
    host: String,
    options: ClientOptions,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url.as_str())
            .finish()
    }
}

impl Client {
    /// Builds a client: parses the endpoint, loads the trust store, sets timeouts and proxies.
    pub fn new(options: ClientOptions) -> Result<Self, CreateSessionError> {
        let endpoint = if options.endpoint.contains("://") {
            options.endpoint.clone()
        } else {
            format!("https://{}", options.endpoint)
        };
        let mut url = reqwest::Url::parse(&endpoint).map_err(|e| {
            CreateSessionError::Setup(format!(
                "the endpoint {} is not a URL: {e}",
                crate::endpoint::redact_url(&options.endpoint)
            ))
        })?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(CreateSessionError::Setup(format!(
                "the endpoint {} must be an http(s) URL with a host",
                crate::endpoint::redact_url(&options.endpoint)
            )));
        }
        url.set_path("/sessions");
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let tls = tls_config(&options)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| {
                CreateSessionError::Setup(format!("cannot set up the HTTPS client: {e}"))
            })?;
        // hyper's connection pool looks for a runtime when it is made.
        let _runtime = runtime.enter();
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .user_agent(concat!("ra-signer/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none());
        if is_loopback(&url) {
            // Loopback endpoints (the emulator, a local proxy) never go through HTTPS_PROXY.
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| {
            CreateSessionError::Setup(format!(
                "cannot set up the HTTPS client: {}",
                error_chain(&e)
            ))
        })?;
        Ok(Client {
            runtime,
            http,
            url,
            host,
            options,
        })
    }

    /// Whether `--debug` is on.
    pub fn debug(&self) -> bool {
        self.options.debug
    }

    /// The endpoint URL.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// The options the client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The proxy requests to the endpoint go through, as `scheme://host:port` and the
    /// variable that set it; `None` when they go direct (loopback endpoints always do).
    pub fn proxy(&self) -> Option<url::Url> {
        if is_loopback(&self.url) {
            return None;
        }
        crate::proxy::configured_for(&self.url)
    }

    /// One unsigned `GET /` of the endpoint through the same TLS trust, proxy and timeouts
    /// as CreateSession, for `doctor`: any HTTP answer proves the connection and the trust;
    /// its `Date` header tells the endpoint's clock. The body is not read.
    pub fn probe(&self) -> Result<Probe, CreateSessionError> {
        let mut url = self.url.clone();
        url.set_path("/");
        url.set_query(None);
        let req = self.http.get(url);
        self.runtime.block_on(async {
            let resp = req.send().await.map_err(|e| self.transport_error(&e))?;
            Ok(Probe {
                status: resp.status().as_u16(),
                date: header(&resp, "date"),
            })
        })
    }

    /// Calls CreateSession once, signed at `now` ([`crate::refresh::create_session`]
    /// retries).
    pub fn create_session(
        &self,
        identity: &Identity,
        request: &SessionRequest,
        now: UtcTime,
    ) -> Result<Credentials, CreateSessionError> {
        let body = session_body(request);
        let parts = RequestParts {
            method: "POST",
            path: "/sessions",
            query: vec![
                ("profileArn", request.profile_arn.as_str()),
                ("roleArn", request.role_arn.as_str()),
                ("trustAnchorArn", request.trust_anchor_arn.as_str()),
            ],
            host: &self.host,
            content_type: "application/json",
            body: body.as_bytes(),
        };
        let signed = sigv4x509::sign(&parts, identity, &self.options.region, now)?;
        if self.options.debug {
            crate::diag!(
                "ra-signer: debug: canonical request:\n{}\nra-signer: debug: string to sign:\n{}",
                signed.canonical_request,
                signed.string_to_sign
            );
        }
        let mut url = self.url.clone();
        url.set_query(Some(&sigv4x509::canonical_query(&parts.query)));
        let mut req = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone());
        for (name, value) in &signed.headers {
            req = req.header(*name, value);
        }
        let (status, request_id, error_type, body) = self.runtime.block_on(async {
            let resp = req.send().await.map_err(|e| self.transport_error(&e))?;
            let status = resp.status().as_u16();
            let request_id = header(&resp, "x-amzn-requestid");
            let error_type = header(&resp, "x-amzn-errortype");
            let body = self.read_body(resp, status).await?;
            Ok::<_, CreateSessionError>((status, request_id, error_type, body))
        })?;
        if self.options.debug {
            crate::diag!(
                "ra-signer: debug: HTTP {status} from {}",
                crate::proxy::shown(&self.url)
            );
        }
        if status == 201 || status == 200 {
            return parse_create_session(&body, now).map_err(|e| CreateSessionError::BadResponse {
                endpoint: crate::proxy::shown(&self.url),
                status,
                detail: e.0,
            });
        }
        let (code, message) = aws_error(error_type.as_deref(), &body);
        if code.is_empty() && !(400..600).contains(&status) {
            return Err(CreateSessionError::BadResponse {
                endpoint: crate::proxy::shown(&self.url),
                status,
                detail: "that is not a CreateSession answer".into(),
            });
        }
        Err(CreateSessionError::Service {
            status,
            code: if code.is_empty() {
                format!("HTTP{status}")
            } else {
                code
            },
            message,
            request_id,
        })
    }

    /// Reads the response body, at most [`MAX_RESPONSE_BYTES`]: an endpoint that sends
    /// more (or never stops) is refused before it can exhaust memory.
    async fn read_body(
        &self,
        mut resp: reqwest::Response,
        status: u16,
    ) -> Result<Zeroizing<Vec<u8>>, CreateSessionError> {
        let too_large = || CreateSessionError::BadResponse {
            endpoint: crate::proxy::shown(&self.url),
            status,
            detail: format!(
                "its body is larger than {} MiB, far more than a CreateSession answer: not reading it",
                MAX_RESPONSE_BYTES / (1024 * 1024)
            ),
        };
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES)
        {
            return Err(too_large());
        }
        // Sized up front: a buffer that grows leaves copies of the credentials behind.
        let expected = resp.content_length().unwrap_or(64 * 1024);
        let mut body = Zeroizing::new(Vec::with_capacity(
            usize::try_from(expected).unwrap_or(0) + 1,
        ));
        // The async client's timeout covers the whole exchange, body included: a body that
        // trickles a byte at a time is cut at the request timeout (`body_error`).
        loop {
            let chunk = resp.chunk().await.map_err(|e| self.body_error(&e))?;
            let Some(chunk) = chunk else { break };
            if (body.len() + chunk.len()) as u64 > MAX_RESPONSE_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// A failure while the body arrives: the request timeout ran out, or the connection
    /// broke off.
    fn body_error(&self, e: &reqwest::Error) -> CreateSessionError {
        let detail = if e.is_timeout() {
            format!(
                "the response body did not arrive within {} s (it trickles)",
                self.options.request_timeout.as_secs()
            )
        } else {
            format!("the response body broke off: {}", transport_detail(e))
        };
        CreateSessionError::Transport {
            endpoint: host_port(&self.url),
            detail,
            tls: false,
        }
    }

    fn transport_error(&self, e: &reqwest::Error) -> CreateSessionError {
        let detail = transport_detail(e);
        let tls = detail.contains("certificate") || detail.contains("UnknownIssuer");
        let target = host_port(&self.url);
        let detail = match crate::proxy::configured_for(&self.url) {
            Some(proxy) if detail.contains("tunnel") => {
                match crate::proxy::tunnel_status(&proxy, &target, self.options.connect_timeout) {
                    Some((code, reason)) => format!(
                        "the proxy {} refused the tunnel with HTTP {code} {reason}",
                        crate::proxy::shown(&proxy)
                    ),
                    None => format!(
                        "the proxy {} refused the tunnel ({detail})",
                        crate::proxy::shown(&proxy)
                    ),
                }
            }
            _ => detail,
        };
        let detail = if e.is_timeout() {
            format!(
                "no answer within {} s ({detail})",
                self.options.request_timeout.as_secs()
            )
        } else {
            detail
        };
        CreateSessionError::Transport {
            endpoint: target,
            detail,
            tls,
        }
    }
}

/// `host:port` of the endpoint: what a network error names (no scheme, path, query or
/// credentials).
fn host_port(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The causes of a transport failure, without reqwest's "error sending request for url
/// (…)", which repeats the whole URL with its query, nor hyper's wrapper lines.
fn transport_detail(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !text.starts_with("client error (") && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        if e.is_timeout() {
            return "timed out".into();
        }
        return "the request failed".into();
    }
    // TLS errors quote the names the server's certificate presents: the peer's text.
    crate::display::remote_within(&parts.join(": "), 600)
}

/// The JSON body: `durationSeconds`, and `roleSessionName` only when asked for.
pub fn session_body(request: &SessionRequest) -> String {
    let mut body = serde_json::Map::new();
    body.insert(
        "durationSeconds".into(),
        serde_json::Value::from(request.duration.seconds()),
    );
    if let Some(name) = &request.role_session_name {
        body.insert(
            "roleSessionName".into(),
            serde_json::Value::from(name.as_str()),
        );
    }
    serde_json::Value::Object(body).to_string()
}

/// A response header, escaped and cut like all remote text.
fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| crate::display::remote_bytes(v.as_bytes()))
}

/// The AWS restJson1 error code and message, escaped and cut: they are printed and logged.
fn aws_error(error_type: Option<&str>, body: &[u8]) -> (String, String) {
    let (code, message) = raw_aws_error(error_type, body);
    (
        crate::display::remote(&code),
        crate::display::remote(&message),
    )
}

fn raw_aws_error(error_type: Option<&str>, body: &[u8]) -> (String, String) {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |names: &[&str]| -> Option<String> {
        let obj = json.as_ref()?.as_object()?;
        names
            .iter()
            .find_map(|n| obj.get(*n).and_then(|v| v.as_str()).map(str::to_owned))
    };
    let code = error_type
        .map(|t| t.split(':').next().unwrap_or(t).to_owned())
        .or_else(|| field(&["__type", "code", "Code"]))
        .map(|c| c.rsplit('#').next().unwrap_or(&c).to_owned())
        .unwrap_or_default();
    let message = field(&["message", "Message"]).unwrap_or_default();
    (code, message)
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// The error and its causes, joined, innermost last.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// ring's provider with TLS 1.3's AES-128-GCM-SHA256 offered first. The set of suites is
/// unchanged; AES-128-GCM is TLS 1.3's mandatory suite and browsers' first choice, and its
/// SHA-256 key schedule costs less than SHA-384's on the handshake that is most of a
/// credential's work (servers that honour the client's order pick it).
fn crypto_provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    provider
}

fn tls_config(options: &ClientOptions) -> Result<rustls::ClientConfig, CreateSessionError> {
    let provider = Arc::new(crypto_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| CreateSessionError::Setup(format!("TLS setup failed: {e}")))?;
    if options.danger_accept_invalid_certs {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(danger::AcceptAnyServerCert(provider)))
            .with_no_client_auth());
    }
    let Some(path) = &options.ca_bundle else {
        let system = crate::truststore::SystemVerifier::new(options.system_trust.as_ref(), provider)
            .map_err(|_| {
                CreateSessionError::Setup(
                    "no trusted CA certificates found in the system trust store (SSL_CERT_FILE, SSL_CERT_DIR or /etc/ssl/certs)".into(),
                )
            })?;
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(system))
            .with_no_client_auth());
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = crate::cert::Cert::all_from_file(path)
        .map_err(|e| CreateSessionError::Setup(format!("cannot use the CA bundle: {e}")))?;
    for c in certs {
        roots
            .add(rustls::pki_types::CertificateDer::from(c.der().to_vec()))
            .map_err(|e| {
                CreateSessionError::Setup(format!(
                    "the CA bundle {} holds a certificate TLS cannot use: {e}",
                    path.display()
                ))
            })?;
    }
    if roots.is_empty() {
        return Err(CreateSessionError::Setup(
            "the CA bundle holds no certificate".into(),
        ));
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

mod danger {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use std::sync::Arc;

    /// Accepts any server certificate (`--no-verify-ssl`), still checking that the
    /// handshake signatures are valid for the presented key.
    #[derive(Debug)]
    pub(super) struct AcceptAnyServerCert(pub Arc<CryptoProvider>);

    impl ServerCertVerifier for AcceptAnyServerCert {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_128_gcm_is_offered_first_and_no_suite_is_added_or_dropped() {
        let ours = crypto_provider();
        let defaults = rustls::crypto::ring::default_provider();
        assert_eq!(
            ours.cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        let names = |p: &rustls::crypto::CryptoProvider| {
            let mut v: Vec<String> = p
                .cipher_suites
                .iter()
                .map(|s| format!("{:?}", s.suite()))
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&ours), names(&defaults));
    }

    #[test]
    fn aws_errors_from_header_or_body() {
        let (c, m) = aws_error(
            Some("AccessDeniedException:http://internal.amazon.com/coral/"),
            br#"{"message":"Untrusted Signing Certificate"}"#,
        );
        assert_eq!(
            (c.as_str(), m.as_str()),
            ("AccessDeniedException", "Untrusted Signing Certificate")
        );
        let (c, m) = aws_error(
            None,
            br#"{"__type":"com.amazon#ValidationException","Message":"bad"}"#,
        );
        assert_eq!((c.as_str(), m.as_str()), ("ValidationException", "bad"));
        assert_eq!(aws_error(None, b"<html>"), (String::new(), String::new()));
    }

    #[test]
    fn aws_errors_are_escaped_and_cut() {
        let huge = format!(
            r#"{{"message":"no\nra-signer: error: forged\u001b[2J\u0007{}"}}"#,
            "A".repeat(600_000)
        );
        let (_, m) = aws_error(Some("Bad\tType"), huge.as_bytes());
        assert!(
            m.starts_with("no\\nra-signer: error: forged\\u{1b}[2J\\u{7}AAA"),
            "{m}"
        );
        assert!(m.ends_with('…') && m.chars().count() <= crate::display::MAX_REMOTE_CHARS + 1);
        let (c, _) = aws_error(Some("Bad\tType"), b"{}");
        assert_eq!(c, "Bad\\tType");
    }
}
