//! The process around the commands: log writes that never end it (a closed stderr, a
//! reader gone), results that are not lost silently (a closed stdout), no core dump and no
//! /proc access to its secrets, libtss2 kept off stderr, and key files that replace a
//! symlink rather than write through it.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::serve::{imds_credentials, role_name, serve_args};

/// A pipe whose read end is already closed: every write to it fails with EPIPE.
fn reader_gone() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    writer
}

/// Asserts that the process exited by itself with `code`, not by a signal (SIGABRT from a
/// panic under `panic = "abort"`) nor by a panic (101).
fn assert_exited(o: &Output, code: i32) {
    assert_eq!(
        o.status.signal(),
        None,
        "killed by a signal: {:?}",
        o.status
    );
    assert_exit(o, code);
}

/// `sh -c 'exec PROGRAM ARGS… REDIRECTION'`: the program runs with a standard descriptor
/// closed (`>&-`), which `Command` cannot express.
fn with_redirection(cmd: &Command, redirection: &str) -> Command {
    in_shell(cmd, "", redirection)
}

/// `sh -c 'PREFIX exec PROGRAM ARGS… REDIRECTION'`, with `cmd`'s environment and directory.
fn in_shell(cmd: &Command, prefix: &str, redirection: &str) -> Command {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(format!("{prefix} exec \"$0\" \"$@\" {redirection}"))
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear()
        .stdin(Stdio::null());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            sh.env(k, v);
        }
    }
    if let Some(dir) = cmd.get_current_dir() {
        sh.current_dir(dir);
    }
    sh
}

#[test]
fn a_closed_stderr_never_ends_a_command() {
    let w = World::new(&[]);
    let leaf = w.leaf("closed-stderr", KeyKind::P256);
    let command = |extra: &[&str]| {
        let mut cmd = ra_signer(w.dir.path());
        cmd.arg("credential-process")
            .args(leaf.file_args())
            .args(w.emulator.session_args())
            .args(extra);
        cmd
    };
    // --debug writes on stderr before and after signing; the reader is gone.
    let out = run(command(&["--debug"]).stderr(reader_gone()));
    assert_process_json(&out);
    assert_exited(&out, 0);
    // stderr closed outright: /dev/null takes its place, the run succeeds.
    let out = run(&mut with_redirection(&command(&["--debug"]), "2>&-"));
    assert_process_json(&out);
    // A retrying run prints a line per retry, then its error: the classified exit code.
    w.emulator.set_faults(&["status=503:3"]);
    let out = run(command(&["--max-attempts", "3"]).stderr(reader_gone()));
    assert_exited(&out, 5);
    assert!(out.stdout.is_empty());
    // A usage error and the emulator's own start-up error, with nobody reading.
    let out = run(ra_signer(w.dir.path())
        .args(["credential-process", "--no-such-flag"])
        .stderr(reader_gone()));
    assert_exited(&out, 2);
    let out = run(Command::new(bin("ra-emulator"))
        .args(["--trust-anchor-ca", "/nonexistent/anchor.pem"])
        .args(["--trust-anchor-arn", TRUST_ANCHOR_ARN])
        .args(["--profile-arn", PROFILE_ARN])
        .args(["--role-arn", ROLE_ARN])
        .stdin(Stdio::null())
        .stderr(reader_gone()));
    assert_exited(&out, 2);
}

#[test]
fn a_stdout_whose_reader_is_gone_is_a_clear_error_with_exit_1() {
    let w = World::new(&[]);
    let leaf = w.leaf("closed-stdout", KeyKind::P256);
    let path = |p: &Path| p.display().to_string();
    let mut credential_process = vec!["credential-process".to_owned()];
    credential_process.extend(leaf.file_args());
    credential_process.extend(w.emulator.session_args());
    let commands = [
        credential_process,
        vec![
            "sign-string".into(),
            "--private-key".into(),
            path(&leaf.key_path),
        ],
        vec![
            "read-certificate-data".into(),
            "--certificate".into(),
            path(&leaf.cert_path),
        ],
        vec!["version".into()],
    ];
    for args in &commands {
        let out = run(ra_signer(w.dir.path()).args(args).stdout(reader_gone()));
        let what = &args[0];
        assert_exited(&out, 1);
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 2, "{what}: {err}");
        assert!(
            err.starts_with("ra-signer: error: cannot write the result to stdout"),
            "{what}: {err}"
        );
        assert!(err.contains("hint: stdout was closed"), "{what}: {err}");
    }
}

/// `ra-signer serve` started by `cmd` with stderr on a pipe: waits for it to listen, and
/// returns the child, its address and the lines read so far, keeping the read end.
struct Serving {
    child: Child,
    addr: String,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Serving {
    /// Sends SIGUSR1: refresh now.
    fn refresh_now(&self) {
        let ok = Command::new("kill")
            .args(["-USR1", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    fn start(cmd: &mut Command) -> Serving {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start serve");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&lines);
        // Reads until the listening line, then drops the read end when told to.
        let reader = std::thread::spawn(move || {
            let mut stderr = BufReader::new(stderr);
            let mut line = String::new();
            while stderr.read_line(&mut line).unwrap_or(0) > 0 {
                sink.lock().expect("lines").push(line.trim_end().to_owned());
                if let Some(at) = line.find("listening on http://") {
                    let rest = &line[at + "listening on http://".len()..];
                    let _ = tx.send(rest[..rest.find('/').unwrap_or(rest.len())].to_owned());
                    return;
                }
                line.clear();
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("serve did not listen: {:?}", lines.lock()));
        Serving {
            child,
            addr,
            lines,
            reader: Some(reader),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_keeps_serving_and_refreshing_after_its_stderr_reader_is_gone() {
    let w = World::new(&[]);
    let leaf = w.leaf("serve-closed-stderr", KeyKind::P256);
    let mut cmd = ra_signer(w.dir.path());
    cmd.args(serve_args(&w, &leaf, &[]));
    let mut serving = Serving::start(&mut cmd);
    // The reader thread has returned: its end of the pipe is closed.
    serving.reader.take().expect("reader").join().expect("join");
    // Two refreshes, each logged on the closed stderr: a refresher that died at its first
    // log line (after publishing) would never make the second.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut asked = Instant::now() - Duration::from_secs(1);
    while seen.len() < 3 {
        if asked.elapsed() > Duration::from_millis(500) {
            // Nothing of the log can be read: ask again until the answer changes.
            serving.refresh_now();
            asked = Instant::now();
        }
        let (status, v) = imds_credentials(&serving.url(), role_name());
        assert_eq!(status, 200, "{v}");
        let key = v["AccessKeyId"].as_str().expect("key").to_owned();
        if !seen.contains(&key) {
            seen.push(key);
            asked = Instant::now() - Duration::from_secs(1);
        }
        assert!(
            serving.child.try_wait().expect("wait").is_none(),
            "serve ended after its stderr closed"
        );
        assert!(
            Instant::now() < deadline,
            "{} refreshes (logged on the closed stderr) within 40 s: {:?}",
            seen.len() - 1,
            serving.lines.lock()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(serving.child.try_wait().expect("wait").is_none());
}

/// The value of `field` in /proc/PID/<file>, as text.
fn proc_field(pid: u32, file: &str, field: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).expect("read /proc");
    text.lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/{file}: {text}"))
        .to_owned()
}

/// Whether a core-dumping signal leaves a core file in the current directory here: the
/// check on ra-signer means something only where a control process leaves one.
fn cores_land_in_cwd(dir: &Path) -> bool {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    if pattern.starts_with('|') {
        return false;
    }
    let _ = Command::new("sh")
        .args(["-c", "ulimit -c unlimited && kill -ABRT $$"])
        .current_dir(dir)
        .status();
    let found = core_files(dir);
    for f in &found {
        let _ = std::fs::remove_file(f);
    }
    !found.is_empty()
}

fn core_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .expect("ls")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("core"))
        })
        .collect()
}

#[test]
fn serve_cannot_dump_core_and_hides_its_environment() {
    let w = World::new(&[]);
    let leaf = w.leaf("serve-secrets", KeyKind::P256);
    let password = "pkcs8-password-out-of-proc";
    let encrypted = w.dir.path().join("encrypted.p8");
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        leaf.key_path.to_str().expect("utf-8"),
        "-out",
        encrypted.to_str().expect("utf-8"),
        "-passout",
        &format!("pass:{password}"),
    ]);
    let cwd = w.dir.path().join("cwd");
    std::fs::create_dir(&cwd).expect("mkdir");
    let meaningful_core_check = cores_land_in_cwd(&cwd);
    let mut args = serve_args(&w, &leaf, &[]);
    let key_at = args.iter().position(|a| a == "--private-key").expect("key") + 1;
    args[key_at] = encrypted.display().to_string();
    let mut serve = ra_signer(w.dir.path());
    serve
        .args(&args)
        .env("RA_SIGNER_PKCS8_PASSWORD", password)
        .current_dir(&cwd);
    let mut cmd = in_shell(&serve, "ulimit -c unlimited &&", "");
    let serving = Serving::start(&mut cmd);
    let pid = serving.pid();
    let (status, v) = imds_credentials(&serving.url(), role_name());
    assert_eq!(status, 200, "{v}");

    let limit = proc_field(pid, "limits", "Max core file size");
    assert_eq!(
        limit.split_whitespace().skip(4).take(2).collect::<Vec<_>>(),
        ["0", "0"],
        "{limit}"
    );
    // Another process of the same user, without the capabilities root has here: the
    // kernel refuses it the environment of a process that is not dumpable.
    let peer = Command::new("setpriv")
        .args(["--inh-caps=-all", "--bounding-set=-all", "--", "cat"])
        .arg(format!("/proc/{pid}/environ"))
        .stdin(Stdio::null())
        .output()
        .expect("setpriv (util-linux) runs a process without capabilities");
    assert!(
        !peer.status.success(),
        "a peer read /proc/{pid}/environ: {:?}",
        String::from_utf8_lossy(&peer.stdout).replace('\0', " ")
    );
    assert!(!String::from_utf8_lossy(&peer.stdout).contains(password));

    let killed = Command::new("kill")
        .args(["-ABRT", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let mut serving = serving;
    let status = serving.child.wait().expect("wait");
    assert_eq!(status.signal(), Some(6), "{status:?}");
    assert!(!status.core_dumped(), "{status:?}");
    if meaningful_core_check {
        assert_eq!(core_files(&cwd), Vec::<std::path::PathBuf>::new());
    }
}

#[cfg(feature = "tpm")]
#[test]
fn a_tpm_failure_is_one_error_without_libtss2_lines() {
    let w = crate::tpm::TpmWorld::new();
    let wrong = [("RA_SIGNER_TPM_KEY_PASSWORD", "wrong")];
    let out = w.run("handle-rsa-pw", "handle:0x81000102", &[], &wrong);
    assert_exited(&out, 3);
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "the error and its hint, nothing else: {err}"
    );
    assert!(lines[0].starts_with("ra-signer: error: "), "{err}");
    assert!(lines[1].starts_with("hint: "), "{err}");
    // libtss2 does print its own lines for this failure: a TSS2_LOG of the user's is kept.
    let out = w.run(
        "handle-rsa-pw",
        "handle:0x81000102",
        &[],
        &[wrong[0], ("TSS2_LOG", "all+error")],
    );
    assert_exited(&out, 3);
    assert!(stderr(&out).contains("ERROR:"), "{}", stderr(&out));
}

#[cfg(feature = "tpm")]
#[test]
fn keygen_tpm_replaces_a_symlink_instead_of_writing_through_it() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let tpm = swtpm::Swtpm::fresh();
    let dir = tempdir();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "the user's file\n").expect("write");
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (key, csr) = (dir.path().join("host.tss2"), dir.path().join("host.csr"));
    symlink(&victim, &key).expect("symlink");
    symlink(&victim, &csr).expect("symlink");
    let keygen = |force: bool| {
        let mut cmd = ra_signer(dir.path());
        cmd.args(["keygen", "--tpm", "--subject", "CN=symlink"])
            .arg("--out")
            .arg(&key)
            .arg("--csr-out")
            .arg(&csr)
            .args(["--tpm-tcti", &tpm.tcti()]);
        if force {
            cmd.arg("--force");
        }
        run(&mut cmd)
    };
    let out = keygen(false);
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("exists"), "{}", stderr(&out));
    let out = keygen(true);
    assert_exited(&out, 0);
    assert_eq!(
        std::fs::read_to_string(&victim).expect("read"),
        "the user's file\n"
    );
    for (path, marker) in [(&key, "TSS2 PRIVATE KEY"), (&csr, "CERTIFICATE REQUEST")] {
        let meta = std::fs::symlink_metadata(path).expect("stat");
        assert!(
            meta.file_type().is_file(),
            "{} is a file now",
            path.display()
        );
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "{}",
            path.display()
        );
        assert!(
            std::fs::read_to_string(path)
                .expect("read")
                .contains(marker)
        );
    }
}
