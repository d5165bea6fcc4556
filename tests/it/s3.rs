//! The credentials ra-signer gets from the emulator work: the real AWS CLI v1 and boto3,
//! with a profile whose `credential_process` runs ra-signer, list the emulator's
//! `--s3-bucket`s through its S3 ListBuckets; requests that are tampered with, or signed
//! with credentials it never issued or that have expired, get S3's error codes.

use std::path::Path;

use crate::common::*;
use crate::real_clients::{aws_client, aws_config};

/// boto3 with static credentials (argv: url, CA, key id, secret, token or "", clock shift in
/// seconds), one attempt: prints `OK <bucket names>` or `<S3 error code>`. The shift moves
/// only botocore's signing clock, in step with a moved emulator clock.
const BOTO3_LIST: &str = r#"
import sys, datetime, boto3, botocore.auth
from botocore.config import Config
from botocore.exceptions import ClientError
url, ca, akid, secret, token, shift = sys.argv[1:7]
real = botocore.auth.get_current_datetime
botocore.auth.get_current_datetime = lambda: real() + datetime.timedelta(seconds=int(shift))
s3 = boto3.Session(aws_access_key_id=akid, aws_secret_access_key=secret,
                   aws_session_token=token or None, region_name="us-east-1").client(
    "s3", endpoint_url=url, verify=ca, config=Config(retries={"total_max_attempts": 1}))
try:
    r = s3.list_buckets()
    print("OK", " ".join(b["Name"] for b in r["Buckets"]), r["Owner"]["DisplayName"])
except ClientError as e:
    print(e.response["Error"]["Code"])
"#;

fn boto3_list(w: &World, akid: &str, secret: &str, token: &str, shift: i64) -> String {
    let out = aws_client("python", w.dir.path(), &w.dir.path().join("no-config"))
        .arg("-c")
        .arg(BOTO3_LIST)
        .arg(&w.emulator.url)
        .arg(&w.emulator.tls_ca)
        .args([akid, secret, token, &shift.to_string()])
        .output()
        .expect("run python");
    assert_exit(&out, 0);
    stdout(&out).trim().to_owned()
}

/// `secret` with its last character changed.
fn tampered(secret: &str) -> String {
    let mut s = secret.to_owned();
    let last = if s.ends_with('A') { "B" } else { "A" };
    s.pop();
    s.push_str(last);
    s
}

fn s3_log_lines(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .expect("log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .filter(|v: &serde_json::Value| v["event"] == "s3")
        .collect()
}

#[test]
fn aws_cli_and_boto3_list_buckets_with_credentials_from_ra_signer() {
    let w = World::new(&[
        "--s3-bucket",
        "ra-signer-demo",
        "--s3-bucket",
        "second.bucket",
    ]);
    let leaf = w.leaf("s3-client", KeyKind::P256);
    let mut args = leaf.file_args();
    args.extend(w.emulator.session_args());
    let config = aws_config(w.dir.path(), &args);

    let out = aws_client("aws", w.dir.path(), &config)
        .args([
            "s3",
            "ls",
            "--profile",
            "ra",
            "--endpoint-url",
            &w.emulator.url,
        ])
        .env("AWS_CA_BUNDLE", &w.emulator.tls_ca)
        .output()
        .expect("run aws");
    assert_exit(&out, 0);
    // `2026-12-02 14:45:34 ra-signer-demo`: the creation date, then the name.
    let listing = stdout(&out);
    let names: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(names, ["ra-signer-demo", "second.bucket"], "{listing}");

    let script = r#"
import json, boto3
s = boto3.Session(profile_name="ra")
r = s.client("s3").list_buckets()
c = s.get_credentials().get_frozen_credentials()
print(json.dumps({"names": [b["Name"] for b in r["Buckets"]], "owner": r["Owner"],
                  "secret": c.secret_key, "token": c.token}))
"#;
    let out = aws_client("python", w.dir.path(), &config)
        .arg("-c")
        .arg(script)
        .env("AWS_CA_BUNDLE", &w.emulator.tls_ca)
        .env("AWS_ENDPOINT_URL_S3", &w.emulator.url)
        .output()
        .expect("run python");
    assert_exit(&out, 0);
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("boto3 output");
    assert_eq!(
        got["names"],
        serde_json::json!(["ra-signer-demo", "second.bucket"])
    );
    assert_eq!(got["owner"]["DisplayName"], "123456789012");
    assert_eq!(got["owner"]["ID"].as_str().map(str::len), Some(64));

    let stats = w.emulator.stats();
    assert_eq!(stats["issued"], 2, "one CreateSession per client");
    assert_eq!(
        (stats["s3_requests"].as_u64(), stats["s3_denied"].as_u64()),
        (Some(2), Some(0))
    );
    let lines = s3_log_lines(&w.emulator.log);
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert_eq!(l["outcome"], "allowed", "{l}");
        assert_eq!(l["role"], ROLE_ARN);
        assert_eq!(l["operation"], "ListBuckets");
    }
    let log = std::fs::read_to_string(&w.emulator.log).expect("log");
    for secret in [&got["secret"], &got["token"]] {
        let secret = secret.as_str().expect("a string");
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

#[test]
fn s3_refuses_tampered_unknown_and_expired_credentials_with_s3_codes() {
    let w = World::new(&["--s3-bucket", "ra-signer-demo"]);
    let leaf = w.leaf("s3-tamper", KeyKind::Rsa2048);
    let creds = assert_process_json(&w.credential_process(&leaf, &[]));
    let other = assert_process_json(&w.credential_process(&leaf, &[]));
    let field = |v: &serde_json::Value, k: &str| v[k].as_str().expect(k).to_owned();
    let (akid, secret, token) = (
        field(&creds, "AccessKeyId"),
        field(&creds, "SecretAccessKey"),
        field(&creds, "SessionToken"),
    );
    assert_eq!(
        boto3_list(&w, &akid, &secret, &token, 0),
        "OK ra-signer-demo 123456789012"
    );

    // The `expired` fault's credentials went out, but were never issued: S3 does not know
    // them (ra-signer refuses them anyway).
    w.emulator.set_faults(&["expired:1"]);
    let refused = w.credential_process(&leaf, &[]);
    assert_ne!(refused.status.code(), Some(0));
    assert_eq!(w.emulator.stats()["faulted"], 1);
    let wrong_secret = tampered(&secret);
    let other_token = field(&other, "SessionToken");
    let cases = [
        (
            "ASIAFAULTYFAULTYFAUL",
            "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
            "IQoJb3JpZ2luX2VjEFaultyFaultyFaultyToken",
            0,
            "InvalidAccessKeyId",
        ),
        (&akid, &wrong_secret, &token, 0, "SignatureDoesNotMatch"),
        (&akid, &secret, "", 0, "InvalidToken"),
        (&akid, &secret, &other_token, 0, "InvalidToken"),
        (&akid, &secret, &token, 16 * 60, "RequestTimeTooSkewed"),
        (&akid, &secret, &token, -16 * 60, "RequestTimeTooSkewed"),
    ];
    for (akid, secret, token, shift, code) in cases {
        assert_eq!(
            boto3_list(&w, akid, secret, token, shift),
            code,
            "{akid} shift {shift}"
        );
    }

    // Two hours on, the one-hour credentials have expired on the emulator's clock; a client
    // whose clock moved too is on time and told so, one whose clock did not is skewed.
    let http = http_client(&w.emulator.tls_ca);
    let moved = http
        .post(format!("{}/_emulator/clock", w.emulator.url))
        .body(r#"{"offset": 7200}"#)
        .send()
        .expect("move the clock");
    assert!(moved.status().is_success());
    assert_eq!(boto3_list(&w, &akid, &secret, &token, 7200), "ExpiredToken");
    assert_eq!(
        boto3_list(&w, &akid, &secret, &token, 0),
        "RequestTimeTooSkewed"
    );

    // No signature at all: S3's XML error.
    let anonymous = http
        .get(format!("{}/", w.emulator.url))
        .send()
        .expect("anonymous");
    assert_eq!(anonymous.status(), 403);
    assert_eq!(anonymous.headers()["content-type"], "application/xml");
    let request_id = anonymous.headers()["x-amz-request-id"]
        .to_str()
        .expect("id")
        .to_owned();
    let body = anonymous.text().expect("body");
    assert!(
        body.contains(&format!(
            "<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>{request_id}</RequestId></Error>"
        )),
        "{body}"
    );

    let stats = w.emulator.stats();
    assert_eq!(
        (stats["s3_requests"].as_u64(), stats["s3_denied"].as_u64()),
        (Some(10), Some(9))
    );
    let codes: Vec<String> = s3_log_lines(&w.emulator.log)
        .iter()
        .filter(|l| l["outcome"] == "denied")
        .map(|l| l["code"].as_str().expect("code").to_owned())
        .collect();
    assert_eq!(
        codes,
        [
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "InvalidToken",
            "InvalidToken",
            "RequestTimeTooSkewed",
            "RequestTimeTooSkewed",
            "ExpiredToken",
            "RequestTimeTooSkewed",
            "AccessDenied"
        ]
    );
    let log = std::fs::read_to_string(&w.emulator.log).expect("log");
    assert!(
        !log.contains(&secret) && !log.contains(&token),
        "a secret reached the log"
    );
}

#[test]
fn aws_cli_reports_s3_error_for_a_wrong_secret() {
    let w = World::new(&[]);
    let leaf = w.leaf("s3-cli-wrong", KeyKind::P256);
    let creds = assert_process_json(&w.credential_process(&leaf, &[]));
    let secret = creds["SecretAccessKey"].as_str().expect("secret");
    // `aws s3 ls` with the credentials in the environment and `secret` as their secret.
    let s3_ls = |secret: &str| {
        aws_client("aws", w.dir.path(), &w.dir.path().join("no-config"))
            .args([
                "s3",
                "ls",
                "--endpoint-url",
                &w.emulator.url,
                "--region",
                "us-east-1",
            ])
            .env("AWS_CA_BUNDLE", &w.emulator.tls_ca)
            .env(
                "AWS_ACCESS_KEY_ID",
                creds["AccessKeyId"].as_str().expect("akid"),
            )
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env(
                "AWS_SESSION_TOKEN",
                creds["SessionToken"].as_str().expect("token"),
            )
            .output()
            .expect("run aws")
    };
    let out = s3_ls(&tampered(secret));
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("(SignatureDoesNotMatch) when calling the ListBuckets operation"),
        "{}",
        stderr(&out)
    );
    // With the right secret the same command lists nothing: no --s3-bucket.
    let out = s3_ls(secret);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "");
}
