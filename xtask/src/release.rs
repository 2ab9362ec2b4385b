//! `cargo xtask release vX.Y.Z`: image with its semver tags, chart bumped, packaged and pushed,
//! SBOM; what `.github/workflows/release.yml` runs before GitHub signs, attests and publishes.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser};
use serde_json::Value;
use xshell::{Shell, cmd};

use crate::{Cli, cargo, scan::sbom::SBOM_PATH};

/// The crate whose version a release tag must carry.
const APP: &str = "visit-tracker";
/// Where `chart package` writes the archive the release pushes and attaches.
const CHART_DIR: &str = "target/chart";

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

/// Everything a release does, decided from the tag, the crate version and the registry alone.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub version: String,
    /// The image repository, without tag or digest.
    pub image: String,
    pub chart_package: String,
    /// `cargo xtask` invocations, in order.
    pub steps: Vec<Vec<String>>,
}

/// The release plan for `tag`, or why the tag cannot be released.
pub fn plan(tag: &str, crate_version: &str, registry: &str) -> Result<Plan> {
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
    let image = format!("{registry}/{APP}");
    let chart_package = format!("{CHART_DIR}/{APP}-{version}.tgz");
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
        ]),
        s(&[
            "chart",
            "bump",
            "--version",
            version,
            "--app-version",
            version,
        ]),
        s(&["chart", "package", "--output", CHART_DIR]),
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

impl Release {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let plan = plan(&self.tag, &crate_version(sh)?, &self.registry)?;
        eprintln!(
            "release {}: image {}, chart {}",
            self.tag, plan.image, plan.chart_package
        );
        for step in &plan.steps {
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
        }
        let outputs = [
            ("image-name", plan.image.as_str()),
            ("chart", plan.chart_package.as_str()),
            ("sbom", SBOM_PATH),
        ];
        if self.dry_run {
            println!(
                "would then, on GitHub only: sign {}@<digest> with cosign (keyless), attest build provenance and the SBOM, publish the GitHub release with notes, {} and {SBOM_PATH}",
                plan.image, plan.chart_package
            );
            return Ok(());
        }
        // release.yml's later steps (signing, attestations, the GitHub release) read these; the
        // image digest is already there, written by `image push`.
        if let Some(path) = std::env::var_os("GITHUB_OUTPUT").filter(|p| !p.is_empty()) {
            use std::io::Write;
            let mut out = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .with_context(|| format!("opening $GITHUB_OUTPUT {}", path.to_string_lossy()))?;
            for (key, value) in outputs {
                writeln!(out, "{key}={value}")?;
            }
        }
        eprintln!("\nrelease {}: done", self.tag);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_builds_pushes_bumps_packages_and_pushes_in_order() {
        let plan = plan("v1.2.3", "1.2.3", "ghcr.io/acme/").unwrap();
        assert_eq!(plan.version, "1.2.3");
        assert_eq!(plan.image, "ghcr.io/acme/visit-tracker");
        assert_eq!(plan.chart_package, "target/chart/visit-tracker-1.2.3.tgz");
        let lines: Vec<String> = plan.steps.iter().map(|s| s.join(" ")).collect();
        assert_eq!(
            lines,
            [
                "image build",
                "image push --image ghcr.io/acme/visit-tracker --tags-from-ref refs/tags/v1.2.3",
                "chart bump --version 1.2.3 --app-version 1.2.3",
                "chart package --output target/chart",
                "chart push --repo oci://ghcr.io/acme/charts --package target/chart/visit-tracker-1.2.3.tgz",
                "security-scan --only sbom",
            ]
        );
    }

    #[test]
    fn pre_releases_are_released_under_their_own_version() {
        let plan = plan("v2.0.0-rc.1", "2.0.0-rc.1", "127.0.0.1:5000/t").unwrap();
        assert!(plan.steps[1].contains(&"refs/tags/v2.0.0-rc.1".to_owned()));
    }

    #[test]
    fn tags_that_do_not_match_the_crate_are_refused_with_the_fix() {
        let err = plan("v1.2.4", "1.2.3", "ghcr.io/acme")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not match") && err.contains("v1.2.3"),
            "{err}"
        );
        let err = plan("1.2.3", "1.2.3", "ghcr.io/acme")
            .unwrap_err()
            .to_string();
        assert!(err.contains("must start with `v`"), "{err}");
        assert!(plan("v1.2", "1.2", "ghcr.io/acme").is_err());
        let err = plan("v1.2.3", "1.2.3", "https://ghcr.io/acme")
            .unwrap_err()
            .to_string();
        assert!(err.contains("without a scheme"), "{err}");
    }
}
