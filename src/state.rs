//! The state file (`--state.file`): what must survive a restart, per tenant and report (today
//! the events reports' counters and remembered event ids, see [`crate::reports::SavedEvents`]).
//!
//! Every save rewrites the whole file atomically: a temporary file in the same directory,
//! fsync, rename over the path, fsync of the directory. A kill -9 at any moment therefore
//! leaves the old or the new state, never a torn file. Saves that arrive while a write runs are
//! covered by the next write (group commit), so many tenants do not mean many writes.
//!
//! At start the exporter takes an exclusive lock on `.NAME.lock` next to the file, held for as
//! long as it runs: a second exporter on the same file stops with an error instead of dropping
//! the first one's tenants and deleting its temporary files. Then a missing file means a fresh
//! start; an unreadable, corrupt or other-version file is moved aside to
//! `PATH.corrupt-<unix seconds>` with one warning and the exporter starts fresh; the state of
//! tenants and reports no longer configured is dropped; and the file is written once, so an
//! unwritable directory is a start-up error rather than a surprise at the first poll. A full
//! disk (or quota) is not: that write is counted as failed and retried after the next poll,
//! while the exporter serves.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::IntCounterVec;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::{debug, info, warn};

/// Version of the file's layout, the envelope and every report's entry alike. A file of another
/// version is set aside, never guessed at.
pub const FORMAT_VERSION: u32 = 1;

/// `result` label values of `entra_exporter_state_writes_total`.
const SUCCESS: &str = "success";
const ERROR: &str = "error";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("--state.file {path}: reading it: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "--state.file {path}: cannot write it (is {dir} an existing, writable directory?): {source}"
    )]
    Write {
        path: String,
        dir: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "--state.file {path}: another exporter holds it (the lock on {lock} is taken); give each exporter its own state file"
    )]
    Locked { path: String, lock: String },
    #[error("--state.file {path}: cannot lock {lock}: {source}")]
    Lock {
        path: String,
        lock: String,
        #[source]
        source: io::Error,
    },
}

/// A tenant the exporter polls, and the reports whose state it keeps.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// The `tenant` label.
    pub tenant: String,
    /// State saved for another tenant id under the same name is dropped.
    pub tenant_id: String,
    pub reports: Vec<&'static str>,
}

/// The file: a version header, then per tenant its id and one entry per report.
#[derive(Debug, Serialize, Deserialize)]
struct Contents<Tenants> {
    format_version: u32,
    /// The exporter that wrote it, for people reading the file.
    exporter_version: String,
    tenants: Tenants,
}

/// Only the version, read first so that another version is named as such.
#[derive(Debug, Deserialize)]
struct Header {
    format_version: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct TenantEntry<Entry> {
    tenant_id: String,
    reports: BTreeMap<String, Entry>,
}

/// Every tenant's entries, each report's already encoded.
type RawTenants = BTreeMap<String, TenantEntry<Box<RawValue>>>;

#[derive(Debug, Default)]
struct Entries {
    /// Bumped by every change; the writer records which generation reached the disk.
    generation: u64,
    tenants: RawTenants,
}

/// The state file of a running exporter; `T` is a report's entry.
#[derive(Debug)]
pub struct StateFile<T> {
    path: PathBuf,
    entries: Mutex<Entries>,
    /// The generation on disk. Held while writing, so that writes never overlap.
    written: Mutex<u64>,
    /// Entries read at start, until their report takes them.
    restored: Mutex<HashMap<(String, String), T>>,
    /// `entra_exporter_state_writes_total{result}`.
    writes: IntCounterVec,
    /// Holds the exclusive lock for as long as the state file is in use.
    _lock: File,
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> StateFile<T> {
    /// Reads the file (setting aside one that cannot be used), keeps what `wanted` still
    /// polls, and writes the result once. Errors only when the file cannot be read or written.
    pub fn open(
        path: &Path,
        wanted: &[Wanted],
        writes: IntCounterVec,
    ) -> Result<Arc<Self>, StateError> {
        let shown = path.display().to_string();
        let lock = take_lock(path)?;
        // Only now: a temporary file left by a live exporter would be its write in progress.
        remove_stale_temporaries(path);
        let (mut tenants, mut restored) = match fs::read(path) {
            Ok(bytes) => match parse::<T>(&bytes) {
                Ok(parsed) => parsed,
                Err(reason) => {
                    set_aside(path, &reason);
                    (RawTenants::new(), HashMap::new())
                }
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                info!(path = %shown, "no state file yet: counters start at zero");
                (RawTenants::new(), HashMap::new())
            }
            Err(source) => {
                return Err(StateError::Read {
                    path: shown,
                    source,
                });
            }
        };
        keep_wanted(&mut tenants, wanted);
        restored.retain(|(tenant, report), _| {
            tenants
                .get(tenant)
                .is_some_and(|entry| entry.reports.contains_key(report))
        });
        if !restored.is_empty() {
            info!(path = %shown, reports = restored.len(), "state file read: counters continue where they stopped");
        }
        for want in wanted {
            tenants
                .entry(want.tenant.clone())
                .or_insert_with(|| TenantEntry {
                    tenant_id: want.tenant_id.clone(),
                    reports: BTreeMap::new(),
                });
        }
        for result in [SUCCESS, ERROR] {
            writes.with_label_values(&[result]);
        }
        let state = Arc::new(Self {
            path: path.to_owned(),
            entries: Mutex::new(Entries {
                generation: 1,
                tenants,
            }),
            written: Mutex::new(0),
            restored: Mutex::new(restored),
            writes,
            _lock: lock,
        });
        match state.write_through(1) {
            Ok(_) => state.writes.with_label_values(&[SUCCESS]).inc(),
            // The directory is fine (the lock file is in it) and what was read is in memory:
            // serve, and write again after the next poll.
            Err(err) if out_of_space(&err) => {
                state.writes.with_label_values(&[ERROR]).inc();
                warn!(
                    path = %shown,
                    error = %err,
                    "the state file cannot be written at start: no space left; serving anyway, \
                     and writing it again after each events poll until it succeeds"
                );
            }
            Err(source) => {
                return Err(StateError::Write {
                    path: shown,
                    dir: directory(path).display().to_string(),
                    source,
                });
            }
        }
        Ok(state)
    }

    /// The entry saved for the report at the last run, once; `None` for a fresh start.
    pub fn take(&self, tenant: &str, report: &str) -> Option<T> {
        lock(&self.restored).remove(&(tenant.to_owned(), report.to_owned()))
    }

    /// Replaces the report's entry and returns once the file holds it (or the write failed,
    /// which is logged and counted: polling goes on, and a later save tries again).
    pub async fn save(self: &Arc<Self>, tenant: &str, report: &str, entry: &T) {
        let raw = match serde_json::value::to_raw_value(entry) {
            Ok(raw) => raw,
            Err(err) => return self.failed(&io::Error::other(err)),
        };
        let generation = {
            let mut entries = lock(&self.entries);
            let Some(tenant_entry) = entries.tenants.get_mut(tenant) else {
                debug!(
                    tenant,
                    "not saving the state of a tenant the state file was not opened for"
                );
                return;
            };
            tenant_entry.reports.insert(report.to_owned(), raw);
            entries.generation += 1;
            entries.generation
        };
        // On a blocking thread, and to completion even if this future is dropped: the write
        // holds `written` throughout, so a cancelled save can never race a newer one.
        let state = Arc::clone(self);
        match tokio::task::spawn_blocking(move || state.write_through(generation)).await {
            Ok(Ok(true)) => self.writes.with_label_values(&[SUCCESS]).inc(),
            Ok(Ok(false)) => {}
            Ok(Err(err)) => self.failed(&err),
            Err(err) => self.failed(&io::Error::other(err)),
        }
    }

    fn failed(&self, err: &io::Error) {
        self.writes.with_label_values(&[ERROR]).inc();
        warn!(
            path = %self.path.display(),
            error = %err,
            "writing the state file failed; polling goes on, and a restart before the next \
             successful write resumes the counters from the last state written"
        );
    }

    /// Writes the entries unless `generation` is already on disk (a write that started after
    /// it covered it). Returns whether it wrote.
    fn write_through(&self, generation: u64) -> io::Result<bool> {
        let mut written = lock(&self.written);
        if *written >= generation {
            return Ok(false);
        }
        let (current, bytes) = {
            let entries = lock(&self.entries);
            let contents = Contents {
                format_version: FORMAT_VERSION,
                exporter_version: env!("CARGO_PKG_VERSION").to_owned(),
                tenants: &entries.tenants,
            };
            let bytes = serde_json::to_vec(&contents).map_err(io::Error::other)?;
            (entries.generation, bytes)
        };
        write_atomically(&self.path, &bytes)?;
        *written = current;
        Ok(true)
    }
}

/// Opens (creating it) and locks `.NAME.lock` next to the state file. The lock is `flock`'s:
/// the kernel releases it when the process ends, however it ends, so a kill never leaves a
/// stale lock. The file itself is never removed: removing it could hand a second lock to a
/// process that opened it before.
fn take_lock(path: &Path) -> Result<File, StateError> {
    let lock_path = directory(path).join(format!("{}lock", temporary_prefix(path)));
    let shown = || path.display().to_string();
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|source| StateError::Write {
            path: shown(),
            dir: directory(path).display().to_string(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(StateError::Locked {
            path: shown(),
            lock: lock_path.display().to_string(),
        }),
        Err(fs::TryLockError::Error(source)) => Err(StateError::Lock {
            path: shown(),
            lock: lock_path.display().to_string(),
            source,
        }),
    }
}

/// ENOSPC or EDQUOT: the disk or the quota is full, which passes; the directory is fine.
fn out_of_space(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// The tenants' raw entries, and every entry decoded as `T`; `Err` says why the file cannot
/// be used.
#[allow(clippy::type_complexity)]
fn parse<T: DeserializeOwned>(
    bytes: &[u8],
) -> Result<(RawTenants, HashMap<(String, String), T>), String> {
    let header: Header =
        serde_json::from_slice(bytes).map_err(|err| format!("not a state file: {err}"))?;
    if header.format_version != FORMAT_VERSION {
        return Err(format!(
            "format version {}, but this exporter reads version {FORMAT_VERSION}",
            header.format_version
        ));
    }
    let contents: Contents<RawTenants> =
        serde_json::from_slice(bytes).map_err(|err| format!("invalid state file: {err}"))?;
    let mut decoded = HashMap::new();
    for (tenant, entry) in &contents.tenants {
        for (report, raw) in &entry.reports {
            let value = serde_json::from_str::<T>(raw.get()).map_err(|err| {
                format!("invalid entry for tenant {tenant:?}, report {report:?}: {err}")
            })?;
            decoded.insert((tenant.clone(), report.clone()), value);
        }
    }
    Ok((contents.tenants, decoded))
}

/// Drops the state of tenants and reports that are no longer polled, and of a tenant name
/// that now stands for another tenant id.
fn keep_wanted(tenants: &mut RawTenants, wanted: &[Wanted]) {
    tenants.retain(|name, entry| {
        let Some(want) = wanted.iter().find(|w| &w.tenant == name) else {
            info!(tenant = %name, "dropping the saved state of a tenant no longer configured");
            return false;
        };
        if want.tenant_id != entry.tenant_id {
            info!(tenant = %name, "dropping the saved state of the tenant: it was saved for another tenant id");
            return false;
        }
        entry.reports.retain(|report, _| {
            let keep = want.reports.contains(&report.as_str());
            if !keep {
                info!(tenant = %name, report = %report, "dropping the saved state of a report no longer polled");
            }
            keep
        });
        true
    });
}

/// Moves an unusable file to `PATH.corrupt-<unix seconds>`, with one warning.
fn set_aside(path: &Path, reason: &str) {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut aside = OsString::from(path.as_os_str());
    aside.push(format!(".corrupt-{seconds}"));
    let aside = PathBuf::from(aside);
    match fs::rename(path, &aside) {
        Ok(()) => warn!(
            path = %path.display(),
            moved_to = %aside.display(),
            "the state file cannot be used ({reason}); moved it aside and starting fresh: counters start at zero"
        ),
        Err(err) => warn!(
            path = %path.display(),
            "the state file cannot be used ({reason}) nor moved aside ({err}); starting fresh \
             and overwriting it: counters start at zero"
        ),
    }
}

/// The directory the file lives in, where its temporary files go.
fn directory(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// `.state.json.` for `state.json`: temporary files are hidden and name their file.
fn temporary_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy());
    format!(".{name}.")
}

const TEMPORARY_SUFFIX: &str = ".tmp";

/// Writes `bytes` to a temporary file next to `path`, syncs it, renames it over `path` and
/// syncs the directory, so the rename itself survives a power cut.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = directory(path);
    let mut file = tempfile::Builder::new()
        .prefix(&temporary_prefix(path))
        .suffix(TEMPORARY_SUFFIX)
        .tempfile_in(&dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|err| err.error)?;
    File::open(&dir)?.sync_all()
}

/// A kill during a write leaves its temporary file behind; the next start removes it.
fn remove_stale_temporaries(path: &Path) {
    let prefix = temporary_prefix(path);
    let Ok(listing) = fs::read_dir(directory(path)) else {
        return;
    };
    for entry in listing.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(TEMPORARY_SUFFIX) {
            match fs::remove_file(entry.path()) {
                Ok(()) => debug!(file = %name, "removed a temporary state file left by a kill"),
                Err(err) => {
                    debug!(file = %name, error = %err, "cannot remove a temporary state file")
                }
            }
        }
    }
}

// A poisoned lock only means a thread panicked while holding it; the data is whole (every
// change is one assignment), so keep using it.
fn lock<V>(mutex: &Mutex<V>) -> MutexGuard<'_, V> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Opts;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        total: u64,
    }

    fn writes() -> IntCounterVec {
        IntCounterVec::new(Opts::new("w", "h"), &["result"]).unwrap()
    }

    fn count(writes: &IntCounterVec, result: &str) -> u64 {
        writes.with_label_values(&[result]).get()
    }

    fn wanted(tenant: &str, reports: &[&'static str]) -> Wanted {
        Wanted {
            tenant: tenant.to_owned(),
            tenant_id: format!("{tenant}-id"),
            reports: reports.to_vec(),
        }
    }

    fn open(path: &Path, wanted: &[Wanted]) -> Arc<StateFile<Entry>> {
        StateFile::open(path, wanted, writes()).unwrap()
    }

    fn json(path: &Path) -> serde_json::Value {
        serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
    }

    fn file_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn set_aside_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".corrupt-"))
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn saves_restore_at_the_next_start_and_the_file_is_written_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let both = [wanted("contoso", &["a", "b"])];
        let state = open(&path, &both);
        assert_eq!(json(&path)["format_version"], FORMAT_VERSION);
        assert_eq!(json(&path)["exporter_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(state.take("contoso", "a"), None);
        state.save("contoso", "a", &Entry { total: 7 }).await;
        state.save("contoso", "b", &Entry { total: 9 }).await;
        assert_eq!(count(&state.writes, SUCCESS), 3);
        assert_eq!(count(&state.writes, ERROR), 0);
        drop(state);

        let state = open(&path, &both);
        assert_eq!(state.take("contoso", "a"), Some(Entry { total: 7 }));
        assert_eq!(state.take("contoso", "a"), None, "taken once");
        // An entry not taken yet (its report has not polled) survives the next write.
        state.save("contoso", "a", &Entry { total: 8 }).await;
        assert_eq!(
            json(&path)["tenants"]["contoso"]["reports"]["b"]["total"],
            9
        );
        assert_eq!(json(&path)["tenants"]["contoso"]["tenant_id"], "contoso-id");
        // No temporary file is left behind.
        assert_eq!(file_names(dir.path()), [".state.json.lock", "state.json"]);
    }

    #[test]
    fn a_missing_file_is_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let state = open(&path, &[wanted("t", &["a"])]);
        assert_eq!(state.take("t", "a"), None);
        assert!(path.is_file());
        assert!(set_aside_files(dir.path()).is_empty());
    }

    #[test]
    fn corrupt_and_other_version_files_are_set_aside_and_the_start_is_fresh() {
        let cases = [
            "{\"format_version\":1,\"exporter_version\":\"0\",\"tenants\":{\"t\":{\"tenant_id\":\"t-id\",\"reports\":{\"a\":{\"total\":",
            "",
            "\u{0}\u{1}binary",
            "[1,2,3]",
            "{\"format_version\":2,\"exporter_version\":\"9.9\",\"tenants\":{}}",
            "{\"format_version\":1,\"exporter_version\":\"0\",\"tenants\":{\"t\":{\"tenant_id\":\"t-id\",\"reports\":{\"a\":{\"total\":-1}}}}}",
            "{\"format_version\":1,\"exporter_version\":\"0\",\"tenants\":{\"t\":{\"tenant_id\":\"t-id\",\"reports\":{\"a\":{\"totals\":1}}}}}",
        ];
        for text in cases {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state.json");
            fs::write(&path, text).unwrap();
            let state = open(&path, &[wanted("t", &["a"])]);
            assert_eq!(state.take("t", "a"), None, "{text:?}");
            let aside = set_aside_files(dir.path());
            assert_eq!(aside.len(), 1, "{text:?}: {aside:?}");
            assert!(aside[0].starts_with("state.json.corrupt-"), "{aside:?}");
            let seconds: u64 = aside[0]["state.json.corrupt-".len()..].parse().unwrap();
            assert!(seconds > 1_700_000_000);
            assert_eq!(
                fs::read(dir.path().join(&aside[0])).unwrap(),
                text.as_bytes(),
                "the unusable file is kept as it was"
            );
            // A fresh, valid file replaces it.
            assert_eq!(json(&path)["format_version"], FORMAT_VERSION);
        }
    }

    #[tokio::test]
    async fn state_of_tenants_and_reports_no_longer_polled_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let state = open(&path, &[wanted("a", &["x", "y"]), wanted("b", &["x"])]);
        for (tenant, report) in [("a", "x"), ("a", "y"), ("b", "x")] {
            state.save(tenant, report, &Entry { total: 1 }).await;
        }
        drop(state);
        let renamed = Wanted {
            tenant_id: "another-id".to_owned(),
            ..wanted("b", &["x"])
        };
        let state = open(&path, &[wanted("a", &["x"]), renamed, wanted("c", &["x"])]);
        assert_eq!(state.take("a", "x"), Some(Entry { total: 1 }));
        assert_eq!(state.take("a", "y"), None);
        assert_eq!(state.take("b", "x"), None);
        let file = json(&path);
        let tenants = file["tenants"].as_object().unwrap();
        assert_eq!(tenants.len(), 3);
        assert_eq!(tenants["a"]["reports"].as_object().unwrap().len(), 1);
        assert_eq!(tenants["b"]["tenant_id"], "another-id");
        assert!(tenants["b"]["reports"].as_object().unwrap().is_empty());
    }

    #[test]
    fn an_unwritable_directory_is_a_start_up_error_naming_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-directory");
        fs::write(&file, "x").unwrap();
        for path in [
            dir.path().join("missing").join("state.json"),
            file.join("state.json"),
        ] {
            let err = StateFile::<Entry>::open(&path, &[wanted("t", &["a"])], writes())
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("--state.file "), "{err}");
            assert!(err.contains(&path.display().to_string()), "{err}");
        }
        // A directory where the file should be cannot be read as one.
        let occupied = dir.path().join("occupied");
        fs::create_dir(&occupied).unwrap();
        let err = StateFile::<Entry>::open(&occupied, &[], writes())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--state.file "), "{err}");
    }

    #[tokio::test]
    async fn a_failed_write_is_counted_and_the_next_save_writes_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let state = open(&path, &[wanted("t", &["a"])]);
        // A non-empty directory in the file's place: the rename fails, even for root.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        fs::write(path.join("blocker"), "x").unwrap();
        state.save("t", "a", &Entry { total: 1 }).await;
        assert_eq!(count(&state.writes, ERROR), 1);
        assert_eq!(count(&state.writes, SUCCESS), 1);
        fs::remove_dir_all(&path).unwrap();
        state.save("t", "a", &Entry { total: 2 }).await;
        assert_eq!(count(&state.writes, SUCCESS), 2);
        assert_eq!(json(&path)["tenants"]["t"]["reports"]["a"]["total"], 2);
        // The failed write's temporary file was removed.
        assert_eq!(file_names(dir.path()), [".state.json.lock", "state.json"]);
    }

    #[test]
    fn a_second_opener_of_the_same_file_is_refused_until_the_first_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let first = open(&path, &[wanted("t", &["a"])]);
        // A write in progress of the first: the second must not remove it.
        let in_progress = dir.path().join(".state.json.w1234.tmp");
        fs::write(&in_progress, "{").unwrap();
        let err = StateFile::<Entry>::open(&path, &[wanted("u", &["a"])], writes())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--state.file "), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("another exporter holds it"), "{err}");
        assert!(in_progress.exists());
        // The first one's tenants are still in the file.
        assert!(json(&path)["tenants"]["t"].is_object());
        drop(first);
        let second = open(&path, &[wanted("u", &["a"])]);
        assert!(
            !in_progress.exists(),
            "a stale temporary file goes once the lock is free"
        );
        drop(second);
    }

    #[test]
    fn a_full_disk_or_quota_is_out_of_space_and_other_errors_are_not() {
        for (errno, full) in [
            (libc::ENOSPC, true),
            (libc::EDQUOT, true),
            (libc::EACCES, false),
            (libc::EROFS, false),
            (libc::ENOENT, false),
        ] {
            assert_eq!(
                out_of_space(&io::Error::from_raw_os_error(errno)),
                full,
                "{errno}"
            );
        }
    }

    #[test]
    fn temporary_files_left_by_a_kill_are_removed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let stale = dir.path().join(".state.json.abc123.tmp");
        let other = dir.path().join("unrelated.tmp");
        fs::write(&stale, "{").unwrap();
        fs::write(&other, "keep").unwrap();
        open(&path, &[]);
        assert!(!stale.exists());
        assert!(other.exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_saves_all_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let tenants: Vec<Wanted> = (0..8).map(|i| wanted(&format!("t{i}"), &["a"])).collect();
        let state = open(&path, &tenants);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..8u64 {
            let state = Arc::clone(&state);
            tasks.spawn(async move {
                for total in 0..20 {
                    state
                        .save(
                            &format!("t{i}"),
                            "a",
                            &Entry {
                                total: i * 100 + total,
                            },
                        )
                        .await;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let file = json(&path);
        for i in 0..8u64 {
            assert_eq!(
                file["tenants"][format!("t{i}")]["reports"]["a"]["total"],
                i * 100 + 19
            );
        }
        // Group commit: at most one write per save, usually fewer.
        assert!(count(&state.writes, SUCCESS) <= 1 + 8 * 20);
        assert_eq!(count(&state.writes, ERROR), 0);
    }
}
