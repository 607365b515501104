//! Groups of the simulated tenant, for
//! `GET /{v}/groups/{id}/transitiveMembers/microsoft.graph.user`. Members are ranges of user
//! indices, so a group of 100,000 users costs nothing; nested groups add their own transitive
//! members, and Graph's flat list holds each user once however many ways they are reached.

use std::ops::Range;

/// A group of the simulated tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeGroup {
    /// Object id, a GUID.
    pub id: String,
    /// Display name; the demo uses it as the `group` label.
    pub name: String,
    /// Direct user members: the users with these indices (clamped to `users`).
    pub members: Range<usize>,
    /// Ids of groups nested in this one: their transitive members are members of this one.
    pub nested: Vec<String>,
    /// Deleted since someone configured it: Graph answers 404.
    pub deleted: bool,
}

/// Index ranges of the users in group `id` and every group nested in it, sorted, merged and
/// clamped to the tenant's `users`; `None` for a group that does not exist or was deleted.
pub(crate) fn transitive_members(
    groups: &[FakeGroup],
    id: &str,
    users: usize,
) -> Option<Vec<Range<usize>>> {
    let find = |id: &str| {
        groups
            .iter()
            .find(|g| g.id.eq_ignore_ascii_case(id) && !g.deleted)
    };
    let root = find(id)?;
    let mut ranges = Vec::new();
    let mut visited: Vec<&str> = Vec::new();
    let mut pending = vec![root];
    // Entra refuses circular nesting, but a careless test must not hang the fake.
    while let Some(group) = pending.pop() {
        if visited.contains(&group.id.as_str()) {
            continue;
        }
        visited.push(&group.id);
        ranges.push(group.members.start.min(users)..group.members.end.min(users));
        pending.extend(group.nested.iter().filter_map(|nested| find(nested)));
    }
    ranges.retain(|r| !r.is_empty());
    ranges.sort_unstable_by_key(|r| r.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    Some(merged)
}

/// The user indices at positions `cursor..cursor + size` of the flat member list, and the
/// cursor of the next page if there is one.
pub(crate) fn member_page(
    ranges: &[Range<usize>],
    cursor: usize,
    size: usize,
) -> (Vec<usize>, Option<usize>) {
    let total: usize = ranges.iter().map(ExactSizeIterator::len).sum();
    let page = ranges
        .iter()
        .flat_map(Clone::clone)
        .skip(cursor)
        .take(size)
        .collect();
    let next = cursor.saturating_add(size);
    (page, (next < total).then_some(next))
}

/// The demo's groups for a tenant of `users`: a FIDO2 pilot with a second wave nested in it
/// (overlapping it, so some users are members twice over), Finance, the help desk, and a
/// group deleted since it was configured.
pub(crate) fn demo_groups(users: usize) -> Vec<FakeGroup> {
    let share = |from: usize, to: usize| users * from / 100..users * to / 100;
    let group = |id: &str, name: &str, members: Range<usize>, nested: &[&str], deleted| FakeGroup {
        id: id.to_owned(),
        name: name.to_owned(),
        members,
        nested: nested.iter().map(|n| (*n).to_owned()).collect(),
        deleted,
    };
    const PILOT: &str = "6f1c2e9a-3b7d-4c51-9e0a-1d2f3a4b5c01";
    const WAVE_2: &str = "6f1c2e9a-3b7d-4c51-9e0a-1d2f3a4b5c02";
    vec![
        group(PILOT, "fido2-pilot", share(0, 12), &[WAVE_2], false),
        group(WAVE_2, "fido2-pilot-wave-2", share(8, 20), &[], false),
        group(
            "0d4e5f60-7a8b-4c9d-8e0f-a1b2c3d4e5f6",
            "finance",
            share(24, 60),
            &[],
            false,
        ),
        group(
            "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
            "helpdesk",
            share(60, 70),
            &[],
            false,
        ),
        group(
            "9e8d7c6b-5a49-4382-9716-05f4e3d2c1b0",
            "contractors-2023",
            share(70, 90),
            &[],
            true,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str, members: Range<usize>, nested: &[&str]) -> FakeGroup {
        FakeGroup {
            id: id.to_owned(),
            name: id.to_owned(),
            members,
            nested: nested.iter().map(|n| (*n).to_owned()).collect(),
            deleted: false,
        }
    }

    #[test]
    fn nested_members_are_listed_once_and_cycles_end() {
        let groups = [
            group("a", 0..10, &["b"]),
            group("b", 5..15, &["c", "a"]),
            group("c", 30..40, &[]),
            FakeGroup {
                deleted: true,
                ..group("d", 0..5, &[])
            },
        ];
        assert_eq!(
            transitive_members(&groups, "A", 100),
            Some(vec![0..15, 30..40])
        );
        let clamped = transitive_members(&groups, "c", 35).unwrap_or_default();
        assert_eq!(clamped.first(), Some(&(30..35)));
        assert_eq!(clamped.len(), 1);
        assert_eq!(transitive_members(&groups, "d", 100), None);
        assert_eq!(transitive_members(&groups, "e", 100), None);
    }

    #[test]
    fn pages_walk_the_ranges_in_order() {
        let ranges = [0..3, 10..12];
        assert_eq!(member_page(&ranges, 0, 2), (vec![0, 1], Some(2)));
        assert_eq!(member_page(&ranges, 2, 2), (vec![2, 10], Some(4)));
        assert_eq!(member_page(&ranges, 4, 2), (vec![11], None));
        assert_eq!(member_page(&[], 0, 2), (vec![], None));
    }
}
