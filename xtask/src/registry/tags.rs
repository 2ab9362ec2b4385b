//! Which of a push's tags are set, from the tags the repository already has: floating tags
//! (`1.2`, `1`, `latest`) move only forward in semver order. (Exact versions never move at all:
//! that needs the digests, and [`super::push`] checks it.)

use std::fmt;

use semver::Version;

use super::name::Tag;

/// A floating tag a push leaves where it is, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Left {
    pub tag: Tag,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The repository has this higher version in the tag's series (a backport was pushed).
    Higher(Version),
    /// The pushed version is this pre-release, and pre-releases never float.
    PreRelease(Version),
}

impl fmt::Display for Left {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Reason::Higher(v) => write!(f, "{} (the registry has {v}, which is higher)", self.tag),
            Reason::PreRelease(v) => write!(f, "{} ({v} is a pre-release)", self.tag),
        }
    }
}

/// What a push does with its tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagPlan {
    /// Set on the root, in the order given.
    pub set: Vec<Tag>,
    pub left: Vec<Left>,
}

/// The versions a floating tag stands for: the highest stable release of its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Series {
    Latest,
    Major(u64),
    Minor(u64, u64),
}

impl Series {
    /// The series `tag` names when it floats over `version`: `latest`, `1` and `1.2` over 1.2.3;
    /// `None` for any other tag (exact versions, branch tags, another series).
    fn of(tag: &Tag, version: &Version) -> Option<Series> {
        let number = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        let series = match tag.as_str().split_once('.') {
            None if tag == "latest" => Series::Latest,
            None => Series::Major(number(tag.as_str())?),
            Some((major, minor)) => Series::Minor(number(major)?, number(minor)?),
        };
        series.contains(version).then_some(series)
    }

    fn contains(self, v: &Version) -> bool {
        match self {
            Series::Latest => true,
            Series::Major(major) => v.major == major,
            Series::Minor(major, minor) => v.major == major && v.minor == minor,
        }
    }
}

impl TagPlan {
    /// Which of `tags` a push sets, given the repository's `existing` tags. The version pushed
    /// is the highest exact version among `tags` (`1.2.3`); the floating tags of its series
    /// (`1.2`, `1`, `latest`) are set only if it is at least the highest stable version the
    /// repository has in that series, and never for a pre-release. Every other tag (exact
    /// versions, `main`, `sha-...`, `pr-N`) is set; without an exact version there is nothing
    /// to compare, and every tag is set.
    pub fn decide(tags: &[Tag], existing: &[Tag]) -> TagPlan {
        let Some(version) = tags.iter().filter_map(Tag::version).max() else {
            return TagPlan {
                set: tags.to_vec(),
                left: Vec::new(),
            };
        };
        let released: Vec<Version> = existing
            .iter()
            .filter_map(Tag::version)
            .filter(|v| v.pre.is_empty())
            .collect();
        let mut plan = TagPlan::default();
        for tag in tags {
            let Some(series) = Series::of(tag, &version) else {
                plan.set.push(tag.clone());
                continue;
            };
            let highest = released.iter().filter(|v| series.contains(v)).max();
            let reason = match highest {
                _ if !version.pre.is_empty() => Some(Reason::PreRelease(version.clone())),
                // Precedence, not equality: `1.2.3+a` and `1.2.3` are the same release.
                Some(h) if h.cmp_precedence(&version).is_gt() => Some(Reason::Higher(h.clone())),
                _ => None,
            };
            match reason {
                Some(reason) => plan.left.push(Left {
                    tag: tag.clone(),
                    reason,
                }),
                None => plan.set.push(tag.clone()),
            }
        }
        plan
    }

    /// Whether [`TagPlan::decide`] needs the repository's tags: only when a floating tag rides
    /// on a version, so a branch push or a chart push lists nothing.
    pub fn needs_existing(tags: &[Tag]) -> bool {
        tags.iter()
            .filter_map(Tag::version)
            .max()
            .is_some_and(|v| tags.iter().any(|t| Series::of(t, &v).is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(names: &[&str]) -> Vec<Tag> {
        names.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn decide(push: &[&str], existing: &[&str]) -> (Vec<String>, Vec<String>) {
        let plan = TagPlan::decide(&tags(push), &tags(existing));
        (
            plan.set.iter().map(ToString::to_string).collect(),
            plan.left.iter().map(ToString::to_string).collect(),
        )
    }

    const RELEASE: [&str; 4] = ["1.1.5", "1.1", "1", "latest"];

    #[test]
    fn a_first_or_newest_release_sets_every_tag() {
        assert_eq!(decide(&RELEASE, &[]).0, RELEASE);
        let existing = ["1.1.4", "1.1", "1", "latest", "1.0.9", "0.9.0", "main"];
        assert_eq!(
            decide(&RELEASE, &existing),
            (RELEASE.map(String::from).to_vec(), vec![])
        );
        // A release pushed again sets its tags again (a re-run completes a cut-off one).
        let existing = ["1.1.5", "1.1", "1.0.0"];
        assert_eq!(decide(&RELEASE, &existing).0, RELEASE);
    }

    #[test]
    fn a_backport_sets_only_the_tags_it_is_still_the_highest_for() {
        let existing = ["1.1.4", "1.2.0", "1.2", "1", "latest"];
        assert_eq!(
            decide(&RELEASE, &existing),
            (
                vec!["1.1.5".into(), "1.1".into()],
                vec![
                    "1 (the registry has 1.2.0, which is higher)".into(),
                    "latest (the registry has 1.2.0, which is higher)".into(),
                ]
            )
        );
        // A newer major line holds `latest` only.
        let (set, left) = decide(&RELEASE, &["2.0.0", "1.0.0"]);
        assert_eq!(set, ["1.1.5", "1.1", "1"]);
        assert_eq!(left, ["latest (the registry has 2.0.0, which is higher)"]);
        // 0.x releases have no bare major tag: `0.4` and `latest` only.
        let (set, left) = decide(&["0.4.2", "0.4", "latest"], &["0.5.0", "0.4.1"]);
        assert_eq!(set, ["0.4.2", "0.4"]);
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn pre_releases_never_float_and_never_hold_a_floating_tag_back() {
        let (set, left) = decide(&["2.0.0-rc.1", "latest"], &[]);
        assert_eq!(set, ["2.0.0-rc.1"]);
        assert_eq!(left, ["latest (2.0.0-rc.1 is a pre-release)"]);
        // The registry's pre-releases do not count: 1.2.0 goes ahead of 1.3.0-rc.1.
        let (set, left) = decide(
            &["1.2.0", "1.2", "1", "latest"],
            &["1.3.0-rc.1", "2.0.0-rc.1"],
        );
        assert_eq!((set.len(), left.len()), (4, 0));
    }

    #[test]
    fn branch_tags_and_pushes_without_a_version_are_unaffected() {
        let existing = ["9.9.9", "latest", "main"];
        assert_eq!(
            decide(&["main", "sha-0123456"], &existing).0,
            ["main", "sha-0123456"]
        );
        // Without an exact version there is nothing to compare: `latest` is set as asked.
        assert_eq!(decide(&["latest"], &existing).0, ["latest"]);
        // Tags of another series than the version's are ordinary tags.
        assert_eq!(
            decide(&["1.1.5", "2", "feature-x"], &existing).0,
            ["1.1.5", "2", "feature-x"]
        );
    }

    #[test]
    fn the_tag_list_is_read_only_when_a_floating_tag_rides_on_a_version() {
        assert!(TagPlan::needs_existing(&tags(&RELEASE)));
        assert!(!TagPlan::needs_existing(&tags(&["1.1.5"])));
        assert!(!TagPlan::needs_existing(&tags(&["0.4.2_abc"])));
        assert!(!TagPlan::needs_existing(&tags(&["main", "sha-0123456"])));
        assert!(!TagPlan::needs_existing(&tags(&["latest"])));
    }
}
