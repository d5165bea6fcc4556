//! Reaching the TPM: which TCTI, a fast and clear failure when nothing answers, and the
//! response codes the rest of the backend reasons about.
//!
//! A `device:PATH` whose PATH is a UNIX socket (a `swtpm socket --server type=unixio`, as
//! the Go helper reaches through `TPM_DEVICE`) goes through the [`Relay`]: this libtss2
//! cannot open a socket itself.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::str::FromStr;
use std::sync::mpsc;
use std::time::Duration;

use tss_esapi::Context;
use tss_esapi::constants::response_code::{Tss2ResponseCode, Tss2ResponseCodeKind};
use tss_esapi::handles::ObjectHandle;
use tss_esapi::tcti_ldr::TctiNameConf;

use super::TpmError;
use super::relay::Relay;
use crate::config::TpmConnection;

/// The variable naming the seconds one TPM command may take (hints name it).
pub(super) const TIMEOUT_ENV: &str = crate::env::TPM_TIMEOUT;

/// What to do when the TPM has no room left ([`Rc::is_out_of_memory`]).
pub const OUT_OF_MEMORY_HINT: &str = "the TPM has no room for another object: flush stale \
     transient objects (tpm2_flushcontext -t) or use a resource manager (tabrmd, \
     /dev/tpmrm0)";

/// A TCTI string and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcti {
    text: String,
    origin: &'static str,
    /// How long one TPM operation may take (0: for ever).
    limit: Duration,
}

impl Tcti {
    /// The TPM `connection` names.
    pub fn new(connection: &TpmConnection) -> Tcti {
        Tcti {
            text: connection.tcti.clone(),
            origin: connection.origin,
            limit: connection.timeout,
        }
    }

    /// A TCTI given as `--tpm-tcti` gives it, with the default limit (tests).
    pub fn explicit(text: &str) -> Tcti {
        Tcti::new(&TpmConnection::explicit(text))
    }

    /// The same TCTI with another limit on each TPM operation (tests; 0: for ever).
    pub fn with_timeout(mut self, limit: Duration) -> Tcti {
        self.limit = limit;
        self
    }

    /// The TCTI string.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Where the string came from (`--tpm-tcti`, `TPM2TOOLS_TCTI`, …).
    pub fn origin(&self) -> &'static str {
        self.origin
    }

    fn bad(&self, why: impl Into<String>) -> TpmError {
        TpmError::BadTcti {
            tcti: self.text.clone(),
            origin: self.origin,
            why: why.into(),
        }
    }

    fn unreachable(&self, why: impl Into<String>) -> TpmError {
        TpmError::Unreachable {
            tcti: self.text.clone(),
            origin: self.origin,
            why: why.into(),
        }
    }

    /// Parses the string into the loader's form, refusing what this build cannot reach.
    fn name_conf(&self) -> Result<TctiNameConf, TpmError> {
        let (kind, conf) = self
            .text
            .split_once(':')
            .unwrap_or((self.text.as_str(), ""));
        match kind {
            "device" | "tabrmd" => {}
            "swtpm" | "mssim" => {
                if conf.split(',').any(|kv| kv.starts_with("path=")) {
                    return Err(self.bad(
                        "this libtss2 has no path= for swtpm or mssim: name a UNIX-socket TPM as \
                         device:PATH (or TPM_DEVICE=PATH), or start swtpm with --server type=tcp \
                         and use swtpm:host=127.0.0.1,port=PORT",
                    ));
                }
                for kv in conf.split(',').filter(|kv| !kv.is_empty()) {
                    if !(kv.starts_with("host=") || kv.starts_with("port=")) {
                        return Err(self.bad(format!(
                            "unknown option \"{kv}\" (expected host=ADDRESS,port=PORT)"
                        )));
                    }
                }
            }
            _ => {
                return Err(self.bad(
                    "unknown TCTI (expected device:PATH, swtpm:host=H,port=P, mssim:host=H,port=P or tabrmd)",
                ));
            }
        }
        TctiNameConf::from_str(&self.text).map_err(|e| self.bad(e.to_string()))
    }

    /// Checks quickly that something is there before handing the TCTI to libtss2, whose
    /// own failures are terse; for a UNIX socket, connects to it and starts the relay.
    fn preflight(&self) -> Result<Option<Relay>, TpmError> {
        let (kind, conf) = self
            .text
            .split_once(':')
            .unwrap_or((self.text.as_str(), ""));
        match kind {
            "device" => {
                let path = if conf.is_empty() { "/dev/tpm0" } else { conf };
                let file_type = match std::fs::metadata(path) {
                    Ok(meta) => meta.file_type(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(self.unreachable(format!("there is no TPM device at {path}")));
                    }
                    Err(e) => return Err(self.unreachable(format!("cannot look at {path}: {e}"))),
                };
                if file_type.is_socket() {
                    return Relay::start(Path::new(path)).map(Some).map_err(|e| {
                        self.unreachable(format!("cannot connect to the TPM socket {path}: {e}"))
                    });
                }
                if !file_type.is_char_device() {
                    let what = if file_type.is_dir() {
                        "a directory"
                    } else if file_type.is_file() {
                        "a regular file"
                    } else {
                        "neither a device nor a socket"
                    };
                    return Err(self.unreachable(format!(
                        "{path} is {what}, not a TPM (a character device such as /dev/tpmrm0, \
                         or the UNIX socket of a swtpm)"
                    )));
                }
            }
            "swtpm" | "mssim" => {
                let mut host = "localhost";
                let mut port: u16 = 2321;
                for kv in conf.split(',') {
                    if let Some(h) = kv.strip_prefix("host=") {
                        host = h;
                    } else if let Some(p) = kv.strip_prefix("port=") {
                        port = p
                            .parse()
                            .map_err(|_| self.bad(format!("bad port \"{p}\"")))?;
                    }
                }
                let addrs: Vec<SocketAddr> = (host, port)
                    .to_socket_addrs()
                    .map_err(|e| self.unreachable(format!("cannot resolve {host}: {e}")))?
                    .collect();
                let mut last = None;
                for addr in &addrs {
                    match TcpStream::connect_timeout(addr, Duration::from_secs(3)) {
                        Ok(_) => return Ok(None),
                        Err(e) => last = Some(e),
                    }
                }
                return Err(self.unreachable(match last {
                    Some(e) => format!("nothing answers on {host}:{port} ({e})"),
                    None => format!("{host} has no address"),
                }));
            }
            _ => {}
        }
        Ok(None)
    }

    fn timed_out(&self, call: &'static str, limit: Duration) -> TpmError {
        TpmError::Timeout {
            call,
            tcti: self.text.clone(),
            origin: self.origin,
            secs: limit.as_secs(),
        }
    }

    /// Opens an ESAPI context on this TCTI, on a thread of its own that every later TPM
    /// command goes through (see [`Worker`]); setting up the connection is bounded by the
    /// same limit as every command.
    pub fn connect(&self) -> Result<Worker, TpmError> {
        let conf = self.name_conf()?;
        let limit = self.limit;
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready_tx, ready) = mpsc::sync_channel::<Result<(), TpmError>>(1);
        let (ended_tx, ended) = mpsc::channel::<()>();
        let tcti = self.clone();
        std::thread::Builder::new()
            .name("tpm".into())
            .spawn(move || {
                // Dropped when the thread ends, after the context (and its objects) are gone.
                let _ended = ended_tx;
                let mut ctx = match tcti.open(conf) {
                    Ok(ctx) => ctx,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                // Nobody may be waiting any more (the open timed out): then the queue is
                // already closed, and the context is dropped at once.
                let _ = ready_tx.send(Ok(()));
                for job in queue {
                    // After a signal released the TPM, a job is dropped unrun: its caller
                    // sees the worker gone.
                    if !ctx.released {
                        job(&mut ctx);
                    }
                }
            })
            .map_err(|e| self.unreachable(format!("cannot start the TPM thread: {e}")))?;
        match wait(&ready, limit) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(self.timed_out("opening the TPM", limit));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(self.unreachable("the TPM thread ended while connecting"));
            }
        }
        let id = live::register(&jobs, limit).ok_or(TpmError::Released)?;
        Ok(Worker {
            jobs: Some(jobs),
            ended,
            tcti: self.clone(),
            limit,
            stalled: None,
            id,
        })
    }

    /// Runs on the worker thread: the checks, the relay, then the context.
    fn open(&self, mut conf: TctiNameConf) -> Result<TpmContext, TpmError> {
        let relay = self.preflight()?;
        if let Some(relay) = &relay {
            conf = TctiNameConf::from_str(&relay.tcti()).map_err(|e| self.bad(e.to_string()))?;
        }
        let ctx = Context::new(conf).map_err(|e| self.unreachable(describe_error(&e)))?;
        Ok(TpmContext {
            ctx,
            transients: Vec::new(),
            released: false,
            _relay: relay,
        })
    }
}

/// An ESAPI context, the transient objects loaded through it, and the relay that carries
/// it to a UNIX-socket TPM when there is one. It lives on its [`Worker`]'s thread only
/// (`Context` is not `Send`).
pub struct TpmContext {
    // Declared first so that it drops first: libtss2 closes its connections, then the
    // relay stops.
    ctx: Context,
    /// Transient objects to flush when the context goes: a TPM without a resource manager
    /// keeps them after the process ends, and has room for three or so.
    transients: Vec<ObjectHandle>,
    /// Set once a signal made the process let go of the TPM: no command runs after it.
    released: bool,
    _relay: Option<Relay>,
}

impl TpmContext {
    /// Remembers a transient object, flushed when the context goes unless flushed before.
    pub fn track(&mut self, handle: impl Into<ObjectHandle>) {
        self.transients.push(handle.into());
    }

    /// Flushes a transient object now (errors are moot: the object is let go either way).
    pub fn flush(&mut self, handle: impl Into<ObjectHandle>) {
        let handle = handle.into();
        self.transients.retain(|h| *h != handle);
        let _ = self.ctx.flush_context(handle);
    }

    fn flush_all(&mut self) {
        for handle in std::mem::take(&mut self.transients) {
            let _ = self.ctx.flush_context(handle);
        }
    }
}

impl Drop for TpmContext {
    fn drop(&mut self) {
        self.flush_all();
    }
}

impl std::fmt::Debug for TpmContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmContext")
            .field("transients", &self.transients.len())
            .finish()
    }
}

impl Deref for TpmContext {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.ctx
    }
}

impl DerefMut for TpmContext {
    fn deref_mut(&mut self) -> &mut Context {
        &mut self.ctx
    }
}

type Job = Box<dyn FnOnce(&mut TpmContext) + Send>;

/// The one thread that holds a TPM context; every TPM operation crosses to it as a
/// closure, and the caller waits for the answer at most [`TIMEOUT_ENV`] seconds.
///
/// libtss2 has no timeout of its own, and a TPM that accepts the connection but never
/// answers (a stopped simulator, a swtpm busy with another client) would block the caller
/// for ever. On a timeout the caller gets [`TpmError::Timeout`] and the worker is marked
/// stalled: later calls fail at once, and dropping it does not wait. Its thread is left to
/// finish the call (or to die with the process, being stuck in a C call there is nothing
/// else to do); when it finishes, it sees that nobody holds its queue, flushes its
/// transient objects and closes the context. A new [`Tcti::connect`] makes a new worker.
pub struct Worker {
    jobs: Option<mpsc::Sender<Job>>,
    /// Disconnected once the thread has ended (its objects flushed, its context closed).
    ended: mpsc::Receiver<()>,
    tcti: Tcti,
    limit: Duration,
    /// The call that did not come back in time, once one did not.
    stalled: Option<&'static str>,
    id: u64,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("tcti", &self.tcti.text)
            .field("stalled", &self.stalled)
            .finish()
    }
}

impl Worker {
    /// Runs `f` on the worker's context and waits for its result; `what` names the
    /// operation in messages ("signing").
    pub fn call<T: Send + 'static>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&mut TpmContext) -> T + Send + 'static,
    ) -> Result<T, TpmError> {
        if self.stalled.is_some() {
            return Err(self.tcti.timed_out(what, self.limit));
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |ctx| {
            let _ = reply.send(f(ctx));
        });
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job));
        if !matches!(sent, Some(Ok(()))) {
            return Err(TpmError::Released);
        }
        match wait(&answer, self.limit) {
            Ok(out) => Ok(out),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.stalled = Some(what);
                Err(self.tcti.timed_out(what, self.limit))
            }
            // The job was dropped unrun (the TPM was released on a signal).
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(TpmError::Released),
        }
    }

    /// Whether a call did not come back in time.
    pub fn is_stalled(&self) -> bool {
        self.stalled.is_some()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        live::unregister(self.id);
        drop(self.jobs.take());
        if self.stalled.is_none() {
            // The thread flushes the transient objects and closes the context; a TPM that
            // answered a moment ago answers this too, and the limit bounds it if not.
            let _ = wait(&self.ended, self.limit);
        }
    }
}

/// `recv_timeout`, or `recv` when the limit is 0 (wait for ever).
fn wait<T>(rx: &mpsc::Receiver<T>, limit: Duration) -> Result<T, mpsc::RecvTimeoutError> {
    if limit.is_zero() {
        rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
    } else {
        rx.recv_timeout(limit)
    }
}

/// Flushes every transient object of every live TPM context and closes them to further
/// commands, waiting at most the TPM timeout; from then on no new context opens. For a
/// process about to end on a signal: the objects of a TPM without a resource manager
/// outlive the process, and a few left behind fill it.
pub fn release_all() {
    let (workers, limit) = live::close();
    if workers.is_empty() {
        return;
    }
    let mut acks = Vec::new();
    for jobs in workers {
        let (ack, acked) = mpsc::sync_channel::<()>(1);
        let job: Job = Box::new(move |ctx| {
            ctx.flush_all();
            ctx.released = true;
            let _ = ack.send(());
        });
        if jobs.send(job).is_ok() {
            acks.push(acked);
        }
    }
    let deadline = std::time::Instant::now() + limit;
    for acked in acks {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if limit.is_zero() {
            let _ = acked.recv();
        } else if left.is_zero() || acked.recv_timeout(left).is_err() {
            // The TPM does not answer: what it holds stays there; nothing can flush it.
            continue;
        }
    }
}

/// The queues of the live workers, for [`release_all`].
mod live {
    use std::sync::{Mutex, MutexGuard, mpsc};
    use std::time::Duration;

    use super::Job;

    struct Live {
        next: u64,
        closed: bool,
        workers: Vec<(u64, mpsc::Sender<Job>, Duration)>,
    }

    static LIVE: Mutex<Live> = Mutex::new(Live {
        next: 0,
        closed: false,
        workers: Vec::new(),
    });

    fn lock() -> MutexGuard<'static, Live> {
        // The list stays consistent whatever panicked while it was held.
        LIVE.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a worker whose commands may take `limit` each; `None` once [`close`] ran.
    pub(super) fn register(jobs: &mpsc::Sender<Job>, limit: Duration) -> Option<u64> {
        let mut live = lock();
        if live.closed {
            return None;
        }
        live.next += 1;
        let id = live.next;
        live.workers.push((id, jobs.clone(), limit));
        Some(id)
    }

    pub(super) fn unregister(id: u64) {
        lock().workers.retain(|(i, _, _)| *i != id);
    }

    /// Refuses new workers and hands out the queues of the live ones, with the longest
    /// limit among them (0, for ever, if any has it).
    pub(super) fn close() -> (Vec<mpsc::Sender<Job>>, Duration) {
        let mut live = lock();
        live.closed = true;
        let forever = live.workers.iter().any(|(_, _, limit)| limit.is_zero());
        let longest = live
            .workers
            .iter()
            .map(|(_, _, limit)| *limit)
            .max()
            .unwrap_or_default();
        let limit = if forever { Duration::ZERO } else { longest };
        (
            live.workers.drain(..).map(|(_, jobs, _)| jobs).collect(),
            limit,
        )
    }
}

/// A TSS2 return code as tss-esapi types it, with what the backend asks of it and its name.
///
/// tss-esapi's [`Tss2ResponseCode::kind`] names TPM codes but ignores the layer bits (a
/// TCTI `IO_ERROR`, 0xa000a, would read as a TPM code), and it has no names for the TCTI
/// and ESAPI layers: those two things are what this type adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rc(Tss2ResponseCode);

impl From<Tss2ResponseCode> for Rc {
    fn from(code: Tss2ResponseCode) -> Self {
        Rc(code)
    }
}

impl Rc {
    /// The return code of an error that came from the TSS rather than from the Rust wrapper.
    pub fn of(error: &tss_esapi::Error) -> Option<Rc> {
        match error {
            tss_esapi::Error::Tss2Error(code) => Some(Rc(*code)),
            tss_esapi::Error::WrapperError(_) => None,
        }
    }

    /// A raw TSS2 return code, layer bits included.
    pub fn from_raw(raw: u32) -> Rc {
        Rc(Tss2ResponseCode::from(raw))
    }

    /// The typed code.
    pub fn code(self) -> Tss2ResponseCode {
        self.0
    }

    /// The raw value, layer bits included.
    pub fn raw(self) -> u32 {
        match self.0 {
            Tss2ResponseCode::Success => 0,
            Tss2ResponseCode::FormatZero(rc) => rc.0,
            Tss2ResponseCode::FormatOne(rc) => rc.0,
        }
    }

    /// The TSS layer (0 for the TPM itself, 7 ESAPI, 10 TCTI, …).
    pub fn layer(self) -> u32 {
        (self.raw() >> 16) & 0xff
    }

    /// What the TPM says, for codes from the TPM itself (layer 0) only.
    fn tpm_kind(self) -> Option<Tss2ResponseCodeKind> {
        if self.layer() == 0 {
            self.0.kind()
        } else {
            None
        }
    }

    /// A wrong password (`TPM_RC_AUTH_FAIL` or `TPM_RC_BAD_AUTH`).
    pub fn is_auth_failure(self) -> bool {
        matches!(
            self.tpm_kind(),
            Some(Tss2ResponseCodeKind::AuthFail | Tss2ResponseCodeKind::BadAuth)
        )
    }

    /// Dictionary-attack lockout.
    pub fn is_lockout(self) -> bool {
        self.tpm_kind() == Some(Tss2ResponseCodeKind::Lockout)
    }

    /// The connection to the TPM broke (a restarted simulator, a vanished device).
    pub fn is_connection_lost(self) -> bool {
        // Any TCTI error (TSS2_TCTI_RC_IO_ERROR …), or ESAPI's NO_CONNECTION (8), IO_ERROR
        // (10), INSUFFICIENT_RESPONSE (19).
        self.layer() == 0x0a || (self.layer() == 7 && matches!(self.raw() & 0xffff, 8 | 10 | 19))
    }

    /// The loaded key is gone (the TPM was reset, or someone flushed it): the first
    /// handle references nothing loaded, or names no object, or the TPM wants a startup.
    pub fn is_object_gone(self) -> bool {
        match (self.tpm_kind(), self.0) {
            (Some(Tss2ResponseCodeKind::ReferenceH0 | Tss2ResponseCodeKind::Initialize), _) => true,
            // tss-esapi keeps the handle number private: bit 6 clear is "a handle", bits
            // 8-11 its number.
            (Some(Tss2ResponseCodeKind::Handle), Tss2ResponseCode::FormatOne(rc)) => {
                rc.0 & 0x40 == 0 && (rc.0 >> 8) & 0xf == 1
            }
            _ => false,
        }
    }

    /// No object at the handle (`TPM_RC_HANDLE`), whichever handle it was.
    pub fn is_bad_handle(self) -> bool {
        self.tpm_kind() == Some(Tss2ResponseCodeKind::Handle)
    }

    /// The TPM has no room for another object or session (`TPM_RC_OBJECT_MEMORY`,
    /// `TPM_RC_SESSION_MEMORY`, `TPM_RC_MEMORY`).
    pub fn is_out_of_memory(self) -> bool {
        matches!(
            self.tpm_kind(),
            Some(
                Tss2ResponseCodeKind::ObjectMemory
                    | Tss2ResponseCodeKind::SessionMemory
                    | Tss2ResponseCodeKind::Memory
            )
        )
    }

    /// The specification's name: `TPM_RC_*` from tss-esapi's kind, `TSS2_TCTI_RC_*` for
    /// the TCTI layer, which tss-esapi does not name.
    pub fn name(self) -> Option<String> {
        if self.layer() == 0x0a {
            return Some(
                match self.raw() & 0xffff {
                    0x0a => "TSS2_TCTI_RC_IO_ERROR",
                    0x08 => "TSS2_TCTI_RC_NO_CONNECTION",
                    0x09 => "TSS2_TCTI_RC_TRY_AGAIN",
                    _ => "a TCTI error",
                }
                .to_owned(),
            );
        }
        let kind = match self.tpm_kind()? {
            Tss2ResponseCodeKind::TpmVendorSpecific => return None,
            // The specification writes it in one word.
            Tss2ResponseCodeKind::CpHash => return Some("TPM_RC_CPHASH".to_owned()),
            kind => kind,
        };
        // `AuthFail` → `TPM_RC_AUTH_FAIL`, `ReferenceH0` → `TPM_RC_REFERENCE_H0`.
        let mut name = String::from("TPM_RC");
        for c in format!("{kind:?}").chars() {
            if c.is_ascii_uppercase() {
                name.push('_');
            }
            name.push(c.to_ascii_uppercase());
        }
        Some(name)
    }
}

impl std::fmt::Display for Rc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({:#x})", self.raw()),
            None => write!(f, "TSS2 return code {:#x}", self.raw()),
        }
    }
}

/// A one-line description of a tss-esapi error, with the raw return code.
pub(super) fn describe_error(error: &tss_esapi::Error) -> String {
    match Rc::of(error) {
        Some(rc) => rc.to_string(),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_cannot_work() {
        for (text, why) in [
            ("swtpm:path=/tmp/sock", "device:PATH"),
            ("swtpm:host=127.0.0.1,frobnicate=1", "frobnicate"),
            ("libtss2-tcti-cmd.so:foo", "unknown TCTI"),
        ] {
            let err = Tcti::explicit(text).connect().expect_err(text).to_string();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn unreachable_fails_fast_and_clearly() {
        let start = std::time::Instant::now();
        let err = Tcti::explicit("device:/dev/no-such-tpm")
            .connect()
            .expect_err("no device")
            .to_string();
        assert!(err.contains("no TPM device at /dev/no-such-tpm"), "{err}");
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let err = Tcti::explicit(&format!("device:{}", file.path().display()))
            .connect()
            .expect_err("a regular file")
            .to_string();
        assert!(err.contains("is a regular file, not a TPM"), "{err}");
        // A socket nobody accepts on any more.
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tpm.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
        let err = Tcti::explicit(&format!("device:{}", path.display()))
            .connect()
            .expect_err("a dead socket")
            .to_string();
        assert!(err.contains("cannot connect to the TPM socket"), "{err}");
        // A port nobody listens on (bound then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let err = Tcti::explicit(&format!("swtpm:host=127.0.0.1,port={port}"))
            .connect()
            .expect_err("closed port")
            .to_string();
        assert!(err.contains("nothing answers on 127.0.0.1"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn return_codes() {
        assert!(Rc::from_raw(0x98e).is_auth_failure());
        assert!(Rc::from_raw(0x9a2).is_auth_failure());
        assert!(!Rc::from_raw(0x98b).is_auth_failure());
        assert!(Rc::from_raw(0x921).is_lockout());
        assert!(Rc::from_raw(0xa000a).is_connection_lost());
        assert!(Rc::from_raw(0x18b).is_object_gone());
        assert!(Rc::from_raw(0x910).is_object_gone());
        assert!(!Rc::from_raw(0x28b).is_object_gone());
        for rc in [0x902, 0x903, 0x904] {
            assert!(Rc::from_raw(rc).is_out_of_memory(), "{rc:#x}");
        }
        // The same numbers from another layer, and the warnings around them, are not.
        for rc in [0x901, 0x905, 0x70902, 0xa0902, 0x102] {
            assert!(!Rc::from_raw(rc).is_out_of_memory(), "{rc:#x}");
        }
        assert_eq!(
            Rc::from_raw(0x902).to_string(),
            "TPM_RC_OBJECT_MEMORY (0x902)"
        );
        assert_eq!(Rc::from_raw(0x98e).to_string(), "TPM_RC_AUTH_FAIL (0x98e)");
        assert_eq!(
            Rc::from_raw(0xa000a).to_string(),
            "TSS2_TCTI_RC_IO_ERROR (0xa000a)"
        );
    }
}
