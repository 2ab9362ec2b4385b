//! `cargo xtask release vX.Y.Z`: image with its semver tags, chart X.Y.Z pinned to the image,
//! packaged and pushed, SBOMs and provenance, with `--key` the signatures and attestations, and
//! the release record ([`record`]); what `.github/workflows/release.yml` runs before GitHub signs
//! keyless, attests and publishes.

pub mod record;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use oci_spec::image::Digest;
use p256::ecdsa::SigningKey;
use semver::Version;
use xshell::Shell;

use crate::attest::provenance::BuildTimes;
use crate::chart::CHART_DIR;
use crate::image::layout::Layout;
use crate::image::oci::Platform;
use crate::image::push::GitRef;
use crate::registry::{OciUrl, Pushed, RegistryArgs, Repo, RepositoryName};
use crate::sign::target::ImageRef;
use crate::term::PushProgress;
use crate::tools::Needs;
use crate::workspace::{ChartMeta, Workspace};
use crate::{attest, chart, image, sign, task_defaults};

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
/// Stands for the pushed chart's digest in a printed plan until `chart push` has run.
pub const CHART_DIGEST: &str = "<pushed-chart-digest>";

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
    /// Sign the image index and the chart, and attach the SBOMs and the provenance as signed
    /// attestations, with this cosign private key (passphrase from COSIGN_PASSWORD). Without it
    /// nothing is signed here (the release workflow signs keyless on GitHub).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
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
    /// The chart's repository, without tag or digest.
    pub chart: RepositoryName,
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
    /// Signs the image index and the chart with `key`, each by the digest its push yielded
    /// (`None` in the plan).
    Sign {
        image: RepositoryName,
        index: Option<Digest>,
        chart: RepositoryName,
        chart_digest: Option<Digest>,
        key: PathBuf,
    },
    /// Signs the in-toto `statement` `attest` wrote with `key` and attaches it to `subject`.
    Attach {
        image: RepositoryName,
        subject: Subject,
        statement: PathBuf,
        key: PathBuf,
    },
}

/// The manifest an attestation is about, its digest `None` in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The image index (the provenance).
    Index(Option<Digest>),
    /// One platform's manifest (its SBOM).
    Platform(Platform, Option<Digest>),
}

/// What the steps run so far yielded, for the steps that wait for it.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub index: Option<Digest>,
    pub chart: Option<Digest>,
    pub platforms: BTreeMap<Platform, Digest>,
}

/// What one step did, for the release record.
#[derive(Debug)]
enum Outcome {
    Nothing,
    Image(Pushed),
    Chart {
        name: RepositoryName,
        meta: chart::push::ChartMeta,
        pushed: Pushed,
    },
    Attested(attest::Attested),
    Signed(Vec<(RepositoryName, sign::Signed)>),
    Attached {
        subject: Digest,
        predicate_type: String,
        attested: sign::attest::Attested,
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
            Step::Sign {
                image,
                index: None,
                chart,
                chart_digest,
                key,
            } => Step::Sign {
                image,
                index: pushed.cloned(),
                chart,
                chart_digest,
                key,
            },
            Step::Attach {
                image,
                subject: Subject::Index(None),
                statement,
                key,
            } => Step::Attach {
                image,
                subject: Subject::Index(pushed.cloned()),
                statement,
                key,
            },
            step => step,
        }
    }

    /// The step with what the pushes yielded filled in where it waits for it.
    fn with_known(self, known: &Known) -> Step {
        match self.with_pushed_digest(known.index.as_ref()) {
            Step::Sign {
                image,
                index,
                chart,
                chart_digest: None,
                key,
            } => Step::Sign {
                image,
                index,
                chart,
                chart_digest: known.chart.clone(),
                key,
            },
            Step::Attach {
                image,
                subject: Subject::Platform(platform, None),
                statement,
                key,
            } => Step::Attach {
                image,
                subject: Subject::Platform(platform, known.platforms.get(&platform).cloned()),
                statement,
                key,
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

    /// Runs the task and returns what it did; `key` is the `--key` read before any step ran.
    fn run(self, sh: &Shell, key: Option<&SigningKey>) -> Result<Outcome> {
        let outcome = match self {
            Step::ImageBuild => {
                task_defaults::<image::build::Build>()?.run(sh)?;
                Outcome::Nothing
            }
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
                Outcome::Image(push.push(sh)?)
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
                .run(sh)?;
                Outcome::Nothing
            }
            Step::ChartPackage { out_dir } => {
                chart::package::Package {
                    out_dir: Some(out_dir),
                }
                .run(sh)?;
                Outcome::Nothing
            }
            Step::ChartPush { repo, package } => {
                let (name, meta, pushed) = chart::push::Push {
                    repo,
                    package: Some(package),
                    registry: RegistryArgs::default(),
                }
                .push(sh)?;
                Outcome::Chart { name, meta, pushed }
            }
            Step::Attest {
                layout,
                image,
                git_ref,
                times,
            } => Outcome::Attested(
                attest::Attest {
                    layout: Some(layout),
                    tag: None,
                    out: None,
                    image: Some(image.to_string()),
                    git_ref: Some(git_ref.to_string()),
                    profile: "release".into(),
                    started_on: times.started_on,
                    finished_on: times.finished_on,
                }
                .run_attested(sh)?,
            ),
            Step::Sign {
                image,
                index,
                chart,
                chart_digest,
                ..
            } => {
                let key = key.context("signing needs the --key, read before any step ran")?;
                let mut signed = Vec::new();
                for (name, digest) in [(image, index), (chart, chart_digest)] {
                    let target = by_digest(&name, digest)?;
                    let repo = Repo::open(&RegistryArgs::default(), &name)?;
                    let subject = sign::resolve(&repo, &target)?;
                    let done = sign::sign(&repo, &target, &subject, key, progress())?;
                    eprintln!("signed {target} ({})", done.tag);
                    println!("{name}:{}", done.tag);
                    signed.push((name, done));
                }
                Outcome::Signed(signed)
            }
            Step::Attach {
                image,
                subject,
                statement,
                ..
            } => {
                let key = key.context("attaching needs the --key, read before any step ran")?;
                let digest = match subject {
                    Subject::Index(d) | Subject::Platform(_, d) => d,
                };
                let target = by_digest(&image, digest)?;
                let statement = sign::attest::read_statement(&statement)?;
                let predicate_type = sign::dsse::Statement::parse(&statement.bytes)
                    .with_context(|| statement.name.clone())?
                    .predicate_type;
                let repo = Repo::open(&RegistryArgs::default(), &image)?;
                let subject = sign::resolve(&repo, &target)?;
                let attested =
                    sign::attest::attest(&repo, &subject, key, &[statement], progress())?;
                eprintln!(
                    "attested {target}: {predicate_type} ({})",
                    attested.cosign_tag
                );
                Outcome::Attached {
                    subject: subject.digest,
                    predicate_type,
                    attested,
                }
            }
        };
        Ok(outcome)
    }
}

/// `name@digest`, or an error saying which push did not yield the digest.
fn by_digest(name: &RepositoryName, digest: Option<Digest>) -> Result<ImageRef> {
    let digest = digest.with_context(|| format!("{name}: no digest was pushed to sign"))?;
    Ok(ImageRef {
        repo: name.clone(),
        tag: None,
        digest: Some(digest),
    })
}

fn progress() -> Arc<PushProgress> {
    Arc::new(PushProgress::new())
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
            Step::Sign {
                image,
                index,
                chart,
                chart_digest,
                key,
            } => write!(
                f,
                "sign {image}@{} {chart}@{} --key {}",
                or_placeholder(index.as_ref(), DIGEST),
                or_placeholder(chart_digest.as_ref(), CHART_DIGEST),
                key.display()
            ),
            Step::Attach {
                image,
                subject,
                statement,
                key,
            } => {
                let digest = match subject {
                    Subject::Index(d) => or_placeholder(d.as_ref(), DIGEST),
                    Subject::Platform(p, d) => {
                        or_placeholder(d.as_ref(), &format!("<pushed-{p}-manifest-digest>"))
                    }
                };
                write!(
                    f,
                    "attach {image}@{digest} --key {} --statement {}",
                    key.display(),
                    statement.display()
                )
            }
        }
    }
}

fn or_placeholder(digest: Option<&Digest>, placeholder: &str) -> String {
    digest.map_or_else(|| placeholder.to_owned(), ToString::to_string)
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
    let chart = charts.0.join(APP)?;
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
        chart,
        steps,
    })
}

impl Plan {
    /// Adds the signing steps, after everything is pushed and attested: the image index and the
    /// chart signed with `key`, then each platform's SBOM and the index's provenance (the
    /// statements `attest` writes into `attest_dir`; `None` with `--no-attest`) attached.
    pub fn sign_with(&mut self, key: &Path, attest_dir: Option<&Path>, platforms: &[Platform]) {
        self.steps.push(Step::Sign {
            image: self.image.clone(),
            index: None,
            chart: self.chart.clone(),
            chart_digest: None,
            key: key.to_owned(),
        });
        let Some(dir) = attest_dir else { return };
        for platform in platforms {
            self.steps.push(Step::Attach {
                image: self.image.clone(),
                subject: Subject::Platform(*platform, None),
                statement: dir.join(format!(
                    "sbom-{}.intoto.json",
                    platform.name().replace('/', "-")
                )),
                key: key.to_owned(),
            });
        }
        self.steps.push(Step::Attach {
            image: self.image.clone(),
            subject: Subject::Index(None),
            statement: dir.join("provenance.intoto.json"),
            key: key.to_owned(),
        });
    }
}

/// Each platform of the image index in `layout`, with its manifest's digest.
pub fn layout_platforms(layout: &Path) -> Result<Vec<(Platform, Digest)>> {
    let opened = Layout::open(layout)?;
    let entry = opened.entry(None)?.clone();
    let index = opened.image_index(&entry)?;
    index
        .manifests()
        .iter()
        .map(|d| {
            let p = d.platform().as_ref().with_context(|| {
                format!(
                    "{}: index entry {} has no platform",
                    layout.display(),
                    d.digest()
                )
            })?;
            let platform: Platform = format!("{}/{}", p.os(), p.architecture()).parse()?;
            Ok((platform, d.digest().clone()))
        })
        .collect()
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
            image.clone(),
            ws.chart_packages_dir(),
        )?;
        if self.no_attest {
            plan.steps.retain(|s| !matches!(s, Step::Attest { .. }));
            eprintln!("release {}: no SBOMs or provenance (--no-attest)", self.tag);
        }
        // The key first: a missing file or a wrong passphrase stops the release before any push.
        let key = match &self.key {
            Some(path) => {
                let path = sh.current_dir().join(path);
                let key = if self.dry_run {
                    None
                } else {
                    Some(sign::keys::read_private_key(&path)?)
                };
                let platforms = match &image {
                    ImageSource::Build(_) => task_defaults::<image::build::Build>()?.platform,
                    ImageSource::Layout(dir) => {
                        layout_platforms(dir)?.into_iter().map(|(p, _)| p).collect()
                    }
                };
                let attest_dir = ws.target_directory.join("attest");
                plan.sign_with(
                    &path,
                    (!self.no_attest).then_some(attest_dir.as_path()),
                    &platforms,
                );
                key
            }
            None => None,
        };
        eprintln!(
            "release {}: image {}, chart {} ({})",
            self.tag,
            plan.image,
            plan.chart_version,
            plan.chart_package.display()
        );
        let record_dir = ws.target_directory.join("release");
        let mut known = Known::default();
        let mut build = BuildTimes::default();
        let mut outcomes = Vec::new();
        for step in plan.steps.iter().cloned() {
            let step = step.with_known(&known).with_build_times(build);
            let line = format!("cargo xtask {step}");
            if self.dry_run {
                println!("would run: {line}");
                continue;
            }
            eprintln!("\n==> {line}");
            let is_build = step == Step::ImageBuild;
            let started = now();
            let outcome = step
                .run(sh, key.as_ref())
                .with_context(|| format!("`{line}` failed"))?;
            match &outcome {
                Outcome::Image(pushed) => {
                    known.index = Some(pushed.digest.clone());
                    known.platforms = layout_platforms(image.layout())?.into_iter().collect();
                }
                Outcome::Chart { pushed, .. } => known.chart = Some(pushed.digest.clone()),
                _ => {}
            }
            outcomes.push(outcome);
            if is_build {
                build = BuildTimes {
                    started_on: Some(started),
                    finished_on: Some(now()),
                };
            }
        }
        let record_path = record_dir.join(format!("{}.json", self.tag));
        if self.dry_run {
            println!("would write the release record {}", record_path.display());
            if self.key.is_none() {
                println!(
                    "would then, on GitHub only: sign {}@<digest> with cosign (keyless), attest \
                     build provenance and the SBOMs, publish the GitHub release with notes, {}, \
                     the SBOMs and the provenance",
                    plan.image,
                    plan.chart_package.display()
                );
            }
            return Ok(());
        }
        let record = record_of(&self.tag, &plan, &known, outcomes)?;
        let written = record.write(&record_dir)?;
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
            ("record", &written.to_string_lossy()),
            ("evidence", &evidence.to_string_lossy()),
            ("prerelease", if prerelease { "true" } else { "false" }),
        ])?;
        eprintln!("\nrelease {}: done; record {}", self.tag, written.display());
        println!("{}", written.display());
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

/// The release record, from what the steps did.
fn record_of(
    tag: &str,
    plan: &Plan,
    known: &Known,
    outcomes: Vec<Outcome>,
) -> Result<record::Record> {
    let mut image = None;
    let mut chart = None;
    let mut attestations = None;
    let mut signed = Vec::new();
    let mut attached = Vec::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Nothing => {}
            Outcome::Image(pushed) => image = Some(pushed),
            Outcome::Chart { name, meta, pushed } => chart = Some((name, meta, pushed)),
            Outcome::Attested(a) => {
                let file = |p: &Path| record::File::read(p);
                let mut sboms = Vec::new();
                for s in &a.sboms {
                    sboms.push(record::Sbom {
                        platform: s.platform.name().to_owned(),
                        subject: s.manifest_digest.clone(),
                        file: file(&s.path)?,
                        statement: file(&s.statement_path)?,
                    });
                }
                attestations = Some(record::Attestations {
                    sboms,
                    provenance: record::Provenance {
                        subject: a.index_digest.clone(),
                        file: file(&a.provenance_path)?,
                    },
                });
            }
            Outcome::Signed(s) => signed.extend(s),
            Outcome::Attached {
                subject,
                predicate_type,
                attested,
            } => attached.push(record::Attestation {
                subject: subject.to_string(),
                predicate_type,
                referrers: attested
                    .artifacts
                    .iter()
                    .map(|d| format!("{}@{d}", plan.image))
                    .collect(),
                referrers_tag: attested
                    .referrers_tag
                    .map(|t| format!("{}:{t}", plan.image)),
                cosign: format!("{}:{}", plan.image, attested.cosign_tag),
            }),
        }
    }
    let image = image.context("the release pushed no image")?;
    let (chart_name, meta, chart_pushed) = chart.context("the release pushed no chart")?;
    let signature = |name: &RepositoryName, digest: &Digest| -> Result<record::Signature> {
        let (_, s) = signed
            .iter()
            .find(|(n, s)| n == name && &s.digest == digest)
            .with_context(|| format!("{name}@{digest} was not signed"))?;
        Ok(record::Signature {
            digest: s.digest.to_string(),
            reference: format!("{name}:{}", s.tag),
        })
    };
    let signatures = if signed.is_empty() {
        None
    } else {
        Some(record::Signatures {
            image: signature(&plan.image, &image.digest)?,
            chart: signature(&chart_name, &chart_pushed.digest)?,
            attestations: attached,
        })
    };
    Ok(record::Record {
        schema_version: record::SCHEMA_VERSION,
        tag: tag.to_owned(),
        version: plan.version.clone(),
        image: record::Image {
            repository: plan.image.to_string(),
            digest: image.digest.to_string(),
            platforms: known
                .platforms
                .iter()
                .map(|(p, d)| record::PlatformImage {
                    platform: p.name().to_owned(),
                    digest: d.to_string(),
                })
                .collect(),
            tags: image.tags.iter().map(ToString::to_string).collect(),
            tags_left_alone: image
                .left
                .iter()
                .map(|l| record::LeftTag {
                    tag: l.tag.to_string(),
                    reason: l.to_string(),
                })
                .collect(),
        },
        chart: record::Chart {
            reference: format!("oci://{chart_name}:{}", meta.tag),
            repository: chart_name.to_string(),
            version: meta.version.clone(),
            digest: chart_pushed.digest.to_string(),
            package: record::File::read(&plan.chart_package)?,
        },
        attestations,
        signatures,
    })
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
        let mut plan = plan(
            "v1.2.3",
            "1.2.3",
            "1.2.3",
            "127.0.0.1:5000/acme",
            build("/t/oci"),
            "/t/charts",
        )
        .unwrap();
        plan.sign_with(
            Path::new("/k/cosign.key"),
            Some(Path::new("/t/attest")),
            &Platform::ALL,
        );
        let times = BuildTimes {
            started_on: Some(1_700_000_000),
            finished_on: Some(1_700_000_300),
        };
        let known = known(&digest);
        for step in plan.steps {
            let step = step.with_known(&known).with_build_times(times);
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
                (
                    Step::Sign {
                        image,
                        index: Some(index),
                        chart,
                        chart_digest: Some(chart_digest),
                        key,
                    },
                    Task::Sign(s),
                ) => {
                    let refs: Vec<String> = s.refs.iter().map(ToString::to_string).collect();
                    assert_eq!(
                        refs,
                        [
                            format!("{image}@{index}"),
                            format!("{chart}@{chart_digest}")
                        ]
                    );
                    assert_eq!(s.key.as_ref(), Some(key));
                }
                (
                    Step::Attach {
                        image,
                        subject,
                        statement,
                        key,
                    },
                    Task::Attach(a),
                ) => {
                    let digest = match subject {
                        Subject::Index(d) | Subject::Platform(_, d) => d.clone().unwrap(),
                    };
                    assert_eq!(a.target.to_string(), format!("{image}@{digest}"));
                    assert_eq!(&a.key, key);
                    assert_eq!(a.statements, std::slice::from_ref(statement));
                }
                (step, task) => panic!("`{line}` parses as {task:?}, not {step:?}"),
            }
        }
    }

    /// Distinct digests for the index, the chart and each platform, as the pushes yield them.
    fn known(index: &Digest) -> Known {
        let digest = |b: &str| -> Digest { format!("sha256:{}", b.repeat(32)).parse().unwrap() };
        Known {
            index: Some(index.clone()),
            chart: Some(digest("0c")),
            platforms: BTreeMap::from([
                (Platform::Amd64, digest("a1")),
                (Platform::Arm64, digest("a2")),
            ]),
        }
    }

    #[test]
    fn a_key_signs_and_attaches_after_everything_is_pushed_and_attested() {
        let unsigned = plan("v1.2.3", "1.2.3", "1.2.3", "ghcr.io/acme", build("l"), "c").unwrap();
        assert!(
            !unsigned
                .steps
                .iter()
                .any(|s| matches!(s, Step::Sign { .. } | Step::Attach { .. })),
            "{:?}",
            unsigned.steps
        );
        let mut signed = plan("v1.2.3", "1.2.3", "1.2.3", "ghcr.io/acme", build("l"), "c").unwrap();
        signed.sign_with(Path::new("k.key"), Some(Path::new("a")), &[Platform::Amd64]);
        let lines: Vec<String> = signed.steps[6..].iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "sign ghcr.io/acme/visit-tracker@<pushed-image-digest> \
                 ghcr.io/acme/charts/visit-tracker@<pushed-chart-digest> --key k.key",
                "attach ghcr.io/acme/visit-tracker@<pushed-linux/amd64-manifest-digest> \
                 --key k.key --statement a/sbom-linux-amd64.intoto.json",
                "attach ghcr.io/acme/visit-tracker@<pushed-image-digest> --key k.key \
                 --statement a/provenance.intoto.json",
            ]
        );
        assert_eq!(signed.steps[..6], unsigned.steps[..]);
        // The platform's SBOM is attached to its manifest, the provenance to the index.
        let digest: Digest = format!("sha256:{}", "0a".repeat(32)).parse().unwrap();
        let known = known(&digest);
        let filled: Vec<Step> = signed.steps[6..]
            .iter()
            .cloned()
            .map(|s| s.with_known(&known))
            .collect();
        assert!(
            matches!(&filled[1], Step::Attach { subject: Subject::Platform(Platform::Amd64, Some(d)), .. }
                if d == &known.platforms[&Platform::Amd64]),
            "{:?}",
            filled[1]
        );
        assert!(
            matches!(&filled[2], Step::Attach { subject: Subject::Index(Some(d)), .. } if d == &digest),
            "{:?}",
            filled[2]
        );
        // --no-attest: signatures only, nothing to attach.
        let mut bare = plan("v1.2.3", "1.2.3", "1.2.3", "ghcr.io/acme", build("l"), "c").unwrap();
        bare.sign_with(Path::new("k.key"), None, &Platform::ALL);
        assert!(matches!(bare.steps.last(), Some(Step::Sign { .. })));
        assert_eq!(bare.steps.len(), unsigned.steps.len() + 1);
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
