//! ML-DSA-44/65/87 file keys end to end. Keys and certificates come from Python's
//! `cryptography`, expanded keys from `dilithium-py` (`mldsa_fixtures.py`), never from
//! ra-signer; signatures are checked by `cryptography` and byte-compared with dilithium-py's
//! deterministic signer; the emulator verifies requests with its own ML-DSA verifier and
//! rejects tampered ones signed by an independent (Python) SigV4-X509 signer.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::*;

const PASSWORD: &str = "post-quantum pw";
const SETS: [u16; 3] = [44, 65, 87];
/// Every key form, plain and encrypted.
const FORMS: [&str; 7] = [
    "seed.pem",
    "seed.der",
    "expanded.pem",
    "both.pem",
    "seed-enc.pem",
    "expanded-enc.pem",
    "both-enc.pem",
];
/// The Go helper's `sign-string` test string for an ML-DSA key: no public key suffix.
const TEST_STRING: &str = "AWS Roles Anywhere Credential Helper Signing Test1";

/// The fixtures, and an emulator trusting the EC and the ML-DSA-87 test CAs.
struct Pq {
    dir: tempfile::TempDir,
    emulator: Emulator,
}

impl Pq {
    fn new() -> Pq {
        let dir = tempdir();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/mldsa_fixtures.py");
        let out = Command::new(python())
            .arg(script)
            .arg(dir.path())
            .arg(PASSWORD)
            .output()
            .expect("run python");
        assert_exit(&out, 0);
        let anchors = [
            dir.path().join("ca-ec.pem"),
            dir.path().join("ca-mldsa.pem"),
        ];
        let emulator = Emulator::start(dir.path(), &[&anchors[0], &anchors[1]], &[]);
        Pq { dir, emulator }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn leaf(&self, cert: &str, key: &str) -> Leaf {
        Leaf {
            key_path: self.path(key),
            cert_path: self.path(cert),
            der: Vec::new(),
        }
    }

    fn ra_signer(&self) -> Command {
        let mut cmd = ra_signer(self.dir.path());
        cmd.env("RA_SIGNER_PKCS8_PASSWORD", PASSWORD);
        cmd
    }

    fn credential_process(&self, cert: &str, key: &str) -> Output {
        let mut cmd = self.ra_signer();
        cmd.arg("credential-process")
            .args(self.leaf(cert, key).file_args())
            .args(self.emulator.session_args());
        run(&mut cmd)
    }

    /// The emulator's decision log lines.
    fn decisions(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.emulator.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("decision").is_some())
            .collect()
    }

    fn issued_ml_dsa(&self) -> usize {
        self.decisions()
            .iter()
            .filter(|d| d["decision"] == "issued" && d["alg"] == "AWS4-X509-MLDSA")
            .count()
    }
}

#[test]
fn credential_process_with_every_parameter_set_and_key_form() {
    let pq = Pq::new();
    let mut runs = 0;
    for n in SETS {
        for form in FORMS {
            let key = format!("mldsa{n}-{form}");
            let out = pq.credential_process(&format!("mldsa{n}.pem"), &key);
            let v = assert_process_json(&out);
            assert_issued_key(&v);
            runs += 1;
        }
        // The same key under a certificate that an ML-DSA-87 CA signed.
        let out = pq.credential_process(
            &format!("mldsa{n}-by-mldsa.pem"),
            &format!("mldsa{n}-seed.pem"),
        );
        assert_process_json(&out);
        runs += 1;
    }
    assert_eq!(pq.issued_ml_dsa(), runs, "{:?}", pq.decisions());
    // An EC key under an ML-DSA-signed certificate: the issuer's algorithm is not ours to use.
    let out = pq.credential_process("ec-by-mldsa.pem", "ec-leaf.key");
    assert_process_json(&out);
}

#[test]
fn boto3_gets_credentials_from_an_ml_dsa_key() {
    let pq = Pq::new();
    let mut args = pq.leaf("mldsa65.pem", "mldsa65-both.pem").file_args();
    args.extend(pq.emulator.session_args());
    let config = crate::real_clients::aws_config(pq.dir.path(), &args);
    let got = crate::real_clients::boto3_credentials(pq.dir.path(), &config, &[]);
    assert_issued_key(&got);
    assert_eq!(pq.issued_ml_dsa(), 1);
}

/// Verifies `sig_hex` over the test string with `cryptography` (the certificate's key) and
/// compares it with dilithium-py's deterministic signature by the expanded key.
fn python_check(pq: &Pq, n: u16, sig_hex: &str) -> String {
    let script = r#"
import sys
from cryptography import x509
from dilithium_py.ml_dsa import ML_DSA_44, ML_DSA_65, ML_DSA_87
cert_path, sk_path, n, sig_hex, msg = sys.argv[1:6]
sig, msg = bytes.fromhex(sig_hex), msg.encode()
cert = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
cert.public_key().verify(sig, msg)
ref = {"44": ML_DSA_44, "65": ML_DSA_65, "87": ML_DSA_87}[n]
sk = bytes.fromhex(open(sk_path).read())
print("verified", "identical" if ref.sign(sk, msg, deterministic=True) == sig else "different")
"#;
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(pq.path(&format!("mldsa{n}.pem")))
        .arg(pq.path(&format!("mldsa{n}.sk")))
        .arg(n.to_string())
        .arg(sig_hex)
        .arg(TEST_STRING)
        .output()
        .expect("python");
    assert_exit(&out, 0);
    stdout(&out).trim().to_owned()
}

#[test]
fn sign_string_signatures_verify_with_cryptography() {
    let pq = Pq::new();
    for n in SETS {
        let mut first = None;
        for (form, digest) in [
            ("seed.pem", "SHA256"),
            ("expanded.pem", "SHA384"),
            ("both-enc.pem", "SHA512"),
        ] {
            let out = run(pq
                .ra_signer()
                .args(["sign-string", "--format", "text", "--digest", digest])
                .arg("--private-key")
                .arg(pq.path(&format!("mldsa{n}-{form}"))));
            assert_exit(&out, 0);
            let hex = stdout(&out).trim().to_owned();
            let expected_len = match n {
                44 => 2420,
                65 => 3309,
                _ => 4627,
            };
            assert_eq!(hex.len(), 2 * expected_len, "ML-DSA-{n} signature size");
            assert_eq!(
                python_check(&pq, n, &hex),
                "verified identical",
                "ML-DSA-{n} {form}"
            );
            // Deterministic, and --digest does not apply to ML-DSA: one signature.
            assert_eq!(first.get_or_insert_with(|| hex.clone()), &hex, "{form}");
        }
        // With the certificate too (the whole identity is opened), and as JSON.
        let out = run(pq
            .ra_signer()
            .args(["sign-string", "--format", "json"])
            .args(
                pq.leaf(&format!("mldsa{n}.pem"), &format!("mldsa{n}-seed.der"))
                    .file_args(),
            ));
        assert_exit(&out, 0);
        let json: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("json");
        assert_eq!(json.as_str(), first.as_deref());
    }
}

#[test]
fn read_certificate_data_names_the_parameter_set() {
    let pq = Pq::new();
    for n in SETS {
        for cert in [format!("mldsa{n}.pem"), format!("mldsa{n}-by-mldsa.pem")] {
            let out = run(pq
                .ra_signer()
                .arg("read-certificate-data")
                .arg("--certificate")
                .arg(pq.path(&cert)));
            assert_exit(&out, 0);
            let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
            let kt = format!("ML-DSA-{n}");
            assert_eq!(v["keyType"], kt.as_str(), "{v}");
            assert_eq!(
                v["supportedAlgorithms"],
                serde_json::json!([
                    format!("{kt}SHA256"),
                    format!("{kt}SHA384"),
                    format!("{kt}SHA512")
                ])
            );
        }
    }
    let out = run(pq
        .ra_signer()
        .arg("read-certificate-data")
        .arg("--certificate")
        .arg(pq.path("ec-by-mldsa.pem")));
    assert_exit(&out, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["keyType"], "EC");
}

#[test]
fn bad_ml_dsa_inputs_are_one_clear_identity_error() {
    let pq = Pq::new();
    let cases: Vec<(String, String, &str)> = vec![
        (
            "mldsa44.pem".into(),
            "mldsa44-truncated.pem".into(),
            "malformed PKCS#8 key",
        ),
        (
            "mldsa65.pem".into(),
            "mldsa65-shortseed.pem".into(),
            "ML-DSA-65 seed is 31 bytes; FIPS 204 seeds are 32",
        ),
        (
            "mldsa87.pem".into(),
            "mldsa87-mismatch.pem".into(),
            "seed and expanded key are not the same key",
        ),
        (
            "mldsa65.pem".into(),
            "mldsa65-expanded-short.pem".into(),
            "expanded key is 3968 bytes; it must be 4032",
        ),
        (
            "ec-leaf.pem".into(),
            "mldsa65-seed.pem".into(),
            "(ML-DSA-65, PKCS#8 file",
        ),
        ("mldsa44.pem".into(), "ec-leaf.key".into(), "ML-DSA-44)"),
        (
            "mldsa44.pem".into(),
            "mldsa65-seed.pem".into(),
            "does not match the certificate",
        ),
    ];
    for (cert, key, needle) in cases {
        let out = pq.credential_process(&cert, &key);
        assert_exit(&out, 3);
        let err = stderr(&out);
        assert!(err.contains(needle), "{cert} + {key}: {err}");
        assert!(err.starts_with("ra-signer: error: "), "{err}");
        assert!(stdout(&out).is_empty());
    }
    let mut cmd = ra_signer(pq.dir.path());
    cmd.env("RA_SIGNER_PKCS8_PASSWORD", "wrong")
        .arg("credential-process")
        .args(
            pq.leaf("mldsa87.pem", "mldsa87-expanded-enc.pem")
                .file_args(),
        )
        .args(pq.emulator.session_args());
    let out = run(&mut cmd);
    assert_exit(&out, 3);
    assert!(stderr(&out).contains("is wrong"), "{}", stderr(&out));
    assert_eq!(pq.emulator.stats()["requests"], 0, "nothing was sent");
}

fn http() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[test]
fn serve_with_an_ml_dsa_key() {
    let pq = Pq::new();
    let mut args: Vec<String> = vec!["serve".into(), "--port".into(), "0".into()];
    args.extend(pq.leaf("mldsa87.pem", "mldsa87-expanded.pem").file_args());
    args.extend(pq.emulator.session_args());
    let d = crate::serve::Daemon::start(pq.dir.path(), &args, &[]);
    let c = http();
    let token = c
        .put(format!("{}/latest/api/token", d.url()))
        .header("X-aws-ec2-metadata-token-ttl-seconds", "60")
        .send()
        .expect("PUT token")
        .text()
        .expect("token");
    let role = ROLE_ARN.rsplit('/').next().expect("role name");
    let r = c
        .get(format!(
            "{}/latest/meta-data/iam/security-credentials/{role}",
            d.url()
        ))
        .header("X-aws-ec2-metadata-token", token)
        .send()
        .expect("GET credentials");
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&r.text().expect("body")).expect("json");
    assert_eq!(v["Code"], "Success", "{v}");
    assert_issued_key(&v);
    assert_eq!(pq.issued_ml_dsa(), 1);
}

#[test]
fn update_with_an_ml_dsa_key() {
    let pq = Pq::new();
    let file = pq.path("credentials");
    let out = run(pq
        .ra_signer()
        .args(["update", "--once", "--profile", "pq"])
        .args(pq.leaf("mldsa44.pem", "mldsa44-seed-enc.pem").file_args())
        .args(pq.emulator.session_args())
        .env("AWS_SHARED_CREDENTIALS_FILE", &file));
    assert_exit(&out, 0);
    let text = std::fs::read_to_string(&file).expect("credentials file");
    assert!(text.contains("[pq]"), "{text}");
    for key in [
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
    ] {
        assert!(text.contains(key), "{key}: {text}");
    }
    assert_eq!(pq.issued_ml_dsa(), 1);
}

/// An independent SigV4-X509 signer in Python (`cryptography`'s hedged ML-DSA), so the
/// emulator's verifier is checked against code that is not ra-signer's. `tamper` spoils one
/// thing after signing.
fn python_request(pq: &Pq, cert: &Path, key: &Path, tamper: &str) -> serde_json::Value {
    let script = r#"
import base64, datetime, hashlib, json, ssl, sys, urllib.error, urllib.parse, urllib.request
from cryptography import x509
from cryptography.hazmat.primitives import serialization
cert_path, key_path, ta, profile, role, url, ca, tamper = sys.argv[1:9]
cert = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
key = serialization.load_pem_private_key(open(key_path, "rb").read(), None)
host = urllib.parse.urlparse(url).netloc
amz = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
body = b'{"durationSeconds":3600}'
enc = lambda s: urllib.parse.quote(s, safe="-_.~")
query = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(
    [("profileArn", profile), ("roleArn", role), ("trustAnchorArn", ta)]))
x509h = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
headers = [("content-type", "application/json"), ("host", host), ("x-amz-date", amz), ("x-amz-x509", x509h)]
signed = ";".join(k for k, _ in headers)
canonical = "POST\n/sessions\n" + query + "\n" + "".join(f"{k}:{v}\n" for k, v in headers) + "\n" + signed + "\n" + hashlib.sha256(body).hexdigest()
scope = f"{amz[:8]}/us-east-1/rolesanywhere/aws4_request"
sts = "AWS4-X509-MLDSA\n" + amz + "\n" + scope + "\n" + hashlib.sha256(canonical.encode()).hexdigest()
sig = key.sign(sts.encode())
if tamper == "signature":
    sig = bytes([sig[0] ^ 1]) + sig[1:]
if tamper == "body":
    body = b'{"durationSeconds":3601}'
if tamper == "date":
    amz = amz[:-3] + ("00" if amz[-3:-1] != "00" else "01") + "Z"
auth = f"AWS4-X509-MLDSA Credential={cert.serial_number}/{scope}, SignedHeaders={signed}, Signature={sig.hex()}"
req = urllib.request.Request(url + "/sessions?" + query, data=body, method="POST", headers={
    "Content-Type": "application/json", "X-Amz-Date": amz, "X-Amz-X509": x509h, "Authorization": auth})
ctx = ssl.create_default_context(cafile=ca)
try:
    r = urllib.request.urlopen(req, context=ctx)
    print(json.dumps({"status": r.status, "body": json.loads(r.read())}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode()}))
"#;
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(cert)
        .arg(key)
        .args([TRUST_ANCHOR_ARN, PROFILE_ARN, ROLE_ARN])
        .arg(&pq.emulator.url)
        .arg(&pq.emulator.tls_ca)
        .arg(tamper)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("python");
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn emulator_verifies_ml_dsa_requests_and_rejects_tampered_ones() {
    let pq = Pq::new();
    for n in SETS {
        let cert = pq.path(&format!("mldsa{n}.pem"));
        let key = pq.path(&format!("mldsa{n}-seed.pem"));
        let good = python_request(&pq, &cert, &key, "none");
        assert_eq!(good["status"], 201, "ML-DSA-{n}: {good}");
        for tamper in ["signature", "body", "date"] {
            let bad = python_request(&pq, &cert, &key, tamper);
            assert_eq!(bad["status"], 403, "ML-DSA-{n} {tamper}: {bad}");
            assert!(
                bad["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("Invalid signature")),
                "ML-DSA-{n} {tamper}: {bad}"
            );
        }
    }
    let rejected: Vec<_> = pq
        .decisions()
        .into_iter()
        .filter(|d| d["decision"] == "rejected")
        .collect();
    assert_eq!(rejected.len(), 9);
    assert!(
        rejected
            .iter()
            .all(|d| d["check"] == "signature" && d["alg"] == "AWS4-X509-MLDSA"),
        "{rejected:?}"
    );
    assert_eq!(pq.issued_ml_dsa(), 3);
}
