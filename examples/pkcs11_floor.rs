//! The floor of a PKCS#11 credential: load the module, find the token, log in, find the key,
//! sign once, exit. Nothing else (no certificate; HTTP only when asked). `bench/pkcs11.sh`
//! times this beside `ra-signer credential-process` to show what ra-signer adds on top of
//! the token; `bench/instructions.sh` counts it alone and with the HTTPS call of
//! `floor/https.rs` after the signature.
//!
//! Usage: `pkcs11_floor MODULE TOKEN-LABEL KEY-LABEL rsa|ec [URL CA-FILE]` with the PIN in
//! `RA_SIGNER_PKCS11_PIN`.

#[path = "floor/https.rs"]
mod https;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, module, token_label, key_label, kind, tail @ ..] = args.as_slice() else {
        return Err("usage: pkcs11_floor MODULE TOKEN-LABEL KEY-LABEL rsa|ec [URL CA-FILE]".into());
    };
    let pin = std::env::var("RA_SIGNER_PKCS11_PIN")?;
    let ctx = Pkcs11::new(module)?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
    let slot = ctx
        .get_slots_with_token()?
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .is_ok_and(|t| t.label() == token_label.as_str())
        })
        .ok_or("token not found")?;
    let session = ctx.open_ro_session(slot)?;
    session.login(UserType::User, Some(&AuthPin::from(pin)))?;
    let key = *session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(key_label.as_bytes().to_vec()),
        ])?
        .first()
        .ok_or("key not found")?;
    let message = b"AWS4-X509-ECDSA-SHA256\n20250101T000000Z\nscope\nhash";
    let signature = match kind.as_str() {
        "rsa" => session.sign(&Mechanism::Sha256RsaPkcs, key, message)?,
        _ => {
            let hash = ring::digest::digest(&ring::digest::SHA256, message);
            session.sign(&Mechanism::Ecdsa, key, hash.as_ref())?
        }
    };
    println!("{}", signature.len());
    https::post_if_asked(tail)
}
