//! Talks to the fake over real TLS, as the exporter will.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use reqwest::{Client, Response, StatusCode};
use serde_json::Value;

use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// No automatic events and no campaigns: fully deterministic.
fn quiet() -> FakeGraphOptions {
    FakeGraphOptions {
        events_per_minute: 0.0,
        registration_drift_per_hour: 0.0,
        passkey_campaign_per_hour: 0.0,
        ..FakeGraphOptions::default()
    }
}

async fn start(opts: FakeGraphOptions) -> Result<(FakeGraph, Client), Box<dyn std::error::Error>> {
    let fake = FakeGraph::start(opts).await?;
    let client = Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(fake.ca_pem().as_bytes())?])
        .build()?;
    Ok((fake, client))
}

/// reqwest's `form` needs a feature the crate does not enable.
fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

async fn token_response(
    fake: &FakeGraph,
    client: &Client,
    secret: &str,
) -> reqwest::Result<Response> {
    let scope = format!("{}/.default", fake.base_url());
    client
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            fake.base_url(),
            fake.tenant_id()
        ))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "client_credentials"),
            ("client_id", fake.client_id()),
            ("client_secret", secret),
            ("scope", &scope),
        ]))
        .send()
        .await
}

async fn token(fake: &FakeGraph, client: &Client) -> Result<String, Box<dyn std::error::Error>> {
    let body: Value = token_response(fake, client, fake.client_secret())
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(body["access_token"]
        .as_str()
        .ok_or("no access_token")?
        .to_owned())
}

async fn get(client: &Client, token: &str, url: &str) -> reqwest::Result<Response> {
    client
        .get(url)
        .bearer_auth(token)
        .header("Prefer", "include-unknown-enum-members")
        .send()
        .await
}

async fn get_json(
    client: &Client,
    token: &str,
    url: &str,
) -> Result<Value, Box<dyn std::error::Error>> {
    Ok(get(client, token, url)
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// Follows `@odata.nextLink` and returns all rows and the number of pages.
async fn all_pages(
    client: &Client,
    token: &str,
    first: &str,
) -> Result<(Vec<Value>, usize), Box<dyn std::error::Error>> {
    let mut rows = Vec::new();
    let mut pages = 0;
    let mut next = Some(first.to_owned());
    while let Some(url) = next {
        let page = get_json(client, token, &url).await?;
        pages += 1;
        rows.extend(page["value"].as_array().ok_or("no value")?.iter().cloned());
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    Ok((rows, pages))
}

/// A count that may be a JSON number or a string.
fn count(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(u64::MAX)
}

fn summary_total(body: &Value) -> u64 {
    body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| count(&r["successfulActivityCount"]) + count(&r["failureActivityCount"]))
        .sum()
}

#[tokio::test]
async fn issues_tokens_and_rejects_wrong_credentials() -> TestResult {
    let (fake, client) = start(quiet()).await?;
    let resp = token_response(&fake, &client, fake.client_secret()).await?;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await?;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(fake.tokens_issued(), 1);

    let resp = token_response(&fake, &client, "wrong").await?;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await?;
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"][0], 7000215);
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("AADSTS7000215:"))
    );

    let resp = client
        .post(format!(
            "{}/other-tenant/oauth2/v2.0/token",
            fake.base_url()
        ))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[("grant_type", "client_credentials")]))
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(fake.tokens_issued(), 1);
    assert_eq!(fake.requests(""), 0, "token calls are not Graph requests");
    Ok(())
}

#[tokio::test]
async fn graph_rejects_missing_unknown_and_expired_tokens() -> TestResult {
    let (fake, client) = start(FakeGraphOptions {
        token_lifetime: Duration::from_secs(1),
        ..quiet()
    })
    .await?;
    let url = format!(
        "{}/beta/reports/getCredentialUserRegistrationCount",
        fake.base_url()
    );

    let resp = client.get(&url).send().await?;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().contains_key("request-id"));
    assert!(resp.headers().contains_key("client-request-id"));
    let body: Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert!(body["error"]["innerError"]["request-id"].is_string());

    let resp = get(&client, "not-issued", &url).await?;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let token = token(&fake, &client).await?;
    assert_eq!(get(&client, &token, &url).await?.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let resp = get(&client, &token, &url).await?;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await?;
    assert_eq!(
        body["error"]["message"],
        "Access token has expired or is not yet valid."
    );
    assert_eq!(fake.requests("getCredentialUserRegistrationCount"), 4);
    Ok(())
}

#[tokio::test]
async fn paging_covers_every_user_once_and_matches_the_counts() -> TestResult {
    let (fake, client) = start(quiet()).await?;
    let token = token(&fake, &client).await?;
    let first = format!(
        "{}/beta/reports/credentialUserRegistrationDetails",
        fake.base_url()
    );
    let resp = get(&client, &token, &first).await?;
    assert!(resp.headers().contains_key("deprecation"));
    assert!(resp.headers().contains_key("sunset"));

    let (rows, pages) = all_pages(&client, &token, &first).await?;
    assert_eq!(pages, 3);
    assert_eq!(rows.len(), 250);
    let upns: HashSet<&str> = rows
        .iter()
        .filter_map(|r| r["userPrincipalName"].as_str())
        .collect();
    assert_eq!(upns.len(), 250);
    assert!(upns.contains("user0042@demo.contoso.test"));

    let counts = get_json(
        &client,
        &token,
        &format!(
            "{}/beta/reports/getCredentialUserRegistrationCount()",
            fake.base_url()
        ),
    )
    .await?;
    let row = &counts["value"][0];
    assert_eq!(row["totalUserCount"], 250);
    for (status, field) in [
        ("registered", "isRegistered"),
        ("enabled", "isEnabled"),
        ("capable", "isCapable"),
        ("mfaRegistered", "isMfaRegistered"),
    ] {
        let expected = rows.iter().filter(|r| r[field] == true).count() as u64;
        let reported = row["userRegistrationCounts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["registrationStatus"] == status)
            .map(|c| count(&c["registrationCount"]));
        assert_eq!(reported, Some(expected), "{status}");
        assert!(expected > 50 && expected < 250, "{status}: {expected}");
    }
    Ok(())
}

#[tokio::test]
async fn same_seed_same_users() -> TestResult {
    let (a, client_a) = start(quiet()).await?;
    let (b, client_b) = start(quiet()).await?;
    let path = "/beta/reports/credentialUserRegistrationDetails";
    let page_a = get_json(
        &client_a,
        &token(&a, &client_a).await?,
        &format!("{}{path}", a.base_url()),
    )
    .await?;
    let page_b = get_json(
        &client_b,
        &token(&b, &client_b).await?,
        &format!("{}{path}", b.base_url()),
    )
    .await?;
    assert_eq!(page_a["value"], page_b["value"]);
    Ok(())
}

#[tokio::test]
async fn usage_summary_grows_with_the_period() -> TestResult {
    let (fake, client) = start(quiet()).await?;
    let token = token(&fake, &client).await?;
    let base = fake.base_url();
    let mut totals = Vec::new();
    for period in ["'D1'", "%27d7%27", "'D30'"] {
        let url = format!("{base}/beta/reports/getCredentialUsageSummary(period={period})");
        totals.push(summary_total(&get_json(&client, &token, &url).await?));
    }
    assert!(
        totals[0] > 0 && totals[0] < totals[1] && totals[1] < totals[2],
        "{totals:?}"
    );
    assert_eq!(totals[2], 200);

    let d30 = get_json(
        &client,
        &token,
        &format!("{base}/beta/reports/getCredentialUsageSummary(period='D30')"),
    )
    .await?;
    let rows = d30["value"].as_array().ok_or("no value")?;
    assert!(
        rows.iter()
            .any(|r| r["successfulActivityCount"].is_string())
    );
    assert!(
        rows.iter()
            .any(|r| r["successfulActivityCount"].is_number())
    );

    let (events, _) = all_pages(
        &client,
        &token,
        &format!("{base}/beta/reports/userCredentialUsageDetails"),
    )
    .await?;
    assert_eq!(events.len(), 200);
    let ids: HashSet<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), 200);

    let resp = get(
        &client,
        &token,
        &format!("{base}/beta/reports/getCredentialUsageSummary(period='D2')"),
    )
    .await?;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    Ok(())
}

#[tokio::test]
async fn added_and_expired_events_show_up() -> TestResult {
    let (fake, client) = start(FakeGraphOptions {
        initial_events: 0,
        ..quiet()
    })
    .await?;
    let token = token(&fake, &client).await?;
    let base = fake.base_url();
    let id = fake.add_usage_event(UsageEvent {
        feature: "reset".into(),
        auth_method: "microsoftAuthenticatorPush".into(),
        is_success: false,
        failure_reason: "Benutzer hat \"Zurücksetzen\" abgebrochen\n".into(),
        user: 7,
    });
    let details_url = format!("{base}/beta/reports/userCredentialUsageDetails");
    let details = get_json(&client, &token, &details_url).await?;
    let event = &details["value"][0];
    assert_eq!(event["id"], id.as_str());
    assert_eq!(event["authMethod"], "microsoftAuthenticatorPush");
    assert_eq!(event["userPrincipalName"], "user0007@demo.contoso.test");
    assert_eq!(
        event["failureReason"],
        "Benutzer hat \"Zurücksetzen\" abgebrochen\n"
    );
    assert!(
        event["eventDateTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    // Without the Prefer header, evolvable members collapse as in Graph.
    let plain: Value = client
        .get(&details_url)
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(plain["value"][0]["authMethod"], "unknownFutureValue");

    let summary_url = format!("{base}/beta/reports/getCredentialUsageSummary(period='D1')");
    let summary = get_json(&client, &token, &summary_url).await?;
    assert_eq!(summary["value"][0]["failureActivityCount"], 1);

    fake.expire_usage_events_before(SystemTime::now() + Duration::from_secs(1));
    let summary = get_json(&client, &token, &summary_url).await?;
    assert_eq!(summary["value"].as_array().map(Vec::len), Some(0));
    Ok(())
}

#[tokio::test]
async fn one_shot_faults_fire_once_in_order() -> TestResult {
    let (fake, client) = start(quiet()).await?;
    let token = token(&fake, &client).await?;
    let url = format!(
        "{}/beta/reports/getCredentialUsageSummary(period='D7')",
        fake.base_url()
    );
    fake.inject(
        "getCredentialUsageSummary",
        Fault::Status {
            code: 429,
            retry_after: Some("1".into()),
            body: String::new(),
        },
    );
    fake.inject(
        "getCredentialUsageSummary",
        Fault::Status {
            code: 503,
            retry_after: None,
            body: String::new(),
        },
    );
    fake.inject("getCredentialUsageSummary", Fault::InvalidJson);

    let resp = get(&client, &token, &url).await?;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert!(resp.headers().contains_key("deprecation"));
    let body: Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "TooManyRequests");

    let resp = get(&client, &token, &url).await?;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!resp.headers().contains_key("retry-after"));

    let resp = get(&client, &token, &url).await?;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(serde_json::from_slice::<Value>(&resp.bytes().await?).is_err());

    assert_eq!(get(&client, &token, &url).await?.status(), StatusCode::OK);

    fake.inject("period='D7'", Fault::Delay(Duration::from_millis(300)));
    let started = std::time::Instant::now();
    assert_eq!(get(&client, &token, &url).await?.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    fake.inject(
        "oauth2/v2.0/token",
        Fault::Status {
            code: 503,
            retry_after: None,
            body: String::new(),
        },
    );
    let resp = token_response(&fake, &client, fake.client_secret()).await?;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await?;
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(body["error_codes"].is_array());
    let resp = token_response(&fake, &client, fake.client_secret()).await?;
    assert_eq!(resp.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn resets_oversized_pages_and_expired_tokens() -> TestResult {
    let (fake, client) = start(FakeGraphOptions {
        users: 30,
        page_size: 10,
        record_requests: true,
        ..quiet()
    })
    .await?;
    // A reset: the token endpoint closes the connection unanswered, once.
    fake.inject("oauth2/v2.0/token", Fault::Reset);
    assert!(
        token_response(&fake, &client, fake.client_secret())
            .await
            .is_err()
    );
    let issued = token(&fake, &client).await?;
    let statuses: Vec<u16> = fake.request_log().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [0, 200]);

    let url = format!(
        "{}/v1.0/reports/authenticationMethods/userRegistrationDetails",
        fake.base_url()
    );
    let normal = get_json(&client, &issued, &url).await?;
    let rows = normal["value"].as_array().ok_or("no value")?.clone();
    const BYTES: usize = 2 << 20;

    // Oversized, announced by its Content-Length: the page's rows over and over, then its
    // nextLink, so it is still a valid page.
    fake.inject(
        "userRegistrationDetails",
        Fault::OversizedPage {
            bytes: BYTES,
            gzip: false,
        },
    );
    let resp = get(&client, &issued, &url).await?;
    assert!(resp.content_length().ok_or("no length")? >= BYTES as u64);
    let page: Value = resp.json().await?;
    let big = page["value"].as_array().ok_or("no value")?;
    assert!(big.len() > 100 * rows.len(), "{}", big.len());
    assert_eq!(big[rows.len()], rows[0]);
    assert_eq!(page["@odata.nextLink"], normal["@odata.nextLink"]);

    // Gzip-compressed: small on the wire, as large once decoded.
    fake.inject(
        "userRegistrationDetails",
        Fault::OversizedPage {
            bytes: BYTES,
            gzip: true,
        },
    );
    let raw = Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(fake.ca_pem().as_bytes())?])
        .no_gzip()
        .build()?;
    let resp = get(&raw, &issued, &url).await?;
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let compressed = resp.bytes().await?;
    assert!(compressed.len() < BYTES / 10, "{}", compressed.len());
    let mut decoded = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&compressed[..]),
        &mut decoded,
    )?;
    assert!(decoded.len() >= BYTES);
    let page: Value = serde_json::from_slice(&decoded)?;
    assert_eq!(page["value"][0], rows[0]);
    // One page each.
    assert_eq!(get_json(&client, &issued, &url).await?, normal);

    // A reset Graph request, then the same request answered.
    fake.inject("userRegistrationDetails", Fault::Reset);
    assert!(get(&client, &issued, &url).await.is_err());
    assert_eq!(get(&client, &issued, &url).await?.status(), StatusCode::OK);

    // Expired tokens are refused until a new one is issued.
    fake.expire_tokens();
    let resp = get(&client, &issued, &url).await?;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await?;
    assert_eq!(
        body["error"]["message"],
        "Access token has expired or is not yet valid."
    );
    let fresh = token(&fake, &client).await?;
    assert_eq!(get(&client, &fresh, &url).await?.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn retire_is_permanent_and_unknown_paths_are_bad_requests() -> TestResult {
    let (fake, client) = start(quiet()).await?;
    let token = token(&fake, &client).await?;
    let base = fake.base_url();
    fake.retire("userCredentialUsageDetails", 403);
    for _ in 0..3 {
        let resp = get(
            &client,
            &token,
            &format!("{base}/beta/reports/userCredentialUsageDetails"),
        )
        .await?;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let body: Value = resp.json().await?;
        assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
    }
    let resp = get(
        &client,
        &token,
        &format!("{base}/beta/reports/credentialUserRegistrationDetails"),
    )
    .await?;
    assert_eq!(resp.status(), StatusCode::OK);

    let resp = get(
        &client,
        &token,
        &format!("{base}/v1.0/reports/credentialUserRegistrationDetails"),
    )
    .await?;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(!resp.headers().contains_key("deprecation"));
    let body: Value = resp.json().await?;
    assert_eq!(
        body["error"]["message"],
        "Resource not found for the segment 'credentialUserRegistrationDetails'."
    );
    assert_eq!(fake.requests("/v1.0/"), 1);
    Ok(())
}

#[tokio::test]
async fn recorder_counts_hits_and_bearer_tokens() -> TestResult {
    let (fake, client) = start(quiet()).await?;
    let recorder = serve_recorder(fake.tls_config()).await?;
    let token = token(&fake, &client).await?;

    fake.inject(
        "credentialUserRegistrationDetails",
        Fault::ForeignNextLink(format!("{}/beta/steal", recorder.url())),
    );
    let page = get_json(
        &client,
        &token,
        &format!(
            "{}/beta/reports/credentialUserRegistrationDetails",
            fake.base_url()
        ),
    )
    .await?;
    assert_eq!(page["value"].as_array().map(Vec::len), Some(100));
    let next = page["@odata.nextLink"].as_str().ok_or("no nextLink")?;
    assert!(next.starts_with(recorder.url()));

    let resp = client.get(next).send().await?;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await?,
        serde_json::json!({"value": []})
    );
    assert_eq!(recorder.hits(), 1);
    assert_eq!(recorder.authorized_hits(), 0);

    get(&client, &token, next).await?;
    assert_eq!(recorder.hits(), 2);
    assert_eq!(recorder.authorized_hits(), 1);
    Ok(())
}

#[tokio::test]
async fn rejects_invalid_options() {
    let result = FakeGraph::start(FakeGraphOptions {
        page_size: 0,
        ..quiet()
    })
    .await;
    assert!(matches!(result, Err(FakeError::InvalidOptions(_))));
}

#[test]
fn simulation_accrues_and_expires_events_with_time() {
    let opts = FakeGraphOptions {
        initial_events: 0,
        ..FakeGraphOptions::default()
    };
    let start = SystemTime::now();
    let mut sim = data::Simulation::new(&opts, start);
    let later = start + Duration::from_secs(600);
    sim.advance(later);
    let total = |sim: &data::Simulation, now| {
        summary_total(&serde_json::json!({"value": sim.usage_summary(now, data::WINDOW, true)}))
    };
    let accrued = total(&sim, later);
    // 6 per minute for 10 minutes, as a Poisson process.
    assert!((30..=100).contains(&accrued), "{accrued}");

    let quiet = FakeGraphOptions {
        events_per_minute: 0.0,
        ..FakeGraphOptions::default()
    };
    let mut sim = data::Simulation::new(&quiet, start);
    assert_eq!(total(&sim, start), 200);
    let month_later = start + data::WINDOW + Duration::from_secs(1);
    sim.advance(month_later);
    assert_eq!(total(&sim, month_later), 0);
}

#[tokio::test]
async fn odd_requests_get_errors_not_panics() -> TestResult {
    let (fake, client) = start(quiet()).await?;
    let token = token(&fake, &client).await?;
    let base = fake.base_url();
    for path in [
        "/beta/reports/%ff%fe%",
        "/beta/reports/getCredentialUsageSummary(period=",
        "/beta/reports/getCredentialUsageSummary(period=%27%27)",
        "/beta/reports/getCredentialUsageSummary()",
        "/beta/reports/credentialUserRegistrationDetails?$skiptoken=%00garbage",
        "/beta/reports/userCredentialUsageDetails?$skiptoken=RFNwdAIAffffffffffffffff",
        "/v1.0/reports/authenticationMethods/userRegistrationDetails?$skiptoken=RFNwdAIAffffffffffffffff",
        "/v1.0/reports/authenticationMethods/userRegistrationDetails?$top=99999999999999999999999",
        "/v1.0/reports/authenticationMethods/userRegistrationDetails/abc",
        "/v1.0/reports/authenticationMethods/usersRegisteredByFeature(includedUserTypes=",
        "/v1.0/reports/authenticationMethods/usersRegisteredByFeature(includedUserTypes='all'",
        "/v1.0/reports/authenticationMethods/usersRegisteredByMethod(x)",
        "/beta/reports/authenticationMethods/userSignInsByAuthMethodSummary(period='d30',period='d1')",
        "/beta/reports/authenticationMethods/userRegistrationActivity()",
        "/beta/reports/authenticationMethods/userMfaSignInSummary()",
        "/beta/reports/authenticationMethods/",
        "/v1.0/reports/authenticationMethods",
        "/%2e%2e/oauth2/v2.0/token",
        "/",
    ] {
        let status = get(&client, &token, &format!("{base}{path}"))
            .await?
            .status();
        assert!(
            status.is_client_error() || status.is_success(),
            "{path}: {status}"
        );
    }
    let resp = client
        .delete(format!("{base}/beta/reports/userCredentialUsageDetails"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let url = format!("{base}/beta/reports/getCredentialUserRegistrationCount");
    assert_eq!(get(&client, &token, &url).await?.status(), StatusCode::OK);
    Ok(())
}

const AM: &str = "reports/authenticationMethods";

/// `2026-11-23T00:00:00Z` for the UTC day of `t`.
fn midnight(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    wire::rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(secs - secs % 86_400))
}

/// `userCount` of the entry whose `key` is `name` in a summary's `list`.
fn count_of(summary: &Value, list: &str, key: &str, name: &str) -> Option<u64> {
    summary[list]
        .as_array()?
        .iter()
        .find(|c| c[key] == name)
        .map(|c| count(&c["userCount"]))
}

/// (feature, authMethod) -> (successes, failures) of a usage-summary-like body.
fn activity_counts(body: &Value) -> BTreeMap<(String, String), (u64, u64)> {
    body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                (
                    r["feature"].as_str().unwrap_or("?").to_owned(),
                    r["authMethod"].as_str().unwrap_or("?").to_owned(),
                ),
                (
                    count(&r["successfulActivityCount"]),
                    count(&r["failureActivityCount"]),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn user_registration_details_have_the_successor_shape() -> TestResult {
    let (fake, client) = start(quiet()).await?;
    let token = token(&fake, &client).await?;
    let url = format!("{}/v1.0/{AM}/userRegistrationDetails", fake.base_url());
    let resp = get(&client, &token, &url).await?;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("request-id"));
    assert!(!resp.headers().contains_key("deprecation"));
    assert!(!resp.headers().contains_key("sunset"));
    let page: Value = resp.json().await?;
    assert!(page["@odata.nextLink"].is_string());
    let (rows, pages) = all_pages(&client, &token, &url).await?;
    assert_eq!((rows.len(), pages), (250, 3));

    let nullable = [
        "userType",
        "isAdmin",
        "methodsRegistered",
        "isSystemPreferredAuthenticationMethodEnabled",
        "systemPreferredAuthenticationMethods",
        "userPreferredMethodForSecondaryAuthentication",
    ];
    let required_bools = [
        "isSsprRegistered",
        "isSsprEnabled",
        "isSsprCapable",
        "isMfaRegistered",
        "isMfaCapable",
        "isPasswordlessCapable",
    ];
    for row in &rows {
        for field in required_bools {
            assert!(row[field].is_boolean(), "{field} in {row}");
        }
        for field in nullable {
            assert!(row.get(field).is_some(), "{field} missing in {row}");
        }
        assert!(row["userPrincipalName"].is_string() && row["userDisplayName"].is_string());
        let updated = row["lastUpdatedDateTime"]
            .as_str()
            .ok_or("no lastUpdatedDateTime")?;
        let parsed =
            time::OffsetDateTime::parse(updated, &time::format_description::well_known::Rfc3339)?;
        let age = time::OffsetDateTime::now_utc() - parsed;
        assert!(
            age > time::Duration::minutes(59) && age < time::Duration::hours(7),
            "{updated}"
        );
        if let Some(methods) = row["methodsRegistered"].as_array() {
            assert!(methods.iter().any(|m| m == "password"), "{row}");
        }
        if row["isSsprCapable"] == true {
            assert!(row["isSsprEnabled"] == true && row["isSsprRegistered"] == true);
        }
    }
    let any = |f: &dyn Fn(&Value) -> bool| rows.iter().any(f);
    assert!(any(&|r| r["userType"] == "member") && any(&|r| r["userType"] == "guest"));
    assert!(any(&|r| r["userType"].is_null()) && any(&|r| r["isAdmin"].is_null()));
    assert!(any(&|r| r["isAdmin"] == true));
    assert!(any(
        &|r| r["userPreferredMethodForSecondaryAuthentication"] == "push"
    ));
    assert!(any(
        &|r| r["systemPreferredAuthenticationMethods"] == serde_json::json!(["push"])
    ));
    assert!(any(&|r| r["isPasswordlessCapable"] == true));
    assert!(any(&|r| {
        r["lastUpdatedDateTime"]
            .as_str()
            .is_some_and(|t| t.len() == "2026-11-23T08:15:41.6195833Z".len())
    }));

    // beta serves the same rows; v1.0 has no beta-only reports.
    let beta = get_json(
        &client,
        &token,
        &format!("{}/beta/{AM}/userRegistrationDetails", fake.base_url()),
    )
    .await?;
    assert_eq!(beta["value"], page["value"]);
    for path in [
        "userEventsSummary",
        "userMfaSignInSummary",
        "userRegistrationActivity(period='d7')",
    ] {
        let resp = get(
            &client,
            &token,
            &format!("{}/v1.0/{AM}/{path}", fake.base_url()),
        )
        .await?;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn successor_views_agree_with_the_details_and_the_legacy_reports() -> TestResult {
    let (fake, client) = start(quiet()).await?;
    let token = token(&fake, &client).await?;
    let base = fake.base_url();
    let (rows, _) = all_pages(
        &client,
        &token,
        &format!("{base}/v1.0/{AM}/userRegistrationDetails"),
    )
    .await?;
    let (legacy, _) = all_pages(
        &client,
        &token,
        &format!("{base}/beta/reports/credentialUserRegistrationDetails"),
    )
    .await?;
    assert_eq!(rows.len(), legacy.len());
    for (new, old) in rows.iter().zip(&legacy) {
        assert_eq!(new["id"], old["id"]);
        assert_eq!(new["userPrincipalName"], old["userPrincipalName"]);
        assert_eq!(new["isSsprRegistered"], old["isRegistered"]);
        assert_eq!(new["isSsprEnabled"], old["isEnabled"]);
        assert_eq!(new["isSsprCapable"], old["isCapable"]);
        assert_eq!(new["isMfaRegistered"], old["isMfaRegistered"]);
        let has = |list: &Value, m: &str| list.as_array().is_some_and(|l| l.iter().any(|x| x == m));
        if new["methodsRegistered"].is_array() {
            for (old_name, new_name) in [
                ("appNotification", "microsoftAuthenticatorPush"),
                ("appCode", "softwareOneTimePasscode"),
                ("fido", "fido2SecurityKey"),
                ("email", "email"),
            ] {
                assert_eq!(
                    has(&old["authMethods"], old_name),
                    has(&new["methodsRegistered"], new_name),
                    "{old_name} / {new_name}: {old} / {new}"
                );
            }
        }
    }

    let tally = |field: &str, filter: &dyn Fn(&Value) -> bool| {
        rows.iter()
            .filter(|r| filter(r) && r[field] == true)
            .count() as u64
    };
    let everyone = |_: &Value| true;
    for args in [
        "(includedUserTypes='all',includedUserRoles='all')",
        "()",
        "",
        "(includedUserTypes=%27all%27)",
    ] {
        let summary = get_json(
            &client,
            &token,
            &format!("{base}/v1.0/{AM}/usersRegisteredByFeature{args}"),
        )
        .await?;
        assert_eq!(
            summary["@odata.type"],
            "#microsoft.graph.userRegistrationFeatureSummary"
        );
        assert!(summary.get("value").is_none());
        assert_eq!(
            (&summary["userTypes"], &summary["userRoles"]),
            (&"all".into(), &"all".into())
        );
        assert_eq!(summary["totalUserCount"], 250);
        for (feature, field) in [
            ("ssprRegistered", "isSsprRegistered"),
            ("ssprEnabled", "isSsprEnabled"),
            ("ssprCapable", "isSsprCapable"),
            ("passwordlessCapable", "isPasswordlessCapable"),
            ("mfaCapable", "isMfaCapable"),
        ] {
            assert_eq!(
                count_of(
                    &summary,
                    "userRegistrationFeatureCounts",
                    "feature",
                    feature
                ),
                Some(tally(field, &everyone)),
                "{args} {feature}"
            );
        }
    }
    let guests = get_json(
        &client,
        &token,
        &format!("{base}/v1.0/{AM}/usersRegisteredByFeature(includedUserTypes='guest',includedUserRoles='all')"),
    )
    .await?;
    let is_guest = |r: &Value| r["userType"] == "guest";
    assert_eq!(guests["userTypes"], "guest");
    assert_eq!(
        guests["totalUserCount"],
        rows.iter().filter(|r| is_guest(r)).count() as u64
    );
    assert_eq!(
        count_of(
            &guests,
            "userRegistrationFeatureCounts",
            "feature",
            "mfaCapable"
        ),
        Some(tally("isMfaCapable", &is_guest))
    );
    let resp = get(
        &client,
        &token,
        &format!("{base}/v1.0/{AM}/usersRegisteredByFeature(includedUserTypes='robots')"),
    )
    .await?;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let by_method = get_json(
        &client,
        &token,
        &format!("{base}/v1.0/{AM}/usersRegisteredByMethod()"),
    )
    .await?;
    assert_eq!(
        by_method["@odata.type"],
        "#microsoft.graph.userRegistrationMethodSummary"
    );
    assert_eq!(by_method["totalUserCount"], 250);
    let mut aggregated: BTreeMap<&str, u64> = BTreeMap::new();
    for method in rows
        .iter()
        .filter_map(|r| r["methodsRegistered"].as_array())
        .flatten()
    {
        *aggregated
            .entry(method.as_str().ok_or("method not a string")?)
            .or_default() += 1;
    }
    let reported: BTreeMap<&str, u64> = by_method["userRegistrationMethodCounts"]
        .as_array()
        .ok_or("no method counts")?
        .iter()
        .filter(|c| count(&c["userCount"]) > 0)
        .filter_map(|c| Some((c["authenticationMethod"].as_str()?, count(&c["userCount"]))))
        .collect();
    assert_eq!(reported, aggregated);
    assert!(aggregated.get("password") > Some(&240), "{aggregated:?}");

    let count_row = get_json(
        &client,
        &token,
        &format!("{base}/beta/reports/getCredentialUserRegistrationCount"),
    )
    .await?;
    let feature = get_json(
        &client,
        &token,
        &format!("{base}/v1.0/{AM}/usersRegisteredByFeature"),
    )
    .await?;
    let registered = count_row["value"][0]["userRegistrationCounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["registrationStatus"] == "registered")
        .map(|c| count(&c["registrationCount"]));
    assert_eq!(
        registered,
        count_of(
            &feature,
            "userRegistrationFeatureCounts",
            "feature",
            "ssprRegistered"
        ),
    );
    Ok(())
}

#[tokio::test]
async fn activity_and_events_summary_repeat_the_legacy_numbers() -> TestResult {
    let (fake, client) = start(quiet()).await?;
    let token = token(&fake, &client).await?;
    let base = fake.base_url();
    for (legacy, new) in [("'D1'", "'d1'"), ("'D7'", "%27D7%27"), ("'D30'", "'d30'")] {
        let old = get_json(
            &client,
            &token,
            &format!("{base}/beta/reports/getCredentialUsageSummary(period={legacy})"),
        )
        .await?;
        let resp = get(
            &client,
            &token,
            &format!("{base}/beta/{AM}/userRegistrationActivity(period={new})"),
        )
        .await?;
        assert!(!resp.headers().contains_key("deprecation"));
        let body: Value = resp.json().await?;
        let rows = body["value"].as_array().ok_or("no value")?;
        assert!(!rows.is_empty());
        for row in rows {
            assert!(row["id"].is_string());
            assert!(
                row["successfulActivityCount"].is_u64() && row["failureActivityCount"].is_u64()
            );
            assert!(row["feature"] == "registration" || row["feature"] == "reset");
        }
        assert_eq!(activity_counts(&body), activity_counts(&old), "{new}");
    }
    let resp = get(
        &client,
        &token,
        &format!("{base}/beta/{AM}/userRegistrationActivity(period='d2')"),
    )
    .await?;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let (legacy, legacy_pages) = all_pages(
        &client,
        &token,
        &format!("{base}/beta/reports/userCredentialUsageDetails"),
    )
    .await?;
    let (events, pages) = all_pages(
        &client,
        &token,
        &format!("{base}/beta/{AM}/userEventsSummary?$top=1000"),
    )
    .await?;
    assert_eq!((legacy_pages, pages), (2, 1));
    assert_eq!(events, legacy);
    let (small, small_pages) = all_pages(
        &client,
        &token,
        &format!("{base}/beta/{AM}/userEventsSummary?$top=30"),
    )
    .await?;
    assert_eq!(small_pages, 7);
    let ids = |rows: &[Value]| rows.iter().map(|r| r["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&small), ids(&legacy));

    // Self-service resets per day are the successful reset events of that day.
    let resets = get_json(
        &client,
        &token,
        &format!("{base}/beta/{AM}/userPasswordResetsAndChangesSummary"),
    )
    .await?;
    let days = resets["value"].as_array().ok_or("no value")?;
    let oldest = days
        .first()
        .and_then(|d| d["aggregatedDateTime"].as_str())
        .ok_or("no days")?;
    let expected = events
        .iter()
        .filter(|e| e["feature"] == "reset" && e["isSuccess"] == true)
        .filter(|e| e["eventDateTime"].as_str().is_some_and(|t| t >= oldest))
        .count() as u64;
    let reported: u64 = days
        .iter()
        .map(|d| count(&d["passwordResetsSelfServiceCount"]))
        .sum();
    assert_eq!(reported, expected);
    Ok(())
}

#[tokio::test]
async fn daily_summaries_cover_the_last_week_oldest_first() -> TestResult {
    let (fake, client) = start(quiet()).await?;
    let token = token(&fake, &client).await?;
    let base = fake.base_url();
    let today = midnight(SystemTime::now());
    for (path, date, counts) in [
        (
            "userMfaSignInSummary",
            "createdDateTime",
            &["totalSignIns", "singleFactorSignIns", "multiFactorSignIns"][..],
        ),
        (
            "userPasswordResetsAndChangesSummary",
            "aggregatedDateTime",
            &[
                "changePasswordSelfServiceCount",
                "passwordResetsByAdminCount",
                "passwordResetsSelfServiceCount",
            ][..],
        ),
    ] {
        let body = get_json(&client, &token, &format!("{base}/beta/{AM}/{path}")).await?;
        let rows = body["value"].as_array().ok_or("no value")?;
        assert_eq!(rows.len(), 7, "{path}");
        let dates: Vec<&str> = rows.iter().filter_map(|r| r[date].as_str()).collect();
        assert_eq!(dates.len(), 7);
        assert!(dates.windows(2).all(|w| w[0] < w[1]), "{path}: {dates:?}");
        assert!(dates.iter().all(|d| d.ends_with("T00:00:00Z")));
        assert_eq!(
            dates.last(),
            Some(&today.as_str()),
            "{path}: newest day is today"
        );
        for row in rows {
            assert!(row["id"].is_string());
            for field in counts {
                assert!(row[*field].is_u64(), "{path}.{field}: {row}");
            }
        }
        if path == "userMfaSignInSummary" {
            for row in rows {
                assert_eq!(
                    count(&row["totalSignIns"]),
                    count(&row["singleFactorSignIns"]) + count(&row["multiFactorSignIns"])
                );
            }
            assert!(rows.iter().any(|r| count(&r["totalSignIns"]) > 100));
        }
    }

    let mut by_period = Vec::new();
    for period in ["'d1'", "'D7'", "%27d30%27"] {
        let body = get_json(
            &client,
            &token,
            &format!("{base}/beta/{AM}/userSignInsByAuthMethodSummary(period={period})"),
        )
        .await?;
        let rows: BTreeMap<String, u64> = body["value"]
            .as_array()
            .ok_or("no value")?
            .iter()
            .map(|r| {
                assert!(r.get("id").is_none(), "{r}");
                (
                    r["authenticationMethod"].as_str().unwrap_or("?").to_owned(),
                    count(&r["successActivityCount"]),
                )
            })
            .collect();
        by_period.push(rows);
    }
    let (d1, d7, d30) = (&by_period[0], &by_period[1], &by_period[2]);
    assert!(d1.contains_key("passKeyDeviceBound") && d1.contains_key("password"));
    for (method, n) in d30 {
        assert!(d7[method] <= *n && d1[method] <= d7[method], "{method}");
    }
    assert!(d30["password"] > d7["password"] && d7["password"] > d1["password"]);
    Ok(())
}

#[tokio::test]
async fn retired_successors_answer_graph_errors() -> TestResult {
    let (fake, client) = start(quiet()).await?;
    let token = token(&fake, &client).await?;
    let base = fake.base_url();
    fake.retire("usersRegisteredByFeature", 403);
    fake.retire("userMfaSignInSummary", 404);
    let resp = get(&client, &token, &format!("{base}/v1.0/{AM}/usersRegisteredByFeature(includedUserTypes='all',includedUserRoles='all')")).await?;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.headers().contains_key("request-id"));
    assert!(!resp.headers().contains_key("deprecation"));
    let body: Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
    assert_eq!(
        body["error"]["message"],
        "Insufficient privileges to complete the operation."
    );

    let resp = get(
        &client,
        &token,
        &format!("{base}/beta/{AM}/userMfaSignInSummary"),
    )
    .await?;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "ResourceNotFound");
    assert_eq!(
        body["error"]["message"],
        "Resource not found for the segment 'userMfaSignInSummary'."
    );

    let ok = get(
        &client,
        &token,
        &format!("{base}/v1.0/{AM}/usersRegisteredByMethod()"),
    )
    .await?;
    assert_eq!(ok.status(), StatusCode::OK);
    // Case-sensitive substrings: the legacy report is not counted here.
    get(
        &client,
        &token,
        &format!("{base}/beta/reports/credentialUserRegistrationDetails"),
    )
    .await?;
    get(
        &client,
        &token,
        &format!("{base}/v1.0/{AM}/userRegistrationDetails"),
    )
    .await?;
    assert_eq!(fake.requests("userRegistrationDetails"), 1);
    assert_eq!(fake.requests("RegistrationDetails"), 2);

    let resp = get(&client, &token, &format!("{base}/v1.0/{AM}/noSuchReport")).await?;
    let body: Value = resp.json().await?;
    assert_eq!(
        body["error"]["message"],
        "Resource not found for the segment 'noSuchReport'."
    );
    Ok(())
}

#[tokio::test]
async fn top_sets_the_page_size_and_survives_next_links() -> TestResult {
    let (fake, client) = start(FakeGraphOptions {
        users: 2_500,
        ..quiet()
    })
    .await?;
    let token = token(&fake, &client).await?;
    let base = fake.base_url();
    let first = format!("{base}/v1.0/{AM}/userRegistrationDetails?$top=999");
    let page = get_json(&client, &token, &first).await?;
    assert_eq!(page["value"].as_array().map(Vec::len), Some(999));
    let next = page["@odata.nextLink"].as_str().ok_or("no nextLink")?;
    assert!(
        next.starts_with(&format!(
            "{base}/v1.0/{AM}/userRegistrationDetails?$top=999&$skiptoken="
        )),
        "{next}"
    );
    let (rows, pages) = all_pages(&client, &token, &first).await?;
    assert_eq!((rows.len(), pages), (2_500, 3));
    let upns: HashSet<&str> = rows
        .iter()
        .filter_map(|r| r["userPrincipalName"].as_str())
        .collect();
    assert_eq!(upns.len(), 2_500);

    let capped = get_json(
        &client,
        &token,
        &format!("{base}/beta/{AM}/userRegistrationDetails?%24top=5000"),
    )
    .await?;
    assert_eq!(capped["value"].as_array().map(Vec::len), Some(1000));
    let legacy = get_json(
        &client,
        &token,
        &format!("{base}/beta/reports/credentialUserRegistrationDetails?$top=7"),
    )
    .await?;
    assert_eq!(legacy["value"].as_array().map(Vec::len), Some(7));
    for bad in ["0", "-1", "ten"] {
        let resp = get(
            &client,
            &token,
            &format!("{base}/v1.0/{AM}/userRegistrationDetails?$top={bad}"),
        )
        .await?;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "$top={bad}");
    }
    Ok(())
}

#[tokio::test]
async fn paging_faults_reshape_answers_and_only_whole_pages_list_events() -> TestResult {
    let (fake, client) = start(FakeGraphOptions {
        initial_events: 25,
        page_size: 10,
        max_page_size: 10,
        ..quiet()
    })
    .await?;
    let token = token(&fake, &client).await?;
    let base = fake.base_url();
    let first = format!("{base}/beta/{AM}/userEventsSummary?$top=1000");
    let page_ids = |page: &Value| -> Vec<String> {
        page["value"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| r["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };

    // max_page_size caps $top; the nextLink keeps the $top asked for.
    let normal = get_json(&client, &token, &first).await?;
    assert_eq!(page_ids(&normal).len(), 10);
    let next = normal["@odata.nextLink"].as_str().ok_or("no nextLink")?;
    assert!(next.contains("$top=1000&$skiptoken="), "{next}");
    let listed = fake.listed_usage_events();
    assert_eq!(listed.len(), 10);
    assert!(page_ids(&normal).iter().all(|id| listed.contains(id)));

    fake.inject("userEventsSummary", Fault::NextLinkLoop);
    let looped = get_json(&client, &token, &first).await?;
    assert_eq!(looped["@odata.nextLink"], first.as_str());
    assert_eq!(page_ids(&looped).len(), 10);

    fake.inject("userEventsSummary", Fault::EmptyPageWithNextLink);
    let empty = get_json(&client, &token, next).await?;
    assert_eq!(page_ids(&empty).len(), 0);
    assert!(empty["@odata.nextLink"].is_string());

    fake.inject("userEventsSummary", Fault::EmptyCollection);
    let empty = get_json(&client, &token, next).await?;
    assert_eq!(page_ids(&empty).len(), 0);
    assert!(empty.get("@odata.nextLink").is_none());

    fake.inject("userEventsSummary", Fault::TruncatedBody);
    // Its own connection: the cut leaves it closed.
    let own = Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(fake.ca_pem().as_bytes())?])
        .build()?;
    let resp = get(&own, &token, next).await?;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.is_err(), "the body is cut off");
    assert_eq!(
        fake.listed_usage_events().len(),
        10,
        "nothing listed by faults"
    );

    fake.inject("userEventsSummary", Fault::NoNextLink);
    let short = get_json(&client, &token, next).await?;
    assert_eq!(page_ids(&short).len(), 10);
    assert!(short.get("@odata.nextLink").is_none());
    assert_eq!(fake.listed_usage_events().len(), 20);

    // The legacy report lists the same events.
    let (rows, pages) = all_pages(
        &client,
        &token,
        &format!("{base}/beta/reports/userCredentialUsageDetails"),
    )
    .await?;
    assert_eq!((rows.len(), pages), (25, 3));
    assert_eq!(fake.listed_usage_events().len(), 25);

    // Faults can be dropped before they fire; a retired path can be restored.
    fake.inject("userEventsSummary", Fault::InvalidJson);
    fake.inject("userEventsSummary", Fault::EmptyCollection);
    assert_eq!(fake.queued_faults("userEventsSummary"), 2);
    assert_eq!(fake.queued_faults("userCredentialUsageDetails"), 0);
    assert_eq!(fake.clear_faults(), 2);
    assert_eq!(fake.queued_faults("userEventsSummary"), 0);
    assert_eq!(
        page_ids(&get_json(&client, &token, &first).await?).len(),
        10
    );
    fake.retire("oauth2/v2.0/token", 503);
    let resp = token_response(&fake, &client, fake.client_secret()).await?;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    fake.restore("oauth2/v2.0/token");
    let resp = token_response(&fake, &client, fake.client_secret()).await?;
    assert_eq!(resp.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_bad_row_spoils_the_last_row_which_is_not_listed_and_dates_can_lag() -> TestResult {
    let lag = Duration::from_secs(13 * 24 * 3600);
    let (fake, client) = start(FakeGraphOptions {
        initial_events: 25,
        page_size: 10,
        max_page_size: 10,
        event_time_lag: lag,
        ..quiet()
    })
    .await?;
    let token = token(&fake, &client).await?;
    let base = fake.base_url();
    let first = format!("{base}/beta/{AM}/userEventsSummary?$top=1000");

    fake.inject(
        "userEventsSummary",
        Fault::BadRow {
            field: "isSuccess".into(),
            value: Some(Value::Null),
        },
    );
    let page = get_json(&client, &token, &first).await?;
    let rows = page["value"].as_array().ok_or("no rows")?;
    assert_eq!(rows.len(), 10);
    assert!(rows[..9].iter().all(|r| r["isSuccess"].is_boolean()));
    assert!(rows[9]["isSuccess"].is_null());
    let listed = fake.listed_usage_events();
    assert_eq!(listed.len(), 9, "the spoiled event is not listed");
    assert!(!listed.contains(rows[9]["id"].as_str().ok_or("no id")?));
    assert!(
        page["@odata.nextLink"].is_string(),
        "the page is otherwise whole"
    );

    // Every event is dated 13 days and more before now, and the window lags with it.
    let now = SystemTime::now();
    let (rows, _) = all_pages(&client, &token, &first).await?;
    assert_eq!(rows.len(), 25);
    for row in &rows {
        let text = row["eventDateTime"].as_str().ok_or("no date")?;
        let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)?;
        let age = now.duration_since(SystemTime::from(at))?;
        assert!(age >= lag - Duration::from_secs(1), "{text}");
        assert!(
            age <= lag + data::WINDOW + Duration::from_secs(60),
            "{text}"
        );
    }
    assert_eq!(fake.listed_usage_events().len(), 25);

    // A missing field, in a single document's list.
    fake.inject(
        "usersRegisteredByMethod",
        Fault::BadRow {
            field: "userCount".into(),
            value: None,
        },
    );
    let summary = get_json(
        &client,
        &token,
        &format!("{base}/v1.0/{AM}/usersRegisteredByMethod"),
    )
    .await?;
    let counts = summary["userRegistrationMethodCounts"]
        .as_array()
        .ok_or("no list")?;
    assert!(counts.last().ok_or("empty")?.get("userCount").is_none());
    assert!(counts[0]["userCount"].is_u64());
    Ok(())
}

#[tokio::test]
async fn event_ids_are_unique_to_each_run_users_are_not() -> TestResult {
    let ids = async || -> Result<HashSet<String>, Box<dyn std::error::Error>> {
        let (fake, client) = start(FakeGraphOptions {
            initial_events: 5,
            ..quiet()
        })
        .await?;
        let token = token(&fake, &client).await?;
        let page = get_json(
            &client,
            &token,
            &format!(
                "{}/beta/reports/userCredentialUsageDetails",
                fake.base_url()
            ),
        )
        .await?;
        Ok(page["value"]
            .as_array()
            .ok_or("no value")?
            .iter()
            .filter_map(|r| r["id"].as_str().map(str::to_owned))
            .collect())
    };
    let (a, b) = (ids().await?, ids().await?);
    assert_eq!((a.len(), b.len()), (5, 5));
    assert!(a.is_disjoint(&b));
    Ok(())
}

#[tokio::test]
async fn a_million_users_cost_nothing_until_asked_for() -> TestResult {
    let started = Instant::now();
    let (fake, client) = start(FakeGraphOptions {
        users: 1_000_000,
        ..quiet()
    })
    .await?;
    let start_time = started.elapsed();
    let token = token(&fake, &client).await?;
    // Page 500 of 1001 at $top=999 starts at user 499 * 999.
    let url = format!(
        "{}/v1.0/{AM}/userRegistrationDetails?$top=999&$skiptoken={}",
        fake.base_url(),
        graph::encode_skiptoken(499 * 999)
    );
    let fetched = Instant::now();
    let page = get_json(&client, &token, &url).await?;
    let page_time = fetched.elapsed();
    let rows = page["value"].as_array().ok_or("no value")?;
    assert_eq!(rows.len(), 999);
    assert_eq!(rows[0]["userPrincipalName"], "user498501@demo.contoso.test");
    assert_eq!(
        rows[998]["userPrincipalName"],
        "user499499@demo.contoso.test"
    );
    assert!(
        page["@odata.nextLink"]
            .as_str()
            .is_some_and(|l| l.contains("$top=999"))
    );
    eprintln!("1M-user fake: start {start_time:?}, page 500 (999 rows) {page_time:?}");
    assert!(start_time < Duration::from_secs(3), "{start_time:?}");
    Ok(())
}

/// The one-off costs of a million-user tenant without TLS in the way: the
/// scan behind the tenant-wide counts (about 0.1 s in release, 2 s in debug
/// builds) and building plus encoding one 999-row page. Prints both; see them
/// with `cargo test --release --lib fake::tests::a_million -- --nocapture`.
#[test]
fn a_million_users_count_once_and_page_cheaply() -> TestResult {
    let opts = FakeGraphOptions {
        users: 1_000_000,
        ..quiet()
    };
    let mut sim = data::Simulation::new(&opts, SystemTime::now());
    let started = Instant::now();
    let totals = sim
        .census()
        .select(users::UserTypes::All, users::UserRoles::All);
    let census_time = started.elapsed();
    assert_eq!(totals.users, 1_000_000);
    let share = |n: u64| n as f64 / 1e6;
    assert!(
        (0.5..0.6).contains(&share(totals.sspr_registered)),
        "{totals:?}"
    );
    assert!(
        (0.45..0.55).contains(&share(totals.sspr_capable)),
        "{totals:?}"
    );

    let started = Instant::now();
    let (page, next) = sim.user_page(499 * 999, 999);
    let rows: Vec<users::SuccessorRow> = page.iter().map(|u| u.successor_row(opts.seed)).collect();
    let body = serde_json::to_vec(&rows)?;
    let page_time = started.elapsed();
    assert_eq!(next, Some(500 * 999));
    eprintln!(
        "1M users: census {census_time:?}; 999-row page built and encoded in {page_time:?} ({} bytes)",
        body.len()
    );
    Ok(())
}

/// Fresh census totals, by scanning every user again.
fn rescan(sim: &data::Simulation) -> users::Totals {
    users::Census::scan((0..sim.user_count()).map(|i| sim.user(i)))
        .select(users::UserTypes::All, users::UserRoles::All)
}

#[test]
fn the_registration_campaign_enrols_users_in_steps() {
    let opts = FakeGraphOptions {
        users: 2_000,
        passkey_campaign_per_hour: 0.0,
        ..FakeGraphOptions::default()
    };
    let all = |census: &users::Census| census.select(users::UserTypes::All, users::UserRoles::All);
    let rows = |sim: &data::Simulation| -> Vec<Value> {
        (0..sim.user_count())
            .filter_map(|i| serde_json::to_value(sim.user(i).successor_row(opts.seed)).ok())
            .collect()
    };
    let start = SystemTime::now();
    let mut sim = data::Simulation::new(&opts, start);
    let initial = rows(&sim);
    let before = all(sim.census());
    sim.advance(start + Duration::from_secs(299));
    assert_eq!(
        all(sim.census()),
        before,
        "nothing changes within the first step"
    );

    let hour_later = start + Duration::from_secs(3600);
    sim.advance(hour_later);
    let after = all(sim.census());
    let now = rows(&sim);
    let enrolled: Vec<&Value> = now
        .iter()
        .zip(&initial)
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a)
        .collect();
    assert_eq!(enrolled.len(), 30, "30 per hour");
    for row in &enrolled {
        assert_eq!(
            (&row["isSsprRegistered"], &row["isMfaRegistered"]),
            (&true.into(), &true.into())
        );
    }
    assert!(after.sspr_registered > before.sspr_registered);
    assert!(after.mfa_registered > before.mfa_registered);
    assert_eq!(after, rescan(&sim), "incremental totals == a fresh scan");

    // Same seed and elapsed time, same enrolments.
    let mut twin = data::Simulation::new(&opts, start);
    twin.advance(hour_later);
    assert_eq!(rows(&twin), now);
}

#[tokio::test]
async fn the_authentication_methods_policy_is_one_object_tests_may_replace() -> TestResult {
    let (fake, client) = start(quiet()).await?;
    let token = token(&fake, &client).await?;
    let url = |version: &str| {
        format!(
            "{}/{version}/policies/authenticationMethodsPolicy",
            fake.base_url()
        )
    };
    let policy = get_json(&client, &token, &url("v1.0")).await?;
    assert!(
        policy["@odata.context"]
            .as_str()
            .is_some_and(|c| c.ends_with("$metadata#policies/authenticationMethodsPolicy/$entity"))
    );
    assert!(policy.get("value").is_none() && policy.get("@odata.nextLink").is_none());
    let configurations = policy["authenticationMethodConfigurations"]
        .as_array()
        .ok_or("no configurations")?;
    let state = |id: &str| {
        configurations
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["state"].clone())
    };
    // The demo's story: SMS on, voice off, the campaign on, one method newer than the docs.
    assert_eq!(state("Sms"), Some("enabled".into()));
    assert_eq!(state("Voice"), Some("disabled".into()));
    assert_eq!(state("QRCodePin"), Some("disabled".into()));
    assert_eq!(
        policy["registrationEnforcement"]["authenticationMethodsRegistrationCampaign"]["state"],
        "enabled"
    );
    // Groups scope methods by their real ids; the helpdesk may sign in with SMS.
    let sms = configurations
        .iter()
        .find(|c| c["id"] == "Sms")
        .ok_or("no Sms")?;
    let helpdesk = &fake.groups()[3];
    assert_eq!(helpdesk.name, "helpdesk");
    assert!(
        sms["includeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["id"] == helpdesk.id.as_str() && t["isUsableForSignIn"] == true)
    );
    assert_eq!(get_json(&client, &token, &url("beta")).await?, {
        let mut beta = policy.clone();
        beta["@odata.context"] = policy["@odata.context"]
            .as_str()
            .map(|c| c.replace("/v1.0/", "/beta/"))
            .into();
        beta
    });

    fake.set_policy(serde_json::json!({"policyMigrationState": "migrationComplete"}));
    let replaced = get_json(&client, &token, &url("v1.0")).await?;
    assert_eq!(replaced["policyMigrationState"], "migrationComplete");
    assert!(replaced.get("authenticationMethodConfigurations").is_none());

    let other = format!(
        "{}/v1.0/policies/conditionalAccessPolicies",
        fake.base_url()
    );
    assert_eq!(
        get(&client, &token, &other).await?.status(),
        StatusCode::BAD_REQUEST
    );
    Ok(())
}

#[test]
fn the_passkey_campaign_moves_phone_only_users_to_passkeys() {
    let opts = FakeGraphOptions {
        users: 2_000,
        passkey_campaign_per_hour: 60.0,
        ..FakeGraphOptions::default()
    };
    let rows = |sim: &data::Simulation| -> Vec<Value> {
        (0..sim.user_count())
            .filter_map(|i| serde_json::to_value(sim.user(i).successor_row(opts.seed)).ok())
            .collect()
    };
    let phone_only = |sim: &data::Simulation| {
        (0..sim.user_count())
            .filter(|i| sim.user(*i).phone_only())
            .count()
    };
    let start = SystemTime::now();
    let mut sim = data::Simulation::new(&opts, start);
    let before = phone_only(&sim);
    assert!(before > 200, "{before} phone-only users");
    sim.advance(start + Duration::from_secs(59));
    assert_eq!(phone_only(&sim), before, "nothing before the first step");
    sim.advance(start + Duration::from_secs(60));
    assert_eq!(phone_only(&sim), before - 1, "one user a minute");

    // The registration campaign runs beside it: after an hour it has enrolled 30 users (who
    // then have the Authenticator app), and the passkey campaign has moved 60.
    let initial = rows(&data::Simulation::new(&opts, start));
    let hour_later = start + Duration::from_secs(3600);
    sim.advance(hour_later);
    let now = rows(&sim);
    let with_passkey: Vec<&Value> = now
        .iter()
        .zip(&initial)
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a)
        .filter(|row| {
            row["methodsRegistered"]
                .as_array()
                .is_some_and(|m| m.contains(&"passKeyDeviceBound".into()))
        })
        .collect();
    assert!(with_passkey.len() >= 60, "{}", with_passkey.len());
    for row in &with_passkey {
        let methods = row["methodsRegistered"].as_array().unwrap();
        assert!(
            methods.contains(&"microsoftAuthenticatorPush".into()),
            "{row}"
        );
        assert_eq!(row["isMfaRegistered"], true);
    }
    assert!(
        phone_only(&sim) <= before - 60,
        "{} of {before}",
        phone_only(&sim)
    );
    assert_eq!(
        sim.census()
            .select(users::UserTypes::All, users::UserRoles::All),
        rescan(&sim),
        "incremental totals == a fresh scan"
    );

    // The users depend on seed and elapsed time only, not on when Graph was asked.
    let mut twin = data::Simulation::new(&opts, start);
    for minutes in (7..60).step_by(7) {
        twin.advance(start + Duration::from_secs(minutes * 60));
    }
    twin.advance(hour_later);
    assert_eq!(rows(&twin), now);

    // The demo's 250 users keep its campaign busy for hours; a week later it has moved them
    // all, and its steps, out of candidates, cost no more than before.
    let demo = FakeGraphOptions::default();
    let mut demo_sim = data::Simulation::new(&demo, start);
    let demo_phone_only = phone_only(&demo_sim);
    assert!(
        demo_phone_only as f64 > 3.0 * demo.passkey_campaign_per_hour,
        "{demo_phone_only}"
    );
    demo_sim.advance(start + Duration::from_secs(7 * 24 * 3600));
    assert_eq!(phone_only(&demo_sim), 0);
}

#[test]
fn the_spike_scenario_floods_reset_failures_for_ten_minutes() -> TestResult {
    let start = SystemTime::now();
    let opts = |scenario| FakeGraphOptions {
        initial_events: 0,
        registration_drift_per_hour: 0.0,
        scenario,
        ..FakeGraphOptions::default()
    };
    // (reset failures, of them with the dominant reason) between `from` and `to` after start.
    let failures = |sim: &data::Simulation,
                    from: u64,
                    to: u64|
     -> Result<(u64, u64), Box<dyn std::error::Error>> {
        let at = |s| start + Duration::from_secs(s);
        let page = sim.event_page(0, usize::MAX, true);
        let mut counts = (0, 0);
        for row in serde_json::to_value(page.rows)?
            .as_array()
            .ok_or("not an array")?
        {
            let t = row["eventDateTime"].as_str().ok_or("no time")?;
            let in_range =
                t >= wire::rfc3339(at(from)).as_str() && t < wire::rfc3339(at(to)).as_str();
            if in_range && row["feature"] == "reset" && row["isSuccess"] == false {
                counts.0 += 1;
                counts.1 += u64::from(
                    row["failureReason"]
                        .as_str()
                        .is_some_and(|r| r.contains("incorrect verification code")),
                );
            }
        }
        Ok(counts)
    };
    let mut steady = data::Simulation::new(&opts(Scenario::Steady), start);
    let mut spike = data::Simulation::new(&opts(Scenario::Spike), start);
    let end = start + Duration::from_secs(1800);
    steady.advance(end);
    spike.advance(end);
    let (normal, _) = failures(&steady, 61, 659)?;
    let (flood, dominant) = failures(&spike, 61, 659)?;
    // Steady: 6/min x 0.14 ~ 8 in 10 min; the spike adds ~19 times that.
    assert!(flood > 8 * normal.max(5), "steady {normal}, spike {flood}");
    assert!(dominant * 10 > flood * 8, "{dominant} of {flood}");
    assert_eq!(failures(&spike, 0, 59)?, failures(&steady, 0, 59)?);
    assert_eq!(failures(&spike, 661, 1800)?, failures(&steady, 661, 1800)?);
    Ok(())
}

#[tokio::test]
async fn group_members_are_transitive_paged_and_deleted_groups_are_not_found() -> TestResult {
    let (fake, client) = start(quiet()).await?;
    let token = token(&fake, &client).await?;
    let base = fake.base_url();
    let (users, _) = all_pages(
        &client,
        &token,
        &format!("{base}/v1.0/{AM}/userRegistrationDetails"),
    )
    .await?;
    let members = |group: &FakeGroup, top: usize| {
        format!(
            "{base}/v1.0/groups/{}/transitiveMembers/microsoft.graph.user?$select=id&$top={top}",
            group.id
        )
    };
    let groups = fake.groups().to_vec();
    let by_name = |name: &str| {
        groups
            .iter()
            .find(|g| g.name == name)
            .ok_or(name.to_owned())
    };

    // The pilot (users 0..30) nests wave 2 (users 20..50): 50 users, each listed once.
    let pilot = by_name("fido2-pilot")?;
    let (rows, pages) = all_pages(&client, &token, &members(pilot, 7)).await?;
    assert_eq!((rows.len(), pages), (50, 8));
    let ids: Vec<&str> = rows.iter().filter_map(|r| r["id"].as_str()).collect();
    let expected: Vec<&str> = users[..50]
        .iter()
        .filter_map(|u| u["id"].as_str())
        .collect();
    assert_eq!(ids, expected);
    assert!(
        rows.iter()
            .all(|r| r.as_object().is_some_and(|o| o.len() == 1))
    );
    let (wave, _) = all_pages(
        &client,
        &token,
        &members(by_name("fido2-pilot-wave-2")?, 999),
    )
    .await?;
    assert_eq!(wave.len(), 30);
    // beta serves the same list.
    let beta = get_json(
        &client,
        &token,
        &members(pilot, 999).replace("/v1.0/", "/beta/"),
    )
    .await?;
    assert_eq!(beta["value"].as_array().map(Vec::len), Some(50));

    // A deleted group and an id the tenant never had are 404, as Graph answers them.
    let deleted = groups
        .iter()
        .find(|g| g.deleted)
        .ok_or("no deleted group")?;
    for url in [
        members(deleted, 999),
        format!(
            "{base}/v1.0/groups/00000000-0000-4000-8000-000000000000/transitiveMembers/microsoft.graph.user"
        ),
    ] {
        let resp = get(&client, &token, &url).await?;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{url}");
        let body: Value = resp.json().await?;
        assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
    }
    let resp = get(
        &client,
        &token,
        &format!("{base}/v1.0/groups/{}/owners", pilot.id),
    )
    .await?;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(fake.requests("transitiveMembers"), 8 + 1 + 1 + 2);
    Ok(())
}

/// A token of `tenant` from the token endpoint.
async fn tenant_token(
    fake: &FakeGraph,
    client: &Client,
    tenant: &str,
) -> Result<Response, Box<dyn std::error::Error>> {
    let scope = format!("{}/.default", fake.base_url());
    Ok(client
        .post(format!("{}/{tenant}/oauth2/v2.0/token", fake.base_url()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "client_credentials"),
            ("client_id", fake.client_id()),
            ("client_secret", fake.client_secret()),
            ("scope", &scope),
        ]))
        .send()
        .await?)
}

#[tokio::test]
async fn each_tenant_has_its_own_data_tokens_faults_and_log() -> TestResult {
    let (fake, client) = start(FakeGraphOptions {
        tenants: 3,
        record_requests: true,
        ..quiet()
    })
    .await?;
    let ids = fake.tenant_ids().to_vec();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], fake.tenant_id());
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 3);
    let unknown = tenant_token(&fake, &client, "99999999-9999-4999-8999-999999999999").await?;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);

    let details = format!(
        "{}/v1.0/reports/authenticationMethods/userRegistrationDetails?$top=1",
        fake.base_url()
    );
    let mut first_users = Vec::new();
    let mut tokens = Vec::new();
    for id in &ids {
        let body: Value = tenant_token(&fake, &client, id).await?.json().await?;
        let token = body["access_token"].as_str().ok_or("no token")?.to_owned();
        let page: Value = get(&client, &token, &details).await?.json().await?;
        first_users.push(page["value"][0]["id"].as_str().ok_or("no user")?.to_owned());
        tokens.push(token);
    }
    // Each tenant's own users: a token reads the tenant it was issued in.
    assert_eq!(first_users.iter().collect::<HashSet<_>>().len(), 3);

    // A fault and a retirement for the second tenant touch no other.
    fake.inject_for(
        &ids[1],
        "userRegistrationDetails",
        Fault::Status {
            code: 429,
            retry_after: Some("3".into()),
            body: String::new(),
        },
    );
    fake.retire_for(&ids[2], "userRegistrationDetails", 403);
    let mut statuses = Vec::new();
    for tenant in [0, 1, 2, 1] {
        statuses.push(
            get(&client, &tokens[tenant], &details)
                .await?
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 429, 403, 200]);

    let log = fake.request_log();
    let graph: Vec<(Option<&str>, u16)> = log
        .iter()
        .filter(|r| r.target.contains("userRegistrationDetails"))
        .map(|r| (r.tenant.as_deref(), r.status))
        .collect();
    assert_eq!(graph.len(), 7);
    assert!(graph.contains(&(Some(ids[1].as_str()), 429)));
    assert!(graph.contains(&(Some(ids[2].as_str()), 403)));
    assert!(log.windows(2).all(|pair| pair[0].at <= pair[1].at));
    let refused = log
        .iter()
        .find(|r| r.target.contains("99999999"))
        .ok_or("token log")?;
    assert_eq!((refused.tenant.as_deref(), refused.status), (None, 401));
    Ok(())
}
