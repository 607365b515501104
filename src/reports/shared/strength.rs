//! Authentication strength: each user counts once, in the class of the strongest method they
//! registered. The default table follows Microsoft's built-in authentication strengths
//! (docs/metrics.md, "Authentication strength"); the config file's `strength_classes` replaces the
//! methods of the classes it names, and this module checks the result at start.
//!
//! A method the table does not know never raises a user's class: a new method Graph adds is
//! `none` until someone decides where it belongs. The reports log each such method once per
//! tenant ([`crate::reports::TenantShared::first_unknown_method`]).

use std::collections::{BTreeMap, HashMap};

use tracing::info;

use crate::reports::shared::tenant::TenantShared;

/// A strength class, weakest first so that `max` picks the strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Strength {
    None,
    PhoneMfa,
    AppMfa,
    Passwordless,
    PhishingResistant,
}

impl Strength {
    /// Every class, strongest first: the order of the series and of the table in docs/metrics.md.
    pub const ALL: [Strength; 5] = [
        Strength::PhishingResistant,
        Strength::Passwordless,
        Strength::AppMfa,
        Strength::PhoneMfa,
        Strength::None,
    ];

    /// The `strength` label value and the class's name in `strength_classes`.
    pub fn label(self) -> &'static str {
        match self {
            Strength::PhishingResistant => "phishingResistant",
            Strength::Passwordless => "passwordless",
            Strength::AppMfa => "appMfa",
            Strength::PhoneMfa => "phoneMfa",
            Strength::None => "none",
        }
    }

    fn parse(name: &str) -> Option<Strength> {
        Strength::ALL
            .into_iter()
            .find(|class| class.label() == name)
    }

    /// Index into [`StrengthCounts`].
    fn index(self) -> usize {
        self as usize
    }
}

/// The default table: Microsoft's built-in authentication strengths ("Phishing-resistant MFA",
/// "Passwordless MFA", "Multifactor authentication") split by what a user can actually be
/// phished or SIM-swapped with.
const DEFAULTS: [(Strength, &[&str]); 5] = [
    (
        Strength::PhishingResistant,
        &[
            "fido2SecurityKey",
            "passKeyDeviceBound",
            "passKeyDeviceBoundAuthenticator",
            "passKeyDeviceBoundWindowsHello",
            "passKeySynced",
            "windowsHelloForBusiness",
            "macOsSecureEnclaveKey",
        ],
    ),
    (
        Strength::Passwordless,
        &["microsoftAuthenticatorPasswordless"],
    ),
    (
        Strength::AppMfa,
        &[
            "microsoftAuthenticatorPush",
            "softwareOneTimePasscode",
            "hardwareOneTimePasscode",
            "externalAuthMethod",
        ],
    ),
    (
        Strength::PhoneMfa,
        &["mobilePhone", "alternateMobilePhone", "officePhone"],
    ),
    (
        Strength::None,
        &[
            "password",
            "email",
            "securityQuestion",
            "temporaryAccessPass",
        ],
    ),
];

/// The legacy credentialUserRegistrationDetails spells some methods differently; they are
/// classified under their successor names. Phone methods and externalAuthMethod share names.
const LEGACY_NAMES: [(&str, &str); 4] = [
    ("fido", "fido2SecurityKey"),
    ("appNotification", "microsoftAuthenticatorPush"),
    ("appCode", "softwareOneTimePasscode"),
    // An app password is a password for apps that cannot do MFA: no second factor.
    ("appPassword", "password"),
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StrengthError {
    #[error("strength_classes: unknown class {name:?}; the classes are {known}")]
    UnknownClass { name: String, known: String },
    #[error(
        "strength_classes: method {method:?} is in both {first} and {second}; a method belongs \
         to one class (a class you leave out keeps its default methods)"
    )]
    TwoClasses {
        method: String,
        first: &'static str,
        second: &'static str,
    },
    #[error("strength_classes.{class}: a method name is empty")]
    EmptyMethod { class: &'static str },
}

/// Which class each known method is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrengthTable {
    classes: HashMap<String, Strength>,
}

impl Default for StrengthTable {
    /// The defaults name every method once, which the unit tests check.
    fn default() -> Self {
        let classes = DEFAULTS
            .iter()
            .flat_map(|(class, methods)| methods.iter().map(|m| ((*m).to_owned(), *class)))
            .collect();
        StrengthTable { classes }
    }
}

impl StrengthTable {
    /// The default table with `overrides` (class name → methods, from `strength_classes`)
    /// replacing the methods of each class they name.
    pub fn with_overrides(
        overrides: &BTreeMap<String, Vec<String>>,
    ) -> Result<Self, StrengthError> {
        let mut lists: BTreeMap<Strength, Vec<&str>> = DEFAULTS
            .iter()
            .map(|(class, methods)| (*class, methods.to_vec()))
            .collect();
        for (name, methods) in overrides {
            let class = Strength::parse(name).ok_or_else(|| StrengthError::UnknownClass {
                name: name.clone(),
                known: Strength::ALL.map(Strength::label).join(", "),
            })?;
            if methods.iter().any(|m| m.trim().is_empty()) {
                return Err(StrengthError::EmptyMethod {
                    class: class.label(),
                });
            }
            lists.insert(class, methods.iter().map(String::as_str).collect());
        }
        let mut classes: HashMap<String, Strength> = HashMap::new();
        // Strongest first, so the error names the classes in table order.
        for class in Strength::ALL {
            for method in lists.get(&class).into_iter().flatten() {
                match classes.get(*method) {
                    Some(first) if *first != class => {
                        return Err(StrengthError::TwoClasses {
                            method: (*method).to_owned(),
                            first: first.label(),
                            second: class.label(),
                        });
                    }
                    _ => {
                        classes.insert((*method).to_owned(), class);
                    }
                }
            }
        }
        Ok(StrengthTable { classes })
    }

    /// The class of a successor method name; `None` when the table does not know it.
    pub fn class_of(&self, method: &str) -> Option<Strength> {
        self.classes.get(method).copied()
    }
}

/// The phone methods SSPR can verify a user with: SMS or a voice call to these numbers.
const SSPR_PHONE_METHODS: [&str; 3] = ["mobilePhone", "alternateMobilePhone", "officePhone"];
/// The SSPR methods that need no phone network: a user with one of them can still reset a
/// password once Microsoft-provided SMS and voice retire.
const SSPR_OTHER_METHODS: [&str; 6] = [
    "email",
    "securityQuestion",
    "microsoftAuthenticatorPush",
    "softwareOneTimePasscode",
    "hardwareOneTimePasscode",
    "microsoftAuthenticatorPasswordless",
];

/// Whether the `methodsRegistered` of an SSPR-registered user leave them only a phone to reset
/// their password with: at least one phone method and none of the others. Fixed by the SMS and
/// voice retirement, not by `strength_classes`.
pub fn sspr_phone_only(methods: &[String]) -> bool {
    let has = |names: &[&str]| methods.iter().any(|m| names.contains(&m.as_str()));
    has(&SSPR_PHONE_METHODS) && !has(&SSPR_OTHER_METHODS)
}

/// The successor spelling of a legacy registrationAuthMethod member, which the table classifies.
pub fn successor_name(legacy: &str) -> &str {
    LEGACY_NAMES
        .iter()
        .find(|(name, _)| *name == legacy)
        .map_or(legacy, |(_, successor)| successor)
}

/// How a report spells the methods the table classifies.
#[derive(Debug, Default, Clone, Copy)]
pub enum Naming {
    /// userRegistrationDetails' `methodsRegistered`: the table's own names.
    #[default]
    Successor,
    /// credentialUserRegistrationDetails' `authMethods`, read through [`successor_name`].
    Legacy,
}

/// Users per registered method. Each method's class is looked up once, when the method is first
/// seen, so classifying a user costs nothing beyond the lookups that count their methods.
#[derive(Debug, Default)]
pub struct MethodCounts {
    naming: Naming,
    methods: HashMap<String, MethodUsers>,
}

#[derive(Debug)]
struct MethodUsers {
    users: u64,
    class: Option<Strength>,
}

impl MethodCounts {
    pub fn new(naming: Naming) -> Self {
        Self {
            naming,
            methods: HashMap::new(),
        }
    }

    /// Counts one user's methods, each once even if listed twice, and returns the class of their
    /// strongest known method: `none` when they have none.
    pub fn add_user(&mut self, table: &StrengthTable, mut methods: Vec<String>) -> Strength {
        methods.sort_unstable();
        methods.dedup();
        let naming = self.naming;
        let mut strongest = Strength::None;
        for method in methods {
            let counted = self.methods.entry(method).or_insert_with_key(|m| {
                let name = match naming {
                    Naming::Successor => m.as_str(),
                    Naming::Legacy => successor_name(m),
                };
                MethodUsers {
                    users: 0,
                    class: table.class_of(name),
                }
            });
            counted.users += 1;
            strongest = strongest.max(counted.class.unwrap_or(Strength::None));
        }
        strongest
    }

    /// Users per method.
    pub fn users(&self) -> impl Iterator<Item = (&str, u64)> {
        self.methods
            .iter()
            .map(|(method, counted)| (method.as_str(), counted.users))
    }

    /// Methods the table does not know, with their users, sorted by name.
    pub fn unknown(&self) -> Vec<(&str, u64)> {
        let mut unknown: Vec<(&str, u64)> = self
            .methods
            .iter()
            .filter(|(_, counted)| counted.class.is_none())
            .map(|(method, counted)| (method.as_str(), counted.users))
            .collect();
        unknown.sort_unstable();
        unknown
    }
}

/// Logs each method outside the table once per tenant, with the users who registered it in
/// this scan. The log line carries tenant and report from the poll's span.
pub fn log_unknown_methods<'a>(
    shared: &TenantShared,
    unknown: impl IntoIterator<Item = (&'a str, u64)>,
) {
    for (method, users) in unknown {
        if shared.first_unknown_method(method) {
            info!(
                method,
                users,
                "authentication method not in the strength table: it does not raise any user's \
                 strength class; to count it, add it to a class under strength_classes"
            );
        }
    }
}

/// Users per class.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StrengthCounts([u64; 5]);

impl StrengthCounts {
    pub fn add(&mut self, class: Strength) {
        self.0[class.index()] += 1;
    }

    /// Every class, strongest first, zeros included: series never come and go.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Strength::ALL
            .into_iter()
            .map(|class| (class.label(), self.0[class.index()]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(class, methods)| {
                (
                    (*class).to_owned(),
                    methods.iter().map(|m| (*m).to_owned()).collect(),
                )
            })
            .collect()
    }

    fn strongest(table: &StrengthTable, methods: &[&str]) -> &'static str {
        MethodCounts::default()
            .add_user(table, methods.iter().map(|m| (*m).to_owned()).collect())
            .label()
    }

    #[test]
    fn the_defaults_are_the_documented_table_and_name_each_method_once() {
        let table = StrengthTable::default();
        let named: usize = DEFAULTS.iter().map(|(_, methods)| methods.len()).sum();
        assert_eq!(table.classes.len(), named);
        assert_eq!(named, 19);
        for (method, class) in [
            ("fido2SecurityKey", "phishingResistant"),
            ("passKeySynced", "phishingResistant"),
            ("windowsHelloForBusiness", "phishingResistant"),
            ("macOsSecureEnclaveKey", "phishingResistant"),
            ("microsoftAuthenticatorPasswordless", "passwordless"),
            ("microsoftAuthenticatorPush", "appMfa"),
            ("hardwareOneTimePasscode", "appMfa"),
            ("externalAuthMethod", "appMfa"),
            ("officePhone", "phoneMfa"),
            ("temporaryAccessPass", "none"),
        ] {
            assert_eq!(table.class_of(method).map(Strength::label), Some(class));
        }
    }

    #[test]
    fn the_strongest_method_decides_and_unknown_methods_raise_nothing() {
        let table = StrengthTable::default();
        assert_eq!(
            strongest(
                &table,
                &["password", "mobilePhone", "microsoftAuthenticatorPush"]
            ),
            "appMfa"
        );
        assert_eq!(
            strongest(&table, &["fido2SecurityKey", "mobilePhone"]),
            "phishingResistant"
        );
        assert_eq!(
            strongest(
                &table,
                &[
                    "microsoftAuthenticatorPasswordless",
                    "softwareOneTimePasscode"
                ]
            ),
            "passwordless"
        );
        assert_eq!(strongest(&table, &["password", "email"]), "none");
        assert_eq!(strongest(&table, &[]), "none");
        assert_eq!(strongest(&table, &["qrCode", "password"]), "none");
        assert_eq!(strongest(&table, &["qrCode", "officePhone"]), "phoneMfa");
        // Names are Graph's spelling, exactly.
        assert_eq!(strongest(&table, &["FIDO2SecurityKey"]), "none");
    }

    #[test]
    fn sspr_by_phone_only_needs_a_phone_and_no_other_sspr_method() {
        let phone_only = |methods: &[&str]| {
            sspr_phone_only(&methods.iter().map(|m| (*m).to_owned()).collect::<Vec<_>>())
        };
        assert!(phone_only(&["mobilePhone"]));
        assert!(phone_only(&[
            "password",
            "officePhone",
            "alternateMobilePhone"
        ]));
        // A FIDO2 key or Windows Hello cannot reset a password: still phone only.
        assert!(phone_only(&[
            "mobilePhone",
            "fido2SecurityKey",
            "windowsHelloForBusiness"
        ]));
        assert!(phone_only(&["officePhone", "qrCode"]));
        for other in SSPR_OTHER_METHODS {
            assert!(!phone_only(&["mobilePhone", other]), "{other}");
        }
        assert!(!phone_only(&[]));
        assert!(!phone_only(&["password", "email"]));
        // Graph's spelling, exactly.
        assert!(!phone_only(&["MobilePhone"]));
    }

    #[test]
    fn legacy_names_follow_their_successors() {
        let table = StrengthTable::default();
        let legacy = |methods: &[&str]| {
            MethodCounts::new(Naming::Legacy)
                .add_user(&table, methods.iter().map(|m| (*m).to_owned()).collect())
                .label()
        };
        assert_eq!(legacy(&["email", "fido"]), "phishingResistant");
        assert_eq!(legacy(&["appNotification"]), "appMfa");
        assert_eq!(legacy(&["appCode", "mobilePhone"]), "appMfa");
        assert_eq!(legacy(&["officePhone"]), "phoneMfa");
        assert_eq!(legacy(&["alternateMobilePhone"]), "phoneMfa");
        assert_eq!(legacy(&["appPassword", "securityQuestion"]), "none");
        assert_eq!(legacy(&["externalAuthMethod"]), "appMfa");
        assert_eq!(legacy(&["mobileSMS"]), "none");
        assert_eq!(table.class_of(successor_name("mobileSMS")), None);
    }

    #[test]
    fn a_given_class_replaces_its_defaults_and_the_others_keep_theirs() {
        let table = StrengthTable::with_overrides(&overrides(&[
            (
                "phishingResistant",
                &[
                    "fido2SecurityKey",
                    "passKeyDeviceBound",
                    "windowsHelloForBusiness",
                ],
            ),
            (
                "appMfa",
                &["microsoftAuthenticatorPush", "softwareOneTimePasscode"],
            ),
        ]))
        .unwrap();
        assert_eq!(
            strongest(&table, &["passKeySynced", "mobilePhone"]),
            "phoneMfa"
        );
        assert_eq!(table.class_of("passKeySynced"), None);
        assert_eq!(table.class_of("externalAuthMethod"), None);
        assert_eq!(
            table.class_of("microsoftAuthenticatorPasswordless"),
            Some(Strength::Passwordless)
        );
        assert_eq!(table.class_of("mobilePhone"), Some(Strength::PhoneMfa));
        // Legacy names follow the overridden table too.
        assert_eq!(
            table.class_of(successor_name("fido")),
            Some(Strength::PhishingResistant)
        );
        // A method may move to a class whose default list no longer holds it.
        let moved = StrengthTable::with_overrides(&overrides(&[
            ("appMfa", &["microsoftAuthenticatorPush"]),
            ("phoneMfa", &["mobilePhone", "softwareOneTimePasscode"]),
        ]))
        .unwrap();
        assert_eq!(
            moved.class_of("softwareOneTimePasscode"),
            Some(Strength::PhoneMfa)
        );
        // New names are welcome; an empty list empties the class.
        let added = StrengthTable::with_overrides(&overrides(&[
            ("phoneMfa", &["mobilePhone", "sms"]),
            ("phishingResistant", &[]),
        ]))
        .unwrap();
        assert_eq!(added.class_of("sms"), Some(Strength::PhoneMfa));
        assert_eq!(strongest(&added, &["fido2SecurityKey", "sms"]), "phoneMfa");
    }

    #[test]
    fn a_method_in_two_classes_or_an_unknown_class_is_an_error() {
        let err =
            StrengthTable::with_overrides(&overrides(&[("appMfa", &["mobilePhone"])])).unwrap_err();
        assert_eq!(
            err,
            StrengthError::TwoClasses {
                method: "mobilePhone".into(),
                first: "appMfa",
                second: "phoneMfa"
            }
        );
        assert!(
            err.to_string().contains("keeps its default methods"),
            "{err}"
        );
        let err = StrengthTable::with_overrides(&overrides(&[
            ("phishingResistant", &["fido2SecurityKey"]),
            ("passwordless", &["fido2SecurityKey"]),
        ]))
        .unwrap_err();
        assert!(matches!(err, StrengthError::TwoClasses { .. }), "{err}");
        let err = StrengthTable::with_overrides(&overrides(&[("phishingresistant", &[])]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"phishingresistant\""), "{err}");
        assert!(
            err.contains("phishingResistant, passwordless, appMfa, phoneMfa, none"),
            "{err}"
        );
        let err =
            StrengthTable::with_overrides(&overrides(&[("none", &["password", " "])])).unwrap_err();
        assert_eq!(err, StrengthError::EmptyMethod { class: "none" });
        // The same method twice in one class is merely redundant.
        assert!(
            StrengthTable::with_overrides(&overrides(&[(
                "phoneMfa",
                &["mobilePhone", "mobilePhone"]
            )]))
            .is_ok()
        );
    }

    #[test]
    fn method_counts_count_users_once_per_method_and_know_the_unknown() {
        let table = StrengthTable::default();
        let mut counts = MethodCounts::default();
        let methods = |list: &[&str]| list.iter().map(|m| (*m).to_owned()).collect();
        assert_eq!(
            counts.add_user(&table, methods(&["qrCode", "mobilePhone", "mobilePhone"])),
            Strength::PhoneMfa
        );
        assert_eq!(
            counts.add_user(&table, methods(&["qrCode", "password"])),
            Strength::None
        );
        let mut users: Vec<(&str, u64)> = counts.users().collect();
        users.sort_unstable();
        assert_eq!(users, [("mobilePhone", 1), ("password", 1), ("qrCode", 2)]);
        assert_eq!(counts.unknown(), [("qrCode", 2)]);
        let mut legacy = MethodCounts::new(Naming::Legacy);
        legacy.add_user(&table, methods(&["appCode", "mobileSMS"]));
        assert_eq!(legacy.unknown(), [("mobileSMS", 1)]);
    }

    #[test]
    fn counts_list_every_class_strongest_first() {
        let mut counts = StrengthCounts::default();
        counts.add(Strength::AppMfa);
        counts.add(Strength::AppMfa);
        counts.add(Strength::None);
        assert_eq!(
            counts.iter().collect::<Vec<_>>(),
            [
                ("phishingResistant", 0),
                ("passwordless", 0),
                ("appMfa", 2),
                ("phoneMfa", 0),
                ("none", 1)
            ]
        );
    }

    #[test]
    fn the_docs_list_the_defaults_and_their_examples_are_valid_tables() {
        #[derive(serde::Deserialize)]
        struct File {
            strength_classes: BTreeMap<String, Vec<String>>,
        }
        // The table and one example are in the metrics page, the other in the config file's.
        let docs = concat!(
            include_str!("../../../docs/metrics.md"),
            include_str!("../../../docs/configuration.md")
        );
        let examples: Vec<&str> = docs
            .split("```yaml")
            .skip(1)
            .filter_map(|block| block.split("```").next())
            .filter(|block| block.contains("strength_classes:"))
            .collect();
        assert_eq!(examples.len(), 2);
        // The table lists the defaults.
        for (class, methods) in DEFAULTS {
            let row = docs
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", class.label())))
                .unwrap_or_else(|| panic!("docs/metrics.md has no row for {class:?}"));
            let successor_column = row.split('|').nth(2).unwrap_or_default();
            for method in methods {
                assert!(
                    successor_column.contains(method),
                    "{method} missing in {row}"
                );
            }
        }
        for example in examples {
            let file: File = serde_saphyr::from_str(example).unwrap();
            let table = StrengthTable::with_overrides(&file.strength_classes).unwrap();
            assert_eq!(table.class_of("passKeySynced"), None, "{example}");
        }
    }
}
