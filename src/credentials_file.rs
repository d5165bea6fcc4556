//! The shared credentials file, read the way botocore reads it, and rewritten without
//! changing what botocore sees anywhere but in the keys we set.
//!
//! botocore's `raw_config_parse` opens the file in Python's text mode (universal newlines:
//! `\n`, `\r\n` and a lone `\r` all end a line), parses it with
//! `configparser.RawConfigParser()` (its defaults: `strict=True`, delimiters `=` and `:`,
//! full-line comments `#` and `;`, empty lines kept inside values, keys lower-cased, a
//! `[DEFAULT]` section whose keys every profile inherits), then parses a value that starts
//! with a newline as a nested `key = value` block. [`parse`] mirrors that state machine line
//! for line, so that a file botocore refuses is refused here too, and [`set_keys`] edits
//! only lines whose meaning it knows. The file holds other profiles' secrets: no message
//! quotes a line, a key or a value, only line numbers and section names.

use std::fmt;

use zeroize::Zeroizing;

/// Why a file (or a requested edit) was refused. Never holds the file's text beyond a
/// section name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The 1-based line botocore would complain about (0: not about a line).
    pub line: usize,
    /// What is wrong there.
    pub reason: Reason,
}

/// What makes botocore (or us) refuse a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A line before the first `[section]` (configparser's `MissingSectionHeaderError`).
    NoSectionHeader,
    /// A section header repeated (`DuplicateSectionError`).
    DuplicateSection(String),
    /// A key repeated in one section (`DuplicateOptionError`).
    DuplicateKey(String),
    /// A line starting with `=` or `:` (`ParsingError`).
    EmptyKey,
    /// A line that is no header, key, comment or continuation (`ParsingError`).
    NotAKeyLine,
    /// A nested block (`key =` then indented lines) with a line holding no `=`
    /// (botocore's `_parse_nested`).
    NestedWithoutEquals,
    /// The profile to write cannot be a section botocore reads back as that profile.
    BadProfileName,
    /// A value to write would not read back as itself (a line break, surrounding space).
    BadValue,
    /// The edit would leave a file botocore refuses (removing a key can expose a broken
    /// `[DEFAULT]` one).
    WouldNotReadBack,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        match &self.reason {
            Reason::NoSectionHeader => f.write_str("a line before the first [section] header"),
            Reason::DuplicateSection(s) => write!(f, "a second [{}] section", Shown(s)),
            Reason::DuplicateKey(s) => write!(f, "a key repeated in section [{}]", Shown(s)),
            Reason::EmptyKey => f.write_str("a key with no name (the line starts with = or :)"),
            Reason::NotAKeyLine => f.write_str(
                "neither a [section], a key = value, a comment nor an indented continuation",
            ),
            Reason::NestedWithoutEquals => {
                f.write_str("a line without = in an indented block under a key with no value")
            }
            Reason::BadProfileName => f.write_str("not a profile name botocore can read back"),
            Reason::BadValue => f.write_str("a value that would not read back as itself"),
            Reason::WouldNotReadBack => f.write_str(
                "the rewritten file would not be readable (a broken [DEFAULT] key shows through)",
            ),
        }
    }
}

impl std::error::Error for Refused {}

/// A section name as it may reach a terminal or a log: control characters escaped, at most
/// 64 characters.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.chars().enumerate() {
            if i == 64 {
                return f.write_str("…");
            }
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// What a line is to configparser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Empty or only whitespace (added to the current value as an empty line).
    Blank,
    /// First non-space character `#` or `;`, at any indentation (skipped everywhere, even
    /// between the continuation lines of one value).
    Comment,
    /// `[name]…`: the name runs from the first `[` to the last `]`; the rest is ignored.
    Header,
    /// `key = value` or `key: value` (the first `=` or `:` delimits).
    Key,
    /// Indented deeper than the key it continues.
    Continuation,
}

/// One physical line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    /// The text without its line ending.
    pub text: &'a str,
    /// `"\n"`, `"\r\n"`, `"\r"` or `""` (the last line of a file with no final newline).
    pub ending: &'a str,
    /// What configparser makes of it.
    pub kind: Kind,
    /// The section it belongs to (an index into [`Parsed::sections`]).
    pub section: Option<usize>,
    /// For [`Kind::Key`] and [`Kind::Continuation`]: the index of the key's entry in
    /// [`Parsed::keys`].
    pub key: Option<usize>,
}

/// A `[section]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section<'a> {
    /// The name exactly as configparser takes it (not trimmed).
    pub name: &'a str,
    /// The header line.
    pub line: usize,
}

/// A key and its value as configparser assembles it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key<'a> {
    /// Lower-cased, as `optionxform` does (zeroized: a token pasted at the start of a line
    /// reads as a key name).
    pub name: Zeroizing<String>,
    /// The section.
    pub section: usize,
    /// The key line.
    pub line: usize,
    /// The value's parts: the text after the delimiter, then each continuation line, and an
    /// empty part per blank line in between; all stripped.
    pub parts: Vec<(usize, &'a str)>,
}

/// A file as configparser reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Every line, in order.
    pub lines: Vec<Line<'a>>,
    /// Every header, in order (`[DEFAULT]` may appear more than once).
    pub sections: Vec<Section<'a>>,
    /// Every key, in order.
    pub keys: Vec<Key<'a>>,
}

/// configparser's `DEFAULT` section: not a profile, its keys go into every profile.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// Python's `str.isspace()` (and `\s` in its regular expressions): Unicode White_Space plus
/// the four information separators U+001C..U+001F.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// The characters Python's `str.splitlines()` breaks at (botocore splits nested blocks with
/// it), apart from `\n` and `\r`, which never survive into a line.
fn is_py_splitlines_break(c: char) -> bool {
    matches!(
        c,
        '\u{0b}' | '\u{0c}' | '\u{1c}' | '\u{1d}' | '\u{1e}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// Splits at `\n`, `\r\n` and `\r`, as Python's universal newlines do.
fn split_lines(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        let end = match bytes[i] {
            b'\n' => 1,
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => 2,
            b'\r' => 1,
            _ => 0,
        };
        if end > 0 {
            out.push((&text[start..i], &text[i..i + end]));
            i += end;
            start = i;
        } else {
            i += 1;
        }
    }
    if start < text.len() {
        out.push((&text[start..], ""));
    }
    out
}

fn indent_of(text: &str) -> usize {
    text.chars().take_while(|&c| is_py_space(c)).count()
}

/// The header name of a stripped line, as `\[(?P<header>.+)\]` matched at its start: from
/// the first `[` to the last `]`, at least one character between.
fn header_name(value: &str) -> Option<&str> {
    let rest = value.strip_prefix('[')?;
    let close = rest.rfind(']')?;
    (close > 0).then(|| &rest[..close])
}

fn refused(line: usize, reason: Reason) -> Refused {
    Refused {
        line: line + 1,
        reason,
    }
}

/// Reads `text` as botocore does, or says why botocore would refuse it.
pub fn parse(text: &str) -> Result<Parsed<'_>, Refused> {
    let mut lines: Vec<Line<'_>> = Vec::new();
    let mut sections: Vec<Section<'_>> = Vec::new();
    let mut keys: Vec<Key<'_>> = Vec::new();
    let mut section: Option<usize> = None;
    // The key that blank and deeper lines attach to; reset by a header.
    let mut current: Option<usize> = None;
    let mut indent_level = 0usize;
    for (n, (body, ending)) in split_lines(text).into_iter().enumerate() {
        let value = py_strip(body);
        let mut line = Line {
            text: body,
            ending,
            kind: Kind::Blank,
            section,
            key: None,
        };
        if value.starts_with(['#', ';']) {
            line.kind = Kind::Comment;
        } else if value.is_empty() {
            if let Some(k) = current {
                keys[k].parts.push((n, ""));
            }
        } else {
            let indent = indent_of(body);
            if let Some(k) = current.filter(|_| indent > indent_level) {
                keys[k].parts.push((n, value));
                line.kind = Kind::Continuation;
                line.key = Some(k);
            } else {
                indent_level = indent;
                if let Some(name) = header_name(value) {
                    let repeated =
                        name != DEFAULT_SECTION && sections.iter().any(|s| s.name == name);
                    if repeated {
                        return Err(refused(n, Reason::DuplicateSection(name.to_owned())));
                    }
                    section = Some(sections.len());
                    sections.push(Section { name, line: n });
                    current = None;
                    line.kind = Kind::Header;
                    line.section = section;
                } else {
                    let Some(s) = section else {
                        return Err(refused(n, Reason::NoSectionHeader));
                    };
                    let Some(d) = value.find(['=', ':']) else {
                        return Err(refused(n, Reason::NotAKeyLine));
                    };
                    let name = Zeroizing::new(py_strip(&value[..d]).to_lowercase());
                    if name.is_empty() {
                        return Err(refused(n, Reason::EmptyKey));
                    }
                    // One section name may head several `[DEFAULT]` blocks: a key is
                    // repeated when its section name already holds it.
                    let sname = sections[s].name;
                    if keys
                        .iter()
                        .any(|k| *k.name == *name && sections[k.section].name == sname)
                    {
                        return Err(refused(n, Reason::DuplicateKey(sname.to_owned())));
                    }
                    current = Some(keys.len());
                    line.kind = Kind::Key;
                    line.key = current;
                    keys.push(Key {
                        name,
                        section: s,
                        line: n,
                        parts: vec![(n, py_strip(&value[d + 1..]))],
                    });
                }
            }
        }
        lines.push(line);
    }
    let parsed = Parsed {
        lines,
        sections,
        keys,
    };
    parsed.check_nested()?;
    Ok(parsed)
}

impl<'a> Parsed<'a> {
    /// The profile (not `[DEFAULT]`) named exactly `name`.
    pub fn profile(&self, name: &str) -> Option<usize> {
        self.sections
            .iter()
            .position(|s| s.name == name && s.name != DEFAULT_SECTION)
    }

    /// botocore's `_parse_nested` on every value a profile sees (its own, and the
    /// `[DEFAULT]` ones it does not override): the first line without `=` in a nested block.
    fn check_nested(&self) -> Result<(), Refused> {
        let is_default = |k: &Key<'_>| self.sections[k.section].name == DEFAULT_SECTION;
        let profiles: Vec<usize> = (0..self.sections.len())
            .filter(|&s| self.sections[s].name != DEFAULT_SECTION)
            .collect();
        for key in &self.keys {
            let Some(line) = bad_nested_line(key) else {
                continue;
            };
            let seen = if is_default(key) {
                profiles.iter().any(|&s| {
                    !self
                        .keys
                        .iter()
                        .any(|k| k.section == s && k.name == key.name)
                })
            } else {
                true
            };
            if seen {
                return Err(refused(line, Reason::NestedWithoutEquals));
            }
        }
        Ok(())
    }
}

/// For a value that botocore reads as nested (its first part empty and something after
/// it), the line of the first piece without `=`.
fn bad_nested_line(key: &Key<'_>) -> Option<usize> {
    let (first, rest) = key.parts.split_first()?;
    if !first.1.is_empty() || rest.iter().all(|(_, p)| p.is_empty()) {
        return None;
    }
    rest.iter().find_map(|&(line, part)| {
        part.split(is_py_splitlines_break)
            .map(py_strip)
            .any(|piece| !piece.is_empty() && !piece.contains('='))
            .then_some(line)
    })
}

/// `text` with section `profile` holding `set` (key, value) pairs and none of the keys in
/// `remove`; every other line kept byte for byte, so botocore reads every other profile
/// (and `[DEFAULT]`) exactly as before, and the profile's other keys too.
///
/// The set keys go right after the header (a missing profile is appended), indented like
/// the first key or header that follows them, so that no later line becomes a
/// continuation of them. The keys they replace are removed with their continuation lines;
/// comments and blank lines stay. New lines take the file's first line ending.
///
/// Keys must be lower-case names (configparser's form); refused when botocore would
/// refuse the file as it is.
pub fn set_keys(
    text: &str,
    profile: &str,
    set: &[(&str, &str)],
    remove: &[&str],
) -> Result<Zeroizing<String>, Refused> {
    let bad_name =
        profile.is_empty() || profile == DEFAULT_SECTION || profile.contains(['\n', '\r']);
    if bad_name {
        return Err(Refused {
            line: 0,
            reason: Reason::BadProfileName,
        });
    }
    for (k, v) in set {
        debug_assert!(!k.is_empty() && *k == k.to_lowercase() && py_strip(k) == *k);
        if v.is_empty() || py_strip(v) != *v || v.contains(['\n', '\r']) {
            return Err(Refused {
                line: 0,
                reason: Reason::BadValue,
            });
        }
    }
    let parsed = parse(text)?;
    let eol = parsed
        .lines
        .iter()
        .map(|l| l.ending)
        .find(|e| !e.is_empty())
        .unwrap_or("\n");
    let fresh_len: usize = set.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
    let mut out = Zeroizing::new(String::with_capacity(text.len() + fresh_len + 64));
    let push_fresh = |out: &mut String, indent: &str| {
        for (k, v) in set {
            out.push_str(indent);
            out.push_str(k);
            out.push_str(" = ");
            out.push_str(v);
            out.push_str(eol);
        }
    };

    let Some(target) = parsed.profile(profile) else {
        out.push_str(text);
        if let Some(last) = parsed.lines.last() {
            if last.ending.is_empty() {
                out.push_str(eol);
            }
            if last.kind != Kind::Blank {
                out.push_str(eol);
            }
        }
        // At indent 0 no line continues a value, so the header is a header.
        out.push('[');
        out.push_str(profile);
        out.push(']');
        out.push_str(eol);
        push_fresh(&mut out, "");
        return checked(out);
    };

    let dropped = |line: &Line<'_>| {
        line.key.is_some_and(|k| {
            let key = &parsed.keys[k];
            key.section == target
                && (remove.contains(&key.name.as_str())
                    || set.iter().any(|(s, _)| *s == key.name.as_str()))
        })
    };
    let header = parsed.sections[target].line;
    // The first line after the header that configparser does not skip: a remaining key of
    // the profile or the next header. The set keys must be indented at least as deep, or
    // it would continue the last of them.
    let indent = parsed.lines[header + 1..]
        .iter()
        .filter(|l| !dropped(l))
        .find(|l| !matches!(l.kind, Kind::Blank | Kind::Comment))
        .map_or("", |l| {
            let n = l.text.len() - l.text.trim_start_matches(is_py_space).len();
            &l.text[..n]
        });
    for (n, line) in parsed.lines.iter().enumerate() {
        if dropped(line) {
            continue;
        }
        out.push_str(line.text);
        out.push_str(line.ending);
        if n == header {
            if line.ending.is_empty() {
                out.push_str(eol);
            }
            push_fresh(&mut out, indent);
        }
    }
    checked(out)
}

/// The edit's own result, read again: never hand back a file botocore would refuse.
fn checked(out: Zeroizing<String>) -> Result<Zeroizing<String>, Refused> {
    match parse(&out) {
        Ok(_) => Ok(out),
        Err(_) => Err(Refused {
            line: 0,
            reason: Reason::WouldNotReadBack,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Kind> {
        parse(text)
            .expect("parse")
            .lines
            .iter()
            .map(|l| l.kind)
            .collect()
    }

    fn reason(text: &str) -> Reason {
        parse(text).expect_err("refused").reason
    }

    fn value(p: &Parsed<'_>, section: &str, key: &str) -> String {
        let k = p
            .keys
            .iter()
            .find(|k| p.sections[k.section].name == section && k.name.as_str() == key)
            .unwrap_or_else(|| panic!("no {key} in [{section}]"));
        let joined: Vec<&str> = k.parts.iter().map(|(_, p)| *p).collect();
        joined.join("\n").trim_end_matches(is_py_space).to_owned()
    }

    #[test]
    fn python_whitespace_is_modelled() {
        // Python 3.11: [hex(c) for c in range(0x110000) if chr(c).isspace()]
        let python: Vec<u32> = [
            0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000,
            0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028,
            0x2029, 0x202f, 0x205f, 0x3000,
        ]
        .to_vec();
        let ours: Vec<u32> = (0..=0x10ffff)
            .filter_map(char::from_u32)
            .filter(|&c| is_py_space(c))
            .map(u32::from)
            .collect();
        assert_eq!(ours, python);
        // Python: [hex(c) for c in range(0x110000) if len(("a"+chr(c)+"b").splitlines()) > 1]
        let breaks: Vec<u32> = (0..=0x10ffff)
            .filter_map(char::from_u32)
            .filter(|&c| is_py_splitlines_break(c) || c == '\n' || c == '\r')
            .map(u32::from)
            .collect();
        assert_eq!(
            breaks,
            [0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029]
        );
    }

    #[test]
    fn lines_end_as_in_universal_newlines() {
        let got: Vec<(&str, &str)> = split_lines("a\r\nb\rc\n\nd");
        assert_eq!(
            got,
            [
                ("a", "\r\n"),
                ("b", "\r"),
                ("c", "\n"),
                ("", "\n"),
                ("d", "")
            ]
        );
        assert!(split_lines("").is_empty());
        assert_eq!(split_lines("\r\r\n"), [("", "\r"), ("", "\r\n")]);
    }

    #[test]
    fn headers_run_from_the_first_bracket_to_the_last() {
        let p = parse("[default] # main\n[b] ; c\n[ c ]\n[d]x]y\n  [e]\n[]]\n").expect("parse");
        let names: Vec<&str> = p.sections.iter().map(|s| s.name).collect();
        assert_eq!(names, ["default", "b", " c ", "d]x", "e", "]"]);
        // "[]" is no header, and not a key either.
        assert_eq!(reason("[a]\n[]\n"), Reason::NotAKeyLine);
        // "[x=1" is a key named "[x".
        let p = parse("[a]\n[x=1\n").expect("parse");
        assert_eq!(p.keys[0].name.as_str(), "[x");
    }

    #[test]
    fn keys_split_at_the_first_delimiter_and_fold_case() {
        let p = parse("[a]\nRegion : eu=west\nURL=http://x:1\nK\u{212a} =  v  \n").expect("parse");
        assert_eq!(value(&p, "a", "region"), "eu=west");
        assert_eq!(value(&p, "a", "url"), "http://x:1");
        // The Kelvin sign lower-cases to "k", as in Python.
        assert_eq!(value(&p, "a", "kk"), "v");
        assert_eq!(reason("[a]\n= x\n"), Reason::EmptyKey);
        assert_eq!(reason("[a]\n  : x\n"), Reason::EmptyKey);
        assert_eq!(reason("[a]\njust words\n"), Reason::NotAKeyLine);
    }

    #[test]
    fn comments_are_full_line_at_any_indent_and_skipped_inside_values() {
        assert_eq!(
            kinds("# c\n[a]\nk = v # not a comment\n  ; indented comment\n  more\n"),
            [
                Kind::Comment,
                Kind::Header,
                Kind::Key,
                Kind::Comment,
                Kind::Continuation
            ]
        );
        let p = parse("[a]\nk = v # x\n# between\n  more\n").expect("parse");
        assert_eq!(value(&p, "a", "k"), "v # x\nmore");
    }

    #[test]
    fn continuations_are_deeper_than_their_key_even_after_blank_lines() {
        let text = "[a]\n  k = 1\n  j = 2\n\n    deeper\n  l = 3\n    [not a header]\n";
        let p = parse(text).expect("parse");
        assert_eq!(value(&p, "a", "k"), "1");
        assert_eq!(value(&p, "a", "j"), "2\n\ndeeper");
        assert_eq!(value(&p, "a", "l"), "3\n[not a header]");
        assert_eq!(p.sections.len(), 1);
        // Right after a header nothing continues: an indented line is a key.
        assert_eq!(kinds("[a]\n    k = 1\n"), [Kind::Header, Kind::Key]);
        // A header deeper than the previous key continues it.
        assert_eq!(kinds("[a]\nk = v\n  [b]\n")[2], Kind::Continuation);
    }

    #[test]
    fn strict_mode_refuses_repeats_but_not_repeated_default_headers() {
        assert_eq!(
            reason("[default]\nk = 1\n[default] # again\n"),
            Reason::DuplicateSection("default".into())
        );
        assert_eq!(
            reason("[a]\nK = 1\nk = 2\n"),
            Reason::DuplicateKey("a".into())
        );
        let p = parse("[DEFAULT]\nr = 1\n[a]\n[DEFAULT]\ns = 2\n").expect("parse");
        assert_eq!(p.sections.len(), 3);
        assert_eq!(
            reason("[DEFAULT]\nr = 1\n[DEFAULT]\nR = 2\n"),
            Reason::DuplicateKey("DEFAULT".into())
        );
        // The same key in two sections is fine.
        assert!(parse("[a]\nk = 1\n[b]\nk = 1\n").is_ok());
    }

    #[test]
    fn lines_before_any_header_and_a_bom_are_refused() {
        assert_eq!(reason("k = v\n[a]\n"), Reason::NoSectionHeader);
        assert_eq!(reason("\u{feff}[a]\n"), Reason::NoSectionHeader);
        assert!(parse("# c\n\n  ; c\n[a]\n").is_ok());
        assert!(parse("").is_ok());
        let e = parse("# c\nk = v\n").expect_err("refused");
        assert_eq!(e.line, 2);
        assert_eq!(
            e.to_string(),
            "line 2: a line before the first [section] header"
        );
    }

    #[test]
    fn nested_blocks_need_equals_where_a_profile_sees_them() {
        assert!(parse("[a]\ns3 =\n  addressing_style = path\n\n  x = 1\n").is_ok());
        assert_eq!(
            parse("[a]\ns3 =\n  x = 1\n  oops\n").expect_err("refused"),
            Refused {
                line: 4,
                reason: Reason::NestedWithoutEquals
            }
        );
        // A value that does not start empty is not nested.
        assert!(parse("[a]\nk = v\n  oops\n").is_ok());
        // Python's splitlines() also breaks at a vertical tab.
        assert_eq!(
            reason("[a]\ns3 =\n  x = 1\u{b}oops\n"),
            Reason::NestedWithoutEquals
        );
        // In [DEFAULT]: only when some profile inherits it.
        let bad_default = "[DEFAULT]\ns3 =\n  oops\n";
        assert!(parse(bad_default).is_ok());
        assert!(parse(&format!("{bad_default}[a]\ns3 = own\n")).is_ok());
        assert_eq!(
            reason(&format!("{bad_default}[a]\n")),
            Reason::NestedWithoutEquals
        );
    }

    const SET: [(&str, &str); 3] = [
        ("aws_access_key_id", "ASIA1"),
        ("aws_secret_access_key", "s1"),
        ("aws_session_token", "t1"),
    ];
    const REMOVE: [&str; 1] = ["aws_security_token"];
    const FRESH: &str =
        "aws_access_key_id = ASIA1\naws_secret_access_key = s1\naws_session_token = t1\n";

    fn set(text: &str, profile: &str) -> String {
        set_keys(text, profile, &SET, &REMOVE)
            .expect("set")
            .as_str()
            .to_owned()
    }

    #[test]
    fn a_header_with_a_trailing_comment_is_the_profile() {
        assert_eq!(
            set("[default] # main\nregion = x\n", "default"),
            format!("[default] # main\n{FRESH}region = x\n")
        );
        assert_eq!(
            set("[default] ; c\r\naws_access_key_id = OLD\r\n", "default"),
            "[default] ; c\r\naws_access_key_id = ASIA1\r\naws_secret_access_key = s1\r\naws_session_token = t1\r\n"
        );
        // "[ default ]" is another profile: botocore calls it " default ".
        assert_eq!(
            set("[ default ]\nk = v\n", "default"),
            format!("[ default ]\nk = v\n\n[default]\n{FRESH}")
        );
    }

    #[test]
    fn indented_keys_are_kept_and_the_new_ones_take_their_indent() {
        assert_eq!(
            set(
                "[default]\n    aws_access_key_id = OLD\n    region = eu-west-1\n    output = json\n",
                "default"
            ),
            "[default]\n    aws_access_key_id = ASIA1\n    aws_secret_access_key = s1\n    aws_session_token = t1\n    region = eu-west-1\n    output = json\n"
        );
        // An indented next header would otherwise continue the token.
        assert_eq!(
            set("[a]\n\t[b]\nk = v\n", "a"),
            "[a]\n\taws_access_key_id = ASIA1\n\taws_secret_access_key = s1\n\taws_session_token = t1\n\t[b]\nk = v\n"
        );
    }

    #[test]
    fn replaced_keys_go_with_their_continuations_and_comments_stay() {
        let text = "[a]\nregion = r\nAWS_SESSION_TOKEN = old\n  old2\n# mine\n\n  old3\naws_security_token = x\n[b]\nk = v";
        assert_eq!(
            set(text, "a"),
            format!("[a]\n{FRESH}region = r\n# mine\n\n[b]\nk = v")
        );
    }

    #[test]
    fn a_missing_profile_is_appended_in_the_files_line_endings() {
        assert_eq!(set("", "p"), format!("[p]\n{FRESH}"));
        assert_eq!(
            set("[o]\r\nk = v", "p"),
            "[o]\r\nk = v\r\n\r\n[p]\r\naws_access_key_id = ASIA1\r\naws_secret_access_key = s1\r\naws_session_token = t1\r\n"
        );
        assert_eq!(
            set("[o]\nk =\n  x = 1\n\n", "p"),
            format!("[o]\nk =\n  x = 1\n\n[p]\n{FRESH}")
        );
        // The header of an empty last profile with no final newline.
        assert_eq!(set("[p]", "p"), format!("[p]\n{FRESH}"));
    }

    #[test]
    fn refused_files_and_requests() {
        let dup = set_keys("[p]\n[p] # again\n", "p", &SET, &REMOVE).expect_err("refused");
        assert_eq!(dup.to_string(), "line 2: a second [p] section");
        for bad in ["", "DEFAULT", "a\nb", "a\rb"] {
            assert_eq!(
                set_keys("", bad, &SET, &REMOVE)
                    .expect_err("refused")
                    .reason,
                Reason::BadProfileName,
                "{bad:?}"
            );
        }
        for bad in ["", " x", "x\u{85}", "a\nb", "a\rb"] {
            let e = set_keys("", "p", &[("k", bad)], &[]).expect_err("refused");
            assert_eq!(e.reason, Reason::BadValue, "{bad:?}");
        }
    }

    #[test]
    fn an_edit_that_would_expose_a_broken_default_is_refused() {
        // botocore reads this (no profile inherits the broken block), but a new profile
        // would inherit it, as would [a] once its own key is gone.
        for (text, profile) in [
            ("[DEFAULT]\ns3 =\n  oops\n", "p"),
            (
                "[DEFAULT]\naws_security_token =\n  oops\n[a]\naws_security_token = x\n",
                "a",
            ),
        ] {
            assert!(parse(text).is_ok());
            let e = set_keys(text, profile, &SET, &REMOVE).expect_err("refused");
            assert_eq!(e.reason, Reason::WouldNotReadBack);
        }
    }

    #[test]
    fn section_names_in_messages_are_escaped_and_short() {
        let e = parse("[\u{1b}[2J]\n[\u{1b}[2J]\n").expect_err("refused");
        assert_eq!(e.to_string(), "line 2: a second [\\u{1b}[2J] section");
        let long = "x".repeat(100);
        let e = parse(&format!("[{long}]\n[{long}]\n")).expect_err("refused");
        assert!(
            e.to_string()
                .ends_with(&format!("[{}…] section", &long[..64])),
            "{e}"
        );
    }

    #[test]
    fn messages_never_quote_keys_or_values() {
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY";
        for text in [
            format!("{secret}=\n[a]\n"),
            format!("[a]\n{secret}=x\n{secret}=y\n"),
            format!("[a]\n{secret}\n"),
            format!("[a]\ns3 =\n  {secret}\n"),
        ] {
            let e = parse(&text).expect_err("refused");
            assert!(!e.to_string().contains("wJalr"), "{e}");
            assert!(!format!("{e:?}").contains("wJalr"), "{e:?}");
        }
    }
}
