//! What `sign`, `attach` and `verify` name on the command line: one manifest in a repository,
//! `HOST/REPO:TAG`, `HOST/REPO@sha256:HEX` or both (`oci://` allowed, as Helm writes charts).

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use oci_spec::image::Digest;

use crate::registry::name::Reference;
use crate::registry::{RepositoryName, Tag};

/// A manifest by tag, by digest, or by tag pinned to a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub repo: RepositoryName,
    pub tag: Option<Tag>,
    pub digest: Option<Digest>,
}

impl ImageRef {
    /// What to fetch: the digest when there is one (a pinned reference never follows its tag).
    pub fn reference(&self) -> Reference {
        match (&self.digest, &self.tag) {
            (Some(d), _) => Reference::Digest(d.clone()),
            (None, Some(t)) => Reference::Tag(t.clone()),
            (None, None) => unreachable!("parsing requires a tag or a digest"),
        }
    }

    /// The identity a signature names (`critical.identity.docker-reference`): `HOST/REPO:TAG`
    /// when signed by tag, which containers/image requires for images pulled by tag and cosign
    /// accepts; the repository alone when signed by digest, as cosign writes it.
    pub fn identity(&self) -> String {
        match &self.tag {
            Some(tag) => format!("{}:{tag}", self.repo),
            None => self.repo.to_string(),
        }
    }
}

impl FromStr for ImageRef {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let text = s.strip_prefix("oci://").unwrap_or(s);
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => {
                let digest: Digest = digest
                    .parse()
                    .with_context(|| format!("`{s}`: `{digest}` is not a digest (sha256:<hex>)"))?;
                (name, Some(digest))
            }
            None => (text, None),
        };
        // A tag follows the last `:` after the last `/` (a `:` before it is the port).
        let last_part = name.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match name[last_part..].rfind(':') {
            Some(i) => {
                let at = last_part + i;
                let tag: Tag = name[at + 1..]
                    .parse()
                    .with_context(|| format!("`{s}`: bad tag"))?;
                (&name[..at], Some(tag))
            }
            None => (name, None),
        };
        if tag.is_none() && digest.is_none() {
            bail!(
                "`{s}` names no tag or digest: give HOST/REPO:TAG or HOST/REPO@sha256:<hex> \
                 (signatures are made for one manifest, never for `latest` by default)"
            );
        }
        let repo: RepositoryName = repo.parse().with_context(|| format!("`{s}`"))?;
        Ok(ImageRef { repo, tag, digest })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repo)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_digests_ports_and_helm_urls() {
        let hex = "ab".repeat(32);
        let r: ImageRef = "127.0.0.1:5000/team/app:1.2.3".parse().unwrap();
        assert_eq!(r.repo.to_string(), "127.0.0.1:5000/team/app");
        assert_eq!(r.tag.as_ref().unwrap(), "1.2.3");
        assert_eq!(r.identity(), "127.0.0.1:5000/team/app:1.2.3");
        assert_eq!(r.reference().to_string(), "1.2.3");

        let r: ImageRef = format!("oci://ghcr.io/o/charts/visit-tracker@sha256:{hex}")
            .parse()
            .unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.identity(), "ghcr.io/o/charts/visit-tracker");
        assert_eq!(r.reference().to_string(), format!("sha256:{hex}"));

        let pinned = format!("localhost:5000/app:v1@sha256:{hex}");
        let r: ImageRef = pinned.parse().unwrap();
        assert_eq!(r.reference().to_string(), format!("sha256:{hex}"));
        assert_eq!(r.identity(), "localhost:5000/app:v1");
        assert_eq!(r.to_string(), pinned);
    }

    #[test]
    fn a_reference_without_tag_or_digest_or_registry_is_refused() {
        let err = "127.0.0.1:5000/team/app".parse::<ImageRef>().unwrap_err();
        assert!(
            format!("{err:#}").contains("names no tag or digest"),
            "{err:#}"
        );
        assert!("team/app:1.0".parse::<ImageRef>().is_err());
        assert!("ghcr.io/o/app@sha256:xyz".parse::<ImageRef>().is_err());
        assert!("ghcr.io/o/app:bad/tag".parse::<ImageRef>().is_err());
    }
}
