//! The package's two builds (src/tpm_build.rs): `ra-signer` without the TPM backend runs a
//! command that needs a TPM by `exec`ing the build with the backend installed beside it
//! (`../lib/ra-signer/ra-signer-tpm`), with the same arguments and the secrets its start-up
//! took out of the environment; every other command runs without the TPM stack. The build
//! without the backend is `bin("ra-signer-no-tpm")`, which scripts/test.sh makes before the
//! tests; the build with it is the tests' own `ra-signer`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::*;
use crate::tpm::TpmWorld;

/// The package's layout in a temp dir: `bin/ra-signer` (the build without the backend) and,
/// unless `tpm_build` is None, `lib/ra-signer/ra-signer-tpm` (a copy of it).
struct Layout {
    dir: tempfile::TempDir,
}

impl Layout {
    fn new(tpm_build: Option<&Path>) -> Layout {
        let dir = tempdir();
        std::fs::create_dir_all(dir.path().join("bin")).expect("bin");
        std::fs::copy(bin("ra-signer-no-tpm"), dir.path().join("bin/ra-signer")).expect("copy");
        if let Some(build) = tpm_build {
            let lib = dir.path().join("lib/ra-signer");
            std::fs::create_dir_all(&lib).expect("lib");
            std::fs::copy(build, lib.join("ra-signer-tpm")).expect("copy");
        }
        Layout { dir }
    }

    fn ra_signer(&self) -> PathBuf {
        self.dir.path().join("bin/ra-signer")
    }

    fn tpm_build(&self) -> PathBuf {
        self.dir.path().join("lib/ra-signer/ra-signer-tpm")
    }
}

/// `cmd` (arguments and the variables it sets) run by `program` instead, with nothing else
/// in its environment.
fn run_by(program: &Path, cmd: &Command) -> Command {
    let mut other = Command::new(program);
    other.args(cmd.get_args()).env_clear().stdin(Stdio::null());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            other.env(k, v);
        }
    }
    other
}

#[test]
fn the_build_without_the_backend_links_no_tpm_library() {
    assert!(needed_libraries(&bin("ra-signer")).contains("libtss2-esys"));
    let without = needed_libraries(&bin("ra-signer-no-tpm"));
    assert!(!without.contains("libtss2"), "{without}");
    assert!(!without.contains("libcrypto"), "{without}");
}

/// A certificate, a key, extra flags, and extra environment.
type Case<'a> = (&'a str, &'a str, &'a [&'a str], &'a [(&'a str, &'a str)]);

#[test]
fn tpm_keys_work_through_the_tpm_build_with_secrets_from_the_environment() {
    let layout = Layout::new(Some(&bin("ra-signer")));
    let w = TpmWorld::new();
    let cases: [Case<'_>; 4] = [
        ("ossl-p256", "ossl-p256", &[], &[]),
        // The key's and the parent's passwords, which start-up removes from the
        // environment, reach the TPM build.
        (
            "tools-p256-pw",
            "tools-p256-pw",
            &[],
            &[("RA_SIGNER_TPM_KEY_PASSWORD", "toolspw")],
        ),
        (
            "srkpw-p256",
            "srkpw-p256",
            &["--no-tpm-key-password"],
            &[("RA_SIGNER_TPM_PARENT_PASSWORD", "srkpw")],
        ),
        (
            "handle-rsa-pw",
            "handle:0x81000102",
            &[],
            &[("RA_SIGNER_TPM_KEY_PASSWORD", "handlepw")],
        ),
    ];
    for (cert, key, extra, env) in cases {
        let mut cmd = run_by(
            &layout.ra_signer(),
            &w.subcommand("credential-process", cert, key, true, extra),
        );
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = run(&mut cmd);
        assert_issued_key(&assert_process_json(&out));
    }
    // The same command without the TPM build beside it is refused, with the way out.
    let alone = Layout::new(None);
    let out = run(&mut run_by(
        &alone.ra_signer(),
        &w.subcommand("credential-process", "ossl-p256", "ossl-p256", true, &[]),
    ));
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("built without TPM support")
            && err.contains("/usr/lib/ra-signer/ra-signer-tpm"),
        "{err}"
    );
}

/// A stand-in for the TPM build that records what it was given: its arguments, one per
/// line, then its environment. (A script's `$0` is its own path: the kernel's `#!` handling
/// drops the caller's argv[0], which this cannot check.)
fn recorder(layout: &Layout) -> PathBuf {
    let record = layout.dir.path().join("record");
    let script = format!(
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '{r}'\n\
         echo --- >> '{r}'\nenv >> '{r}'\nexit 42\n",
        r = record.display()
    );
    std::fs::write(layout.tpm_build(), script).expect("script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(layout.tpm_build(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    record
}

#[test]
fn only_commands_that_need_a_tpm_are_handed_over_with_arguments_and_secrets_intact() {
    let layout = Layout::new(None);
    std::fs::create_dir_all(layout.tpm_build().parent().expect("lib")).expect("lib");
    let record = recorder(&layout);
    let w = World::new(&[]);
    let leaf = w.leaf("file-p256", KeyKind::P256);

    // A file key: run here, the stand-in never called.
    let mut file_key = Command::new(layout.ra_signer());
    file_key
        .env_clear()
        .env("HOME", w.dir.path())
        .stdin(Stdio::null())
        .arg("credential-process")
        .args(leaf.file_args())
        .args(w.emulator.session_args());
    assert_issued_key(&assert_process_json(&run(&mut file_key)));
    assert!(!record.exists(), "a file-key run reached the TPM build");

    // A TSS2 key file: handed over, exit status and all, with its arguments as given and
    // the PIN and passwords start-up captured.
    let tss2 = w.dir.path().join("key.tss2.pem");
    std::fs::write(
        &tss2,
        "-----BEGIN TSS2 PRIVATE KEY-----\nMAA=\n-----END TSS2 PRIVATE KEY-----\n",
    )
    .expect("key");
    let args: Vec<String> = [
        "credential-process",
        "--certificate",
        leaf.cert_path.to_str().expect("utf-8"),
        "--private-key",
        tss2.to_str().expect("utf-8"),
        "--tpm-tcti",
        "swtpm:host=127.0.0.1,port=1",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain(w.emulator.session_args())
    .chain(["--role-session-name".to_owned(), "a b;c".to_owned()])
    .collect();
    let out = run(Command::new(layout.ra_signer())
        .env_clear()
        .env("HOME", w.dir.path())
        .env("RA_SIGNER_TPM_KEY_PASSWORD", "key pw")
        .env("RA_SIGNER_PKCS11_PIN", "1234")
        .stdin(Stdio::null())
        .args(&args));
    assert_exit(&out, 42);
    let text = std::fs::read_to_string(&record).expect("record");
    let (argv, env) = text.split_once("---\n").expect("separator");
    let argv: Vec<&str> = argv.lines().collect();
    assert_eq!(argv, args.iter().map(String::as_str).collect::<Vec<_>>());
    let env: Vec<&str> = env.lines().collect();
    assert!(
        env.contains(&"RA_SIGNER_TPM_KEY_PASSWORD=key pw"),
        "{env:?}"
    );
    assert!(env.contains(&"RA_SIGNER_PKCS11_PIN=1234"), "{env:?}");

    // keygen --tpm too.
    std::fs::remove_file(&record).expect("rm");
    let out = run(Command::new(layout.ra_signer())
        .env_clear()
        .env("HOME", w.dir.path())
        .stdin(Stdio::null())
        .args(["keygen", "--tpm", "--key-type", "p256", "--out"])
        .arg(w.dir.path().join("new.tss2.pem")));
    assert_exit(&out, 42);
    assert!(record.exists());
}

#[test]
fn a_tpm_build_that_cannot_run_is_named_with_a_hint() {
    let layout = Layout::new(Some(&bin("ra-signer")));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(layout.tpm_build(), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let out = run(Command::new(layout.ra_signer())
        .env_clear()
        .stdin(Stdio::null())
        .args([
            "keygen",
            "--tpm",
            "--key-type",
            "p256",
            "--out",
            "/nonexistent/k",
        ]));
    assert_exit(&out, 1);
    let err = stderr(&out);
    let shown = layout.tpm_build().canonicalize().expect("canonical");
    assert!(
        err.contains(&format!("cannot run {}", shown.display()))
            && err.contains("Permission denied")
            && err.contains("reinstall the package"),
        "{err}"
    );
}
