//! Test harness shared by every integration test: a throwaway PKI (keys from the real
//! `openssl` CLI, certificates issued with rcgen), the real `ra-emulator` started per test,
//! and the real `ra-signer` binary run as a child process with a scrubbed environment;
//! [`swtpm`] has the swtpm instances.

#![allow(dead_code)]

#[cfg(feature = "tpm")]
pub(crate) mod swtpm;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber,
};

/// The ARNs the emulator is started with.
pub(crate) const TRUST_ANCHOR_ARN: &str = "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/11111111-2222-3333-4444-555555555555";
/// The profile ARN.
pub(crate) const PROFILE_ARN: &str =
    "arn:aws:rolesanywhere:us-east-1:123456789012:profile/66666666-7777-8888-9999-000000000000";
/// The role ARN.
pub(crate) const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/ra-signer-test";

/// Path of a built binary of this package: `ra-signer`, `ra-emulator`, or
/// `ra-signer-no-tpm`, the build without the TPM backend that scripts/test.sh makes before
/// the tests (the package's /usr/bin/ra-signer; src/tpm_build.rs).
pub(crate) fn bin(name: &str) -> PathBuf {
    match name {
        "ra-signer" => PathBuf::from(env!("CARGO_BIN_EXE_ra-signer")),
        "ra-emulator" => PathBuf::from(env!("CARGO_BIN_EXE_ra-emulator")),
        "ra-signer-no-tpm" => {
            let path = bin("ra-signer").with_file_name("ra-signer-no-tpm");
            assert!(
                path.is_file(),
                "{} is missing: scripts/test.sh builds it (cargo build --no-default-features \
                 --features pkcs11 --bin ra-signer) before the tests",
                path.display()
            );
            path
        }
        other => panic!("unknown binary {other}"),
    }
}

/// The shared libraries an ELF `binary` names (`readelf -d`), one `(NEEDED)` line each.
pub(crate) fn needed_libraries(binary: &Path) -> String {
    let out = run(Command::new("readelf").arg("-d").arg(binary));
    assert_exit(&out, 0);
    stdout(&out)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `Command` for `ra-signer` with a scrubbed environment: only PATH, and HOME set to
/// `home` (so no user configuration leaks in), no terminal on stdin.
pub(crate) fn ra_signer(home: &Path) -> Command {
    let mut cmd = Command::new(bin("ra-signer"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd`, returning its output; panics if it cannot start.
pub(crate) fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run command")
}

/// stdout as text.
pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts an exit code, printing the outputs when it differs.
pub(crate) fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// Key types the tests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// RSA 2048.
    Rsa2048,
    /// RSA 3072.
    Rsa3072,
    /// EC P-256.
    P256,
    /// EC P-384.
    P384,
}

impl KeyKind {
    fn openssl_args(self) -> Vec<&'static str> {
        match self {
            KeyKind::Rsa2048 => vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            KeyKind::Rsa3072 => vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
            KeyKind::P256 => vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeyKind::P384 => vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        }
    }
}

/// Runs the `openssl` CLI, panicking with its stderr on failure.
pub(crate) fn openssl(args: &[&str]) -> Output {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI is needed by the tests: apt-get install openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Generates a PKCS#8 PEM key file with `openssl genpkey`.
pub(crate) fn gen_key(kind: KeyKind, path: &Path) -> KeyPair {
    let mut args = vec!["genpkey"];
    args.extend(kind.openssl_args());
    let p = path.to_str().expect("utf-8 path");
    args.extend(["-out", p]);
    openssl(&args);
    KeyPair::from_pem(&std::fs::read_to_string(path).expect("key pem")).expect("rcgen key")
}

/// A certificate authority that can issue certificates.
pub(crate) struct Ca {
    /// The CA certificate, PEM file.
    pub cert_path: PathBuf,
    /// The CA certificate DER.
    pub der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

/// Options for a leaf certificate.
#[derive(Debug, Clone)]
pub(crate) struct LeafOptions {
    /// The serial's big-endian bytes.
    pub serial: Vec<u8>,
    /// (year, month, day) validity start; default 2000-01-01.
    pub not_before: (i32, u8, u8),
    /// (year, month, day) validity end; default 2090-01-01.
    pub not_after: (i32, u8, u8),
}

impl Default for LeafOptions {
    fn default() -> Self {
        LeafOptions {
            serial: vec![0x15, 0xd1, 0x96, 0x32, 0x23],
            not_before: (2000, 1, 1),
            not_after: (2090, 1, 1),
        }
    }
}

/// A leaf: its key file and certificate file.
pub(crate) struct Leaf {
    /// PKCS#8 PEM key.
    pub key_path: PathBuf,
    /// PEM certificate.
    pub cert_path: PathBuf,
    /// The certificate DER.
    pub der: Vec<u8>,
}

impl Leaf {
    /// `--certificate CERT --private-key KEY`.
    pub(crate) fn file_args(&self) -> Vec<String> {
        vec![
            "--certificate".into(),
            self.cert_path.display().to_string(),
            "--private-key".into(),
            self.key_path.display().to_string(),
        ]
    }
}

/// Asserts that `v["AccessKeyId"]` is an access key the emulator issued.
pub(crate) fn assert_issued_key(v: &serde_json::Value) {
    assert!(
        v["AccessKeyId"]
            .as_str()
            .is_some_and(|k| k.starts_with("ASIA")),
        "not an issued access key: {v}"
    );
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "ra-signer tests");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2090, 1, 1);
    params
}

impl Ca {
    /// A self-signed root CA (P-256, ECDSA-SHA256 signatures) in `dir`.
    pub(crate) fn root(dir: &Path, cn: &str) -> Ca {
        let key_path = dir.join(format!("{cn}.key.pem").replace(' ', "_"));
        let key = gen_key(KeyKind::P256, &key_path);
        let params = ca_params(cn);
        let cert = params.self_signed(&key).expect("self-signed CA");
        let cert_path = dir.join(format!("{cn}.pem").replace(' ', "_"));
        std::fs::write(&cert_path, cert.pem()).expect("write CA");
        Ca {
            cert_path,
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An intermediate CA issued by this one.
    pub(crate) fn intermediate(&self, dir: &Path, cn: &str) -> Ca {
        let key_path = dir.join(format!("{cn}.key.pem").replace(' ', "_"));
        let key = gen_key(KeyKind::P256, &key_path);
        let params = ca_params(cn);
        let cert = params.signed_by(&key, &self.issuer).expect("intermediate");
        let cert_path = dir.join(format!("{cn}.pem").replace(' ', "_"));
        std::fs::write(&cert_path, cert.pem()).expect("write intermediate");
        Ca {
            cert_path,
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Issues a leaf certificate for a new key of `kind`, files named after `name`.
    pub(crate) fn leaf(&self, dir: &Path, name: &str, kind: KeyKind, opts: &LeafOptions) -> Leaf {
        let key_path = dir.join(format!("{name}.key.pem"));
        let key = gen_key(kind, &key_path);
        self.leaf_for_key(dir, name, &key, &key_path, opts)
    }

    /// Issues a leaf certificate for an existing key.
    pub(crate) fn leaf_for_key(
        &self,
        dir: &Path,
        name: &str,
        key: &impl rcgen::PublicKeyData,
        key_path: &Path,
        opts: &LeafOptions,
    ) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.serial_number = Some(SerialNumber::from_slice(&opts.serial));
        params.not_before =
            rcgen::date_time_ymd(opts.not_before.0, opts.not_before.1, opts.not_before.2);
        params.not_after =
            rcgen::date_time_ymd(opts.not_after.0, opts.not_after.1, opts.not_after.2);
        let cert = params.signed_by(key, &self.issuer).expect("leaf");
        let cert_path = dir.join(format!("{name}.cert.pem"));
        std::fs::write(&cert_path, cert.pem()).expect("write leaf");
        Leaf {
            key_path: key_path.to_path_buf(),
            cert_path,
            der: cert.der().to_vec(),
        }
    }
}

/// A running `ra-emulator`, killed on drop.
pub(crate) struct Emulator {
    child: Child,
    /// Base URL, e.g. `https://127.0.0.1:40123`.
    pub url: String,
    /// PEM of the emulator's TLS certificate (pass as --ca-bundle).
    pub tls_ca: PathBuf,
    /// Its JSON-lines decision log.
    pub log: PathBuf,
}

impl Emulator {
    /// Starts an emulator trusting `anchors`, with extra flags, and waits until it listens.
    pub(crate) fn start(dir: &Path, anchors: &[&Path], extra: &[&str]) -> Emulator {
        let mut cmd = Command::new(bin("ra-emulator"));
        for a in anchors {
            cmd.arg("--trust-anchor-ca").arg(a);
        }
        cmd.args(["--trust-anchor-arn", TRUST_ANCHOR_ARN])
            .args(["--profile-arn", PROFILE_ARN])
            .args(["--role-arn", ROLE_ARN]);
        Emulator::spawn(dir, cmd, extra)
    }

    /// Starts an emulator whose account is the `--config` document `config`.
    pub(crate) fn start_config(dir: &Path, config: &Path) -> Emulator {
        let mut cmd = Command::new(bin("ra-emulator"));
        cmd.arg("--config").arg(config);
        Emulator::spawn(dir, cmd, &[])
    }

    fn spawn(dir: &Path, mut cmd: Command, extra: &[&str]) -> Emulator {
        let ready = dir.join(format!("emulator-{}.ready", unique()));
        let tls_ca = dir.join(format!("emulator-{}.tls.pem", unique()));
        let log = dir.join(format!("emulator-{}.log", unique()));
        cmd.args(["--exit-after", "300"])
            .arg("--ready-file")
            .arg(&ready)
            .arg("--tls-ca-out")
            .arg(&tls_ca)
            .arg("--log")
            .arg(&log)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start ra-emulator");
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = loop {
            if let Ok(text) = std::fs::read_to_string(&ready)
                && text.ends_with('\n')
            {
                break text.trim().to_owned();
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("ra-emulator exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "ra-emulator did not become ready"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        Emulator {
            child,
            url,
            tls_ca,
            log,
        }
    }

    /// The emulator's counters (`requests`, `issued`, `rejected`, `faulted`).
    pub(crate) fn stats(&self) -> serde_json::Value {
        let body = http_client(&self.tls_ca)
            .get(format!("{}/_emulator/stats", self.url))
            .send()
            .expect("stats request")
            .text()
            .expect("stats body");
        serde_json::from_str(&body).expect("stats JSON")
    }

    /// Replaces the fault list at run time.
    pub(crate) fn set_faults(&self, faults: &[&str]) {
        let resp = http_client(&self.tls_ca)
            .post(format!("{}/_emulator/faults", self.url))
            .body(serde_json::to_string(faults).expect("json"))
            .send()
            .expect("faults request");
        assert!(
            resp.status().is_success(),
            "setting faults: {}",
            resp.status()
        );
    }

    /// The flags that point `ra-signer` at this emulator, trusting its TLS certificate.
    pub(crate) fn session_args(&self) -> Vec<String> {
        let mut args = self.arn_args();
        args.extend(["--ca-bundle".into(), self.tls_ca.display().to_string()]);
        args
    }

    /// The ARNs and `--endpoint`, with no TLS trust setting.
    pub(crate) fn arn_args(&self) -> Vec<String> {
        vec![
            "--trust-anchor-arn".into(),
            TRUST_ANCHOR_ARN.into(),
            "--profile-arn".into(),
            PROFILE_ARN.into(),
            "--role-arn".into(),
            ROLE_ARN.into(),
            "--endpoint".into(),
            self.url.clone(),
        ]
    }
}

impl Emulator {
    /// Kills the emulator: from now on its port refuses connections.
    pub(crate) fn stop(&self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn http_client(ca: &Path) -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(ca).expect("emulator CA");
    let cert = reqwest::Certificate::from_pem(&pem).expect("CA pem");
    reqwest::blocking::Client::builder()
        .tls_certs_only([cert])
        .no_proxy()
        .build()
        .expect("client")
}

/// A process-unique number for file names.
pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A fresh temporary directory.
pub(crate) fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ra-signer-test-")
        .tempdir()
        .expect("tempdir")
}

/// The Python interpreter of the test virtualenv (boto3, awscli, iam-rolesanywhere-session),
/// made by `scripts/test.sh`.
pub(crate) fn python() -> PathBuf {
    let path = std::env::var_os("RA_SIGNER_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python")
        });
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh, which makes the test virtualenv",
        path.display()
    );
    path
}

/// One PKI + emulator + leaf, the common case.
pub(crate) struct World {
    /// Temp dir holding every file.
    pub dir: tempfile::TempDir,
    /// The root CA (the trust anchor).
    pub ca: Ca,
    /// The emulator.
    pub emulator: Emulator,
}

impl World {
    /// A root CA, and an emulator trusting it.
    pub(crate) fn new(extra: &[&str]) -> World {
        let dir = tempdir();
        let ca = Ca::root(dir.path(), "Test Root CA");
        let emulator = Emulator::start(dir.path(), &[&ca.cert_path], extra);
        World { dir, ca, emulator }
    }

    /// A leaf issued by the root.
    pub(crate) fn leaf(&self, name: &str, kind: KeyKind) -> Leaf {
        self.ca
            .leaf(self.dir.path(), name, kind, &LeafOptions::default())
    }

    /// `ra-signer credential-process` with the leaf's files and the emulator's flags, plus
    /// `extra`.
    pub(crate) fn credential_process(&self, leaf: &Leaf, extra: &[&str]) -> Output {
        let mut cmd = ra_signer(self.dir.path());
        cmd.arg("credential-process")
            .args(leaf.file_args())
            .args(self.emulator.session_args())
            .args(extra);
        run(&mut cmd)
    }
}

/// Parses and checks credential_process JSON: exactly one object, the five fields.
pub(crate) fn assert_process_json(o: &Output) -> serde_json::Value {
    assert_exit(o, 0);
    let text = stdout(o);
    assert_eq!(text.lines().count(), 1, "one line of JSON: {text}");
    let v: serde_json::Value = serde_json::from_str(text.trim()).expect("stdout is JSON");
    let obj = v.as_object().expect("an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "AccessKeyId",
            "Expiration",
            "SecretAccessKey",
            "SessionToken",
            "Version"
        ]
    );
    assert_eq!(v["Version"], 1);
    assert_issued_key(&v);
    v
}

/// `keygen --subject` cases for both backends: (key type, subject as given, the subject
/// `openssl req -nameopt RFC2253` must print).
pub(crate) const SUBJECT_CASES: [(&str, &str, &str); 3] = [
    (
        "p256",
        r"CN=host1,O=Example\, Inc.,C=DE",
        r"CN=host1,O=Example\, Inc.,C=DE",
    ),
    (
        "p384",
        "/C=DE/O=Example, Inc./CN=host1",
        r"CN=host1,O=Example\, Inc.,C=DE",
    ),
    (
        "rsa2048",
        r"CN=host1+UID=7,OU=a\+b,DC=example,DC=com",
        // DER sorts the SET of a multi-valued RDN; RFC2253 output reverses it.
        r"UID=7+CN=host1,OU=a\+b,DC=example,DC=com",
    ),
];

/// Asserts that OpenSSL verifies the CSR's signature and reads `expected` as its subject.
pub(crate) fn assert_csr_subject(csr: &Path, subject: &str, expected: &str) {
    let o = openssl(&[
        "req",
        "-in",
        csr.to_str().expect("utf-8"),
        "-verify",
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("subject={expected}"),
        "{subject}"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("verify OK"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A loopback port that nothing listens on (it was bound, then released).
pub(crate) fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}
