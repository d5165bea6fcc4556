//! The config file of named identities: `--identity NAME` (and `--config FILE`) fill every
//! flag not given, for every command that signs; real AWS clients run a one-flag
//! `credential_process` line against SoftHSM2, swtpm and file keys; a bad file is a usage
//! error naming its line, with nothing on stdout and no secret echoed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;
#[cfg(feature = "pkcs11")]
use crate::pkcs11::{Hsm, PIN, fixture as hsm_fixture};
#[cfg(feature = "pkcs11")]
use crate::real_clients::{aws_client, aws_config};
use crate::serve::{Daemon, imds_credentials, role_name};
#[cfg(feature = "tpm")]
use crate::tpm::TpmWorld;

/// The emulator's session settings as config file lines.
fn session_lines(emulator: &Emulator) -> String {
    let args = emulator.session_args();
    args.chunks(2)
        .map(|pair| {
            let key = pair[0].trim_start_matches("--");
            format!("{key} = {}\n", toml_string(&pair[1]))
        })
        .collect()
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Writes `text` as the default config file under `home` (`~/.config/ra-signer`), mode
/// 0600, and returns its path.
pub(crate) fn write_default_config(home: &Path, text: &str) -> PathBuf {
    let dir = home.join(".config/ra-signer");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("config.toml");
    write_config(&path, text)
}

fn write_config(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).expect("write config");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path.to_path_buf()
}

/// One identity of file keys with the emulator's settings and `extra` lines.
pub(crate) fn file_identity(name: &str, leaf: &Leaf, emulator: &Emulator, extra: &str) -> String {
    format!(
        "[identity.{name}]\ncertificate = {}\nprivate-key = {}\n{}{extra}",
        toml_string(&leaf.cert_path.display().to_string()),
        toml_string(&leaf.key_path.display().to_string()),
        session_lines(emulator)
    )
}

/// Seconds from now until the `Expiration` of credential_process JSON.
fn seconds_left(o: &Output) -> i64 {
    let v = assert_process_json(o);
    let expiration = v["Expiration"].as_str().expect("Expiration");
    let out = std::process::Command::new("date")
        .args(["-u", "-d", expiration, "+%s"])
        .output()
        .expect("date");
    let then: i64 = stdout(&out).trim().parse().expect("epoch");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    then - now
}

#[cfg(feature = "pkcs11")]
#[test]
fn aws_cli_and_boto3_run_a_one_flag_line_with_a_softhsm2_key() {
    let hsm = Hsm::new();
    let emu = hsm.emulator();
    let home = hsm.path();
    // The PIN is read from a file named relative to the config file.
    let config_dir = home.join(".config/ra-signer");
    std::fs::create_dir_all(&config_dir).expect("mkdir");
    std::fs::write(config_dir.join("pin"), format!("{PIN}\n")).expect("pin");
    write_default_config(
        home,
        &format!(
            "# the whole of the credential_process line is --identity onprem\n[identity.onprem]\npkcs11-uri = \"pkcs11:token=ra-test;object=p256\"\npkcs11-lib = {}\npkcs11-pin-file = \"pin\"\n{}",
            toml_string(&hsm_fixture().module.display().to_string()),
            session_lines(&emu)
        ),
    );
    let config = aws_config(home, &["--identity".into(), "onprem".into()]);
    let text = std::fs::read_to_string(&config).expect("aws config");
    assert!(
        text.contains("credential-process --identity onprem\n"),
        "one flag: {text}"
    );

    let out = aws_client("aws", home, &config)
        .env("SOFTHSM2_CONF", hsm.conf())
        .args(["configure", "list", "--profile", "ra"])
        .output()
        .expect("run aws");
    assert_exit(&out, 0);
    let listing = stdout(&out);
    assert!(
        listing
            .lines()
            .any(|l| l.trim_start().starts_with("access_key") && l.contains("custom-process")),
        "{listing}"
    );
    let got =
        crate::real_clients::boto3_credentials(home, &config, &[("SOFTHSM2_CONF", hsm.conf())]);
    assert_issued_key(&got);
    assert_eq!(
        emu.stats()["issued"],
        2,
        "the AWS CLI and boto3 each got credentials from the token's key"
    );
}

#[cfg(feature = "tpm")]
#[test]
fn a_tpm_key_file_and_its_tcti_from_the_file() {
    let w = TpmWorld::new();
    let fx = swtpm::fixture();
    let config = w.dir.path().join("ra.toml");
    write_config(
        &config,
        &format!(
            "[identity.tpm]\ncertificate = {}\nintermediates = {}\nprivate-key = {}\ntpm-tcti = {}\n{}",
            toml_string(&fx.files.join("ossl-p256.pem").display().to_string()),
            toml_string(&fx.files.join("ca/int.pem").display().to_string()),
            toml_string(&fx.files.join("ossl-p256.key").display().to_string()),
            toml_string(&w.tpm.tcti()),
            session_lines(&w.emulator)
        ),
    );
    let mut cmd = ra_signer(w.dir.path());
    cmd.args(["credential-process", "--config"])
        .arg(&config)
        .args(["--identity", "tpm"]);
    let out = run(&mut cmd);
    assert_issued_key(&assert_process_json(&out));
    assert_eq!(w.emulator.stats()["issued"], 1);
}

#[test]
fn flags_override_the_file_and_the_file_overrides_environment_and_defaults() {
    let w = World::new(&["--max-duration", "7200"]);
    let leaf = w.leaf("layers", KeyKind::P256);
    let home = w.dir.path();
    write_default_config(
        home,
        &file_identity("a", &leaf, &w.emulator, "session-duration = 900\n"),
    );
    let with = |extra: &[&str], env: &[(&str, &str)]| {
        let mut cmd = ra_signer(home);
        cmd.args(["credential-process", "--identity", "a"])
            .args(extra);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd)
    };
    let left = seconds_left(&with(&[], &[]));
    assert!((850..=900).contains(&left), "the file's 900 s: {left}");
    let left = seconds_left(&with(&["--session-duration", "1800"], &[]));
    assert!((1750..=1800).contains(&left), "the flag's 1800 s: {left}");

    // The file names the emulator's CA: an $AWS_CA_BUNDLE meant for other tools does not
    // replace it, and --ca-bundle does.
    let out = with(&[], &[("AWS_CA_BUNDLE", "/nonexistent/ca.pem")]);
    assert_process_json(&out);
    let out = with(&["--ca-bundle", "/nonexistent/ca.pem"], &[]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("/nonexistent/ca.pem"),
        "{}",
        stderr(&out)
    );

    // Without session-duration in the file, the built-in default.
    write_default_config(home, &file_identity("a", &leaf, &w.emulator, ""));
    let left = seconds_left(&with(&[], &[]));
    assert!((3550..=3600).contains(&left), "the default 3600 s: {left}");
}

#[test]
fn every_signing_command_takes_the_identity() {
    let w = World::new(&[]);
    let leaf = w.leaf("everywhere", KeyKind::P256);
    let home = w.dir.path();
    write_default_config(home, &file_identity("a", &leaf, &w.emulator, ""));
    let id = ["--identity", "a"];

    let mut cmd = ra_signer(home);
    cmd.arg("sign-string").args(id).args(["--format", "text"]);
    let out = run(&mut cmd);
    assert_exit(&out, 0);
    assert!(!stdout(&out).trim().is_empty());

    let mut cmd = ra_signer(home);
    cmd.arg("read-certificate-data").args(id);
    let out = run(&mut cmd);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("certificateData"), "{}", stdout(&out));

    let credentials = home.join("aws-credentials");
    let mut cmd = ra_signer(home);
    cmd.env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .args(["update", "--once", "--profile", "fromfile"])
        .args(id);
    let out = run(&mut cmd);
    assert_exit(&out, 0);
    let written = std::fs::read_to_string(&credentials).expect("credentials file");
    assert!(written.contains("[fromfile]"), "{written}");

    let mut cmd = ra_signer(home);
    cmd.arg("exec").args(id).args([
        "--",
        "sh",
        "-c",
        "test -n \"$AWS_SESSION_TOKEN\" && echo has-credentials",
    ]);
    let out = run(&mut cmd);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out).trim(), "has-credentials");

    let args: Vec<String> = ["serve", "--identity", "a", "--port", "0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut daemon = Daemon::start(home, &args, &[]);
    let (status, body) = imds_credentials(&daemon.url(), role_name());
    assert_eq!(status, 200, "{body}");
    assert_issued_key(&body);
    daemon.terminate(std::time::Duration::from_secs(10));

    let mut cmd = ra_signer(home);
    cmd.arg("doctor").args(id);
    let out = run(&mut cmd);
    assert_exit(&out, 0);
    assert_eq!(
        w.emulator.stats()["issued"],
        3,
        "update, exec and serve each made one CreateSession"
    );
}

#[test]
fn doctor_shows_where_each_value_came_from() {
    let w = World::new(&[]);
    let leaf = w.leaf("origins", KeyKind::P256);
    let home = w.dir.path();
    let config = write_default_config(home, &file_identity("a", &leaf, &w.emulator, ""));
    let mut cmd = ra_signer(home);
    cmd.args(["doctor", "--identity", "a", "--format", "json"])
        .args(["--role-arn", "arn:aws:iam::123456789012:role/Other"])
        .env("AWS_CA_BUNDLE", "/unused/ca.pem");
    let out = run(&mut cmd);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let check = &report["checks"][0];
    assert_eq!(check["name"], "config", "{report}");
    let detail = check["detail"].as_str().expect("detail");
    for part in [
        &format!("identity a of {}", config.display()),
        "certificate (line 2)",
        "private-key (line 3)",
        "trust-anchor-arn (line 4)",
        "ca-bundle (line 8)",
        "from flags: --role-arn",
        "defaults: session-duration 3600, connect-timeout 5, request-timeout 20, max-attempts 3",
    ] {
        assert!(detail.contains(part), "{part:?} in {detail}");
    }
    assert!(
        !detail.contains("AWS_CA_BUNDLE"),
        "the file's ca-bundle is used, not the environment's: {detail}"
    );
}

/// Runs `credential-process --config FILE --identity a` and checks a usage failure: exit 2,
/// nothing on stdout, one line on stderr holding every `needles`, none of `secrets`.
fn refused(home: &Path, config: &Path, needles: &[&str], secrets: &[&str]) {
    let mut cmd = ra_signer(home);
    cmd.args(["credential-process", "--config"])
        .arg(config)
        .args(["--identity", "a"]);
    let out = run(&mut cmd);
    assert_exit(&out, 2);
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let err = stderr(&out);
    let first = err.lines().next().unwrap_or("");
    for n in needles {
        assert!(first.contains(n), "{n:?} in {err}");
    }
    for s in secrets {
        assert!(!err.contains(s), "secret {s:?} echoed: {err}");
    }
}

#[test]
fn bad_config_files_are_usage_errors_that_name_the_line_and_echo_no_secret() {
    let w = World::new(&[]);
    let leaf = w.leaf("bad", KeyKind::P256);
    let home = w.dir.path();
    let config = home.join("config.toml");
    let good = file_identity("a", &leaf, &w.emulator, "");
    let cases: Vec<(String, Vec<&str>, Vec<&str>)> = vec![
        (
            format!("{good}role-arm = \"typo\"\n"),
            vec!["line 9", "role-arm"],
            vec![],
        ),
        (
            format!("{good}pkcs11-pin = \"s3cr3t-pin\"\n"),
            vec!["line 9", "pkcs11-pin", "never holds"],
            vec!["s3cr3t-pin"],
        ),
        (
            format!("{good}tpm-key-password = \"hunter2-pass\"\n"),
            vec!["line 9", "tpm-key-password"],
            vec!["hunter2-pass"],
        ),
        (
            good.replace(
                &format!(
                    "private-key = {}",
                    toml_string(&leaf.key_path.display().to_string())
                ),
                "private-key = \"pkcs11:object=k?pin-value=s3cr3t-pin\"",
            ),
            vec!["line 3", "pin-value"],
            vec!["s3cr3t-pin"],
        ),
        (
            good.replace(
                &format!(
                    "private-key = {}",
                    toml_string(&leaf.key_path.display().to_string())
                ),
                &format!(
                    "private-key = {}",
                    toml_string(&std::fs::read_to_string(&leaf.key_path).expect("key"))
                ),
            ),
            vec!["line 3", "PEM text"],
            vec!["MII", "-----BEGIN PRIVATE KEY-----"],
        ),
        (
            format!("{good}session-duration = \"an hour\"\n"),
            vec!["line 9", "session-duration"],
            vec![],
        ),
        (
            format!("{good}no-verify-ssl = true\n"),
            vec!["line 9", "no-verify-ssl"],
            vec![],
        ),
        (
            "[identity.b]\nregion = \"us-east-1\"\n".to_owned(),
            vec!["no identity \"a\"", "it has b"],
            vec![],
        ),
        (format!("{good}[identity.b\n"), vec!["line 9"], vec![]),
        (
            format!("{good}max-attempts = 0\n"),
            vec!["max-attempts 0"],
            vec![],
        ),
    ];
    for (text, needles, secrets) in &cases {
        write_config(&config, text);
        refused(home, &config, needles, secrets);
    }
    assert_eq!(w.emulator.stats()["issued"], 0, "nothing was sent");

    // Files no one should trust, or that are no config file at all.
    write_config(&config, &good);
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o620)).expect("chmod");
    refused(
        home,
        &config,
        &["may be written by other users", "620"],
        &[],
    );
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    if rustix_uid_is_root() {
        let status = std::process::Command::new("chown")
            .args(["65534"])
            .arg(&config)
            .status()
            .expect("chown");
        assert!(status.success());
        refused(home, &config, &["belongs to user 65534"], &[]);
    } else {
        eprintln!("not root: the other-owner case needs chown, skipped");
    }
    let big = home.join("big.toml");
    write_config(&big, &format!("{good}#{}\n", "x".repeat(300 * 1024)));
    refused(home, &big, &["more than the 262144"], &[]);
    let binary = home.join("binary.toml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x41]).expect("write");
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    refused(home, &binary, &["not UTF-8"], &[]);
    let fifo = home.join("fifo.toml");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    refused(home, &fifo, &["cannot read the config file"], &[]);
    refused(
        home,
        &home.join("absent.toml"),
        &["cannot read the config file"],
        &[],
    );

    // --config alone chooses no identity; an identity without the ARNs names what is missing.
    let mut cmd = ra_signer(home);
    cmd.args(["credential-process", "--config"]).arg(&config);
    let out = run(&mut cmd);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--identity"), "{}", stderr(&out));
    let _ = std::fs::remove_file(&config);
    write_config(&config, "[identity.a]\nregion = \"us-east-1\"\n");
    refused(home, &config, &["no --trust-anchor-arn"], &[]);
    assert_eq!(w.emulator.stats()["issued"], 0, "nothing was sent");
}

fn rustix_uid_is_root() -> bool {
    let out = std::process::Command::new("id")
        .arg("-u")
        .output()
        .expect("id");
    stdout(&out).trim() == "0"
}
