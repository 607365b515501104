//! The Grafana dashboards in `dashboards/`: every query they send to Prometheus, and Grafana's
//! substitution of dashboard variables, so that tests can check the dashboards' conventions and
//! evaluate every query on a real Prometheus.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Where the dashboards live.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards")
}

/// One dashboard file, parsed.
#[derive(Clone, Debug)]
pub struct Dashboard {
    /// File name inside `dashboards/`, e.g. `entra-authmethods-overview.json`.
    pub file: String,
    pub json: Value,
}

impl Dashboard {
    pub fn uid(&self) -> &str {
        self.json["uid"].as_str().unwrap_or_default()
    }
}

/// Every `dashboards/*.json`, sorted by file name. Panics, naming the file, on unreadable or
/// invalid JSON.
pub fn load_all() -> Vec<Dashboard> {
    let dir = dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
            let file = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            Dashboard { file, json }
        })
        .collect()
}

/// Every panel of a dashboard model, in order: top-level panels, including row panels, and the
/// panels kept inside collapsed rows (Grafana stores those in the row's own `panels`).
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        all.push(panel);
        all.extend(panel["panels"].as_array().into_iter().flatten());
    }
    all
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryKind {
    /// A panel target: must return data on the demo tenant.
    Panel,
    /// A templating variable of type `query`; `expr` is Grafana's query, e.g.
    /// `label_values(metric, label)`, not PromQL.
    Variable,
    /// An annotation query: valid PromQL, may be empty.
    Annotation,
}

/// One query a dashboard sends to Prometheus, with Grafana's variables still in it.
#[derive(Clone, Debug)]
pub struct Query {
    pub kind: QueryKind,
    /// The dashboard's uid.
    pub dashboard: String,
    /// The panel's id; `None` for variables and annotations.
    pub panel_id: Option<u64>,
    /// The panel's title, the variable's name or the annotation's name.
    pub title: String,
    /// The target's refId; empty for variables and annotations.
    pub ref_id: String,
    pub expr: String,
}

/// Every query of one dashboard model: panel targets (also in collapsed rows), `query`
/// variables and Prometheus annotations. Targets without an `expr` are left out; the
/// conventions test rejects them.
pub fn queries(dashboard: &Value) -> Vec<Query> {
    let uid = dashboard["uid"].as_str().unwrap_or_default();
    let query = |kind, panel_id, title: &Value, ref_id: &Value, expr: &str| Query {
        kind,
        dashboard: uid.to_owned(),
        panel_id,
        title: title.as_str().unwrap_or_default().to_owned(),
        ref_id: ref_id.as_str().unwrap_or_default().to_owned(),
        expr: expr.to_owned(),
    };
    let mut all = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                all.push(query(
                    QueryKind::Panel,
                    panel["id"].as_u64(),
                    &panel["title"],
                    &target["refId"],
                    expr,
                ));
            }
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] != "query" {
            continue;
        }
        // Grafana stores a Prometheus variable's query as a string or, since Grafana 10, as an
        // object holding it.
        let expr = variable["query"]
            .as_str()
            .or_else(|| variable["query"]["query"].as_str());
        if let Some(expr) = expr {
            all.push(query(
                QueryKind::Variable,
                None,
                &variable["name"],
                &Value::Null,
                expr,
            ));
        }
    }
    for annotation in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let expr = annotation["expr"]
            .as_str()
            .or_else(|| annotation["target"]["expr"].as_str());
        if let Some(expr) = expr {
            all.push(query(
                QueryKind::Annotation,
                None,
                &annotation["name"],
                &Value::Null,
                expr,
            ));
        }
    }
    all
}

/// Every query of every dashboard in `dashboards/`.
pub fn all_queries() -> Vec<Query> {
    load_all().iter().flat_map(|d| queries(&d.json)).collect()
}

/// Values for the dashboards' variables, as Grafana would render them into a query.
#[derive(Clone, Debug)]
pub struct Vars {
    /// `$tenant`: a regular expression, since the variable is multi-value (`.+` for All).
    pub tenant: String,
    /// `$__rate_interval`, e.g. `1m`.
    pub rate_interval: String,
    /// `$__interval`, e.g. `15s`.
    pub interval: String,
    /// `$__range`: the dashboard's time range, e.g. `24h`.
    pub range: String,
    /// `$period`: the SSPR dashboard's summary period, `d1`, `d7` or `d30`.
    pub period: String,
    /// `$group`: the overview's groups, a regular expression like `$tenant` (`.+` for All).
    pub group: String,
}

impl Vars {
    fn get(&self, name: &str) -> Option<&str> {
        Some(match name {
            "tenant" => &self.tenant,
            "period" => &self.period,
            "group" => &self.group,
            "__rate_interval" => &self.rate_interval,
            "__interval" => &self.interval,
            "__range" => &self.range,
            _ => return None,
        })
    }
}

/// Replaces Grafana variables in `expr`: `$name`, `${name}` and `${name:format}` (the value is
/// inserted as given, whatever the format). `$1` and other digit-led names, as in
/// `label_replace` replacements, are left alone, as Grafana leaves them. Panics on any other
/// variable, so a dashboard using one that `Vars` does not know fails loudly.
pub fn substitute(expr: &str, vars: &Vars) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = match after.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) => {
                    let inner = &braced[..end];
                    (inner.split(':').next().unwrap_or(inner), end + 2)
                }
                None => ("", 0),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        let leave = name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit());
        if leave {
            out.push('$');
            rest = after;
            continue;
        }
        match vars.get(name) {
            Some(value) => out.push_str(value),
            None => panic!("unknown dashboard variable ${name} in query:\n{expr}"),
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}
