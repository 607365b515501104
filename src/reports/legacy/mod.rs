//! The legacy beta reports, deprecated by Microsoft (docs/reports.md, "Legacy and successor reports"), each in
//! the file named after the Graph report.

pub mod credential_usage_summary;
pub mod credential_user_registration_count;
pub mod credential_user_registration_details;
pub mod user_credential_usage_details;
