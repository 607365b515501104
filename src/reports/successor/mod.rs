//! The v1.0 reports that succeed the legacy ones (docs/reports.md, "Legacy and successor reports"), each in the
//! file named after the Graph report.

pub mod user_events_summary;
pub mod user_mfa_sign_in_summary;
pub mod user_password_resets_and_changes_summary;
pub mod user_registration_activity;
pub mod user_registration_details;
pub mod user_sign_ins_by_auth_method_summary;
pub mod users_registered_by_feature;
pub mod users_registered_by_method;
