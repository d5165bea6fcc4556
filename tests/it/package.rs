//! The systemd units and the Debian package. The units are checked by the real
//! `systemd-analyze` (verify, and the exposure score of `security`); the package is built
//! by scripts/package.sh from the binary these tests run, installed with the real `dpkg`,
//! used, removed and purged. systemd is not PID 1 in a container: the units are verified,
//! never started.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

const UNITS: [&str; 2] = ["ra-signer-serve@.service", "ra-signer-update@.service"];
/// The worst exposure `systemd-analyze security` may give a unit ("OK" ends at 4.9).
const MAX_EXPOSURE: f64 = 2.5;

fn source_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `systemd-analyze verify` of the instance `test` of each unit in `dir`, with `env`.
fn verify(dir: &Path, env: &[(&str, &Path)]) {
    for unit in UNITS {
        let instance = dir.join(unit.replace("@.", "@test."));
        let mut cmd = Command::new("systemd-analyze");
        cmd.arg("verify").arg(&instance);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = run(&mut cmd);
        assert_exit(&out, 0);
        // Unknown keys and bad values are warnings with exit 0.
        assert!(out.stderr.is_empty(), "{unit}: {}", stderr(&out));
    }
}

fn exposure(unit: &Path) -> f64 {
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(unit));
    assert_exit(&out, 0);
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score:\n{text}"));
    let score = line.rsplit(": ").next().expect("score");
    score
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in {line}"))
}

#[test]
fn the_units_verify_and_are_hardened() {
    if !have("systemd-analyze") {
        eprintln!("package: systemd-analyze is not installed: the units are not checked");
        return;
    }
    // verify wants ExecStart's binary and the man: pages of Documentation= to exist: the
    // units point at the binary under test, and MANPATH at the pages it generates.
    let dir = tempdir();
    let built = bin("ra-signer");
    for unit in UNITS {
        let text = std::fs::read_to_string(source_dir().join("packaging/systemd").join(unit))
            .expect("unit");
        assert!(text.contains("ExecStart=/usr/bin/ra-signer "), "{unit}");
        let text = text.replace("/usr/bin/ra-signer", built.to_str().expect("path"));
        std::fs::write(dir.path().join(unit), text).expect("write");
    }
    let man = dir.path().join("man");
    let out = run(ra_signer(dir.path())
        .args(["man", "--out-dir"])
        .arg(man.join("man1")));
    assert_exit(&out, 0);
    verify(dir.path(), &[("MANPATH", &man)]);
    for unit in UNITS {
        let score = exposure(&dir.path().join(unit.replace("@.", "@test.")));
        eprintln!("package: {unit}: exposure {score}");
        assert!(score <= MAX_EXPOSURE, "{unit}: exposure {score}");
    }
}

fn dpkg(args: &[&str]) -> Output {
    run(Command::new("dpkg").args(args))
}

/// dpkg's status of ra-signer: "installed", "config-files", or "" when unknown to it.
fn status() -> String {
    let out = run(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Status}", "ra-signer"]));
    stdout(&out).trim().to_owned()
}

/// Purges the package when the test ends, passed or not.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        if !status().is_empty() {
            let _ = dpkg(&["--purge", "ra-signer"]);
        }
    }
}

#[test]
fn the_debian_package_installs_works_and_purges_without_a_trace() {
    // The package carries both builds (src/tpm_build.rs).
    if !cfg!(feature = "tpm") {
        eprintln!("package: a test build without the TPM backend has no TPM build to package");
        return;
    }
    if !is_root() {
        eprintln!("package: not root: dpkg -i is not tried (CI runs the tests as root)");
        return;
    }
    if !have("dpkg") {
        eprintln!("package: no dpkg here (not Debian): the package is not tried");
        return;
    }
    let _purge = Purge;
    // A run that was killed half-way left it installed: start from nothing.
    if !status().is_empty() {
        eprintln!("package: ra-signer was left installed: purging it first");
        assert_exit(&dpkg(&["--purge", "ra-signer"]), 0);
    }

    // Refused: one build without the other, and a /usr/bin/ra-signer that links libtss2.
    let package = |args: &[&Path]| {
        run(Command::new(source_dir().join("scripts/package.sh"))
            .args(args)
            .current_dir(source_dir()))
    };
    let out = package(&[Path::new("--binary"), &bin("ra-signer-no-tpm")]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("both or neither"), "{}", stderr(&out));
    let with_tpm = bin("ra-signer");
    let out = package(&[
        Path::new("--binary"),
        &with_tpm,
        Path::new("--tpm-binary"),
        &with_tpm,
    ]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("links libtss2"), "{}", stderr(&out));

    let out = package(&[
        Path::new("--binary"),
        &bin("ra-signer-no-tpm"),
        Path::new("--tpm-binary"),
        &with_tpm,
    ]);
    assert_exit(&out, 0);
    let deb = source_dir().join(stdout(&out).trim());
    assert!(
        deb.extension().is_some_and(|e| e == "deb"),
        "{}",
        deb.display()
    );

    assert_exit(&dpkg(&["--install", deb.to_str().expect("path")]), 0);
    assert_eq!(status(), "installed");
    let listed = dpkg(&["--listfiles", "ra-signer"]);
    assert_exit(&listed, 0);
    let files: Vec<PathBuf> = stdout(&listed)
        .lines()
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .collect();

    let version = run(Command::new("/usr/bin/ra-signer").arg("--version"));
    assert_exit(&version, 0);
    assert_eq!(
        stdout(&version).trim(),
        format!("ra-signer {}", env!("CARGO_PKG_VERSION"))
    );
    // /usr/bin/ra-signer loads no TPM stack; a TPM command is run by the TPM build beside
    // it, which reports the TPM it cannot reach (where /usr/bin/ra-signer alone would say it
    // was built without TPM support).
    let tpm_build = PathBuf::from("/usr/lib/ra-signer/ra-signer-tpm");
    assert!(files.contains(&tpm_build));
    let bin_needs = needed_libraries(Path::new("/usr/bin/ra-signer"));
    assert!(!bin_needs.contains("libtss2"), "{bin_needs}");
    assert!(needed_libraries(&tpm_build).contains("libtss2-esys"));
    let dir = tempdir();
    let leaf = Ca::root(dir.path(), "package test CA").leaf(
        dir.path(),
        "package-leaf",
        KeyKind::P256,
        &LeafOptions::default(),
    );
    let tcti = format!("swtpm:host=127.0.0.1,port={}", closed_port());
    let out = run(Command::new("/usr/bin/ra-signer")
        .stdin(std::process::Stdio::null())
        .arg("credential-process")
        .arg("--certificate")
        .arg(&leaf.cert_path)
        .args(["--private-key", "handle:0x81000001", "--tpm-tcti", &tcti])
        .args([
            "--trust-anchor-arn",
            TRUST_ANCHOR_ARN,
            "--profile-arn",
            PROFILE_ARN,
        ])
        .args(["--role-arn", ROLE_ARN]));
    assert_exit(&out, 3);
    assert!(
        stderr(&out).contains("cannot reach the TPM"),
        "{}",
        stderr(&out)
    );

    for page in ["ra-signer", "ra-signer-serve", "ra-signer-cache-list"] {
        let found = run(Command::new("man").args(["-w", page]));
        assert_exit(&found, 0);
        assert!(
            stdout(&found).starts_with("/usr/share/man/man1/"),
            "{page}: {}",
            stdout(&found)
        );
    }
    let completions = [
        "/usr/share/bash-completion/completions/ra-signer",
        "/usr/share/zsh/vendor-completions/_ra-signer",
        "/usr/share/fish/vendor_completions.d/ra-signer.fish",
    ];
    for file in completions {
        assert!(Path::new(file).is_file(), "{file}");
    }
    assert_eq!(
        crate::generate::bash_complete(Path::new(completions[0]), &["ra-signer", "upd"]),
        ["update"]
    );
    for unit in UNITS {
        assert!(
            files.contains(&Path::new("/usr/lib/systemd/system").join(unit)),
            "{unit}"
        );
    }
    if have("systemd-analyze") {
        verify(Path::new("/usr/lib/systemd/system"), &[]);
    }
    let conffiles = run(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "ra-signer"]));
    assert!(
        stdout(&conffiles).contains("/etc/ra-signer/config.toml"),
        "{}",
        stdout(&conffiles)
    );
    assert!(files.contains(&PathBuf::from("/usr/share/doc/ra-signer/package.md")));
    // The installed example is a config file the units' command line reads: it parses, and
    // (all comments) names no identity yet.
    let mut doctor = Command::new("/usr/bin/ra-signer");
    doctor.stdin(std::process::Stdio::null()).args([
        "doctor",
        "--config",
        "/etc/ra-signer/config.toml",
        "--identity",
        "prod",
    ]);
    let out = run(&mut doctor);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("no identity \"prod\" in the config file /etc/ra-signer/config.toml: it has no [identity.NAME] table"),
        "{}",
        stderr(&out)
    );

    // Removed, the package leaves its conffile alone; purged, nothing.
    assert_exit(&dpkg(&["--remove", "ra-signer"]), 0);
    assert_eq!(status(), "config-files");
    let left: Vec<&PathBuf> = files.iter().filter(|f| f.exists()).collect();
    assert_eq!(left, [&PathBuf::from("/etc/ra-signer/config.toml")]);
    assert_exit(&dpkg(&["--purge", "ra-signer"]), 0);
    assert_eq!(status(), "");
    let left: Vec<&PathBuf> = files.iter().filter(|f| f.exists()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!Path::new("/etc/ra-signer").exists());
    assert!(!Path::new("/usr/share/doc/ra-signer").exists());
    assert!(!Path::new("/usr/lib/ra-signer").exists());
    let listed = dpkg(&["--listfiles", "ra-signer"]);
    assert!(stdout(&listed).trim().is_empty(), "{}", stdout(&listed));
}

fn is_root() -> bool {
    let out = run(Command::new("id").arg("-u"));
    stdout(&out).trim() == "0"
}
