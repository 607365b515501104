use std::process::ExitCode;

use clap::Parser;
use entra_authmethods_exporter::cli::{Cli, Command};
use entra_authmethods_exporter::errors::error_chain;
use entra_authmethods_exporter::{app, check, telemetry};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// Turns off glibc's fast bins: under scrape load, consolidating them before each larger
/// allocation took a sixth of the CPU; small blocks are still cached per thread (tcache).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only sets an allocator parameter; it runs before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MXFAST, 0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    telemetry::init(cli.log_level, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            error!(error = %err, "starting the async runtime failed");
            return ExitCode::FAILURE;
        }
    };
    let env = |name: &str| std::env::var(name).ok();
    runtime.block_on(async {
        let result = match cli.command {
            // `check` prints its findings on stdout; the exit code says whether they passed.
            Some(Command::Check { output }) => {
                check::run(&cli, &env, output, &mut std::io::stdout()).await
            }
            None => {
                let shutdown = CancellationToken::new();
                tokio::spawn(stop_on_signal(shutdown.clone()));
                app::run(cli, &env, shutdown).await.map(|()| true)
            }
        };
        match result {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(err) => {
                error!("{}", error_chain(&err));
                ExitCode::FAILURE
            }
        }
    })
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(err) => {
                    error!(error = %err, "installing the SIGTERM handler failed");
                    let _ = ctrl_c.await;
                    shutdown.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    info!("shutting down");
    shutdown.cancel();
}
