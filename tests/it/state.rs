//! `--state.file`: the usage counters continue across a kill -9 and count the events listed
//! while the exporter was down exactly once; corrupt, other-version, stale and unwritable
//! state, a second exporter on the same file and a full disk are handled as docs/failures.md
//! says.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Exporter, TENANT, ca_file, command_for, fake, quiet, sum, value};
use entra_fake_graph::{FakeGraph, FakeGraphOptions, UsageEvent};

const FAST_EVENTS: &str =
    "reports:\n  userEventsSummary: {interval: 1s}\n  userCredentialUsageDetails: {interval: 1s}\n";

struct Setup {
    fake: FakeGraph,
    dir: tempfile::TempDir,
    config: tempfile::NamedTempFile,
}

impl Setup {
    async fn new(config: &str) -> Setup {
        Setup {
            fake: fake(FakeGraphOptions {
                initial_events: 40,
                ..quiet()
            })
            .await,
            dir: tempfile::tempdir().expect("temp dir"),
            config: common::temp_file(config),
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state.json")
    }

    async fn start(&self) -> Exporter {
        Exporter::start(
            &self.fake,
            &[
                &format!("--config.file={}", self.config.path().display()),
                &format!("--state.file={}", self.state().display()),
            ],
        )
        .await
    }

    fn add(&self, n: usize, is_success: bool) {
        for user in 0..n {
            self.fake.add_usage_event(UsageEvent {
                feature: "reset".into(),
                auth_method: "mobileSMS".into(),
                is_success,
                failure_reason: if is_success {
                    String::new()
                } else {
                    "SMS not delivered".into()
                },
                user,
            });
        }
    }
}

fn totals(text: &str) -> (f64, f64) {
    (
        sum(text, "entra_authmethods_usage_events_total"),
        sum(text, "entra_credential_usage_events_total"),
    )
}

fn outcome(text: &str, prefix: &str, status: &str) -> Option<f64> {
    value(
        text,
        &format!(
            r#"{prefix}_usage_outcome_events_total{{tenant="{TENANT}",feature="reset",status="{status}"}}"#
        ),
    )
}

fn writes(text: &str, result: &str) -> f64 {
    value(
        text,
        &format!(r#"entra_exporter_state_writes_total{{result="{result}"}}"#),
    )
    .unwrap_or(0.0)
}

fn state_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("state file")).expect("valid JSON")
}

/// Scrapes until both counters are served; every value seen must be at least `floor`, and the
/// first is returned.
async fn first_totals(exporter: &Exporter, floor: f64) -> String {
    let started = Instant::now();
    loop {
        let text = exporter.metrics().await;
        if text.contains("entra_authmethods_usage_events_total{")
            && text.contains("entra_credential_usage_events_total{")
        {
            return text;
        }
        for family in [
            "entra_authmethods_usage_events_total",
            "entra_credential_usage_events_total",
        ] {
            if text.contains(&format!("{family}{{")) {
                assert!(sum(&text, family) >= floor, "{family} went back:\n{text}");
            }
        }
        assert!(
            started.elapsed() < common::WAIT,
            "no counters:\n{}",
            exporter.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_continue_after_a_kill_and_count_the_events_of_the_downtime_once() {
    let setup = Setup::new(FAST_EVENTS).await;
    let exporter = setup.start().await;
    exporter.wait_ready().await;
    let text = exporter.metrics().await;
    assert_eq!(
        totals(&text),
        (0.0, 0.0),
        "a fresh start only learns the window"
    );
    assert!(writes(&text, "success") >= 1.0);
    assert_eq!(writes(&text, "error"), 0.0);
    common::promtool_check_metrics(&text);

    setup.add(3, false);
    exporter
        .wait_for_metrics("three failures in both reports", |t| {
            totals(t) == (3.0, 3.0)
        })
        .await;
    drop(exporter); // SIGKILL

    // While it is down: two more events, one success and one failure.
    setup.add(1, false);
    setup.add(1, true);
    let restarted = setup.start().await;
    // The counters continue: the first value served is already 5, never 0 or 3.
    let text = first_totals(&restarted, 3.0).await;
    assert_eq!(totals(&text), (5.0, 5.0), "{text}");
    for prefix in ["entra_authmethods", "entra_credential"] {
        assert_eq!(outcome(&text, prefix, "failure"), Some(4.0), "{prefix}");
        assert_eq!(outcome(&text, prefix, "success"), Some(1.0), "{prefix}");
    }
    assert!(
        restarted
            .logs()
            .contains("counters continue from the state file"),
        "{}",
        restarted.logs()
    );
    // Polls after the first count nothing again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(totals(&restarted.metrics().await), (5.0, 5.0));

    // The file: versioned, per tenant and report, ids hashed, no user data.
    let state = state_json(&setup.state());
    assert_eq!(state["format_version"], 1);
    assert_eq!(state["exporter_version"], env!("CARGO_PKG_VERSION"));
    let reports = &state["tenants"][TENANT]["reports"];
    for report in ["userEventsSummary", "userCredentialUsageDetails"] {
        let entry = &reports[report];
        assert_eq!(
            entry["event_ids"].as_object().map(|ids| ids.len()),
            Some(45),
            "{report}"
        );
        assert!(entry["newest_event"].is_i64(), "{report}");
        let reasons = entry["failure_reasons"].as_array().unwrap();
        assert!(reasons.contains(&"SMS not delivered".into()), "{reasons:?}");
    }
    let text = std::fs::read_to_string(setup.state()).unwrap();
    assert!(!text.contains("@demo.contoso.test") && !text.contains("Demo User"));

    // A second kill with nothing new in between: still 5.
    drop(restarted);
    let again = setup.start().await;
    let text = first_totals(&again, 5.0).await;
    assert_eq!(totals(&text), (5.0, 5.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_or_other_version_state_file_is_set_aside_and_the_start_is_fresh() {
    for (case, content) in [
        (
            "torn",
            r#"{"format_version":1,"exporter_version":"0.1.0","tenants":{"#,
        ),
        (
            "other version",
            r#"{"format_version":2,"exporter_version":"9.0.0","tenants":{}}"#,
        ),
    ] {
        let setup = Setup::new(FAST_EVENTS).await;
        std::fs::write(setup.state(), content).unwrap();
        let exporter = setup.start().await;
        exporter.wait_ready().await;
        assert_eq!(totals(&exporter.metrics().await), (0.0, 0.0), "{case}");
        let logs = exporter.logs();
        let warnings: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains(r#""level":"WARN""#) && l.contains("state file"))
            .collect();
        assert_eq!(warnings.len(), 1, "{case}: {logs}");
        assert!(warnings[0].contains("moved it aside"), "{}", warnings[0]);
        let aside: Vec<PathBuf> = std::fs::read_dir(setup.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("state.json.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "{case}");
        assert_eq!(std::fs::read_to_string(&aside[0]).unwrap(), content);
        assert_eq!(state_json(&setup.state())["format_version"], 1, "{case}");
        // The fresh state works like any other.
        setup.add(2, true);
        exporter
            .wait_for_metrics("two successes", |t| totals(t) == (2.0, 2.0))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn state_of_reports_and_tenants_no_longer_polled_is_dropped() {
    let setup = Setup::new(FAST_EVENTS).await;
    let exporter = setup.start().await;
    exporter.wait_ready().await;
    setup.add(2, false);
    exporter
        .wait_for_metrics("two failures", |t| totals(t) == (2.0, 2.0))
        .await;
    drop(exporter);
    // A tenant that is no longer configured, as an earlier run would have left it.
    let mut state = state_json(&setup.state());
    let copy = state["tenants"][TENANT].clone();
    state["tenants"]["retired-tenant"] = copy;
    std::fs::write(setup.state(), state.to_string()).unwrap();

    let config = common::temp_file(
        "reports:\n  userEventsSummary: {interval: 1s}\n  userCredentialUsageDetails: {enabled: false}\n",
    );
    let restarted = Exporter::start(
        &setup.fake,
        &[
            &format!("--config.file={}", config.path().display()),
            &format!("--state.file={}", setup.state().display()),
        ],
    )
    .await;
    restarted.wait_ready().await;
    let text = restarted.metrics().await;
    assert_eq!(sum(&text, "entra_authmethods_usage_events_total"), 2.0);
    let state = state_json(&setup.state());
    let tenants = state["tenants"].as_object().unwrap();
    assert_eq!(tenants.keys().collect::<Vec<_>>(), [TENANT]);
    let reports = tenants[TENANT]["reports"].as_object().unwrap();
    assert_eq!(reports.keys().collect::<Vec<_>>(), ["userEventsSummary"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_write_is_counted_and_polling_goes_on() {
    let setup = Setup::new(FAST_EVENTS).await;
    let exporter = setup.start().await;
    exporter.wait_ready().await;
    // A non-empty directory where the file goes: every rename fails, even for root.
    std::fs::remove_file(setup.state()).unwrap();
    std::fs::create_dir(setup.state()).unwrap();
    std::fs::write(setup.state().join("blocker"), "x").unwrap();
    setup.add(1, false);
    let text = exporter
        .wait_for_metrics("a failed write and the event counted", |t| {
            writes(t, "error") >= 1.0 && totals(t) == (1.0, 1.0)
        })
        .await;
    assert_eq!(
        value(
            &text,
            &format!(r#"entra_exporter_report_up{{tenant="{TENANT}",report="userEventsSummary"}}"#)
        ),
        Some(1.0),
        "polling goes on"
    );
    assert!(
        exporter.logs().contains("writing the state file failed"),
        "{}",
        exporter.logs()
    );
    std::fs::remove_dir_all(setup.state()).unwrap();
    let successes = writes(&text, "success");
    exporter
        .wait_for_metrics("writes succeeding again", |t| {
            writes(t, "success") > successes
        })
        .await;
    let state = state_json(&setup.state());
    let saved: u64 = state["tenants"][TENANT]["reports"]["userEventsSummary"]["totals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|total| total["events"].as_u64())
        .sum();
    assert_eq!(saved, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_state_directory_is_a_start_up_error_naming_the_flag() {
    let fake = fake(quiet()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    for state in [
        dir.path().join("missing").join("state.json"),
        file.join("state.json"),
    ] {
        let ca = ca_file(&fake);
        let mut command: Command = command_for(&fake, &ca);
        command.arg(format!("--state.file={}", state.display()));
        let output = command.output().expect("exporter runs");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(errors[0].contains("--state.file"), "{stderr}");
        assert!(errors[0].contains(&state.display().to_string()), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_exporter_on_the_same_state_file_exits_1_and_the_first_goes_on() {
    let setup = Setup::new(FAST_EVENTS).await;
    let first = setup.start().await;
    first.wait_ready().await;
    // A write of the first in progress, as the second would find it.
    let in_progress = setup.dir.path().join(".state.json.w1234.tmp");
    std::fs::write(&in_progress, "{").unwrap();

    let ca = ca_file(&setup.fake);
    let mut second = command_for(&setup.fake, &ca);
    second.args([
        format!("--config.file={}", setup.config.path().display()),
        format!("--state.file={}", setup.state().display()),
    ]);
    let output = exited(second).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors = common::json_error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("--state.file"), "{stderr}");
    assert!(
        errors[0].contains(&setup.state().display().to_string()),
        "{stderr}"
    );
    assert!(errors[0].contains("another exporter holds it"), "{stderr}");
    assert!(
        in_progress.exists(),
        "the first one's temporary file is left alone"
    );

    // The first one goes on and keeps its state.
    std::fs::remove_file(&in_progress).unwrap();
    setup.add(2, false);
    first
        .wait_for_metrics("two failures", |t| totals(t) == (2.0, 2.0))
        .await;
    let state = state_json(&setup.state());
    assert!(state["tenants"][TENANT]["reports"]["userEventsSummary"].is_object());
}

/// Runs `command` to its end, which must come within [`common::WAIT`].
async fn exited(mut command: Command) -> std::process::Output {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("exporter runs");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > common::WAIT {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "still running after {:?}:\n{}",
                common::WAIT,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.wait_with_output().expect("output")
}

/// A small tmpfs in a mount namespace of its own (`unshare --user --map-root-user --mount`,
/// which needs no root), kept by a holder process so that it outlives the exporters started in
/// it (`nsenter`). The test reaches its files through `/proc/<holder>/root`.
struct Tmpfs {
    holder: Child,
    /// The mount point: empty on the host, the tmpfs inside the namespace.
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` where the machine cannot mount one; in CI that is a failure, not a skip.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("mount point");
        let holder = Command::new("unshare")
            .args([
                "--user",
                "--map-root-user",
                "--mount",
                "--propagation=private",
            ])
            .args([
                "sh",
                "-c",
                "mount -t tmpfs -o size=\"$1\" tmpfs \"$0\" && echo mounted && exec sleep 3600",
            ])
            .arg(dir.path())
            .arg(size)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut holder = match holder {
            Ok(holder) => holder,
            Err(err) => return cannot_mount(&format!("unshare: {err}")),
        };
        let mut line = String::new();
        let stdout = holder.stdout.take().expect("stdout piped");
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() != "mounted" {
            let _ = holder.kill();
            let output = holder.wait_with_output().expect("holder ends");
            return cannot_mount(&String::from_utf8_lossy(&output.stderr));
        }
        Some(Tmpfs { holder, dir })
    }

    /// The state file, as the exporter sees it.
    fn state(&self) -> PathBuf {
        self.dir.path().join("state.json")
    }

    /// A path in the tmpfs, as this process reaches it.
    fn outside(&self, name: &str) -> PathBuf {
        let inside = self.dir.path().strip_prefix("/").expect("absolute");
        Path::new(&format!("/proc/{}/root", self.holder.id()))
            .join(inside)
            .join(name)
    }

    /// `command` run inside the namespace.
    fn enter(&self, command: &Command) -> Command {
        let mut entered = Command::new("nsenter");
        entered
            .arg(format!("--target={}", self.holder.id()))
            .args(["--user", "--mount", "--preserve-credentials", "--"])
            .arg(command.get_program())
            .args(command.get_args())
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in command.get_envs() {
            if let Some(value) = value {
                entered.env(key, value);
            }
        }
        entered
    }

    /// Writes a file until the tmpfs has no space left.
    fn fill(&self) {
        let mut filler = std::fs::File::create(self.outside("filler")).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match filler.write_all(&chunk) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::StorageFull => break,
                Err(err) => panic!("filling the tmpfs: {err}"),
            }
        }
        let probe = std::fs::write(self.outside("probe"), vec![0u8; 4096]);
        assert!(probe.is_err(), "the tmpfs is full");
    }

    fn free(&self) {
        std::fs::remove_file(self.outside("filler")).expect("filler removed");
        let _ = std::fs::remove_file(self.outside("probe"));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

fn cannot_mount(why: &str) -> Option<Tmpfs> {
    if common::in_ci() {
        panic!("CI must be able to mount a tmpfs in a user and mount namespace: {why}");
    }
    eprintln!("skipping: cannot mount a tmpfs in a user and mount namespace: {why}");
    None
}

impl Setup {
    /// The exporter inside `tmpfs`'s namespace, with its state file there.
    async fn start_in(&self, tmpfs: &Tmpfs) -> Exporter {
        let ca = ca_file(&self.fake);
        let mut command = command_for(&self.fake, &ca);
        command.args([
            format!("--config.file={}", self.config.path().display()),
            format!("--state.file={}", tmpfs.state().display()),
        ]);
        Exporter::spawn(tmpfs.enter(&command), vec![ca]).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_on_a_full_disk_serves_and_counts_exactly_once_space_is_freed() {
    let Some(tmpfs) = Tmpfs::mount("1m") else {
        return;
    };
    let setup = Setup::new(FAST_EVENTS).await;
    let first = setup.start_in(&tmpfs).await;
    first.wait_ready().await;
    setup.add(3, false);
    first
        .wait_for_metrics("three failures", |t| totals(t) == (3.0, 3.0))
        .await;
    drop(first); // SIGKILL

    // The disk fills up while the exporter is down, and events happen.
    tmpfs.fill();
    setup.add(1, false);
    setup.add(1, true);
    let restarted = setup.start_in(&tmpfs).await;
    // It serves: the counters continue from the file it read, and count the downtime once.
    let text = first_totals(&restarted, 3.0).await;
    assert_eq!(totals(&text), (5.0, 5.0), "{text}");
    assert!(writes(&text, "error") >= 1.0, "{text}");
    assert_eq!(writes(&text, "success"), 0.0);
    let logs = restarted.logs();
    let warning = logs
        .lines()
        .find(|l| l.contains("cannot be written at start: no space left"))
        .unwrap_or_else(|| panic!("no warning about the full disk:\n{logs}"));
    assert!(warning.contains(r#""level":"WARN""#), "{warning}");
    assert!(common::json_error_lines(&logs).is_empty(), "{logs}");
    // Polls go on and keep trying to write.
    let errors = writes(&text, "error");
    let text = restarted
        .wait_for_metrics("more failed writes", |t| writes(t, "error") > errors)
        .await;
    assert_eq!(totals(&text), (5.0, 5.0));

    // Space is freed: the next poll writes, and a new event counts once.
    tmpfs.free();
    restarted
        .wait_for_metrics("a successful write", |t| writes(t, "success") >= 1.0)
        .await;
    setup.add(1, false);
    restarted
        .wait_for_metrics("the new event", |t| totals(t) == (6.0, 6.0))
        .await;
    let successes = writes(&restarted.metrics().await, "success");
    restarted
        .wait_for_metrics("the new event written", |t| {
            writes(t, "success") > successes
        })
        .await;
    drop(restarted);

    // What was written survives the next restart, exactly.
    let again = setup.start_in(&tmpfs).await;
    let text = first_totals(&again, 6.0).await;
    assert_eq!(totals(&text), (6.0, 6.0), "{text}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(totals(&again.metrics().await), (6.0, 6.0));
}
