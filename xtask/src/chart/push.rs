//! `cargo xtask chart push`: the packaged chart as a push set with Helm's media types.
//!
//! The artifact is what `helm push` makes: a config blob holding Chart.yaml as JSON, one layer
//! with the `.tgz`, and a manifest tagged with the chart version, under `REPO/<chart name>`. So
//! `helm pull oci://REPO/visit-tracker --version X` and `helm install oci://...` work.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use oci_spec::image::{
    ANNOTATION_DESCRIPTION, ANNOTATION_TITLE, ANNOTATION_VERSION, Descriptor, ImageManifestBuilder,
    MediaType,
};
use xshell::Shell;

use crate::image::oci::canonical_json;
use crate::registry::{
    self, Blob, Manifest, OciUrl, PushSet, RegistryArgs, Repo, RepositoryName, Tag,
};
use crate::term::{PushProgress, human_size};
use crate::workspace::Workspace;

pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.helm.config.v1+json";
pub const CHART_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

/// Pushes the packaged chart to an OCI registry as REPO/<chart>:<version>, like `helm push`.
#[derive(Debug, Args)]
pub struct Push {
    /// The OCI repository root, e.g. oci://ghcr.io/owner/charts (the chart name is appended).
    #[arg(long, value_name = "oci://HOST/PATH")]
    pub repo: OciUrl,
    /// The chart package [default: <target-dir>/charts/visit-tracker-<version>.tgz, from
    /// `cargo xtask chart package`].
    #[arg(long, value_name = "FILE")]
    pub package: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl Push {
    pub fn run(self, sh: &Shell) -> Result<()> {
        self.push(sh).map(drop)
    }

    /// Does all `run` does and returns the chart's repository, what it holds and what was
    /// pushed, so `release` records the chart's digest.
    pub fn push(self, sh: &Shell) -> Result<(RepositoryName, ChartMeta, registry::Pushed)> {
        let package = match self.package {
            Some(p) => sh.current_dir().join(p),
            None => default_package()?,
        };
        let tgz =
            std::fs::read(&package).with_context(|| format!("reading {}", package.display()))?;
        let (chart, set) = push_set(&tgz)
            .with_context(|| format!("reading the chart package {}", package.display()))?;
        let name = self.repo.0.join(&chart.name)?;
        let repo = Repo::open(&self.registry, &name)?;
        let pushed = registry::push(&repo, &set, Arc::new(PushProgress::new()))?;
        let reference = format!("{name}:{}", chart.tag);
        eprintln!(
            "pushed chart {} {} ({}) as oci://{reference}",
            chart.name,
            chart.version,
            human_size(tgz.len() as u64)
        );
        println!("{reference}@{}", pushed.digest);
        // Named apart from `image push`'s `digest`: a release writes both to one step's outputs.
        crate::github_output(&[
            ("chart-name", &name.to_string()),
            ("chart-digest", pushed.digest.as_ref()),
        ])?;
        Ok((name, chart, pushed))
    }
}

/// The package `chart package` writes by default for the chart in the tree.
fn default_package() -> Result<PathBuf> {
    let package = Workspace::current()?.chart_package()?;
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

/// Which chart a package holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartMeta {
    pub name: String,
    pub version: String,
    /// The registry tag: the version, with `+` (not allowed in tags) as `_` like Helm does.
    pub tag: Tag,
}

/// The chart in a `.tgz` as Helm stores it in a registry: its `<chart>/Chart.yaml` as the
/// config blob, the package as the one layer, the manifest tagged with the version.
pub fn push_set(tgz: &[u8]) -> Result<(ChartMeta, PushSet)> {
    let chart_yaml = chart_yaml_of(tgz)?;
    let meta = chart_json(&chart_yaml).context("parsing Chart.yaml")?;
    let name = field(&meta, "name")?.to_owned();
    let version = field(&meta, "version")?.to_owned();
    semver::Version::parse(&version)
        .with_context(|| format!("Chart.yaml version `{version}` is not semver"))?;
    let tag: Tag = version.replace('+', "_").parse()?;
    let config = Blob::from_bytes(serde_json::to_vec(&meta)?, Some("config"));
    let chart = Blob::from_bytes(tgz.to_vec(), Some("chart"));
    let descriptor = |media_type: &str, blob: &Blob| {
        Descriptor::new(media_type.into(), blob.size, blob.digest.clone())
    };
    let mut annotations = HashMap::from([
        (ANNOTATION_TITLE.to_owned(), name.clone()),
        (ANNOTATION_VERSION.to_owned(), version.clone()),
    ]);
    if let Some(d) = meta["description"].as_str() {
        annotations.insert(ANNOTATION_DESCRIPTION.to_owned(), d.to_owned());
    }
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(CONFIG_MEDIA_TYPE, &config))
        .layers(vec![descriptor(CHART_MEDIA_TYPE, &chart)])
        .annotations(annotations)
        .build()?;
    // The same canonical JSON as the image's manifests: sorted keys, so the same chart gives
    // the same digest on every push.
    let manifest = Manifest::new(MediaType::ImageManifest, canonical_json(&manifest)?);
    let set = PushSet {
        blobs: vec![config, chart],
        manifests: vec![manifest],
        tags: vec![tag.clone()],
    };
    Ok((ChartMeta { name, version, tag }, set))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::oci::sha256_digest;

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
        let (chart, set) = push_set(&tgz).unwrap();
        assert_eq!(
            (chart.name.as_str(), chart.tag.as_str()),
            ("demo", "0.2.0_abc")
        );
        assert_eq!(set.tags, std::slice::from_ref(&chart.tag));
        let root = set.root().unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(&root.bytes).unwrap();
        assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        assert_eq!(manifest["layers"][0]["mediaType"], CHART_MEDIA_TYPE);
        assert_eq!(manifest["layers"][0]["digest"], sha256_digest(&tgz));
        assert!(push_set(b"not gzip").is_err());

        // The exact bytes, as charts were pushed before the manifest was built with oci-spec:
        // sorted keys, no spaces. A change here changes the digest of every chart release.
        let config = br#"{"apiVersion":"v2","name":"demo","version":"0.2.0+abc"}"#;
        assert_eq!(&set.blobs[0].digest.to_string(), &sha256_digest(config));
        let expected = format!(
            r#"{{"annotations":{{"org.opencontainers.image.title":"demo","org.opencontainers.image.version":"0.2.0+abc"}},"config":{{"digest":"{}","mediaType":"{CONFIG_MEDIA_TYPE}","size":{}}},"layers":[{{"digest":"{}","mediaType":"{CHART_MEDIA_TYPE}","size":{}}}],"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}}"#,
            sha256_digest(config),
            config.len(),
            sha256_digest(&tgz),
            tgz.len()
        );
        assert_eq!(String::from_utf8_lossy(&root.bytes), expected);
        assert_eq!(root.digest.to_string(), sha256_digest(expected.as_bytes()));
    }
}
