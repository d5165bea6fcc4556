//! Real AWS clients against `ra-signer` and `ra-emulator`: boto3 and the AWS CLI reading a
//! profile whose `credential_process` runs `ra-signer`, and the independent Python signer
//! `iam-rolesanywhere-session` accepted by the emulator.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::*;

/// Writes an AWS config file with a `credential_process` profile running `ra-signer` with
/// `args`, and returns its path.
pub(crate) fn aws_config(dir: &Path, args: &[String]) -> std::path::PathBuf {
    let quoted: Vec<String> = std::iter::once(bin("ra-signer").display().to_string())
        .chain(std::iter::once("credential-process".to_owned()))
        .chain(args.iter().cloned())
        .map(|a| {
            if a.contains([' ', '"', '\'', '=']) {
                format!("\"{}\"", a.replace('"', "\\\""))
            } else {
                a
            }
        })
        .collect();
    let config = dir.join("aws-config");
    std::fs::write(
        &config,
        format!(
            "[profile ra]\ncredential_process = {}\nregion = us-east-1\n",
            quoted.join(" ")
        ),
    )
    .expect("write config");
    config
}

/// A command for an AWS client (`program` in the test virtualenv) reading `config` as its
/// only configuration: scrubbed environment, HOME in `dir`, no shared credentials file.
pub(crate) fn aws_client(program: &str, dir: &Path, config: &Path) -> Command {
    let mut cmd = Command::new(python().with_file_name(program));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("AWS_CONFIG_FILE", config)
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"));
    cmd
}

/// `aws configure list --profile ra`: awscli v1 (PyPI) resolves the profile's credentials,
/// running its credential_process. Returns the output after checking the exit code.
pub(crate) fn aws_configure_list(dir: &Path, config: &Path) -> Output {
    let out = aws_client("aws", dir, config)
        .args(["configure", "list", "--profile", "ra"])
        .output()
        .expect("run aws");
    assert_exit(&out, 0);
    out
}

/// Runs boto3 with `config` and profile `ra`, plus `env`; returns the credentials it got.
pub(crate) fn boto3_credentials(
    dir: &Path,
    config: &Path,
    env: &[(&str, &Path)],
) -> serde_json::Value {
    let script = r#"
import json, boto3
s = boto3.Session(profile_name="ra")
c = s.get_credentials().get_frozen_credentials()
print(json.dumps({"AccessKeyId": c.access_key, "SecretAccessKey": c.secret_key, "SessionToken": c.token}))
"#;
    let mut cmd = aws_client("python", dir, config);
    cmd.arg("-c").arg(script);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run python");
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).expect("boto3 output")
}

#[test]
fn boto3_gets_credentials_through_credential_process() {
    let w = World::new(&[]);
    let leaf = w.leaf("boto3", KeyKind::P256);
    let mut args = leaf.file_args();
    args.extend(w.emulator.session_args());
    let config = aws_config(w.dir.path(), &args);
    let got = boto3_credentials(w.dir.path(), &config, &[]);
    assert_issued_key(&got);
    assert!(
        got["SecretAccessKey"]
            .as_str()
            .is_some_and(|k| k.len() >= 40)
    );
    assert_eq!(
        w.emulator.stats()["issued"],
        1,
        "boto3's credentials came from the emulator"
    );
}

#[test]
fn aws_cli_runs_credential_process() {
    let w = World::new(&[]);
    let leaf = w.leaf("awscli", KeyKind::Rsa2048);
    let mut args = leaf.file_args();
    args.extend(w.emulator.session_args());
    let config = aws_config(w.dir.path(), &args);
    let out = aws_configure_list(w.dir.path(), &config);
    let text = stdout(&out);
    let access_key = text
        .lines()
        .find(|l| l.trim_start().starts_with("access_key"))
        .unwrap_or_else(|| panic!("no access_key line: {text}"));
    assert!(access_key.contains("custom-process"), "{access_key}");
    assert!(
        access_key.contains("****"),
        "the CLI masks the key it got: {access_key}"
    );
    assert_eq!(w.emulator.stats()["issued"], 1);
}

#[test]
fn emulator_accepts_the_independent_python_signer() {
    let w = World::new(&[]);
    for kind in [KeyKind::Rsa2048, KeyKind::P256] {
        let leaf = w.leaf(&format!("py-{kind:?}"), kind);
        let script = r#"
import sys, json
from iam_rolesanywhere_session import IAMRolesAnywhereSession
cert, key, ta, profile, role, endpoint, ca = sys.argv[1:8]
s = IAMRolesAnywhereSession(
    trust_anchor_arn=ta, profile_arn=profile, role_arn=role,
    certificate=cert, private_key=key, region="us-east-1",
    endpoint=endpoint.split("://")[-1], verify=ca,
)
c = s.get_session().get_credentials().get_frozen_credentials()
print(json.dumps({"AccessKeyId": c.access_key}))
"#;
        let out = Command::new(python())
            .arg("-c")
            .arg(script)
            .arg(&leaf.cert_path)
            .arg(&leaf.key_path)
            .args([TRUST_ANCHOR_ARN, PROFILE_ARN, ROLE_ARN])
            .arg(&w.emulator.url)
            .arg(&w.emulator.tls_ca)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", w.dir.path())
            .output()
            .expect("run python");
        assert_exit(&out, 0);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_issued_key(&v);
    }
    assert_eq!(w.emulator.stats()["issued"], 2);
}
