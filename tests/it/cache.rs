//! `credential-process --cache`: N runs (and N AWS CLI commands) make one CreateSession,
//! a hit needs no key, cached credentials close to expiry are bypassed, and a change of
//! session options misses. The cache is the kernel user keyring: each test's fresh
//! certificate keys its own entries.

use crate::common::*;

/// Runs `credential-process --cache --debug` once. Without a usable kernel keyring the test
/// fails, unless RA_SIGNER_TEST_ALLOW_NO_KEYRING=1 says this machine has none (then `None`:
/// the test is skipped, saying so).
fn keyring_works(w: &World, leaf: &Leaf) -> Option<serde_json::Value> {
    let out = w.credential_process(leaf, &["--cache", "--debug"]);
    let json = assert_process_json(&out);
    if stderr(&out).contains("keyring is not available") {
        assert!(
            std::env::var_os("RA_SIGNER_TEST_ALLOW_NO_KEYRING").is_some_and(|v| v == "1"),
            "the kernel keyring is not usable here (set RA_SIGNER_TEST_ALLOW_NO_KEYRING=1 to skip): {}",
            stderr(&out)
        );
        eprintln!("skipping: {}", stderr(&out));
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
