//! The HTTPS call of the floor programs: one TLS 1.3 connection to the endpoint, verified
//! against one CA file, one POST, the whole answer read. rustls and ring as ra-signer
//! configures them (the same suites, AES-128-GCM first, and key exchange groups), over a
//! blocking socket: no runtime, no HTTP library, no request signing. The emulator refuses
//! the unsigned request (403), which costs the same handshake and about the same bytes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// POSTs a CreateSession-sized body to `url` (`https://HOST:PORT`), trusting only the CA
/// certificates in `ca_file`; returns the answer's status line.
fn post(url: &str, ca_file: &str) -> Result<String, Box<dyn std::error::Error>> {
    let authority = url
        .strip_prefix("https://")
        .ok_or("the URL must be https://HOST:PORT")?
        .trim_end_matches('/');
    let (host, _port) = authority.rsplit_once(':').ok_or("the URL needs a port")?;

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file)? {
        roots.add(cert?)?;
    }
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned())?;
    let connection = rustls::ClientConnection::new(Arc::new(config), name)?;
    let mut tls = rustls::StreamOwned::new(connection, TcpStream::connect(authority)?);

    let body = r#"{"durationSeconds":3600,"profileArn":"arn:aws:rolesanywhere:us-east-1:123456789012:profile/bench","roleArn":"arn:aws:iam::123456789012:role/bench","trustAnchorArn":"arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/bench"}"#;
    write!(
        tls,
        "POST /sessions HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    tls.flush()?;
    let mut answer = Vec::new();
    // A server that closes without close_notify ends the answer as well as one that sends it.
    match tls.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e.into()),
    }
    let status = answer.split(|&b| b == b'\r').next().unwrap_or_default();
    Ok(String::from_utf8_lossy(status).into_owned())
}

/// The optional `URL CA-FILE` that ends a floor program's arguments: with them, the program
/// makes the HTTPS call after it signs, and prints the answer's status line.
pub(crate) fn post_if_asked(tail: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    match tail {
        [] => Ok(()),
        [url, ca_file] => {
            println!("{}", post(url, ca_file)?);
            Ok(())
        }
        _ => Err("the optional tail is URL CA-FILE".into()),
    }
}
