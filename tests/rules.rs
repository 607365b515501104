//! The Prometheus rule file: promtool accepts it and its unit tests pass, every alert is
//! documented and tested both ways, and the README's thresholds table matches the rules.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{PROMETHEUS_PACKAGE, repo_yaml, tool};
use serde_json::Value;

const RULES: &str = "deploy/prometheus/entra-authmethods.rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/entra-authmethods.rules.test.yml";
const RUNBOOK_BASE: &str =
    "https://github.com/entra-authmethods-exporter/entra-authmethods-exporter#";

fn rules_in(group: &str) -> Vec<Value> {
    let rules = repo_yaml(RULES);
    let groups = rules["groups"].as_array().expect("groups");
    groups
        .iter()
        .find(|g| g["name"] == group)
        .unwrap_or_else(|| panic!("group {group}"))["rules"]
        .as_array()
        .expect("rules")
        .clone()
}

fn alerts() -> Vec<Value> {
    rules_in("entra-authmethods-alerts")
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md")
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn promtool(args: &[&str]) {
    let Some(mut promtool) = tool("promtool", PROMETHEUS_PACKAGE) else {
        return;
    };
    let output = promtool
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus"))
        .output()
        .expect("promtool runs");
    common::assert_success(&format!("promtool {args:?}"), &output);
}

#[test]
fn promtool_accepts_the_rules() {
    promtool(&["check", "rules", "entra-authmethods.rules.yml"]);
}

#[test]
fn promtool_rule_unit_tests_pass() {
    promtool(&["test", "rules", "entra-authmethods.rules.test.yml"]);
}

#[test]
fn every_alert_has_severity_summary_description_and_a_runbook_in_the_readme() {
    let anchors: BTreeSet<String> = readme()
        .lines()
        .filter_map(|line| line.strip_prefix("### "))
        .map(anchor)
        .collect();
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
        assert_eq!(section, anchor(name), "{name}: runbook anchor");
        assert!(
            anchors.contains(section),
            "{name}: README has no `### {name}` runbook section"
        );
    }
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test() {
    let tests = repo_yaml(RULE_TESTS);
    // alert -> (has a firing case, has a quiet case)
    let mut cases: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for test in tests["tests"].as_array().expect("tests") {
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
    // The cases the issue names explicitly.
    let names: Vec<String> = tests["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    for needle in ["restart", "night"] {
        assert!(
            names.iter().any(|n| n.contains(needle)),
            "no unit test about {needle}: {names:?}"
        );
    }
}

/// Rows of the README table under "### Alert thresholds": (threshold name, value).
fn readme_thresholds() -> BTreeMap<String, String> {
    let readme = readme();
    let section = readme
        .split("### Alert thresholds")
        .nth(1)
        .expect("README has an Alert thresholds section");
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
fn thresholds_live_in_one_group_and_the_readme_lists_each_with_its_value() {
    let prefix = "entra_authmethods:alert_threshold:";
    let mut in_rules = BTreeMap::new();
    for rule in rules_in("entra-authmethods-thresholds") {
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
    assert_eq!(readme_thresholds(), in_rules);

    // Every threshold is used by an alert, and no other group defines one.
    let alerts_text = serde_json::to_string(&alerts()).expect("json");
    for name in in_rules.keys() {
        assert!(
            alerts_text.contains(&format!("{prefix}{name}")),
            "{name} is used by no alert"
        );
    }
    let recording = serde_json::to_string(&rules_in("entra-authmethods-recording")).expect("json");
    assert!(!recording.contains("alert_threshold"));
}
