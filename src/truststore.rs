//! The system trust store for the endpoint's TLS (when `--ca-bundle` is not given): the roots
//! are the union of the certificates in the file and directories OpenSSL would use, as
//! `rustls-native-certs` loads them, but paid for only as far as a handshake needs them.
//!
//! A Debian machine has about 140 certificates in its bundle and about 290 files in
//! `/etc/ssl/certs` holding the same ones again; decoding and parsing all of them cost more
//! than the rest of a credential. So:
//!
//! - the file is indexed at set-up by subject name only: a fast base64 decoder (public data
//!   needs no constant-time one) and a DER walk that reads no further than the names;
//! - at a handshake, webpki gets only the anchors whose subject is the issuer of a
//!   certificate the server sent. webpki's paths end at an anchor whose subject equals the
//!   last certificate's issuer byte for byte, so no other anchor can change its answer;
//! - the directories are read only when the file's roots do not verify the server (or the
//!   file holds none), and then the union is tried: the answer is the union's either way.
//!
//! Each source is read at most once per process: `serve` keeps one client for its life.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use base64::Engine;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use zeroize::Zeroizing;

use crate::config::TrustPaths;

/// At most this many entries of one certificate directory are looked at: a directory that
/// holds more is not a trust store.
const MAX_DIRECTORY_ENTRIES: usize = 10_000;

/// No trusted certificate in any source: TLS could verify no endpoint.
#[derive(Debug)]
pub(crate) struct NoRoots;

/// Verifies the endpoint's certificate against the system store, loaded as needed.
#[derive(Debug)]
pub(crate) struct SystemVerifier {
    provider: Arc<CryptoProvider>,
    file: Store,
    dirs: Vec<PathBuf>,
    /// The directories' certificates that are not in the file, once read.
    from_dirs: OnceLock<Store>,
    /// (device, inode) of the file, so that a directory entry linking to it is not read again.
    file_id: Option<(u64, u64)>,
}

impl SystemVerifier {
    /// Reads the file of `paths` (or of the platform's usual places when `None`); the
    /// directories too when the file holds no certificate.
    pub(crate) fn new(
        paths: Option<&TrustPaths>,
        provider: Arc<CryptoProvider>,
    ) -> Result<SystemVerifier, NoRoots> {
        let (file, dirs) = match paths {
            Some(p) => (p.file.clone(), p.dirs.clone()),
            None => {
                let probed = openssl_probe::probe();
                (probed.cert_file, probed.cert_dir)
            }
        };
        let mut store = Store::default();
        let mut file_id = None;
        if let Some(path) = &file {
            file_id = file_identity(path);
            if let Ok(bytes) = crate::input::read_file(path) {
                store.add_pem(bytes);
            }
        }
        let verifier = SystemVerifier {
            provider,
            file: store,
            dirs,
            from_dirs: OnceLock::new(),
            file_id,
        };
        if verifier.file.is_empty() && verifier.directories().is_empty() {
            return Err(NoRoots);
        }
        Ok(verifier)
    }

    /// The directories' certificates, read on first use.
    fn directories(&self) -> &Store {
        self.from_dirs.get_or_init(|| {
            let mut seen: HashSet<(u64, u64)> = self.file_id.into_iter().collect();
            let mut store = Store::default();
            for dir in &self.dirs {
                store.add_directory(dir, &mut seen);
            }
            store
        })
    }

    /// webpki's answer with the anchors of `stores` that can end a path of this chain.
    fn verify_with(
        &self,
        stores: &[&Store],
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let issuers: Vec<&[u8]> = std::iter::once(end_entity)
            .chain(intermediates)
            .filter_map(|c| names(c).map(|n| n.issuer))
            .collect();
        let mut roots = RootCertStore::empty();
        for store in stores {
            for der in store.issuers_of(&issuers) {
                // As rustls-native-certs' users do: a certificate webpki cannot use as an
                // anchor is skipped.
                let _ = roots.add(CertificateDer::from(der));
            }
        }
        if roots.is_empty() {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        }
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(format!("TLS verifier: {e}")))?;
        webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }
}

impl ServerCertVerifier for SystemVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verify = |stores: &[&Store]| {
            self.verify_with(
                stores,
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            )
        };
        let from_file = verify(&[&self.file]);
        if from_file.is_ok() || self.dirs.is_empty() {
            return from_file;
        }
        let from_dirs = self.directories();
        if from_dirs.is_empty() {
            return from_file;
        }
        verify(&[&self.file, from_dirs])
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The certificates of PEM texts, indexed by subject name. Only a prefix of each one is
/// decoded to find its name; the whole of it only when a handshake needs it as an anchor.
#[derive(Debug, Default)]
struct Store {
    texts: Vec<Vec<u8>>,
    certificates: Vec<Indexed>,
}

/// One `CERTIFICATE` block: which text, where its base64 is, and its subject (DER `Name`).
#[derive(Debug)]
struct Indexed {
    text: usize,
    body: Range<usize>,
    subject: Vec<u8>,
}

impl Store {
    fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }

    /// Adds each `CERTIFICATE` block of a PEM text whose start decodes to a certificate's
    /// names; other blocks and the text around them are skipped, as by rustls' PEM reader.
    fn add_pem(&mut self, mut text: Zeroizing<Vec<u8>>) {
        // Certificates are public: kept (and dropped) as plain bytes.
        let text = std::mem::take(&mut *text);
        let index = self.texts.len();
        let before = self.certificates.len();
        for body in pem_bodies(&text) {
            let subject = subject_in_prefix(&text[body.clone()]).or_else(|| {
                decode(&text[body.clone()]).and_then(|d| names(&d).map(|n| n.subject.to_vec()))
            });
            if let Some(subject) = subject {
                self.certificates.push(Indexed {
                    text: index,
                    body,
                    subject,
                });
            }
        }
        if self.certificates.len() > before {
            self.texts.push(text);
        }
    }

    /// Adds the files of a certificate directory (what OpenSSL calls a CAdir), each file
    /// once however many links lead to it.
    fn add_directory(&mut self, dir: &Path, seen: &mut HashSet<(u64, u64)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.take(MAX_DIRECTORY_ENTRIES).flatten() {
            let path = entry.path();
            // Followed: `openssl rehash` makes the hash names symbolic links.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() || !seen.insert(identity(&meta)) {
                continue;
            }
            if let Ok(bytes) = crate::input::read_file(&path) {
                self.add_pem(bytes);
            }
        }
    }

    /// The DER of the certificates whose subject is one of `issuers`.
    fn issuers_of(&self, issuers: &[&[u8]]) -> Vec<Vec<u8>> {
        self.certificates
            .iter()
            .filter(|c| issuers.contains(&c.subject.as_slice()))
            .filter_map(|c| decode(&self.texts[c.text][c.body.clone()]))
            .collect()
    }
}

fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

fn file_identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| identity(&m))
}

/// Where the base64 of each `CERTIFICATE` block of a PEM text is.
fn pem_bodies(text: &[u8]) -> Vec<Range<usize>> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let begin = memchr::memmem::Finder::new(BEGIN);
    let end = memchr::memmem::Finder::new(END);
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = begin.find(&text[at..]) {
        let body = at + found + BEGIN.len();
        // Base64 holds no '-': in a well-formed block the first one starts the END line,
        // and one byte is found much faster than the whole marker.
        let rest = &text[body..];
        let len = match memchr::memchr(b'-', rest) {
            Some(dash) if rest[dash..].starts_with(END) => dash,
            _ => match end.find(rest) {
                Some(len) => len,
                None => break,
            },
        };
        out.push(body..body + len);
        at = body + len + END.len();
    }
    out
}

/// The base64 characters of a PEM body. PEM lines hold no whitespace inside: the lines are
/// trimmed and copied whole (the pass that looks at every byte, [`decode_careful`], runs
/// only when that does not decode).
fn base64_lines(body: &[u8]) -> Vec<u8> {
    let mut chars = Vec::with_capacity(body.len());
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len())) {
        chars.extend_from_slice(body[start..end].trim_ascii());
        start = end + 1;
    }
    chars
}

fn decode_base64(chars: &[u8]) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(chars).ok()
}

/// Whitespace anywhere dropped, for a body whose lines do not decode as they are.
fn decode_careful(body: &[u8]) -> Option<Vec<u8>> {
    let chars: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    decode_base64(&chars)
}

/// A PEM body decoded whole; `None` when it is not base64.
fn decode(body: &[u8]) -> Option<Vec<u8>> {
    decode_base64(&base64_lines(body)).or_else(|| decode_careful(body))
}

/// How far into the DER the subject is looked for before the body is decoded whole: in
/// Debian's bundle the subject ends by byte 489 at the latest (257 in the middle).
const PREFIX_LIMIT: usize = 768;
/// The prefix decoded first: most subjects end a little after it, and the lengths read in
/// it say how much more to decode.
const FIRST_PREFIX: usize = 160;

/// What a PEM body byte is to [`subject_in_prefix`]: its 6-bit value, [`SKIP`] (whitespace)
/// or [`STOP`] (padding or anything that is not base64). Both markers have a bit above the
/// low six set, so four values ORed together show at once whether all four are base64.
const BASE64_VALUES: [u8; 256] = {
    let mut t = [STOP; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t[b' ' as usize] = SKIP;
    t[b'\t' as usize] = SKIP;
    t[b'\r' as usize] = SKIP;
    t[b'\n' as usize] = SKIP;
    t
};
const SKIP: u8 = 64;
const STOP: u8 = 255;

/// Each character's six bits already shifted to their place in a group of four (the first
/// character's are the top six of 24), or [`NOT_BASE64`] for anything else: a group is the
/// OR of four lookups, and one test finds a character that is not base64.
const GROUP_BITS: [[u32; 256]; 4] = {
    let mut t = [[NOT_BASE64; 256]; 4];
    let mut c = 0;
    while c < 256 {
        let value = BASE64_VALUES[c];
        if value < SKIP {
            let mut place = 0;
            while place < 4 {
                t[place][c] = (value as u32) << (18 - 6 * place);
                place += 1;
            }
        }
        c += 1;
    }
    t
};
const NOT_BASE64: u32 = 1 << 31;

/// The subject name of the certificate a PEM body holds, decoding only as many bytes as
/// its lengths say it takes to reach it (at most [`PREFIX_LIMIT`]); `None` when it lies
/// further or the body stops being base64 before it.
fn subject_in_prefix(body: &[u8]) -> Option<Vec<u8>> {
    let mut prefix = Prefix::new(body);
    let mut want = FIRST_PREFIX;
    loop {
        prefix.decode_to(want);
        let der = prefix.der();
        match subject_range(der) {
            Ok(range) => return Some(der[range].to_vec()),
            Err(Some(need)) if need > der.len() && need <= PREFIX_LIMIT && !prefix.ended => {
                want = need;
            }
            Err(_) => return None,
        }
    }
}

/// A PEM body's DER decoded from the start, as far as asked.
struct Prefix<'a> {
    body: &'a [u8],
    /// The next body byte to read.
    at: usize,
    der: [u8; PREFIX_LIMIT + 3],
    len: usize,
    /// Characters of an unfinished group of four, and how many.
    bits: u32,
    count: u8,
    /// The body ended, or stopped being base64.
    ended: bool,
}

impl<'a> Prefix<'a> {
    fn new(body: &'a [u8]) -> Self {
        Prefix {
            body,
            at: 0,
            der: [0; PREFIX_LIMIT + 3],
            len: 0,
            bits: 0,
            count: 0,
            ended: false,
        }
    }

    fn der(&self) -> &[u8] {
        &self.der[..self.len]
    }

    /// Decodes until at least `want` bytes (at most [`PREFIX_LIMIT`]) or the end: groups of
    /// four characters in one pass while they are all base64; whitespace (the line ends),
    /// padding and the end one character at a time.
    fn decode_to(&mut self, want: usize) {
        let want = want.min(PREFIX_LIMIT);
        while self.len < want && !self.ended {
            if self.count == 0 {
                // A group holding a line end stops the pass; it is taken one character at
                // a time below, and the next pass starts on the next line.
                let rest = &self.body[self.at..];
                let groups = (rest.len() / 4).min((want - self.len).div_ceil(3));
                let mut decoded = 0;
                for quad in rest[..groups * 4].chunks_exact(4) {
                    let group = GROUP_BITS[0][usize::from(quad[0])]
                        | GROUP_BITS[1][usize::from(quad[1])]
                        | GROUP_BITS[2][usize::from(quad[2])]
                        | GROUP_BITS[3][usize::from(quad[3])];
                    if group & NOT_BASE64 != 0 {
                        break;
                    }
                    self.push(group);
                    decoded += 1;
                }
                self.at += decoded * 4;
                if decoded > 0 {
                    continue;
                }
            }
            let Some(&byte) = self.body.get(self.at) else {
                self.ended = true;
                break;
            };
            self.at += 1;
            match BASE64_VALUES[usize::from(byte)] {
                SKIP => {}
                STOP => self.ended = true,
                value => {
                    self.bits = self.bits << 6 | u32::from(value);
                    self.count += 1;
                    if self.count == 4 {
                        self.push(self.bits);
                        (self.bits, self.count) = (0, 0);
                    }
                }
            }
        }
    }

    fn push(&mut self, group: u32) {
        self.der[self.len..self.len + 3].copy_from_slice(&group.to_be_bytes()[1..]);
        self.len += 3;
    }
}

/// Where the subject name lies in a certificate's DER, walking `Certificate →
/// TBSCertificate` by the lengths alone (RFC 5280 §4.1), so that `der` may be a prefix that
/// holds only the headers up to the subject. `Err(Some(n))`: the prefix is too short, and
/// `n` bytes would take the walk further; `Err(None)`: not shaped like a certificate.
fn subject_range(der: &[u8]) -> Result<Range<usize>, Option<usize>> {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const VERSION: u8 = 0xa0;
    let (at, _) = head(der, 0, SEQUENCE)?;
    let (mut at, _) = head(der, at, SEQUENCE)?;
    // The headers that follow are short: asking for a few more bytes than the next header
    // needs avoids a round for each.
    const AHEAD: usize = 48;
    if at >= der.len() {
        return Err(Some(at + AHEAD));
    }
    if der[at] == VERSION {
        at = after(der, at, VERSION)?;
    }
    for tag in [INTEGER, SEQUENCE, SEQUENCE, SEQUENCE] {
        at = after(der, at, tag)?;
        if at >= der.len() {
            return Err(Some(at + AHEAD));
        }
    }
    let (content, len) = head(der, at, SEQUENCE)?;
    let end = content.checked_add(len).ok_or(None)?;
    if end > der.len() {
        return Err(Some(end));
    }
    Ok(at..end)
}

/// Where the element with tag `tag` at `at` ends (its content need not be in `der`).
fn after(der: &[u8], at: usize, tag: u8) -> Result<usize, Option<usize>> {
    let (content, len) = head(der, at, tag)?;
    content.checked_add(len).ok_or(None)
}

/// The content offset and length of the element with tag `tag` at `at` (definite lengths
/// of up to four octets, as DER has).
fn head(der: &[u8], at: usize, tag: u8) -> Result<(usize, usize), Option<usize>> {
    let Some(&[first, len0]) = der.get(at..at + 2) else {
        return Err(Some(at + 6));
    };
    if first != tag {
        return Err(None);
    }
    if len0 < 0x80 {
        return Ok((at + 2, usize::from(len0)));
    }
    let octets = usize::from(len0 & 0x7f);
    if octets == 0 || octets > 4 {
        return Err(None);
    }
    let Some(bytes) = der.get(at + 2..at + 2 + octets) else {
        return Err(Some(at + 2 + octets));
    };
    let len = bytes
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Ok((at + 2 + octets, len))
}

/// The issuer and subject names of a certificate, each as its whole DER `Name`.
struct Names<'a> {
    issuer: &'a [u8],
    subject: &'a [u8],
}

/// Walks `Certificate → TBSCertificate` as far as the subject (RFC 5280 §4.1); `None` for
/// anything that is not shaped like a certificate.
fn names(der: &[u8]) -> Option<Names<'_>> {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const VERSION: u8 = 0xa0;
    // The outer two may be cut short (a decoded prefix): the names are inside them.
    let certificate = content_prefix(der, SEQUENCE)?;
    let tbs = content_prefix(certificate, SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&VERSION) {
        rest = element(rest, VERSION)?.1;
    }
    let (_serial, rest) = element(rest, INTEGER)?;
    let (_signature, rest) = element(rest, SEQUENCE)?;
    let (issuer, rest) = element(rest, SEQUENCE)?;
    let (_validity, rest) = element(rest, SEQUENCE)?;
    let (subject, _) = element(rest, SEQUENCE)?;
    Some(Names { issuer, subject })
}

/// The content of the element at the start of `input` if it has tag `tag`, as far as
/// `input` holds it.
fn content_prefix(input: &[u8], tag: u8) -> Option<&[u8]> {
    let (len, content) = header(input, tag)?;
    Some(&content[..len.min(content.len())])
}

/// The element at the start of `input`, whole, if it has tag `tag` (definite lengths up to
/// four octets, as DER has), and what follows it.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (len, rest) = header(input, tag)?;
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    Some((&input[..header + len], &rest[len..]))
}

/// The length an element with tag `tag` at the start of `input` declares, and what follows
/// its header.
fn header(input: &[u8], tag: u8) -> Option<(usize, &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len0, rest) = rest.split_first()?;
    if len0 < 0x80 {
        return Some((usize::from(len0), rest));
    }
    let octets = usize::from(len0 & 0x7f);
    if octets == 0 || octets > 4 || rest.len() < octets {
        return None;
    }
    let len = rest[..octets]
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Some((len, &rest[octets..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().expect("key");
        rcgen::CertifiedIssuer::self_signed(params, key).expect("self-signed")
    }

    #[test]
    fn names_are_found_in_a_real_certificate() {
        let root = ca("Trust Store Test Root");
        let n = names(root.der()).expect("names");
        assert_eq!(n.issuer, n.subject);
        assert!(
            n.subject
                .windows(b"Trust Store Test Root".len())
                .any(|w| w == b"Trust Store Test Root")
        );
    }

    #[test]
    fn the_prefix_decoder_finds_what_the_whole_decode_finds() {
        // Every certificate of the system bundle, each as Debian writes it (64-character
        // lines) and re-wrapped at other widths with CRLF, so the groups of four straddle
        // the line ends at every offset.
        let bundle = std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
        let mut bodies: Vec<Vec<u8>> = pem_bodies(&bundle)
            .into_iter()
            .map(|r| bundle[r].to_vec())
            .collect();
        let own = ca(
            "A root of this test, with a name long enough to end past the first prefix of the decoder",
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(own.der());
        bodies.push(b64.as_bytes().to_vec());
        let mut rewrapped = Vec::new();
        for body in &bodies {
            let chars: Vec<u8> = body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            for width in [1, 3, 5, 63, 76] {
                let mut text = b"\r\n".to_vec();
                for line in chars.chunks(width) {
                    text.extend_from_slice(line);
                    text.extend_from_slice(b"\r\n");
                }
                rewrapped.push(text);
            }
        }
        bodies.extend(rewrapped);
        for body in &bodies {
            let whole = decode(body).expect("decodes");
            let expected = names(&whole).expect("names").subject.to_vec();
            assert_eq!(subject_in_prefix(body), Some(expected));
        }
        assert!(bodies.len() >= 6);
    }

    #[test]
    fn a_prefix_walk_asks_for_what_it_needs_and_refuses_lies() {
        let root = ca("Needs");
        let der = root.der();
        let range = subject_range(der).expect("whole");
        for cut in 0..range.end {
            match subject_range(&der[..cut]) {
                Err(Some(need)) => assert!(need > cut, "asks for more than {cut}: {need}"),
                other => panic!("a prefix of {cut} bytes: {other:?}"),
            }
        }
        // A length that runs past any prefix is not followed: the whole decode decides.
        let mut lying = der.to_vec();
        lying[1] = 0x84;
        assert!(subject_range(&lying).is_err());
        let mut wrong_tag = der.to_vec();
        wrong_tag[0] = 0x31;
        assert_eq!(subject_range(&wrong_tag), Err(None));
    }

    #[test]
    fn malformed_der_has_no_names() {
        let root = ca("Short");
        let der = root.der().to_vec();
        let subject = names(&der).expect("names").subject;
        let names_end = subject.as_ptr() as usize - der.as_ptr() as usize + subject.len();
        for cut in [0, 1, 2, 10, names_end - 1] {
            assert!(names(&der[..cut]).is_none(), "cut at {cut}");
        }
        // A prefix that holds the names is enough (that is how the store indexes).
        assert_eq!(names(&der[..names_end]).expect("names").subject, subject);
        // A length of five octets, and an indefinite length: neither is DER.
        assert!(names(&[0x30, 0x85, 0, 0, 0, 0, 1, 0]).is_none());
        assert!(names(&[0x30, 0x80, 0, 0]).is_none());
        // A length beyond the input.
        assert!(names(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
    }

    #[test]
    fn pem_blocks_other_than_certificates_and_bad_base64_are_skipped() {
        let a = ca("A");
        let b = ca("B");
        let text = format!(
            "junk before\n{}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n\
             -----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n{}\
             -----BEGIN CERTIFICATE-----\nunterminated",
            a.pem(),
            b.pem()
        );
        let text = text.as_bytes();
        let ders: Vec<Vec<u8>> = pem_bodies(text)
            .into_iter()
            .filter_map(|body| decode(&text[body]))
            .collect();
        assert_eq!(ders, vec![a.der().to_vec(), b.der().to_vec()]);
        let mut store = Store::default();
        store.add_pem(Zeroizing::new(text.to_vec()));
        assert_eq!(store.certificates.len(), 2);
    }

    #[test]
    fn names_past_the_decoded_prefix_and_crlf_lines_are_found() {
        // A subject of about 1,500 bytes: it ends far beyond PREFIX_LIMIT.
        let long = ca(&"Long Name ".repeat(60));
        let crlf = ca("Windows Line Ends");
        let spaced = ca("Spaces Inside Lines");
        let spaced_pem: String = spaced
            .pem()
            .lines()
            .map(|l| match l.starts_with("-----") {
                true => format!("{l}\n"),
                false => format!("{} \t {}\n", &l[..l.len() / 2], &l[l.len() / 2..]),
            })
            .collect();
        let text = format!(
            "{}{}{}",
            long.pem(),
            crlf.pem().replace('\n', "\r\n"),
            spaced_pem
        );
        let mut store = Store::default();
        store.add_pem(Zeroizing::new(text.into_bytes()));
        assert_eq!(store.certificates.len(), 3, "{spaced_pem}");
        for c in [&long, &crlf, &spaced] {
            let subject = names(c.der()).expect("names").subject;
            assert_eq!(store.issuers_of(&[subject]), vec![c.der().to_vec()]);
        }
    }

    #[test]
    fn only_anchors_named_as_issuers_are_offered() {
        let a = ca("A");
        let b = ca("B");
        let mut store = Store::default();
        store.add_pem(Zeroizing::new(
            format!("{}{}", a.pem(), b.pem()).into_bytes(),
        ));
        let b_subject = names(b.der()).expect("names").subject;
        let wanted = [b_subject];
        assert_eq!(store.issuers_of(&wanted), vec![b.der().to_vec()]);
        assert!(store.issuers_of(&[]).is_empty());
    }

    #[test]
    fn no_certificate_anywhere_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").expect("write");
        let paths = TrustPaths {
            file: Some(empty),
            dirs: vec![dir.path().to_owned(), dir.path().join("missing")],
        };
        assert!(SystemVerifier::new(Some(&paths), provider()).is_err());
    }

    #[test]
    fn directories_are_read_only_when_the_file_does_not_verify() {
        let dir = tempfile::tempdir().expect("tempdir");
        let in_file = ca("In The File");
        let in_dir = ca("In The Directory");
        let file = dir.path().join("bundle.pem");
        std::fs::write(&file, in_file.pem()).expect("write");
        let certs = dir.path().join("certs");
        std::fs::create_dir(&certs).expect("mkdir");
        std::fs::write(certs.join("other.pem"), in_dir.pem()).expect("write");
        // A link to the bundle, as /etc/ssl/certs has: read once.
        std::os::unix::fs::symlink(&file, certs.join("bundle-link.pem")).expect("symlink");
        let paths = TrustPaths {
            file: Some(file),
            dirs: vec![certs],
        };
        let leaf = |issuer: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>| {
            let params =
                rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
            let key = rcgen::KeyPair::generate().expect("key");
            params.signed_by(&key, &**issuer).expect("sign")
        };
        let name = ServerName::try_from("localhost").expect("name");
        let now = UnixTime::now();
        let verifier = SystemVerifier::new(Some(&paths), provider()).expect("roots");
        assert!(verifier.from_dirs.get().is_none());
        let by_file = leaf(&in_file);
        verifier
            .verify_server_cert(by_file.der(), &[], &name, &[], now)
            .expect("the file's CA verifies");
        assert!(verifier.from_dirs.get().is_none(), "the directory was read");
        let by_dir = leaf(&in_dir);
        verifier
            .verify_server_cert(by_dir.der(), &[], &name, &[], now)
            .expect("the directory's CA verifies");
        assert_eq!(verifier.directories().certificates.len(), 1);
        let stranger = leaf(&ca("Stranger"));
        let refused = verifier.verify_server_cert(stranger.der(), &[], &name, &[], now);
        assert!(matches!(
            refused,
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ));
    }
}
