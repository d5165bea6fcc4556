//! `credential-process --cache`: N runs (and N AWS CLI commands) make one CreateSession,
//! a hit needs no key, cached credentials close to expiry are bypassed, and a change of
//! session options misses; `--refresh` replaces an entry; `cache list` and `cache clear`.
//! The cache is the kernel user keyring: each test's fresh certificate keys its own
//! entries, and the tests of `cache list` and `cache clear --all` run in a user namespace
//! of their own, whose user keyring no other test (or user of this uid) shares.

use std::path::Path;

use crate::common::*;

/// Whether `out` says the kernel keyring cannot be used; that fails the test unless
/// RA_SIGNER_TEST_ALLOW_NO_KEYRING=1 says this machine has none (then the test is skipped,
/// saying so).
fn no_keyring(out: &std::process::Output) -> bool {
    if !stderr(out).contains("keyring is not available") {
        return false;
    }
    assert!(
        std::env::var_os("RA_SIGNER_TEST_ALLOW_NO_KEYRING").is_some_and(|v| v == "1"),
        "the kernel keyring is not usable here (set RA_SIGNER_TEST_ALLOW_NO_KEYRING=1 to skip): {}",
        stderr(out)
    );
    eprintln!("skipping: {}", stderr(out));
    true
}

/// Runs `credential-process --cache --debug` once; `None` where [`no_keyring`] skips.
pub(crate) fn keyring_works(w: &World, leaf: &Leaf) -> Option<serde_json::Value> {
    let out = w.credential_process(leaf, &["--cache", "--debug"]);
    let json = assert_process_json(&out);
    if no_keyring(&out) {
        return None;
    }
    assert!(stderr(&out).contains("cache: stored"), "{}", stderr(&out));
    Some(json)
}

#[test]
fn n_runs_make_one_create_session() {
    let w = World::new(&[]);
    let leaf = w.leaf("cache-n", KeyKind::P256);
    let Some(first) = keyring_works(&w, &leaf) else {
        return;
    };
    for _ in 0..5 {
        let again = assert_process_json(&w.credential_process(&leaf, &["--cache"]));
        assert_eq!(again, first, "the same credentials, Expiration included");
    }
    assert_eq!(w.emulator.stats()["issued"], 1);
    // Without --cache every run signs.
    let fresh = assert_process_json(&w.credential_process(&leaf, &[]));
    assert_ne!(fresh["AccessKeyId"], first["AccessKeyId"]);
    assert_eq!(w.emulator.stats()["issued"], 2);
}

#[test]
fn aws_cli_commands_share_one_create_session() {
    let w = World::new(&[]);
    let leaf = w.leaf("cache-cli", KeyKind::Rsa2048);
    if keyring_works(&w, &leaf).is_none() {
        return;
    }
    let mut args = leaf.file_args();
    args.push("--cache".to_owned());
    args.extend(w.emulator.session_args());
    let config = crate::real_clients::aws_config(w.dir.path(), &args);
    for _ in 0..3 {
        let out = crate::real_clients::aws_configure_list(w.dir.path(), &config);
        assert!(stdout(&out).contains("custom-process"), "{}", stdout(&out));
    }
    assert_eq!(
        w.emulator.stats()["issued"],
        1,
        "the first run (keyring probe) signed; the three CLI commands hit the cache"
    );
}

#[test]
fn a_hit_needs_no_key() {
    let w = World::new(&[]);
    let leaf = w.leaf("cache-nokey", KeyKind::P256);
    let Some(first) = keyring_works(&w, &leaf) else {
        return;
    };
    // The key file is gone: a hit still answers (no signature, no password, no token).
    std::fs::remove_file(&leaf.key_path).expect("rm key");
    let again = assert_process_json(&w.credential_process(&leaf, &["--cache"]));
    assert_eq!(again, first);
    // A miss needs it, and says so.
    let out = w.credential_process(&leaf, &["--cache", "--session-duration", "900"]);
    assert_exit(&out, 3);
    assert_eq!(w.emulator.stats()["issued"], 1);
}

#[test]
fn credentials_close_to_expiry_are_bypassed() {
    let w = World::new(&[]);
    let leaf = w.leaf("cache-expiry", KeyKind::P256);
    let Some(first) = keyring_works(&w, &leaf) else {
        return;
    };
    // The emulator's credentials last 3600 s: a minimum validity above that plays "within
    // 5 minutes of expiry" without waiting an hour.
    let out = w.credential_process(
        &leaf,
        &["--cache", "--debug", "--cache-min-validity", "3601"],
    );
    let fresh = assert_process_json(&out);
    assert!(stderr(&out).contains("cache: bypassed"), "{}", stderr(&out));
    assert_ne!(fresh["AccessKeyId"], first["AccessKeyId"]);
    assert_eq!(w.emulator.stats()["issued"], 2);
    // Credentials this close to expiry are not stored either…
    assert!(stderr(&out).contains("not stored"), "{}", stderr(&out));
    // …so the cache still holds the first ones, which the default threshold accepts.
    let again = assert_process_json(&w.credential_process(&leaf, &["--cache"]));
    assert_eq!(again, first);
    assert_eq!(w.emulator.stats()["issued"], 2);
}

#[test]
fn other_session_options_miss() {
    let w = World::new(&["--max-duration", "7200"]);
    let leaf = w.leaf("cache-options", KeyKind::P256);
    let Some(first) = keyring_works(&w, &leaf) else {
        return;
    };
    let a = assert_process_json(
        &w.credential_process(&leaf, &["--cache", "--session-duration", "900"]),
    );
    let b = assert_process_json(
        &w.credential_process(&leaf, &["--cache", "--role-session-name", "me"]),
    );
    for v in [&a, &b] {
        assert_ne!(v["AccessKeyId"], first["AccessKeyId"]);
    }
    assert_eq!(w.emulator.stats()["issued"], 3);
    // Each is cached under its own key.
    let a2 = assert_process_json(
        &w.credential_process(&leaf, &["--cache", "--session-duration", "900"]),
    );
    assert_eq!(a2, a);
    // A new certificate for the same names misses too.
    let other = w.leaf("cache-options-2", KeyKind::P256);
    let c = assert_process_json(&w.credential_process(&other, &["--cache"]));
    assert_ne!(c["AccessKeyId"], first["AccessKeyId"]);
    assert_eq!(w.emulator.stats()["issued"], 4);
}

#[test]
fn concurrent_misses_queue_for_one_create_session() {
    let w = World::new(&[]);
    let probe = w.leaf("cache-probe", KeyKind::P256);
    if keyring_works(&w, &probe).is_none() {
        return;
    }
    // Each CreateSession takes 300 ms, so all six runs miss while the first one signs.
    w.emulator.set_faults(&["delay=300"]);
    let leaf = w.leaf("cache-burst", KeyKind::P256);
    let children: Vec<_> = (0..6)
        .map(|_| {
            let mut cmd = ra_signer(w.dir.path());
            cmd.arg("credential-process")
                .arg("--cache")
                .args(leaf.file_args())
                .args(w.emulator.session_args())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            cmd.spawn().expect("spawn")
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect();
    let keys: Vec<String> = outputs
        .iter()
        .map(|o| assert_process_json(o)["AccessKeyId"].to_string())
        .collect();
    assert!(
        keys.windows(2).all(|k| k[0] == k[1]),
        "one set of credentials: {keys:?}"
    );
    assert_eq!(
        w.emulator.stats()["issued"],
        2,
        "the probe signed once, and the six concurrent runs once"
    );
}

#[test]
fn refresh_replaces_the_cached_entry() {
    let w = World::new(&[]);
    let leaf = w.leaf("cache-refresh", KeyKind::P256);
    let Some(first) = keyring_works(&w, &leaf) else {
        return;
    };
    let out = w.credential_process(&leaf, &["--cache", "--refresh", "--debug"]);
    let refreshed = assert_process_json(&out);
    assert!(
        stderr(&out).contains("cache: --refresh"),
        "{}",
        stderr(&out)
    );
    assert_ne!(refreshed["AccessKeyId"], first["AccessKeyId"]);
    assert_eq!(w.emulator.stats()["issued"], 2);
    // The new credentials replaced the old ones.
    let again = assert_process_json(&w.credential_process(&leaf, &["--cache"]));
    assert_eq!(again, refreshed);
    assert_eq!(w.emulator.stats()["issued"], 2);
    // --refresh means nothing without --cache.
    let out = w.credential_process(&leaf, &["--refresh"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--cache"), "{}", stderr(&out));
}

/// `value` as one POSIX shell word.
fn sh_word(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Runs each of `steps` (ra-signer's arguments) in turn inside one new user namespace,
/// whose user keyring is this test's alone; returns their outputs, or `None` (saying so)
/// where user namespaces cannot be made and RA_SIGNER_TEST_ALLOW_NO_KEYRING=1.
fn in_own_keyring(dir: &Path, steps: &[Vec<String>]) -> Option<Vec<std::process::Output>> {
    let probe = run(std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "true"])
        .stdin(std::process::Stdio::null()));
    if !probe.status.success() {
        assert!(
            std::env::var_os("RA_SIGNER_TEST_ALLOW_NO_KEYRING").is_some_and(|v| v == "1"),
            "`unshare --user` fails here (set RA_SIGNER_TEST_ALLOW_NO_KEYRING=1 to skip): {}",
            stderr(&probe)
        );
        eprintln!("skipping: no user namespaces: {}", stderr(&probe));
        return None;
    }
    let tag = unique();
    let mut script = String::new();
    for (i, step) in steps.iter().enumerate() {
        let words: Vec<String> = std::iter::once(bin("ra-signer").display().to_string())
            .chain(step.iter().cloned())
            .map(|w| sh_word(&w))
            .collect();
        let base = dir.join(format!("keyring-{tag}-{i}"));
        script.push_str(&format!(
            "{} </dev/null >{} 2>{}; echo $? >{}\n",
            words.join(" "),
            sh_word(&format!("{}.out", base.display())),
            sh_word(&format!("{}.err", base.display())),
            sh_word(&format!("{}.rc", base.display())),
        ));
    }
    let out = run(std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "sh", "-c", &script])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .stdin(std::process::Stdio::null()));
    assert_exit(&out, 0);
    Some(
        (0..steps.len())
            .map(|i| {
                use std::os::unix::process::ExitStatusExt;
                let base = dir.join(format!("keyring-{tag}-{i}"));
                let read = |ext: &str| std::fs::read(base.with_extension(ext)).expect("output");
                let code: i32 = String::from_utf8_lossy(&read("rc"))
                    .trim()
                    .parse()
                    .expect("exit code");
                std::process::Output {
                    status: std::process::ExitStatus::from_raw(code << 8),
                    stdout: read("out"),
                    stderr: read("err"),
                }
            })
            .collect(),
    )
}

/// `credential-process`'s arguments for `leaf` at `w`'s emulator, then `extra`.
fn process_args(w: &World, leaf: &Leaf, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["credential-process".to_owned()];
    args.extend(leaf.file_args());
    args.extend(w.emulator.session_args());
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// The `cache clear` arguments of `leaf`'s entry.
fn clear_args(w: &World, leaf: &Leaf, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["cache".to_owned(), "clear".to_owned()];
    args.extend(leaf.file_args());
    args.extend(w.emulator.session_args());
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn cache_list_shows_roles_expiry_and_fingerprints_never_secrets() {
    let w = World::new(&[]);
    let a = w.leaf("cache-list-a", KeyKind::P256);
    let b = w.leaf("cache-list-b", KeyKind::Rsa2048);
    let Some(out) = in_own_keyring(
        w.dir.path(),
        &[
            words(&["cache", "list"]),
            process_args(&w, &a, &["--cache", "--debug"]),
            process_args(&w, &b, &["--cache", "--session-duration", "900"]),
            words(&["cache", "list"]),
            words(&["cache", "list", "--format", "json"]),
        ],
    ) else {
        return;
    };
    assert_exit(&out[0], 0);
    assert_eq!(
        stdout(&out[0]),
        "no cached credentials\n",
        "a keyring of its own"
    );
    if no_keyring(&out[1]) {
        return;
    }
    let creds_a = assert_process_json(&out[1]);
    let creds_b = assert_process_json(&out[2]);
    let fingerprint = |leaf: &Leaf| {
        let cert = ra_signer::cert::Cert::first_from_file(&leaf.cert_path).expect("cert");
        format!("sha256:{}", cert.sha256_hex())
    };
    // Soonest expiry first: b's 900 s session, then a's hour.
    assert_exit(&out[3], 0);
    let text = stdout(&out[3]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    // The listing runs within a second or a minute of the signature.
    for (line, creds, leaf, lefts) in [
        (lines[0], &creds_b, &b, ["(in 15m)", "(in 14m)"]),
        (lines[1], &creds_a, &a, ["(in 1h00m)", "(in 59m)"]),
    ] {
        let expiration = creds["Expiration"].as_str().expect("expiration");
        assert!(
            lefts
                .iter()
                .any(|left| line
                    == format!("{ROLE_ARN}  {expiration} {left}  {}", fingerprint(leaf))),
            "{text}"
        );
    }
    assert_exit(&out[4], 0);
    let json: serde_json::Value = serde_json::from_slice(&out[4].stdout).expect("json");
    let list = json.as_array().expect("an array");
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["roleArn"], ROLE_ARN);
    assert_eq!(list[1]["expiration"], creds_a["Expiration"]);
    assert_eq!(list[1]["identity"], fingerprint(&a));
    assert!(
        list[1]["expiresInSeconds"]
            .as_u64()
            .is_some_and(|s| s > 3500)
    );
    assert!(
        list[0]["entry"]
            .as_str()
            .is_some_and(|e| e.starts_with("ra-signer:"))
    );
    for listing in [&out[3], &out[4]] {
        let shown = format!("{}{}", stdout(listing), stderr(listing));
        for creds in [&creds_a, &creds_b] {
            for secret in ["SecretAccessKey", "SessionToken"] {
                let value = creds[secret].as_str().expect("secret");
                assert!(!shown.contains(value), "{secret} in `cache list`: {shown}");
            }
        }
    }
}

#[test]
fn cache_clear_removes_one_entry_or_all() {
    let w = World::new(&[]);
    let a = w.leaf("cache-clear-a", KeyKind::P256);
    let b = w.leaf("cache-clear-b", KeyKind::P256);
    let Some(out) = in_own_keyring(
        w.dir.path(),
        &[
            process_args(&w, &a, &["--cache", "--debug"]),
            process_args(&w, &b, &["--cache"]),
            clear_args(&w, &a, &[]),
            clear_args(&w, &a, &[]),
            words(&["cache", "list"]),
            process_args(&w, &a, &["--cache"]),
            process_args(&w, &b, &["--cache"]),
            words(&["cache", "clear", "--all"]),
            words(&["cache", "list"]),
            words(&["cache", "clear"]),
            clear_args(&w, &a, &["--all"]),
        ],
    ) else {
        return;
    };
    if no_keyring(&out[0]) {
        return;
    }
    let first_a = assert_process_json(&out[0]);
    let first_b = assert_process_json(&out[1]);
    assert_exit(&out[2], 0);
    assert_eq!(stdout(&out[2]), "removed 1 cache entry\n");
    assert_eq!(stdout(&out[3]), "removed 0 cache entries\n", "already gone");
    assert_eq!(stdout(&out[4]).lines().count(), 1, "b's entry stays");
    // a signs again; b is still a hit.
    assert_ne!(
        assert_process_json(&out[5])["AccessKeyId"],
        first_a["AccessKeyId"]
    );
    assert_eq!(assert_process_json(&out[6]), first_b);
    assert_eq!(w.emulator.stats()["issued"], 3);
    assert_eq!(stdout(&out[7]), "removed 2 cache entries\n");
    assert_eq!(stdout(&out[8]), "no cached credentials\n");
    // Neither an entry nor --all, and both: usage errors.
    assert_exit(&out[9], 2);
    assert!(stderr(&out[9]).contains("or --all"), "{}", stderr(&out[9]));
    assert_exit(&out[10], 2);
    assert!(
        stderr(&out[10]).contains("has no meaning with it"),
        "{}",
        stderr(&out[10])
    );
}

#[test]
fn the_identity_of_the_config_file_names_the_entry_to_clear() {
    let w = World::new(&[]);
    let a = w.leaf("cache-identity", KeyKind::P256);
    crate::config_file::write_default_config(
        w.dir.path(),
        &crate::config_file::file_identity("a", &a, &w.emulator, ""),
    );
    let Some(out) = in_own_keyring(
        w.dir.path(),
        &[
            words(&["credential-process", "--identity", "a", "--cache"]),
            words(&["cache", "list"]),
            words(&["cache", "clear", "--identity", "a"]),
            words(&["cache", "list"]),
            words(&["cache", "clear", "--all", "--identity", "a"]),
        ],
    ) else {
        return;
    };
    if no_keyring(&out[0]) {
        return;
    }
    assert_process_json(&out[0]);
    assert_eq!(stdout(&out[1]).lines().count(), 1, "{}", stdout(&out[1]));
    assert_exit(&out[2], 0);
    assert_eq!(stdout(&out[2]), "removed 1 cache entry\n");
    assert_eq!(stdout(&out[3]), "no cached credentials\n");
    assert_exit(&out[4], 2);
    assert!(
        stderr(&out[4]).contains("--identity has no meaning with it"),
        "{}",
        stderr(&out[4])
    );
}

/// Runs its arguments under a seccomp filter that denies the keyring calls with EPERM, as
/// Docker's default profile does (libseccomp through ctypes).
const WITHOUT_KEYRING: &str = r#"
import ctypes, os, sys
lib = ctypes.CDLL("libseccomp.so.2")
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
ctx = lib.seccomp_init(0x7FFF0000)  # SCMP_ACT_ALLOW
for name in (b"keyctl", b"add_key", b"request_key"):
    nr = lib.seccomp_syscall_resolve_name(name)
    assert lib.seccomp_rule_add(ctx, 0x00050000 | 1, nr, 0) == 0  # SCMP_ACT_ERRNO(EPERM)
assert lib.seccomp_load(ctx) == 0
os.execv(sys.argv[1], sys.argv[1:])
"#;

#[test]
fn without_a_keyring_list_and_clear_fail_with_the_reason_cache_notes() {
    let w = World::new(&[]);
    let leaf = w.leaf("cache-no-keyring", KeyKind::P256);
    let denied = |args: &[String]| {
        run(std::process::Command::new(python())
            .arg("-c")
            .arg(WITHOUT_KEYRING)
            .arg(bin("ra-signer"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", w.dir.path())
            .stdin(std::process::Stdio::null()))
    };
    // --cache falls back to signing, and --debug says why.
    let out = denied(&process_args(&w, &leaf, &["--cache", "--debug"]));
    assert_process_json(&out);
    let reason = "the kernel keyring is not available (PermissionDenied)";
    assert!(
        stderr(&out).contains(&format!("cache: {reason}; not caching")),
        "{}",
        stderr(&out)
    );
    // cache list and clear have nothing to fall back to: the same reason, as an error.
    for args in [
        words(&["cache", "list"]),
        words(&["cache", "list", "--format", "json"]),
        words(&["cache", "clear", "--all"]),
        clear_args(&w, &leaf, &[]),
    ] {
        let out = denied(&args);
        assert_exit(&out, 1);
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!("ra-signer: error: {reason}\nhint: ")),
            "{args:?}: {err}"
        );
        assert!(err.contains("seccomp"), "{err}");
        assert!(stdout(&out).is_empty());
    }
}
