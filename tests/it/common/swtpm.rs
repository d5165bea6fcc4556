//! The one swtpm test harness: a private swtpm per test (temp state dir, free loopback ports,
//! stopped on drop, and by `timeout` should the test process die first), fresh or started
//! from a state provisioned once per test binary by `softhsm/swtpm-provision.sh`.
//!
//! Two test crates include this file: tests/it (`common::swtpm`) and the library's unit
//! tests (`signer::tpm` has it under `#[path]`), so it needs nothing but std and tempfile.
// Each of the two crates uses a part of it.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// One TPM test at a time in this process, for tests that talk to a TPM from the test
/// process itself (the library's). libtss2 opens its swtpm socket without `CLOEXEC`, so a
/// swtpm (or tool) that another test spawns meanwhile inherits the connection and keeps it
/// open after its test closed it; swtpm serves one connection at a time, and the next
/// test's connection then waits for ever. Tests that only run child processes need no lock.
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The longest a test swtpm lives, whatever happens to the test process.
const LIFETIME_SECS: &str = "900";

/// What a [`Swtpm`] starts with; [`Launch::start`] starts it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Launch {
    provisioned: bool,
    unix: bool,
    logged: bool,
}

impl Launch {
    /// A fresh TPM: new seeds, nothing persistent.
    pub(crate) fn fresh() -> Launch {
        Launch::default()
    }

    /// A copy of the provisioned [`fixture`] state: the SRKs at 0x81000001 and 0x81000002,
    /// the persistent keys at 0x81000101..0x81000103, and the fixture's key files load.
    pub(crate) fn provisioned() -> Launch {
        Launch {
            provisioned: true,
            ..Launch::default()
        }
    }

    /// On the UNIX socket DIR/tpm.sock instead of loopback TCP (tpm2-tools, which need
    /// TCP, cannot reach it).
    pub(crate) fn unix_socket(self) -> Launch {
        Launch { unix: true, ..self }
    }

    /// Logs every TPM command (read with [`Swtpm::commands`]).
    pub(crate) fn log_commands(self) -> Launch {
        Launch {
            logged: true,
            ..self
        }
    }

    /// Starts the swtpm.
    pub(crate) fn start(self) -> Swtpm {
        let dir = tempfile::Builder::new()
            .prefix("ra-signer-swtpm-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join("state")).expect("state dir");
        if self.provisioned {
            std::fs::copy(
                fixture().state.join("tpm2-00.permall"),
                dir.path().join("state/tpm2-00.permall"),
            )
            .expect("copy TPM state");
        }
        let mut tpm = Swtpm {
            dir,
            port: 0,
            launch: self,
            child: Mutex::new(None),
        };
        if self.unix {
            assert!(tpm.spawn(), "swtpm did not start on a UNIX socket");
            return tpm;
        }
        for _ in 0..5 {
            tpm.port = free_port_pair();
            if tpm.spawn() {
                return tpm;
            }
        }
        panic!("swtpm did not start");
    }
}

/// A running swtpm, stopped on drop.
pub(crate) struct Swtpm {
    dir: tempfile::TempDir,
    /// The TCP port (the control port is the next one); 0 on a UNIX socket.
    port: u16,
    launch: Launch,
    /// `timeout` running swtpm; behind a lock so that a shared `Swtpm` can restart.
    child: Mutex<Option<Child>>,
}

/// Keys and certificates provisioned once, and the TPM state they belong to.
pub(crate) struct Fixture {
    /// The state directory to copy (`tpm2-00.permall`).
    pub state: PathBuf,
    /// Key files and certificates (see `tpm_provision` in softhsm/swtpm-lib.sh).
    pub files: PathBuf,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let Ok(first) = std::net::TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = first.local_addr() else {
            continue;
        };
        let port = addr.port();
        if port < 65535 && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no pair of free loopback ports");
}

impl Swtpm {
    /// [`Launch::fresh`] on TCP.
    pub(crate) fn fresh() -> Swtpm {
        Launch::fresh().start()
    }

    /// [`Launch::provisioned`] on TCP.
    pub(crate) fn provisioned() -> Swtpm {
        Launch::provisioned().start()
    }

    /// The UNIX socket of a [`Launch::unix_socket`] swtpm.
    pub(crate) fn socket(&self) -> PathBuf {
        assert!(self.launch.unix, "a TCP swtpm has no socket file");
        self.dir.path().join("tpm.sock")
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs swtpm on this state and waits until it listens; false if it did not (its
    /// ports taken meanwhile).
    fn spawn(&self) -> bool {
        let d = self.dir.path();
        let mut cmd = Command::new("timeout");
        cmd.args(["--signal=TERM", LIFETIME_SECS, "swtpm", "socket", "--tpm2"]);
        if self.launch.unix {
            let _ = std::fs::remove_file(self.socket());
            cmd.arg("--server").arg(format!(
                "type=unixio,path={},mode=0600",
                self.socket().display()
            ));
        } else {
            cmd.arg("--server")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", self.port))
                .arg("--ctrl")
                .arg(format!(
                    "type=tcp,port={},bindaddr=127.0.0.1",
                    self.port + 1
                ));
        }
        let pid_file = d.join("swtpm.pid");
        let _ = std::fs::remove_file(&pid_file);
        cmd.arg("--tpmstate")
            .arg(format!("dir={}", d.join("state").display()))
            .args(["--flags", "not-need-init,startup-clear"])
            .arg("--pid")
            .arg(format!("file={}", pid_file.display()));
        if self.launch.logged {
            cmd.arg("--log")
                .arg(format!("file={},level=20", d.join("swtpm.log").display()));
        }
        let Ok(child) = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            panic!("cannot run swtpm (apt-get install swtpm swtpm-tools)");
        };
        *self.child() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            // A UNIX-socket swtpm serves one client: probing would take its slot, so wait
            // for the socket file instead.
            let listening = if self.launch.unix {
                self.socket().exists()
            } else {
                TcpStream::connect(("127.0.0.1", self.port + 1)).is_ok()
            };
            // swtpm writes its pid file once it listens; the listener could otherwise be
            // another test's that won the race for the port.
            if listening && self.read_pid().is_some() {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child().as_mut().map(|c| c.try_wait()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop();
        false
    }

    fn read_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.path().join("swtpm.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops the simulator (its state stays).
    pub(crate) fn stop(&self) {
        if let Some(mut child) = self.child().take() {
            // TERM to `timeout` reaches swtpm too; SIGKILL would orphan it.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// Freezes the simulator (SIGSTOP): connections are still accepted by the kernel, and
    /// no command is answered, as with a hung TPM.
    pub(crate) fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a [`Swtpm::pause`]d simulator.
    pub(crate) fn resume(&self) {
        self.signal("-CONT");
    }

    /// Sends a signal to swtpm itself (the child is the `timeout` that runs it).
    fn signal(&self, signal: &str) {
        let pid = self.read_pid().expect("swtpm.pid").to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Stops and starts it again on the same ports (or socket) and state: a power cycle,
    /// every transient object, session and connection gone, persistent objects kept.
    pub(crate) fn restart(&self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.spawn() {
            assert!(Instant::now() < deadline, "swtpm did not restart");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The TCTI string: `swtpm:host=127.0.0.1,port=PORT`, or `device:SOCKET`.
    pub(crate) fn tcti(&self) -> String {
        if self.launch.unix {
            format!("device:{}", self.socket().display())
        } else {
            format!("swtpm:host=127.0.0.1,port={}", self.port)
        }
    }

    /// The key files and certificates that belong to this TPM's state.
    pub(crate) fn files(&self) -> &'static Path {
        assert!(self.launch.provisioned, "a fresh TPM has no key files");
        &fixture().files
    }

    /// A command (tpm2-tools, openssl) pointed at this TPM.
    pub(crate) fn tool(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("TPM2TOOLS_TCTI", self.tcti())
            .env("TPM2OPENSSL_TCTI", self.tcti())
            .env_remove("TPM2OPENSSL_PARENT_AUTH");
        cmd
    }

    /// Runs a tool and returns its stdout, panicking with its stderr on failure.
    pub(crate) fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self
            .tool(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tool");
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A scratch directory beside the state.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every command the TPM received so far with its response code (needs
    /// [`Launch::log_commands`]).
    pub(crate) fn command_log(&self) -> Vec<(u32, u32)> {
        let log = std::fs::read_to_string(self.dir.path().join("swtpm.log")).unwrap_or_default();
        let mut out = Vec::new();
        let mut lines = log.lines();
        let mut pending: Option<u32> = None;
        let code_at = |line: Option<&str>| -> Option<u32> {
            let b: Vec<u8> = line?
                .split_whitespace()
                .filter_map(|h| u8::from_str_radix(h, 16).ok())
                .collect();
            (b.len() >= 10).then(|| u32::from_be_bytes([b[6], b[7], b[8], b[9]]))
        };
        while let Some(line) = lines.next() {
            if line.contains("SWTPM_IO_Read:") {
                pending = code_at(lines.next());
            } else if line.contains("SWTPM_IO_Write:")
                && let (Some(cmd), Some(rc)) = (pending.take(), code_at(lines.next()))
            {
                out.push((cmd, rc));
            }
        }
        out
    }

    /// The commands the TPM carried out (those it answered TPM_RC_RETRY, which libtss2
    /// resends by itself, left out).
    pub(crate) fn commands(&self) -> Vec<u32> {
        self.command_log()
            .into_iter()
            .filter(|(_, rc)| *rc != 0x922)
            .map(|(cmd, _)| cmd)
            .collect()
    }

    /// The transient objects loaded now (tpm2-tools, so TCP only).
    pub(crate) fn transient_handles(&self) -> usize {
        self.run("tpm2_getcap", &["handles-transient"])
            .lines()
            .filter(|l| l.trim_start().starts_with('-'))
            .count()
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Names TPM command codes for messages.
pub(crate) fn command_name(code: u32) -> &'static str {
    match code {
        0x120 => "EvictControl",
        0x131 => "CreatePrimary",
        0x153 => "Create",
        0x157 => "Load",
        0x15D => "Sign",
        0x161 => "ContextLoad",
        0x162 => "ContextSave",
        0x165 => "FlushContext",
        0x173 => "ReadPublic",
        0x176 => "StartAuthSession",
        0x17A => "GetCapability",
        _ => "other",
    }
}

/// The provisioned state and files, made once per test binary.
pub(crate) fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root =
            std::env::temp_dir().join(format!("ra-signer-tpm-fixture-{}", std::process::id()));
        remove_stale_fixtures();
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("fixture dir");
        let tpm = Swtpm::fresh();
        let files = root.join("files");
        let out = tpm
            .tool("bash")
            .arg(repo().join("softhsm/swtpm-provision.sh"))
            .arg(&files)
            .stdin(Stdio::null())
            .output()
            .expect("run swtpm-provision.sh");
        assert!(
            out.status.success(),
            "swtpm-provision.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tpm.stop();
        let state = root.join("state");
        std::fs::create_dir_all(&state).expect("state copy");
        std::fs::copy(
            tpm.dir().join("state/tpm2-00.permall"),
            state.join("tpm2-00.permall"),
        )
        .expect("copy state");
        Fixture { state, files }
    })
}

/// Removes fixtures that earlier test runs left behind (the fixture lives as long as the
/// test binary, which has no hook at exit).
fn remove_stale_fixtures() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .file_name()
            .to_string_lossy()
            .starts_with("ra-signer-tpm-fixture-")
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(3600));
        if stale {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
