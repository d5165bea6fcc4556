//! `keygen --tpm`: the passwords resolved, the key created inside the TPM through the
//! backend's keygen API, and its CSR signed there.

use super::error::KeygenError;
use crate::cert::KeyType;
use crate::config::{TpmKeygen, TpmParent};
use crate::secret::{self, Secret, SecretError, SecretSource};
use crate::signer::tpm::{self, NewKey, Tcti, TpmError};
use crate::signer::{Signer, csr};
use crate::subject::Subject;

/// A key made inside the TPM, and its CSR.
#[derive(Debug)]
pub(super) struct TpmKey {
    /// Its type.
    pub(super) key_type: KeyType,
    /// The `--private-key` value that names it (the file, or `handle:0x81…`).
    pub(super) private_key_arg: String,
    /// The TSS2 key file to write, PEM (none for a persistent key).
    pub(super) key_file: Option<String>,
    /// The CSR, PEM.
    pub(super) csr_pem: String,
}

/// Creates the key and has it sign the CSR for `subject`.
pub(super) fn generate(config: &TpmKeygen, subject: &Subject) -> Result<TpmKey, KeygenError> {
    let key_password = optional_secret(&config.key_password_sources, "the new TPM key's password")?;
    let parent_password =
        tpm::parent_password(&config.parent_password_sources).map_err(TpmError::from)?;
    let owner_password = match optional_secret(
        &config.owner_password_sources,
        "the owner hierarchy password",
    )? {
        Some(pw) => Some(pw),
        None if config.parent == TpmParent::Owner => parent_password.clone(),
        None => None,
    };
    let created = tpm::create_key(
        Tcti::new(&config.connection),
        &NewKey {
            key_type: config.key_type,
            target: config.target.clone(),
            parent: config.parent,
            key_password,
            parent_password,
            owner_password,
        },
    )?;
    let csr_pem = csr::request_pem(subject, &created.signer)
        .map_err(|e| KeygenError::csr(created.signer.description(), e))?;
    Ok(TpmKey {
        key_type: created.signer.key_type(),
        private_key_arg: created.private_key_arg,
        key_file: created.key_file,
        csr_pem,
    })
}

/// A password that may be absent: none given, or given empty, is none.
fn optional_secret(sources: &[SecretSource], what: &str) -> Result<Option<Secret>, TpmError> {
    match secret::resolve(sources, what) {
        Ok(s) if s.expose().is_empty() => Ok(None),
        Ok(s) => Ok(Some(s)),
        Err(SecretError::NoneGiven { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::{CsrRequest, KeygenConfig, KeygenJob, TpmKeyTarget, TpmKeyType};
    use crate::signer::Digest;
    use crate::signer::tpm::swtpm::{Swtpm, serial};
    use crate::signer::tpm::{KeyLocation, Passwords, TpmSigner, read_key_file};

    fn config(
        tpm: &Swtpm,
        key_type: TpmKeyType,
        target: TpmKeyTarget,
        pw: Option<&str>,
    ) -> TpmKeygen {
        TpmKeygen {
            connection: crate::config::TpmConnection::explicit(&tpm.tcti()),
            parent_password_sources: vec![],
            key_type,
            target,
            parent: TpmParent::Owner,
            key_password_sources: pw
                .map(|p| SecretSource::Value(Secret::new(p.to_owned())))
                .into_iter()
                .collect(),
            owner_password_sources: Vec::new(),
            replace: false,
        }
    }

    fn subject() -> Subject {
        Subject::parse("CN=host1,O=ra-signer test").expect("subject")
    }

    /// The whole command, files and all.
    fn keygen(tpm: TpmKeygen, csr: PathBuf) -> Result<(), KeygenError> {
        crate::keygen::run(&KeygenConfig {
            job: KeygenJob::TpmKey {
                tpm,
                csr: CsrRequest {
                    subject: subject(),
                    out: Some(csr),
                    replace: false,
                },
            },
            debug: false,
        })
    }

    fn passwords(key: Option<&str>) -> Passwords {
        Passwords {
            key: key.map(|k| Secret::new(k.to_owned())),
            key_origin: "the test",
            parent: None,
        }
    }

    fn openssl_ok(tpm: &Swtpm, args: &[&str]) -> String {
        let out = tpm.tool("openssl").args(args).output().expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    #[test]
    fn keygen_key_files_work_here_and_with_openssl() {
        let _serial = serial();
        let tpm = Swtpm::fresh();
        for (key_type, pw) in [
            (TpmKeyType::P256, None),
            (TpmKeyType::P384, Some("kpw")),
            (TpmKeyType::Rsa2048, None),
        ] {
            let key = tpm.dir().join(format!("{key_type:?}.key"));
            let csr_path = tpm.dir().join(format!("{key_type:?}.csr"));
            let target = TpmKeyTarget::File(key.clone());
            keygen(config(&tpm, key_type, target, pw), csr_path.clone()).expect("keygen");
            let csr = csr_path.to_str().expect("utf-8");
            // The CSR's self-signature, made inside the TPM, verifies.
            let text = openssl_ok(&tpm, &["req", "-in", csr, "-verify", "-noout", "-subject"]);
            assert!(
                text.contains("verify OK")
                    || text.contains("Certificate request self-signature verify OK"),
                "{text}"
            );
            assert!(text.contains("host1"), "{text}");
            assert!(
                std::fs::read_to_string(&csr_path)
                    .expect("csr")
                    .starts_with("-----BEGIN CERTIFICATE REQUEST-----")
            );
            // The key file loads here…
            let parsed = read_key_file(&key).expect("our key file parses");
            assert_eq!(parsed.empty_auth, Some(pw.is_none()));
            let signer = TpmSigner::open(
                Tcti::explicit(&tpm.tcti()),
                KeyLocation::File {
                    path: key.clone(),
                    key: parsed,
                },
                passwords(pw),
            )
            .expect("loads");
            assert!(signer.sign(Digest::Sha256, b"m").is_ok());
            drop(signer);
            // …and in OpenSSL's tpm2 provider, which signs a CSR with it.
            let key_arg = key.to_str().expect("utf-8");
            let their_csr = tpm.dir().join("openssl.csr");
            let mut args = vec![
                "req",
                "-new",
                "-provider",
                "tpm2",
                "-provider",
                "default",
                "-key",
                key_arg,
                "-subj",
                "/CN=via-openssl",
                "-out",
            ];
            let their = their_csr.to_str().expect("utf-8").to_owned();
            args.push(&their);
            let passin = format!("pass:{}", pw.unwrap_or(""));
            if pw.is_some() {
                args.extend(["-passin", &passin]);
            }
            openssl_ok(&tpm, &args);
            openssl_ok(&tpm, &["req", "-in", &their, "-verify", "-noout"]);
            assert_eq!(tpm.transient_handles(), 0);
        }
        // Existing files are not replaced.
        let key = tpm.dir().join("P256.key");
        let err = keygen(
            config(&tpm, TpmKeyType::P256, TpmKeyTarget::File(key), None),
            tpm.dir().join("P256.csr"),
        )
        .expect_err("exists");
        assert!(err.to_string().contains("exists"), "{err}");
    }

    #[test]
    fn keygen_persistent_keys() {
        let _serial = serial();
        let tpm = Swtpm::fresh();
        let target = TpmKeyTarget::Persistent(0x8100_0201);
        let made = generate(
            &config(&tpm, TpmKeyType::P256, target.clone(), None),
            &subject(),
        )
        .expect("keygen");
        assert_eq!(made.private_key_arg, "handle:0x81000201");
        assert!(made.key_file.is_none());
        let csr_path = tpm.dir().join("P256.csr");
        std::fs::write(&csr_path, &made.csr_pem).expect("csr");
        openssl_ok(
            &tpm,
            &[
                "req",
                "-in",
                csr_path.to_str().expect("utf-8"),
                "-verify",
                "-noout",
            ],
        );
        let signer = TpmSigner::open(
            Tcti::explicit(&tpm.tcti()),
            KeyLocation::Persistent(0x8100_0201),
            passwords(None),
        )
        .expect("opens");
        assert_eq!(signer.key_type(), KeyType::EcP256);
        drop(signer);
        // The handle is taken now.
        let err = generate(&config(&tpm, TpmKeyType::Rsa2048, target, None), &subject())
            .expect_err("in use");
        assert!(err.to_string().contains("already in use"), "{err}");
        assert_eq!(tpm.transient_handles(), 0);
    }
}
