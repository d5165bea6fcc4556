//! `completions` and `man`: the generated text is loaded by the real shells and rendered by
//! the real `man`, and names every command and every flag that `--help` shows.

use std::path::Path;
use std::process::Command;

use crate::common::*;

/// The commands `ra-signer --help` (or `ra-signer cache --help`) lists, `help` left out.
fn commands(home: &Path, parent: &[&str]) -> Vec<String> {
    let out = run(ra_signer(home).args(parent).arg("--help"));
    assert_exit(&out, 0);
    stdout(&out)
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect()
}

/// Every command path: `["serve"]`, `["cache", "list"]`, ….
fn command_paths(home: &Path) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for c in commands(home, &[]) {
        let subs = commands(home, &[c.as_str()]);
        paths.push(vec![c.clone()]);
        paths.extend(subs.into_iter().map(|s| vec![c.clone(), s]));
    }
    paths
}

/// The long flags `--help` shows for a command: the leading words of each option line
/// (indented 2 or 6 columns; wrapped descriptions are indented further).
fn long_flags(home: &Path, path: &[String]) -> Vec<String> {
    let out = run(ra_signer(home).args(path).arg("--help"));
    assert_exit(&out, 0);
    let mut flags: Vec<String> = stdout(&out)
        .lines()
        .filter(|l| {
            let indent = l.len() - l.trim_start().len();
            indent <= 6 && l.trim_start().starts_with('-')
        })
        .flat_map(|l| {
            l.split_whitespace()
                .take_while(|w| w.starts_with('-') || w.starts_with('<') || w.starts_with('['))
                .map(|w| w.trim_end_matches(',').to_owned())
                .filter(|w| w.starts_with("--") && w.len() > 2)
                .collect::<Vec<_>>()
        })
        .filter(|f| f != "--help")
        .collect();
    flags.dedup();
    flags
}

fn completion(home: &Path, shell: &str) -> String {
    let out = run(ra_signer(home).args(["completions", shell]));
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(!text.trim().is_empty(), "{shell}: empty script");
    for c in commands(home, &[]) {
        assert!(text.contains(&c), "{shell}: no {c} in the script");
    }
    text
}

/// Completes the words of `line` (the last one being completed) with the script loaded by
/// a real bash, through the function that `complete -p ra-signer` names.
pub(crate) fn bash_complete(script: &Path, line: &[&str]) -> Vec<String> {
    let words = line
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let program = format!(
        r#"source '{}'
spec=$(complete -p ra-signer) || exit 3
fn=$(printf '%s\n' "$spec" | sed -n 's/.*-F \([^ ]*\).*/\1/p')
[ -n "$fn" ] || exit 4
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
"$fn" ra-signer "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        script.display()
    );
    let out = run(Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default()));
    assert_exit(&out, 0);
    stdout(&out).lines().map(str::to_owned).collect()
}

#[test]
fn bash_completes_commands_and_each_commands_flags() {
    let dir = tempdir();
    let script = dir.path().join("ra-signer.bash");
    std::fs::write(&script, completion(dir.path(), "bash")).expect("write");
    assert_eq!(
        bash_complete(&script, &["ra-signer", "cred"]),
        ["credential-process"]
    );
    let all = bash_complete(&script, &["ra-signer", ""]);
    for c in commands(dir.path(), &[]) {
        assert!(all.contains(&c), "no {c} among {all:?}");
    }
    // The flags are deferred in clap: each command's own must be completed all the same.
    assert_eq!(
        bash_complete(&script, &["ra-signer", "serve", "--pkcs11-u"]),
        ["--pkcs11-uri"]
    );
    for path in command_paths(dir.path()) {
        let mut line: Vec<&str> = vec!["ra-signer"];
        line.extend(path.iter().map(String::as_str));
        line.push("--");
        let offered = bash_complete(&script, &line);
        for flag in long_flags(dir.path(), &path) {
            assert!(
                offered.contains(&flag),
                "ra-signer {} {flag}: not completed (offered {offered:?})",
                path.join(" ")
            );
        }
    }
}

/// Runs `shell`'s own syntax check on `script`, or says why it cannot.
fn syntax_check(shell: &str, check: &[&str], script: &Path) {
    if Command::new(shell).arg("--version").output().is_err() {
        eprintln!("completions: {shell} is not installed: its script's syntax is not checked");
        return;
    }
    let out = run(Command::new(shell).args(check).arg(script));
    assert_exit(&out, 0);
    assert!(
        out.stderr.is_empty(),
        "{shell} -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn zsh_and_fish_scripts_name_every_command_and_parse() {
    let dir = tempdir();
    for (shell, check) in [("zsh", &["-n"][..]), ("fish", &["--no-execute"][..])] {
        let text = completion(dir.path(), shell);
        assert!(
            text.contains("pkcs11-uri") && text.contains("trust-anchor-arn"),
            "{shell}: the deferred flags are missing"
        );
        let script = dir.path().join(format!("ra-signer.{shell}"));
        std::fs::write(&script, text).expect("write");
        syntax_check(shell, check, &script);
    }
}

#[test]
fn completions_refuse_an_unknown_shell() {
    let dir = tempdir();
    let out = run(ra_signer(dir.path()).args(["completions", "tcsh"]));
    assert_exit(&out, 2);
}

/// The page rendered as text by the real `man`, or, without it, the roff source.
fn rendered(page: &Path) -> String {
    let text = std::fs::read_to_string(page).expect("read page");
    assert!(text.contains(".TH "), "{}: no .TH", page.display());
    match Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(page)
        .env("MANWIDTH", "200")
        .env("MAN_KEEP_FORMATTING", "0")
        .output()
    {
        Ok(out) => {
            assert_exit(&out, 0);
            assert!(
                !String::from_utf8_lossy(&out.stderr).contains("warning"),
                "{}: {}",
                page.display(),
                stderr(&out)
            );
            // No bold or underline overstrikes: plain text to search.
            let plain = stdout(&out).replace('\u{2010}', "-");
            let mut clean = String::new();
            let mut chars = plain.chars().peekable();
            while let Some(c) = chars.next() {
                if chars.peek() == Some(&'\u{8}') {
                    chars.next();
                    continue;
                }
                clean.push(c);
            }
            clean
        }
        Err(_) => {
            eprintln!("man: not installed, checking the roff source only");
            text.replace("\\-", "-")
        }
    }
}

#[test]
fn man_pages_render_and_hold_every_flag() {
    let dir = tempdir();
    let pages = dir.path().join("man");
    let out = run(ra_signer(dir.path()).args(["man", "--out-dir"]).arg(&pages));
    assert_exit(&out, 0);

    let top = run(ra_signer(dir.path()).arg("man"));
    assert_exit(&top, 0);
    assert_eq!(
        top.stdout,
        std::fs::read(pages.join("ra-signer.1")).expect("ra-signer.1"),
        "the printed page is the top-level one"
    );
    let text = rendered(&pages.join("ra-signer.1"));
    for c in commands(dir.path(), &[]) {
        assert!(
            text.contains(&format!("ra-signer-{c}(1)")),
            "no {c} in ra-signer(1)"
        );
    }

    let paths = command_paths(dir.path());
    let mut names: Vec<String> = paths
        .iter()
        .map(|p| format!("ra-signer-{}.1", p.join("-")))
        .collect();
    names.push("ra-signer.1".to_owned());
    names.sort();
    let mut written: Vec<String> = std::fs::read_dir(&pages)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, names, "one page per command, and no other");

    for path in &paths {
        let page = pages.join(format!("ra-signer-{}.1", path.join("-")));
        let text = rendered(&page);
        let flags = long_flags(dir.path(), path);
        for flag in &flags {
            assert!(
                text.contains(flag.as_str()),
                "{}: no {flag}",
                page.display()
            );
        }
        if path == &["serve"] {
            assert!(flags.len() > 20, "serve's flags: {flags:?}");
        }
    }
}

#[test]
fn man_reports_a_directory_it_cannot_write() {
    let dir = tempdir();
    let file = dir.path().join("file");
    std::fs::write(&file, "").expect("write");
    let out = run(ra_signer(dir.path())
        .args(["man", "--out-dir"])
        .arg(file.join("sub")));
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("cannot write the manual page"),
        "{}",
        stderr(&out)
    );
}
