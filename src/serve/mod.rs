//! `serve`: an IMDSv2-style (or ECS container-credentials) endpoint that hands one set of
//! credentials per role to every local SDK, signing once per refresh.
//!
//! Start-up is fail-fast: flags are checked, the port is bound, the identity opened and one
//! CreateSession made per role before anything is served; any failure exits with the
//! classified error. Then a refresher thread ([`crate::refresh::Refresher`]) owns the identity and
//! replaces the pre-rendered response bodies ([`state`]) before expiry, while a small tokio
//! runtime answers requests from those snapshots ([`http`]), admitting every connection
//! and closing idle ones to make room ([`conns`]). SIGTERM, SIGINT, SIGHUP and SIGQUIT stop
//! both and close the identity (token logout, TPM flush) if the hardware answers within
//! [`crate::shutdown::GRACE`] ([`crate::shutdown`]).

pub(crate) mod conns;
pub(crate) mod counters;
pub(crate) mod http;
pub(crate) mod metrics;
pub(crate) mod state;
pub(crate) mod tokens;

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use ring::rand::SecureRandom;

use crate::config::{ServeConfig, ServeProtocol, SessionRequest};
use crate::credentials::Credentials;
use crate::error::{Error, ErrorClass, ModeError};
use crate::refresh::{self, LiveIdentity, Outlet, Refresher, Stop, SystemClock, Timer, log};
use crate::rolesanywhere::Client;
use crate::secret::Secret;
use crate::shutdown::{self, Asked, Signals, Worker};
use crate::time::UtcTime;
use conns::Connections;
use state::{Mode, Shared};

/// Most connections served at once; past it, a new one replaces the oldest idle one.
const MAX_CONNECTIONS: usize = 4096;
/// File descriptors kept free of connections (listener, runtime, identity, logs).
const RESERVED_FDS: u64 = 128;
/// Time allowed for a client to send a request's headers (idle keep-alive included).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How often idle connections are looked for when the server is near its cap.
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// How long a connection told to close may take to finish the answer it is writing.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Most connections the metrics listener serves at once (its own table: scrapers cannot
/// take the IMDS or ECS listener's room).
const METRICS_CONNECTIONS: usize = 64;

/// Raises the soft limit on open files to the hard one and returns the connection cap
/// the result allows: [`MAX_CONNECTIONS`] idle sockets must not make accept fail.
fn connection_cap() -> usize {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        );
    }
    match getrlimit(Resource::Nofile).current {
        None => MAX_CONNECTIONS,
        Some(n) => usize::try_from(n.saturating_sub(RESERVED_FDS))
            .unwrap_or(MAX_CONNECTIONS)
            .clamp(16, MAX_CONNECTIONS),
    }
}

/// The ECS token: read from `path` if it exists, else made and written there (0600).
fn ecs_token(path: &Path) -> Result<Secret, ModeError> {
    match crate::secret::read_secret_file(path, "the ECS authorization token") {
        Ok(token) => {
            let t = token.expose().trim();
            if t.len() < 16 || t.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
                return Err(ModeError::BadToken {
                    path: path.to_owned(),
                });
            }
            Ok(Secret::new(t.to_owned()))
        }
        Err(crate::secret::SecretError::File { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            let mut raw = zeroize::Zeroizing::new([0u8; 32]);
            ring::rand::SystemRandom::new()
                .fill(raw.as_mut())
                .map_err(|_| ModeError::Rng)?;
            let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.as_ref());
            let write = || -> std::io::Result<()> {
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)?;
                // No newline: SDKs send the file's bytes as the header value.
                f.write_all(token.as_bytes())?;
                f.sync_all()
            };
            write().map_err(|source| ModeError::WriteToken {
                path: path.to_owned(),
                source,
            })?;
            log(
                "serve",
                &format!(
                    "wrote a new ECS authorization token to {} (mode 0600)",
                    path.display()
                ),
            );
            Ok(Secret::new(token))
        }
        Err(e) => Err(ModeError::TokenFile(e)),
    }
}

/// Binds the listener, with the TTL/hop limit set on the listening socket (so the SYN-ACK
/// carries it too) and a backlog for bursts of clients.
pub(crate) fn bind(addr: SocketAddr, hop_limit: u8) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    set_hop_limit(&socket, addr, hop_limit)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(2048)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn set_hop_limit(socket: &socket2::Socket, addr: SocketAddr, hop_limit: u8) -> std::io::Result<()> {
    if addr.is_ipv6() {
        socket.set_unicast_hops_v6(u32::from(hop_limit))
    } else {
        socket.set_ttl_v4(u32::from(hop_limit))
    }
}

/// The answers `serve` gives: each role's credentials are published there, pre-rendered.
struct Answers(Arc<Shared>);

impl Outlet for Answers {
    fn mode(&self) -> &'static str {
        "serve"
    }

    fn slot_name(&self, slot: usize) -> String {
        format!(" of role {}", self.0.roles[slot].name)
    }

    fn deliver(
        &mut self,
        slot: usize,
        creds: &Credentials,
        now: UtcTime,
    ) -> Result<String, String> {
        let role = &self.0.roles[slot];
        role.publish(creds, now);
        self.0.metrics.refreshed(slot);
        Ok(format!(
            "refreshed the credentials of role {}; they expire at {}",
            role.name,
            creds.expiration.rfc3339()
        ))
    }

    fn failed(
        &mut self,
        slot: usize,
        reason: &str,
        class: ErrorClass,
        timer: &Timer,
        now: UtcTime,
    ) -> String {
        self.0.roles[slot].fail(reason.to_owned());
        self.0.metrics.failed(slot, class);
        if timer.expiration > now {
            format!(
                "the current credentials stay in service until {}",
                timer.expiration.rfc3339()
            )
        } else {
            "no valid credentials: answering HTTP 500".to_owned()
        }
    }

    fn took(&mut self, slot: usize, elapsed: Duration) {
        self.0.metrics.took(slot, elapsed);
    }
}

/// Runs `serve` until SIGTERM, SIGINT, SIGHUP or SIGQUIT.
pub(crate) fn run(config: ServeConfig) -> Result<(), Error> {
    let ServeConfig {
        identity: identity_config,
        roles,
        client: options,
        listen: addr,
        hop_limit,
        protocol,
        timing,
        threads,
        metrics: metrics_addr,
    } = config;
    let mode = match &protocol {
        ServeProtocol::Ecs { token_file } => Mode::Ecs(ecs_token(token_file)?),
        ServeProtocol::Imds => Mode::Imds(Mutex::new(tokens::TokenTable::default())),
    };
    let (names, requests): (Vec<String>, Vec<SessionRequest>) =
        roles.into_iter().map(|r| (r.name, r.request)).unzip();

    // 1. The port, before any signature.
    let listener = bind(addr, hop_limit).map_err(|source| ModeError::Listen { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ModeError::Listen { addr, source })?;
    let metrics_listener = match metrics_addr {
        Some(addr) => {
            let l = bind(addr, hop_limit).map_err(|source| ModeError::Listen { addr, source })?;
            let local = l
                .local_addr()
                .map_err(|source| ModeError::Listen { addr, source })?;
            Some((l, local))
        }
        None => None,
    };

    // 2. The identity and one CreateSession per role: fail fast.
    let live = LiveIdentity::open(identity_config, "serve")?;
    let identity = live.identity().ok_or(ModeError::NoIdentity)?;
    let client =
        Client::new(options).map_err(|e| crate::error::session_error(e, identity, &requests[0]))?;
    let shared = Arc::new(Shared::new(names, mode));
    let mut initial = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        let started = Instant::now();
        let creds =
            refresh::create_session(&client, identity, request, &SystemClock, &Stop::default())
                .map_err(|e| crate::error::session_error(e, identity, request))?;
        shared.metrics.took(i, started.elapsed());
        let now = UtcTime::now();
        shared.roles[i].publish(&creds, now);
        initial.push(creds.expiration);
        log(
            "serve",
            &format!(
                "got the credentials of role {}; they expire at {}",
                shared.roles[i].name,
                creds.expiration.rfc3339()
            ),
        );
    }

    // 3. The refresher thread.
    let notifier = crate::sdnotify::Notifier::from_env().map(Arc::new);
    let refresher = Refresher {
        live,
        client,
        requests,
        timing,
        outlet: Answers(Arc::clone(&shared)),
        clock: Arc::new(SystemClock),
        initial,
        notifier: notifier.clone(),
    };
    let refresher =
        Worker::spawn("refresh", move |stop| refresher.run(stop)).map_err(|source| {
            ModeError::Process {
                what: "start a thread",
                source,
            }
        })?;

    // 4. Serve until a signal.
    let announce = match &shared.mode {
        Mode::Imds(_) => format!(
            "listening on http://{local}/ (IMDSv2; hop limit {}): set AWS_EC2_METADATA_SERVICE_ENDPOINT=http://{local}/",
            hop_limit
        ),
        Mode::Ecs(_) => format!(
            "listening on http://{local}/ (ECS; hop limit {}): set AWS_CONTAINER_CREDENTIALS_FULL_URI=http://{local}/ (or http://{local}/role/<name>) and AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={}",
            hop_limit,
            match &protocol {
                ServeProtocol::Ecs { token_file } => token_file.display().to_string(),
                ServeProtocol::Imds => String::new(),
            }
        ),
    };
    let metrics = metrics_listener.map(|(l, local)| {
        (
            l,
            format!("metrics on http://{local}/metrics and http://{local}/healthz"),
        )
    });
    let served = serve(
        listener,
        metrics,
        &shared,
        usize::from(threads),
        &announce,
        notifier.as_deref(),
        &OnSignals {
            refresh: &|| refresher.refresh_now(),
            stop: &|| refresher.stop(),
        },
    );
    // The refresher was told to stop at the signal; it may be inside a call to a stalled
    // TPM or token, which must not keep the process alive.
    let deadline = Instant::now() + shutdown::GRACE;
    if refresher.stop_by(deadline) {
        log("serve", "stopped; the identity is closed");
    } else {
        log(
            "serve",
            "stopped without closing the identity: the key's hardware did not answer in time",
        );
    }
    served
}

/// What the signals do to the refresher.
struct OnSignals<'a> {
    /// At each SIGUSR1.
    refresh: &'a dyn Fn(),
    /// At a stopping signal, before the connections are dropped.
    stop: &'a dyn Fn(),
}

/// Answers requests on a runtime of `threads` workers (work-stealing keeps them evenly
/// loaded whatever the kernel's accept order) until a stopping signal.
/// The service manager hears `READY=1` once requests are answered, and `STOPPING=1` at the
/// signal.
fn serve(
    listener: std::net::TcpListener,
    metrics: Option<(std::net::TcpListener, String)>,
    shared: &Arc<Shared>,
    threads: usize,
    announce: &str,
    notifier: Option<&crate::sdnotify::Notifier>,
    signals: &OnSignals<'_>,
) -> Result<(), Error> {
    let fail = |what: &'static str, source: std::io::Error| ModeError::Process { what, source };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("serve")
        .enable_all()
        .build()
        .map_err(|e| fail("start the runtime", e))?;
    let result = rt.block_on(accept_loop(
        listener,
        metrics,
        Arc::clone(shared),
        announce,
        notifier,
        signals.refresh,
    ));
    (signals.stop)();
    // Connections still open are dropped with the runtime.
    rt.shutdown_timeout(Duration::from_millis(200));
    Ok(result.map_err(|e| fail("serve", e))?)
}

/// What a listener answers with: the IMDS or ECS contract, or the metrics.
type Answer = fn(&Shared, &Request<Incoming>) -> http::Resp;

/// The IMDS or ECS answer, counted in the metrics.
fn answer_credentials(shared: &Shared, req: &Request<Incoming>) -> http::Resp {
    let resp = http::handle(shared, req, Instant::now(), UtcTime::now());
    shared
        .metrics
        .request(http::route(&shared.mode, req.uri().path()), resp.status());
    resp
}

fn answer_metrics(shared: &Shared, req: &Request<Incoming>) -> http::Resp {
    metrics::handle(shared, req, UtcTime::now())
}

/// Accepts on the metrics listener, with its own connection table, until the runtime
/// ends.
async fn metrics_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    connections: Arc<Connections>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let ticket = connections.admit(peer.ip());
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(
                    stream,
                    Arc::clone(&shared),
                    Arc::clone(&connections),
                    ticket,
                    answer_metrics,
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Accepts until a stopping signal; `announce` (and the metrics' own line) is logged once
/// the signal handlers are in place.
async fn accept_loop(
    listener: std::net::TcpListener,
    metrics: Option<(std::net::TcpListener, String)>,
    shared: Arc<Shared>,
    announce: &str,
    notifier: Option<&crate::sdnotify::Notifier>,
    on_refresh: &dyn Fn(),
) -> std::io::Result<()> {
    let mut signals = Signals::install()?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let connections = Arc::new(Connections::new(connection_cap()));
    let scrapes = Arc::new(Connections::new(METRICS_CONNECTIONS));
    if let Some((l, line)) = metrics {
        let l = tokio::net::TcpListener::from_std(l)?;
        tokio::spawn(metrics_loop(l, Arc::clone(&shared), Arc::clone(&scrapes)));
        log("serve", &line);
    }
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    log("serve", announce);
    // Every role's first credentials are published (start-up is fail-fast) and the
    // listener is polled from here on.
    if let Some(n) = notifier {
        n.ready(announce);
    }
    let mut last_error_log: Option<Instant> = None;
    loop {
        tokio::select! {
            asked = signals.recv() => match asked {
                Asked::Stop(name) => {
                    let line = format!("{name}: shutting down");
                    if let Some(n) = notifier {
                        n.stopping(&line);
                    }
                    log("serve", &line);
                    break;
                }
                Asked::RefreshNow => {
                    log("serve", "SIGUSR1: refreshing every role now");
                    on_refresh();
                }
            },
            _ = sweep.tick() => {
                let now = Instant::now();
                connections.sweep(now);
                scrapes.sweep(now);
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let ticket = connections.admit(peer.ip());
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(stream, Arc::clone(&shared), Arc::clone(&connections), ticket, answer_credentials));
                }
                Err(e) => {
                    // Out of file descriptors and the like: say so now and then, and
                    // give the system a moment.
                    if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        log("serve", &format!("accept failed: {e}"));
                        last_error_log = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    Ok(())
}

async fn connection(
    stream: tokio::net::TcpStream,
    shared: Arc<Shared>,
    connections: Arc<Connections>,
    ticket: conns::Ticket,
    answer: Answer,
) {
    let ticket = Arc::new(ticket);
    let seen = Arc::clone(&ticket);
    let service = service_fn(move |req| {
        seen.touch();
        let resp = answer(&shared, &req);
        async move { Ok::<_, Infallible>(resp) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(16 * 1024);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    // Client disconnects and malformed requests end the connection; nothing to report.
    tokio::select! {
        _ = conn.as_mut() => {}
        () = ticket.close.notified() => {
            // An answer being written is finished; an idle connection closes now.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
        }
    }
    connections.leave(ticket.id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_sockets_carry_the_hop_limit() {
        for (addr, hop) in [("127.0.0.1:0", 1u8), ("127.0.0.1:0", 64), ("[::1]:0", 1)] {
            let addr: SocketAddr = addr.parse().expect("addr");
            let Ok(listener) = bind(addr, hop) else {
                continue; // no IPv6 here
            };
            listener.set_nonblocking(false).expect("blocking");
            let local = listener.local_addr().expect("addr");
            let _client = std::net::TcpStream::connect(local).expect("connect");
            let (server, _) = listener.accept().expect("accept");
            let s = socket2::SockRef::from(&server);
            let got = if addr.is_ipv6() {
                s.unicast_hops_v6()
            } else {
                s.ttl_v4()
            };
            assert_eq!(got.expect("getsockopt"), u32::from(hop), "{addr}");
        }
    }

    #[test]
    fn ecs_tokens_are_made_or_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        let made = ecs_token(&path).expect("made");
        assert!(made.expose().len() >= 43);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(ecs_token(&path).expect("read").expose(), made.expose());
        std::fs::write(&path, "short\n").expect("write");
        assert!(ecs_token(&path).is_err());
    }
}
