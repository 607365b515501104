//! Sharding: which replica polls which tenant. Every replica reads the same configuration and
//! decides on its own, with no coordination: a tenant belongs to the shard whose weight for it
//! is highest (rendezvous, or highest-random-weight, hashing of the tenant name). Changing the
//! number of shards from M to M+1 therefore moves only the tenants the new shard wins, about
//! 1/(M+1) of them, and every other tenant stays where it was.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// This replica's place among `total` replicas (`--shard`, `--total-shards`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based, below `total`.
    pub index: u32,
    pub total: u32,
}

impl Shard {
    /// The single replica of an unsharded exporter.
    pub const ALL: Shard = Shard { index: 0, total: 1 };

    /// True if this shard polls `tenant` (its `tenant` label).
    pub fn owns(&self, tenant: &str) -> bool {
        owner(tenant, self.total) == self.index
    }
}

/// The shard of `total` that polls `tenant`. xxh3 is specified byte for byte, so every
/// replica, whatever its platform or version, computes the same owner.
pub fn owner(tenant: &str, total: u32) -> u32 {
    (0..total.max(1))
        .max_by_key(|shard| xxh3_64_with_seed(tenant.as_bytes(), u64::from(*shard)))
        .unwrap_or(0)
}

/// The number after the last `-` of a StatefulSet pod's name (`exporter-2` → 2).
pub fn ordinal(name: &str) -> Option<u32> {
    let (_, number) = name.trim().rsplit_once('-')?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenants(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("tenant-{i:05}.example")).collect()
    }

    #[test]
    fn every_tenant_has_exactly_one_shard_and_shards_are_balanced() {
        let tenants = tenants(10_000);
        for total in [1, 2, 3, 4, 7] {
            let shards: Vec<Shard> = (0..total).map(|index| Shard { index, total }).collect();
            let mut sizes = vec![0usize; total as usize];
            for tenant in &tenants {
                let owners: Vec<u32> = shards
                    .iter()
                    .filter(|s| s.owns(tenant))
                    .map(|s| s.index)
                    .collect();
                assert_eq!(owners.len(), 1, "{tenant} with {total} shards: {owners:?}");
                sizes[owners[0] as usize] += 1;
            }
            let fair = tenants.len() / total as usize;
            for size in sizes {
                // Within 10% of a fair share: a hash, not a round robin.
                assert!(
                    size.abs_diff(fair) < fair / 10,
                    "{total} shards: {size} vs {fair}"
                );
            }
        }
        assert!(tenants.iter().all(|t| Shard::ALL.owns(t)));
    }

    #[test]
    fn adding_a_shard_moves_only_the_tenants_it_wins() {
        let tenants = tenants(10_000);
        for total in [1u32, 3, 4, 9] {
            let mut moved = 0usize;
            for tenant in &tenants {
                let before = owner(tenant, total);
                let after = owner(tenant, total + 1);
                if before != after {
                    // A tenant only ever moves to the new shard.
                    assert_eq!(after, total, "{tenant}");
                    moved += 1;
                }
            }
            let expected = tenants.len() / (total as usize + 1);
            assert!(
                moved.abs_diff(expected) < expected / 10,
                "{total} → {}: {moved} moved, about {expected} expected",
                total + 1
            );
        }
    }

    #[test]
    fn the_assignment_is_fixed_across_builds() {
        // Replicas of different versions during a rollout must agree: xxh3 is specified, and
        // this pins what the weights give, so a change of hash or of tie-breaking fails here.
        assert_eq!(xxh3_64_with_seed(b"", 0), 0x2d06_8005_38d3_94c2);
        let owners: Vec<u32> = (0..8).map(|i| owner(&format!("t{i}"), 5)).collect();
        assert_eq!(owners, [3, 0, 0, 3, 4, 4, 0, 3]);
        let owners: Vec<u32> = ["contoso", "fabrikam", "northwind", "adatum"]
            .iter()
            .map(|t| owner(t, 3))
            .collect();
        assert_eq!(owners, [1, 1, 1, 1]);
    }

    #[test]
    fn ordinals_of_pod_names() {
        for (name, expected) in [
            ("entra-authmethods-exporter-0", Some(0)),
            ("entra-authmethods-exporter-12", Some(12)),
            ("web-3\n", Some(3)),
            ("exporter", None),
            ("exporter-", None),
            ("exporter-1a", None),
            ("exporter-+1", None),
            ("exporter-99999999999", None),
        ] {
            assert_eq!(ordinal(name), expected, "{name:?}");
        }
    }
}
