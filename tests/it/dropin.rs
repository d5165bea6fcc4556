//! ra-signer as a drop-in for AWS's Go helper (`aws_signing_helper` v1.8.0): the command
//! lines of its README and of its users, taken as they are but for paths and ARNs, against
//! real SoftHSM2 tokens and files, checked by `ra-emulator` and by boto3; and the small
//! differences of its surface (flags it alone has, its defaults, its errors). The Go
//! helper's TPM lines (`--private-key handle:0x81…`, TSS2 key files, `TPM_DEVICE` naming a
//! swtpm UNIX socket) run in `tpm.rs`, beside the swtpm they need; its ML-DSA key files in
//! `mldsa.rs`; its SDK endpoint settings in `endpoint.rs`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Output;

use crate::common::*;
#[cfg(feature = "pkcs11")]
use crate::pkcs11::{Hsm, PIN, assert_issued_for, ca_file, cert_file, der, fixture, sent};

/// The three ARNs, as the README's command lines give them.
fn arns() -> Vec<String> {
    [
        "--role-arn",
        ROLE_ARN,
        "--trust-anchor-arn",
        TRUST_ANCHOR_ARN,
        "--profile-arn",
        PROFILE_ARN,
    ]
    .map(String::from)
    .to_vec()
}

/// Where the emulator is and how to trust it, in the settings every AWS SDK reads
/// (`AWS_ENDPOINT_URL_ROLESANYWHERE`, `AWS_CA_BUNDLE`), so that the command line itself
/// stays the README's.
fn at_emulator(cmd: &mut std::process::Command, emu: &Emulator) {
    cmd.env("AWS_ENDPOINT_URL_ROLESANYWHERE", &emu.url)
        .env("AWS_CA_BUNDLE", &emu.tls_ca);
}

fn one_line_error(o: &Output) -> String {
    let err = stderr(o);
    let error_lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("ra-signer: error:"))
        .collect();
    assert_eq!(error_lines.len(), 1, "one error line:\n{err}");
    err
}

#[test]
fn readme_file_key_command_lines() {
    let w = World::new(&[]);
    let leaf = w.leaf("client", KeyKind::P256);
    // /path/to/aws_signing_helper credential-process --certificate … --private-key …
    //     --role-arn … --trust-anchor-arn … --profile-arn …
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("credential-process")
        .arg("--certificate")
        .arg(&leaf.cert_path)
        .arg("--private-key")
        .arg(&leaf.key_path)
        .args(arns());
    at_emulator(&mut cmd, &w.emulator);
    assert_process_json(&run(&mut cmd));

    // sign-string --private-key …: the Go helper's code prints a JSON string, no newline.
    let o = run(ra_signer(w.dir.path())
        .arg("sign-string")
        .arg("--private-key")
        .arg(&leaf.key_path));
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.starts_with('"') && out.ends_with('"') && !out.contains('\n'),
        "{out:?}"
    );

    // read-certificate-data --certificate FILE: the Go helper's JSON fields.
    let o = run(ra_signer(w.dir.path())
        .arg("read-certificate-data")
        .arg("--certificate")
        .arg(&leaf.cert_path));
    assert_exit(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["keyType"], "EC");
    assert_eq!(
        v["supportedAlgorithms"],
        serde_json::json!(["ECSHA256", "ECSHA384", "ECSHA512"])
    );
    // `--format text` gives the Go helper's listing for a file too.
    let o = run(ra_signer(w.dir.path())
        .args(["read-certificate-data", "--format", "text", "--certificate"])
        .arg(&leaf.cert_path));
    assert_exit(&o, 0);
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Matching identities", "{text}");
    assert!(
        lines[1].starts_with("1) ") && lines[1].ends_with("\"CN=client\""),
        "{text}"
    );
}

#[test]
fn read_certificate_data_reads_pkcs12_and_refuses_key_flags() {
    let dir = tempdir();
    let ca = Ca::root(dir.path(), "CA");
    let leaf = ca.leaf(dir.path(), "p12", KeyKind::P256, &LeafOptions::default());
    let p12 = dir.path().join("id.p12");
    let o = openssl(&[
        "pkcs12",
        "-export",
        "-in",
        leaf.cert_path.to_str().expect("utf-8"),
        "-inkey",
        leaf.key_path.to_str().expect("utf-8"),
        "-certfile",
        ca.cert_path.to_str().expect("utf-8"),
        "-passout",
        "pass:p12-secret",
        "-out",
        p12.to_str().expect("utf-8"),
    ]);
    assert_exit(&o, 0);
    let o = run(ra_signer(dir.path())
        .env("RA_SIGNER_PKCS8_PASSWORD", "p12-secret")
        .arg("read-certificate-data")
        .arg("--certificate")
        .arg(&p12));
    assert_exit(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    use base64::Engine;
    assert_eq!(
        v["certificateData"],
        base64::engine::general_purpose::STANDARD.encode(&leaf.der),
        "the leaf, not the CA"
    );
    // With the password in a file, too.
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "p12-secret\n").expect("pw");
    let o = run(ra_signer(dir.path())
        .arg("read-certificate-data")
        .arg("--certificate")
        .arg(&p12)
        .arg("--pkcs8-password-file")
        .arg(&pw));
    assert_exit(&o, 0);

    for (flag, value) in [
        (
            "--private-key",
            Some(leaf.key_path.to_str().expect("utf-8")),
        ),
        (
            "--intermediates",
            Some(ca.cert_path.to_str().expect("utf-8")),
        ),
        ("--tpm-key-password-file", Some("/dev/null")),
        ("--no-tpm-key-password", None),
        ("--reuse-pin", None),
    ] {
        let mut cmd = ra_signer(dir.path());
        cmd.arg("read-certificate-data")
            .arg("--certificate")
            .arg(&leaf.cert_path)
            .arg(flag);
        if let Some(v) = value {
            cmd.arg(v);
        }
        let o = run(&mut cmd);
        assert_exit(&o, 2);
        assert!(
            one_line_error(&o).contains(&format!("{flag} has no meaning")),
            "{}",
            stderr(&o)
        );
    }
    // A password means something for a PKCS#12 file only.
    let o = run(ra_signer(dir.path())
        .arg("read-certificate-data")
        .arg("--certificate")
        .arg(&leaf.cert_path)
        .arg("--pkcs8-password-file")
        .arg(&pw));
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("not a PKCS#12 file"), "{}", stderr(&o));
}

#[test]
fn flags_only_the_go_helper_has_are_refused_clearly() {
    let w = World::new(&[]);
    let leaf = w.leaf("os-store", KeyKind::P256);
    for extra in [
        &["--cert-selector", "Key=x509Subject,Value=CN=Subject"][..],
        &["--system-store-name", "MY"],
        &["--system-store-location", "LocalMachine"],
        &["--use-latest-expiring-certificate"],
    ] {
        let o = w.credential_process(&leaf, extra);
        assert_exit(&o, 2);
        let err = one_line_error(&o);
        assert!(
            err.contains(extra[0]) && err.contains("Windows or macOS"),
            "{err}"
        );
        assert!(o.stdout.is_empty());
    }
    assert_eq!(w.emulator.stats()["requests"], 0, "nothing was sent");
}

#[test]
fn a_password_given_twice_is_a_conflict() {
    let dir = tempdir();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "x\n").expect("pw");
    for (flag, file_flag) in [
        ("--pkcs8-password", "--pkcs8-password-file"),
        ("--tpm-key-password", "--tpm-key-password-file"),
    ] {
        let o = run(ra_signer(dir.path())
            .args([
                "sign-string",
                "--private-key",
                "key.pem",
                flag,
                "x",
                file_flag,
            ])
            .arg(&pw));
        assert_exit(&o, 2);
        assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
    }
}

#[test]
fn small_differences_from_the_go_helper() {
    let dir = tempdir();
    // --debug on every subcommand.
    for sub in [
        "credential-process",
        "sign-string",
        "read-certificate-data",
        "serve",
        "update",
        "keygen",
    ] {
        let o = run(ra_signer(dir.path()).args([sub, "--help"]));
        assert!(stdout(&o).contains("--debug"), "{sub} takes --debug");
    }
    // --help never shows an environment variable's value.
    let o = run(ra_signer(dir.path())
        .env("AWS_CA_BUNDLE", "/very/private/ca-bundle.pem")
        .args(["credential-process", "--help"]));
    assert_exit(&o, 0);
    assert!(!stdout(&o).contains("/very/private"), "{}", stdout(&o));
    // A missing env: input names the variable.
    let o = run(ra_signer(dir.path()).args([
        "read-certificate-data",
        "--certificate",
        "env:RA_SIGNER_DROPIN_UNSET",
    ]));
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("RA_SIGNER_DROPIN_UNSET is not set")
            && err.contains("hint: set the environment variable RA_SIGNER_DROPIN_UNSET")
            && !err.contains("check the path"),
        "{err}"
    );
}

#[test]
fn network_errors_are_one_short_line_without_credentials() {
    let w = World::new(&[]);
    let leaf = w.leaf("net", KeyKind::P256);
    let closed = closed_port();
    let attempt = |endpoint: String| {
        let mut cmd = ra_signer(w.dir.path());
        cmd.arg("credential-process")
            .args(leaf.file_args())
            .args(arns())
            .arg("--endpoint")
            .arg(endpoint)
            .args(["--max-attempts", "1"]);
        run(&mut cmd)
    };
    let o = attempt(format!("https://127.0.0.1:{closed}"));
    assert_exit(&o, 5);
    let err = one_line_error(&o);
    assert!(
        err.contains(&format!("cannot reach 127.0.0.1:{closed}:")),
        "{err}"
    );
    assert!(!err.contains("profileArn"), "no query string: {err}");
    // Credentials in the endpoint URL are refused, never echoed.
    let o = attempt(format!("https://user:hunter2@127.0.0.1:{closed}"));
    assert_exit(&o, 2);
    let err = one_line_error(&o);
    assert!(!err.contains("hunter2") && !err.contains("user:"), "{err}");

    // A proxy that refuses the tunnel is named, with its status, and without its password.
    let proxy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let proxy_port = proxy.local_addr().expect("addr").port();
    let answered = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (mut s, _) = proxy.accept().expect("accept");
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
        }
        seen
    });
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("credential-process")
        .args(leaf.file_args())
        .args(arns())
        .args([
            "--endpoint",
            "https://rolesanywhere.us-east-1.amazonaws.com",
            "--max-attempts",
            "1",
        ])
        .env(
            "HTTPS_PROXY",
            format!("http://proxyuser:pr0xy-pw@127.0.0.1:{proxy_port}"),
        );
    let o = run(&mut cmd);
    assert_exit(&o, 5);
    let err = one_line_error(&o);
    assert!(
        err.contains(&format!(
            "the proxy http://127.0.0.1:{proxy_port} refused the tunnel with HTTP 403 Forbidden"
        )) && err.contains("rolesanywhere.us-east-1.amazonaws.com:443"),
        "{err}"
    );
    assert!(
        !err.contains("pr0xy-pw") && !err.contains("proxyuser"),
        "{err}"
    );
    let seen = answered.join().expect("proxy thread");
    assert!(
        seen.iter()
            .all(|r| r.starts_with("CONNECT rolesanywhere.us-east-1.amazonaws.com:443 ")),
        "{seen:?}"
    );
}

#[test]
fn serve_on_a_port_in_use_exits_6() {
    let w = World::new(&[]);
    let leaf = w.leaf("port", KeyKind::P256);
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("serve")
        .args(leaf.file_args())
        .args(w.emulator.session_args())
        .args(["--port", &port]);
    let o = run(&mut cmd);
    assert_exit(&o, 6);
    assert!(
        one_line_error(&o).contains("Address already in use"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        w.emulator.stats()["requests"],
        0,
        "no signature before the port"
    );
}

/// `--certificate pkcs11:URI` alone, as the Go helper's users write it: the key is the
/// certificate's own, on its token.
#[cfg(feature = "pkcs11")]
#[test]
fn pkcs11_certificate_uri_alone_finds_its_key() {
    let hsm = Hsm::new();
    let emu = hsm.emulator();
    let module = fixture().module.to_str().expect("utf-8").to_owned();
    let go_form = |certificate: &str| -> Output {
        // No RA_SIGNER_PKCS11_PIN: the PIN is in the URI or nowhere.
        let mut cmd = hsm.cmd("credential-process");
        cmd.arg("--certificate")
            .arg(certificate)
            .args(["--pkcs11-lib", &module])
            .args(arns())
            .arg("--debug");
        at_emulator(&mut cmd, &emu);
        run(&mut cmd)
    };
    // The issue's own line, and the README's forms.
    for (uri, label) in [
        (
            format!("pkcs11:token=ra-test;object=p256?pin-value={PIN}"),
            "p256",
        ),
        (format!("pkcs11:object=p384?pin-value={PIN}"), "p384"),
        (
            format!("pkcs11:manufacturer=SoftHSM%20project;id=%02?pin-value={PIN}"),
            "rsa3072",
        ),
        // No public key object: paired by CKA_ID.
        (
            format!("pkcs11:token=ra-test;object=imported?pin-value={PIN}"),
            "imported",
        ),
        // The scheme in any case, with spaces around.
        (
            format!(" PKCS11:token=ra-test;object=rsa2048?pin-value={PIN} "),
            "rsa2048",
        ),
    ] {
        let o = go_form(&uri);
        assert_issued_for(&o, label);
    }
    // The README's hybrid form: certificate in a file, key on the token (whose label only
    // ra-test has: the URI names no token).
    let mut cmd = hsm.cmd("credential-process");
    cmd.arg("--certificate")
        .arg(cert_file("p384"))
        .arg("--private-key")
        .arg(format!(
            "pkcs11:model=SoftHSM%20v2;object=p384?pin-value={PIN}"
        ))
        .args(["--pkcs11-lib", &module])
        .args(arns())
        .arg("--debug");
    at_emulator(&mut cmd, &emu);
    assert_issued_for(&run(&mut cmd), "p384");

    // An id on several tokens is ambiguous: the tokens are listed.
    let o = go_form(&format!("pkcs11:id=%01?pin-value={PIN}"));
    assert_exit(&o, 3);
    assert!(
        stderr(&o).contains("tokens match") && stderr(&o).contains("token \"ra-test\""),
        "{}",
        stderr(&o)
    );
    // A certificate whose key is on no token, and a label with no certificate.
    let o = go_form(&format!(
        "pkcs11:token=ra-test;object=unrelated?pin-value={PIN}"
    ));
    assert_exit(&o, 3);
    assert!(
        one_line_error(&o).contains("no private key on token \"ra-test\""),
        "{}",
        stderr(&o)
    );
    let o = go_form(&format!("pkcs11:token=ra-test;object=bare?pin-value={PIN}"));
    assert_exit(&o, 3);
    assert!(
        stderr(&o).contains("no certificate matching"),
        "{}",
        stderr(&o)
    );
    // The PIN never appears in an error, whatever the case of the scheme.
    let o = go_form("Pkcs11:token=absent;object=x?pin-value=S3cr3t-PIN");
    assert_exit(&o, 3);
    assert!(!stderr(&o).contains("S3cr3t-PIN"), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("check the path"),
        "taken for a URI, not a file: {}",
        stderr(&o)
    );
    assert_eq!(emu.stats()["issued"], 6, "{}", emu.stats());

    // sign-string with the certificate URI alone signs with the certificate's key.
    let o = run(hsm
        .with_pin("sign-string")
        .args(["--certificate", "pkcs11:token=ra-test;object=p256"])
        .args(["--format", "bin"]));
    assert_exit(&o, 0);
    let cert = ra_signer::cert::Cert::first_from_file(&cert_file("p256")).expect("cert");
    let mut message = b"AWS Roles Anywhere Credential Helper Signing Test1".to_vec();
    let mut tagged = b"IAM RA".to_vec();
    tagged.extend_from_slice(cert.public_key_bits());
    message.extend_from_slice(ring::digest::digest(&ring::digest::SHA256, &tagged).as_ref());
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        cert.public_key_bits(),
    )
    .verify(&message, &o.stdout)
    .expect("the signature verifies with the certificate's key");
}

#[cfg(feature = "pkcs11")]
#[test]
fn pkcs11_certificate_uri_alone_in_update_serve_and_boto3() {
    let hsm = Hsm::new();
    let emu = hsm.emulator();
    let module = fixture().module.to_str().expect("utf-8").to_owned();
    let uri = format!("pkcs11:token=ra-test;object=p256?pin-value={PIN}");
    let mut identity = vec!["--certificate".to_owned(), uri];
    identity.extend(["--pkcs11-lib".to_owned(), module]);
    identity.extend(emu.session_args());

    // update --once writes the profile the AWS CLI reads.
    let creds = hsm.path().join("credentials");
    let mut cmd = hsm.cmd("update");
    cmd.args(&identity)
        .args(["--once", "--profile", "dropin"])
        .env("AWS_SHARED_CREDENTIALS_FILE", &creds);
    assert_exit(&run(&mut cmd), 0);
    let written = std::fs::read_to_string(&creds).expect("credentials file");
    assert!(
        written.contains("[dropin]") && written.contains("aws_session_token"),
        "{written}"
    );

    // serve answers IMDSv2 with the token key's credentials.
    let mut args = vec!["serve".to_owned()];
    args.extend(identity.iter().cloned());
    args.extend(["--port".to_owned(), "0".to_owned()]);
    let conf = hsm.path().join("softhsm2.conf");
    let d = crate::serve::Daemon::start(hsm.path(), &args, &[("SOFTHSM2_CONF", conf.as_path())]);
    let (status, served) = crate::serve::imds_credentials(&d.url(), crate::serve::role_name());
    assert_eq!(status, 200, "{served}");
    assert_issued_key(&served);
    drop(d);

    // boto3, from a config profile whose credential_process is the Go helper's line.
    let config = crate::real_clients::aws_config(hsm.path(), &identity);
    let got = crate::real_clients::boto3_credentials(
        hsm.path(),
        &config,
        &[("SOFTHSM2_CONF", conf.as_path())],
    );
    assert_issued_key(&got);
    assert_eq!(emu.stats()["issued"], 3, "{}", emu.stats());
    let (leaf, chain) = {
        let mut cmd = hsm.cmd("credential-process");
        cmd.args(&identity).arg("--debug");
        sent(&run(&mut cmd))
    };
    assert!(leaf == der(&cert_file("p256")) && chain == vec![der(&ca_file("int"))]);
}

#[cfg(feature = "pkcs11")]
#[test]
fn read_certificate_data_prints_the_go_helper_listing_for_a_token() {
    let hsm = Hsm::new();
    let module = fixture().module.to_str().expect("utf-8").to_owned();
    // No PIN: certificates are public.
    let list = |uri: &str, extra: &[&str]| -> Output {
        run(hsm
            .cmd("read-certificate-data")
            .args(["--pkcs11-lib", &module, "--certificate", uri])
            .args(extra))
    };
    let o = list("pkcs11:token=ra-test;object=p256", &[]);
    assert_exit(&o, 0);
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "Matching identities");
    let cert = ra_signer::cert::Cert::first_from_file(&cert_file("p256")).expect("cert");
    assert_eq!(
        lines[1],
        format!("1) {} \"CN=p256,O=ra-signer test\"", cert.sha1_hex())
    );
    let selecting = lines[2].strip_prefix("\tURI: ").expect("URI line");
    let json = list(selecting, &["--format", "json"]);
    assert_exit(&json, 0);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");

    let o = list("pkcs11:token=ra-test", &[]);
    let text = stdout(&o);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("\tURI: ")).count(),
        10
    );
    for (i, l) in text.lines().skip(1).step_by(2).enumerate() {
        assert!(l.starts_with(&format!("{}) ", i + 1)), "{text}");
    }

    let o = list("pkcs11:token=ra-test;object=no-such-label", &[]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "No matching identities\n");
}

/// A token that keeps a certificate private (CKA_PRIVATE) shows it only after a login:
/// read-certificate-data logs in when a PIN is given, and never prompts for one.
#[cfg(feature = "pkcs11")]
#[test]
fn read_certificate_data_logs_in_only_for_a_hidden_certificate() {
    let hsm = Hsm::new();
    let module = fixture().module.to_str().expect("utf-8").to_owned();
    let conf = hsm.path().join("softhsm2.conf");
    // GnuTLS's p11tool marks it CKA_PRIVATE (pkcs11-tool's --private does not, for certificates).
    let out = std::process::Command::new("p11tool")
        .env("SOFTHSM2_CONF", &conf)
        .env("GNUTLS_PIN", PIN)
        .args([
            "--provider",
            &module,
            "--login",
            "--write",
            "--load-certificate",
        ])
        .arg(cert_file("p384"))
        .args([
            "--label",
            "hidden",
            "--id",
            "42",
            "--mark-private",
            "pkcs11:token=ra-test",
        ])
        .output()
        .expect("p11tool");
    assert_exit(&out, 0);
    let list = |with_pin: bool| -> Output {
        let mut cmd = if with_pin {
            hsm.with_pin("read-certificate-data")
        } else {
            let mut c = hsm.cmd("read-certificate-data");
            c.args(["--pkcs11-lib", &module]);
            c
        };
        run(cmd
            .args(["--certificate", "pkcs11:token=ra-test;object=hidden"])
            .stdin(std::process::Stdio::null()))
    };
    let o = list(false);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "No matching identities\n");
    assert!(
        stderr(&o).contains("may keep certificates private"),
        "{}",
        stderr(&o)
    );
    let o = list(true);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).starts_with("Matching identities\n1) "),
        "{}",
        stdout(&o)
    );
    // A public certificate is listed without a login attempt: a wrong PIN is never used.
    let o = run(hsm
        .cmd("read-certificate-data")
        .env("RA_SIGNER_PKCS11_PIN", "wrong-pin")
        .args(["--pkcs11-lib", &module])
        .args(["--certificate", "pkcs11:token=ra-test;object=p256"]));
    assert_exit(&o, 0);
    assert!(stdout(&o).starts_with("Matching identities\n1) "));
}

/// The context-specific PIN's hint names its own sources and --reuse-pin.
#[cfg(feature = "pkcs11")]
#[test]
fn missing_context_pin_names_reuse_pin() {
    let hsm = Hsm::new();
    let emu = hsm.emulator();
    let mut cmd = hsm.with_pin("credential-process");
    let o = run(cmd
        .args(["--pkcs11-uri", "pkcs11:token=ra-test;object=always-rsa"])
        .args(emu.session_args())
        .stdin(std::process::Stdio::null()));
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(
        err.contains("--reuse-pin")
            && err.contains("--pkcs11-context-pin-file")
            && err.contains("RA_SIGNER_PKCS11_CONTEXT_PIN")
            && !err.contains("RA_SIGNER_PKCS11_PIN,"),
        "{err}"
    );
}
