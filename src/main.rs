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
    if !matches!(
        cli.command,
        ra_signer::cli::Command::Serve(_) | ra_signer::cli::Command::Update(_)
    ) {
        exit_on_signals();
    }
    let result = ra_signer::app::run(cli.command);
    if SIGNALLED.load(std::sync::atomic::Ordering::SeqCst) {
        // The signal thread ends the process once the TPM is released; an error caused by
        // the release is not the news.
        loop {
            std::thread::park();
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ra-signer: {e}");
            e.exit_code()
        }
    }
}

/// Set once a signal is ending the process.
static SIGNALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Ends a one-shot command on SIGINT, SIGTERM, SIGHUP or SIGQUIT with exit status 128+signo,
/// once the TPM objects it holds are flushed (at most the TPM timeout: see
/// `signer::release_hardware`); a second signal ends it at once. `serve` and `update` stop
/// on these signals in their own way.
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
