//! The floor of the HTTPS call a credential costs: one TLS 1.3 connection to the endpoint,
//! verified against one CA file, one POST, the whole answer read, exit. rustls and ring as
//! ra-signer configures them (the same suites, AES-128-GCM first, and key exchange groups),
//! over a blocking socket: no runtime, no HTTP library, no request signing, no CLI.
//! `bench/instructions.sh` counts it beside `ra-signer credential-process`, so that the
//! share of a credential that is the handshake's own cost is measured, not estimated.
//!
//! Usage: `https_floor https://HOST:PORT CA-FILE`. Prints the answer's status line; the
//! emulator refuses the unsigned request (403), which costs the same bytes on the wire.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, ca_file] = args.as_slice() else {
        return Err("usage: https_floor https://HOST:PORT CA-FILE".into());
    };
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
    println!("{}", String::from_utf8_lossy(status));
    Ok(())
}
