//! Conventions of the Grafana dashboards in `dashboards/`: stable uids and tags, a pinned schema,
//! the `datasource` and `tenant` variables, no hard-coded data source, a unit and a description
//! on every panel, `$__rate_interval` in range selectors and the tenant matcher on every
//! selector. tests/it/prometheus.rs evaluates the same queries on a real Prometheus.

use crate::common;

use std::collections::BTreeSet;

use common::dashboards::{self, QueryKind, Vars};
use common::{Exporter, demo_command};
use serde_json::{Value, json};

const TAG: &str = "entra-authmethods-exporter";
const SCHEMA_VERSION: u64 = 39;
const DATASOURCE: &str = "${datasource}";
/// The dashboards and their uids, which links and bookmarks depend on.
const EXPECTED: [(&str, &str); 4] = [
    (
        "entra-authmethods-exporter.json",
        "entra-authmethods-exporter",
    ),
    (
        "entra-authmethods-overview.json",
        "entra-authmethods-overview",
    ),
    (
        "entra-authmethods-sms-voice-retirement.json",
        "entra-authmethods-sms-voice-retirement",
    ),
    ("entra-authmethods-sspr.json", "entra-authmethods-sspr"),
];
/// Grafana unit ids the dashboards may use; a typo would silently show raw numbers.
const UNITS: [&str; 13] = [
    "none",
    "short",
    "percent",
    "percentunit",
    "s",
    "ms",
    "dtdurations",
    "bytes",
    "reqps",
    "ops",
    "cps",
    "cpm",
    "dateTimeAsIso",
];
/// Range selectors may only span these: Grafana's rate window, or the dashboard's range.
const RANGES: [&str; 4] = [
    "$__rate_interval",
    "${__rate_interval}",
    "$__range",
    "${__range}",
];

/// The variables a query may use: those `dashboards::Vars` gives a value for.
const VARIABLES: [&str; 6] = [
    "tenant",
    "period",
    "group",
    "__rate_interval",
    "__interval",
    "__range",
];

/// Exporter-level metrics: one series per exporter process, without a tenant label.
const EXPORTER_LEVEL: [&str; 5] = [
    "entra_exporter_build_info",
    "entra_exporter_web_config_last_reload_successful",
    "entra_exporter_state_writes_total",
    "entra_exporter_shard_info",
    "entra_exporter_shard_tenants",
];

/// Series that have no tenant label, so cannot be filtered by it: the process metrics, the
/// exporter-level metrics and the rule file's alert thresholds (constants).
fn tenantless(metric: &str) -> bool {
    metric.starts_with("process_")
        || EXPORTER_LEVEL.contains(&metric)
        || metric.starts_with("entra_authmethods:alert_threshold:")
}

/// Alerts about scrape targets rather than tenants: their ALERTS series have no tenant label.
const TENANTLESS_ALERTS: [&str; 2] = [
    "EntraAuthMethodsExporterDown",
    "EntraAuthMethodsExporterAbsent",
];

/// The alert names an `ALERTS{alertname=...}` selector's matcher admits: a name or an
/// alternation of names, each possibly ending in `.*` (a prefix).
fn alertname_patterns(selector: &Selector) -> Vec<String> {
    selector
        .matchers
        .iter()
        .filter(|(label, op, _)| label == "alertname" && (op == "=" || op == "=~"))
        .flat_map(|(_, _, value)| value.split('|').map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

fn admits(pattern: &str, alert: &str) -> bool {
    match pattern.strip_suffix(".*") {
        Some(prefix) => alert.starts_with(prefix),
        None => pattern == alert,
    }
}

/// An ALERTS selector that names only alerts without a tenant label.
fn only_tenantless_alerts(selector: &Selector) -> bool {
    let patterns = alertname_patterns(selector);
    selector.metric == "ALERTS"
        && !patterns.is_empty()
        && patterns
            .iter()
            .all(|p| TENANTLESS_ALERTS.iter().any(|alert| p == alert))
}

// A small PromQL lexer: enough to find every vector selector with its matchers and every range,
// without mistaking text inside string literals for either.

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    /// A Grafana variable outside strings and ranges.
    Var,
    /// The inside of `[...]`, raw.
    Range(String),
    Number,
    Punct(char),
}

fn lex(expr: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let take_while = |i: &mut usize, f: &dyn Fn(char) -> bool| {
        let start = *i;
        while *i < chars.len() && f(chars[*i]) {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            _ if c.is_whitespace() => i += 1,
            '#' => {
                take_while(&mut i, &|c| c != '\n');
            }
            '"' | '\'' | '`' => {
                i += 1;
                let mut text = String::new();
                loop {
                    let Some(&d) = chars.get(i) else {
                        return Err(format!("unterminated string in {expr}"));
                    };
                    i += 1;
                    match d {
                        _ if d == c => break,
                        '\\' if c != '`' => {
                            text.push(*chars.get(i).ok_or("trailing backslash")?);
                            i += 1;
                        }
                        _ => text.push(d),
                    }
                }
                tokens.push(Token::Str(text));
            }
            '$' => {
                i += 1;
                if chars.get(i) == Some(&'{') {
                    take_while(&mut i, &|c| c != '}');
                    i += 1;
                } else {
                    take_while(&mut i, &|c| c.is_ascii_alphanumeric() || c == '_');
                }
                tokens.push(Token::Var);
            }
            '[' => {
                i += 1;
                let inside = take_while(&mut i, &|c| c != ']');
                if chars.get(i) != Some(&']') {
                    return Err(format!("unterminated [ in {expr}"));
                }
                i += 1;
                tokens.push(Token::Range(inside.trim().to_owned()));
            }
            _ if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let word = take_while(&mut i, &|c| c.is_ascii_alphanumeric() || "_:".contains(c));
                tokens.push(Token::Ident(word));
            }
            _ if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                take_while(&mut i, &|c| c.is_ascii_alphanumeric() || c == '.');
                tokens.push(Token::Number);
            }
            _ => {
                tokens.push(Token::Punct(c));
                i += 1;
            }
        }
    }
    Ok(tokens)
}

/// A vector selector: metric name (empty for `{...}` alone) and matchers (label, op, value).
#[derive(Debug, PartialEq)]
struct Selector {
    metric: String,
    matchers: Vec<(String, String, String)>,
}

/// Keywords followed by a label list, which holds label names, not selectors.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const KEYWORDS: [&str; 7] = ["and", "or", "unless", "bool", "offset", "inf", "nan"];

fn selectors(expr: &str) -> Result<Vec<Selector>, String> {
    let tokens = lex(expr)?;
    let mut found = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Ident(word) if LABEL_LISTS.contains(&word.as_str()) => {
                i += 1;
                if tokens.get(i) == Some(&Token::Punct('(')) {
                    while i < tokens.len() && tokens[i] != Token::Punct(')') {
                        i += 1;
                    }
                    i += 1;
                }
            }
            Token::Ident(word) => {
                let calls = matches!(tokens.get(i + 1), Some(Token::Punct('(')))
                    || matches!(tokens.get(i + 1), Some(Token::Ident(w)) if w == "by" || w == "without");
                i += 1;
                if calls || KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                    continue;
                }
                let mut matchers = Vec::new();
                if tokens.get(i) == Some(&Token::Punct('{')) {
                    matchers = parse_matchers(&tokens, &mut i, expr)?;
                }
                found.push(Selector {
                    metric: word.clone(),
                    matchers,
                });
            }
            Token::Punct('{') => {
                let matchers = parse_matchers(&tokens, &mut i, expr)?;
                found.push(Selector {
                    metric: String::new(),
                    matchers,
                });
            }
            _ => i += 1,
        }
    }
    Ok(found)
}

/// Parses `{label op "value", ...}` starting at the `{`; leaves `i` after the `}`.
fn parse_matchers(
    tokens: &[Token],
    i: &mut usize,
    expr: &str,
) -> Result<Vec<(String, String, String)>, String> {
    let bad = || format!("malformed matchers in {expr}");
    let mut matchers = Vec::new();
    *i += 1;
    loop {
        match tokens.get(*i) {
            Some(Token::Punct('}')) => {
                *i += 1;
                return Ok(matchers);
            }
            Some(Token::Punct(',')) => *i += 1,
            Some(Token::Ident(label)) => {
                *i += 1;
                let mut op = String::new();
                while let Some(Token::Punct(c @ ('=' | '!' | '~'))) = tokens.get(*i) {
                    op.push(*c);
                    *i += 1;
                }
                let Some(Token::Str(value)) = tokens.get(*i) else {
                    return Err(bad());
                };
                *i += 1;
                matchers.push((label.clone(), op, value.clone()));
            }
            _ => return Err(bad()),
        }
    }
}

fn is_tenant_matcher((label, op, value): &(String, String, String)) -> bool {
    label == "tenant"
        && op == "=~"
        && (value == "$tenant" || value == "${tenant}" || value.starts_with("${tenant:"))
}

/// Names of the Grafana variables in `expr`, inside strings too; digit-led names such as
/// `label_replace`'s `$1` are not variables.
fn variables_in(expr: &str) -> Vec<String> {
    expr.split('$')
        .skip(1)
        .filter_map(|rest| {
            let name = match rest.strip_prefix('{') {
                Some(braced) => braced.split(['}', ':']).next().unwrap_or_default(),
                None => rest
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or_default(),
            };
            let variable = !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit());
            variable.then(|| name.to_owned())
        })
        .collect()
}

/// What is wrong with one query of a panel or annotation.
fn query_violations(expr: &str) -> Vec<String> {
    let mut found = Vec::new();
    let tokens = match lex(expr) {
        Ok(tokens) => tokens,
        Err(e) => return vec![e],
    };
    for token in &tokens {
        if let Token::Range(range) = token
            && !RANGES.contains(&range.as_str())
        {
            found.push(format!(
                "range [{range}] instead of [$__rate_interval] or [$__range]"
            ));
        }
    }
    for name in variables_in(expr) {
        if !VARIABLES.contains(&name.as_str()) {
            found.push(format!("unknown variable ${name}"));
        }
    }
    match selectors(expr) {
        Err(e) => found.push(e),
        Ok(selectors) if selectors.is_empty() => found.push("no vector selector".to_owned()),
        Ok(selectors) => {
            for selector in selectors {
                if !tenantless(&selector.metric)
                    && !only_tenantless_alerts(&selector)
                    && !selector.matchers.iter().any(is_tenant_matcher)
                {
                    found.push(format!(
                        "selector {} lacks tenant=~\"$tenant\"",
                        selector.metric
                    ));
                }
            }
        }
    }
    found
}

/// A reference to a data source is the `datasource` variable, never a fixed uid or name.
fn is_datasource_variable(reference: &Value) -> bool {
    let variable = |v: &Value| v == DATASOURCE || v == "$datasource";
    match reference {
        Value::String(_) => variable(reference),
        Value::Object(object) => {
            variable(&reference["uid"]) && object.get("type").is_none_or(|t| t == "prometheus")
        }
        _ => false,
    }
}

/// Every `datasource` member anywhere in the model, with its JSON path.
fn datasource_references<'a>(value: &'a Value, path: &str, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(object) => {
            for (key, member) in object {
                let path = format!("{path}.{key}");
                if key == "datasource" {
                    out.push((path.clone(), member));
                }
                datasource_references(member, &path, out);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                datasource_references(item, &format!("{path}[{index}]"), out);
            }
        }
        _ => {}
    }
}

fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(object) => object.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The panel's rectangle: x, y, w, h.
fn grid(panel: &Value) -> Option<[u64; 4]> {
    let pos = &panel["gridPos"];
    Some([
        pos["x"].as_u64()?,
        pos["y"].as_u64()?,
        pos["w"].as_u64()?,
        pos["h"].as_u64()?,
    ])
}

fn layout_violations(name: &str, panels: &[Value], found: &mut Vec<String>) {
    let mut placed: Vec<(String, [u64; 4])> = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default().to_owned();
        let Some(rect) = grid(panel) else {
            found.push(format!("{name}: panel {title:?} has no integer gridPos"));
            continue;
        };
        let [x, y, w, h] = rect;
        if w == 0 || h == 0 || x + w > 24 {
            found.push(format!(
                "{name}: panel {title:?} has gridPos {rect:?} outside 24 columns"
            ));
        }
        for (other, [ox, oy, ow, oh]) in placed.iter().map(|(t, r)| (t, *r)) {
            if x < ox + ow && ox < x + w && y < oy + oh && oy < y + h {
                found.push(format!("{name}: panels {other:?} and {title:?} overlap"));
            }
        }
        placed.push((title, rect));
    }
}

/// Everything that breaks the conventions in one dashboard model; empty when it follows them.
fn violations(dashboard: &Value, expected_uid: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut fail = |what: String| found.push(what);

    // Identity and schema.
    if dashboard["uid"] != expected_uid {
        fail(format!(
            "uid is {}, expected {expected_uid}",
            dashboard["uid"]
        ));
    }
    if dashboard["title"].as_str().is_none_or(str::is_empty) {
        fail("no title".to_owned());
    }
    let tags: Vec<&str> = dashboard["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for tag in ["entra", TAG] {
        if !tags.contains(&tag) {
            fail(format!("tags {tags:?} lack {tag:?}"));
        }
    }
    if dashboard["schemaVersion"].as_u64() != Some(SCHEMA_VERSION) {
        fail(format!(
            "schemaVersion is {}, expected the integer {SCHEMA_VERSION}",
            dashboard["schemaVersion"]
        ));
    }
    if dashboard["refresh"] != "1m" {
        fail(format!(
            "refresh is {}, expected \"1m\"",
            dashboard["refresh"]
        ));
    }
    if !dashboard["time"]["from"]
        .as_str()
        .is_some_and(|from| from.starts_with("now-"))
    {
        fail(format!("time.from is {}", dashboard["time"]["from"]));
    }
    for key in ["__inputs", "__requires"] {
        if dashboard.get(key).is_some() {
            fail(format!("has import-time {key}"));
        }
    }
    let has_tag_link = dashboard["links"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|l| {
            l["type"] == "dashboards"
                && l["tags"]
                    .as_array()
                    .is_some_and(|t| t.contains(&json!(TAG)))
        });
    if !has_tag_link {
        fail(format!("no dashboard link by tag {TAG}"));
    }

    // No fixed data source anywhere.
    let mut references = Vec::new();
    datasource_references(dashboard, "", &mut references);
    for (path, reference) in references {
        if !is_datasource_variable(reference) {
            fail(format!("{path} is {reference}, not {DATASOURCE}"));
        }
    }
    let mut texts = Vec::new();
    strings(dashboard, &mut texts);
    if texts.iter().any(|s| s.contains("${DS_")) {
        fail("uses an import-time ${DS_...} placeholder".to_owned());
    }

    // Variables.
    let variables: Vec<&Value> = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let variable = |name: &str| variables.iter().find(|v| v["name"] == name).copied();
    match variable("datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        _ => fail("no variable datasource of type datasource for prometheus".to_owned()),
    }
    match variable("tenant") {
        None => fail("no variable tenant".to_owned()),
        Some(v) => {
            for (key, want) in [
                ("type", json!("query")),
                ("multi", json!(true)),
                ("includeAll", json!(true)),
                ("allValue", json!(".+")),
            ] {
                if v[key] != want {
                    fail(format!(
                        "variable tenant: {key} is {}, expected {want}",
                        v[key]
                    ));
                }
            }
            if !is_datasource_variable(&v["datasource"]) {
                fail(format!(
                    "variable tenant: datasource is {}",
                    v["datasource"]
                ));
            }
            let query = v["query"].as_str().or_else(|| v["query"]["query"].as_str());
            let metric = query
                .and_then(|q| q.trim().strip_prefix("label_values("))
                .and_then(|q| q.strip_suffix(')'))
                .and_then(|q| q.rsplit_once(','))
                .filter(|(_, label)| label.trim() == "tenant")
                .map(|(metric, _)| metric.trim());
            let tenant_labelled = metric.is_some_and(|m| m.starts_with("entra_") && !tenantless(m));
            if !tenant_labelled {
                fail(format!(
                    "variable tenant: query {query:?} is not label_values(<tenant-labelled entra_ metric>, tenant)"
                ));
            }
        }
    }

    // Panels.
    let panels = dashboards::panels(dashboard);
    let mut ids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for panel in &panels {
        let title = panel["title"].as_str().unwrap_or_default();
        match panel["id"].as_u64() {
            Some(id) if ids.insert(id) => {}
            id => fail(format!("panel {title:?}: id {id:?} missing or not unique")),
        }
        if panel["type"] == "row" {
            continue;
        }
        if title.is_empty() || !titles.insert(title) {
            fail(format!("panel {title:?}: title empty or not unique"));
        }
        if panel["description"]
            .as_str()
            .is_none_or(|d| d.trim().is_empty())
        {
            fail(format!("panel {title:?}: no description"));
        }
        let unit = &panel["fieldConfig"]["defaults"]["unit"];
        if !unit.as_str().is_some_and(|u| UNITS.contains(&u)) {
            fail(format!(
                "panel {title:?}: fieldConfig.defaults.unit {unit} is not one of {UNITS:?}"
            ));
        }
        if !is_datasource_variable(&panel["datasource"]) {
            fail(format!("panel {title:?}: datasource is not {DATASOURCE}"));
        }
        // A pie of several tenants' slices compares nothing: one pie per tenant, or a sum the
        // title owns up to.
        if panel["type"] == "piechart"
            && panel["repeat"] != "tenant"
            && !title.contains("all selected tenants")
        {
            fail(format!(
                "panel {title:?}: a pie mixes tenants; repeat it per tenant"
            ));
        }
        let targets = panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if targets.is_empty() {
            fail(format!("panel {title:?}: no targets"));
        }
        let mut ref_ids = BTreeSet::new();
        for target in targets {
            let ref_id = target["refId"].as_str().unwrap_or_default();
            if ref_id.is_empty() || !ref_ids.insert(ref_id) {
                fail(format!(
                    "panel {title:?}: refId {ref_id:?} empty or not unique"
                ));
            }
            if target["expr"].as_str().is_none_or(|e| e.trim().is_empty()) {
                fail(format!("panel {title:?} ({ref_id}): no expr"));
            }
        }
    }
    let top: Vec<Value> = dashboard["panels"].as_array().cloned().unwrap_or_default();
    layout_violations("dashboard", &top, &mut found);
    for row in top.iter().filter(|p| p["type"] == "row") {
        let nested = row["panels"].as_array().cloned().unwrap_or_default();
        let name = format!("row {}", row["title"]);
        if row["collapsed"] != true && !nested.is_empty() {
            found.push(format!("{name}: expanded but holds panels"));
        }
        layout_violations(&name, &nested, &mut found);
    }

    // Queries of panels and annotations.
    for query in dashboards::queries(dashboard) {
        if query.kind == QueryKind::Variable {
            continue;
        }
        for problem in query_violations(&query.expr) {
            found.push(format!(
                "{:?} {:?} {}: {problem}",
                query.kind, query.title, query.ref_id
            ));
        }
    }
    found
}

#[test]
fn every_dashboard_is_present_and_follows_the_conventions() {
    let loaded = dashboards::load_all();
    let files: Vec<&str> = loaded.iter().map(|d| d.file.as_str()).collect();
    let expected: Vec<&str> = EXPECTED.iter().map(|(file, _)| *file).collect();
    assert_eq!(files, expected);
    for (dashboard, (_, uid)) in loaded.iter().zip(EXPECTED) {
        let found = violations(&dashboard.json, uid);
        assert!(
            found.is_empty(),
            "{}:\n{}",
            dashboard.file,
            found.join("\n")
        );
    }
}

/// The dashboards by the names the runbooks (docs/runbooks.md) give them, and their uids.
const RUNBOOK_DASHBOARDS: [(&str, &str); 4] = [
    ("**Overview**", "entra-authmethods-overview"),
    (
        "**SSPR and registration activity**",
        "entra-authmethods-sspr",
    ),
    ("**Exporter health**", "entra-authmethods-exporter"),
    (
        "**SMS and voice retirement**",
        "entra-authmethods-sms-voice-retirement",
    ),
];

/// Every alert's runbook sends the reader to at least one dashboard, and that dashboard shows
/// the alert in its annotations.
#[test]
fn every_alert_is_annotated_on_the_dashboards_its_runbook_points_to() {
    let runbooks = common::docs::read("docs/runbooks.md");
    let dashboards = dashboards::load_all();
    let mut checked = 0;
    for rule in common::repo_yaml("deploy/prometheus/entra-authmethods.rules.yml")["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
    {
        let Some(alert) = rule["alert"].as_str() else {
            continue;
        };
        let section = runbooks
            .split(&format!("\n## {alert}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no runbook for {alert}"));
        // Words, whatever the line breaks between them.
        let section = section
            .split("\n## ")
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let named: Vec<&str> = RUNBOOK_DASHBOARDS
            .iter()
            .filter(|(name, _)| section.contains(name))
            .map(|(_, uid)| *uid)
            .collect();
        assert!(
            !named.is_empty(),
            "the runbook of {alert} names no dashboard"
        );
        for uid in named {
            let dashboard = dashboards
                .iter()
                .find(|d| d.uid() == uid)
                .expect("dashboard");
            let annotated = dashboards::queries(&dashboard.json)
                .iter()
                .filter(|q| q.kind == QueryKind::Annotation)
                .flat_map(|q| selectors(&q.expr).unwrap_or_default())
                .filter(|selector| selector.metric == "ALERTS")
                .any(|selector| {
                    alertname_patterns(&selector)
                        .iter()
                        .any(|pattern| admits(pattern, alert))
                });
            assert!(
                annotated,
                "{alert}: its runbook points to {uid}, whose annotations leave it out"
            );
            checked += 1;
        }
    }
    assert!(checked >= 16, "{checked}");
}

#[test]
fn every_dashboard_links_to_the_others() {
    let loaded = dashboards::load_all();
    for dashboard in &loaded {
        let link_tags: Vec<Vec<&Value>> = dashboard.json["links"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["type"] == "dashboards")
            .map(|l| l["tags"].as_array().into_iter().flatten().collect())
            .collect();
        for other in loaded.iter().filter(|o| o.file != dashboard.file) {
            let tags = other.json["tags"].as_array().cloned().unwrap_or_default();
            // Grafana lists the dashboards that carry every tag of the link.
            let linked = link_tags
                .iter()
                .any(|wanted| !wanted.is_empty() && wanted.iter().all(|t| tags.contains(t)));
            assert!(linked, "{} has no link to {}", dashboard.file, other.file);
        }
    }
}

#[test]
fn there_are_panel_variable_and_annotation_queries() {
    let queries = dashboards::all_queries();
    for kind in [QueryKind::Panel, QueryKind::Variable, QueryKind::Annotation] {
        assert!(queries.iter().any(|q| q.kind == kind), "no {kind:?} query");
    }
    for uid in EXPECTED.map(|(_, uid)| uid) {
        assert!(
            queries.iter().filter(|q| q.dashboard == uid).count() > 5,
            "{uid}"
        );
    }
    assert!(
        queries
            .iter()
            .all(|q| q.kind != QueryKind::Panel || (q.panel_id.is_some() && !q.ref_id.is_empty()))
    );
}

/// What Grafana would send for the demo tenant, for the syntax check.
fn vars() -> Vars {
    Vars {
        tenant: "demo|other".to_owned(),
        rate_interval: "1m".to_owned(),
        interval: "15s".to_owned(),
        range: "24h".to_owned(),
        period: "d7".to_owned(),
        group: "fido2-pilot|finance".to_owned(),
    }
}

/// Aggregation operators of PromQL.
const AGGREGATIONS: [&str; 12] = [
    "sum",
    "count",
    "avg",
    "min",
    "max",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
];

/// An aggregation in a query: its operator, its `by` or `without` labels, and its argument.
#[derive(Debug)]
struct Aggregation {
    op: String,
    /// `(true, labels)` for `by (labels)`, `(false, labels)` for `without (labels)`.
    grouping: Option<(bool, Vec<String>)>,
    argument: Vec<Token>,
}

impl Aggregation {
    /// Whether the result keeps one series per scrape target.
    fn keeps_instance(&self) -> bool {
        match &self.grouping {
            Some((true, labels)) => labels.iter().any(|l| l == "instance"),
            Some((false, labels)) => !labels.iter().any(|l| l == "instance"),
            None => false,
        }
    }
}

/// Every aggregation of an expression, nested ones included.
fn aggregations(expr: &str) -> Result<Vec<Aggregation>, String> {
    let tokens = lex(expr)?;
    let label_list = |i: &mut usize| -> Vec<String> {
        let mut labels = Vec::new();
        *i += 1;
        while let Some(token) = tokens.get(*i) {
            *i += 1;
            match token {
                Token::Punct(')') => break,
                Token::Ident(label) => labels.push(label.clone()),
                _ => {}
            }
        }
        labels
    };
    let grouping = |i: &mut usize| -> Option<(bool, Vec<String>)> {
        let by = match tokens.get(*i) {
            Some(Token::Ident(w)) if w == "by" => true,
            Some(Token::Ident(w)) if w == "without" => false,
            _ => return None,
        };
        *i += 1;
        Some((by, label_list(i)))
    };
    let mut found = Vec::new();
    for start in 0..tokens.len() {
        let Token::Ident(op) = &tokens[start] else {
            continue;
        };
        if !AGGREGATIONS.contains(&op.as_str()) {
            continue;
        }
        let mut i = start + 1;
        let mut group = grouping(&mut i);
        if tokens.get(i) != Some(&Token::Punct('(')) {
            continue;
        }
        let mut depth = 0;
        let mut argument = Vec::new();
        while let Some(token) = tokens.get(i) {
            i += 1;
            match token {
                Token::Punct('(') => depth += 1,
                Token::Punct(')') => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                break;
            }
            argument.push(token.clone());
        }
        group = group.or_else(|| grouping(&mut i));
        found.push(Aggregation {
            op: op.clone(),
            grouping: group,
            argument,
        });
    }
    Ok(found)
}

/// A series each exporter process (or scrape target) serves once, whatever its tenants: with
/// several replicas or shards there is one per replica.
fn per_replica(metric: &str) -> bool {
    metric == "up"
        || (tenantless(metric) && !metric.starts_with("entra_authmethods:alert_threshold:"))
}

/// Why `expr` would add up or merge replicas' series: a tenant's series come from exactly one
/// replica, so sums over tenants never double count, but an aggregation over a per-replica
/// series (the process, build info, shard info) that drops `instance` counts each replica.
fn double_counts(expr: &str) -> Vec<String> {
    match aggregations(expr) {
        Err(e) => vec![e],
        Ok(aggregations) => aggregations
            .iter()
            .filter(|agg| !agg.keeps_instance())
            .filter_map(|agg| {
                let metric = agg.argument.iter().find_map(|token| match token {
                    Token::Ident(word) if per_replica(word) => Some(word.clone()),
                    _ => None,
                })?;
                Some(format!(
                    "{} over the per-replica {metric} without `by (instance, ...)`",
                    agg.op
                ))
            })
            .collect(),
    }
}

/// Every expression of the rule file: recording rules and alerts.
fn rule_expressions() -> Vec<(String, String)> {
    let rules = common::repo_yaml("deploy/prometheus/entra-authmethods.rules.yml");
    rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
        .map(|rule| {
            let name = rule["alert"]
                .as_str()
                .or(rule["record"].as_str())
                .unwrap_or_default();
            (
                name.to_owned(),
                rule["expr"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// With several shards, a tenant's series come from exactly one replica (tests/it/sharding.rs), so
/// sums over tenants count each tenant once; what could count twice is a per-replica series
/// aggregated across replicas. No panel, variable, annotation or rule does that.
#[test]
fn no_query_adds_up_the_replicas_of_a_sharded_exporter() {
    let mut found = Vec::new();
    for query in dashboards::all_queries() {
        for problem in double_counts(&query.expr) {
            found.push(format!("{} / {}: {problem}", query.dashboard, query.title));
        }
    }
    let expressions = rule_expressions();
    assert!(expressions.len() > 40, "{}", expressions.len());
    for (name, expr) in expressions {
        for problem in double_counts(&expr) {
            found.push(format!("rule {name}: {problem}"));
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_double_count_check_tells_per_replica_aggregations() {
    for (expr, problems) in [
        ("sum(process_resident_memory_bytes)", 1),
        ("sum(entra_exporter_shard_tenants) by (job)", 1),
        ("count(entra_exporter_build_info) > 1", 1),
        (
            "max by (instance, job) (process_threads and on (instance, job) x)",
            0,
        ),
        ("sum without (version) (entra_exporter_build_info)", 0),
        (
            "sum by (tenant) (entra_exporter_report_up{tenant=~\"$tenant\"})",
            0,
        ),
        (
            "x > scalar(max(entra_authmethods:alert_threshold:coverage_drop))",
            0,
        ),
        ("avg(up{job=\"entra-authmethods-exporter\"})", 1),
        (
            "max by (instance) (sum without (pid) (process_open_fds))",
            0,
        ),
    ] {
        assert_eq!(
            double_counts(expr).len(),
            problems,
            "{expr}: {:?}",
            double_counts(expr)
        );
    }
}

/// Every query, variables substituted, is PromQL that promtool accepts (it parses rule
/// expressions with Prometheus' own parser). Variable queries are Grafana functions: their
/// selector is checked instead.
#[test]
fn every_query_is_valid_promql() {
    let Some(mut promtool) = common::tool("promtool", common::PROMETHEUS_PACKAGE) else {
        return;
    };
    let vars = vars();
    let rules: Vec<Value> = dashboards::all_queries()
        .iter()
        .enumerate()
        .map(|(index, query)| {
            let expr = dashboards::substitute(&query.expr, &vars);
            let expr = match query.kind {
                QueryKind::Variable => {
                    let inside = expr
                        .trim()
                        .strip_prefix("label_values(")
                        .and_then(|q| q.strip_suffix(')'))
                        .and_then(|q| q.rsplit_once(','))
                        .map(|(metric, label)| format!("group by ({label}) ({metric})"));
                    inside.unwrap_or(expr)
                }
                _ => expr,
            };
            json!({"record": format!("dashboard_query_{index}"), "expr": expr})
        })
        .collect();
    // JSON is YAML, so the rule file needs no YAML writer.
    let file = tempfile::Builder::new()
        .suffix(".yml")
        .tempfile()
        .expect("temp file");
    let text = json!({"groups": [{"name": "dashboards", "rules": rules}]}).to_string();
    std::fs::write(file.path(), text).expect("write rule file");
    let output = promtool
        .args(["check", "rules"])
        .arg(file.path())
        .output()
        .expect("promtool runs");
    common::assert_success("promtool check rules", &output);
}

// The checker itself.

/// The smallest dashboard that follows every convention, with a collapsed row.
fn good() -> Value {
    let ds = json!({"type": "prometheus", "uid": DATASOURCE});
    let panel = |id: u64, title: &str, y: u64, expr: &str| {
        json!({
            "id": id, "type": "timeseries", "title": title, "description": "From the exporter.",
            "datasource": ds, "gridPos": {"x": 0, "y": y, "w": 12, "h": 8},
            "fieldConfig": {"defaults": {"unit": "short"}, "overrides": []},
            "targets": [{"datasource": ds, "refId": "A", "expr": expr}]
        })
    };
    json!({
        "uid": "good", "title": "Good", "tags": ["entra", TAG], "schemaVersion": SCHEMA_VERSION,
        "refresh": "1m", "time": {"from": "now-24h", "to": "now"},
        "links": [{"type": "dashboards", "tags": [TAG]}],
        "annotations": {"list": [{"name": "Alerts", "datasource": ds,
            "expr": "ALERTS{alertstate=\"firing\", tenant=~\"$tenant\"}"}]},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus"},
            {"name": "tenant", "type": "query", "datasource": ds, "multi": true,
             "includeAll": true, "allValue": ".+",
             "query": {"query": "label_values(entra_exporter_report_up, tenant)"}}
        ]},
        "panels": [
            panel(1, "Rate", 0, "sum by (tenant) (rate(x_total{tenant=~\"$tenant\"}[$__rate_interval]))"),
            panel(2, "Memory", 8,
                "process_resident_memory_bytes and on (instance, job) up{tenant=~\"${tenant}\"}"),
            {"id": 3, "type": "row", "title": "More", "collapsed": true,
             "gridPos": {"x": 0, "y": 16, "w": 24, "h": 1},
             "panels": [panel(4, "Top", 17,
                "topk by (tenant) (5, label_replace(increase(y_total{tenant=~\"${tenant:regex}\", r=\"[5m]\"}[$__range]), \"a\", \"$1\", \"b\", \"(.*)\"))")]}
        ]
    })
}

#[test]
fn the_checker_accepts_a_good_dashboard_and_finds_its_nested_queries() {
    let good = good();
    assert_eq!(violations(&good, "good"), Vec::<String>::new());
    let queries = dashboards::queries(&good);
    let kinds: Vec<(QueryKind, &str)> =
        queries.iter().map(|q| (q.kind, q.title.as_str())).collect();
    assert_eq!(
        kinds,
        [
            (QueryKind::Panel, "Rate"),
            (QueryKind::Panel, "Memory"),
            (QueryKind::Panel, "Top"),
            (QueryKind::Variable, "tenant"),
            (QueryKind::Annotation, "Alerts"),
        ]
    );
    assert_eq!(queries[2].panel_id, Some(4));
}

#[test]
fn the_checker_rejects_each_violation() {
    type Break = fn(&mut Value);
    let cases: [(&str, Break, &str); 25] = [
        (
            "pie of every tenant",
            |d| d["panels"][0]["type"] = json!("piechart"),
            "a pie mixes tenants",
        ),
        ("wrong uid", |d| d["uid"] = json!("other"), "uid is"),
        (
            "missing tag",
            |d| d["tags"] = json!(["entra"]),
            "lack \"entra-authmethods-exporter\"",
        ),
        (
            "schema as string",
            |d| d["schemaVersion"] = json!("39"),
            "schemaVersion",
        ),
        ("import inputs", |d| d["__inputs"] = json!([]), "__inputs"),
        ("no links", |d| d["links"] = json!([]), "no dashboard link"),
        (
            "fixed panel datasource",
            |d| {
                d["panels"][0]["datasource"] =
                    json!({"type": "prometheus", "uid": "P1809F7CD0C75ACF3"})
            },
            "not ${datasource}",
        ),
        (
            "datasource by name in a target",
            |d| d["panels"][0]["targets"][0]["datasource"] = json!("Prometheus"),
            "targets[0].datasource",
        ),
        (
            "DS_ placeholder",
            |d| d["panels"][0]["targets"][0]["datasource"] = json!({"uid": "${DS_PROMETHEUS}"}),
            "${DS_",
        ),
        (
            "built-in annotation",
            |d| {
                d["annotations"]["list"][0]["datasource"] =
                    json!({"type": "grafana", "uid": "-- Grafana --"})
            },
            "annotations",
        ),
        (
            "datasource variable for another type",
            |d| d["templating"]["list"][0]["query"] = json!("loki"),
            "no variable datasource",
        ),
        (
            "single-value tenant",
            |d| d["templating"]["list"][1]["multi"] = json!(false),
            "multi",
        ),
        (
            "tenant from build info",
            |d| {
                d["templating"]["list"][1]["query"]["query"] =
                    json!("label_values(entra_exporter_build_info, tenant)")
            },
            "not label_values",
        ),
        (
            "no description",
            |d| d["panels"][0]["description"] = json!(""),
            "no description",
        ),
        (
            "no unit",
            |d| d["panels"][0]["fieldConfig"]["defaults"] = json!({}),
            "unit",
        ),
        (
            "duplicate id",
            |d| d["panels"][2]["panels"][0]["id"] = json!(1),
            "not unique",
        ),
        (
            "literal range",
            |d| {
                d["panels"][0]["targets"][0]["expr"] =
                    json!("rate(x_total{tenant=~\"$tenant\"}[5m])")
            },
            "range [5m]",
        ),
        (
            "literal range in a collapsed row",
            |d| {
                d["panels"][2]["panels"][0]["targets"][0]["expr"] =
                    json!("increase(y_total{tenant=~\"$tenant\"}[1h])")
            },
            "range [1h]",
        ),
        (
            "selector without tenant",
            |d| d["panels"][0]["targets"][0]["expr"] = json!("x{tenant=~\"$tenant\"} / y"),
            "selector y lacks",
        ),
        (
            "tenant matched exactly",
            |d| d["panels"][0]["targets"][0]["expr"] = json!("x{tenant=\"$tenant\"}"),
            "selector x lacks",
        ),
        (
            "annotation without tenant",
            |d| d["annotations"]["list"][0]["expr"] = json!("ALERTS{alertstate=\"firing\"}"),
            "selector ALERTS lacks",
        ),
        (
            "annotation of a tenant's alert without tenant",
            |d| {
                d["annotations"]["list"][0]["expr"] =
                    json!("ALERTS{alertname=~\"EntraAuthMethodsExporterDown|EntraReportDown\"}")
            },
            "selector ALERTS lacks",
        ),
        (
            "overlapping panels",
            |d| d["panels"][1]["gridPos"]["y"] = json!(4),
            "overlap",
        ),
        (
            "unknown variable",
            |d| {
                d["panels"][0]["targets"][0]["expr"] = json!("x{tenant=~\"$tenant\", job=\"$job\"}")
            },
            "unknown variable $job",
        ),
        (
            "target without expr",
            |d| d["panels"][0]["targets"][0] = json!({"refId": "A"}),
            "no expr",
        ),
    ];
    for (name, break_it, expected) in cases {
        let mut bad = good();
        break_it(&mut bad);
        let found = violations(&bad, "good");
        assert!(
            found.iter().any(|v| v.contains(expected)),
            "{name}: expected a violation containing {expected:?}, got {found:#?}"
        );
    }
}

#[test]
fn selectors_skip_strings_label_lists_and_functions() {
    let expr = r#"sum by (tenant, method) (label_replace(a{tenant=~"$tenant", r="[x] {y}"}, "m", "$1", "l", "(.*)"))
        / on (tenant) group_left () (b:rule:ratio > 0) or topk by (tenant) (3, c) unless vector(0)"#;
    let found = selectors(expr).expect("parses");
    let metrics: Vec<&str> = found.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(metrics, ["a", "b:rule:ratio", "c"]);
    assert_eq!(
        found[0].matchers,
        [
            ("tenant".to_owned(), "=~".to_owned(), "$tenant".to_owned()),
            ("r".to_owned(), "=".to_owned(), "[x] {y}".to_owned()),
        ]
    );
    assert!(lex(r#"a{b="unterminated}"#).is_err());
}

#[test]
fn substitute_replaces_every_spelling() {
    let vars = Vars {
        tenant: "a|b".into(),
        rate_interval: "1m".into(),
        interval: "15s".into(),
        range: "6h".into(),
        period: "d7".into(),
        group: "g".into(),
    };
    let expr = r#"rate(x{tenant=~"$tenant",t=~"${tenant}",u=~"${tenant:regex}",p=~"(?i)$period"}[$__rate_interval]) + y[$__range] + z[${__interval}]"#;
    assert_eq!(
        dashboards::substitute(expr, &vars),
        r#"rate(x{tenant=~"a|b",t=~"a|b",u=~"a|b",p=~"(?i)d7"}[1m]) + y[6h] + z[15s]"#
    );
    // label_replace groups and a lone `$` are not variables.
    let expr = r#"label_replace(x, "m", "$1", "l", "(.*)$") or y{a=~"$"}"#;
    assert_eq!(dashboards::substitute(expr, &vars), expr);
}

#[test]
#[should_panic(expected = "unknown dashboard variable $job")]
fn substitute_refuses_unknown_variables() {
    dashboards::substitute(r#"up{job="$job"}"#, &vars());
}

/// Every metric family the exporter serves is shown on some panel: the demo tenant serves them
/// all, with every report enabled.
#[tokio::test(flavor = "multi_thread")]
async fn every_family_the_exporter_serves_is_on_a_panel() {
    let exporter = Exporter::spawn(demo_command(), Vec::new()).await;
    exporter.wait_ready().await;
    let text = exporter.metrics().await;
    let families: BTreeSet<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert!(families.len() > 30, "{families:?}");
    let shown: BTreeSet<String> = dashboards::all_queries()
        .iter()
        .filter(|q| q.kind == QueryKind::Panel)
        .flat_map(|q| selectors(&q.expr).unwrap_or_default())
        .map(|s| s.metric)
        .collect();
    let missing: Vec<&&str> = families
        .iter()
        .filter(|family| !shown.contains(**family))
        .collect();
    assert!(missing.is_empty(), "families on no panel: {missing:?}");
}
