//! The floor of a credential with a key file: read one PKCS#8 PEM key (RSA or P-256), build
//! ring's key pair from it, sign one SHA-256 string-to-sign, then, given `URL CA-FILE`, make
//! the HTTPS call of `floor/https.rs`; exit. No certificate, no request signing, no CLI.
//! `bench/instructions.sh` counts it beside `ra-signer credential-process`.
//!
//! Usage: `file_floor KEY-FILE rsa|p256 [URL CA-FILE]`. Prints the signature's length.

#[path = "floor/https.rs"]
mod https;

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, key_file, kind, tail @ ..] = args.as_slice() else {
        return Err("usage: file_floor KEY-FILE rsa|p256 [URL CA-FILE]".into());
    };
    let der = PrivatePkcs8KeyDer::from_pem_file(key_file)?;
    let message = b"AWS4-X509-RSA-SHA256\n20250101T000000Z\n20250101/us-east-1/rolesanywhere/aws4_request\n0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let rng = SystemRandom::new();
    let signature = match kind.as_str() {
        "rsa" => {
            let pair = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(|e| e.to_string())?;
            let mut signature = vec![0; pair.public().modulus_len()];
            pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                .map_err(|_| "RSA signing failed")?;
            signature
        }
        "p256" => {
            let pair = EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_ASN1_SIGNING,
                der.secret_pkcs8_der(),
                &rng,
            )
            .map_err(|e| e.to_string())?;
            let signature = pair
                .sign(&rng, message)
                .map_err(|_| "ECDSA signing failed")?;
            signature.as_ref().to_vec()
        }
        _ => return Err("the key kind is rsa or p256".into()),
    };
    println!("{}", signature.len());
    https::post_if_asked(tail)
}
