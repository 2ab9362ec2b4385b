//! `cargo xtask release vX.Y.Z`: image with its semver tags, chart bumped, packaged and pushed,
//! SBOMs and provenance; what `.github/workflows/release.yml` runs before GitHub signs, attests and publishes.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use oci_spec::image::Digest;
use semver::Version;
use xshell::Shell;

use crate::attest::provenance::BuildTimes;
use crate::image::push::GitRef;
use crate::registry::{OciUrl, RegistryArgs, RepositoryName};
use crate::workspace::{ChartMeta, Workspace};
use crate::{attest, chart, image, task_defaults};

/// The crate whose version a release tag must carry.
const APP: &str = crate::workspace::APP;
/// Stands for the pushed image's digest in a printed plan until `image push` has run.
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
    pub image: RepositoryName,
    pub chart_version: String,
    pub chart_package: PathBuf,
    /// In order; the image digest reaches `chart bump` as a value once `image push` has run.
    pub steps: Vec<Step>,
}

/// One step of a release: a task and the values it runs with. Each step calls its task with
/// these values, so a step cannot name a flag the task does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `image build` as its command line runs it (defaults, `SOURCE_DATE_EPOCH`).
    ImageBuild,
    /// Pushes the layout under the tags the release tag gives; yields the index digest.
    ImagePush {
        image: RepositoryName,
        git_ref: GitRef,
        layout: PathBuf,
    },
    /// Sets the chart's version and appVersion and pins the image by `digest`: `None` in the
    /// plan, the digest `image push` yielded when it runs.
    ChartBump {
        version: Version,
        app_version: Version,
        digest: Option<Digest>,
    },
    ChartPackage {
        out_dir: PathBuf,
    },
    ChartPush {
        repo: OciUrl,
        package: PathBuf,
    },
    /// The SBOM of each platform and the provenance of the layout's image, named `image`, built
    /// from `git_ref`; `times` are the `image build` step's, once it has run.
    Attest {
        layout: PathBuf,
        image: RepositoryName,
        git_ref: GitRef,
        times: BuildTimes,
    },
}

impl Step {
    /// The step with the image digest filled in where it waits for one.
    fn with_pushed_digest(self, pushed: Option<&Digest>) -> Step {
        match self {
            Step::ChartBump {
                version,
                app_version,
                digest: None,
            } => Step::ChartBump {
                version,
                app_version,
                digest: pushed.cloned(),
            },
            step => step,
        }
    }

    /// The step with the `image build` step's times filled in where it records them.
    fn with_build_times(self, build: BuildTimes) -> Step {
        match self {
            Step::Attest {
                layout,
                image,
                git_ref,
                ..
            } => Step::Attest {
                layout,
                image,
                git_ref,
                times: build,
            },
            step => step,
        }
    }

    /// Runs the task; `image push` returns the digest it pushed.
    fn run(self, sh: &Shell) -> Result<Option<Digest>> {
        match self {
            Step::ImageBuild => task_defaults::<image::build::Build>()?.run(sh)?,
            Step::ImagePush {
                image,
                git_ref,
                layout,
            } => {
                let push = image::push::Push {
                    image,
                    tags: Vec::new(),
                    tags_from_ref: Some(git_ref),
                    sha: None,
                    layout: Some(layout),
                    registry: RegistryArgs::default(),
                };
                return Ok(Some(push.push(sh)?.digest));
            }
            Step::ChartBump {
                version,
                app_version,
                digest,
            } => {
                let digest = digest
                    .context("`chart bump` pins the image by digest, but no image was pushed")?;
                chart::bump::Bump {
                    version: Some(version.to_string()),
                    new_version: None,
                    patch: false,
                    minor: false,
                    major: false,
                    app_version: Some(app_version.to_string()),
                    digest: Some(digest.to_string()),
                    check: None,
                }
                .run(sh)?
            }
            Step::ChartPackage { out_dir } => chart::package::Package {
                out_dir: Some(out_dir),
            }
            .run(sh)?,
            Step::ChartPush { repo, package } => chart::push::Push {
                repo,
                package: Some(package),
                registry: RegistryArgs::default(),
            }
            .run(sh)?,
            Step::Attest {
                layout,
                image,
                git_ref,
                times,
            } => attest::Attest {
                layout: Some(layout),
                tag: None,
                out: None,
                image: Some(image.to_string()),
                git_ref: Some(git_ref.to_string()),
                profile: "release".into(),
                started_on: times.started_on,
                finished_on: times.finished_on,
            }
            .run(sh)?,
        }
        Ok(None)
    }
}

/// The step as the `cargo xtask` command line that does the same.
impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::ImageBuild => write!(f, "image build"),
            Step::ImagePush {
                image,
                git_ref,
                layout,
            } => write!(
                f,
                "image push --image {image} --tags-from-ref {git_ref} --layout {}",
                layout.display()
            ),
            Step::ChartBump {
                version,
                app_version,
                digest,
            } => {
                write!(
                    f,
                    "chart bump {version} --app-version {app_version} --digest "
                )?;
                match digest {
                    Some(d) => write!(f, "{d}"),
                    None => f.write_str(DIGEST),
                }
            }
            Step::ChartPackage { out_dir } => {
                write!(f, "chart package --out-dir {}", out_dir.display())
            }
            Step::ChartPush { repo, package } => {
                write!(
                    f,
                    "chart push --repo {repo} --package {}",
                    package.display()
                )
            }
            Step::Attest {
                layout,
                image,
                git_ref,
                times,
            } => {
                write!(
                    f,
                    "attest --layout {} --image {image} --git-ref {git_ref}",
                    layout.display()
                )?;
                if let Some(t) = times.started_on {
                    write!(f, " --started-on {t}")?;
                }
                if let Some(t) = times.finished_on {
                    write!(f, " --finished-on {t}")?;
                }
                Ok(())
            }
        }
    }
}

/// The release plan for `tag`, or why the tag cannot be released. `layout` is the OCI layout
/// `image build` writes and `packages` the directory `chart package` writes into (both under the
/// cargo target directory).
///
/// The chart is released as the next patch of its committed version, with `appVersion` = the
/// release and the image pinned by digest; minor and major chart changes come in pull requests
/// (`chart bump`, checked by CI).
pub fn plan(
    tag: &str,
    crate_version: &str,
    chart_version: &str,
    registry: &str,
    layout: impl AsRef<Path>,
    packages: impl AsRef<Path>,
) -> Result<Plan> {
    let Some(version) = tag.strip_prefix('v') else {
        bail!("release tag `{tag}` must start with `v` (e.g. v{crate_version})");
    };
    let app_version =
        Version::parse(version).with_context(|| format!("release tag `{tag}` is not v<semver>"))?;
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
    let repository = |name: &str| {
        format!("{registry}/{name}")
            .parse::<RepositoryName>()
            .with_context(|| format!("--registry `{registry}`"))
    };
    let image = repository(APP)?;
    let charts = OciUrl(repository("charts")?);
    let chart = Version::parse(chart_version)
        .with_context(|| format!("chart version `{chart_version}` is not semver"))?;
    let chart_version = Version::new(chart.major, chart.minor, chart.patch + 1);
    let chart_package = packages.as_ref().join(format!("{APP}-{chart_version}.tgz"));
    let steps = vec![
        Step::ImageBuild,
        Step::ImagePush {
            image: image.clone(),
            git_ref: GitRef::Tag(tag.to_owned()),
            layout: layout.as_ref().to_owned(),
        },
        Step::ChartBump {
            version: chart_version.clone(),
            app_version,
            digest: None,
        },
        Step::ChartPackage {
            out_dir: packages.as_ref().to_owned(),
        },
        Step::ChartPush {
            repo: charts,
            package: chart_package.clone(),
        },
        Step::Attest {
            layout: layout.as_ref().to_owned(),
            image: image.clone(),
            git_ref: GitRef::Tag(tag.to_owned()),
            times: BuildTimes::default(),
        },
    ];
    Ok(Plan {
        version: version.to_owned(),
        image,
        chart_version: chart_version.to_string(),
        chart_package,
        steps,
    })
}

impl Release {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let ws = Workspace::current()?;
        let chart = ChartMeta::read(&ws.chart_dir())?;
        let plan = plan(
            &self.tag,
            &ws.app.version,
            &chart.version,
            &self.registry,
            ws.oci_layout(),
            ws.chart_packages_dir(),
        )?;
        eprintln!(
            "release {}: image {}, chart {} ({})",
            self.tag,
            plan.image,
            plan.chart_version,
            plan.chart_package.display()
        );
        let mut digest = None;
        let mut build = BuildTimes::default();
        for step in plan.steps.iter().cloned() {
            let step = step
                .with_pushed_digest(digest.as_ref())
                .with_build_times(build);
            let line = format!("cargo xtask {step}");
            if self.dry_run {
                println!("would run: {line}");
                continue;
            }
            eprintln!("\n==> {line}");
            let is_build = step == Step::ImageBuild;
            let started = now();
            if let Some(pushed) = step.run(sh).with_context(|| format!("`{line}` failed"))? {
                digest = Some(pushed);
            }
            if is_build {
                build = BuildTimes {
                    started_on: Some(started),
                    finished_on: Some(now()),
                };
            }
        }
        if self.dry_run {
            println!(
                "would then, on GitHub only: sign {}@<digest> with cosign (keyless), attest build \
                 provenance and the SBOMs, publish the GitHub release with notes, {}, the SBOMs \
                 and the provenance",
                plan.image,
                plan.chart_package.display()
            );
            return Ok(());
        }
        // release.yml's later steps (signing, attestations, the GitHub release) read these; the
        // image digest is already there, written by `image push`, and the SBOM and provenance
        // files and platform digests by `attest`.
        crate::github_output(&[
            ("image-name", &plan.image.to_string()),
            ("chart", &plan.chart_package.to_string_lossy()),
        ])?;
        eprintln!("\nrelease {}: done", self.tag);
        Ok(())
    }
}

/// Seconds since the epoch, for the provenance's build times.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
            "target/charts",
        )
        .unwrap();
        assert_eq!(plan.version, "1.2.3");
        assert_eq!(plan.image.to_string(), "ghcr.io/acme/visit-tracker");
        assert_eq!(plan.chart_version, "0.4.2");
        assert_eq!(
            plan.chart_package,
            Path::new("target/charts/visit-tracker-0.4.2.tgz")
        );
        let lines: Vec<String> = plan.steps.iter().map(ToString::to_string).collect();
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
                "attest --layout /t/oci/visit-tracker --image ghcr.io/acme/visit-tracker \
                 --git-ref refs/tags/v1.2.3",
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
            "c",
        )
        .unwrap();
        assert!(
            matches!(&plan.steps[1], Step::ImagePush { git_ref: GitRef::Tag(t), .. }
                if t == "v2.0.0-rc.1"),
            "{:?}",
            plan.steps[1]
        );
        assert!(
            matches!(&plan.steps[2], Step::ChartBump { app_version, .. }
                if app_version.to_string() == "2.0.0-rc.1"),
            "{:?}",
            plan.steps[2]
        );
    }

    /// What a dry run prints is a command line that runs the same task with the same values.
    #[test]
    fn printed_steps_are_the_command_lines_of_the_same_tasks() {
        use crate::chart::Chart;
        use crate::image::Image;
        use crate::{Cli, Task};
        use clap::Parser;
        let digest: Digest = format!("sha256:{}", "0a".repeat(32)).parse().unwrap();
        let plan = plan(
            "v1.2.3",
            "1.2.3",
            "0.4.1",
            "127.0.0.1:5000/acme",
            "/t/oci",
            "/t/charts",
        )
        .unwrap();
        let times = BuildTimes {
            started_on: Some(1_700_000_000),
            finished_on: Some(1_700_000_300),
        };
        for step in plan.steps {
            let step = step
                .with_pushed_digest(Some(&digest))
                .with_build_times(times);
            let line = step.to_string();
            let parsed = Cli::try_parse_from(std::iter::once("cargo xtask").chain(line.split(' ')))
                .unwrap_or_else(|e| panic!("`{line}`: {e}"))
                .task;
            match (&step, parsed) {
                (Step::ImageBuild, Task::Image(Image::Build(_))) => {}
                (
                    Step::ImagePush {
                        image,
                        git_ref,
                        layout,
                    },
                    Task::Image(Image::Push(p)),
                ) => {
                    assert_eq!(&p.image, image);
                    assert_eq!(p.tags_from_ref.as_ref(), Some(git_ref));
                    assert_eq!(p.layout.as_ref(), Some(layout));
                    assert!(p.tags.is_empty() && p.sha.is_none());
                }
                (
                    Step::ChartBump {
                        version,
                        app_version,
                        digest: Some(digest),
                    },
                    Task::Chart(Chart::Bump(b)),
                ) => {
                    assert_eq!(b.new_version, Some(version.to_string()));
                    assert_eq!(b.app_version, Some(app_version.to_string()));
                    assert_eq!(b.digest, Some(digest.to_string()));
                }
                (Step::ChartPackage { out_dir }, Task::Chart(Chart::Package(p))) => {
                    assert_eq!(p.out_dir.as_ref(), Some(out_dir));
                }
                (Step::ChartPush { repo, package }, Task::Chart(Chart::Push(p))) => {
                    assert_eq!(&p.repo, repo);
                    assert_eq!(p.package.as_ref(), Some(package));
                }
                (
                    Step::Attest {
                        layout,
                        image,
                        git_ref,
                        times,
                    },
                    Task::Attest(a),
                ) => {
                    assert_eq!(a.layout.as_ref(), Some(layout));
                    assert_eq!(a.image, Some(image.to_string()));
                    assert_eq!(a.git_ref, Some(git_ref.to_string()));
                    assert_eq!(
                        (a.started_on, a.finished_on),
                        (times.started_on, times.finished_on)
                    );
                    assert_eq!(a.profile, "release");
                }
                (step, task) => panic!("`{line}` parses as {task:?}, not {step:?}"),
            }
        }
    }

    #[test]
    fn only_the_chart_bump_waits_for_the_pushed_digest() {
        let digest: Digest = format!("sha256:{}", "0a".repeat(32)).parse().unwrap();
        let plan = plan("v1.2.3", "1.2.3", "0.4.1", "ghcr.io/acme", "l", "c").unwrap();
        let filled: Vec<Step> = plan
            .steps
            .iter()
            .cloned()
            .map(|s| s.with_pushed_digest(Some(&digest)))
            .collect();
        for (before, after) in plan.steps.iter().zip(&filled) {
            match after {
                Step::ChartBump { digest: d, .. } => assert_eq!(d.as_ref(), Some(&digest)),
                other => assert_eq!(other, before),
            }
        }
        assert!(
            filled[2]
                .to_string()
                .ends_with(&format!("--digest {digest}"))
        );
    }

    #[test]
    fn tags_that_do_not_match_the_crate_are_refused_with_the_fix() {
        let err = plan("v1.2.4", "1.2.3", "0.1.0", "ghcr.io/acme", "l", "c")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not match") && err.contains("v1.2.3"),
            "{err}"
        );
        let err = plan("1.2.3", "1.2.3", "0.1.0", "ghcr.io/acme", "l", "c")
            .unwrap_err()
            .to_string();
        assert!(err.contains("must start with `v`"), "{err}");
        assert!(plan("v1.2", "1.2", "0.1.0", "ghcr.io/acme", "l", "c").is_err());
        let err = plan("v1.2.3", "1.2.3", "0.1.0", "https://ghcr.io/acme", "l", "c")
            .unwrap_err()
            .to_string();
        assert!(err.contains("without a scheme"), "{err}");
    }
}
