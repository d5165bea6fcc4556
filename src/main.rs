//! `ra-signer`: parse the command line, run the command, map the error to an exit code.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match ra_signer::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed; usage errors exit 2.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(ra_signer::error::ErrorClass::Usage.exit_code())
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match ra_signer::app::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ra-signer: {e}");
            e.exit_code()
        }
    }
}
