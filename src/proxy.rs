//! What a failed HTTPS proxy tunnel is told: which proxy (never its credentials) and the
//! status it answered `CONNECT` with. reqwest reports a refused tunnel without the status,
//! so on that failure alone one `CONNECT` is sent again to read it.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use base64::Engine;
use zeroize::Zeroizing;

/// Longest status line read from a proxy; the rest of its answer is never read.
const MAX_STATUS_LINE: usize = 1024;

/// The proxy reqwest uses for `target`, from the same variables it reads
/// (`HTTPS_PROXY`/`https_proxy`, then `ALL_PROXY`/`all_proxy`, `HTTP_PROXY` for http).
pub(crate) fn configured_for(target: &url::Url) -> Option<url::Url> {
    let names: &[&str] = if target.scheme() == "https" {
        &crate::env::HTTPS_PROXY
    } else {
        &crate::env::HTTP_PROXY
    };
    let value = names.iter().find_map(|n| crate::env::non_blank(n))?;
    let value = value.trim();
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    url::Url::parse(&with_scheme).ok()
}

/// `scheme://host:port` of a URL: what may be shown of it (no user, password, path or
/// query).
pub(crate) fn shown(url: &url::Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        (Some(host), None) => format!("{}://{host}", url.scheme()),
        _ => format!("{}://…", url.scheme()),
    }
}

/// The status line a plain-HTTP proxy answers `CONNECT target` with, as `(code, reason)`;
/// `None` when it cannot be had (the proxy is unreachable, speaks TLS, or sends junk).
pub(crate) fn tunnel_status(
    proxy: &url::Url,
    target: &str,
    timeout: Duration,
) -> Option<(u16, String)> {
    if proxy.scheme() != "http" {
        return None;
    }
    let addr = (proxy.host_str()?, proxy.port_or_known_default()?)
        .to_socket_addrs()
        .ok()?
        .next()?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    // It may carry the proxy's password: zeroized when dropped.
    let mut request = Zeroizing::new(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"));
    if !proxy.username().is_empty() {
        // The same credentials reqwest sent, so that the proxy answers the same way.
        let user = percent_decode(proxy.username());
        let password = percent_decode(proxy.password().unwrap_or(""));
        let token = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .encode(Zeroizing::new(format!("{}:{}", *user, *password)).as_bytes()),
        );
        request.push_str(&format!("Proxy-Authorization: Basic {}\r\n", *token));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < MAX_STATUS_LINE && !line.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => break,
        }
    }
    parse_status_line(&line)
}

/// `HTTP/1.x NNN Reason` → `(NNN, "Reason")`, the reason kept to printable ASCII.
fn parse_status_line(line: &[u8]) -> Option<(u16, String)> {
    let text = std::str::from_utf8(line).ok()?.trim_end();
    let rest = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let code: u16 = code.parse().ok().filter(|c| (100..600).contains(c))?;
    let reason: String = reason
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(64)
        .collect();
    Some((code, reason))
}

/// Percent-decodes a URL's user or password (a literal `+` stays a `+`, unlike in a form).
fn percent_decode(s: &str) -> Zeroizing<String> {
    let bytes = Zeroizing::new(percent_encoding::percent_decode_str(s).collect::<Vec<u8>>());
    Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status_line(b"HTTP/1.1 403 Forbidden\r\n"),
            Some((403, "Forbidden".into()))
        );
        assert_eq!(
            parse_status_line(b"HTTP/1.0 407 Proxy Authentication Required\r\n"),
            Some((407, "Proxy Authentication Required".into()))
        );
        assert_eq!(
            parse_status_line(b"HTTP/1.1 502\r\n"),
            Some((502, String::new()))
        );
        assert_eq!(
            parse_status_line(b"HTTP/1.1 403 \x1b[31mred\r\n"),
            Some((403, "[31mred".into()))
        );
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 999 Odd\r\n"), None);
        assert_eq!(parse_status_line(b""), None);
    }

    #[test]
    fn userinfo_is_percent_decoded_with_plus_kept() {
        assert_eq!(percent_decode("p%40ss+w%3Ard").as_str(), "p@ss+w:rd");
        assert_eq!(percent_decode("plain").as_str(), "plain");
        // A '%' without two hex digits stays, and bytes that are not UTF-8 become U+FFFD,
        // as url's form decoder (used before) did.
        assert_eq!(percent_decode("100%").as_str(), "100%");
        assert_eq!(percent_decode("%zz%4").as_str(), "%zz%4");
        assert_eq!(percent_decode("caf%E9").as_str(), "caf\u{FFFD}");
    }

    #[test]
    fn shown_urls_carry_no_credentials() {
        let u = url::Url::parse("http://user:secret@proxy.example:3128/x?y").expect("url");
        assert_eq!(shown(&u), "http://proxy.example:3128");
        let u = url::Url::parse("https://rolesanywhere.us-east-1.amazonaws.com").expect("url");
        assert_eq!(
            shown(&u),
            "https://rolesanywhere.us-east-1.amazonaws.com:443"
        );
    }
}
