//! Bytes from the endpoint are not trusted (issue 9, defect 2): credentials outside their
//! alphabet or already expired are refused before they reach stdout, a credentials file or
//! the `serve` endpoint, with exit 5, and nothing a user owns is touched.

use crate::common::*;

const PREVIOUS: &str = "[default]\nregion = eu-west-1\n\n[ra]\naws_access_key_id = ASIAOLDOLDOLDOLDOLD1\naws_secret_access_key = old\naws_session_token = old\n";

/// `serve` on any port, one attempt: it must not start.
fn serve(w: &World, leaf: &Leaf) -> std::process::Output {
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("serve")
        .args(leaf.file_args())
        .args(w.emulator.session_args())
        .args(["--port", "0", "--max-attempts", "1"]);
    run(&mut cmd)
}

#[test]
fn injected_credentials_are_refused_everywhere_and_write_nothing() {
    let w = World::new(&["--fault", "hostile"]);
    let leaf = w.leaf("hostile", KeyKind::P256);
    let o = w.credential_process(&leaf, &["--max-attempts", "1"]);
    assert_exit(&o, 5);
    assert!(o.stdout.is_empty(), "nothing on stdout");
    let err = stderr(&o);
    assert!(
        err.contains("secretAccessKey") && err.contains("refused"),
        "{err}"
    );
    assert!(!err.contains("evil") && !err.contains("touch"), "{err}");

    let file = w.dir.path().join("credentials");
    std::fs::write(&file, PREVIOUS).expect("write");
    let mut cmd = ra_signer(w.dir.path());
    cmd.arg("update")
        .args(leaf.file_args())
        .args(w.emulator.session_args())
        .args(["--once", "--profile", "ra", "--max-attempts", "1"])
        .env("AWS_SHARED_CREDENTIALS_FILE", &file);
    let o = run(&mut cmd);
    assert_exit(&o, 5);
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        PREVIOUS,
        "the credentials file is untouched"
    );

    let o = serve(&w, &leaf);
    assert_exit(&o, 5);
    assert!(stderr(&o).contains("secretAccessKey"), "{}", stderr(&o));
    assert!(!std::path::Path::new("/tmp/ra-signer-pwned").exists());
}

#[test]
fn expired_credentials_are_refused() {
    let w = World::new(&["--fault", "expired"]);
    let leaf = w.leaf("expired", KeyKind::P256);
    let o = w.credential_process(&leaf, &["--max-attempts", "1"]);
    assert_exit(&o, 5);
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("already expired"), "{}", stderr(&o));

    let o = serve(&w, &leaf);
    assert_exit(&o, 5);
    assert!(stderr(&o).contains("already expired"), "{}", stderr(&o));
}
