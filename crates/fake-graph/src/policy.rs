//! The tenant's authentication methods policy (`/policies/authenticationMethodsPolicy`), as a
//! tenant looks three months before Microsoft-provided SMS and voice retire: SMS still enabled
//! for everyone (and as a sign-in method for the helpdesk), voice switched off, the
//! registration campaign on and pushing passkeys, the migration from the legacy MFA and SSPR
//! policies under way. It lists the method configurations Graph documents and one, `QRCodePin`,
//! that is newer than the exporter's documentation, with a type nobody has declared.

use serde_json::{Value, json};

use crate::groups::FakeGroup;

/// The policy's `lastModifiedDateTime`: the day Microsoft auto-enabled passkeys and set the
/// registration campaign to Microsoft managed.
const LAST_MODIFIED: &str = "2026-09-01T08:15:27.1234567Z";

/// Every user, as an include target.
fn all_users() -> Value {
    json!({"targetType": "group", "id": "all_users", "isRegistrationRequired": false})
}

/// An include or exclude target for the group of `groups` at `index`, if there is one.
fn group(groups: &[FakeGroup], index: usize) -> Option<Value> {
    groups
        .iter()
        .filter(|g| !g.deleted)
        .nth(index)
        .map(|g| json!({"targetType": "group", "id": g.id, "isRegistrationRequired": false}))
}

/// The demo's policy. Groups, where the tenant has them, scope some methods: the first one (the
/// demo's FIDO2 pilot) is excluded from SMS, the third (finance) gets software OATH tokens, the
/// last one (the helpdesk) SMS sign-in and Temporary Access Passes.
pub(crate) fn demo_policy(groups: &[FakeGroup]) -> Value {
    let live = groups.iter().filter(|g| !g.deleted).count();
    let first = group(groups, 0);
    let third = group(groups, 2);
    let last = live.checked_sub(1).and_then(|i| group(groups, i));
    let mut sms_sign_in = last.clone();
    if let Some(Value::Object(target)) = &mut sms_sign_in {
        target.insert("isUsableForSignIn".into(), Value::Bool(true));
    }
    let mut sms_everyone = all_users();
    if let Value::Object(target) = &mut sms_everyone {
        target.insert("isUsableForSignIn".into(), Value::Bool(false));
    }
    let configuration = |odata_type: &str, id: &str, state: &str, include: Vec<Value>| {
        json!({
            "@odata.type": format!("#microsoft.graph.{odata_type}"),
            "id": id,
            "state": state,
            "includeTargets": include,
            "excludeTargets": [],
        })
    };
    let mut sms = configuration(
        "smsAuthenticationMethodConfiguration",
        "Sms",
        "enabled",
        std::iter::once(sms_everyone).chain(sms_sign_in).collect(),
    );
    sms["excludeTargets"] = Value::Array(first.into_iter().collect());
    let mut voice = configuration(
        "voiceAuthenticationMethodConfiguration",
        "Voice",
        "disabled",
        vec![all_users()],
    );
    voice["isOfficePhoneAllowed"] = Value::Bool(false);
    let mut fido2 = configuration(
        "fido2AuthenticationMethodConfiguration",
        "Fido2",
        "enabled",
        vec![all_users()],
    );
    fido2["isAttestationEnforced"] = Value::Bool(false);
    fido2["isSelfServiceRegistrationAllowed"] = Value::Bool(true);
    let mut tap = configuration(
        "temporaryAccessPassAuthenticationMethodConfiguration",
        "TemporaryAccessPass",
        "enabled",
        last.into_iter().collect(),
    );
    tap["defaultLifetimeInMinutes"] = json!(60);
    tap["isUsableOnce"] = Value::Bool(false);
    json!({
        "id": "authenticationMethodsPolicy",
        "displayName": "Authentication Methods Policy",
        "description": "The tenant-wide policy that controls which authentication methods are allowed in the tenant, authentication method registration requirements, and self-service password reset settings",
        "lastModifiedDateTime": LAST_MODIFIED,
        "policyVersion": "1.5",
        "reconfirmationInDays": 0,
        "policyMigrationState": "migrationInProgress",
        "registrationEnforcement": {
            "authenticationMethodsRegistrationCampaign": {
                "snoozeDurationInDays": 1,
                "enforceRegistrationAfterAllowedSnoozes": true,
                "state": "enabled",
                "excludeTargets": [],
                "includeTargets": [{"id": "all_users", "targetType": "group", "targetedAuthenticationMethod": "Fido2"}],
            },
        },
        "systemCredentialPreferences": {
            "state": "default",
            "excludeTargets": [],
            "includeTargets": [{"id": "all_users", "targetType": "group"}],
        },
        "reportSuspiciousActivitySettings": {
            "state": "default",
            "voiceReportingCode": 0,
            "includeTarget": {"targetType": "group", "id": "all_users"},
        },
        "authenticationMethodConfigurations": [
            fido2,
            configuration(
                "microsoftAuthenticatorAuthenticationMethodConfiguration",
                "MicrosoftAuthenticator",
                "enabled",
                vec![all_users()],
            ),
            sms,
            voice,
            configuration("emailAuthenticationMethodConfiguration", "Email", "enabled", vec![all_users()]),
            configuration(
                "softwareOathAuthenticationMethodConfiguration",
                "SoftwareOath",
                "enabled",
                third.into_iter().collect(),
            ),
            tap,
            configuration(
                "x509CertificateAuthenticationMethodConfiguration",
                "X509Certificate",
                "disabled",
                vec![all_users()],
            ),
            configuration("hardwareOathAuthenticationMethodConfiguration", "HardwareOath", "disabled", Vec::new()),
            configuration("qrCodePinAuthenticationMethodConfiguration", "QRCodePin", "disabled", Vec::new()),
        ],
    })
}
