//! `cargo xtask release vX.Y.Z`: image with its semver tags, chart X.Y.Z pinned to the image,
//! packaged and pushed, SBOMs and provenance; what `.github/workflows/release.yml` runs before
//! GitHub signs, attests and publishes.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use oci_spec::image::Digest;
use semver::Version;
use xshell::Shell;

use crate::attest::provenance::BuildTimes;
use crate::chart::CHART_DIR;
use crate::image::push::GitRef;
use crate::registry::{OciUrl, RegistryArgs, RepositoryName};
use crate::tools::Needs;
use crate::workspace::{ChartMeta, Workspace};
use crate::{attest, chart, image, task_defaults};

/// A release runs these tasks: the image, the chart, the SBOMs and provenance (in-process).
pub const NEEDS: Needs = Needs {
    tools: &[],
    tasks: &[
        &image::BUILD_NEEDS,
        &image::PUSH_NEEDS,
        &chart::BUMP_NEEDS,
        &chart::PACKAGE_NEEDS,
        &chart::PUSH_NEEDS,
    ],
};

/// The crate whose version a release tag must carry.
const APP: &str = crate::workspace::APP;
/// Stands for the pushed image's digest in a printed plan until `image push` has run.
pub const DIGEST: &str = "<pushed-image-digest>";

/// Release a version: check the tag, build and push the image, pin it in the chart, package and
/// push the chart. The chart is released under the app's version (Chart.yaml carries it), and a
/// version once published is never overwritten: a release run again with the same bytes is a
/// no-op, with other bytes it is refused.
#[derive(Debug, Args)]
pub struct Release {
    /// The release tag, v<semver> (e.g. v1.2.3); must equal the app crate's version.
    #[arg(value_name = "vX.Y.Z")]
    pub tag: String,
    /// Registry and namespace for the image (`<registry>/visit-tracker`) and the chart
    /// (`oci://<registry>/charts`); lower-cased, so `ghcr.io/Acme` releases to `ghcr.io/acme`.
    #[arg(long, env = "REGISTRY", default_value = "ghcr.io/visit-tracker")]
    pub registry: String,
    /// Release this OCI image layout (e.g. the one CI built and tested) instead of building one.
    #[arg(long, value_name = "DIR")]
    pub layout: Option<PathBuf>,
    /// Publish without the SBOMs and provenance: for a --layout that `image build` did not write
    /// from this checkout (`attest` reads the binaries and the build's revision from it).
    #[arg(long, requires = "layout")]
    pub no_attest: bool,
    /// Print every action, run none (the tag is still checked against the crate version).
    #[arg(long)]
    pub dry_run: bool,
}

/// The git tag a release is cut from: `v` and the semver version it releases (`v1.2.3`,
/// `v2.0.0-rc.1`). `release` and `act --event tag` take it; the image tags it gives are
/// [`crate::registry::Tag`]s (see [`image::push::tags_for`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseTag(Version);

impl ReleaseTag {
    /// Parses `v<semver>`; a tag without the `v` is told to look like `v{example}`.
    pub fn parse(tag: &str, example: &str) -> Result<ReleaseTag> {
        let Some(version) = tag.strip_prefix('v') else {
            bail!("release tag `{tag}` must start with `v` (e.g. v{example})");
        };
        Version::parse(version)
            .map(ReleaseTag)
            .with_context(|| format!("release tag `{tag}` is not v<semver>"))
    }

    /// The version released: the tag without its `v`.
    pub fn version(&self) -> &Version {
        &self.0
    }

    /// `refs/tags/v...`, the ref a push of this tag runs the release workflow on.
    pub fn git_ref(&self) -> GitRef {
        GitRef::Tag(self.to_string())
    }
}

impl std::str::FromStr for ReleaseTag {
    type Err = anyhow::Error;

    fn from_str(tag: &str) -> Result<ReleaseTag> {
        ReleaseTag::parse(tag, "1.2.3")
    }
}

impl fmt::Display for ReleaseTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// Where the released image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// `image build` writes this layout (its default output), which is then pushed.
    Build(PathBuf),
    /// This layout, built before, is pushed as it is.
    Layout(PathBuf),
}

impl ImageSource {
    fn layout(&self) -> &Path {
        match self {
            ImageSource::Build(dir) | ImageSource::Layout(dir) => dir,
        }
    }
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
    /// Keeps the chart's version (the release's), sets appVersion and pins the image by
    /// `digest`: `None` in the plan, the digest `image push` yielded when it runs.
    ChartBump {
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
                app_version,
                digest: None,
            } => Step::ChartBump {
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
                    expect_digest: None,
                    registry: RegistryArgs::default(),
                };
                return Ok(Some(push.push(sh)?.digest));
            }
            Step::ChartBump {
                app_version,
                digest,
            } => {
                let digest = digest
                    .context("`chart bump` pins the image by digest, but no image was pushed")?;
                chart::bump::Bump {
                    version: None,
                    new_version: None,
                    keep_version: true,
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
                app_version,
                digest,
            } => {
                write!(
                    f,
                    "chart bump --keep-version --app-version {app_version} --digest "
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

/// The release plan for `tag`, or why the tag cannot be released. `image` says which layout is
/// pushed and whether `image build` makes it first; `packages` is the directory `chart package`
/// writes into (under the cargo target directory).
///
/// The chart version follows the app version (podinfo's scheme): release vX.Y.Z publishes chart
/// X.Y.Z with appVersion X.Y.Z and the image pinned by digest. Chart.yaml in git carries the
/// crate's version (`chart bump --check` keeps them equal), so each release's chart version is
/// its own, and a chart change is published by the next release.
pub fn plan(
    tag: &str,
    crate_version: &str,
    chart_version: &str,
    registry: &str,
    image: ImageSource,
    packages: impl AsRef<Path>,
) -> Result<Plan> {
    let release = ReleaseTag::parse(tag, crate_version)?;
    let app_version = release.version().clone();
    let version = app_version.to_string();
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
    if chart_version != version {
        bail!(
            "{CHART_DIR}/Chart.yaml has version {chart_version}, but the release is {version}: \
             the chart version follows the app version; run `cargo xtask chart bump {version}` \
             and commit the result"
        );
    }
    let repo = repository(APP)?;
    let charts = OciUrl(repository("charts")?);
    let chart_package = packages.as_ref().join(format!("{APP}-{version}.tgz"));
    let mut steps = Vec::new();
    if let ImageSource::Build(_) = image {
        steps.push(Step::ImageBuild);
    }
    steps.extend([
        Step::ImagePush {
            image: repo.clone(),
            git_ref: release.git_ref(),
            layout: image.layout().to_owned(),
        },
        Step::ChartBump {
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
            layout: image.layout().to_owned(),
            image: repo.clone(),
            git_ref: release.git_ref(),
            times: BuildTimes::default(),
        },
    ]);
    Ok(Plan {
        version: version.clone(),
        image: repo,
        chart_version: version,
        chart_package,
        steps,
    })
}

impl Release {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let ws = Workspace::current()?;
        let chart = ChartMeta::read(&ws.chart_dir())?;
        let image = match &self.layout {
            Some(dir) => ImageSource::Layout(sh.current_dir().join(dir)),
            None => ImageSource::Build(ws.oci_layout()),
        };
        let mut plan = plan(
            &self.tag,
            &ws.app.version,
            &chart.version,
            &self.registry,
            image,
            ws.chart_packages_dir(),
        )?;
        if self.no_attest {
            plan.steps.retain(|s| !matches!(s, Step::Attest { .. }));
            eprintln!("release {}: no SBOMs or provenance (--no-attest)", self.tag);
        }
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
        let evidence = collect_evidence(ws, &self.tag, &plan.chart_package, !self.no_attest)?;
        eprintln!("release {}: evidence in {}", self.tag, evidence.display());
        // release.yml's later jobs (signing, attestations, the GitHub release) read these; the
        // image digest and `latest` are already there, written by `image push`, the chart's
        // reference and digest by `chart push`, the SBOM and provenance files and platform
        // digests by `attest`.
        let prerelease = !Version::parse(&plan.version)?.pre.is_empty();
        crate::github_output(&[
            ("image-name", &plan.image.to_string()),
            ("chart", &plan.chart_package.to_string_lossy()),
            ("evidence", &evidence.to_string_lossy()),
            ("prerelease", if prerelease { "true" } else { "false" }),
        ])?;
        eprintln!("\nrelease {}: done", self.tag);
        Ok(())
    }
}

/// The files a GitHub release carries, in one directory for one artifact upload:
/// `<target>/evidence/<tag>/` with the SBOMs and provenance `attest` wrote when `attested` (never
/// an earlier run's after --no-attest), the release record `<target>/release/<tag>.json` when
/// there is one, and the chart package. Built beside and renamed into place, so it is whole or
/// absent.
pub fn collect_evidence(
    ws: &Workspace,
    tag: &str,
    chart_package: &Path,
    attested: bool,
) -> Result<PathBuf> {
    let parent = ws.target_directory.join("evidence");
    let dir = parent.join(tag);
    let partial = parent.join(format!(".{tag}.partial"));
    for stale in [&dir, &partial] {
        if stale.exists() {
            std::fs::remove_dir_all(stale)
                .with_context(|| format!("removing {}", stale.display()))?;
        }
    }
    std::fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut files = vec![chart_package.to_owned()];
    let record = ws
        .target_directory
        .join("release")
        .join(format!("{tag}.json"));
    if record.is_file() {
        files.push(record);
    }
    let attest_dir = ws.target_directory.join("attest");
    if attested {
        let entries = std::fs::read_dir(&attest_dir)
            .with_context(|| format!("reading {}", attest_dir.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("reading {}", attest_dir.display()))?
                .path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    for file in &files {
        let name = file
            .file_name()
            .with_context(|| format!("{} has no file name", file.display()))?;
        std::fs::copy(file, partial.join(name))
            .with_context(|| format!("copying {} into {}", file.display(), partial.display()))?;
    }
    std::fs::rename(&partial, &dir)
        .with_context(|| format!("renaming {} to {}", partial.display(), dir.display()))?;
    Ok(dir)
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

    fn build(dir: &str) -> ImageSource {
        ImageSource::Build(dir.into())
    }

    #[test]
    fn plan_builds_pushes_pins_packages_and_pushes_in_order() {
        let plan = plan(
            "v1.2.3",
            "1.2.3",
            "1.2.3",
            "ghcr.io/acme/",
            build("/t/oci/visit-tracker"),
            "target/charts",
        )
        .unwrap();
        assert_eq!(plan.version, "1.2.3");
        assert_eq!(plan.image.to_string(), "ghcr.io/acme/visit-tracker");
        assert_eq!(plan.chart_version, "1.2.3");
        assert_eq!(
            plan.chart_package,
            Path::new("target/charts/visit-tracker-1.2.3.tgz")
        );
        let lines: Vec<String> = plan.steps.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "image build",
                "image push --image ghcr.io/acme/visit-tracker --tags-from-ref refs/tags/v1.2.3 \
                 --layout /t/oci/visit-tracker",
                "chart bump --keep-version --app-version 1.2.3 --digest <pushed-image-digest>",
                "chart package --out-dir target/charts",
                "chart push --repo oci://ghcr.io/acme/charts \
                 --package target/charts/visit-tracker-1.2.3.tgz",
                "attest --layout /t/oci/visit-tracker --image ghcr.io/acme/visit-tracker \
                 --git-ref refs/tags/v1.2.3",
            ]
        );
    }

    #[test]
    fn a_given_layout_is_released_without_a_build() {
        let plan = plan(
            "v1.2.3",
            "1.2.3",
            "1.2.3",
            "ghcr.io/acme",
            ImageSource::Layout("/ci/layout".into()),
            "c",
        )
        .unwrap();
        assert!(!plan.steps.contains(&Step::ImageBuild), "{:?}", plan.steps);
        assert!(
            matches!(&plan.steps[0], Step::ImagePush { layout, .. } if layout == Path::new("/ci/layout")),
            "{:?}",
            plan.steps[0]
        );
    }

    #[test]
    fn owners_in_upper_case_release_to_lower_case_repositories() {
        let plan = plan("v1.2.3", "1.2.3", "1.2.3", "ghcr.io/Acme", build("l"), "c").unwrap();
        assert_eq!(plan.image.to_string(), "ghcr.io/acme/visit-tracker");
        assert!(
            plan.steps.iter().any(|s| s
                .to_string()
                .starts_with("chart push --repo oci://ghcr.io/acme/charts ")),
            "{:?}",
            plan.steps
        );
    }

    /// Two releases without a chart change still publish two chart versions: each is the app's.
    #[test]
    fn the_chart_is_released_under_the_app_version_and_nothing_else() {
        let first = plan("v1.2.3", "1.2.3", "1.2.3", "ghcr.io/acme", build("l"), "c").unwrap();
        let second = plan("v1.2.4", "1.2.4", "1.2.4", "ghcr.io/acme", build("l"), "c").unwrap();
        assert_ne!(first.chart_version, second.chart_version);
        // A chart left behind by a crate bump is refused, with the command that fixes it.
        let err = plan("v1.2.4", "1.2.4", "1.2.3", "ghcr.io/acme", build("l"), "c")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Chart.yaml has version 1.2.3, but the release is 1.2.4")
                && err.contains("`cargo xtask chart bump 1.2.4`"),
            "{err}"
        );
    }

    #[test]
    fn pre_releases_are_released_under_their_own_version() {
        let plan = plan(
            "v2.0.0-rc.1",
            "2.0.0-rc.1",
            "2.0.0-rc.1",
            "127.0.0.1:5000/t",
            build("l"),
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
        assert_eq!(plan.chart_version, "2.0.0-rc.1");
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
            "1.2.3",
            "127.0.0.1:5000/acme",
            build("/t/oci"),
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
                        app_version,
                        digest: Some(digest),
                    },
                    Task::Chart(Chart::Bump(b)),
                ) => {
                    assert!(b.keep_version && b.version.is_none() && b.new_version.is_none());
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
        let plan = plan("v1.2.3", "1.2.3", "1.2.3", "ghcr.io/acme", build("l"), "c").unwrap();
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
    fn release_tags_are_v_and_semver_and_print_as_they_parse() {
        for text in ["v1.2.3", "v2.0.0-rc.1", "v0.1.0+build.7"] {
            let tag: ReleaseTag = text.parse().unwrap();
            assert_eq!(tag.to_string(), text);
            assert_eq!(tag.git_ref(), GitRef::Tag(text.to_owned()));
        }
        let err = "1.2.3".parse::<ReleaseTag>().unwrap_err().to_string();
        assert_eq!(err, "release tag `1.2.3` must start with `v` (e.g. v1.2.3)");
        for bad in ["v1.2", "v01.2.3", "vlatest", "v"] {
            let err = bad.parse::<ReleaseTag>().unwrap_err().to_string();
            assert_eq!(err, format!("release tag `{bad}` is not v<semver>"));
        }
    }

    #[test]
    fn tags_that_do_not_match_the_crate_are_refused_with_the_fix() {
        let plan = |tag, version| plan(tag, version, version, "ghcr.io/acme", build("l"), "c");
        let err = plan("v1.2.4", "1.2.3").unwrap_err().to_string();
        assert!(
            err.contains("does not match") && err.contains("v1.2.3"),
            "{err}"
        );
        let err = plan("1.2.3", "1.2.3").unwrap_err().to_string();
        assert!(err.contains("must start with `v`"), "{err}");
        assert!(plan("v1.2", "1.2").is_err());
        let err = super::plan(
            "v1.2.3",
            "1.2.3",
            "1.2.3",
            "https://ghcr.io/acme",
            build("l"),
            "c",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("without a scheme"), "{err}");
    }
}
