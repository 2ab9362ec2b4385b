//! Reference grammar of the distribution spec: repository names (`HOST[:PORT]/PATH`), tags, and
//! the tag-or-digest a manifest is put under.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use anyhow::{Context, Result, bail, ensure};
use oci_spec::image::Digest;

/// A repository in a registry, `HOST[:PORT]/PATH`, e.g. `ghcr.io/owner/visit-tracker`: what
/// `--image` names. No tag or digest: those are given separately.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepositoryName {
    registry: String,
    repository: String,
}

impl RepositoryName {
    /// The registry host, with its port if it has one: `ghcr.io`, `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The path inside the registry: `owner/visit-tracker`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The repository `name` below this one, as Helm stores a chart under `REPO/<chart name>`.
    pub fn join(&self, name: &str) -> Result<RepositoryName> {
        format!("{self}/{name}").parse()
    }

    /// Whether the registry is on a loopback address, where plain HTTP cannot leave the machine.
    pub fn is_loopback(&self) -> bool {
        is_loopback(&self.registry)
    }
}

impl FromStr for RepositoryName {
    type Err = anyhow::Error;

    /// Accepts `HOST[:PORT]/PATH`, also written `oci://HOST[:PORT]/PATH/`, in any case: registries
    /// accept only lower-case repository names, while owners come from GitHub as they are
    /// spelled there (`ghcr.io/Acme/Visit-Tracker` is `ghcr.io/acme/visit-tracker`). Every
    /// repository the tasks name is parsed here, so this is the one place names are lower-cased.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.strip_prefix("oci://").unwrap_or(s).trim_end_matches('/');
        let s = &s.to_ascii_lowercase();
        let (host, repo) = s.split_once('/').with_context(|| {
            format!("`{s}` is not REGISTRY/REPOSITORY (e.g. ghcr.io/owner/name)")
        })?;
        if host.is_empty() || !(host.contains('.') || host.contains(':') || host == "localhost") {
            bail!("`{s}` does not start with a registry host (e.g. ghcr.io/owner/name)");
        }
        if repo.contains(['@', ':']) {
            bail!("`{s}`: give the repository without a tag or digest (tags have their own flags)");
        }
        let valid = repo.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && part.starts_with(|c: char| c.is_ascii_alphanumeric())
                && part.ends_with(|c: char| c.is_ascii_alphanumeric())
        });
        if !valid {
            bail!(
                "`{repo}` is not a valid repository name (letters, digits and `._-` between \
                 slashes)"
            );
        }
        Ok(RepositoryName {
            registry: host.to_owned(),
            repository: repo.to_owned(),
        })
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

/// A repository as Helm writes one, `oci://HOST[:PORT]/PATH`: what `chart push --repo` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciUrl(pub RepositoryName);

impl FromStr for OciUrl {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        ensure!(s.starts_with("oci://"), "`{s}`: expected oci://HOST/PATH");
        s.parse().map(OciUrl)
    }
}

impl fmt::Display for OciUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}", self.0)
    }
}

/// Whether `registry` (`host[:port]`) names a loopback address.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A tag, as the distribution spec allows it: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`. The one tag
/// type of the tasks: `image build` names the layout's image with it, `image push` and
/// `chart push` put manifests under it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The exact version this tag names, if it names one: `1.2.3`, `2.0.0-rc.1`, or a chart's
    /// `0.4.2_build` (Helm writes semver's `+` as `_`, which tags cannot hold). Floating tags
    /// (`1.2`, `1`, `latest`) and branch tags name none.
    pub fn version(&self) -> Option<semver::Version> {
        semver::Version::parse(&self.0.replace('_', "+")).ok()
    }
}

impl FromStr for Tag {
    type Err = anyhow::Error;

    fn from_str(tag: &str) -> Result<Self> {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        ensure!(
            ok,
            "invalid tag `{tag}`: a tag is 1 to 128 characters of letters, digits, `_`, `.` and \
             `-`, not starting with `.` or `-`"
        );
        Ok(Tag(tag.to_owned()))
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Tag {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Tag {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<Tag> for String {
    fn eq(&self, other: &Tag) -> bool {
        *self == other.0
    }
}

/// What a manifest is put under or fetched by: a tag, or its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Result<(String, String)> {
        s.parse::<RepositoryName>()
            .map(|n| (n.registry().to_owned(), n.repository().to_owned()))
    }

    #[test]
    fn repository_references_are_split_and_checked() {
        assert_eq!(
            split("ghcr.io/owner/visit-tracker").unwrap(),
            ("ghcr.io".into(), "owner/visit-tracker".into())
        );
        assert_eq!(
            split("oci://127.0.0.1:5000/charts/").unwrap(),
            ("127.0.0.1:5000".into(), "charts".into())
        );
        assert!(split("visit-tracker").is_err());
        assert!(split("owner/visit-tracker").is_err());
        assert!(split("ghcr.io/own er/x").is_err());
        assert!(split("ghcr.io/owner/-x").is_err());
        assert!(split("ghcr.io/owner/x:1.0").is_err());
        assert!(split("ghcr.io/owner//x").is_err());
    }

    #[test]
    fn names_are_lower_cased_once_where_they_are_parsed() {
        assert_eq!(
            split("GHCR.io/Acme/Visit-Tracker").unwrap(),
            ("ghcr.io".into(), "acme/visit-tracker".into())
        );
        let charts: OciUrl = "oci://127.0.0.1:5000/Acme/charts".parse().unwrap();
        assert_eq!(
            charts.0.join("Visit-Tracker").unwrap().to_string(),
            "127.0.0.1:5000/acme/charts/visit-tracker"
        );
    }

    #[test]
    fn names_join_and_helm_urls_need_their_scheme() {
        let root: OciUrl = "oci://127.0.0.1:5000/charts".parse().unwrap();
        assert_eq!(root.to_string(), "oci://127.0.0.1:5000/charts");
        let chart = root.0.join("visit-tracker").unwrap();
        assert_eq!(chart.to_string(), "127.0.0.1:5000/charts/visit-tracker");
        assert!(chart.is_loopback());
        assert!(root.0.join("b@d").is_err());
        let err = "127.0.0.1:5000/charts".parse::<OciUrl>().unwrap_err();
        assert!(
            err.to_string().contains("expected oci://HOST/PATH"),
            "{err}"
        );
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "127.0.0.1:5000",
            "localhost:5000",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["ghcr.io", "10.0.0.1:5000", "[2001:db8::1]:5000"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn exact_versions_are_told_from_other_tags() {
        let version = |t: &str| t.parse::<Tag>().unwrap().version().map(|v| v.to_string());
        assert_eq!(version("1.2.3").as_deref(), Some("1.2.3"));
        assert_eq!(version("2.0.0-rc.1").as_deref(), Some("2.0.0-rc.1"));
        assert_eq!(version("0.4.2_abc").as_deref(), Some("0.4.2+abc"));
        for other in [
            "1.2",
            "1",
            "latest",
            "main",
            "sha-0123456",
            "pr-4",
            "v1.2.3",
        ] {
            assert_eq!(version(other), None, "{other}");
        }
    }

    #[test]
    fn invalid_tags_are_refused() {
        for good in ["latest", "1.2.3", "sha-0123456", "_x", &"a".repeat(128)] {
            good.parse::<Tag>().unwrap();
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", "ä", &"a".repeat(129)] {
            assert!(bad.parse::<Tag>().is_err(), "{bad}");
        }
        // The tag cosign gives a signature of an image: `sha256-<hex>.sig`.
        format!("sha256-{}.sig", "0a".repeat(32))
            .parse::<Tag>()
            .unwrap();
        let err = "bad:tag".parse::<Tag>().unwrap_err().to_string();
        assert!(err.starts_with("invalid tag `bad:tag`"), "{err}");
    }
}
