//! Pushes the packaged chart to an OCI registry with Helm's media types.
//!
//! The artifact is what `helm push` makes: a config blob holding Chart.yaml as JSON, one layer
//! with the `.tgz`, and a manifest tagged with the chart version, under `REPO/<chart name>`. So
//! `helm pull oci://REPO/visit-tracker --version X` and `helm install oci://...` work.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use xshell::Shell;

use crate::registry::{self, Progress, RegistryArgs, Repo, human, short};

pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.helm.config.v1+json";
pub const CHART_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CHART_DIR: &str = "charts/visit-tracker";

/// Pushes the packaged chart to an OCI registry as REPO/<chart>:<version>, like `helm push`.
#[derive(Debug, Args)]
pub struct Push {
    /// The OCI repository root, e.g. oci://ghcr.io/owner/charts (the chart name is appended).
    #[arg(long, value_name = "oci://HOST/PATH")]
    pub repo: String,
    /// The chart package (default: target/charts/visit-tracker-<version>.tgz, from
    /// `cargo xtask chart package`).
    #[arg(long, value_name = "FILE")]
    pub package: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl Push {
    pub fn run(self, sh: &Shell) -> Result<()> {
        ensure!(
            self.repo.starts_with("oci://"),
            "--repo `{}`: expected oci://HOST/PATH",
            self.repo
        );
        let (host, path) = registry::split_repository(&self.repo)?;
        let package = match self.package {
            Some(p) => sh.current_dir().join(p),
            None => default_package(&sh.current_dir())?,
        };
        let tgz = registry::read(&package)?;
        let artifact = Artifact::from_package(&tgz)
            .with_context(|| format!("reading the chart package {}", package.display()))?;
        let repository = format!("{path}/{}", artifact.name);
        let repo = Repo::open(&self.registry, &host, &repository)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(push(&repo, &artifact))?;
        let reference = format!("{host}/{repository}:{}", artifact.tag());
        eprintln!(
            "pushed chart {} {} ({}) as oci://{reference}",
            artifact.name,
            artifact.version,
            human(tgz.len() as u64)
        );
        println!("{reference}@{}", artifact.manifest_digest());
        Ok(())
    }
}

/// `target/charts/<name>-<version>.tgz` for the chart in the tree.
fn default_package(root: &Path) -> Result<PathBuf> {
    let chart_yaml = root.join(CHART_DIR).join("Chart.yaml");
    let text = std::fs::read_to_string(&chart_yaml)
        .with_context(|| format!("reading {}", chart_yaml.display()))?;
    let meta = chart_json(&text).with_context(|| format!("parsing {}", chart_yaml.display()))?;
    let (name, version) = (field(&meta, "name")?, field(&meta, "version")?);
    let package = root.join(format!("target/charts/{name}-{version}.tgz"));
    ensure!(
        package.is_file(),
        "{} does not exist: run `cargo xtask chart package` first, or pass --package FILE",
        package.display()
    );
    Ok(package)
}

fn field<'a>(meta: &'a serde_json::Value, key: &str) -> Result<&'a str> {
    meta[key]
        .as_str()
        .filter(|s| !s.is_empty())
        .with_context(|| format!("Chart.yaml has no `{key}`"))
}

/// The chart as Helm stores it in a registry: config, layer and manifest bytes.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub name: String,
    pub version: String,
    pub config: Vec<u8>,
    pub layer: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl Artifact {
    /// Builds the artifact from a chart `.tgz`: its `<chart>/Chart.yaml` becomes the config.
    pub fn from_package(tgz: &[u8]) -> Result<Artifact> {
        let chart_yaml = chart_yaml_of(tgz)?;
        let meta = chart_json(&chart_yaml).context("parsing Chart.yaml")?;
        let name = field(&meta, "name")?.to_owned();
        let version = field(&meta, "version")?.to_owned();
        semver::Version::parse(&version)
            .with_context(|| format!("Chart.yaml version `{version}` is not semver"))?;
        let config = serde_json::to_vec(&meta)?;
        let descriptor = |media_type: &str, bytes: &[u8]| {
            serde_json::json!({
                "mediaType": media_type,
                "digest": digest(bytes),
                "size": bytes.len(),
            })
        };
        let mut annotations = serde_json::Map::new();
        annotations.insert("org.opencontainers.image.title".into(), name.clone().into());
        annotations.insert(
            "org.opencontainers.image.version".into(),
            version.clone().into(),
        );
        if let Some(d) = meta["description"].as_str() {
            annotations.insert("org.opencontainers.image.description".into(), d.into());
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": descriptor(CONFIG_MEDIA_TYPE, &config),
            "layers": [descriptor(CHART_MEDIA_TYPE, tgz)],
            "annotations": annotations,
        }))?;
        Ok(Artifact {
            name,
            version,
            config,
            layer: tgz.to_vec(),
            manifest,
        })
    }

    /// The registry tag: the version, with `+` (not allowed in tags) as `_` like Helm does.
    pub fn tag(&self) -> String {
        self.version.replace('+', "_")
    }

    pub fn manifest_digest(&self) -> String {
        digest(&self.manifest)
    }
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::tools::hex_digest(bytes))
}

/// The text of `<chart>/Chart.yaml` inside a chart package.
fn chart_yaml_of(tgz: &[u8]) -> Result<String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    for entry in archive.entries().context("not a gzip tar archive")? {
        let mut entry = entry.context("reading the archive")?;
        let path = entry.path()?.into_owned();
        let parts: Vec<_> = path.components().collect();
        if parts.len() == 2 && path.ends_with("Chart.yaml") {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            return Ok(text);
        }
    }
    bail!("no <chart>/Chart.yaml in the archive: not a Helm chart package")
}

/// Chart.yaml as the JSON Helm writes into the config blob. Helm's metadata has only string,
/// boolean, list and map fields, so numbers are kept as the strings Helm would read them as.
pub fn chart_json(yaml: &str) -> Result<serde_json::Value> {
    use saphyr::{LoadableYamlNode, Scalar, Yaml};
    fn convert(y: &Yaml) -> Result<serde_json::Value> {
        Ok(match y {
            Yaml::Value(Scalar::Null) => serde_json::Value::Null,
            Yaml::Value(Scalar::Boolean(b)) => (*b).into(),
            Yaml::Value(Scalar::Integer(i)) => i.to_string().into(),
            Yaml::Value(Scalar::FloatingPoint(f)) => f.to_string().into(),
            Yaml::Value(Scalar::String(s)) => s.to_string().into(),
            Yaml::Sequence(items) => items.iter().map(convert).collect::<Result<_>>()?,
            Yaml::Mapping(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    let key = match convert(k)? {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    out.insert(key, convert(v)?);
                }
                out.into()
            }
            Yaml::Tagged(_, inner) => convert(inner)?,
            other => bail!("unsupported YAML node {other:?}"),
        })
    }
    let docs = Yaml::load_from_str(yaml).context("invalid YAML")?;
    let doc = docs.first().context("empty document")?;
    ensure!(doc.is_mapping(), "Chart.yaml is not a mapping");
    convert(doc)
}

/// Uploads the config and the package (each only if missing), then the manifest under the
/// version tag, last.
pub async fn push(repo: &Repo, artifact: &Artifact) -> Result<()> {
    repo.login().await?;
    let progress = Arc::new(Progress::new(artifact.layer.len() as u64));
    for (bytes, what) in [(&artifact.config, "config"), (&artifact.layer, "chart")] {
        let d = digest(bytes);
        if repo.blob_exists(&d).await? {
            progress.line(&format!("  {}  {what} already in the registry", short(&d)));
        } else {
            repo.push_blob(&d, &bytes::Bytes::from(bytes.clone()), &progress)
                .await?;
            progress.line(&format!(
                "  {}  {what} uploaded ({})",
                short(&d),
                human(bytes.len() as u64)
            ));
        }
    }
    repo.push_manifest(&artifact.tag(), &artifact.manifest, MANIFEST_MEDIA_TYPE)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_yaml_becomes_helm_config_json() {
        let meta = chart_json(
            "apiVersion: v2\nname: x\nversion: 1.2.3+build.1\nappVersion: \"1.0\"\n\
             kubeVersion: \">=1.30.0-0\"\ndeprecated: false\nmaintainers:\n  - name: me\n\
             annotations:\n  a/b: c\nkeywords: [redis]\n",
        )
        .unwrap();
        assert_eq!(
            meta,
            serde_json::json!({
                "apiVersion": "v2", "name": "x", "version": "1.2.3+build.1", "appVersion": "1.0",
                "kubeVersion": ">=1.30.0-0", "deprecated": false,
                "maintainers": [{"name": "me"}], "annotations": {"a/b": "c"},
                "keywords": ["redis"],
            })
        );
        assert!(chart_json("- a\n").is_err());
    }

    #[test]
    fn artifact_uses_helm_media_types_and_a_tag_without_plus() {
        let mut tgz = Vec::new();
        {
            let gz = flate2::write::GzEncoder::new(&mut tgz, flate2::Compression::default());
            let mut tar = tar::Builder::new(gz);
            let chart = b"apiVersion: v2\nname: demo\nversion: 0.2.0+abc\n";
            let mut header = tar::Header::new_gnu();
            header.set_size(chart.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, "demo/Chart.yaml", &chart[..])
                .unwrap();
            tar.into_inner().unwrap().finish().unwrap();
        }
        let a = Artifact::from_package(&tgz).unwrap();
        assert_eq!((a.name.as_str(), a.tag().as_str()), ("demo", "0.2.0_abc"));
        let manifest: serde_json::Value = serde_json::from_slice(&a.manifest).unwrap();
        assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        assert_eq!(manifest["layers"][0]["mediaType"], CHART_MEDIA_TYPE);
        assert_eq!(manifest["layers"][0]["digest"], digest(&tgz));
        assert!(Artifact::from_package(b"not gzip").is_err());
    }
}
