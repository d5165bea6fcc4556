//! `update`'s credentials-file merge checked by botocore itself: a table of layouts and
//! generated ones, each file read with `botocore.configloader.raw_config_parse` before and
//! after the merge, in one Python process per batch. A file botocore refuses must be
//! refused; otherwise every other profile (and `[DEFAULT]`) reads as before and the target
//! profile reads as its old keys plus the new credentials.

use std::collections::BTreeMap;
use std::process::Command;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use ra_signer::credentials::Credentials;
use ra_signer::credentials_file::{self, Reason};
use ra_signer::secret::Secret;
use ra_signer::time::UtcTime;
use serde_json::Value;

use crate::common::*;

const KEY_ID: &str = "ASIATESTMERGE0000001";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE+/token==";

fn creds() -> Credentials {
    Credentials {
        access_key_id: KEY_ID.to_owned(),
        secret_access_key: Secret::new(SECRET.to_owned()),
        session_token: Secret::new(TOKEN.to_owned()),
        expiration: UtcTime::from_unix(4_102_444_800),
    }
}

/// One layout: the file as it is and the profile `update` writes.
struct Case {
    name: String,
    before: String,
    profile: String,
}

/// For each file of `dir`: `{"error": name}` or `{"profiles": raw_config_parse(file),
/// "defaults": the [DEFAULT] values, raw}`.
const CHECKER: &str = r#"
import configparser, json, os, sys
from botocore.configloader import raw_config_parse
out = {}
d = sys.argv[1]
for name in sorted(os.listdir(d)):
    path = os.path.join(d, name)
    try:
        profiles = raw_config_parse(path)
        cp = configparser.RawConfigParser()
        cp.read([path])
        out[name] = {"profiles": profiles, "defaults": dict(cp.defaults())}
    except Exception as e:
        out[name] = {"error": type(e).__name__}
print(json.dumps(out))
"#;

/// What botocore makes of each named text, in one Python process.
fn botocore_reads(files: &[(String, &str)]) -> BTreeMap<String, Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write case");
    }
    let out = Command::new(python())
        .arg("-c")
        .arg(CHECKER)
        .arg(dir.path())
        .output()
        .expect("python");
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).expect("checker json")
}

/// botocore's `_parse_nested`, for a `[DEFAULT]` value a new profile inherits.
fn nested(value: &str) -> Value {
    if !value.starts_with('\n') {
        return Value::String(value.to_owned());
    }
    let mut map = serde_json::Map::new();
    for line in value.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once('=').expect("nested line");
        map.insert(k.trim().to_owned(), Value::String(v.trim().to_owned()));
    }
    Value::Object(map)
}

/// Merges every case, has botocore read them all, and asserts the rule; returns how many
/// files botocore accepted and how many it refused.
fn check(cases: &[Case]) -> (usize, usize) {
    let merged: Vec<_> = cases
        .iter()
        .map(|c| ra_signer::update::merge(&c.before, &c.profile, &creds()))
        .collect();
    let mut files: Vec<(String, &str)> = Vec::new();
    for (i, (case, result)) in cases.iter().zip(&merged).enumerate() {
        files.push((format!("{i:04}.before"), case.before.as_str()));
        if let Ok(after) = result {
            files.push((format!("{i:04}.after"), after.as_str()));
        }
    }
    let read = botocore_reads(&files);
    let (mut accepted, mut refused) = (0, 0);
    for (i, (case, result)) in cases.iter().zip(&merged).enumerate() {
        let what = format!(
            "case {} (profile {:?}): {:?}",
            case.name, case.profile, case.before
        );
        let before = &read[&format!("{i:04}.before")];
        if before.get("error").is_some() {
            refused += 1;
            assert!(
                result.is_err(),
                "{what}: botocore refuses it ({}), the merge did not",
                before["error"]
            );
            continue;
        }
        accepted += 1;
        let after = match result {
            Ok(after) => after,
            Err(e) if e.reason == Reason::WouldNotReadBack => {
                // Only a broken [DEFAULT] block that the edit would expose.
                assert!(case.before.contains("[DEFAULT]"), "{what}: {e}");
                continue;
            }
            Err(e) => panic!("{what}: botocore reads it, the merge refused: {e}"),
        };
        let after_read = &read[&format!("{i:04}.after")];
        assert!(
            after_read.get("error").is_none(),
            "{what}: botocore refuses the result ({}): {:?}",
            after_read["error"],
            after.as_str()
        );
        let (bp, ap) = (&before["profiles"], &after_read["profiles"]);
        assert_eq!(before["defaults"], after_read["defaults"], "{what}");
        let others = |p: &Value| {
            let mut m = p.as_object().expect("profiles").clone();
            m.remove(&case.profile);
            m
        };
        assert_eq!(others(bp), others(ap), "{what}: other profiles changed");
        let defaults = before["defaults"].as_object().expect("defaults");
        let mut expected = match bp.get(&case.profile) {
            Some(p) => p.as_object().expect("profile").clone(),
            None => defaults
                .iter()
                .map(|(k, v)| (k.clone(), nested(v.as_str().expect("raw"))))
                .collect(),
        };
        match defaults.get("aws_security_token") {
            Some(v) => expected.insert(
                "aws_security_token".into(),
                nested(v.as_str().expect("raw")),
            ),
            None => expected.remove("aws_security_token"),
        };
        for (k, v) in [
            ("aws_access_key_id", KEY_ID),
            ("aws_secret_access_key", SECRET),
            ("aws_session_token", TOKEN),
        ] {
            expected.insert(k.into(), Value::String(v.into()));
        }
        assert_eq!(
            ap[&case.profile],
            Value::Object(expected),
            "{what}\nafter: {:?}",
            after.as_str()
        );
        assert_other_bytes_kept(case, after);
    }
    (accepted, refused)
}

/// The lines outside the target profile appear in the result unchanged and in order.
fn assert_other_bytes_kept(case: &Case, after: &str) {
    let parsed = credentials_file::parse(&case.before).expect("parsed");
    let target = parsed.profile(&case.profile);
    let after_lines = credentials_file::parse(after).expect("parsed").lines;
    let mut rest = after_lines.iter();
    for line in parsed.lines.iter().filter(|l| l.section != target) {
        let found = rest
            .any(|a| a.text == line.text && (a.ending == line.ending || line.ending.is_empty()));
        assert!(
            found,
            "case {}: line {:?} lost: {after:?}",
            case.name, line.text
        );
    }
}

fn case(name: &str, before: &str, profile: &str) -> Case {
    Case {
        name: name.to_owned(),
        before: before.to_owned(),
        profile: profile.to_owned(),
    }
}

#[test]
fn botocore_reads_every_layout_as_the_merge_intends() {
    let ind = "[default]\n    aws_access_key_id = OLD\n    region = eu-west-1\n    output = json\n";
    let cases = [
        case("empty", "", "default"),
        case("only a comment", "# nothing yet", "default"),
        case(
            "trailing #",
            "[default] # main\naws_access_key_id = OLD\nregion = x\n[o]\nk = v\n",
            "default",
        ),
        case(
            "trailing ;",
            "[default] ; c\naws_access_key_id = OLD\n",
            "default",
        ),
        case("trailing text", "[default]x\nregion = x\n", "default"),
        case("spaced name", "[ default ]\nregion = x\n", "default"),
        case(
            "spaced name, other",
            "[ default ]\nregion = x\n",
            " default ",
        ),
        case("bracket inside", "[a]b]\nk = v\n", "a]b"),
        case("indented keys", ind, "default"),
        case(
            "indented region first",
            "[default]\n    region = eu-west-1\n    aws_access_key_id = OLD\n",
            "default",
        ),
        case("indented header next", "[a]\n  [b]\nk = v\n", "a"),
        case(
            "tab indents",
            "[a]\n\tregion = r\n\taws_session_token = old\n\t\tcont\n",
            "a",
        ),
        case(
            "continuation of old token",
            "[a]\naws_session_token = old\n  more\n\n  more2\nregion = r\n",
            "a",
        ),
        case(
            "comment inside value",
            "[a]\naws_session_token = old\n# c\n  more\nregion = r\n",
            "a",
        ),
        case(
            "nested s3",
            "[a]\naws_access_key_id = OLD\ns3 =\n  addressing_style = path\n  signature_version = s3v4\nregion = r\n",
            "a",
        ),
        case(
            "nested s3 last",
            "[a]\ns3 =\n  addressing_style = path\n",
            "b",
        ),
        case(
            "colon delimiter",
            "[a]\nAWS_ACCESS_KEY_ID: OLD\naws_secret_access_key:old\n",
            "a",
        ),
        case(
            "upper-case keys",
            "[a]\nAWS_Session_Token = old\nAWS_SECURITY_TOKEN = old\n",
            "a",
        ),
        case("delimiter in value", "[a]\nurl = http://x:1/?a=b\n", "a"),
        case(
            "crlf",
            "[a]\r\nregion = r\r\naws_access_key_id = OLD\r\n[b]\r\nk = v\r\n",
            "a",
        ),
        case("crlf append", "[a]\r\nregion = r", "b"),
        case("lone cr", "[a]\rregion = r\r", "a"),
        case("no final newline", "[a]\nregion = r", "a"),
        case("header at eof", "[o]\nk = v\n[a]", "a"),
        case("blank lines", "\n\n[a]\n\n\nregion = r\n\n\n", "a"),
        case(
            "DEFAULT section",
            "[DEFAULT]\nregion = r\n[a]\nk = v\n",
            "a",
        ),
        case(
            "DEFAULT new profile",
            "[DEFAULT]\nregion = r\naws_security_token = d\n",
            "b",
        ),
        case(
            "DEFAULT twice",
            "[DEFAULT]\nregion = r\n[a]\n[DEFAULT]\noutput = json\n",
            "a",
        ),
        case(
            "default lower is a profile",
            "[default]\nregion = r\n[DEFAULT]\nk = v\n",
            "default",
        ),
        case(
            "unicode spaces",
            "[a]\n\u{3000}region = r\n\u{3000}aws_access_key_id = OLD\n",
            "a",
        ),
        case("key with spaces", "[a]\nmy key = v\n", "a"),
        case("value with hash", "[a]\nk = v # not a comment\n", "a"),
        // Files botocore refuses.
        case(
            "second default",
            "[default] # main\nk = v\n[default]\n",
            "default",
        ),
        case("duplicate key", "[a]\nregion = r\nREGION = s\n", "a"),
        case("duplicate key elsewhere", "[a]\n[b]\nk = 1\nk = 2\n", "a"),
        case("no header", "region = r\n[a]\n", "a"),
        case("bom", "\u{feff}[a]\nk = v\n", "a"),
        case("not a key", "[a]\njust words\n", "a"),
        case("empty key", "[a]\n= v\n", "a"),
        case("empty brackets", "[a]\n[]\n", "a"),
        case("bad nested", "[a]\ns3 =\n  oops\n", "b"),
        case(
            "DEFAULT duplicate key",
            "[DEFAULT]\nk = 1\n[DEFAULT]\nk = 2\n[a]\n",
            "a",
        ),
    ];
    let (accepted, refused) = check(&cases);
    assert_eq!((accepted, refused), (32, 10));
}

fn one_of(items: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(items)
}

/// A line of a generated file: any piece at any indentation, so that headers, keys,
/// continuations and comments meet in every order.
fn line() -> impl Strategy<Value = String> {
    let indent = prop_oneof![
        8 => Just(""),
        2 => Just("  "),
        1 => Just("\t"),
        1 => Just("    "),
        1 => Just(" \u{3000}"),
    ];
    let header = (
        one_of(&["default", "ra", "other", "DEFAULT", " ra ", "ra]x", "new"]),
        one_of(&["", "", " # main", " ; c", "x", "]", " "]),
    )
        .prop_map(|(n, s)| format!("[{n}]{s}"));
    let key = (
        one_of(&[
            "aws_access_key_id",
            "AWS_Access_Key_Id",
            "aws_secret_access_key",
            "aws_session_token",
            "aws_security_token",
            "region",
            "output",
            "s3",
            "x",
            "my key",
        ]),
        one_of(&[" = ", "=", ": ", " :", "  =  ", " = "]),
        one_of(&["v", "", "eu-west-1", "a=b", "# no comment", "OLD"]),
    )
        .prop_map(|(k, d, v)| format!("{k}{d}{v}"));
    let other = one_of(&[
        "# c",
        "; c",
        "; [default]",
        "",
        "\t",
        "addressing_style = path",
        "more",
        "oops",
        "= v",
        "[]",
        "[ra]",
    ])
    .prop_map(str::to_owned);
    (indent, prop_oneof![3 => header, 6 => key, 4 => other]).prop_map(|(i, c)| format!("{i}{c}"))
}

fn layout() -> impl Strategy<Value = (String, &'static str)> {
    (
        prop::bool::weighted(0.9),
        prop::collection::vec(line(), 0..10),
        one_of(&["\n", "\n", "\r\n", "\r", "mixed"]),
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.03),
        one_of(&["default", "ra", "new"]),
    )
        .prop_map(|(header, lines, eol, final_eol, bom, profile)| {
            let mut text = String::new();
            if bom {
                text.push('\u{feff}');
            }
            let mut all = Vec::new();
            if header {
                all.push(format!("[{profile}]"));
            }
            all.extend(lines);
            let count = all.len();
            for (i, l) in all.into_iter().enumerate() {
                text.push_str(&l);
                if i + 1 < count || final_eol {
                    text.push_str(match eol {
                        "mixed" if i % 2 == 1 => "\r\n",
                        "mixed" => "\n",
                        e => e,
                    });
                }
            }
            (text, profile)
        })
}

#[test]
fn botocore_agrees_with_the_merge_on_generated_layouts() {
    // A fixed seed and count: the same 600 layouts on every run, about a second of Python.
    let config = Config {
        cases: 600,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[9; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let strategy = layout();
    let cases: Vec<Case> = (0..600)
        .map(|i| {
            let (before, profile) = strategy.new_tree(&mut runner).expect("tree").current();
            case(&format!("generated {i}"), &before, profile)
        })
        .collect();
    let (accepted, refused) = check(&cases);
    eprintln!("{accepted} accepted, {refused} refused");
    // Both sides are exercised.
    assert!(
        accepted >= 150 && refused >= 150,
        "{accepted} accepted, {refused} refused"
    );
}
