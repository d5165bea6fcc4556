//! `ra-emulator --config` as an offline Roles Anywhere: a role whose trust policy admits
//! only CN `backup-*` in OU `storage` issued by "Issuing CA 2". The real `ra-signer`
//! signs with a SoftHSM2 key (two certificates for the same token key: an allowed and a
//! refused machine); boto3 runs it through `credential_process` and sees the same.

#![cfg(feature = "pkcs11")]

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use crate::common::*;
use crate::pkcs11::{Hsm, cert_file};
use crate::real_clients::{aws_client, aws_config, boto3_credentials};

const TOKEN_KEY: &str = "pkcs11:token=ra-test;object=p256";

/// The account: one anchor (the root), one profile, the role with the backup-only policy.
fn account(root: &Path) -> Value {
    json!({
        "trustAnchors": [{
            "arn": TRUST_ANCHOR_ARN, "name": "corp-root", "enabled": true,
            "source": {"sourceType": "CERTIFICATE_BUNDLE",
                       "sourceData": {"x509CertificateData": std::fs::read_to_string(root).expect("root pem")}}
        }],
        "profiles": [{
            "arn": PROFILE_ARN, "name": "backup", "enabled": true, "roleArns": [ROLE_ARN],
            "durationSeconds": 3600
        }],
        "roles": [{"arn": ROLE_ARN, "trustPolicy": {
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "BackupHosts",
                "Effect": "Allow",
                "Principal": {"Service": "rolesanywhere.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
                "Condition": {
                    "StringLike": {"aws:PrincipalTag/x509Subject/CN": "backup-*"},
                    "StringEquals": {
                        "aws:PrincipalTag/x509Subject/OU": "storage",
                        "aws:PrincipalTag/x509Issuer/CN": "Issuing CA 2"
                    },
                    "ArnEquals": {"aws:SourceArn": TRUST_ANCHOR_ARN}
                }
            }]
        }}]
    })
}

/// A certificate for the token's P-256 key, with `subject`, issued by `ca` (files from
/// `Ca`: `<cn>.pem` and `<cn>.key.pem`), via the openssl CLI.
fn issue_for_token_key(dir: &Path, ca: &Ca, subject: &str, name: &str, serial: &str) -> PathBuf {
    let public = dir.join("token-p256.pub.pem");
    if !public.exists() {
        let out = openssl(&[
            "x509",
            "-in",
            cert_file("p256").to_str().expect("utf-8"),
            "-pubkey",
            "-noout",
        ]);
        std::fs::write(&public, &out.stdout).expect("public key");
    }
    let ext = dir.join("leaf.ext");
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .expect("ext");
    let ca_key = ca.cert_path.with_file_name(
        ca.cert_path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .replace(".pem", ".key.pem"),
    );
    let out = dir.join(format!("{name}.pem"));
    let path = |p: &Path| p.to_str().expect("utf-8").to_owned();
    openssl(&[
        "x509",
        "-new",
        "-force_pubkey",
        &path(&public),
        "-subj",
        subject,
        "-CA",
        &path(&ca.cert_path),
        "-CAkey",
        &path(&ca_key),
        "-set_serial",
        serial,
        "-days",
        "30",
        "-sha256",
        "-extfile",
        &path(&ext),
        "-out",
        &path(&out),
    ]);
    out
}

struct Setup {
    hsm: Hsm,
    emulator: Emulator,
    ca2: PathBuf,
    backup: PathBuf,
    web: PathBuf,
}

fn setup() -> Setup {
    let hsm = Hsm::new();
    let dir = hsm.path().to_path_buf();
    let root = Ca::root(&dir, "Example Root");
    let ca2 = root.intermediate(&dir, "Issuing CA 2");
    let backup = issue_for_token_key(
        &dir,
        &ca2,
        "/OU=storage/CN=backup-01",
        "backup-01",
        "0x5eed01",
    );
    let web = issue_for_token_key(&dir, &ca2, "/OU=storage/CN=web-01", "web-01", "0x5eed02");
    let config = dir.join("account.json");
    std::fs::write(&config, account(&root.cert_path).to_string()).expect("config");
    let emulator = Emulator::start_config(&dir, &config);
    Setup {
        hsm,
        emulator,
        ca2: ca2.cert_path,
        backup,
        web,
    }
}

/// The `credential-process` flags for the token key with certificate `cert`.
fn args(s: &Setup, cert: &Path) -> Vec<String> {
    let mut a = vec![
        "--pkcs11-uri".to_owned(),
        TOKEN_KEY.to_owned(),
        "--certificate".to_owned(),
        cert.display().to_string(),
        "--intermediates".to_owned(),
        s.ca2.display().to_string(),
    ];
    a.extend(s.emulator.session_args());
    a
}

fn credential_process(s: &Setup, cert: &Path) -> Output {
    let mut cmd = s.hsm.with_pin("credential-process");
    run(cmd.args(args(s, cert)))
}

fn decisions(s: &Setup) -> Vec<Value> {
    std::fs::read_to_string(&s.emulator.log)
        .expect("log")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("decision").is_some())
        .collect()
}

#[test]
fn the_trust_policy_admits_backup_hosts_and_refuses_the_others() {
    let s = setup();

    let ok = credential_process(&s, &s.backup);
    assert_process_json(&ok);

    let refused = credential_process(&s, &s.web);
    assert_exit(&refused, 4);
    let err = stderr(&refused);
    assert!(
        err.contains(&format!("Unable to assume role for {ROLE_ARN}")),
        "{err}"
    );
    assert!(err.contains("AccessDeniedException"), "{err}");
    assert!(
        err.contains("hint: the role's trust policy refused this certificate")
            && err.contains("CN=web-01"),
        "{err}"
    );

    let log = decisions(&s);
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0]["decision"], "issued");
    assert_eq!(log[0]["allowed_by"], "Statement[0] (Sid \"BackupHosts\")");
    assert_eq!(log[0]["session_tags"]["x509Subject/CN"], "backup-01");
    assert_eq!(log[0]["session_tags"]["x509Issuer/CN"], "Issuing CA 2");
    assert_eq!(log[1]["decision"], "rejected");
    assert_eq!(log[1]["check"], "trust-policy");
    let detail = log[1]["detail"].as_str().expect("detail");
    assert!(
        detail.contains("StringLike aws:PrincipalTag/x509Subject/CN [\"backup-*\"]: the request has [\"web-01\"]"),
        "{detail}"
    );
    assert_eq!(s.emulator.stats()["issued"], 1);
}

#[test]
fn boto3_sees_the_same_decision_through_credential_process() {
    let s = setup();
    let dir = s.hsm.path();
    let conf = dir.join("softhsm2.conf");
    // The PIN from a file: boto3 runs ra-signer without our environment's PIN variable.
    let pin_file = dir.join("pin");
    std::fs::write(&pin_file, "1234\n").expect("pin");
    let with_pin = |cert: &Path| {
        let mut a = args(&s, cert);
        a[1] = format!("{TOKEN_KEY}?pin-source=file:{}", pin_file.display());
        a.extend([
            "--pkcs11-lib".to_owned(),
            crate::pkcs11::fixture().module.display().to_string(),
        ]);
        a
    };

    let allowed = aws_config(dir, &with_pin(&s.backup));
    let got = boto3_credentials(dir, &allowed, &[("SOFTHSM2_CONF", conf.as_path())]);
    assert_issued_key(&got);

    let refused = aws_config(dir, &with_pin(&s.web));
    let out = aws_client("python", dir, &refused)
        .arg("-c")
        .arg("import boto3; boto3.Session(profile_name='ra').get_credentials().get_frozen_credentials()")
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .expect("run python");
    assert!(!out.status.success(), "boto3 must fail: {}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("CredentialRetrievalError"), "{err}");
    assert!(
        err.contains(&format!("Unable to assume role for {ROLE_ARN}")),
        "{err}"
    );
    assert_eq!(s.emulator.stats()["issued"], 1);
    assert_eq!(s.emulator.stats()["rejected"], 1);
}

#[test]
fn a_bad_document_stops_the_emulator_with_its_json_path() {
    let dir = tempdir();
    let root = Ca::root(dir.path(), "Example Root");
    let mut doc = account(&root.cert_path);
    doc["roles"][0]["trustPolicy"]["Statement"][0]["Condition"]["DateGreaterThan"] =
        json!({"aws:CurrentTime": "2020-01-01T00:00:00Z"});
    let config = dir.path().join("bad.json");
    std::fs::write(&config, serde_json::to_string_pretty(&doc).expect("json")).expect("write");
    let out = run(std::process::Command::new(bin("ra-emulator"))
        .arg("--config")
        .arg(&config));
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("$.roles[0].trustPolicy.Statement[0].Condition.DateGreaterThan: unsupported condition operator \"DateGreaterThan\""),
        "{err}"
    );

    std::fs::write(
        &config,
        r#"{"trustAnchors": [{"arn": 7}], "profiles": [], "roles": []}"#,
    )
    .expect("write");
    let out = run(std::process::Command::new(bin("ra-emulator"))
        .arg("--config")
        .arg(&config));
    assert_exit(&out, 2);
    assert!(
        stderr(&out)
            .contains("$.trustAnchors[0].arn: invalid type: integer `7`, expected a string"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_disabled_profile_is_refused_with_its_hint() {
    let dir = tempdir();
    let root = Ca::root(dir.path(), "Example Root");
    let leaf = root.leaf(
        dir.path(),
        "backup-02",
        KeyKind::P256,
        &LeafOptions::default(),
    );
    let mut doc = account(&root.cert_path);
    doc["profiles"][0]["enabled"] = json!(false);
    let config = dir.path().join("account.json");
    std::fs::write(&config, doc.to_string()).expect("write");
    let emulator = Emulator::start_config(dir.path(), &config);
    let mut cmd = ra_signer(dir.path());
    let out = run(cmd
        .arg("credential-process")
        .args(leaf.file_args())
        .args(emulator.session_args()));
    assert_exit(&out, 4);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("Profile {PROFILE_ARN} is disabled")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "hint: profile {PROFILE_ARN} is disabled: enable it"
        )),
        "{err}"
    );
}
