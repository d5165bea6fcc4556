//! `exec` and `credential-process --format env`: boto3 in the command (or after `eval`)
//! reads the emulator's credentials from its environment, with file keys and a SoftHSM2
//! key; the command replaces ra-signer (same pid, exit code and signals its own), nothing
//! secret is on its command line, a command that cannot run fails before any signature,
//! and credentials or a profile already in the environment are refused unless overridden.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// Prints what boto3 finds with no profile and no arguments, and what else the
/// environment holds that matters.
const BOTO3_SCRIPT: &str = r#"
import json, os, boto3
s = boto3.Session()
c = s.get_credentials().get_frozen_credentials()
print(json.dumps({
    "AccessKeyId": c.access_key,
    "SecretAccessKey": c.secret_key,
    "SessionToken": c.token,
    "Expiration": os.environ.get("AWS_CREDENTIAL_EXPIRATION"),
    "Region": s.region_name,
    "Method": s.get_credentials().method,
    "Leaked": sorted(k for k in os.environ if k.startswith("RA_SIGNER_") or k in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")),
}))
"#;

/// Parses the script's output and checks it against credential_process JSON.
fn assert_boto3_saw(o: &Output, expected: &serde_json::Value) {
    assert_exit(o, 0);
    let got: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(o), stderr(o)));
    for field in [
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
    ] {
        assert_eq!(got[field], expected[field], "{field}");
    }
    assert_eq!(got["Method"], "env", "boto3 took them from the environment");
    assert_eq!(got["Region"], "us-east-1", "the trust anchor's region");
    assert_eq!(got["Leaked"], serde_json::json!([]), "no PIN, no profile");
}

/// `ra-signer exec` with the leaf's files and the emulator's flags, `extra`, then `--`
/// and `command`.
fn exec_cmd(w: &World, leaf: &Leaf, extra: &[&str], command: &[&str]) -> Command {
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("exec")
        .args(leaf.file_args())
        .args(w.emulator.session_args())
        .args(extra)
        .arg("--")
        .args(command);
    cmd
}

#[test]
fn boto3_in_the_command_gets_the_emulators_credentials_from_file_keys() {
    let w = World::new(&[]);
    let leaf = w.leaf("exec-file", KeyKind::P256);
    let Some(first) = crate::cache::keyring_works(&w, &leaf) else {
        return;
    };
    // The cache hands exec the credentials credential-process printed.
    let py = python();
    let out = run(&mut exec_cmd(
        &w,
        &leaf,
        &["--cache"],
        &[py.to_str().expect("utf-8"), "-c", BOTO3_SCRIPT],
    ));
    assert_boto3_saw(&out, &first);
    assert_eq!(w.emulator.stats()["issued"], 1);
    // --refresh: new credentials, which replace the cached ones.
    let out = run(&mut exec_cmd(
        &w,
        &leaf,
        &["--cache", "--refresh"],
        &[py.to_str().expect("utf-8"), "-c", BOTO3_SCRIPT],
    ));
    assert_exit(&out, 0);
    let refreshed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_ne!(refreshed["AccessKeyId"], first["AccessKeyId"]);
    let cached = assert_process_json(&w.credential_process(&leaf, &["--cache"]));
    assert_eq!(cached["AccessKeyId"], refreshed["AccessKeyId"]);
    assert_eq!(w.emulator.stats()["issued"], 2);
    // Without the cache: new credentials the emulator issued.
    let out = run(&mut exec_cmd(
        &w,
        &leaf,
        &[],
        &[py.to_str().expect("utf-8"), "-c", BOTO3_SCRIPT],
    ));
    assert_exit(&out, 0);
    let fresh: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_issued_key(&fresh);
    assert_ne!(fresh["AccessKeyId"], first["AccessKeyId"]);
    assert_ne!(fresh["AccessKeyId"], refreshed["AccessKeyId"]);
    assert_eq!(w.emulator.stats()["issued"], 3);
}

#[cfg(feature = "pkcs11")]
#[test]
fn boto3_in_the_command_gets_the_emulators_credentials_from_a_softhsm2_key() {
    use crate::pkcs11::Hsm;
    let hsm = Hsm::new();
    let emu = hsm.emulator();
    let uri = "pkcs11:token=ra-test;object=p256";
    let mut cp = hsm.with_pin("credential-process");
    cp.arg("--pkcs11-uri")
        .arg(uri)
        .args(emu.session_args())
        .args(["--cache", "--debug"]);
    let out = run(&mut cp);
    let first = assert_process_json(&out);
    if stderr(&out).contains("keyring is not available") {
        assert!(
            std::env::var_os("RA_SIGNER_TEST_ALLOW_NO_KEYRING").is_some_and(|v| v == "1"),
            "the kernel keyring is not usable here: {}",
            stderr(&out)
        );
        return;
    }
    let py = python();
    // RA_SIGNER_PKCS11_PIN is in ra-signer's environment (with_pin): the script checks it
    // is not in the command's.
    let mut exec = hsm.with_pin("exec");
    exec.arg("--pkcs11-uri")
        .arg(uri)
        .args(emu.session_args())
        .arg("--cache")
        .arg("--")
        .arg(&py)
        .args(["-c", BOTO3_SCRIPT]);
    assert_boto3_saw(&run(&mut exec), &first);
    // Without the cache the token signs, and the command still gets no PIN.
    let mut exec = hsm.with_pin("exec");
    exec.arg("--pkcs11-uri")
        .arg(uri)
        .args(emu.session_args())
        .arg("--")
        .arg(&py)
        .args(["-c", BOTO3_SCRIPT]);
    let out = run(&mut exec);
    assert_exit(&out, 0);
    let fresh: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_issued_key(&fresh);
    assert_eq!(fresh["Leaked"], serde_json::json!([]));
    assert_eq!(emu.stats()["issued"], 2);
}

#[test]
fn the_exit_code_is_the_commands() {
    let w = World::new(&[]);
    let leaf = w.leaf("exec-code", KeyKind::P256);
    for code in [0, 1, 7, 127, 255] {
        let out = run(&mut exec_cmd(
            &w,
            &leaf,
            &[],
            &["sh", "-c", &format!("exit {code}")],
        ));
        assert_exit(&out, code);
    }
}

/// Waits until `path` holds a line.
fn wait_for_line(path: &Path, child: &mut std::process::Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text.trim().to_owned();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_command_is_the_pid_started_gets_its_signals_and_no_secret_in_argv() {
    let w = World::new(&[]);
    let leaf = w.leaf("exec-signal", KeyKind::P256);
    let dir = w.dir.path();
    // The command saves its pid and its secrets (to look for them in its argv), then
    // waits for SIGUSR1, which it answers by writing a file and exiting 0.
    let script = r#"
trap 'echo got-usr1 > "$0.signalled"; exit 0' USR1
printf '%s\n%s\n' "$AWS_SECRET_ACCESS_KEY" "$AWS_SESSION_TOKEN" > "$0.secrets"
echo $$ > "$0.pid"
while :; do sleep 0.05; done
"#;
    let base = dir.join("usr1");
    let mut child = exec_cmd(
        &w,
        &leaf,
        &[],
        &["sh", "-c", script, base.to_str().expect("utf-8")],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn");
    let pid = wait_for_line(&base.with_extension("pid"), &mut child);
    assert_eq!(
        pid,
        child.id().to_string(),
        "the command replaced ra-signer"
    );
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
    assert!(!exe.ends_with("ra-signer"), "{}", exe.display());
    let secrets = std::fs::read_to_string(base.with_extension("secrets")).expect("secrets");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    let cmdline = String::from_utf8_lossy(&cmdline);
    for secret in secrets.lines() {
        assert!(secret.len() > 10, "the command got its credentials");
        assert!(!cmdline.contains(secret), "a secret in argv: {cmdline}");
    }
    let status = Command::new("kill")
        .args(["-USR1", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    assert_exit(&out, 0);
    assert_eq!(
        std::fs::read_to_string(base.with_extension("signalled")).expect("the trap ran"),
        "got-usr1\n"
    );

    // A signal the command does not catch ends it as it ends any process.
    let base = dir.join("term");
    let mut child = exec_cmd(
        &w,
        &leaf,
        &[],
        &[
            "sh",
            "-c",
            r#"echo $$ > "$0.pid"; while :; do sleep 0.05; done"#,
            base.to_str().expect("utf-8"),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn");
    let pid = wait_for_line(&base.with_extension("pid"), &mut child);
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(15), "{status:?}");
}

#[test]
fn a_command_that_cannot_run_fails_before_any_signature() {
    let w = World::new(&[]);
    let leaf = w.leaf("exec-missing", KeyKind::P256);
    let out = run(&mut exec_cmd(
        &w,
        &leaf,
        &[],
        &["no-such-command-ra-signer"],
    ));
    assert_exit(&out, 127);
    let err = stderr(&out);
    assert!(
        err.contains("error: command not found: no-such-command-ra-signer"),
        "{err}"
    );
    assert!(err.contains("hint: check the name and $PATH"), "{err}");
    let not_executable = w.dir.path().join("script.sh");
    std::fs::write(&not_executable, "#!/bin/sh\n").expect("write");
    let out = run(&mut exec_cmd(
        &w,
        &leaf,
        &[],
        &[not_executable.to_str().expect("utf-8")],
    ));
    assert_exit(&out, 126);
    assert!(stderr(&out).contains("not executable"), "{}", stderr(&out));
    let out = run(&mut exec_cmd(
        &w,
        &leaf,
        &[],
        &[w.dir.path().to_str().expect("utf-8")],
    ));
    assert_exit(&out, 126);
    assert!(stderr(&out).contains("a directory"), "{}", stderr(&out));
    let bad_interpreter = w.dir.path().join("bad-interpreter.sh");
    std::fs::write(&bad_interpreter, "#!/nonexistent/interpreter\n").expect("write");
    std::fs::set_permissions(
        &bad_interpreter,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let out = run(&mut exec_cmd(
        &w,
        &leaf,
        &[],
        &[bad_interpreter.to_str().expect("utf-8")],
    ));
    assert_exit(&out, 126);
    assert!(
        stderr(&out).contains("its #! interpreter or its dynamic loader is missing"),
        "{}",
        stderr(&out)
    );
    // A name that would forge lines or drive the terminal is shown escaped, on one line.
    let out = run(&mut exec_cmd(
        &w,
        &leaf,
        &[],
        &["evil\nra-signer: ok\u{1b}[2J"],
    ));
    assert_exit(&out, 127);
    let err = stderr(&out);
    assert!(
        err.starts_with(
            "ra-signer: error: command not found: evil\\nra-signer: ok\\u{1b}[2J\nhint: "
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 2, "{err}");
    // No command at all, or an empty one, is a usage error.
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("exec")
        .args(leaf.file_args())
        .args(w.emulator.session_args())
        .args(["--", ""]);
    let out = run(&mut cmd);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("exec needs a command to run"),
        "{}",
        stderr(&out)
    );
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("exec")
        .args(leaf.file_args())
        .args(w.emulator.session_args());
    assert_exit(&run(&mut cmd), 2);
    assert_eq!(
        w.emulator.stats()["requests"],
        1,
        "nothing was signed for a command that cannot be found or run, but for the one \
         whose interpreter is missing, which execve alone can tell"
    );
}

#[test]
fn credentials_or_a_profile_in_the_environment_are_refused_unless_overridden() {
    let w = World::new(&[]);
    let leaf = w.leaf("exec-inherited", KeyKind::P256);
    let show = [
        "sh",
        "-c",
        r#"echo "${AWS_PROFILE-none} ${AWS_DEFAULT_PROFILE-none} ${AWS_SECURITY_TOKEN-none} $AWS_ACCESS_KEY_ID""#,
    ];
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
    ] {
        let out = run(exec_cmd(&w, &leaf, &[], &show).env(name, "inherited"));
        assert_exit(&out, 2);
        let err = stderr(&out);
        assert!(
            err.contains(&format!("error: {name} is already set")),
            "{err}"
        );
        assert!(err.contains("--override-env"), "{err}");
        assert!(stdout(&out).is_empty());
    }
    assert_eq!(w.emulator.stats()["requests"], 0);
    let out = run(exec_cmd(&w, &leaf, &["--override-env"], &show)
        .env("AWS_ACCESS_KEY_ID", "AKIAINHERITED")
        .env("AWS_PROFILE", "other")
        .env("AWS_DEFAULT_PROFILE", "other")
        .env("AWS_SECURITY_TOKEN", "old"));
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.starts_with("none none none ASIA"), "{text}");
    // A region the user chose stays; ours fills in only where none is set.
    let region = ["sh", "-c", r#"echo "$AWS_REGION $AWS_DEFAULT_REGION""#];
    let out = run(exec_cmd(&w, &leaf, &[], &region).env("AWS_DEFAULT_REGION", "eu-west-3"));
    assert_eq!(stdout(&out), " eu-west-3\n");
    let out = run(&mut exec_cmd(&w, &leaf, &[], &region));
    assert_eq!(stdout(&out), "us-east-1 us-east-1\n");
}

#[test]
fn format_env_lines_evaluate_in_a_real_shell_for_boto3() {
    let w = World::new(&[]);
    let leaf = w.leaf("exec-format-env", KeyKind::P256);
    let Some(first) = crate::cache::keyring_works(&w, &leaf) else {
        return;
    };
    let mut args = vec![
        bin("ra-signer").display().to_string(),
        "credential-process".into(),
        "--format".into(),
        "env".into(),
        "--cache".into(),
    ];
    args.extend(leaf.file_args());
    args.extend(w.emulator.session_args());
    // The eval'd lines unset the profile the shell had, as exec does.
    let script = r#"eval "$("$@")" && exec "$PY" -c "$BOTO3""#;
    let out = run(Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(&args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", w.dir.path())
        .env("PY", python())
        .env("BOTO3", BOTO3_SCRIPT)
        .env("AWS_PROFILE", "some-other-profile"));
    assert_boto3_saw(&out, &first);
    assert_eq!(w.emulator.stats()["issued"], 1);
    // JSON stays the default.
    let json = assert_process_json(&w.credential_process(&leaf, &["--cache"]));
    assert_eq!(json, first);
    let out = w.credential_process(&leaf, &["--cache", "--format", "env"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.starts_with("unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SECURITY_TOKEN\nexport AWS_ACCESS_KEY_ID='ASIA"),
        "{text}"
    );
    assert_eq!(text.lines().filter(|l| l.starts_with("export ")).count(), 6);
}
