//! Text from outside (the endpoint's error messages and headers, a proxy's status line) made
//! safe to print: a hostile or broken peer must not be able to clear the terminal, ring its
//! bell, reorder what follows with bidi overrides, or forge `ra-signer:` lines in a log by
//! sending a newline. Remote text goes through [`remote`] where it enters our error types,
//! so that every later print of those errors is safe.
//!
//! And text from the user that holds a secret: a `pkcs11:` URI is shown only through
//! [`redact_pin_value`].

use std::fmt::Write;

/// How many characters of escaped remote text are kept; a longer one ends in "…".
pub(crate) const MAX_REMOTE_CHARS: usize = 200;

/// `text` with every control, format and bidi character written as an escape (`\n`, `\r`,
/// `\t`, `\u{1b}`), cut to [`MAX_REMOTE_CHARS`] characters.
pub(crate) fn remote(text: &str) -> String {
    remote_within(text, MAX_REMOTE_CHARS)
}

/// [`remote`] with another bound, for text that mixes ours with the peer's (a TLS error
/// naming the names a server certificate presents).
pub(crate) fn remote_within(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut kept = 0;
    for c in text.chars() {
        let piece = escape_char(c);
        let len = piece.chars().count();
        if kept + len > max_chars {
            out.push('…');
            return out;
        }
        out.push_str(&piece);
        kept += len;
    }
    out
}

/// [`remote`] on bytes that may not be UTF-8 (invalid sequences become U+FFFD).
pub(crate) fn remote_bytes(bytes: &[u8]) -> String {
    remote(&String::from_utf8_lossy(bytes))
}

fn escape_char(c: char) -> String {
    match c {
        '\n' => "\\n".into(),
        '\r' => "\\r".into(),
        '\t' => "\\t".into(),
        c if c.is_control() || is_invisible_format(c) => {
            let mut s = String::new();
            let _ = write!(s, "\\u{{{:x}}}", u32::from(c));
            s
        }
        c => c.into(),
    }
}

/// Unicode format (Cf) and separator characters that change how the rest of a line is
/// shown or read without being visible: bidi embeddings, overrides and isolates, zero-width
/// characters, the line and paragraph separators, the BOM and interlinear annotations.
fn is_invisible_format(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x061C
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
    )
}

// PKCS#11 URIs are parsed with the pkcs11 feature only, but are echoed by every backend
// (a TPM key with a token certificate): their redaction lives here, always built.

/// The URI with the value of any PIN-like attribute replaced by `***`, for messages: the
/// only form of a URI the user gave that may be printed. It does not trust the URI to be
/// well formed: an attribute is a PIN wherever it stands (path or query), whatever the case
/// or percent-encoding of its name (`PIN-VALUE`, `pin%2Dvalue`), and any attribute whose
/// name holds "pin" but is not `pin-source` (a misspelt `pin-valeu=`, `pin=`) is treated as
/// one. A PIN's value runs to where the parser would end it (`;` or `?` in the path, `&` in
/// the query), so what the parser would send to the token is never shown.
pub fn redact_pin_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // In redaction: a PIN's value may hold `;` or `?` (the query's own separator is the only
    // one a PIN value cannot hold), so once a PIN-like part starts, everything up to the next
    // `&` is hidden. That over-redacts a PIN put in the path part, which is safe.
    let mut hiding = false;
    let mut rest = text;
    loop {
        let end = rest.find([';', '&', '?']).unwrap_or(rest.len());
        let (part, tail) = rest.split_at(end);
        let separator = tail.chars().next();
        if !hiding && is_pin_like(part) {
            let name = part.split_once('=').map_or(part, |(n, _)| n);
            if name.contains('%') || !name.to_ascii_lowercase().contains("pin") {
                out.push_str("pin-value=***");
            } else {
                out.push_str(name);
                out.push_str("=***");
            }
            hiding = true;
        } else if !hiding {
            out.push_str(part);
        }
        match separator {
            None => break,
            Some(c) => {
                if c == '&' {
                    hiding = false;
                }
                if !hiding {
                    out.push(c);
                }
                rest = &tail[1..];
            }
        }
    }
    out
}

/// Whether an attribute (`name=value`, or a bare word) may carry a PIN: its name, decoded
/// and lowercased, holds "pin" and is not `pin-source`. A bare word is judged whole, so that
/// an encoded `pin-value%3D1234` counts.
pub(crate) fn is_pin_like(part: &str) -> bool {
    let name = match part.split_once('=') {
        Some((n, _)) => n,
        None => part,
    };
    let decoded = decode_lossy(name).to_ascii_lowercase();
    let decoded = decoded.trim();
    decoded.contains("pin") && decoded != "pin-source"
}

fn decode_lossy(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert_eq!(
            remote("denied\nra-signer: error: forged\r\x1b[2J\x07"),
            "denied\\nra-signer: error: forged\\r\\u{1b}[2J\\u{7}"
        );
        assert_eq!(
            remote("a\u{202e}b\u{2066}c\u{200b}d"),
            "a\\u{202e}b\\u{2066}c\\u{200b}d"
        );
        assert_eq!(remote("\u{85}\u{9b}\u{7f}"), "\\u{85}\\u{9b}\\u{7f}");
        assert_eq!(
            remote("Untrusted Signing Certificate"),
            "Untrusted Signing Certificate"
        );
        assert_eq!(remote("été ✓"), "été ✓");
        assert_eq!(remote_bytes(b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn long_text_is_cut_at_the_bound() {
        let long = "x".repeat(5_000_000);
        let shown = remote(&long);
        assert_eq!(shown.chars().count(), MAX_REMOTE_CHARS + 1);
        assert!(shown.ends_with('…'));
        let exact = "y".repeat(MAX_REMOTE_CHARS);
        assert_eq!(remote(&exact), exact);
        // An escape is never cut in half.
        let escapes = "\x1b".repeat(100);
        let shown = remote(&escapes);
        assert!(shown.ends_with("\\u{1b}…"), "{shown}");
        assert!(shown.chars().count() <= MAX_REMOTE_CHARS + 1);
    }
}
