//! `update` against the emulator: the AWS CLI reads the profile it writes, other content is
//! kept, two writers at once leave a valid file, and the refresh loop survives faults.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::serve::Daemon;

fn update_args(w: &World, leaf: &Leaf, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec!["update".into()];
    args.extend(leaf.file_args());
    args.extend(w.emulator.session_args());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn update_once(w: &World, leaf: &Leaf, file: &Path, profile: &str) -> std::process::Output {
    let mut cmd = ra_signer(w.dir.path());
    cmd.args(update_args(w, leaf, &["--once", "--profile", profile]))
        .env("AWS_SHARED_CREDENTIALS_FILE", file);
    run(&mut cmd)
}

/// The file parsed by Python's configparser (what botocore uses): profile → key → value.
fn parse_ini(path: &Path) -> serde_json::Value {
    let script = r#"
import configparser, json, sys
c = configparser.RawConfigParser()
c.read(sys.argv[1])
print(json.dumps({s: dict(c.items(s)) for s in c.sections()}))
"#;
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .expect("python");
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).expect("json")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
}

fn assert_profile(ini: &serde_json::Value, profile: &str) -> String {
    let p = &ini[profile];
    for k in [
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
    ] {
        assert!(
            p[k].as_str().is_some_and(|v| !v.is_empty()),
            "[{profile}] {k} missing: {ini}"
        );
    }
    p["aws_access_key_id"].as_str().expect("key").to_owned()
}

#[test]
fn aws_cli_reads_the_profile_update_writes() {
    let w = World::new(&[]);
    let leaf = w.leaf("update-cli", KeyKind::P256);
    // The directories do not exist yet: created 0700, the file 0600.
    let file = w.dir.path().join("home/.aws/credentials");
    let out = update_once(&w, &leaf, &file, "ra-test");
    assert_exit(&out, 0);
    assert!(stdout(&out).is_empty());
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&w.dir.path().join("home/.aws")), 0o700);
    assert_eq!(mode(&w.dir.path().join("home")), 0o700);
    let ini = parse_ini(&file);
    let key = assert_profile(&ini, "ra-test");

    let aws = python().with_file_name("aws");
    let out = Command::new(&aws)
        .args(["configure", "list", "--profile", "ra-test"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", w.dir.path())
        .env("AWS_CONFIG_FILE", w.dir.path().join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", &file)
        .output()
        .expect("run aws");
    assert_exit(&out, 0);
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("access_key"))
        .unwrap_or_else(|| panic!("no access_key line: {text}"));
    assert!(line.contains("shared-credentials-file"), "{line}");
    assert!(line.contains(&key[key.len() - 4..]), "{line} vs {key}");
    assert!(!stderr(&out).contains("Traceback"));
    // The secrets never reach update's own output.
    let secret = ini["ra-test"]["aws_secret_access_key"]
        .as_str()
        .expect("secret");
    assert!(!stderr(&out).contains(secret));
}

#[test]
fn other_profiles_and_lines_are_kept() {
    let w = World::new(&[]);
    let leaf = w.leaf("update-keep", KeyKind::Rsa2048);
    let file = w.dir.path().join("credentials");
    let before = "# managed by hand\n[default]\naws_access_key_id = AKIAKEEPME\naws_secret_access_key = keep/me\n\n[ra]\nregion = eu-west-1\naws_access_key_id = OLD\naws_session_token = OLD\n\n[zzz]\n; comment\nfoo = bar\n";
    std::fs::write(&file, before).expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = update_once(&w, &leaf, &file, "ra");
    assert_exit(&out, 0);
    let after = std::fs::read_to_string(&file).expect("read");
    assert!(after.starts_with("# managed by hand\n[default]\naws_access_key_id = AKIAKEEPME\naws_secret_access_key = keep/me\n\n[ra]\n"), "{after}");
    assert!(
        after.ends_with("region = eu-west-1\n\n[zzz]\n; comment\nfoo = bar\n"),
        "{after}"
    );
    assert!(!after.contains("OLD"));
    assert_eq!(mode(&file), 0o600, "rewritten 0600");
    let ini = parse_ini(&file);
    assert_profile(&ini, "ra");
    assert_eq!(ini["ra"]["region"], "eu-west-1");
    assert_eq!(ini["default"]["aws_access_key_id"], "AKIAKEEPME");
    assert_eq!(ini["zzz"]["foo"], "bar");
}

#[test]
fn two_updates_at_once_leave_a_valid_file() {
    let w = World::new(&[]);
    let leaf = w.leaf("update-race", KeyKind::P256);
    let file = w.dir.path().join("race/credentials");
    for round in 0..6 {
        // Different profiles (a lost update would drop one) and, every other round, the same.
        let (a, b) = if round % 2 == 0 {
            ("one", "two")
        } else {
            ("same", "same")
        };
        let spawn = |profile: &str| {
            let mut cmd = ra_signer(w.dir.path());
            cmd.args(update_args(&w, &leaf, &["--once", "--profile", profile]))
                .env("AWS_SHARED_CREDENTIALS_FILE", &file)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            cmd.spawn().expect("spawn")
        };
        let (pa, pb) = (spawn(a), spawn(b));
        for p in [pa, pb] {
            let out = p.wait_with_output().expect("wait");
            assert_exit(&out, 0);
        }
        let ini = parse_ini(&file);
        assert_profile(&ini, a);
        assert_profile(&ini, b);
        if round >= 1 {
            assert_profile(&ini, "one");
            assert_profile(&ini, "two");
        }
        let text = std::fs::read_to_string(&file).expect("read");
        assert_eq!(text.matches("[same]").count(), usize::from(round >= 1));
    }
    // No temporary files are left behind.
    let names: Vec<String> = std::fs::read_dir(file.parent().expect("dir"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n == "credentials" || n.ends_with(".lock")),
        "{names:?}"
    );
    assert_eq!(w.emulator.stats()["issued"], 12);
}

fn access_key(file: &Path, profile: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut in_profile = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_profile = line == format!("[{profile}]");
        } else if in_profile && let Some(v) = line.strip_prefix("aws_access_key_id = ") {
            return Some(v.to_owned());
        }
    }
    None
}

#[test]
fn the_refresh_loop_rewrites_the_profile_and_survives_faults() {
    let w = World::new(&[]);
    let leaf = w.leaf("update-loop", KeyKind::P256);
    let file: PathBuf = w.dir.path().join("loop/credentials");
    let args = update_args(&w, &leaf, &["--profile", "loop", "--max-attempts", "1"]);
    let mut d = Daemon::start(
        w.dir.path(),
        &args,
        &[("AWS_SHARED_CREDENTIALS_FILE", file.as_path())],
    );
    d.wait_for("wrote profile [loop]", Duration::from_secs(30));
    let first = access_key(&file, "loop").expect("written");
    // The next two refreshes fail; the file keeps the first credentials meanwhile.
    w.emulator.set_faults(&["status=503:1", "throttle:1"]);
    d.refresh_now("refresh 1 failed");
    let failed = d.refresh_now("refresh 2 failed");
    assert!(
        failed.contains("the file keeps the current credentials"),
        "{failed}"
    );
    assert_eq!(access_key(&file, "loop").as_deref(), Some(first.as_str()));
    d.refresh_now("refreshed profile [loop]");
    let second = access_key(&file, "loop").expect("rewritten");
    assert_ne!(first, second);
    assert_eq!(w.emulator.stats()["faulted"], 2);
    let started = Instant::now();
    let status = d.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status}: {}", d.stderr());
    assert!(started.elapsed() < Duration::from_secs(5));
    let log = d.stderr();
    let ini = parse_ini(&file);
    let secret = ini["loop"]["aws_secret_access_key"]
        .as_str()
        .expect("secret");
    assert!(!log.contains(secret), "{log}");
    assert!(!log.contains(ini["loop"]["aws_session_token"].as_str().expect("token")));
}

#[test]
fn the_first_failure_exits_with_its_class() {
    let w = World::new(&["--fault", "status=503"]);
    let leaf = w.leaf("update-fail", KeyKind::P256);
    let file = w.dir.path().join("credentials");
    let mut cmd = ra_signer(w.dir.path());
    cmd.args(update_args(&w, &leaf, &["--max-attempts", "1"]))
        .env("AWS_SHARED_CREDENTIALS_FILE", &file);
    let out = run(&mut cmd);
    assert_exit(&out, 5);
    assert!(!file.exists());
}

/// What boto3 makes of `profile` in the credentials file `file` (no config file).
fn boto3_profile(dir: &Path, file: &Path, profile: &str) -> serde_json::Value {
    let script = r#"
import json, sys, boto3
s = boto3.Session(profile_name=sys.argv[1])
c = s.get_credentials().get_frozen_credentials()
print(json.dumps({"key": c.access_key, "secret": c.secret_key, "token": c.token,
                  "region": s.region_name}))
"#;
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(profile)
        .env_clear()
        .env("HOME", dir)
        .env("AWS_CONFIG_FILE", dir.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", file)
        .output()
        .expect("python");
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).expect("boto3 output")
}

#[test]
fn boto3_reads_a_hand_written_layout_after_update() {
    let w = World::new(&[]);
    let leaf = w.leaf("update-layout", KeyKind::P256);
    let file = w.dir.path().join("credentials");
    // A trailing comment on the header, indented keys (one before the old key), CRLF, and a
    // look-alike "[ default ]" profile: botocore reads all of it.
    let before = "[default] # main\r\n    region = eu-west-1\r\n    aws_access_key_id = AKIAOLD\r\n    output = json\r\n[ default ] ; not default\r\naws_access_key_id = AKIALOOKALIKE\r\naws_secret_access_key = look/alike\r\n";
    std::fs::write(&file, before).expect("write");
    let out = update_once(&w, &leaf, &file, "default");
    assert_exit(&out, 0);
    let after = std::fs::read_to_string(&file).expect("read");
    assert_eq!(after.matches("[default]").count(), 1, "{after}");
    assert!(!after.contains("AKIAOLD"), "{after}");
    assert!(
        after.ends_with("    output = json\r\n[ default ] ; not default\r\naws_access_key_id = AKIALOOKALIKE\r\naws_secret_access_key = look/alike\r\n"),
        "{after}"
    );
    assert!(
        !after.replace("\r\n", "").contains('\n'),
        "CRLF kept: {after:?}"
    );
    let got = boto3_profile(w.dir.path(), &file, "default");
    let ini = parse_ini(&file);
    assert_eq!(got["key"], ini["default"]["aws_access_key_id"]);
    assert_eq!(got["secret"], ini["default"]["aws_secret_access_key"]);
    // The token is the token alone: no indented line became part of it.
    let token = got["token"].as_str().expect("token");
    assert!(
        !token.is_empty() && !token.contains(['\n', ' ']),
        "{token:?}"
    );
    assert_eq!(got["region"], "eu-west-1");
    assert!(
        got["key"].as_str().expect("key").starts_with("ASIA"),
        "{got}"
    );
    let other = boto3_profile(w.dir.path(), &file, " default ");
    assert_eq!(other["key"], "AKIALOOKALIKE");
}

#[test]
fn a_file_botocore_refuses_is_left_alone_with_exit_2() {
    let w = World::new(&[]);
    let leaf = w.leaf("update-refused", KeyKind::P256);
    let file = w.dir.path().join("credentials");
    let before = "[default]\naws_access_key_id = AKIAKEEP\naws_secret_access_key = keep/secret\n[ra]\nregion = x\n[ra] # again\n";
    std::fs::write(&file, before).expect("write");
    let out = update_once(&w, &leaf, &file, "ra");
    assert_exit(&out, 2);
    assert_eq!(std::fs::read_to_string(&file).expect("read"), before);
    let err = stderr(&out);
    assert!(err.contains("line 6: a second [ra] section"), "{err}");
    assert!(
        !err.contains("keep/secret") && !err.contains("AKIAKEEP"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn every_stopping_signal_ends_update_and_keeps_the_file() {
    let w = World::new(&[]);
    let leaf = w.leaf("update-signals", KeyKind::P256);
    let dir = w.dir.path().join("signals");
    let file: PathBuf = dir.join("credentials");
    for signal in ["HUP", "QUIT", "INT", "TERM"] {
        let args = update_args(&w, &leaf, &["--profile", "sig"]);
        let mut d = Daemon::start(
            w.dir.path(),
            &args,
            &[("AWS_SHARED_CREDENTIALS_FILE", file.as_path())],
        );
        d.wait_for("wrote profile [sig]", Duration::from_secs(30));
        let written = std::fs::read(&file).expect("written");
        let (status, took) = d.signal(signal, Duration::from_secs(5));
        assert_eq!(
            status.code(),
            Some(0),
            "SIG{signal}: {status}\n{}",
            d.stderr()
        );
        assert!(took < Duration::from_secs(3), "SIG{signal}: {took:?}");
        let late = d.lines_after(&format!("SIG{signal}: stopping"));
        assert!(
            late.len() == 1 && late[0].ends_with("update: stopped; the identity is closed"),
            "SIG{signal}: {late:?}"
        );
        assert_eq!(std::fs::read(&file).expect("kept"), written, "SIG{signal}");
        assert_profile(&parse_ini(&file), "sig");
        let strays: Vec<String> = std::fs::read_dir(&dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n != "credentials" && !n.ends_with(".lock"))
            .collect();
        assert!(strays.is_empty(), "SIG{signal}: left behind {strays:?}");
    }
}

#[test]
fn a_stop_during_retries_ends_update_at_once() {
    let w = World::new(&[]);
    let leaf = w.leaf("update-stop-retries", KeyKind::P256);
    let file: PathBuf = w.dir.path().join("retries/credentials");
    let args = update_args(&w, &leaf, &["--profile", "retry", "--max-attempts", "10"]);
    let mut d = Daemon::start(
        w.dir.path(),
        &args,
        &[("AWS_SHARED_CREDENTIALS_FILE", file.as_path())],
    );
    d.wait_for("wrote profile [retry]", Duration::from_secs(30));
    let written = std::fs::read(&file).expect("written");
    w.emulator.set_faults(&["status=503"]);
    d.refresh_now("attempt 2 of 10 failed");
    let before = w.emulator.stats()["requests"].as_u64().expect("n");
    let (status, took) = d.signal("TERM", Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", d.stderr());
    assert!(took < Duration::from_secs(3), "{took:?}\n{}", d.stderr());
    std::thread::sleep(Duration::from_millis(500));
    let after = w.emulator.stats()["requests"].as_u64().expect("n");
    assert!(
        after <= before + 1,
        "{} calls after SIGTERM",
        after - before
    );
    let late = d.lines_after("SIGTERM: stopping");
    assert!(
        late.iter()
            .all(|l| !l.contains("refresh") && !l.contains("retrying")),
        "{late:?}"
    );
    assert_eq!(std::fs::read(&file).expect("kept"), written);
}
