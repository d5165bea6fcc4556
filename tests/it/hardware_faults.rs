//! Hardware that fails under a running `serve`: the failure reaches the log with the
//! hardware's own code and what to do, and the last good credentials keep being served.

/// A SoftHSM2 token going away under `serve`.
#[cfg(feature = "pkcs11")]
mod token {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use crate::common::*;
    use crate::serve::{Daemon, imds_credentials, role_name, softhsm_token};

    /// The directory of the SoftHSM2 token labelled `label` under the token store `tokens`.
    fn token_dir(tokens: &Path, label: &str) -> PathBuf {
        let mut padded = label.as_bytes().to_vec();
        padded.resize(32, b' ');
        std::fs::read_dir(tokens)
            .expect("token store")
            .map(|e| e.expect("entry").path())
            .find(|dir| {
                std::fs::read(dir.join("token.object"))
                    .is_ok_and(|b| b.windows(padded.len()).any(|w| w == padded.as_slice()))
            })
            .unwrap_or_else(|| panic!("no token {label} in {}", tokens.display()))
    }

    fn serve_on_token(dir: &Path) -> (Daemon, Emulator, PathBuf) {
        let (conf, _module, root) = softhsm_token(dir);
        let emulator = Emulator::start(dir, &[&root], &[]);
        let pin_file = dir.join("pin");
        std::fs::write(&pin_file, "1234\n").expect("pin");
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--port".into(),
            "0".into(),
            "--pkcs11-uri".into(),
            "pkcs11:token=ra-test;object=p256".into(),
            "--pkcs11-pin-file".into(),
            pin_file.display().to_string(),
        ];
        args.extend(emulator.session_args());
        let d = Daemon::start(dir, &args, &[("SOFTHSM2_CONF", conf.as_path())]);
        (
            d,
            emulator,
            conf.parent().expect("fixture dir").join("tokens"),
        )
    }

    /// What SoftHSM2 does when its token goes away under a running process (the token's
    /// directory moved out of the store; `softhsm2-util --delete-token` removes it the same
    /// way): it re-reads the store, and `C_Sign` on the session opened before answers
    /// `CKR_OBJECT_HANDLE_INVALID`, the key being gone; `C_GetTokenInfo` for a re-open answers
    /// `CKR_GENERAL_ERROR`. Putting the directory back does not revive the slot in a process
    /// that has it initialised. (`chmod 000` on the directory does nothing to a root process.)
    #[test]
    fn a_token_that_disappears_during_serve_is_logged_with_its_ckr_name_and_hint() {
        let dir = tempdir();
        let (mut d, _emulator, tokens) = serve_on_token(dir.path());
        let (status, _) = imds_credentials(&d.url(), role_name());
        assert_eq!(status, 200);
        let token = token_dir(&tokens, "ra-test");
        std::fs::rename(&token, dir.path().join("away")).expect("move the token away");

        let failed = d.refresh_now("refresh 1 of role");
        assert!(
            failed.contains(
                "signing failed: C_Sign failed with CKR_OBJECT_HANDLE_INVALID for key object=p256"
            ),
            "{failed}"
        );
        assert!(failed.contains("(hint: check the token: "), "{failed}");
        assert!(
            failed.contains("the current credentials stay in service until"),
            "{failed}"
        );
        let (status, kept) = imds_credentials(&d.url(), role_name());
        assert_eq!(status, 200, "{}", d.stderr());

        // Later refreshes fail the same way, and the same credentials keep being served.
        d.refresh_now("refresh 2 of role");
        let (status, still) = imds_credentials(&d.url(), role_name());
        assert_eq!(status, 200, "{}", d.stderr());
        assert_eq!(still["AccessKeyId"], kept["AccessKeyId"]);
        assert_eq!(still["Expiration"], kept["Expiration"]);
        let reopen = d.wait_for("cannot re-open the identity", Duration::from_secs(1));
        assert!(
            reopen.contains("still signing with the previous one")
                && reopen.contains("failed with CKR_GENERAL_ERROR"),
            "{reopen}"
        );
        let status = d.terminate(Duration::from_secs(10));
        assert!(status.success(), "{}", d.stderr());
    }
}

/// A swtpm in dictionary-attack lockout at signing time.
#[cfg(feature = "tpm")]
mod tpm {
    use std::process::Command;

    use crate::common::*;
    use crate::tpm::TpmWorld;

    /// A TPM that locks out after one wrong password: the wrong password is refused once
    /// (`TPM_RC_AUTH_FAIL`), and the right one then meets the lockout at `TPM2_Sign`,
    /// named with its response code and the way out.
    #[test]
    fn a_tpm_in_lockout_at_signing_time_names_the_lockout_and_how_to_clear_it() {
        let w = TpmWorld::new();
        let setup = Command::new("tpm2_dictionarylockout")
            .args(["--setup-parameters", "--max-tries=1"])
            .args(["--recovery-time=600", "--lockout-recovery-time=600"])
            .env("TPM2TOOLS_TCTI", w.tpm.tcti())
            .output()
            .expect("run tpm2_dictionarylockout");
        assert_exit(&setup, 0);
        let key = |password| {
            w.run(
                "handle-rsa-pw",
                "handle:0x81000102",
                &[],
                &[("RA_SIGNER_TPM_KEY_PASSWORD", password)],
            )
        };
        let wrong = key("wrong");
        assert_exit(&wrong, 3);
        assert!(
            stderr(&wrong).contains("TPM_RC_AUTH_FAIL"),
            "{}",
            stderr(&wrong)
        );

        let locked = key("handlepw");
        assert_exit(&locked, 3);
        let err = stderr(&locked);
        assert!(
            err.contains(
                "error: signing failed: the TPM is in dictionary-attack lockout and refuses \
                 passwords (TPM_RC_LOCKOUT (0x921))"
            ),
            "{err}"
        );
        assert!(
            err.contains("hint: wait for the lockout to expire, or clear it with the lockout password (tpm2_dictionarylockout --clear-lockout)"),
            "{err}"
        );
        assert_eq!(w.emulator.stats()["issued"].as_u64(), Some(0));
    }
}
