//! `serve`: an IMDSv2-style (or ECS container-credentials) endpoint that hands one set of
//! credentials per role to every local SDK, signing once per refresh.
//!
//! Start-up is fail-fast: flags are checked, the port is bound, the identity opened and one
//! CreateSession made per role before anything is served; any failure exits with the
//! classified error. Then a refresher thread ([`refresh::Refresher`]) owns the identity and
//! replaces the pre-rendered response bodies ([`state`]) before expiry, while a small tokio
//! runtime answers requests from those snapshots ([`http`]), admitting every connection
//! and closing idle ones to make room ([`conns`]). SIGTERM, SIGINT, SIGHUP and SIGQUIT stop
//! both and close the identity (token logout, TPM flush) if the hardware answers within
//! [`shutdown::GRACE`] ([`shutdown`]).

pub mod conns;
pub mod http;
pub mod refresh;
pub mod shutdown;
pub mod state;
pub mod tokens;

use std::convert::Infallible;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use clap::Args;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use ring::rand::SecureRandom;

use crate::cli::{IdentityArgs, SessionArgs, SessionOptions};
use crate::config::SessionRequest;
use crate::error::{Error, ErrorClass};
use crate::rolesanywhere::Client;
use crate::secret::Secret;
use crate::time::UtcTime;
use conns::Connections;
use refresh::{LiveIdentity, Refresher, log};
use shutdown::{Signals, Worker};
use state::{Mode, Shared};

/// The CreateSession options of `serve`: those of `credential-process`, with `--role-arn`
/// repeatable (one credentials path per role name).
#[derive(Debug, Clone, Args)]
pub struct ServeSessionArgs {
    /// ARN of the trust anchor.
    #[arg(long, value_name = "ARN")]
    pub trust_anchor_arn: String,
    /// ARN of the profile.
    #[arg(long, value_name = "ARN")]
    pub profile_arn: String,
    /// ARN of a role to serve (repeatable: each role is served under its name, the last
    /// segment of the ARN).
    #[arg(long = "role-arn", value_name = "ARN", required = true, action = clap::ArgAction::Append)]
    pub role_arn: Vec<String>,
    /// Everything but the ARNs, as for `credential-process`.
    #[command(flatten)]
    pub options: SessionOptions,
}

impl ServeSessionArgs {
    /// The `credential-process` session flags for one of the roles.
    pub fn for_role(&self, role_arn: &str) -> SessionArgs {
        SessionArgs {
            trust_anchor_arn: self.trust_anchor_arn.clone(),
            profile_arn: self.profile_arn.clone(),
            role_arn: role_arn.to_owned(),
            options: self.options.clone(),
        }
    }
}

/// `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The certificate and key.
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// The session.
    #[command(flatten)]
    pub session: ServeSessionArgs,
    /// Port to listen on (0: any free port; the address is logged at start).
    #[arg(long, value_name = "PORT", default_value_t = 9911)]
    pub port: u16,
    /// Address to listen on. Addresses other than loopback need --hop-limit 1.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// IP TTL (IPv6 hop limit) of the answers: 1, like EC2's metadata service, keeps them
    /// from crossing a router (or a container bridge).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u8).range(1..))]
    pub hop_limit: u8,
    /// Serve the ECS container-credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI)
    /// instead of IMDSv2.
    #[arg(long)]
    pub ecs: bool,
    /// ECS mode: file holding the authorization token clients send (read if it exists,
    /// else created with mode 0600 and a new random token).
    #[arg(long, value_name = "FILE", requires = "ecs")]
    pub auth_token_file: Option<PathBuf>,
    /// Refresh this many seconds before the credentials expire (tests and benchmarks).
    #[arg(long, value_name = "SECONDS", default_value_t = 300, hide = true)]
    pub refresh_before: u64,
    /// Minimum seconds between failed refresh cycles (tests).
    #[arg(long, value_name = "SECONDS", default_value_t = 30, hide = true)]
    pub retry_interval: u64,
    /// Worker threads answering requests (1..=8; default 2).
    #[arg(long, value_name = "N", default_value_t = 2, hide = true, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub threads: u8,
}

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

/// The role name IMDS serves a role ARN under: the last segment of its path.
pub fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn usage(message: impl Into<String>) -> Error {
    Error::new(ErrorClass::Usage, message)
}

/// Checks the address rules: loopback, or anything with a hop limit of 1.
pub fn check_bind(bind: IpAddr, hop_limit: u8) -> Result<(), Error> {
    if bind.is_loopback() || hop_limit == 1 {
        return Ok(());
    }
    Err(usage(format!(
        "--bind {bind} is not a loopback address: anyone who can reach it would get the credentials"
    ))
    .with_hint("add --hop-limit 1 so answers cannot cross a router (as EC2's metadata service does), or bind 127.0.0.1"))
}

/// The ECS token: read from `path` if it exists, else made and written there (0600).
fn ecs_token(path: &Path) -> Result<Secret, Error> {
    match crate::secret::read_secret_file(path, "the ECS authorization token") {
        Ok(token) => {
            let t = token.expose().trim();
            if t.len() < 16 || t.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
                return Err(usage(format!(
                    "the authorization token in {} must be at least 16 printable characters without spaces",
                    path.display()
                )));
            }
            Ok(Secret::new(t.to_owned()))
        }
        Err(crate::secret::SecretError::File { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            let mut raw = zeroize::Zeroizing::new([0u8; 32]);
            ring::rand::SystemRandom::new()
                .fill(raw.as_mut())
                .map_err(|_| Error::new(ErrorClass::Other, "the system RNG failed"))?;
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
            write().map_err(|e| {
                Error::new(
                    ErrorClass::Other,
                    format!(
                        "cannot write the ECS authorization token to {}: {e}",
                        path.display()
                    ),
                )
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
        Err(e) => Err(usage(e.to_string())),
    }
}

/// Binds the listener, with the TTL/hop limit set on the listening socket (so the SYN-ACK
/// carries it too) and a backlog for bursts of clients.
pub fn bind(addr: SocketAddr, hop_limit: u8) -> std::io::Result<std::net::TcpListener> {
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

/// Runs `serve` until SIGTERM, SIGINT, SIGHUP or SIGQUIT.
pub fn run(args: &ServeArgs) -> Result<(), Error> {
    for w in args.identity.warnings() {
        crate::diag!("ra-signer: warning: {w}");
    }
    // 1. Flags.
    check_bind(args.bind, args.hop_limit)?;
    let mut requests: Vec<SessionRequest> = Vec::new();
    let mut roles: Vec<(String, String)> = Vec::new();
    for arn in &args.session.role_arn {
        let request = args.session.for_role(arn).to_request()?;
        let name = role_name(request.role_arn.as_str()).to_owned();
        if roles.iter().any(|(n, _)| *n == name) {
            return Err(usage(format!(
                "two --role-arn values have the same role name \"{name}\": each role is served under its name"
            )));
        }
        roles.push((name, arn.clone()));
        requests.push(request);
    }
    let options = args
        .session
        .for_role(&roles[0].1)
        .client_options(&requests[0])?;
    if args.refresh_before >= u64::from(args.session.options.session_duration) {
        return Err(usage(format!(
            "--refresh-before {} leaves no time between refreshes with --session-duration {}",
            args.refresh_before, args.session.options.session_duration
        )));
    }
    if args.ecs && args.auth_token_file.is_none() {
        return Err(usage("--ecs needs --auth-token-file FILE").with_hint(
            "the file is read if it exists, else created with a new random token; give it to clients as AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        ));
    }
    let identity_config = args.identity.to_config()?;
    let mode = match &args.auth_token_file {
        Some(path) if args.ecs => Mode::Ecs(ecs_token(path)?),
        _ => Mode::Imds(Mutex::new(tokens::TokenTable::default())),
    };

    // 2. The port, before any signature.
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = bind(addr, args.hop_limit).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "another process listens there: pick another --port, or stop it (`ss -ltnp` names it)"
            }
            std::io::ErrorKind::PermissionDenied => {
                "ports below 1024 need CAP_NET_BIND_SERVICE: pick a --port of 1024 or more"
            }
            std::io::ErrorKind::AddrNotAvailable => {
                "--bind must be an address of this machine (127.0.0.1, ::1, or one of `ip addr`)"
            }
            _ => "pick another --port or --bind address",
        };
        Error::new(ErrorClass::Listen, format!("cannot listen on {addr}: {e}")).with_hint(hint)
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::new(ErrorClass::Other, format!("cannot listen on {addr}: {e}")))?;

    // 3. The identity and one CreateSession per role: fail fast.
    let live = LiveIdentity::open(identity_config, "serve")?;
    let identity = live
        .identity()
        .ok_or_else(|| Error::new(ErrorClass::Other, "the identity did not open"))?;
    let client =
        Client::new(options).map_err(|e| crate::error::session_error(e, identity, &requests[0]))?;
    let shared = Arc::new(Shared::new(roles, mode));
    let mut initial = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        let creds = client
            .create_session(identity, request)
            .map_err(|e| crate::error::session_error(e, identity, request))?;
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

    // 4. The refresher thread.
    let refresher = Refresher {
        live,
        client,
        requests,
        shared: Arc::clone(&shared),
        refresh_before: args.refresh_before,
        retry_interval: args.retry_interval,
        initial,
    };
    let refresher = Worker::spawn("refresh", move |stop| refresher.run(stop))
        .map_err(|e| Error::new(ErrorClass::Other, format!("cannot start a thread: {e}")))?;

    // 5. Serve until a signal.
    let announce = match &shared.mode {
        Mode::Imds(_) => format!(
            "listening on http://{local}/ (IMDSv2; hop limit {}): set AWS_EC2_METADATA_SERVICE_ENDPOINT=http://{local}/",
            args.hop_limit
        ),
        Mode::Ecs(_) => format!(
            "listening on http://{local}/ (ECS; hop limit {}): set AWS_CONTAINER_CREDENTIALS_FULL_URI=http://{local}/ (or http://{local}/role/<name>) and AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={}",
            args.hop_limit,
            args.auth_token_file
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
    };
    let served = serve(
        listener,
        &shared,
        usize::from(args.threads),
        &announce,
        &|| {
            refresher.stop();
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

/// Answers requests on a runtime of `threads` workers (work-stealing keeps them evenly
/// loaded whatever the kernel's accept order) until a stopping signal, on which
/// `on_signal` runs before the connections are dropped.
fn serve(
    listener: std::net::TcpListener,
    shared: &Arc<Shared>,
    threads: usize,
    announce: &str,
    on_signal: &dyn Fn(),
) -> Result<(), Error> {
    let fail = |what: &str, e: std::io::Error| {
        Error::new(ErrorClass::Other, format!("cannot {what}: {e}"))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("serve")
        .enable_all()
        .build()
        .map_err(|e| fail("start the runtime", e))?;
    let result = rt.block_on(accept_loop(listener, Arc::clone(shared), announce));
    on_signal();
    // Connections still open are dropped with the runtime.
    rt.shutdown_timeout(Duration::from_millis(200));
    result.map_err(|e| fail("serve", e))
}

/// Accepts until a stopping signal; `announce` is logged once the signal handlers are in
/// place.
async fn accept_loop(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    announce: &str,
) -> std::io::Result<()> {
    let mut signals = Signals::install()?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let connections = Arc::new(Connections::new(connection_cap()));
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    log("serve", announce);
    let mut last_error_log: Option<Instant> = None;
    loop {
        tokio::select! {
            name = signals.recv() => { log("serve", &format!("{name}: shutting down")); break; }
            _ = sweep.tick() => { connections.sweep(Instant::now()); }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let ticket = connections.admit(peer.ip());
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(stream, Arc::clone(&shared), Arc::clone(&connections), ticket));
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
) {
    let ticket = Arc::new(ticket);
    let seen = Arc::clone(&ticket);
    let service = service_fn(move |req| {
        seen.touch();
        let resp = http::handle(&shared, &req, Instant::now(), UtcTime::now());
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
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    const BASE: [&str; 9] = [
        "serve",
        "--certificate",
        "c.pem",
        "--private-key",
        "k.pem",
        "--trust-anchor-arn",
        "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/ta",
        "--profile-arn",
        "arn:aws:rolesanywhere:us-east-1:123456789012:profile/p",
    ];

    fn parse(extra: &[&str]) -> Result<ServeArgs, clap::Error> {
        let argv: Vec<&str> = BASE.iter().chain(extra).copied().collect();
        Cli::try_parse_from(argv).map(|c| c.serve)
    }

    #[test]
    fn flags_and_defaults() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let a = parse(&["--role-arn", "arn:aws:iam::123456789012:role/A"]).expect("parse");
        assert_eq!((a.port, a.hop_limit, a.refresh_before), (9911, 64, 300));
        assert_eq!(a.bind, IpAddr::from([127, 0, 0, 1]));
        assert!(!a.ecs);
        let a = parse(&[
            "--role-arn",
            "arn:aws:iam::123456789012:role/A",
            "--role-arn",
            "arn:aws:iam::123456789012:role/path/B",
            "--bind",
            "::1",
            "--hop-limit",
            "1",
            "--ecs",
            "--auth-token-file",
            "t",
        ])
        .expect("parse");
        assert_eq!(a.session.role_arn.len(), 2);
        assert_eq!(role_name(&a.session.role_arn[1]), "B");
        assert!(parse(&[]).is_err(), "a role is required");
        assert!(
            parse(&[
                "--role-arn",
                "arn:aws:iam::123456789012:role/A",
                "--hop-limit",
                "0"
            ])
            .is_err()
        );
        assert!(
            parse(&[
                "--role-arn",
                "arn:aws:iam::123456789012:role/A",
                "--auth-token-file",
                "t"
            ])
            .is_err(),
            "--auth-token-file belongs to --ecs"
        );
    }

    #[test]
    fn non_loopback_needs_hop_limit_1() {
        let any: IpAddr = "0.0.0.0".parse().expect("ip");
        assert!(check_bind(any, 64).is_err());
        assert!(check_bind(any, 2).is_err());
        assert!(check_bind(any, 1).is_ok());
        assert!(check_bind("::1".parse().expect("ip"), 64).is_ok());
        assert!(check_bind("127.0.0.2".parse().expect("ip"), 64).is_ok());
        let e = check_bind("10.1.2.3".parse().expect("ip"), 64).expect_err("refused");
        assert_eq!(e.class, ErrorClass::Usage);
        assert!(e.hint.is_some_and(|h| h.contains("--hop-limit 1")));
    }

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
