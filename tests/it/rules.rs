//! The Prometheus rule file: promtool accepts it and its unit tests pass, every alert is
//! documented and tested both ways, and the thresholds table of docs/alerts.md matches the rules.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{PROMETHEUS_PACKAGE, docs, repo_yaml, tool};
use serde_json::Value;

const RULES: &str = "deploy/prometheus/entra-authmethods.rules.yml";
/// The promtool unit tests: short cases evaluated every minute, cases over days and weeks
/// (what the spike alert learns from its history among them) and under a global view evaluated
/// every 5 minutes, and the SMS and voice retirement's months evaluated hourly. Each runs in its
/// own promtool, in parallel.
const RULE_TESTS: [&str; 6] = [
    "deploy/prometheus/entra-authmethods.rules.test.yml",
    "deploy/prometheus/entra-authmethods.rules.days.test.yml",
    "deploy/prometheus/entra-authmethods.rules.weeks.test.yml",
    "deploy/prometheus/entra-authmethods.rules.history.test.yml",
    "deploy/prometheus/entra-authmethods.rules.global.test.yml",
    RETIREMENT_TESTS,
];
/// Run against a copy of the rule file whose retirement date is day 91 of promtool's clock,
/// which starts in 1970 (the file's header says more).
const RETIREMENT_TESTS: &str = "deploy/prometheus/entra-authmethods.rules.retirement.test.yml";
const RETIREMENT: &str = "vector(1801440000)";
const RETIREMENT_IN_TESTS: &str = "vector(7862400)";
const RETIREMENT_COPY: &str = "entra-authmethods.rules.retirement-day-91.yml";
/// The runbooks, one `## AlertName` section each, and where `runbook_url` finds them.
const RUNBOOKS: &str = "docs/runbooks.md";
const RUNBOOK_BASE: &str = "https://github.com/entra-authmethods-exporter/entra-authmethods-exporter/blob/main/docs/runbooks.md#";

const THRESHOLDS: &str = "entra-authmethods-thresholds";

/// The rules of the groups `wanted` accepts by name.
fn rules_where(wanted: impl Fn(&str) -> bool) -> Vec<Value> {
    let rules = repo_yaml(RULES);
    rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter(|g| wanted(g["name"].as_str().expect("group name")))
        .flat_map(|g| g["rules"].as_array().expect("rules").clone())
        .collect()
}

fn rules_in(group: &str) -> Vec<Value> {
    let rules = rules_where(|name| name == group);
    assert!(!rules.is_empty(), "group {group}");
    rules
}

/// Every alert, whatever its group.
fn alerts() -> Vec<Value> {
    rules_where(|_| true)
        .into_iter()
        .filter(|rule| rule.get("alert").is_some())
        .collect()
}

fn promtool_in(dir: &Path, args: &[&str]) {
    let Some(mut promtool) = tool("promtool", PROMETHEUS_PACKAGE) else {
        return;
    };
    let output = promtool
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs");
    common::assert_success(&format!("promtool {args:?}"), &output);
}

fn promtool(args: &[&str]) {
    promtool_in(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus"),
        args,
    );
}

#[test]
fn promtool_accepts_the_rules() {
    promtool(&["check", "rules", "entra-authmethods.rules.yml"]);
}

#[test]
fn promtool_unit_tests_pass() {
    promtool(&["test", "rules", "entra-authmethods.rules.test.yml"]);
}

#[test]
fn promtool_unit_tests_over_days_pass() {
    promtool(&["test", "rules", "entra-authmethods.rules.days.test.yml"]);
}

#[test]
fn promtool_unit_tests_over_weeks_pass() {
    promtool(&["test", "rules", "entra-authmethods.rules.weeks.test.yml"]);
}

#[test]
fn promtool_unit_tests_of_the_spike_alerts_history_pass() {
    promtool(&["test", "rules", "entra-authmethods.rules.history.test.yml"]);
}

#[test]
fn promtool_unit_tests_under_a_global_view_pass() {
    promtool(&["test", "rules", "entra-authmethods.rules.global.test.yml"]);
}

/// The retirement's cases, on a copy of the rule file that differs in the retirement date
/// alone: written once in the file, it is day 91 in the copy.
#[test]
fn promtool_unit_tests_of_the_sms_voice_retirement_pass() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(repo.join(RULES)).expect("rule file");
    assert_eq!(
        rules.matches("1801440000").count(),
        1,
        "the retirement date is written once, as {RETIREMENT}"
    );
    let copy = rules.replace(RETIREMENT, RETIREMENT_IN_TESTS);
    assert_ne!(copy, rules);
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(RETIREMENT_COPY), copy).expect("write rule copy");
    let cases = Path::new(RETIREMENT_TESTS)
        .file_name()
        .expect("file name")
        .to_owned();
    std::fs::copy(repo.join(RETIREMENT_TESTS), dir.path().join(&cases)).expect("copy tests");
    promtool_in(dir.path(), &["test", "rules", &cases.to_string_lossy()]);
}

/// The rule file loaded twice (say, from a file and from a PrometheusRule): each copy records
/// the same thresholds, and every alert still evaluates and fires, once per copy.
#[test]
fn the_rules_work_when_loaded_twice() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(RULES))
        .expect("rule file");
    for copy in ["copy-a.yml", "copy-b.yml"] {
        std::fs::write(dir.path().join(copy), &rules).expect("write rule copy");
    }
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules/loaded-twice.test.yml");
    std::fs::copy(&cases, dir.path().join("loaded-twice.test.yml")).expect("copy test file");
    promtool_in(dir.path(), &["test", "rules", "loaded-twice.test.yml"]);
}

#[test]
fn every_alert_has_severity_summary_description_and_a_runbook() {
    let anchors = docs::anchors(&docs::read(RUNBOOKS));
    let alerts = alerts();
    assert!(alerts.len() >= 7, "{alerts:?}");
    for alert in alerts {
        let name = alert["alert"].as_str().expect("alert name");
        let severity = alert["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        for key in ["summary", "description"] {
            let text = alert["annotations"][key].as_str().unwrap_or_default();
            assert!(text.len() > 10, "{name}: {key} {text:?}");
        }
        let runbook = alert["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_default();
        let section = runbook
            .strip_prefix(RUNBOOK_BASE)
            .unwrap_or_else(|| panic!("{name}: runbook_url {runbook:?}"));
        assert_eq!(section, docs::anchor(name), "{name}: runbook anchor");
        assert!(
            anchors.contains(section),
            "{name}: {RUNBOOKS} has no `## {name}` runbook section"
        );
    }
}

/// Every test case of every promtool unit test file.
fn unit_tests() -> Vec<Value> {
    RULE_TESTS
        .iter()
        .flat_map(|file| repo_yaml(file)["tests"].as_array().expect("tests").clone())
        .collect()
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test() {
    let tests = unit_tests();
    // alert -> (has a firing case, has a quiet case)
    let mut cases: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for test in &tests {
        for case in test["alert_rule_test"].as_array().into_iter().flatten() {
            let name = case["alertname"].as_str().expect("alertname").to_owned();
            let fires = case["exp_alerts"]
                .as_array()
                .is_some_and(|alerts| !alerts.is_empty());
            let entry = cases.entry(name).or_default();
            if fires {
                entry.0 = true;
            } else {
                entry.1 = true;
            }
        }
    }
    for alert in alerts() {
        let name = alert["alert"].as_str().expect("alert name");
        assert_eq!(
            cases.get(name),
            Some(&(true, true)),
            "{name} needs a case where it fires and one where it stays quiet"
        );
    }
    // The days real tenants have, which the spike alert must get right.
    let names: Vec<String> = tests
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    for needle in [
        "a burst under a new failure reason and a new method fires",
        "a two-poll moderate spike on an existing series fires",
        "a quiet weekend followed by a normal weekday morning is quiet",
        "a holiday followed by a normal day is quiet",
        "a sustained six-fold outage fires for its whole eight hours",
        "an exporter restart with a counter reset and a gap is quiet",
        "a 500-user tenant with 15 failures in 30 minutes fires",
        "a busy tenant whose failures rise in proportion with its attempts is quiet",
        "global view",
        "night",
        // Issue 16: situations of real deployments.
        "the same outage a week later pages again",
        "four times the usual failures at steady attempts pages within 30 minutes",
        "a six-fold outage on a busy weekday morning pages within 15 minutes",
        "a quiet batch a week before an incident does not hide it",
        "a night spike with one day of history pages",
        "a three-hour lag with an outage inside it",
        "a tenant whose shard's pod vanishes is not exported",
        "two replicas, then one, then an outage",
        "a new tenant with a 55% normal failure share gets no critical page",
        "admins without phishing-resistant MFA stay firing across an exporter restart",
        "a falling phishing-resistant share stays firing across an exporter restart",
        "the coverage alert and its reference hold across an exporter restart",
    ] {
        assert!(
            names.iter().any(|n| n.contains(needle)),
            "no unit test about {needle}: {names:?}"
        );
    }
}

/// Under a global view every series is there once per Prometheus replica: each alert has a case
/// in which it fires there, once (the cases list exactly one expected alert).
#[test]
fn every_alert_fires_once_under_a_global_view() {
    let mut once = BTreeSet::new();
    for test in unit_tests() {
        let name = test["name"].as_str().unwrap_or_default();
        if !name.contains("global view") {
            continue;
        }
        for case in test["alert_rule_test"].as_array().into_iter().flatten() {
            if case["exp_alerts"].as_array().is_some_and(|a| a.len() == 1) {
                once.insert(case["alertname"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    for alert in alerts() {
        let name = alert["alert"].as_str().expect("alert name");
        assert!(
            once.contains(name),
            "{name} has no global-view case in which it fires once: {once:?}"
        );
    }
}

/// Recording rules are named level:metric:operations, and a count is a `count`, not a sum.
#[test]
fn recording_rules_are_named_level_metric_operations() {
    for rule in rules_in("entra-authmethods-recording") {
        let record = rule["record"].as_str().expect("record");
        let parts: Vec<&str> = record.split(':').collect();
        assert!(
            parts.len() == 3 && parts.iter().all(|p| !p.is_empty()),
            "{record} is not level:metric:operations"
        );
        let expr = rule["expr"].as_str().unwrap_or_default().trim_start();
        if record.ends_with(":count") {
            assert!(
                expr.starts_with("count"),
                "{record} is named a count:\n{expr}"
            );
        }
        if expr.starts_with("sum by") && !expr.contains('/') {
            assert!(record.ends_with(":sum"), "{record} is a sum:\n{expr}");
        }
    }
}

/// Rows of the table under "## Alert thresholds" in docs/alerts.md: (threshold name, value).
fn documented_thresholds() -> BTreeMap<String, String> {
    let alerts = docs::read("docs/alerts.md");
    let section = alerts
        .split("\n## Alert thresholds\n")
        .nth(1)
        .expect("docs/alerts.md has an Alert thresholds section");
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_owned(), cells[2].to_owned())
        })
        .collect()
}

#[test]
fn thresholds_live_in_one_group_and_the_docs_list_each_with_its_value() {
    let prefix = "entra_authmethods:alert_threshold:";
    let mut in_rules = BTreeMap::new();
    for rule in rules_in(THRESHOLDS) {
        let record = rule["record"].as_str().expect("record");
        let name = record
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{record}: thresholds are named {prefix}<name>"));
        let expr = rule["expr"].as_str().expect("expr").trim();
        let value = expr
            .strip_prefix("vector(")
            .and_then(|v| v.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{record}: a threshold is a constant vector(N), not {expr}"));
        in_rules.insert(name.to_owned(), value.to_owned());
    }
    assert_eq!(documented_thresholds(), in_rules);

    // Every threshold is used by a rule, always through scalar(max(...)) so that copies of it
    // (the file loaded twice, a global view with external labels) cannot break a join; and no
    // other group defines one.
    let rules = rules_where(|group| group != THRESHOLDS);
    let exprs: Vec<&str> = rules.iter().filter_map(|r| r["expr"].as_str()).collect();
    for name in in_rules.keys() {
        let used = format!("scalar(max({prefix}{name}))");
        assert!(
            exprs.iter().any(|e| e.contains(&used)),
            "{name} is used by no rule as {used}"
        );
    }
    for expr in &exprs {
        let bare = expr.matches(prefix).count();
        let guarded = expr.matches(&format!("scalar(max({prefix}")).count();
        assert_eq!(bare, guarded, "a threshold is joined directly in:\n{expr}");
    }
    for rule in &rules {
        let record = rule["record"].as_str().unwrap_or_default();
        assert!(
            !record.starts_with(prefix),
            "{record} outside the thresholds group"
        );
    }
}
