//! What several reports share: row parsing helpers, the activity, daily and events report
//! kinds (one for a legacy report and its successor), group membership, the registered-by
//! fallback and the authentication strength table.

pub(crate) mod activity;
pub(crate) mod daily;
pub(crate) mod de;
pub(crate) mod events;
pub(crate) mod groups;
pub(crate) mod registered_by;
pub mod saved_events;
pub mod strength;
pub mod tenant;
