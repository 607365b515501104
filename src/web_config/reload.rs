//! Reload watching: the file and every file it names are compared every [`RELOAD_CHECK`]; a
//! reload may add or change protection but never remove it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::self_metrics::PromptGauge;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::error::*;
use super::file::*;
use super::loaded::*;

/// How often the file and the files it names are compared with what was loaded: changes take
/// effect within this period (and the 5 s promised in docs/security.md).
pub const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// Refuses a reload that would turn protection off: a truncated or emptied file must not open
/// what the running exporter protects. Adding or changing protection is a reload; removing it
/// takes a restart.
pub fn check_reload(current: &WebConfig, next: &WebConfig) -> Result<(), String> {
    let was = current.client_certificates;
    let will = next.client_certificates;
    let dropped: Vec<&str> = [
        (current.tls.is_some() && next.tls.is_none(), "TLS"),
        (
            current.basic_auth.is_some() && next.basic_auth.is_none(),
            "basic_auth_users",
        ),
        (
            was.required && !will.required,
            "the required client certificate",
        ),
        (
            was.verified && !will.verified,
            "client certificate verification",
        ),
        (was.pinned && !will.pinned, "client_allowed_sans"),
    ]
    .into_iter()
    .filter_map(|(dropped, what)| dropped.then_some(what))
    .collect();
    if dropped.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the new version would turn off {}; a reload may add or change protection but not remove it: restart the exporter to apply this file",
            dropped.join(", ")
        ))
    }
}

/// Loads the file again, refusing a version that would remove protection `current` gives.
pub(super) fn reload(path: &Path, current: &WebConfig) -> Result<WebConfig, WebConfigError> {
    let next = load(path)?;
    check_reload(current, &next).map_err(|message| WebConfigError::Invalid {
        path: path.to_owned(),
        message,
    })?;
    Ok(next)
}

/// The bytes of the file and of every file it names, to notice any change.
pub(super) fn fingerprint(path: &Path) -> Vec<Option<Vec<u8>>> {
    let main = std::fs::read(path).ok();
    let dir = path.parent().unwrap_or(Path::new("."));
    let named = main
        .as_deref()
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .map(|text| named_files(text, dir))
        .unwrap_or_default();
    std::iter::once(main)
        .chain(named.iter().map(|p| std::fs::read(p).ok()))
        .collect()
}

/// Reads the file again whenever it or a file it names changes, until `shutdown`. A bad
/// version is logged once and leaves the last good configuration in force.
pub async fn watch(
    path: PathBuf,
    handle: WebConfigHandle,
    reload_successful: PromptGauge,
    shutdown: CancellationToken,
) {
    let mut seen = fingerprint(&path);
    loop {
        tokio::select! {
            () = tokio::time::sleep(RELOAD_CHECK) => {}
            () = shutdown.cancelled() => return,
        }
        let watched = path.clone();
        let Ok(latest) = tokio::task::spawn_blocking(move || fingerprint(&watched)).await else {
            continue;
        };
        if latest == seen {
            continue;
        }
        seen = latest;
        let loading = path.clone();
        let current = handle.current();
        // Loading may make a bcrypt decoy hash: off the async runtime.
        match tokio::task::spawn_blocking(move || reload(&loading, &current)).await {
            Ok(Ok(config)) => {
                let (tls, client_certificates, basic_auth) = (
                    config.tls.is_some(),
                    config.client_certificates,
                    config.basic_auth.is_some(),
                );
                // In force before it is logged as such.
                handle.replace(config);
                reload_successful.set(1);
                info!(
                    tls,
                    ?client_certificates,
                    basic_auth,
                    "web config reloaded; connections opened under the previous one are closed"
                );
            }
            Ok(Err(err)) => {
                reload_successful.set(0);
                error!(error = %crate::errors::error_chain(&err), "web config not reloaded; keeping the previous one");
            }
            Err(err) => {
                reload_successful.set(0);
                error!(error = %err, "web config reload task failed; keeping the previous one");
            }
        }
    }
}
