//! `ra-signer`: parse the command line, run the command, map the error to an exit code.

// Lowered from the crate-wide forbid for this file alone: `start_up` edits the environment,
// which Rust 2024 marks unsafe. The library keeps `#![forbid(unsafe_code)]`.
#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    start_up();
    let mut cli = match ra_signer::cli::Cli::try_parse() {
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
    // Before anything looks at the flags: the identity file may name a TPM key.
    let identity_source = match cli.command.apply_identity_file() {
        Ok(source) => source,
        Err(e) => return failed(&ra_signer::error::Error::from(e), false),
    };
    // This build does not load the TPM stack: a command that needs it is run in this
    // process's place by the build that has it, when the package installed one beside it.
    #[cfg(not(feature = "tpm"))]
    if ra_signer::app::needs_tpm(&cli.command)
        && let Some(e) = ra_signer::tpm_build::exec()
    {
        return failed(&ra_signer::error::Error::from(e), false);
    }
    // `serve` and `update` stop on signals in their own way; a command without TPM objects
    // has nothing to flush, and the default action ends it at once.
    if ra_signer::app::may_use_tpm(&cli.command) {
        exit_on_signals();
    }
    let debug = ra_signer::app::debug_requested(&cli.command);
    let result = ra_signer::app::run(cli.command, identity_source);
    if SIGNALLED.load(std::sync::atomic::Ordering::SeqCst) {
        // The signal thread ends the process once the TPM is released; an error caused by
        // the release is not the news.
        loop {
            std::thread::park();
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(&e, debug),
    }
}

/// Prints the failure (with `--debug`, its whole cause chain) and gives its exit code.
fn failed(e: &ra_signer::error::Error, debug: bool) -> ExitCode {
    if debug {
        ra_signer::diag!("ra-signer: {}", e.chain());
    } else {
        ra_signer::diag!("ra-signer: {e}");
    }
    e.exit_code()
}

/// Set once a signal is ending the process.
static SIGNALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Ends a one-shot command on SIGINT, SIGTERM, SIGHUP or SIGQUIT with exit status 128+signo,
/// once the TPM objects it holds are flushed (at most the TPM timeout: see
/// `signer::release_hardware`); a second signal ends it at once.
fn exit_on_signals() {
    use std::task::Poll;
    use tokio::signal::unix::{SignalKind, signal};

    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    else {
        return;
    };
    let mut streams = Vec::new();
    {
        let _entered = runtime.enter();
        for (kind, signo) in [
            (SignalKind::hangup(), 1),
            (SignalKind::interrupt(), 2),
            (SignalKind::quit(), 3),
            (SignalKind::terminate(), 15),
        ] {
            // A signal that cannot be caught keeps its default action, which also ends us.
            if let Ok(stream) = signal(kind) {
                streams.push((stream, signo));
            }
        }
    }
    let waiter = move || {
        runtime.block_on(async move {
            let mut ending = false;
            loop {
                let signo = std::future::poll_fn(|cx| {
                    for (stream, signo) in streams.iter_mut() {
                        if stream.poll_recv(cx).is_ready() {
                            return Poll::Ready(*signo);
                        }
                    }
                    Poll::Pending
                })
                .await;
                if ending {
                    std::process::exit(128 + signo);
                }
                ending = true;
                SIGNALLED.store(true, std::sync::atomic::Ordering::SeqCst);
                let release = move || {
                    ra_signer::signer::release_hardware();
                    std::process::exit(128 + signo);
                };
                if std::thread::Builder::new()
                    .name("release".into())
                    .spawn(release)
                    .is_err()
                {
                    std::process::exit(128 + signo);
                }
            }
        });
    };
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(waiter);
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
    let silence_tss2 = std::env::var_os(ra_signer::env::TSS2_LOG).is_none();
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
