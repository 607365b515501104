//! Simulated users. A user is a pure function of `(seed, index, start time)`,
//! so a tenant of any size costs no memory: pages generate just their rows and
//! only registration-campaign changes (see `Simulation`) are stored. Both the
//! legacy and the successor rows derive from the same [`User`], which keeps
//! every report consistent with every other.

use std::time::{Duration, SystemTime};

use rand::Rng;
use serde::Serialize;

use crate::seeded::{SplitMix, mix, pick, uuid_like};
use crate::wire::{rfc3339_precise, visible};

const STREAM_USER_ID: u64 = 1;
const STREAM_USER_RNG: u64 = 6;

// Legacy registrationAuthMethod members, as bits of `User::legacy`.
const L_EMAIL: u16 = 1 << 0;
const L_MOBILE_PHONE: u16 = 1 << 1;
const L_OFFICE_PHONE: u16 = 1 << 2;
const L_SECURITY_QUESTION: u16 = 1 << 3;
const L_APP_NOTIFICATION: u16 = 1 << 4;
const L_APP_CODE: u16 = 1 << 5;
const L_ALTERNATE_MOBILE_PHONE: u16 = 1 << 6;
const L_FIDO: u16 = 1 << 7;
const L_APP_PASSWORD: u16 = 1 << 8;
const L_EXTERNAL: u16 = 1 << 9;

// Successor `methodsRegistered` strings (an open set in Graph), as bits.
const PASSWORD: u16 = 1 << 0;
const EMAIL: u16 = 1 << 1;
const MOBILE_PHONE: u16 = 1 << 2;
const OFFICE_PHONE: u16 = 1 << 3;
const ALTERNATE_MOBILE_PHONE: u16 = 1 << 4;
const SECURITY_QUESTION: u16 = 1 << 5;
const AUTHENTICATOR_PUSH: u16 = 1 << 6;
const SOFTWARE_OTP: u16 = 1 << 7;
const FIDO2: u16 = 1 << 8;
const WINDOWS_HELLO: u16 = 1 << 9;
const PASSKEY: u16 = 1 << 10;
const EXTERNAL: u16 = 1 << 11;
const AUTHENTICATOR_PASSWORDLESS: u16 = 1 << 12;
/// A method newer than any strength table: it shows how the exporter treats unknown methods.
const QR_CODE: u16 = 1 << 13;

/// Legacy members in enum order, their names and their successor spelling.
/// App passwords are no authentication method in the successor reports.
const LEGACY_METHODS: [(u16, &str, u16); 10] = [
    (L_EMAIL, "email", EMAIL),
    (L_MOBILE_PHONE, "mobilePhone", MOBILE_PHONE),
    (L_OFFICE_PHONE, "officePhone", OFFICE_PHONE),
    (L_SECURITY_QUESTION, "securityQuestion", SECURITY_QUESTION),
    (L_APP_NOTIFICATION, "appNotification", AUTHENTICATOR_PUSH),
    (L_APP_CODE, "appCode", SOFTWARE_OTP),
    (
        L_ALTERNATE_MOBILE_PHONE,
        "alternateMobilePhone",
        ALTERNATE_MOBILE_PHONE,
    ),
    (L_FIDO, "fido", FIDO2),
    (L_APP_PASSWORD, "appPassword", 0),
    (L_EXTERNAL, "externalAuthMethod", EXTERNAL),
];
/// Evolvable registrationAuthMethod members (after `unknownFutureValue`).
const REGISTRATION_EVOLVABLE: &[&str] = &["externalAuthMethod"];

/// Successor method strings in the order the method summary lists them.
const SUCCESSOR_METHODS: [(u16, &str); 14] = [
    (PASSWORD, "password"),
    (EMAIL, "email"),
    (MOBILE_PHONE, "mobilePhone"),
    (OFFICE_PHONE, "officePhone"),
    (ALTERNATE_MOBILE_PHONE, "alternateMobilePhone"),
    (SECURITY_QUESTION, "securityQuestion"),
    (AUTHENTICATOR_PUSH, "microsoftAuthenticatorPush"),
    (SOFTWARE_OTP, "softwareOneTimePasscode"),
    (FIDO2, "fido2SecurityKey"),
    (WINDOWS_HELLO, "windowsHelloForBusiness"),
    (PASSKEY, "passKeyDeviceBound"),
    (EXTERNAL, "externalAuthMethod"),
    (
        AUTHENTICATOR_PASSWORDLESS,
        "microsoftAuthenticatorPasswordless",
    ),
    (QR_CODE, "qrCode"),
];
const PASSWORDLESS: u16 = FIDO2 | WINDOWS_HELLO | PASSKEY | AUTHENTICATOR_PASSWORDLESS;
/// The phone methods: SMS and voice calls.
const PHONES: u16 = MOBILE_PHONE | OFFICE_PHONE | ALTERNATE_MOBILE_PHONE;
/// Methods of a stronger strength class than a phone.
const STRONGER_THAN_PHONE: u16 = PASSWORDLESS | AUTHENTICATOR_PUSH | SOFTWARE_OTP | EXTERNAL;
/// SSPR methods that need no phone network.
const SSPR_WITHOUT_PHONE: u16 =
    EMAIL | SECURITY_QUESTION | AUTHENTICATOR_PUSH | SOFTWARE_OTP | AUTHENTICATOR_PASSWORDLESS;

/// registrationAuthMethod members with rough real-world popularity.
const REGISTRATION_WEIGHTS: &[(u16, u32)] = &[
    (L_APP_NOTIFICATION, 30),
    (L_MOBILE_PHONE, 28),
    (L_EMAIL, 22),
    (L_APP_CODE, 12),
    (L_SECURITY_QUESTION, 5),
    (L_FIDO, 4),
    (L_OFFICE_PHONE, 3),
    (L_ALTERNATE_MOBILE_PHONE, 3),
    (L_APP_PASSWORD, 1),
];
/// Methods a user who registered for MFA only (not SSPR) would have.
const MFA_ONLY_WEIGHTS: &[(u16, u32)] = &[
    (L_APP_NOTIFICATION, 50),
    (L_APP_CODE, 20),
    (L_MOBILE_PHONE, 25),
    (L_FIDO, 5),
];
/// What a registration-campaign enrolment adds: the Authenticator app and a phone.
const CAMPAIGN_METHODS: u16 = L_APP_NOTIFICATION | L_MOBILE_PHONE;
/// What the passkey campaign adds: a passkey in Microsoft Authenticator, which registers the
/// app (and so its push notifications) too.
const PASSKEY_CAMPAIGN_LEGACY: u16 = L_APP_NOTIFICATION;
const PASSKEY_CAMPAIGN_NEWER: u16 = PASSKEY;

/// Quirks of `userPreferredMethodForSecondaryAuthentication` seen in the wild.
#[derive(Clone, Copy)]
enum Preferred {
    Derived,
    Empty,
    Null,
}

/// One simulated user; [`User::generate`] is deterministic per index.
#[derive(Clone, Copy)]
pub(crate) struct User {
    index: usize,
    /// Legacy registrationAuthMethod bits (`L_*`).
    legacy: u16,
    /// Successor-only methods (`WINDOWS_HELLO`, `PASSKEY`, ...) the legacy
    /// enum cannot name.
    newer: u16,
    is_registered: bool,
    is_enabled: bool,
    is_capable: bool,
    is_mfa_registered: bool,
    /// Whether policy lets the user do MFA once registered.
    mfa_allowed: bool,
    is_guest: Option<bool>,
    is_admin: Option<bool>,
    /// Graph sometimes returns `methodsRegistered: null`.
    methods_null: bool,
    system_preferred: Option<bool>,
    prefers_voice: bool,
    preferred: Preferred,
    last_updated: SystemTime,
}

impl User {
    /// The user at `index` as of `started`; `started` anchors
    /// `lastUpdatedDateTime` a few hours back, like Graph's lagging data.
    pub(crate) fn generate(seed: u64, index: usize, started: SystemTime) -> Self {
        let mut rng = SplitMix(mix(seed, STREAM_USER_RNG, index as u64));
        let rng = &mut rng;
        // Correlated draws give roughly 70% enabled, 55% registered,
        // 50% capable and 60% MFA registered, with capable = enabled && registered.
        let is_enabled = rng.random_bool(0.7);
        let is_registered = rng.random_bool(if is_enabled { 0.72 } else { 0.15 });
        let is_mfa_registered = rng.random_bool(if is_registered { 0.85 } else { 0.29 });
        let mut legacy = 0;
        if is_registered {
            for _ in 0..rng.random_range(1..=3) {
                legacy |= pick(rng, REGISTRATION_WEIGHTS);
            }
        } else if is_mfa_registered {
            legacy |= pick(rng, MFA_ONLY_WEIGHTS);
        }
        if legacy != 0 && rng.random_bool(0.03) {
            legacy |= L_EXTERNAL;
        }
        let mut newer = 0;
        if is_mfa_registered && rng.random_bool(0.12) {
            newer |= WINDOWS_HELLO;
        }
        if is_mfa_registered && rng.random_bool(0.05) {
            newer |= PASSKEY;
        }
        let is_guest = match rng.random_range(0..100) {
            0 => None,
            1..=9 => Some(true),
            _ => Some(false),
        };
        let is_admin = match rng.random_range(0..200) {
            0 => None,
            1..=6 => Some(true),
            _ => Some(false),
        };
        let system_preferred = match rng.random_range(0..100) {
            0..=4 => None,
            5..=29 => Some(false),
            _ => Some(true),
        };
        let preferred = match rng.random_range(0..100) {
            0 => Preferred::Null,
            1 => Preferred::Empty,
            _ => Preferred::Derived,
        };
        let ago = Duration::from_secs(rng.random_range(3600..6 * 3600));
        // Graph writes 7 fractional digits when there are any; some rows have none.
        let ticks = if rng.random_bool(0.6) {
            Duration::from_nanos(rng.random_range(1..10_000_000) * 100)
        } else {
            Duration::ZERO
        };
        let whole_second = started
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .and_then(|d| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(d.as_secs())))
            .unwrap_or(started);
        let last_updated = whole_second
            .checked_sub(ago)
            .and_then(|t| t.checked_sub(ticks))
            .unwrap_or(whole_second);
        let mut user = User {
            index,
            legacy,
            newer,
            is_registered,
            is_enabled,
            is_capable: is_enabled && is_registered,
            is_mfa_registered,
            mfa_allowed: rng.random_bool(0.97),
            is_guest,
            is_admin,
            methods_null: rng.random_bool(0.005),
            system_preferred,
            prefers_voice: rng.random_bool(0.2),
            preferred,
            last_updated,
        };
        // Later additions draw last, so a seed keeps giving the same users otherwise. Every
        // strength class gets users: Authenticator passwordless sign-in for some MFA users,
        // and admins who are often (not always) given a FIDO2 key.
        if is_mfa_registered && rng.random_bool(0.08) {
            user.newer |= AUTHENTICATOR_PASSWORDLESS;
        }
        if is_admin == Some(true) && is_mfa_registered && rng.random_bool(0.45) {
            user.legacy |= L_FIDO;
        }
        if rng.random_bool(0.01) {
            user.newer |= QR_CODE;
        }
        user
    }

    /// Whether a registration campaign still has something to sell this user.
    pub(crate) fn needs_enrolment(&self) -> bool {
        !(self.is_registered && self.is_mfa_registered)
    }

    /// The user after registering the campaign's methods at `at`.
    pub(crate) fn enrolled(mut self, at: SystemTime) -> Self {
        self.legacy |= CAMPAIGN_METHODS;
        self.is_registered = true;
        self.is_mfa_registered = true;
        self.is_capable = self.is_enabled;
        self.methods_null = false;
        self.last_updated = at;
        self
    }

    /// Whether the user has only a phone left once SMS and voice retire: a phone is their
    /// strongest MFA method, or their only way to reset a password.
    pub(crate) fn phone_only(&self) -> bool {
        let methods = self.methods();
        let phone = methods & PHONES != 0;
        let mfa = methods & STRONGER_THAN_PHONE == 0;
        let sspr = self.is_registered && methods & SSPR_WITHOUT_PHONE == 0;
        phone && (mfa || sspr)
    }

    /// The user after registering the passkey campaign's methods at `at`.
    pub(crate) fn with_passkey(mut self, at: SystemTime) -> Self {
        self.legacy |= PASSKEY_CAMPAIGN_LEGACY;
        self.newer |= PASSKEY_CAMPAIGN_NEWER;
        self.is_mfa_registered = true;
        self.methods_null = false;
        self.last_updated = self.last_updated.max(at);
        self
    }

    fn methods(&self) -> u16 {
        LEGACY_METHODS
            .iter()
            .filter(|(bit, _, _)| self.legacy & bit != 0)
            .fold(PASSWORD | self.newer, |acc, (_, _, successor)| {
                acc | successor
            })
    }

    fn is_mfa_capable(&self) -> bool {
        self.is_mfa_registered && self.mfa_allowed
    }

    fn is_passwordless_capable(&self) -> bool {
        self.methods() & PASSWORDLESS != 0
    }

    /// `methodsRegistered` bits, or 0 where Graph would send `null`.
    fn reported_methods(&self) -> u16 {
        if self.methods_null { 0 } else { self.methods() }
    }

    pub(crate) fn legacy_row(&self, seed: u64, include_unknown: bool) -> LegacyRow {
        LegacyRow {
            id: user_id(seed, self.index),
            user_principal_name: user_principal_name(self.index),
            user_display_name: user_display_name(self.index),
            auth_methods: LEGACY_METHODS
                .iter()
                .filter(|(bit, _, _)| self.legacy & bit != 0)
                .map(|(_, name, _)| visible(name, REGISTRATION_EVOLVABLE, include_unknown))
                .collect(),
            is_registered: self.is_registered,
            is_enabled: self.is_enabled,
            is_capable: self.is_capable,
            is_mfa_registered: self.is_mfa_registered,
        }
    }

    pub(crate) fn successor_row(&self, seed: u64) -> SuccessorRow {
        let methods = self.methods();
        // Only MFA-registered users have a usable second factor to prefer.
        let strong = if self.is_mfa_registered { methods } else { 0 };
        let system_preferred = self.system_preferred.map(|enabled| {
            if !enabled {
                Vec::new()
            } else if strong & FIDO2 != 0 {
                vec!["Fido2"]
            } else if strong & AUTHENTICATOR_PUSH != 0 {
                vec!["push"]
            } else if strong & SOFTWARE_OTP != 0 {
                vec!["oath"]
            } else if strong & MOBILE_PHONE != 0 {
                vec!["sms"]
            } else {
                Vec::new()
            }
        });
        let preferred = match self.preferred {
            Preferred::Null => None,
            Preferred::Empty => Some(""),
            Preferred::Derived => Some(if strong & AUTHENTICATOR_PUSH != 0 {
                "push"
            } else if strong & SOFTWARE_OTP != 0 {
                "oath"
            } else if strong & MOBILE_PHONE != 0 {
                if self.prefers_voice {
                    "voiceMobile"
                } else {
                    "sms"
                }
            } else if strong & OFFICE_PHONE != 0 {
                "voiceOffice"
            } else if strong & ALTERNATE_MOBILE_PHONE != 0 {
                "voiceAlternateMobile"
            } else {
                "none"
            }),
        };
        SuccessorRow {
            id: user_id(seed, self.index),
            user_principal_name: user_principal_name(self.index),
            user_display_name: user_display_name(self.index),
            user_type: self
                .is_guest
                .map(|guest| if guest { "guest" } else { "member" }),
            is_admin: self.is_admin,
            is_sspr_registered: self.is_registered,
            is_sspr_enabled: self.is_enabled,
            is_sspr_capable: self.is_capable,
            is_mfa_registered: self.is_mfa_registered,
            is_mfa_capable: self.is_mfa_capable(),
            is_passwordless_capable: self.is_passwordless_capable(),
            methods_registered: (!self.methods_null).then(|| {
                SUCCESSOR_METHODS
                    .iter()
                    .filter(|(bit, _)| methods & bit != 0)
                    .map(|(_, name)| *name)
                    .collect()
            }),
            is_system_preferred_authentication_method_enabled: self.system_preferred,
            system_preferred_authentication_methods: system_preferred,
            user_preferred_method_for_secondary_authentication: preferred,
            last_updated_date_time: rfc3339_precise(self.last_updated),
        }
    }

    /// Index into [`Census`] cells: (member, guest, unknown) x (admin, user, unknown).
    fn cell(&self) -> usize {
        let kind = match self.is_guest {
            Some(false) => 0,
            Some(true) => 1,
            None => 2,
        };
        let role = match self.is_admin {
            Some(true) => 0,
            Some(false) => 1,
            None => 2,
        };
        kind * 3 + role
    }
}

/// A `credentialUserRegistrationDetails` row.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LegacyRow {
    id: String,
    user_principal_name: String,
    user_display_name: String,
    auth_methods: Vec<&'static str>,
    is_registered: bool,
    is_enabled: bool,
    is_capable: bool,
    is_mfa_registered: bool,
}

/// A `userRegistrationDetails` row; `None` serializes as `null`, as Graph sends it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SuccessorRow {
    id: String,
    user_principal_name: String,
    user_display_name: String,
    user_type: Option<&'static str>,
    is_admin: Option<bool>,
    is_sspr_registered: bool,
    is_sspr_enabled: bool,
    is_sspr_capable: bool,
    is_mfa_registered: bool,
    is_mfa_capable: bool,
    is_passwordless_capable: bool,
    methods_registered: Option<Vec<&'static str>>,
    is_system_preferred_authentication_method_enabled: Option<bool>,
    system_preferred_authentication_methods: Option<Vec<&'static str>>,
    user_preferred_method_for_secondary_authentication: Option<&'static str>,
    last_updated_date_time: String,
}

/// The object id of the user at `index`: the same in every report and member list.
pub(crate) fn user_id(seed: u64, index: usize) -> String {
    uuid_like(seed, STREAM_USER_ID, index as u64)
}

pub(crate) fn user_principal_name(index: usize) -> String {
    format!("user{index:04}@demo.contoso.test")
}

pub(crate) fn user_display_name(index: usize) -> String {
    format!("Demo User {index}")
}

/// Counts over a set of users, as the count and summary functions report them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) users: u64,
    pub(crate) sspr_registered: u64,
    pub(crate) sspr_enabled: u64,
    pub(crate) sspr_capable: u64,
    pub(crate) mfa_registered: u64,
    pub(crate) mfa_capable: u64,
    pub(crate) passwordless_capable: u64,
    /// Per [`SUCCESSOR_METHODS`] entry, users whose `methodsRegistered` has it.
    pub(crate) methods: [u64; SUCCESSOR_METHODS.len()],
}

impl Totals {
    /// Adds `user` (`add`) or takes it back out (`!add`).
    fn tally(&mut self, user: &User, add: bool) {
        let step = |count: &mut u64, yes: bool| {
            if yes {
                *count = if add {
                    count.saturating_add(1)
                } else {
                    count.saturating_sub(1)
                };
            }
        };
        step(&mut self.users, true);
        step(&mut self.sspr_registered, user.is_registered);
        step(&mut self.sspr_enabled, user.is_enabled);
        step(&mut self.sspr_capable, user.is_capable);
        step(&mut self.mfa_registered, user.is_mfa_registered);
        step(&mut self.mfa_capable, user.is_mfa_capable());
        step(
            &mut self.passwordless_capable,
            user.is_passwordless_capable(),
        );
        let methods = user.reported_methods();
        for (count, (bit, _)) in self.methods.iter_mut().zip(SUCCESSOR_METHODS) {
            step(count, methods & bit != 0);
        }
    }

    fn merge(&mut self, other: &Totals) {
        self.users += other.users;
        self.sspr_registered += other.sspr_registered;
        self.sspr_enabled += other.sspr_enabled;
        self.sspr_capable += other.sspr_capable;
        self.mfa_registered += other.mfa_registered;
        self.mfa_capable += other.mfa_capable;
        self.passwordless_capable += other.passwordless_capable;
        for (mine, theirs) in self.methods.iter_mut().zip(other.methods) {
            *mine += theirs;
        }
    }
}

/// `includedUserTypes`; users whose userType is `null` count only under `all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UserTypes {
    All,
    Member,
    Guest,
}

impl UserTypes {
    const ALL: [UserTypes; 3] = [UserTypes::All, UserTypes::Member, UserTypes::Guest];

    /// Parses an enum member, ignoring case as Graph does.
    pub(crate) fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(value))
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            UserTypes::All => "all",
            UserTypes::Member => "member",
            UserTypes::Guest => "guest",
        }
    }
}

/// `includedUserRoles`. The fake knows only admin or not, so `privilegedAdmin`
/// selects the same users as `admin`; users whose isAdmin is `null` count
/// only under `all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UserRoles {
    All,
    PrivilegedAdmin,
    Admin,
    User,
}

impl UserRoles {
    const ALL: [UserRoles; 4] = [
        UserRoles::All,
        UserRoles::PrivilegedAdmin,
        UserRoles::Admin,
        UserRoles::User,
    ];

    /// Parses an enum member, ignoring case as Graph does.
    pub(crate) fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(value))
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            UserRoles::All => "all",
            UserRoles::PrivilegedAdmin => "privilegedAdmin",
            UserRoles::Admin => "admin",
            UserRoles::User => "user",
        }
    }
}

/// The `usersRegisteredByFeature` object.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FeatureSummary {
    #[serde(rename = "@odata.type")]
    odata_type: &'static str,
    total_user_count: u64,
    user_types: &'static str,
    user_roles: &'static str,
    user_registration_feature_counts: Vec<FeatureCount>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FeatureCount {
    feature: &'static str,
    user_count: u64,
}

/// The `usersRegisteredByMethod` object.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MethodSummary {
    #[serde(rename = "@odata.type")]
    odata_type: &'static str,
    total_user_count: u64,
    user_types: &'static str,
    user_roles: &'static str,
    user_registration_method_counts: Vec<MethodCount>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MethodCount {
    authentication_method: &'static str,
    user_count: u64,
}

/// Totals per (userType, isAdmin) cell, so any `includedUserTypes` /
/// `includedUserRoles` combination is a sum of cells rather than a rescan.
#[derive(Clone)]
pub(crate) struct Census {
    cells: [Totals; 9],
}

impl Census {
    pub(crate) fn scan(users: impl Iterator<Item = User>) -> Self {
        let mut census = Census {
            cells: [Totals::default(); 9],
        };
        for user in users {
            census.add(&user);
        }
        census
    }

    pub(crate) fn add(&mut self, user: &User) {
        if let Some(cell) = self.cells.get_mut(user.cell()) {
            cell.tally(user, true);
        }
    }

    pub(crate) fn remove(&mut self, user: &User) {
        if let Some(cell) = self.cells.get_mut(user.cell()) {
            cell.tally(user, false);
        }
    }

    pub(crate) fn feature_summary(&self, types: UserTypes, roles: UserRoles) -> FeatureSummary {
        let t = self.select(types, roles);
        let counts = [
            ("ssprRegistered", t.sspr_registered),
            ("ssprEnabled", t.sspr_enabled),
            ("ssprCapable", t.sspr_capable),
            ("passwordlessCapable", t.passwordless_capable),
            ("mfaCapable", t.mfa_capable),
        ];
        FeatureSummary {
            odata_type: "#microsoft.graph.userRegistrationFeatureSummary",
            total_user_count: t.users,
            user_types: types.name(),
            user_roles: roles.name(),
            user_registration_feature_counts: counts
                .into_iter()
                .map(|(feature, user_count)| FeatureCount {
                    feature,
                    user_count,
                })
                .collect(),
        }
    }

    /// Every known method, zero counts included, so series do not come and go.
    pub(crate) fn method_summary(&self, types: UserTypes, roles: UserRoles) -> MethodSummary {
        let t = self.select(types, roles);
        MethodSummary {
            odata_type: "#microsoft.graph.userRegistrationMethodSummary",
            total_user_count: t.users,
            user_types: types.name(),
            user_roles: roles.name(),
            user_registration_method_counts: SUCCESSOR_METHODS
                .iter()
                .zip(t.methods)
                .map(|((_, authentication_method), user_count)| MethodCount {
                    authentication_method,
                    user_count,
                })
                .collect(),
        }
    }

    pub(crate) fn select(&self, types: UserTypes, roles: UserRoles) -> Totals {
        let kinds: &[usize] = match types {
            UserTypes::All => &[0, 1, 2],
            UserTypes::Member => &[0],
            UserTypes::Guest => &[1],
        };
        let role_cells: &[usize] = match roles {
            UserRoles::All => &[0, 1, 2],
            UserRoles::PrivilegedAdmin | UserRoles::Admin => &[0],
            UserRoles::User => &[1],
        };
        let mut totals = Totals::default();
        for kind in kinds {
            for role in role_cells {
                if let Some(cell) = self.cells.get(kind * 3 + role) {
                    totals.merge(cell);
                }
            }
        }
        totals
    }
}
