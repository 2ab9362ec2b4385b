//! The release record, `<target>/release/<tag>.json`: what one release published (image, chart,
//! SBOMs, provenance, signatures, attestations), by digest, in the shape record.schema.json fixes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::tools;

/// The record's schema, committed beside this file; tests validate real records against it.
pub const SCHEMA: &str = include_str!("record.schema.json");
/// Bumped when a field changes meaning or goes away (adding one does not).
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub schema_version: u32,
    /// The release tag, `v1.2.3`.
    pub tag: String,
    pub version: String,
    pub image: Image,
    pub chart: Chart,
    /// `None` with `--no-attest`.
    pub attestations: Option<Attestations>,
    /// `None` without `--key` (on GitHub the workflow signs keyless after the release).
    pub signatures: Option<Signatures>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// Without tag or digest.
    pub repository: String,
    /// The image index.
    pub digest: String,
    pub platforms: Vec<PlatformImage>,
    /// The tags that point at the index now.
    pub tags: Vec<String>,
    /// Floating tags the push left where they were.
    pub tags_left_alone: Vec<LeftTag>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlatformImage {
    /// `os/arch`.
    pub platform: String,
    /// The platform manifest.
    pub digest: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LeftTag {
    pub tag: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Chart {
    /// `oci://HOST/NAMESPACE/charts/NAME:VERSION`, what `helm install` takes.
    pub reference: String,
    pub repository: String,
    pub version: String,
    /// The chart manifest.
    pub digest: String,
    pub package: File,
}

/// A file the release wrote, with the sha256 of its bytes.
#[derive(Debug, Clone, Serialize)]
pub struct File {
    pub path: String,
    pub sha256: String,
}

impl File {
    pub fn read(path: &Path) -> Result<File> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(File {
            path: path.display().to_string(),
            sha256: tools::hex_digest(&bytes),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Attestations {
    pub sboms: Vec<Sbom>,
    pub provenance: Provenance,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sbom {
    pub platform: String,
    /// The platform manifest the SBOM is about.
    pub subject: String,
    /// The CycloneDX document.
    pub file: File,
    /// The in-toto statement wrapping it (what is signed).
    pub statement: File,
}

#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    /// The image index.
    pub subject: String,
    pub file: File,
}

#[derive(Debug, Clone, Serialize)]
pub struct Signatures {
    pub image: Signature,
    pub chart: Signature,
    pub attestations: Vec<Attestation>,
}

/// A cosign signature: `REPO:sha256-<hex>.sig`.
#[derive(Debug, Clone, Serialize)]
pub struct Signature {
    /// The signed manifest.
    pub digest: String,
    /// `REPOSITORY:sha256-<hex>.sig`.
    pub reference: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    /// The manifest the statement is about.
    pub subject: String,
    pub predicate_type: String,
    /// The OCI 1.1 artifact manifests (`REPOSITORY@sha256:...`) whose subject is `subject`.
    pub referrers: Vec<String>,
    /// `REPOSITORY:sha256-<hex>`, the referrers tag schema's index, where the registry has no
    /// referrers API; `None` where the API lists them.
    pub referrers_tag: Option<String>,
    /// `REPOSITORY:sha256-<hex>.att`, cosign's form, which `cosign verify-attestation` reads.
    pub cosign: String,
}

impl Record {
    /// Writes the record as `<dir>/<tag>.json`, atomically, and returns its path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(format!("{}.json", self.tag));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut text = serde_json::to_vec_pretty(self)?;
        text.push(b'\n');
        tools::write_atomic(&path, &text)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_json_and_names_every_top_level_field() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        let record = Record {
            schema_version: SCHEMA_VERSION,
            tag: "v1.2.3".into(),
            version: "1.2.3".into(),
            image: Image {
                repository: "r/i".into(),
                digest: "d".into(),
                platforms: Vec::new(),
                tags: Vec::new(),
                tags_left_alone: Vec::new(),
            },
            chart: Chart {
                reference: "oci://r/c:1.2.3".into(),
                repository: "r/c".into(),
                version: "1.2.3".into(),
                digest: "d".into(),
                package: File {
                    path: "p".into(),
                    sha256: "s".into(),
                },
            },
            attestations: None,
            signatures: None,
        };
        let json = serde_json::to_value(&record).unwrap();
        let properties = schema["properties"].as_object().unwrap();
        let fields: Vec<&String> = json.as_object().unwrap().keys().collect();
        let described: Vec<&String> = properties.keys().collect();
        assert_eq!(fields, described);
        assert_eq!(
            schema["properties"]["schemaVersion"]["const"],
            SCHEMA_VERSION
        );
    }
}
