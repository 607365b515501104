//! The tenant's configured groups, read before each userRegistrationDetails scan: every page
//! of `transitiveMembers/microsoft.graph.user` (nested groups included), through the tenant's
//! Graph client and so its request budget. Only a 64-bit hash of each member's id is kept, in a
//! sorted vector: 8 bytes a member, freed when the scan ends.
//!
//! A group Graph does not return (404: deleted or a wrong id; 403: no GroupMember.Read.All)
//! gets one warning naming the group and the fix and is left out; the scan and the other groups
//! carry on.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use serde::Deserialize;
use tracing::{info, warn};

use crate::config::GroupConfig;
use crate::graph::{GraphClient, Unavailability};

/// Permission the member reads need, quoted when Graph answers 403.
const PERMISSION: &str = "application permission GroupMember.Read.All (admin consent); groups \
                          with hidden membership also need Member.Read.Hidden";

/// The hash a user id is kept as. Both sides of the membership test (member lists and the
/// scan's rows) hash with this, in the same process, so the algorithm need not be stable across
/// builds; SipHash spreads GUIDs evenly, and 64 bits make a collision among a million users
/// about a one-in-30-million event.
pub fn id_hash(id: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

/// A member row; `$select=id` asks Graph for nothing else.
#[derive(Debug, Deserialize)]
struct Member {
    #[serde(default, deserialize_with = "crate::reports::shared::de::id_hash")]
    id: Option<u64>,
}

/// One group's transitive user members, as id hashes.
#[derive(Debug)]
pub struct Members {
    pub name: String,
    /// Sorted and free of duplicates: a user reached through several nested groups, or listed
    /// on two pages, counts once.
    hashes: Vec<u64>,
}

impl Members {
    pub fn new(name: String, mut hashes: Vec<u64>) -> Self {
        hashes.sort_unstable();
        hashes.dedup();
        hashes.shrink_to_fit();
        Self { name, hashes }
    }

    pub fn contains(&self, hash: u64) -> bool {
        self.hashes.binary_search(&hash).is_ok()
    }
}

/// Reads a tenant's groups and remembers which ones it has warned about.
#[derive(Debug)]
pub struct GroupReader {
    groups: Arc<[GroupConfig]>,
    /// Ids of groups Graph refused or did not find at the last read: warned about once.
    missing: HashSet<String>,
}

impl GroupReader {
    pub fn new(groups: Arc<[GroupConfig]>) -> Self {
        Self {
            groups,
            missing: HashSet::new(),
        }
    }

    /// Every group Graph returns, in the configured order. Requests count under `report`.
    pub async fn read(&mut self, graph: &GraphClient, report: &'static str) -> Vec<Members> {
        let mut read = Vec::with_capacity(self.groups.len());
        for group in self.groups.iter() {
            let path = format!(
                "/v1.0/groups/{}/transitiveMembers/microsoft.graph.user?$select=id&$top=999",
                group.id
            );
            let mut hashes = Vec::new();
            let result = graph
                .for_each_page(report, &path, |page: Vec<Member>| {
                    hashes.extend(page.into_iter().filter_map(|member| member.id));
                })
                .await;
            match result {
                Ok(_) => {
                    if self.missing.remove(&group.id) {
                        info!(group = %group.name, group_id = %group.id, "group readable again; its series are back");
                    }
                    read.push(Members::new(group.name.clone(), hashes));
                }
                Err(err) => {
                    let error = crate::errors::error_chain(&err);
                    let fix = match err.unavailability() {
                        Some(Unavailability::Forbidden) => format!("grant the {PERMISSION}"),
                        Some(Unavailability::Retired) => {
                            "check its id under the tenant's groups in \
                             the config file: the group may have been deleted"
                                .to_owned()
                        }
                        None => {
                            // A passing failure, already retried: this scan goes without the
                            // group, the next one reads it again.
                            warn!(group = %group.name, group_id = %group.id, %error,
                                "reading the group's members failed; its series are left out of this scan");
                            continue;
                        }
                    };
                    if self.missing.insert(group.id.clone()) {
                        warn!(group = %group.name, group_id = %group.id, %error,
                            "Graph does not return the members of group {:?}: {fix}. Its series \
                             are left out until Graph returns them", group.name);
                    }
                }
            }
        }
        read
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{ParsedPage, parse_page};

    #[test]
    fn members_count_once_across_pages_and_nesting() {
        let mut hashes = Vec::new();
        for page in [
            r#"{"value":[{"id":"a"},{"id":"b"},{"id":"a"}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/groups/x/transitiveMembers/microsoft.graph.user?$skiptoken=1"}"#,
            r##"{"value":[{"id":"b"},{"@odata.type":"#microsoft.graph.user","id":"c"},{"id":null},{}]}"##,
        ] {
            let ParsedPage { rows, .. } = parse_page::<Member>(page.as_bytes()).unwrap();
            hashes.extend(rows.into_iter().filter_map(|m| m.id));
        }
        let members = Members::new("pilot".into(), hashes);
        assert_eq!(members.hashes.len(), 3);
        for id in ["a", "b", "c"] {
            assert!(members.contains(id_hash(id)), "{id}");
        }
        assert!(!members.contains(id_hash("d")));
        assert_eq!(members.hashes.capacity(), 3, "8 bytes a member");
    }

    #[test]
    fn a_member_id_of_another_type_is_a_skipped_row() {
        let page = parse_page::<Member>(br#"{"value":[{"id":42},{"id":"a"}]}"#).unwrap();
        assert_eq!(page.rows.len(), 1);
        assert_eq!(page.skipped.len(), 1);
        assert_eq!(page.skipped[0].field, "id");
    }
}
