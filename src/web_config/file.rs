//! The file format: exporter-toolkit's keys, read, checked and turned into a [`WebConfig`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::basic_auth::*;
use super::error::*;
use super::loaded::*;
use super::tls::*;

/// The file as exporter-toolkit defines it. Keys the toolkit knows but this exporter cannot
/// honour are read so that they can be refused by name rather than silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub(super) tls_server_config: Option<TlsFile>,
    pub(super) http_server_config: Option<HttpFile>,
    pub(super) basic_auth_users: Option<BTreeMap<String, String>>,
    pub(super) rate_limit: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpFile {
    /// This exporter speaks HTTP/1.1 only; `http2: true` is accepted as a wish.
    #[serde(rename = "http2")]
    _http2: Option<bool>,
    pub(super) headers: Option<BTreeMap<String, String>>,
}

/// The headers exporter-toolkit lets a web config set, with their allowed values where the
/// toolkit restricts them.
pub(super) const EXTRA_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// Reads and checks the file and everything it names.
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse(&text, dir).map_err(|message| WebConfigError::Invalid {
        path: path.to_owned(),
        message,
    })
}

/// Parses the file's text; relative paths are relative to `dir`, as in exporter-toolkit.
/// Errors are one line.
///
/// A file that turns on neither TLS, basic auth nor a header is refused, unlike in
/// exporter-toolkit, where an empty file serves plain HTTP to everyone: whoever passes the flag
/// expects the file to secure something, and an emptied or truncated file (an editor, a
/// template, a ConfigMap update) must not open `/metrics`.
pub fn parse(text: &str, dir: &Path) -> Result<WebConfig, String> {
    let file = parse_file(text)?;
    if file.rate_limit.is_some() {
        return Err("rate_limit is not supported by this exporter; remove it (--web.max-requests caps concurrent scrapes)".to_owned());
    }
    let (tls, client_certificates) = match file.tls_server_config {
        Some(tls) => match tls_config(tls, dir)? {
            Some((tls, client_certificates)) => (Some(tls), client_certificates),
            None => (None, ClientCertificates::default()),
        },
        None => (None, ClientCertificates::default()),
    };
    let http = file.http_server_config.unwrap_or_default();
    let headers = extra_headers(http.headers.unwrap_or_default())?;
    let users = file.basic_auth_users.unwrap_or_default();
    let basic_auth = (!users.is_empty())
        .then(|| BasicAuth::new(users))
        .transpose()?;
    if tls.is_none() && basic_auth.is_none() && headers.is_empty() {
        return Err("the file configures nothing (no TLS certificate, basic_auth_users or http_server_config.headers), as an empty or truncated file does; it is refused rather than read as plain HTTP open to everyone. To serve plain HTTP, drop --web.config.file".to_owned());
    }
    Ok(WebConfig {
        tls,
        client_certificates,
        basic_auth,
        headers,
    })
}

pub(super) fn parse_file(text: &str) -> Result<File, String> {
    if text.trim().is_empty() {
        return Ok(File::default());
    }
    crate::config::parse_yaml::<Option<File>>(text).map(Option::unwrap_or_default)
}

/// Files the configuration names, so that the watcher also notices a renewed certificate.
pub(super) fn named_files(text: &str, dir: &Path) -> Vec<PathBuf> {
    let Ok(File {
        tls_server_config: Some(tls),
        ..
    }) = parse_file(text)
    else {
        return Vec::new();
    };
    [tls.cert_file, tls.key_file, tls.client_ca_file]
        .into_iter()
        .flatten()
        .map(|p| dir.join(p))
        .collect()
}

pub(super) fn extra_headers(
    headers: BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    headers
        .into_iter()
        .map(|(name, value)| {
            let Some((_, allowed)) = EXTRA_HEADERS.iter().find(|(known, _)| *known == name)
            else {
                let known: Vec<&str> = EXTRA_HEADERS.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "http_server_config.headers: HTTP header {name:?} can not be configured; allowed: {}",
                    known.join(", ")
                ));
            };
            if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
                return Err(format!(
                    "http_server_config.headers: invalid value for {name}: expected one of {allowed:?}, got {value:?}"
                ));
            }
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|err| format!("http_server_config.headers: {name}: {err}"))?;
            let header_value = HeaderValue::from_str(&value)
                .map_err(|err| format!("http_server_config.headers: {name}: {err}"))?;
            Ok((header_name, header_value))
        })
        .collect()
}
