//! Bytes from outside are not trusted (issue 9). Credentials outside their alphabet or
//! already expired are refused before they reach stdout, a credentials file or the `serve`
//! endpoint, with exit 5, and nothing a user owns is touched (defect 2). Every read is
//! bounded and no input file can hang the process (defect 3); the endpoint's text is
//! escaped and cut (defect 4); a PIN never reaches a message (defect 9) and an empty one
//! never reaches the token (defect 12).

use crate::common::*;

const PREVIOUS: &str = "[default]\nregion = eu-west-1\n\n[ra]\naws_access_key_id = ASIAOLDOLDOLDOLDOLD1\naws_secret_access_key = old\naws_session_token = old\n";

/// `serve` on any port, one attempt: it must not start.
fn serve(w: &World, leaf: &Leaf) -> std::process::Output {
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("serve")
        .args(leaf.file_args())
        .args(w.emulator.session_args())
        .args(["--port", "0", "--max-attempts", "1"]);
    run(&mut cmd)
}

#[test]
fn injected_credentials_are_refused_everywhere_and_write_nothing() {
    let w = World::new(&["--fault", "hostile"]);
    let leaf = w.leaf("hostile", KeyKind::P256);
    let o = w.credential_process(&leaf, &["--max-attempts", "1"]);
    assert_exit(&o, 5);
    assert!(o.stdout.is_empty(), "nothing on stdout");
    let err = stderr(&o);
    assert!(
        err.contains("secretAccessKey") && err.contains("refused"),
        "{err}"
    );
    assert!(!err.contains("evil") && !err.contains("touch"), "{err}");

    let file = w.dir.path().join("credentials");
    std::fs::write(&file, PREVIOUS).expect("write");
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("update")
        .args(leaf.file_args())
        .args(w.emulator.session_args())
        .args(["--once", "--profile", "ra", "--max-attempts", "1"])
        .env("AWS_SHARED_CREDENTIALS_FILE", &file);
    let o = run(&mut cmd);
    assert_exit(&o, 5);
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        PREVIOUS,
        "the credentials file is untouched"
    );

    let o = serve(&w, &leaf);
    assert_exit(&o, 5);
    assert!(stderr(&o).contains("secretAccessKey"), "{}", stderr(&o));
    assert!(!std::path::Path::new("/tmp/ra-signer-pwned").exists());
}

#[test]
fn expired_credentials_are_refused() {
    let w = World::new(&["--fault", "expired"]);
    let leaf = w.leaf("expired", KeyKind::P256);
    let o = w.credential_process(&leaf, &["--max-attempts", "1"]);
    assert_exit(&o, 5);
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("already expired"), "{}", stderr(&o));

    let o = serve(&w, &leaf);
    assert_exit(&o, 5);
    assert!(stderr(&o).contains("already expired"), "{}", stderr(&o));
}

/// Runs `cmd`, failing the test if it has not ended within `secs` (a hang is a failure,
/// not a stuck test run).
fn run_within(cmd: &mut std::process::Command, secs: u64) -> std::process::Output {
    use std::process::Stdio;
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("no exit within {secs} s: {cmd:?}");
        }
    }
}

/// Every stderr line is one of ours: nothing the endpoint sent started a line, moved the
/// cursor or rang the bell.
fn assert_escaped(err: &str) {
    for bad in ['\r', '\u{1b}', '\u{7}', '\u{202e}', '\t'] {
        assert!(!err.contains(bad), "raw {bad:?} on stderr: {err:?}");
    }
    assert!(
        !err.lines()
            .any(|l| l.starts_with("ra-signer: error: forged")),
        "a forged line: {err}"
    );
    assert!(
        err.contains(
            "Denied\\nra-signer: error: forged line\\r\\u{1b}[2J\\u{7}bell \\u{202e}desrever"
        ),
        "the message is shown, escaped: {err}"
    );
}

#[test]
fn an_endless_body_is_cut_at_the_bound() {
    let w = World::new(&["--fault", "endless-body"]);
    let leaf = w.leaf("endless", KeyKind::P256);
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("credential-process")
        .args(leaf.file_args())
        .args(w.emulator.session_args())
        .args(["--max-attempts", "1"]);
    let o = run_within(&mut cmd, 30);
    assert_exit(&o, 5);
    assert!(o.stdout.is_empty());
    let err = stderr(&o);
    assert!(err.contains("larger than 1 MiB"), "{err}");
}

#[test]
fn a_trickling_body_is_cut_at_the_request_timeout() {
    // reqwest's timeout bounds each read; a byte every 200 ms would never trip it.
    let w = World::new(&["--fault", "slow-body"]);
    let leaf = w.leaf("trickle", KeyKind::P256);
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("credential-process")
        .args(leaf.file_args())
        .args(w.emulator.session_args())
        .args(["--max-attempts", "1", "--request-timeout", "2"]);
    let started = std::time::Instant::now();
    let o = run_within(&mut cmd, 30);
    assert_exit(&o, 5);
    assert!(o.stdout.is_empty());
    let err = stderr(&o);
    assert!(err.contains("did not arrive within 2 s"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_huge_error_message_is_cut_and_escaped() {
    let w = World::new(&["--fault", "huge-message"]);
    let leaf = w.leaf("huge", KeyKind::P256);
    let o = w.credential_process(&leaf, &["--max-attempts", "1"]);
    assert_exit(&o, 4);
    let err = stderr(&o);
    assert!(
        err.contains("Huge message: AAAA") && err.contains('…'),
        "{err}"
    );
    assert!(err.len() < 2000, "{} bytes on stderr", err.len());
}

#[test]
fn control_characters_from_the_endpoint_are_escaped() {
    let w = World::new(&["--fault", "control-chars"]);
    let leaf = w.leaf("ctl", KeyKind::P256);
    let o = w.credential_process(&leaf, &["--max-attempts", "1"]);
    assert_exit(&o, 4);
    let err = stderr(&o);
    assert_escaped(&err);
    assert!(err.contains("\\t\\u{202e}forged]"), "the request id: {err}");

    let file = w.dir.path().join("credentials");
    std::fs::write(&file, PREVIOUS).expect("write");
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("update")
        .args(leaf.file_args())
        .args(w.emulator.session_args())
        .args(["--once", "--profile", "ra", "--max-attempts", "1"])
        .env("AWS_SHARED_CREDENTIALS_FILE", &file);
    let o = run(&mut cmd);
    assert_exit(&o, 4);
    assert_escaped(&stderr(&o));

    let o = serve(&w, &leaf);
    assert_exit(&o, 4);
    assert_escaped(&stderr(&o));
}

#[test]
fn control_characters_in_a_refresh_failure_are_escaped_in_the_serve_log() {
    use crate::serve::{Daemon, serve_args};
    let w = World::new(&[]);
    let leaf = w.leaf("ctl-serve", KeyKind::P256);
    // One attempt per refresh.
    let extra = ["--max-attempts", "1"];
    let mut d = Daemon::start(w.dir.path(), &serve_args(&w, &leaf, &extra), &[]);
    w.emulator.set_faults(&["control-chars"]);
    d.refresh_now("forged line");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = d.stderr();
    assert_escaped(&log);
    assert!(
        log.lines().all(|l| l.starts_with("ra-signer")),
        "one line per event: {log}"
    );
}

/// A regular file of `len` bytes: a PEM file padded with comment text, which PEM readers
/// skip, so that only its size can make it fail.
fn padded_copy(of: &std::path::Path, to: &std::path::Path, len: usize) {
    let mut bytes = std::fs::read(of).expect("read");
    assert!(bytes.len() < len);
    bytes.resize(len - 1, b'#');
    bytes.push(b'\n');
    std::fs::write(to, bytes).expect("write");
}

fn mkfifo(path: &std::path::Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(made.success());
}

const CAP: usize = 4 * 1024 * 1024;

#[test]
fn inputs_at_the_bound_are_read_and_beyond_it_refused() {
    let w = World::new(&[]);
    let leaf = w.leaf("bound", KeyKind::P256);
    let dir = w.dir.path();
    let at = dir.join("cert-at-cap.pem");
    padded_copy(&leaf.cert_path, &at, CAP);
    let over = dir.join("cert-over-cap.pem");
    padded_copy(&leaf.cert_path, &over, CAP + 1);
    let key = leaf.key_path.display().to_string();
    let mut cmd = ra_signer(dir);
    cmd.arg("credential-process")
        .arg("--certificate")
        .arg(&at)
        .args(["--private-key", &key])
        .args(w.emulator.session_args());
    assert_process_json(&run_within(&mut cmd, 30));

    let mut cmd = ra_signer(dir);
    cmd.arg("credential-process")
        .arg("--certificate")
        .arg(&over)
        .args(["--private-key", &key])
        .args(w.emulator.session_args());
    let o = run_within(&mut cmd, 30);
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains(&over.display().to_string()) && err.contains("larger than 4 MiB"),
        "{err}"
    );
}

/// Each file input given `/dev/zero`, a FIFO nobody writes to, and a file one byte over
/// the bound: each fails within seconds with its documented exit code and says why.
#[test]
fn devices_fifos_and_oversized_files_fail_fast_for_every_file_input() {
    let w = World::new(&[]);
    let leaf = w.leaf("inputs", KeyKind::P256);
    let dir = w.dir.path();
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let big = dir.join("big");
    std::fs::write(&big, vec![b'#'; CAP + 1]).expect("write");
    // An encrypted key, so that its password file is read.
    let enc_key = dir.join("enc.key");
    let o = openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        &leaf.key_path.display().to_string(),
        "-out",
        &enc_key.display().to_string(),
        "-passout",
        "pass:s3cret",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cert = leaf.cert_path.display().to_string();
    let key = leaf.key_path.display().to_string();
    let enc = enc_key.display().to_string();

    type Case = (&'static str, i32, Vec<String>, bool);
    let cases = |bad: &str| -> Vec<Case> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        vec![
            (
                "--certificate",
                3,
                s(&["--certificate", bad, "--private-key", &key]),
                true,
            ),
            (
                "--private-key",
                3,
                s(&["--certificate", &cert, "--private-key", bad]),
                true,
            ),
            (
                "--intermediates",
                3,
                s(&[
                    "--certificate",
                    &cert,
                    "--private-key",
                    &key,
                    "--intermediates",
                    bad,
                ]),
                true,
            ),
            (
                "--pkcs8-password-file",
                3,
                s(&[
                    "--certificate",
                    &cert,
                    "--private-key",
                    &enc,
                    "--pkcs8-password-file",
                    bad,
                ]),
                true,
            ),
            // In place of the emulator's CA bundle (see below).
            (
                "--ca-bundle",
                2,
                s(&[
                    "--certificate",
                    &cert,
                    "--private-key",
                    &key,
                    "--ca-bundle",
                    bad,
                ]),
                false,
            ),
        ]
    };
    for (bad, what) in [
        ("/dev/zero", "not a regular file but a character device"),
        (
            fifo.to_str().expect("utf-8"),
            "not a regular file but a FIFO",
        ),
        (big.to_str().expect("utf-8"), "larger than 4 MiB"),
    ] {
        for (flag, code, args, with_ca) in cases(bad) {
            let mut cmd = ra_signer(dir);
            cmd.arg("credential-process").args(&args);
            if with_ca {
                cmd.args(w.emulator.session_args());
            } else {
                cmd.args(w.emulator.arn_args());
            }
            cmd.args(["--max-attempts", "1"]);
            let o = run_within(&mut cmd, 20);
            assert_exit(&o, code);
            let err = stderr(&o);
            assert!(
                err.contains(bad) && err.contains(what),
                "{flag} {bad}: {err}"
            );
            assert!(!err.contains("s3cret"), "{err}");
        }
    }
}

#[test]
fn standard_input_is_the_one_stream_a_file_input_may_be() {
    let w = World::new(&[]);
    let leaf = w.leaf("stdin", KeyKind::P256);
    let pem = std::fs::read(&leaf.cert_path).expect("read");
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("credential-process")
        .args(["--certificate", "/dev/stdin"])
        .arg("--private-key")
        .arg(&leaf.key_path)
        .args(w.emulator.session_args())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&pem).expect("write");
    }
    let o = child.wait_with_output().expect("wait");
    assert_process_json(&o);
}

/// The PIN never appears in an error line, wherever the URI carries it and however its
/// attribute name is spelt, `--debug` included.
#[cfg(feature = "pkcs11")]
#[test]
fn a_pin_in_any_spelling_of_the_uri_is_never_echoed() {
    use crate::pkcs11::{Hsm, fixture};
    let hsm = Hsm::new();
    let emu = hsm.emulator();
    for (uri, code) in [
        // In the path part: refused as a misplaced query attribute.
        ("pkcs11:token=ra-test;object=p256;pin-value=987654", 2),
        ("pkcs11:token=ra-test;object=p256;PIN-VALUE=987654", 2),
        // Upper-case scheme, and a leading space: taken as URIs, the token is absent.
        ("PKCS11:token=absent?pin-value=987654", 3),
        (" pkcs11:token=absent?pin-value=987654", 3),
        // The object is absent.
        ("pkcs11:token=ra-test;object=absent?pin-value=987654", 3),
        // Percent-encoded or misspelt names.
        ("pkcs11:token=ra-test;object=p256?pin%2Dvalue=987654", 2),
        ("pkcs11:token=ra-test;object=p256?pin%3D987654=1", 2),
        ("pkcs11:token=ra-test;object=p256;pin-value%3D987654", 2),
        ("pkcs11:token=ra-test;object=p256?pin-value=987654#x", 2),
        // A wrong PIN, tried once.
        ("pkcs11:token=ra-test;object=p256?Pin-Value=987654", 3),
    ] {
        for flag in ["--pkcs11-uri", "--certificate"] {
            let mut cmd = hsm.cmd("credential-process");
            cmd.arg("--pkcs11-lib")
                .arg(&fixture().module)
                .arg(flag)
                .arg(uri)
                .args(emu.session_args())
                .args(["--debug", "--max-attempts", "1"]);
            let o = run_within(&mut cmd, 30);
            assert_exit(&o, code);
            let err = stderr(&o);
            assert!(
                !err.contains("987654") && !err.contains("7654"),
                "{flag} {uri}: {err}"
            );
        }
    }
    // A TPM key with its certificate named by a URI (which a TPM key cannot use).
    #[cfg(feature = "tpm")]
    {
        let mut cmd = hsm.cmd("credential-process");
        cmd.args([
            "--certificate",
            "pkcs11:token=ra-test;object=p256?pin-value=987654",
            "--private-key",
            "handle:0x81000001",
        ])
        .args(emu.session_args());
        let o = run_within(&mut cmd, 30);
        assert!(!o.status.success());
        assert!(!stderr(&o).contains("987654"), "{}", stderr(&o));
    }
    // serve's start-up failure and read-certificate-data.
    let uri = "pkcs11:token=absent?pin-value=987654";
    for sub in ["serve", "read-certificate-data"] {
        let mut cmd = hsm.cmd(sub);
        cmd.arg("--pkcs11-lib")
            .arg(&fixture().module)
            .args(["--certificate", uri]);
        if sub == "serve" {
            cmd.args(emu.session_args()).args(["--port", "0"]);
        }
        let o = run_within(&mut cmd, 30);
        assert_exit(&o, 3);
        assert!(!stderr(&o).contains("987654"), "{sub}: {}", stderr(&o));
    }
}

/// The PIN file and `pin-source=file:` are bounded like every file input.
#[cfg(feature = "pkcs11")]
#[test]
fn pin_files_that_are_devices_fifos_or_oversized_fail_fast() {
    use crate::pkcs11::{Hsm, fixture};
    let hsm = Hsm::new();
    let fifo = hsm.path().join("fifo");
    mkfifo(&fifo);
    let big = hsm.path().join("big");
    std::fs::write(&big, vec![b'1'; CAP + 1]).expect("write");
    for (bad, what) in [
        ("/dev/zero", "not a regular file but a character device"),
        (
            fifo.to_str().expect("utf-8"),
            "not a regular file but a FIFO",
        ),
        (big.to_str().expect("utf-8"), "larger than 4 MiB"),
    ] {
        let by_flag = [
            "--pkcs11-uri",
            "pkcs11:token=ra-test;object=p256",
            "--pkcs11-pin-file",
            bad,
        ];
        let source = format!("pkcs11:token=ra-test;object=p256?pin-source=file:{bad}");
        let by_uri = ["--pkcs11-uri", source.as_str()];
        for args in [&by_flag[..], &by_uri[..]] {
            let mut cmd = hsm.cmd("sign-string");
            cmd.arg("--pkcs11-lib").arg(&fixture().module).args(args);
            let o = run_within(&mut cmd, 20);
            assert_exit(&o, 3);
            let err = stderr(&o);
            assert!(err.contains(bad) && err.contains(what), "{args:?}: {err}");
        }
    }
}

/// A blank first line in a PIN file (or an empty PIN from anywhere) is refused before any
/// C_Login: it would cost one of the token's retries.
#[cfg(feature = "pkcs11")]
#[test]
fn an_empty_pin_is_refused_before_login() {
    use crate::pkcs11::{Hsm, count, spy_calls};
    let hsm = Hsm::new();
    let blank = hsm.path().join("blank-first-line");
    std::fs::write(&blank, "\n1234\n").expect("write");
    let key = "pkcs11:token=ra-test;object=p256";
    let from_source = format!("{key}?pin-source=file:{}", blank.display());
    let empty_value = format!("{key}?pin-value=");
    // (URI, PIN file flag, PIN in the environment)
    let cases = [
        (key, Some(&blank), "1234", "the first line of"),
        (from_source.as_str(), None, "1234", "the first line of"),
        (empty_value.as_str(), None, "1234", "is empty"),
        (key, None, "", "is empty"),
    ];
    for (uri, pin_file, env_pin, want) in cases {
        let (mut cmd, log) = hsm.spied("sign-string").expect("spy");
        cmd.env("RA_SIGNER_PKCS11_PIN", env_pin)
            .arg("--pkcs11-uri")
            .arg(uri);
        if let Some(f) = pin_file {
            cmd.arg("--pkcs11-pin-file").arg(f);
        }
        let o = run_within(&mut cmd, 30);
        assert_exit(&o, 3);
        let err = stderr(&o);
        assert!(
            err.contains(want) && err.contains("nothing was sent"),
            "{uri} {pin_file:?}: {err}"
        );
        assert_eq!(
            count(&spy_calls(&log), "C_Login"),
            0,
            "{uri} {pin_file:?}: no login"
        );
    }
}
