//! `ra-signer keygen`: generates a key pair inside a PKCS#11 token (sensitive, never
//! extractable) or a TPM 2.0 (`--tpm`), writes a PKCS#10 CSR signed by that key for a
//! private CA, and, for tokens, once the CA has issued it, stores the certificate beside the
//! key (`--import-cert`).
//!
//! ```text
//! ra-signer keygen --pkcs11-uri 'pkcs11:token=prod;object=ra;id=%01' --key-type p256 \
//!     --subject 'CN=host1,O=Example' --csr-out host1.csr
//! ra-signer keygen --pkcs11-uri 'pkcs11:token=prod;object=ra' --import-cert host1.pem
//! ra-signer keygen --tpm --key-type p256 --out host1.tss2.pem --subject 'CN=host1' --csr-out host1.csr
//! ```

use std::path::PathBuf;

use crate::error::{Error, ErrorClass};

/// The key types `keygen` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeygenKeyType {
    /// RSA, 2048 bits.
    Rsa2048,
    /// RSA, 3072 bits.
    Rsa3072,
    /// ECDSA on NIST P-256.
    P256,
    /// ECDSA on NIST P-384.
    P384,
}

/// Flags of `ra-signer keygen`.
#[derive(Debug, Clone, clap::Args)]
pub struct KeygenArgs {
    /// The token and the key's label and id: pkcs11:token=LABEL;object=KEY-LABEL;id=%01.
    /// Without id=, a random 8-byte id is chosen. module-path= and pin-source= are honoured.
    #[arg(
        long,
        value_name = "URI",
        required_unless_present = "tpm",
        conflicts_with = "tpm"
    )]
    pub pkcs11_uri: Option<String>,

    /// Generate the key inside the TPM instead (with --out or --persistent).
    #[arg(long, conflicts_with_all = ["import_cert", "always_auth", "pkcs11_lib", "pkcs11_pin_file"])]
    pub tpm: bool,

    /// With --tpm: write the new key as a TSS2 PRIVATE KEY file.
    #[arg(
        long,
        value_name = "KEY_FILE",
        requires = "tpm",
        conflicts_with = "persistent"
    )]
    pub out: Option<PathBuf>,

    /// With --tpm: make the new key persistent at this handle (needs the owner hierarchy;
    /// its password from $RA_SIGNER_TPM_OWNER_PASSWORD).
    #[arg(long, value_name = "handle:0x81xxxxxx", requires = "tpm")]
    pub persistent: Option<String>,

    /// With --tpm: the parent, owner (the standard ECC storage primary), endorsement, or a
    /// persistent storage key handle:0x81xxxxxx (its password from
    /// $RA_SIGNER_TPM_PARENT_PASSWORD).
    #[arg(
        long,
        value_name = "owner|endorsement|handle:0x81xxxxxx",
        default_value = "owner"
    )]
    pub parent: String,

    /// With --tpm: the TCTI, device:PATH (a TPM device or a swtpm UNIX socket),
    /// swtpm:host=H,port=P or tabrmd (else $TPM2TOOLS_TCTI, $TSS2_TCTI, $TPM_DEVICE,
    /// device:/dev/tpmrm0).
    #[arg(long, value_name = "TCTI", requires = "tpm")]
    pub tpm_tcti: Option<String>,

    /// With --tpm: a file whose first line becomes the new key's password (else
    /// $RA_SIGNER_TPM_KEY_PASSWORD; none if neither is set).
    #[arg(long, value_name = "FILE", requires = "tpm")]
    pub tpm_key_password_file: Option<PathBuf>,

    /// With --tpm: replace existing output files.
    #[arg(long, requires = "tpm")]
    pub force: bool,

    /// The key to generate.
    #[arg(long, value_enum, default_value = "p256")]
    pub key_type: KeygenKeyType,

    /// The CSR's subject: RFC 4514 ("CN=host1,O=Example\, Inc.", most specific first) or
    /// OpenSSL ("/O=Example/CN=host1"). Attributes: CN, O, OU, C, ST, L, STREET, DC, UID,
    /// serialNumber, emailAddress, or a dotted OID.
    #[arg(long, value_name = "DN")]
    pub subject: Option<String>,

    /// Say on stderr what is generated where (never a secret).
    #[arg(long)]
    pub debug: bool,

    /// Where to write the PEM CSR (default: standard output).
    #[arg(long, value_name = "FILE")]
    pub csr_out: Option<PathBuf>,

    /// Instead of generating: store this certificate (PEM or DER; a PEM bundle's further
    /// certificates are stored as the chain) beside the existing key the URI names.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["subject", "csr_out"])]
    pub import_cert: Option<PathBuf>,

    /// Mark the new key CKA_ALWAYS_AUTHENTICATE (a PIN for every signature).
    #[arg(long)]
    pub always_auth: bool,

    /// The PKCS#11 module (default: the URI's module-path, else p11-kit's proxy).
    #[arg(long, value_name = "PATH")]
    pub pkcs11_lib: Option<PathBuf>,

    /// A file holding the user PIN (else RA_SIGNER_PKCS11_PIN, else a prompt on a terminal).
    #[arg(long, value_name = "FILE")]
    pub pkcs11_pin_file: Option<PathBuf>,
}

/// Runs `ra-signer keygen`.
pub fn run(args: &KeygenArgs) -> Result<(), Error> {
    if args.debug {
        let place = if args.tpm {
            "in the TPM"
        } else {
            "on the PKCS#11 token"
        };
        match &args.import_cert {
            Some(cert) => crate::diag!(
                "ra-signer: debug: keygen: storing {} beside the key {place}",
                cert.display()
            ),
            None => crate::diag!(
                "ra-signer: debug: keygen: generating a non-extractable {:?} key {place}",
                args.key_type
            ),
        }
    }
    if args.tpm {
        return run_tpm(args);
    }
    #[cfg(feature = "pkcs11")]
    {
        imp::run(args)
    }
    #[cfg(not(feature = "pkcs11"))]
    {
        let _ = args;
        Err(Error::new(
            ErrorClass::Usage,
            "this ra-signer was built without PKCS#11 support, which keygen needs",
        ))
    }
}

#[cfg(feature = "tpm")]
fn run_tpm(args: &KeygenArgs) -> Result<(), Error> {
    use crate::signer::tpm::{TpmKeyType, TpmKeygenArgs, run_keygen};
    let key_type = match args.key_type {
        KeygenKeyType::Rsa2048 => TpmKeyType::Rsa2048,
        KeygenKeyType::P256 => TpmKeyType::P256,
        KeygenKeyType::P384 => TpmKeyType::P384,
        KeygenKeyType::Rsa3072 => {
            return Err(Error::new(
                ErrorClass::Usage,
                "keygen --tpm makes rsa2048, p256 or p384 keys (TPMs commonly lack RSA-3072)",
            ));
        }
    };
    let subject = args.subject.clone().ok_or_else(|| {
        Error::new(
            ErrorClass::Usage,
            "keygen --tpm needs --subject for the CSR",
        )
        .with_hint("e.g. --subject 'CN=host1,O=Example'")
    })?;
    Ok(run_keygen(&TpmKeygenArgs {
        key_type,
        out: args.out.clone(),
        persistent: args.persistent.clone(),
        parent: args.parent.clone(),
        csr_out: args.csr_out.clone(),
        subject,
        tpm_tcti: args.tpm_tcti.clone(),
        tpm_key_password_file: args.tpm_key_password_file.clone(),
        force: args.force,
    })?)
}

#[cfg(not(feature = "tpm"))]
fn run_tpm(_: &KeygenArgs) -> Result<(), Error> {
    Err(Error::new(
        ErrorClass::Usage,
        "this ra-signer was built without TPM support, which keygen --tpm needs",
    )
    .with_hint("rebuild with `cargo build --release --features tpm` (needs libtss2-dev)"))
}

#[cfg(feature = "pkcs11")]
mod imp {
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{Attribute, AttributeType, CertificateType, ObjectClass, ObjectHandle};
    use cryptoki::session::Session;

    use super::{KeygenArgs, KeygenKeyType};
    use crate::cert::{Cert, KeyType as CertKeyType};
    use crate::config::Pkcs11Settings;
    use crate::error::{Error, ErrorClass};
    use crate::secret::SecretSource;
    use crate::signer::Signer;
    use crate::signer::csr::{self, Subject};
    use crate::signer::pkcs11::Pkcs11Error;
    use crate::signer::pkcs11::objects::{self, EC_PARAMS_P256, EC_PARAMS_P384};
    use crate::signer::pkcs11::session::{self, FoundToken};
    use crate::signer::pkcs11::signer::{Mechanisms, TokenSigner};
    use crate::signer::pkcs11::uri::{ObjectType, Pkcs11Uri};

    pub fn run(args: &KeygenArgs) -> Result<(), Error> {
        // clap makes --pkcs11-uri required unless --tpm, which does not come here.
        let text = args.pkcs11_uri.as_deref().unwrap_or_default();
        let uri = Pkcs11Uri::parse(text).map_err(Pkcs11Error::from)?;
        let mut pin_sources = Vec::new();
        if let Some(f) = &args.pkcs11_pin_file {
            pin_sources.push(SecretSource::File(f.clone()));
        }
        pin_sources.extend([
            SecretSource::Env(crate::env::PKCS11_PIN),
            SecretSource::Prompt,
        ]);
        let settings = Pkcs11Settings {
            module: args.pkcs11_lib.clone(),
            pin_sources,
            reuse_pin: false,
            context_pin_sources: Vec::new(),
        };
        let module = session::load(&session::module_path(&uri, &settings)?)?;
        let token = session::select_token(&module, &uri)?;
        let s = session::open_session(&module, &token, true)?;
        let pin = session::login(&module, &s, &token, &mut || {
            session::user_pin(&uri, &settings, &token.desc)
        })?;
        match &args.import_cert {
            Some(path) => import(&s, &uri, &token, path),
            None => generate(args, &module, s, &uri, &token, pin),
        }
    }

    fn usage(msg: String) -> Error {
        Error::new(ErrorClass::Usage, msg)
    }

    fn generate(
        args: &KeygenArgs,
        module: &session::Module,
        s: Session,
        uri: &Pkcs11Uri,
        token: &FoundToken,
        pin: Option<crate::secret::Secret>,
    ) -> Result<(), Error> {
        let subject = args.subject.as_deref().ok_or_else(|| {
            usage(
                "keygen needs --subject for the CSR (or --import-cert to store a certificate)"
                    .into(),
            )
            .with_hint("e.g. --subject \"CN=host1,O=Example\"")
        })?;
        let subject = Subject::parse(subject)?;
        let label = uri.object.clone().ok_or_else(|| {
            usage("the URI must name the new key with object=LABEL".into())
                .with_hint("e.g. --pkcs11-uri 'pkcs11:token=prod;object=ra-signer;id=%01'")
        })?;
        let id = match &uri.id {
            Some(id) if !id.is_empty() => id.clone(),
            _ => {
                let mut id = vec![0u8; 8];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
                    .map_err(|_| Error::new(ErrorClass::Other, "no randomness for the key id"))?;
                id
            }
        };
        let call = |f: &'static str| move |e| Pkcs11Error::call(f, e, &token.desc);
        // Refuse to shadow an existing key: the same label or id would make URIs ambiguous.
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
            for attr in [
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.clone()),
            ] {
                let found = s
                    .find_objects(&[Attribute::Class(class), attr])
                    .map_err(call("C_FindObjects"))?;
                if !found.is_empty() {
                    return Err(usage(format!(
                        "a key with label \"{label}\" or id {} already exists on {}",
                        crate::signer::pkcs11::uri::encode(&id, true),
                        token.desc
                    ))
                    .with_hint("choose another object= and id=, or delete the old key"));
                }
            }
        }

        let (mechanism, key_specific): (Mechanism, Vec<Attribute>) = match args.key_type {
            KeygenKeyType::Rsa2048 | KeygenKeyType::Rsa3072 => (
                Mechanism::RsaPkcsKeyPairGen,
                vec![
                    Attribute::ModulusBits(
                        (if args.key_type == KeygenKeyType::Rsa2048 {
                            2048u64
                        } else {
                            3072
                        })
                        .into(),
                    ),
                    Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
                ],
            ),
            KeygenKeyType::P256 => (
                Mechanism::EccKeyPairGen,
                vec![Attribute::EcParams(EC_PARAMS_P256.to_vec())],
            ),
            KeygenKeyType::P384 => (
                Mechanism::EccKeyPairGen,
                vec![Attribute::EcParams(EC_PARAMS_P384.to_vec())],
            ),
        };
        let mut public = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ];
        public.extend(key_specific);
        let mut private = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
        ];
        if args.always_auth {
            private.push(Attribute::AlwaysAuthenticate(true));
        }
        let (_, key) = s
            .generate_key_pair(&mechanism, &public, &private)
            .map_err(call("C_GenerateKeyPair"))?;
        check_protected(&s, key, token)?;

        let info = objects::key_info(&s, key, &token.desc)?;
        let public_key = info
            .public_key
            .clone()
            .ok_or_else(|| Pkcs11Error::UnsupportedKey {
                key: info.describe(),
                detail: "the token made no readable public key".into(),
            })?;
        let mechanisms = Mechanisms::from_list(&session::mechanisms(module, token)?);
        let mut key_uri = token.desc.uri();
        key_uri.object = Some(label.clone());
        key_uri.id = Some(id.clone());
        key_uri.object_type = Some(ObjectType::Private);
        let signer = TokenSigner::new(
            s,
            key,
            info.key_type,
            public_key,
            mechanisms,
            args.always_auth,
            pin,
            format!("key {key_uri}"),
        );

        let pem = csr::request_pem(&subject, &signer).map_err(|e| match &e {
            csr::CsrError::Sign(failure) => {
                let err = Error::new(
                    ErrorClass::Identity,
                    format!("cannot sign the CSR with {key_uri}: {failure}"),
                );
                err.with_optional_hint(crate::error::sign_hint(failure))
            }
            _ => Error::new(ErrorClass::Other, e.to_string()),
        })?;
        match &args.csr_out {
            Some(path) => crate::outfile::write(path, pem.as_bytes(), true).map_err(|e| {
                Error::new(
                    ErrorClass::Other,
                    format!("cannot write {}: {e}", path.display()),
                )
            })?,
            None => crate::diag::result(|out| out.write_all(pem.as_bytes()))?,
        }
        crate::diag!(
            "generated {} key {} inside the token (sensitive, not extractable{})",
            signer.key_type(),
            key_uri,
            if args.always_auth {
                ", always-authenticate"
            } else {
                ""
            }
        );
        if let Some(path) = &args.csr_out {
            crate::diag!("CSR written to {}", path.display());
        }
        crate::diag!(
            "next: have your CA sign the CSR, then: ra-signer keygen --pkcs11-uri '{}' --import-cert CERT.pem",
            {
                let mut u = key_uri.clone();
                u.object_type = None;
                u
            }
        );
        Ok(())
    }

    /// Refuses a generated key the token did not make sensitive and non-extractable.
    fn check_protected(s: &Session, key: ObjectHandle, token: &FoundToken) -> Result<(), Error> {
        let attrs = s
            .get_attributes(key, &[AttributeType::Sensitive, AttributeType::Extractable])
            .map_err(|e| Pkcs11Error::call("C_GetAttributeValue", e, &token.desc))?;
        let (mut sensitive, mut extractable) = (false, true);
        for a in attrs {
            match a {
                Attribute::Sensitive(b) => sensitive = b,
                Attribute::Extractable(b) => extractable = b,
                _ => {}
            }
        }
        if !sensitive || extractable {
            let _ = s.destroy_object(key);
            return Err(Error::new(
                ErrorClass::Identity,
                format!(
                    "{} made the key with CKA_SENSITIVE={sensitive} and CKA_EXTRACTABLE={extractable}: \
                     it was deleted",
                    token.desc
                ),
            ));
        }
        Ok(())
    }

    fn import(
        s: &Session,
        uri: &Pkcs11Uri,
        token: &FoundToken,
        path: &std::path::Path,
    ) -> Result<(), Error> {
        let certs = Cert::all_from_file(path).map_err(crate::error::cert_error)?;
        let key = {
            let handles = objects::private_keys(s, uri, &token.desc)?;
            match handles.as_slice() {
                [h] => objects::key_info(s, *h, &token.desc)?,
                [] => {
                    return Err(Pkcs11Error::NoObject {
                        what: "private key",
                        uri: uri.to_string(),
                        token: token.desc.to_string(),
                        available: objects::list_private_keys(s, &token.desc),
                    }
                    .into());
                }
                _ => {
                    return Err(usage(format!(
                        "{} private keys match {uri}: add object= and id=",
                        handles.len()
                    )));
                }
            }
        };
        let public_key = key.public_key.clone().unwrap_or_default();
        let mine = |c: &Cert| c.key_type() == key.key_type && c.public_key_bits() == public_key;
        let Some(leaf) = certs.iter().find(|c| mine(c)) else {
            let first = certs
                .first()
                .map(|c| (c.subject(), c.serial_decimal(), c.key_type()));
            return Err(match first {
                Some((subject, serial, cert_key)) => {
                    Pkcs11Error::KeyMismatch(crate::signer::KeyMismatch {
                        key_desc: format!(
                            "{}, key {} on {}",
                            key.key_type,
                            key.describe(),
                            token.desc
                        ),
                        subject,
                        serial,
                        cert_key,
                    })
                    .into()
                }
                None => usage(format!("{} holds no certificate", path.display())),
            });
        };
        if key.public_key.is_none() && key.key_type != CertKeyType::Rsa {
            return Err(usage(
                "the key has no public key object, so the certificate cannot be checked against it"
                    .into(),
            ));
        }
        let existing = objects::certificates(s, &token.desc)?;
        let stored = |c: &Cert| existing.iter().any(|e| e.cert.der() == c.der());
        let mut written = 0;
        if !stored(leaf) {
            store_cert(s, token, leaf, &key.label, &key.id)?;
            written += 1;
        }
        let mut n = 0;
        for c in certs.iter().filter(|c| c.der() != leaf.der()) {
            n += 1;
            if !stored(c) {
                store_cert(s, token, c, &format!("{} chain {n}", key.label), &[])?;
                written += 1;
            }
        }
        crate::diag!(
            "stored {written} certificate(s) on {} beside key {} (subject \"{}\", serial {})",
            token.desc,
            key.describe(),
            leaf.subject(),
            leaf.serial_decimal()
        );
        Ok(())
    }

    fn store_cert(
        s: &Session,
        token: &FoundToken,
        cert: &Cert,
        label: &str,
        id: &[u8],
    ) -> Result<(), Error> {
        let serial = cert.serial_bytes();
        let mut serial_der = vec![0x02, serial.len() as u8];
        serial_der.extend_from_slice(serial);
        let mut template = vec![
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Subject(cert.subject_der()),
            Attribute::Issuer(cert.issuer_der()),
            Attribute::SerialNumber(serial_der),
            Attribute::Value(cert.der().to_vec()),
        ];
        if !id.is_empty() {
            template.push(Attribute::Id(id.to_vec()));
        }
        s.create_object(&template)
            .map_err(|e| Pkcs11Error::call("C_CreateObject", e, &token.desc))?;
        Ok(())
    }
}
