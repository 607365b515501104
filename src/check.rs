//! `entra-authmethods-exporter check`: a preflight before deploying. With the exporter's own
//! flags, environment and config file, it gets each tenant's token and makes one cheap request
//! per enabled report (within the same request budgets), then says per tenant and report what
//! works and what to do about what does not. It prints Graph's error codes and the token
//! endpoint's messages, which hold no secret and no user; the probes' bodies are not read.

use std::collections::BTreeMap;
use std::io::Write;

use azure_core::credentials::TokenCredential;
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde::de::IgnoredAny;

use crate::app::{self, Error, Prepared};
use crate::cli::{CheckOutput, Cli};
use crate::graph::{self, GraphError, Unavailability};
use crate::poller::{STARTUP_TOKEN_REQUESTS, Tenant};
use crate::reports::{self, ReportSpec};
use crate::self_metrics::Metrics;

/// What Graph said to a report's probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    /// Refused, but the exporter serves the same figures from another report.
    Fallback,
    /// Refused: a permission or licence is missing.
    Forbidden,
    /// Microsoft has retired the endpoint.
    Retired,
    Error,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fallback => "fallback",
            Outcome::Forbidden => "forbidden",
            Outcome::Retired => "retired",
            Outcome::Error => "error",
        }
    }

    /// The exporter can run with the report in this state.
    fn acceptable(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Fallback | Outcome::Retired)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialOutcome {
    Ok,
    Error,
}

/// The JSON document of `--output=json`.
#[derive(Debug, Serialize)]
pub struct Findings {
    pub tenants: Vec<TenantFinding>,
}

#[derive(Debug, Serialize)]
pub struct TenantFinding {
    pub tenant: String,
    pub credential: CredentialOutcome,
    pub message: String,
    /// Empty when the tenant has no token.
    pub reports: Vec<ReportFinding>,
}

#[derive(Debug, Serialize)]
pub struct ReportFinding {
    pub report: &'static str,
    pub result: Outcome,
    pub message: String,
}

impl Findings {
    /// True when every tenant has a token and every enabled report is ok, served from a
    /// fallback, or retired: the exporter can run as configured.
    pub fn passed(&self) -> bool {
        self.tenants.iter().all(|tenant| {
            tenant.credential == CredentialOutcome::Ok
                && tenant
                    .reports
                    .iter()
                    .all(|report| report.result.acceptable())
        })
    }

    /// A table for people: tenant, report, result, what to do.
    pub fn table(&self) -> String {
        let mut rows = vec![["TENANT", "REPORT", "RESULT", "WHAT TO DO"].map(str::to_owned)];
        for tenant in &self.tenants {
            rows.push([
                tenant.tenant.clone(),
                "(token)".to_owned(),
                match tenant.credential {
                    CredentialOutcome::Ok => "ok",
                    CredentialOutcome::Error => "error",
                }
                .to_owned(),
                dash_if_empty(&tenant.message),
            ]);
            for report in &tenant.reports {
                rows.push([
                    tenant.tenant.clone(),
                    report.report.to_owned(),
                    report.result.as_str().to_owned(),
                    dash_if_empty(&report.message),
                ]);
            }
        }
        let widths: Vec<usize> = (0..3)
            .map(|column| {
                rows.iter()
                    .map(|row| row[column].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in rows {
            for (column, width) in widths.iter().enumerate() {
                let cell = &row[column];
                out.push_str(cell);
                out.push_str(&" ".repeat(width - cell.chars().count() + 2));
            }
            out.push_str(&row[3]);
            out.push('\n');
        }
        out
    }
}

fn dash_if_empty(text: &str) -> String {
    match text {
        "" => "-".to_owned(),
        text => text.to_owned(),
    }
}

/// Runs the checks and writes the findings to `out`. Returns whether they passed; errors are
/// the exporter's start-up errors (configuration, certificates).
pub async fn run(
    cli: &Cli,
    env: &dyn Fn(&str) -> Option<String>,
    output: CheckOutput,
    out: &mut dyn Write,
) -> Result<bool, Error> {
    let Prepared {
        config,
        strength: _,
        demo: _demo,
    } = app::prepare(cli, env).await?;
    let http = graph::http_client(&config.graph)?;
    let tenants = app::build_tenants(&config, &http, &Metrics::new()?);
    // In configuration order, as many tenants at once as the exporter's start-up asks tokens for.
    let tenants: Vec<TenantFinding> = stream::iter(tenants)
        .map(check_tenant)
        .buffered(STARTUP_TOKEN_REQUESTS)
        .collect()
        .await;
    let findings = Findings { tenants };
    let text = match output {
        CheckOutput::Table => findings.table(),
        CheckOutput::Json => {
            serde_json::to_string(&findings).unwrap_or_else(|_| String::from("{}")) + "\n"
        }
    };
    // Nothing more can be said if stdout is gone; the exit code still tells.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    Ok(findings.passed())
}

async fn check_tenant(tenant: Tenant) -> TenantFinding {
    let name = tenant.config.name.clone();
    if let Err(err) = tenant
        .credential
        .get_token(&[tenant.graph.scope()], None)
        .await
    {
        let refused = matches!(
            graph::token_error(&err),
            GraphError::Token {
                retryable: false,
                ..
            }
        );
        let fix = match refused {
            true => {
                "check tenant_id, client_id and the secret or certificate (it may have expired), \
                 and that the app is consented in this tenant"
            }
            false => {
                "the token endpoint could not be reached or failed; try again, and check DNS, proxies and --graph.ca-file"
            }
        };
        return TenantFinding {
            tenant: name,
            credential: CredentialOutcome::Error,
            message: format!("{fix}: {}", crate::errors::error_chain(&err)),
            reports: Vec::new(),
        };
    }
    let mut answers: BTreeMap<&'static str, (Outcome, String)> = BTreeMap::new();
    let enabled: Vec<&'static ReportSpec> = reports::ALL
        .iter()
        .copied()
        .filter(|spec| {
            tenant
                .config
                .report_settings(spec.name, spec.default_interval)
                .enabled
        })
        .collect();
    for spec in &enabled {
        let answer = tenant
            .graph
            .get::<IgnoredAny>(spec.name, spec.probe)
            .await
            .map(|_| ());
        answers.insert(spec.name, judge(spec, &name, answer));
    }
    // A refused summary is fine when its fallback works: that needs every answer first.
    let reports = enabled
        .iter()
        .map(|spec| {
            let (mut result, mut message) = answers[spec.name].clone();
            if result == Outcome::Forbidden
                && let Some(fallback) = spec.fallback
            {
                match answers.get(fallback) {
                    Some((Outcome::Ok, _)) => {
                        result = Outcome::Fallback;
                        message = format!(
                            "nothing to do: Graph refuses it app-only, and the exporter serves the same figures from {fallback} (source=\"details\"); \
                             for Graph's own figures grant the {}",
                            spec.permission
                        );
                    }
                    Some(_) => message.push_str(&format!(
                        "; its fallback, {fallback}, does not work either (see its row)"
                    )),
                    None => message.push_str(&format!(
                        "; or enable {fallback}, whose figures the exporter serves instead"
                    )),
                }
            }
            ReportFinding {
                report: spec.name,
                result,
                message,
            }
        })
        .collect();
    TenantFinding {
        tenant: name,
        credential: CredentialOutcome::Ok,
        message: String::new(),
        reports,
    }
}

/// What a probe's answer means and what to do about it.
fn judge(spec: &ReportSpec, tenant: &str, answer: Result<(), GraphError>) -> (Outcome, String) {
    let err = match answer {
        Ok(()) => return (Outcome::Ok, String::new()),
        Err(err) => err,
    };
    let disable = format!("reports.{}.enabled: false for tenant {tenant}", spec.name);
    let said = crate::errors::error_chain(&err);
    match err.unavailability() {
        Some(Unavailability::Forbidden) => (
            Outcome::Forbidden,
            format!(
                "grant the {} (then wait for consent to propagate), or set {disable}: {said}",
                spec.permission
            ),
        ),
        Some(Unavailability::Retired) => (
            Outcome::Retired,
            format!(
                "Microsoft has retired it{}; set {disable}: {said}",
                spec.successor
                    .map(|s| format!(", use {s}"))
                    .unwrap_or_default()
            ),
        ),
        None => (Outcome::Error, format!("try again later: {said}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(tenant: &str, credential: CredentialOutcome, results: &[Outcome]) -> TenantFinding {
        TenantFinding {
            tenant: tenant.to_owned(),
            credential,
            message: String::new(),
            reports: results
                .iter()
                .map(|result| ReportFinding {
                    report: "userRegistrationDetails",
                    result: *result,
                    message: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn passes_only_with_every_token_and_every_report_usable() {
        use Outcome::*;
        let passed = |tenants| Findings { tenants }.passed();
        assert!(passed(vec![finding(
            "a",
            CredentialOutcome::Ok,
            &[Ok, Fallback, Retired]
        )]));
        assert!(!passed(vec![finding(
            "a",
            CredentialOutcome::Ok,
            &[Ok, Forbidden]
        )]));
        assert!(!passed(vec![finding("a", CredentialOutcome::Ok, &[Error])]));
        assert!(!passed(vec![
            finding("a", CredentialOutcome::Ok, &[Ok]),
            finding("b", CredentialOutcome::Error, &[]),
        ]));
    }

    #[test]
    fn the_json_document_has_the_documented_shape() {
        let findings = Findings {
            tenants: vec![
                finding("a", CredentialOutcome::Ok, &[Outcome::Fallback]),
                finding("b", CredentialOutcome::Error, &[]),
            ],
        };
        assert_eq!(
            serde_json::to_string(&findings).unwrap(),
            r#"{"tenants":[{"tenant":"a","credential":"ok","message":"","reports":[{"report":"userRegistrationDetails","result":"fallback","message":""}]},{"tenant":"b","credential":"error","message":"","reports":[]}]}"#
        );
    }

    #[test]
    fn the_table_lines_up_its_columns() {
        let findings = Findings {
            tenants: vec![finding("contoso", CredentialOutcome::Ok, &[Outcome::Ok])],
        };
        let table = findings.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("TENANT   REPORT  "), "{table}");
        let result_column = lines[0].find("RESULT").unwrap();
        assert_eq!(&lines[1][result_column..result_column + 2], "ok");
        assert_eq!(&lines[2][result_column..result_column + 2], "ok");
        assert!(lines[2].ends_with("ok      -"), "{table}");
    }
}
