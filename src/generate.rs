//! `completions` and `man`: text generated from the clap definition itself, so the shell
//! completions and the manual pages never drift from the flags. `app.rs` hands in the
//! `clap::Command`; nothing here knows the flags.
//!
//! The subcommands' flags are deferred (`cli::Command`); `clap::Command::build` runs the
//! deferred definitions, so both generators see every flag. Only these two commands pay
//! for building them.

use std::path::Path;

use crate::error::{Error, ModeError};

/// The shells [`completions`] writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shell {
    /// bash (bash-completion).
    Bash,
    /// zsh.
    Zsh,
    /// fish.
    Fish,
}

/// Prints the completion script for `shell` on stdout.
pub(crate) fn completions(mut cmd: clap::Command, shell: Shell) -> Result<(), Error> {
    use clap_complete::Shell as S;
    let shell = match shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
    };
    let name = cmd.get_name().to_owned();
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut cmd, name.clone(), &mut text);
    if shell == S::Bash {
        text = bash_arms_fixed(&text, &name);
    }
    Ok(crate::diag::result(|out| out.write_all(&text))?)
}

/// clap_complete's bash script (4.6 and earlier: clap issues 6421, 6529) escapes a
/// hyphenated binary name one way in the loop that finds the command (`ra__signer`) and
/// another in the arms that offer its flags (`ra__subcmd__signer`): no arm ever matches,
/// and nothing past the command name completes. The arms are spelt as the loop spells them;
/// on a clap_complete without the bug nothing is replaced. The test completes every
/// command's flags through a real bash.
fn bash_arms_fixed(script: &[u8], name: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(script);
    let loop_spelling = name.replace('-', "__");
    let arm_spelling = name.replace('-', "__subcmd__");
    if loop_spelling == arm_spelling {
        return script.to_vec();
    }
    text.replace(
        &format!("{arm_spelling}__subcmd__"),
        &format!("{loop_spelling}__subcmd__"),
    )
    .into_bytes()
}

/// Prints the top-level page on stdout, or, with `out_dir`, writes `NAME.1` and one
/// `NAME-COMMAND.1` per command (nested commands too: `ra-signer-cache-list.1`).
pub(crate) fn man(cmd: clap::Command, out_dir: Option<&Path>) -> Result<(), Error> {
    // `help` is no command worth a page; `build` names each page (`ra-signer-serve`) and
    // runs the deferred flag definitions.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let Some(dir) = out_dir else {
        let text = render(&clap_mangen::Man::new(cmd));
        return Ok(crate::diag::result(|out| out.write_all(&text))?);
    };
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |source| ModeError::WritePage { path, source }
    };
    std::fs::create_dir_all(dir).map_err(failed(dir))?;
    let mut pages = Vec::new();
    collect(cmd, &mut pages);
    for page in pages {
        let page = clap_mangen::Man::new(page);
        let path = dir.join(page.get_filename());
        std::fs::write(&path, render(&page)).map_err(failed(&path))?;
    }
    Ok(())
}

fn collect(cmd: clap::Command, pages: &mut Vec<clap::Command>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub.clone(), pages);
    }
    pages.push(cmd);
}

fn render(page: &clap_mangen::Man) -> Vec<u8> {
    let mut text = Vec::new();
    // Rendering into a Vec cannot fail.
    let _ = page.render(&mut text);
    text
}
