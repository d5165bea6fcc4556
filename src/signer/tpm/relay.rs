//! A TPM behind a UNIX socket (`swtpm socket --server type=unixio,path=…`, what the Go
//! helper's `TPM_DEVICE` reaches), for a libtss2 that has no TCTI for it.
//!
//! Debian's libtss2 3.2 opens `device:` paths with open(2), which fails on a socket
//! (ENXIO), and its `swtpm` and `mssim` TCTIs speak only TCP. So ra-signer listens on two
//! loopback ports, points libtss2's `mssim` TCTI at them, and passes each TPM command frame
//! on to the socket and each response back. `mssim` was chosen over `swtpm` because it keeps
//! one connection per port for the life of the context, where the `swtpm` TCTI opens a new
//! connection for every command (measured: one accept per command, plus a control
//! connection for CMD_SET_LOCALITY): one connection per port is what lets the relay accept
//! exactly one and then close its listeners. The simulator's platform commands (power on,
//! NV on) are answered here and never reach the TPM, so the TPM sees the same commands as
//! over any other TCTI.
//!
//! Any local user can connect to a loopback port while it listens. The relay therefore
//! accepts a connection only when the peer's socket is open in this very process (its inode
//! from `/proc/net/tcp` among `/proc/self/fd`), closes everything else, stops listening
//! once both connections are made, and bounds every frame.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The largest command or response frame passed on: libtss2 itself never sends or accepts
/// more than 4096 bytes (TPM2_MAX_COMMAND_SIZE, TPM2_MAX_RESPONSE_SIZE); twice that leaves
/// room for a TPM with larger buffers and still bounds what is read.
pub(super) const MAX_FRAME: usize = 8192;

/// The TPM 2.0 command and response header: tag (2), size (4), code (4).
const HEADER: usize = 10;

// The simulator protocol libtss2's mssim TCTI speaks (tss2_tcti_mssim.h).
const MS_SIM_POWER_ON: u32 = 1;
const MS_SIM_POWER_OFF: u32 = 2;
const MS_SIM_TPM_SEND_COMMAND: u32 = 8;
const MS_SIM_CANCEL_ON: u32 = 9;
const MS_SIM_CANCEL_OFF: u32 = 10;
const MS_SIM_NV_ON: u32 = 11;
const TPM_SESSION_END: u32 = 20;

/// How long the relay waits for libtss2 to connect: it connects at once when the context
/// is made, so this only ends a relay whose context never came.
const ACCEPT_DEADLINE: Duration = Duration::from_secs(30);

/// A running relay; dropping it stops the relay and closes the UNIX connection.
pub(super) struct Relay {
    port: u16,
    stop: Arc<AtomicBool>,
    /// A second handle on the UNIX connection, to unblock the relay thread on drop.
    unix: UnixStream,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("port", &self.port).finish()
    }
}

impl Relay {
    /// Connects to the TPM socket at `path` and listens on a pair of free loopback ports.
    pub(super) fn start(path: &Path) -> io::Result<Relay> {
        // Without these the relay could accept nobody, and libtss2 would wait for it.
        File::open("/proc/net/tcp")
            .and_then(|_| std::fs::read_dir("/proc/self/fd"))
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("/proc is needed to check who connects to the relay: {e}"),
                )
            })?;
        let unix = UnixStream::connect(path)?;
        let (data, platform) = listen_pair()?;
        let port = data.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = unix.try_clone()?;
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("tpm-relay".into())
            .spawn(move || {
                // A failed relay shows itself to libtss2 as a closed connection
                // (TSS2_TCTI_RC_IO_ERROR), which the caller reports.
                let _ = run(data, platform, handle, &flag);
            })?;
        Ok(Relay {
            port,
            stop,
            unix,
            thread: Some(thread),
        })
    }

    /// The TCTI string libtss2 is to use.
    pub(super) fn tcti(&self) -> String {
        format!("mssim:host=127.0.0.1,port={}", self.port)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.unix.shutdown(Shutdown::Both);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Two listeners on 127.0.0.1, on an ephemeral port P and on P+1 (the mssim TCTI's platform
/// port is always its data port plus one).
fn listen_pair() -> io::Result<(TcpListener, TcpListener)> {
    let mut last = None;
    for _ in 0..64 {
        let data = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = data.local_addr()?.port();
        let Some(next) = port.checked_add(1) else {
            continue;
        };
        match TcpListener::bind((Ipv4Addr::LOCALHOST, next)) {
            Ok(platform) => return Ok((data, platform)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no pair of free loopback ports")))
}

fn run(
    data_listener: TcpListener,
    platform_listener: TcpListener,
    unix: UnixStream,
    stop: &AtomicBool,
) -> io::Result<()> {
    let deadline = Instant::now() + ACCEPT_DEADLINE;
    let mut data = accept_own(&data_listener, stop, deadline)?;
    let mut platform = accept_own(&platform_listener, stop, deadline)?;
    // Nobody else can connect from now on.
    drop(data_listener);
    drop(platform_listener);
    serve_platform_setup(&mut platform)?;
    let result = serve_commands(&mut data, unix);
    let _ = data.shutdown(Shutdown::Both);
    let _ = platform.shutdown(Shutdown::Both);
    result
}

/// Accepts the first connection that comes from this process, closing any other.
fn accept_own(
    listener: &TcpListener,
    stop: &AtomicBool,
    deadline: Instant,
) -> io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let own_port = listener.local_addr()?.port();
    let mut pause = Duration::from_micros(200);
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                if peer_is_this_process(peer, own_port) {
                    stream.set_nonblocking(false)?;
                    stream.set_nodelay(true)?;
                    return Ok(stream);
                }
                drop(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "libtss2 did not connect",
                    ));
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Whether the socket at `peer` (connected to our port `own_port`) is open in this process.
fn peer_is_this_process(peer: SocketAddr, own_port: u16) -> bool {
    let SocketAddr::V4(peer) = peer else {
        return false;
    };
    if *peer.ip() != Ipv4Addr::LOCALHOST {
        return false;
    }
    match File::open("/proc/net/tcp").and_then(|f| socket_inode(f, peer.port(), own_port)) {
        Ok(Some(inode)) => fd_open(inode),
        _ => false,
    }
}

/// The inode of the socket 127.0.0.1:`local` → 127.0.0.1:`remote` in a `/proc/net/tcp`
/// listing.
fn socket_inode(listing: impl Read, local: u16, remote: u16) -> io::Result<Option<u64>> {
    // The kernel prints the address as the in-memory (network order) word read natively.
    let loopback = u32::from_ne_bytes(Ipv4Addr::LOCALHOST.octets());
    let want_local = format!("{loopback:08X}:{local:04X}");
    let want_remote = format!("{loopback:08X}:{remote:04X}");
    // A bounded read: a listing with a million sockets is still far below this.
    let reader = BufReader::new(listing.take(256 << 20));
    for line in reader.lines() {
        let line = line?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:tm retrnsmt uid timeout inode …
        if fields.len() >= 10
            && fields[1].eq_ignore_ascii_case(&want_local)
            && fields[2].eq_ignore_ascii_case(&want_remote)
        {
            return Ok(fields[9].parse().ok().filter(|&inode| inode != 0));
        }
    }
    Ok(None)
}

/// Whether a socket with this inode is among this process's open files.
fn fd_open(inode: u64) -> bool {
    let want = format!("socket:[{inode}]");
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    entries.flatten().any(|e| {
        std::fs::read_link(e.path()).is_ok_and(|target| target.as_os_str() == want.as_str())
    })
}

fn read_u32(stream: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    stream.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn protocol(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// Answers the platform commands the mssim TCTI sends while it is made (power on, NV on),
/// as a simulator that is always on. The TPM behind the socket was started by its owner
/// (swtpm `--flags not-need-init,startup-clear`), so nothing reaches it.
fn serve_platform_setup(platform: &mut TcpStream) -> io::Result<()> {
    loop {
        let command = read_u32(platform)?;
        match command {
            MS_SIM_POWER_ON | MS_SIM_POWER_OFF | MS_SIM_CANCEL_ON | MS_SIM_CANCEL_OFF => {
                platform.write_all(&0u32.to_be_bytes())?;
            }
            MS_SIM_NV_ON => {
                // The last of the setup; ESAPI never cancels, so nothing more comes.
                platform.write_all(&0u32.to_be_bytes())?;
                return Ok(());
            }
            other => return Err(protocol(format!("unexpected platform command {other}"))),
        }
    }
}

/// Passes command frames from the TCTI to the socket and the responses back, until the
/// TCTI ends the session or closes the connection.
fn serve_commands(data: &mut TcpStream, mut unix: UnixStream) -> io::Result<()> {
    let mut frame = vec![0u8; MAX_FRAME];
    loop {
        // The TCTI writes the 9-byte simulator header and the frame separately, and its
        // socket uses Nagle: the frame leaves only once the header is acknowledged, which a
        // delayed ACK holds back by up to 40 ms per command. The flag is not sticky.
        let _ = socket2::SockRef::from(&*data).set_tcp_quickack(true);
        let command = match read_u32(data) {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        match command {
            MS_SIM_TPM_SEND_COMMAND => {}
            TPM_SESSION_END => return Ok(()),
            other => return Err(protocol(format!("unexpected simulator command {other}"))),
        }
        let mut locality = [0u8; 1];
        data.read_exact(&mut locality)?;
        if locality[0] != 0 {
            // A raw socket carries no locality: refuse rather than run at locality 0.
            return Err(protocol("a locality other than 0 cannot be passed on"));
        }
        let size = frame_size(read_u32(data)?)?;
        data.read_exact(&mut frame[..size])?;
        if header_size(&frame[..size])? != size {
            return Err(protocol(
                "the command's header size disagrees with its length",
            ));
        }
        unix.write_all(&frame[..size])?;

        unix.read_exact(&mut frame[..HEADER])?;
        let size = frame_size(header_size(&frame[..HEADER])? as u32)?;
        unix.read_exact(&mut frame[HEADER..size])?;
        let mut out = Vec::with_capacity(size + 8);
        out.extend_from_slice(&(size as u32).to_be_bytes());
        out.extend_from_slice(&frame[..size]);
        out.extend_from_slice(&0u32.to_be_bytes());
        data.write_all(&out)?;
    }
}

fn frame_size(size: u32) -> io::Result<usize> {
    let size = usize::try_from(size).map_err(|_| protocol("frame size overflows"))?;
    if (HEADER..=MAX_FRAME).contains(&size) {
        Ok(size)
    } else {
        Err(protocol(format!(
            "a TPM frame of {size} bytes (expected {HEADER}..={MAX_FRAME})"
        )))
    }
}

/// The size field of a TPM 2.0 header.
fn header_size(frame: &[u8]) -> io::Result<usize> {
    match frame.get(2..6) {
        Some(&[a, b, c, d]) => frame_size(u32::from_be_bytes([a, b, c, d])),
        _ => Err(protocol("a TPM frame shorter than its header")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_socket_inode_in_a_listing() {
        let lo = u32::from_ne_bytes([127, 0, 0, 1]);
        let listing = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
             \x20  0: {lo:08X}:9C40 {lo:08X}:9C41 01 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0 20 4 30 10 -1\n\
             \x20  1: {lo:08X}:9C41 {lo:08X}:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0 20 4 30 10 -1\n"
        );
        assert_eq!(
            socket_inode(listing.as_bytes(), 0x9C40, 0x9C41).expect("read"),
            Some(4242)
        );
        assert_eq!(
            socket_inode(listing.as_bytes(), 0x9C41, 0x9C40).expect("read"),
            Some(4343)
        );
        assert_eq!(socket_inode(listing.as_bytes(), 1, 2).expect("read"), None);
    }

    #[test]
    fn a_connection_from_this_process_is_recognised() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let _client = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
        let (_server, peer) = listener.accept().expect("accept");
        assert!(peer_is_this_process(peer, port));
        // The same peer seen on another port is not ours.
        assert!(!peer_is_this_process(peer, port.wrapping_add(7)));
    }

    #[test]
    fn a_connection_from_another_process_is_refused() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut other = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("exec 3<>/dev/tcp/127.0.0.1/{port}; sleep 5"))
            .spawn()
            .expect("bash");
        let (_server, peer) = listener.accept().expect("accept");
        let ours = peer_is_this_process(peer, port);
        let _ = other.kill();
        let _ = other.wait();
        assert!(!ours);
    }

    #[test]
    fn frames_are_bounded() {
        assert!(frame_size(9).is_err());
        assert!(frame_size(10).is_ok());
        assert!(frame_size(MAX_FRAME as u32).is_ok());
        assert!(frame_size(MAX_FRAME as u32 + 1).is_err());
        assert!(frame_size(u32::MAX).is_err());
        assert!(header_size(&[0x80, 0x01, 0, 0]).is_err());
        assert_eq!(
            header_size(&[0x80, 0x01, 0, 0, 0, 12, 0, 0, 1, 0x7b]).expect("size"),
            12
        );
    }
}
