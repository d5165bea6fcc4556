//! `ra-signer`: parse the command line, run the command, map the error to an exit code.

// Lowered from the crate-wide forbid for this file alone: `start_up` edits the environment,
// which Rust 2024 marks unsafe. The library keeps `#![forbid(unsafe_code)]`.
#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    start_up();
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
            ra_signer::diag!("ra-signer: {e}");
            e.exit_code()
        }
    }
}

/// What every run does first, while the process still has one thread: nothing here may
/// wait for a later point, because the first thread (a TPM worker, the runtime of `serve`)
/// makes editing the environment unsound.
fn start_up() {
    // The process holds decrypted keys, PINs and credentials: no core file, and no ptrace
    // or /proc/PID/{environ,mem} access for other processes of the same user. Failure
    // (another OS) leaves the process as it was, which is no reason to refuse to run.
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{
            DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit,
        };
        let _ = set_dumpable_behavior(DumpableBehavior::NotDumpable);
        let _ = setrlimit(
            Resource::Core,
            Rlimit {
                current: Some(0),
                maximum: Some(0),
            },
        );
    }
    let captured = ra_signer::secret::capture_environment();
    // libtss2 prints its own `ERROR:esys:…` lines on stderr, around ours; each failure is
    // reported once, by ra-signer. It reads TSS2_LOG at its first log call. A TSS2_LOG the
    // user set is kept: that is how to see libtss2's lines when debugging.
    let silence_tss2 = std::env::var_os("TSS2_LOG").is_none();
    #[allow(unsafe_code)]
    // SAFETY: set_var and remove_var are unsound only while another thread may read or
    // write the environment. No thread exists yet: start_up is the first call of main, and
    // nothing before it (the Rust runtime, the lines above) starts one.
    unsafe {
        for name in captured {
            std::env::remove_var(name);
        }
        if silence_tss2 {
            std::env::set_var("TSS2_LOG", "all+none");
        }
    }
}
