//! The AWS config file (`~/.aws/config`), read the way botocore reads it: Python's
//! `configparser.RawConfigParser` (strict, `=` and `:` delimiters, whole-line `#` and `;`
//! comments, values continued on deeper-indented lines, option names lower-cased, a
//! `[DEFAULT]` section inherited by every other) followed by botocore's
//! `configloader.raw_config_parse` (an indented block after `key =` is a nested
//! sub-section) and `build_profile_map` (`[profile NAME]` and `[default]`, `[services NAME]`,
//! names split like a POSIX shell would).
//!
//! Only what the endpoint choice needs is looked up; the file is bounded in size.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::config::ConfigError;

/// The largest config file read (real ones are a few KiB).
pub const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;

/// One option's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `key = value`.
    Text(String),
    /// `key =` followed by an indented block of `name = value` lines.
    Nested(BTreeMap<String, String>),
}

/// One `[section]`: option names (lower-cased) to values.
pub type Section = BTreeMap<String, Value>;

/// A parsed AWS config file.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    path: PathBuf,
    /// Sections in file order (configparser keeps the order of first appearance).
    sections: Vec<(String, Section)>,
}

/// Options of a section as read: name and value lines, before configparser's join.
type RawOptions = Vec<(String, Vec<String>)>;

/// Python's `str.isspace` for the characters that matter here (Rust's `char::is_whitespace`
/// misses the four ASCII separators).
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn py_strip(s: &str) -> &str {
    s.trim_matches(py_space)
}

/// Lines as Python's universal-newline file iteration yields them (`\n`, `\r\n`, `\r`).
fn file_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push(&text[start..i]);
                start = i + 1;
            }
            b'\r' => {
                lines.push(&text[start..i]);
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// Python's `str.splitlines` (used on nested values).
fn py_splitlines(s: &str) -> impl Iterator<Item = &str> {
    s.split([
        '\n', '\r', '\u{0b}', '\u{0c}', '\u{1c}', '\u{1d}', '\u{1e}', '\u{85}', '\u{2028}',
        '\u{2029}',
    ])
}

/// `shlex.split(s)` in POSIX mode without comments; `None` where Python raises.
fn shlex_split(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\\' => word.get_or_insert_default().push(chars.next()?),
            '\'' => {
                let w = word.get_or_insert_default();
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => w.push(c),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_default();
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\') => w.push(c),
                            c => {
                                w.push('\\');
                                w.push(c);
                            }
                        },
                        c => w.push(c),
                    }
                }
            }
            c => word.get_or_insert_default().push(c),
        }
    }
    if let Some(w) = word {
        words.push(w);
    }
    Some(words)
}

/// `build_profile_map`'s `_parse_section`: `"profile NAME"` → `NAME` when the header splits
/// into exactly two words.
fn second_word(header: &str) -> Option<String> {
    let mut parts = shlex_split(header)?;
    (parts.len() == 2).then(|| parts.swap_remove(1))
}

impl ConfigFile {
    /// Parses `text`, read from `path` (named in errors).
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
        let at = |line: usize, why: &str| {
            ConfigError::new(format!(
                "the AWS config file {}, line {line}: {why}",
                path.display()
            ))
        };
        const DEFAULT: &str = "DEFAULT";
        // Raw values: a list of lines per option, joined at the end as configparser does.
        let mut sections: Vec<(String, RawOptions)> = Vec::new();
        let mut defaults: RawOptions = Vec::new();
        // Which section receives options: None before any header, Some(None) for DEFAULT.
        let mut current: Option<Option<usize>> = None;
        let mut option: Option<usize> = None;
        let mut indent_level = 0usize;
        for (n, line) in file_lines(text).into_iter().enumerate() {
            let lineno = n + 1;
            let stripped = py_strip(line);
            let comment = stripped.starts_with('#') || stripped.starts_with(';');
            let value = if comment { "" } else { stripped };
            if value.is_empty() {
                // A blank line (not a comment) belongs to the value being read.
                if !comment && let (Some(cur), Some(opt)) = (current, option) {
                    let list = match cur {
                        Some(i) => &mut sections[i].1,
                        None => &mut defaults,
                    };
                    list[opt].1.push(String::new());
                }
                continue;
            }
            let cur_indent = line.chars().take_while(|c| py_space(*c)).count();
            if let (Some(cur), Some(opt), true) = (current, option, cur_indent > indent_level) {
                let list = match cur {
                    Some(i) => &mut sections[i].1,
                    None => &mut defaults,
                };
                list[opt].1.push(value.to_owned());
                continue;
            }
            indent_level = cur_indent;
            if let Some(rest) = value.strip_prefix('[')
                && let Some(end) = rest.rfind(']')
                && end > 0
            {
                let name = &rest[..end];
                if name == DEFAULT {
                    current = Some(None);
                } else if sections.iter().any(|(s, _)| s == name) {
                    return Err(at(lineno, &format!("section [{name}] appears twice")));
                } else {
                    sections.push((name.to_owned(), Vec::new()));
                    current = Some(Some(sections.len() - 1));
                }
                option = None;
                continue;
            }
            let Some(cur) = current else {
                return Err(at(lineno, "an option before the first [section] header"));
            };
            let Some(delim) = value.find(['=', ':']) else {
                return Err(at(
                    lineno,
                    "not a [section] header, a name = value line, or a comment",
                ));
            };
            let name = py_strip(&value[..delim]).to_lowercase();
            if name.is_empty() {
                return Err(at(lineno, "an option with no name"));
            }
            let first = py_strip(&value[delim + 1..]).to_owned();
            let (section_name, list) = match cur {
                Some(i) => (sections[i].0.clone(), &mut sections[i].1),
                None => (DEFAULT.to_owned(), &mut defaults),
            };
            if list.iter().any(|(k, _)| *k == name) {
                return Err(at(
                    lineno,
                    &format!("option {name} appears twice in [{section_name}]"),
                ));
            }
            list.push((name, vec![first]));
            option = Some(list.len() - 1);
        }
        let finish = |raw: RawOptions| -> Result<Section, ConfigError> {
            let mut out = Section::new();
            for (name, lines) in raw {
                let joined = lines.join("\n");
                let joined = joined.trim_end_matches(py_space);
                let value = if joined.starts_with('\n') {
                    let mut nested = BTreeMap::new();
                    for l in py_splitlines(joined) {
                        let l = py_strip(l);
                        if l.is_empty() {
                            continue;
                        }
                        let (k, v) = l.split_once('=').ok_or_else(|| {
                            ConfigError::new(format!(
                                "the AWS config file {}: the block under {name} has a line without \"=\"",
                                path.display()
                            ))
                        })?;
                        nested.insert(py_strip(k).to_owned(), py_strip(v).to_owned());
                    }
                    Value::Nested(nested)
                } else {
                    Value::Text(joined.to_owned())
                };
                out.insert(name, value);
            }
            Ok(out)
        };
        let defaults = finish(defaults)?;
        let mut parsed = Vec::with_capacity(sections.len());
        for (name, raw) in sections {
            let mut section = finish(raw)?;
            for (k, v) in &defaults {
                section.entry(k.clone()).or_insert_with(|| v.clone());
            }
            parsed.push((name, section));
        }
        Ok(ConfigFile {
            path: path.to_owned(),
            sections: parsed,
        })
    }

    /// Reads and parses `path`. A path that is not a regular file (missing, a directory)
    /// or cannot be opened is no configuration, as for botocore; a file over
    /// [`MAX_CONFIG_FILE_BYTES`], not UTF-8, or malformed is an error.
    pub fn load(path: &Path) -> Result<Option<ConfigFile>, ConfigError> {
        // Checked on the open descriptor, opened non-blocking: a FIFO put in the file's
        // place can neither block the open nor be read.
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
        else {
            return Ok(None);
        };
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                ConfigError::new(format!(
                    "cannot read the AWS config file {}: {e}",
                    path.display()
                ))
            })?;
        if bytes.len() as u64 > MAX_CONFIG_FILE_BYTES {
            return Err(ConfigError::new(format!(
                "the AWS config file {} is larger than {} KiB: not reading it",
                path.display(),
                MAX_CONFIG_FILE_BYTES / 1024
            )));
        }
        let text = String::from_utf8(bytes).map_err(|_| {
            ConfigError::new(format!(
                "the AWS config file {} is not UTF-8 text",
                path.display()
            ))
        })?;
        ConfigFile::parse(path, &text).map(Some)
    }

    /// Where the file was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The profile `name`: `[profile NAME]`, or `[default]` for `default` (when both are
    /// present the later one wins, as in botocore's profile map).
    pub fn profile(&self, name: &str) -> Option<&Section> {
        self.named("profile", name, true)
    }

    /// The `[services NAME]` section.
    pub fn services(&self, name: &str) -> Option<&Section> {
        self.named("services", name, false)
    }

    fn named(&self, prefix: &str, name: &str, default_too: bool) -> Option<&Section> {
        self.sections
            .iter()
            .filter(|(header, _)| {
                // build_profile_map tests the prefix before `default`.
                if header.starts_with("profile") {
                    prefix == "profile" && second_word(header).as_deref() == Some(name)
                } else if header.starts_with("sso-session") {
                    false
                } else if header.starts_with("services") {
                    prefix == "services" && second_word(header).as_deref() == Some(name)
                } else {
                    default_too && header == "default" && name == "default"
                }
            })
            .map(|(_, s)| s)
            .next_back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
        ConfigFile::parse(Path::new("/cfg"), text)
    }

    fn text(s: &Section, k: &str) -> Option<String> {
        match s.get(k) {
            Some(Value::Text(t)) => Some(t.clone()),
            _ => None,
        }
    }

    #[test]
    fn profiles_services_and_nested_blocks() {
        let c = parse(
            "# comment\n[default]\nregion = us-east-1\n\n[profile ra]\nservices = local\nEndpoint_URL: http://a:1\n  ; indented comment\n[services local]\nrolesanywhere =\n  endpoint_url = https://127.0.0.1:8443\n\n  other = x\nsts =\n  endpoint_url = http://sts\n",
        )
        .expect("parse");
        let d = c.profile("default").expect("default");
        assert_eq!(text(d, "region").as_deref(), Some("us-east-1"));
        let ra = c.profile("ra").expect("ra");
        assert_eq!(text(ra, "services").as_deref(), Some("local"));
        assert_eq!(text(ra, "endpoint_url").as_deref(), Some("http://a:1"));
        let s = c.services("local").expect("services");
        let Some(Value::Nested(ra_block)) = s.get("rolesanywhere") else {
            panic!("nested: {s:?}")
        };
        assert_eq!(
            ra_block.get("endpoint_url").map(String::as_str),
            Some("https://127.0.0.1:8443")
        );
        assert_eq!(ra_block.get("other").map(String::as_str), Some("x"));
        assert!(c.profile("local").is_none());
        assert!(c.services("ra").is_none());
    }

    #[test]
    fn python_quirks_are_kept() {
        // Inline comments are part of the value; `:` delimits; the first delimiter wins;
        // a continuation line extends a plain value; [DEFAULT] is inherited; quoted and
        // odd headers split like shlex; CR line ends.
        let c = parse(
            "[DEFAULT]\nuse_fips_endpoint = true\r\n[profile 'my prof']\nregion = eu-west-1 # not a comment\na:b = c\nlong = one\n   two\n[profilex other]\nk = v\n",
        )
        .expect("parse");
        let p = c.profile("my prof").expect("quoted name");
        assert_eq!(
            text(p, "region").as_deref(),
            Some("eu-west-1 # not a comment")
        );
        assert_eq!(text(p, "a").as_deref(), Some("b = c"));
        assert_eq!(text(p, "long").as_deref(), Some("one\ntwo"));
        assert_eq!(text(p, "use_fips_endpoint").as_deref(), Some("true"));
        assert!(
            c.profile("other").is_some(),
            "[profilex other] is a profile"
        );
        // The later of [default] and [profile default] wins.
        let c = parse("[default]\nk = 1\n[profile default]\nk = 2\n").expect("parse");
        assert_eq!(
            text(c.profile("default").expect("p"), "k").as_deref(),
            Some("2")
        );
    }

    #[test]
    fn what_botocore_refuses_is_refused() {
        for (bad, why) in [
            ("k = v\n", "before the first"),
            ("[a]\nk = 1\n[a]\n", "twice"),
            ("[a]\nk = 1\nK = 2\n", "twice"),
            ("[a]\njust words\n", "not a [section]"),
            ("[a]\n = v\n", "no name"),
            ("[a]\ns3 =\n  novalue\n", "without \"=\""),
        ] {
            let e = parse(bad).expect_err(bad).message;
            assert!(e.contains(why) && e.contains("/cfg"), "{bad:?}: {e}");
        }
        // An empty header is no header.
        assert!(parse("[]\n").is_err());
    }

    #[test]
    fn shlex_like_python() {
        assert_eq!(
            shlex_split("profile \"a b\""),
            Some(vec!["profile".into(), "a b".into()])
        );
        assert_eq!(
            shlex_split("profile a\\ b"),
            Some(vec!["profile".into(), "a b".into()])
        );
        assert_eq!(shlex_split("profile 'x"), None);
        assert_eq!(second_word("profile a b"), None);
    }

    #[test]
    fn load_bounds_and_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(
            ConfigFile::load(&dir.path().join("none"))
                .expect("missing")
                .is_none()
        );
        assert!(ConfigFile::load(dir.path()).expect("a directory").is_none());
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'#'; 1024 * 1024 + 1]).expect("write");
        let e = ConfigFile::load(&big).expect_err("too big").message;
        assert!(e.contains("larger than 1024 KiB"), "{e}");
        let bin = dir.path().join("bin");
        std::fs::write(&bin, [0xff, 0xfe]).expect("write");
        assert!(ConfigFile::load(&bin).is_err());
    }
}
