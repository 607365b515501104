//! Sharding: three replicas with the same configuration split the tenants between them, every
//! tenant polled by exactly one, with no coordination; `--shard=auto` takes the shard from the
//! StatefulSet pod name. The real binary against the fake's tenants over TLS.

use crate::common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{
    Exporter, ca_file, command_for, fake, fake_tenants, quiet, samples, tenants_config, value,
};
use entra_authmethods_exporter::shard;
use entra_fake_graph::FakeGraphOptions;

const TOTAL: u32 = 3;
const TENANTS: usize = 9;

/// The tenants an exporter polls, by their report series, checked against what it says of
/// itself: its shard and its number of tenants.
async fn polled_tenants(exporter: &Exporter, shard: u32) -> BTreeSet<String> {
    exporter.wait_ready().await;
    let text = exporter.metrics().await;
    let info = format!(r#"entra_exporter_shard_info{{shard="{shard}",total_shards="{TOTAL}"}}"#);
    assert_eq!(value(&text, &info), Some(1.0), "{text}");
    let tenants = |family: &str| -> BTreeSet<String> {
        samples(&text, family)
            .into_iter()
            .map(|(labels, _)| labels["tenant"].clone())
            .collect()
    };
    let polled = tenants("entra_exporter_report_up");
    assert_eq!(tenants("entra_exporter_credential_up"), polled, "{text}");
    assert_eq!(
        value(&text, "entra_exporter_shard_tenants"),
        Some(polled.len() as f64),
        "{text}"
    );
    polled
}

#[tokio::test(flavor = "multi_thread")]
async fn every_tenant_is_polled_by_exactly_one_of_three_shards() {
    let fake = fake(FakeGraphOptions {
        tenants: TENANTS,
        ..quiet()
    })
    .await;
    let names: Vec<String> = (0..TENANTS).map(|i| format!("customer-{i}")).collect();
    // The same file for every replica.
    let config = tenants_config(
        &fake,
        &fake_tenants(&fake, &names),
        &["credentialUserRegistrationCount"],
    );
    let config_flag = format!("--config.file={}", config.path().display());

    let mut shards = Vec::new();
    for index in 0..TOTAL {
        let exporter = Exporter::start(
            &fake,
            &[
                &config_flag,
                &format!("--total-shards={TOTAL}"),
                &format!("--shard={index}"),
            ],
        )
        .await;
        shards.push(polled_tenants(&exporter, index).await);
    }
    let mut all = BTreeSet::new();
    for (index, tenants) in shards.iter().enumerate() {
        for tenant in tenants {
            assert!(all.insert(tenant.clone()), "{tenant} is on two shards");
            assert_eq!(shard::owner(tenant, TOTAL), index as u32, "{tenant}");
        }
    }
    let expected: BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(all, expected, "every tenant on a shard");
    assert!(
        shards.iter().filter(|s| !s.is_empty()).count() > 1,
        "the tenants are spread: {shards:?}"
    );
    // Each tenant got its tokens from one replica only.
    assert_eq!(fake.tokens_issued(), TENANTS);

    // A StatefulSet pod finds its shard in its name.
    let ca = ca_file(&fake);
    let mut command = command_for(&fake, &ca);
    command
        .env("POD_NAME", "entra-authmethods-exporter-1")
        .args([&config_flag, "--total-shards=3", "--shard=auto"]);
    let auto = Exporter::spawn(command, vec![ca]).await;
    assert_eq!(polled_tenants(&auto, 1).await, shards[1]);
}

#[test]
fn shard_mistakes_are_one_line_errors() {
    // (POD_NAME, flags, what the error says, whether the exporter logs it: clap prints usage)
    for (pod_name, args, needle, logged) in [
        (
            None,
            vec!["--total-shards=3", "--shard=3"],
            "out of range",
            true,
        ),
        (None, vec!["--shard=1"], "--total-shards", false),
        (
            Some("entra-authmethods-exporter"),
            vec!["--total-shards=3", "--shard=auto"],
            "does not end in -NUMBER",
            true,
        ),
    ] {
        let mut command = Command::new(common::BIN);
        command.env_clear().arg("--demo").args(&args);
        if let Some(name) = pod_name {
            command.env("POD_NAME", name);
        }
        let output = command.output().expect("exporter runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_ne!(output.status.code(), Some(0), "{args:?}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        let errors = stderr.lines().filter(|l| l.contains("level=error")).count();
        assert_eq!(errors, usize::from(logged), "{args:?}: {stderr}");
    }
}
