//! `cargo xtask release vX.Y.Z`: image with its semver tags, chart bumped, packaged and pushed,
//! SBOM; what `.github/workflows/release.yml` runs before GitHub signs, attests and publishes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser};
use serde_json::Value;
use xshell::{Shell, cmd};

use crate::{Cli, cargo, chart, scan::sbom::SBOM_PATH};

/// The crate whose version a release tag must carry.
const APP: &str = "visit-tracker";
/// Where `chart package` writes the archive the release pushes and attaches.
const CHART_OUT: &str = "target/charts";
/// Stands for the pushed image's digest in the plan until `image push` has run.
pub const DIGEST: &str = "<pushed-image-digest>";

/// Release a version: check the tag, build and push the image, bump, package and push the chart.
#[derive(Debug, Args)]
pub struct Release {
    /// The release tag, v<semver> (e.g. v1.2.3); must equal the app crate's version.
    #[arg(value_name = "vX.Y.Z")]
    pub tag: String,
    /// Registry and namespace for the image (`<registry>/visit-tracker`) and the chart
    /// (`oci://<registry>/charts`).
    #[arg(long, env = "REGISTRY", default_value = "ghcr.io/visit-tracker")]
    pub registry: String,
    /// Print every action, run none (the tag is still checked against the crate version).
    #[arg(long)]
    pub dry_run: bool,
}

/// Everything a release does, decided from the tag, the versions and the registry alone.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub version: String,
    /// The image repository, without tag or digest.
    pub image: String,
    pub chart_version: String,
    pub chart_package: String,
    /// `cargo xtask` invocations, in order; [`DIGEST`] is filled in after `image push`.
    pub steps: Vec<Vec<String>>,
}

/// The release plan for `tag`, or why the tag cannot be released. `layout` is the OCI layout
/// `image build` writes (under the cargo target directory).
///
/// The chart is released as the next patch of its committed version, with `appVersion` = the
/// release and the image pinned by digest; minor and major chart changes come in pull requests
/// (`chart bump`, checked by CI).
pub fn plan(
    tag: &str,
    crate_version: &str,
    chart_version: &str,
    registry: &str,
    layout: &str,
) -> Result<Plan> {
    let Some(version) = tag.strip_prefix('v') else {
        bail!("release tag `{tag}` must start with `v` (e.g. v{crate_version})");
    };
    semver::Version::parse(version)
        .with_context(|| format!("release tag `{tag}` is not v<semver>"))?;
    if version != crate_version {
        bail!(
            "release tag `{tag}` does not match the `{APP}` crate version {crate_version} \
             (app/Cargo.toml): bump the crate, or tag v{crate_version}"
        );
    }
    let registry = registry.trim_end_matches('/');
    if registry.is_empty() || registry.contains("://") {
        bail!("--registry `{registry}` must be HOST[:PORT]/NAMESPACE, without a scheme");
    }
    let chart = semver::Version::parse(chart_version)
        .with_context(|| format!("chart version `{chart_version}` is not semver"))?;
    let chart_version = semver::Version::new(chart.major, chart.minor, chart.patch + 1).to_string();
    let image = format!("{registry}/{APP}");
    let chart_package = format!("{CHART_OUT}/{APP}-{chart_version}.tgz");
    let s = |parts: &[&str]| parts.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    let steps = vec![
        s(&["image", "build"]),
        s(&[
            "image",
            "push",
            "--image",
            &image,
            "--tags-from-ref",
            &format!("refs/tags/{tag}"),
            "--layout",
            layout,
        ]),
        s(&[
            "chart",
            "bump",
            &chart_version,
            "--app-version",
            version,
            "--digest",
            DIGEST,
        ]),
        s(&["chart", "package", "--out-dir", CHART_OUT]),
        s(&[
            "chart",
            "push",
            "--repo",
            &format!("oci://{registry}/charts"),
            "--package",
            &chart_package,
        ]),
        s(&["security-scan", "--only", "sbom"]),
    ];
    Ok(Plan {
        version: version.to_owned(),
        image,
        chart_version,
        chart_package,
        steps,
    })
}

/// The app crate's version, from `cargo metadata`.
fn crate_version(sh: &Shell) -> Result<String> {
    let cargo = cargo();
    let json = cmd!(sh, "{cargo} metadata --format-version 1 --no-deps --locked")
        .quiet()
        .read()?;
    let meta: Value = serde_json::from_str(&json)?;
    meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == APP)
        .and_then(|p| p["version"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("no `{APP}` package in the workspace"))
}

/// The digest of the image index in an OCI layout: what `image push` pushed by digest.
fn index_digest(layout: &Path) -> Result<String> {
    let path = layout.join("index.json");
    let index: Value = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    index["manifests"][0]["digest"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{}: no manifest digest", path.display()))
}

impl Release {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let root = sh.current_dir();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(|d| root.join(d))
            .unwrap_or_else(|| root.join("target"));
        let layout: PathBuf = target.join("oci").join(APP);
        let chart_yaml = root.join(chart::CHART_DIR).join("Chart.yaml");
        let chart_text = std::fs::read_to_string(&chart_yaml)
            .with_context(|| format!("reading {}", chart_yaml.display()))?;
        let chart_version = chart::chart_field(&chart_text, "version")
            .with_context(|| format!("{}: no version", chart_yaml.display()))?;
        let plan = plan(
            &self.tag,
            &crate_version(sh)?,
            &chart_version,
            &self.registry,
            &layout.to_string_lossy(),
        )?;
        eprintln!(
            "release {}: image {}, chart {} ({})",
            self.tag, plan.image, plan.chart_version, plan.chart_package
        );
        let mut digest = None;
        for step in &plan.steps {
            let step: Vec<String> = step
                .iter()
                .map(|a| match (&digest, a.as_str()) {
                    (Some(d), DIGEST) => String::clone(d),
                    _ => a.clone(),
                })
                .collect();
            let line = format!("cargo xtask {}", step.join(" "));
            if self.dry_run {
                println!("would run: {line}");
                continue;
            }
            eprintln!("\n==> {line}");
            let cli = Cli::try_parse_from(
                std::iter::once("cargo xtask").chain(step.iter().map(String::as_str)),
            )
            .with_context(|| format!("parsing `{line}`"))?;
            cli.task
                .run(sh)
                .with_context(|| format!("`{line}` failed"))?;
            if step[..2] == ["image", "push"] {
                digest = Some(index_digest(&layout)?);
            }
        }
        if self.dry_run {
            println!(
                "would then, on GitHub only: sign {}@<digest> with cosign (keyless), attest build \
                 provenance and the SBOM, publish the GitHub release with notes, {} and {SBOM_PATH}",
                plan.image, plan.chart_package
            );
            return Ok(());
        }
        // release.yml's later steps (signing, attestations, the GitHub release) read these; the
        // image digest is already there, written by `image push`.
        crate::github_output(&[
            ("image-name", &plan.image),
            ("chart", &plan.chart_package),
            ("sbom", SBOM_PATH),
        ])?;
        eprintln!("\nrelease {}: done", self.tag);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_builds_pushes_bumps_packages_and_pushes_in_order() {
        let plan = plan(
            "v1.2.3",
            "1.2.3",
            "0.4.1",
            "ghcr.io/acme/",
            "/t/oci/visit-tracker",
        )
        .unwrap();
        assert_eq!(plan.version, "1.2.3");
        assert_eq!(plan.image, "ghcr.io/acme/visit-tracker");
        assert_eq!(plan.chart_version, "0.4.2");
        assert_eq!(plan.chart_package, "target/charts/visit-tracker-0.4.2.tgz");
        let lines: Vec<String> = plan.steps.iter().map(|s| s.join(" ")).collect();
        assert_eq!(
            lines,
            [
                "image build",
                "image push --image ghcr.io/acme/visit-tracker --tags-from-ref refs/tags/v1.2.3 \
                 --layout /t/oci/visit-tracker",
                "chart bump 0.4.2 --app-version 1.2.3 --digest <pushed-image-digest>",
                "chart package --out-dir target/charts",
                "chart push --repo oci://ghcr.io/acme/charts \
                 --package target/charts/visit-tracker-0.4.2.tgz",
                "security-scan --only sbom",
            ]
        );
    }

    #[test]
    fn pre_releases_are_released_under_their_own_version() {
        let plan = plan(
            "v2.0.0-rc.1",
            "2.0.0-rc.1",
            "1.0.0",
            "127.0.0.1:5000/t",
            "l",
        )
        .unwrap();
        assert!(plan.steps[1].contains(&"refs/tags/v2.0.0-rc.1".to_owned()));
        assert!(plan.steps[2].contains(&"2.0.0-rc.1".to_owned()));
    }

    #[test]
    fn tags_that_do_not_match_the_crate_are_refused_with_the_fix() {
        let err = plan("v1.2.4", "1.2.3", "0.1.0", "ghcr.io/acme", "l")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not match") && err.contains("v1.2.3"),
            "{err}"
        );
        let err = plan("1.2.3", "1.2.3", "0.1.0", "ghcr.io/acme", "l")
            .unwrap_err()
            .to_string();
        assert!(err.contains("must start with `v`"), "{err}");
        assert!(plan("v1.2", "1.2", "0.1.0", "ghcr.io/acme", "l").is_err());
        let err = plan("v1.2.3", "1.2.3", "0.1.0", "https://ghcr.io/acme", "l")
            .unwrap_err()
            .to_string();
        assert!(err.contains("without a scheme"), "{err}");
    }
}
