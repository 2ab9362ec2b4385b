//! The checkout a run of `cargo xtask` works on, found at run time and read once from `cargo
//! metadata`: its root, cargo's target directory, where the tasks' artifacts go (image layout,
//! chart package, Python venv) and the app package's version and image labels.
//!
//! Nothing here is compiled in: with one target directory shared by several clones, cargo reuses
//! the xtask binary built in one clone for the others, so a path baked in at compile time
//! (`env!("CARGO_MANIFEST_DIR")`) would name the wrong checkout.
//!
//! A task's `run(self, sh)` takes the process's workspace from [`Workspace::current`]; functions
//! that a test may point at another checkout (e.g. `image::build::Build::build`) take a
//! `&Workspace` loaded for that checkout with [`Workspace::load`].

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use xshell::{Shell, cmd};

use crate::chart::{CHART_DIR, chart_field};

/// The service's package: its binary is the image, its version is what a release tag names.
pub const APP: &str = "visit-tracker";

/// What `cargo metadata` says about the checkout, plus the paths derived from it.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The directory of the workspace's Cargo.toml; tasks run from here.
    pub root: PathBuf,
    /// Cargo's target directory: `CARGO_TARGET_DIR`, `build.target-dir` in a config file, or
    /// `<root>/target`, as cargo itself resolves it.
    pub target_directory: PathBuf,
    /// Where cargo puts intermediate artifacts (`build.build-dir`; the target directory unless
    /// set).
    pub build_directory: PathBuf,
    /// The service's package (`app/Cargo.toml`).
    pub app: Package,
}

/// The fields of a workspace package that the release and the image labels use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub license: Option<String>,
    pub repository: Option<String>,
    pub homepage: Option<String>,
}

/// The chart's name and version as Chart.yaml has them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartMeta {
    pub name: String,
    pub version: String,
}

impl ChartMeta {
    /// Reads `name` and `version` from `<chart_dir>/Chart.yaml`.
    pub fn read(chart_dir: &Path) -> Result<ChartMeta> {
        let path = chart_dir.join("Chart.yaml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let field = |key: &str| {
            chart_field(&text, key)
                .filter(|v| !v.is_empty())
                .with_context(|| format!("{}: no `{key}`", path.display()))
        };
        Ok(ChartMeta {
            name: field("name")?,
            version: field("version")?,
        })
    }

    /// The archive's file name, as `helm package` names it.
    pub fn package_file_name(&self) -> String {
        format!("{}-{}.tgz", self.name, self.version)
    }
}

impl Workspace {
    /// The workspace of this process: located and loaded on first use, then the same value for
    /// every task of the run (`ci` and `release` run several).
    pub fn current() -> Result<&'static Workspace> {
        static CURRENT: OnceLock<Workspace> = OnceLock::new();
        if let Some(ws) = CURRENT.get() {
            return Ok(ws);
        }
        let ws = Workspace::locate()?;
        Ok(CURRENT.get_or_init(|| ws))
    }

    /// Finds the checkout at run time. `cargo run` (so `cargo xtask`) and `cargo test` set
    /// `CARGO_MANIFEST_DIR` in the environment of the process they start, to the package they
    /// chose from the current directory: that package's workspace is the one to work on. Run
    /// directly (`target/debug/xtask`), the current directory's workspace is.
    pub fn locate() -> Result<Workspace> {
        let cwd = std::env::current_dir().context("reading the current directory")?;
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
        Workspace::find(manifest_dir.as_deref(), &cwd)
    }

    /// The workspace of `manifest_dir` (else of `cwd`), refused when `cwd` lies in another
    /// workspace: then the binary and the current directory disagree about the checkout, and
    /// working on either could be the wrong one.
    pub fn find(manifest_dir: Option<&Path>, cwd: &Path) -> Result<Workspace> {
        let start = manifest_dir.unwrap_or(cwd);
        if !start.ancestors().any(|d| d.join("Cargo.toml").is_file()) {
            bail!(
                "no Cargo.toml in {} or any parent directory: run `cargo xtask` inside a \
                 visit-tracker checkout",
                start.display()
            );
        }
        let sh = Shell::new()?;
        sh.change_dir(start);
        let ws = Workspace::load(&sh)?;
        // Only when the current directory is outside this root is another workspace possible,
        // and only then is cargo asked (the usual run costs no process).
        if manifest_dir.is_some()
            && !same_or_inside(cwd, &ws.root)
            && let Some(other) = workspace_of(&sh, cwd)
        {
            bail!(
                "this xtask belongs to the checkout at {} (CARGO_MANIFEST_DIR), but the current \
                 directory is in the workspace at {}: run `cargo xtask` from the checkout you mean",
                ws.root.display(),
                other.display()
            );
        }
        Ok(ws)
    }

    /// Runs `cargo metadata` in the shell's directory: the workspace that directory belongs to.
    pub fn load(sh: &Shell) -> Result<Workspace> {
        let cargo = crate::cargo();
        // --no-deps: only the workspace's own packages, its root and its target directory are
        // read, so cargo resolves no dependency: Cargo.lock is neither read nor written and no
        // registry or network is touched. --locked and --offline guard exactly those, so they
        // would change nothing here (the SBOM and the dependency scan, which do resolve, pass
        // --locked themselves). It takes a few tens of milliseconds, once per process.
        let json = cmd!(sh, "{cargo} metadata --no-deps --format-version 1")
            .quiet()
            .read()
            .with_context(|| {
                format!(
                    "reading the Cargo workspace of {} (`cargo metadata`)",
                    sh.current_dir().display()
                )
            })?;
        Workspace::parse(&json)
    }

    /// The workspace described by `cargo metadata --format-version 1` output.
    pub fn parse(json: &str) -> Result<Workspace> {
        #[derive(Deserialize)]
        struct Metadata {
            packages: Vec<RawPackage>,
            workspace_root: PathBuf,
            target_directory: PathBuf,
            build_directory: Option<PathBuf>,
        }
        #[derive(Deserialize)]
        struct RawPackage {
            name: String,
            version: String,
            description: Option<String>,
            license: Option<String>,
            repository: Option<String>,
            homepage: Option<String>,
        }
        let m: Metadata = serde_json::from_str(json).context("parsing `cargo metadata` output")?;
        let root = m.workspace_root;
        let app = m
            .packages
            .into_iter()
            .find(|p| p.name == APP)
            .with_context(|| {
                format!(
                    "the workspace at {} has no package `{APP}`: is it a visit-tracker checkout?",
                    root.display()
                )
            })?;
        Ok(Workspace {
            build_directory: m
                .build_directory
                .unwrap_or_else(|| m.target_directory.clone()),
            target_directory: m.target_directory,
            root,
            app: Package {
                name: app.name,
                version: app.version,
                description: app.description,
                license: app.license,
                repository: app.repository,
                homepage: app.homepage,
            },
        })
    }

    /// The OCI image layout `image build` writes and `image push` reads by default.
    pub fn oci_layout(&self) -> PathBuf {
        self.target_directory.join("oci").join(APP)
    }

    /// The chart's source directory.
    pub fn chart_dir(&self) -> PathBuf {
        self.root.join(CHART_DIR)
    }

    /// Where `chart package` writes by default.
    pub fn chart_packages_dir(&self) -> PathBuf {
        self.target_directory.join("charts")
    }

    /// The package `chart package` writes by default for the chart as it is now. Chart.yaml is
    /// read at each call: a release bumps the version between packaging and pushing.
    pub fn chart_package(&self) -> Result<PathBuf> {
        let chart = ChartMeta::read(&self.chart_dir())?;
        Ok(self.chart_packages_dir().join(chart.package_file_name()))
    }

    /// The Python venv of the pinned tools (`xtask/requirements.txt`). In the target directory,
    /// so clones and act's copies that share one share the venv too.
    pub fn venv(&self) -> PathBuf {
        self.target_directory.join("venv")
    }
}

/// Whether `path` is `dir` or lies below it, comparing real paths (symlinks resolved).
fn same_or_inside(path: &Path, dir: &Path) -> bool {
    let real = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    real(path).starts_with(real(dir))
}

/// The root of the workspace `dir` belongs to, if any.
fn workspace_of(sh: &Shell, dir: &Path) -> Option<PathBuf> {
    let _dir = sh.push_dir(dir);
    let cargo = crate::cargo();
    let manifest = cmd!(
        sh,
        "{cargo} locate-project --workspace --message-format plain"
    )
    .quiet()
    .ignore_stderr()
    .read()
    .ok()?;
    Path::new(manifest.trim()).parent().map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const METADATA: &str = r#"{"packages":[
        {"name":"xtask","version":"0.1.0","description":null,"license":null,"repository":null,"homepage":null},
        {"name":"visit-tracker","version":"0.3.0","description":"Counts","license":"Apache-2.0",
         "repository":"https://x/y","homepage":null}],
        "workspace_root":"/w","target_directory":"/shared/target"}"#;

    #[test]
    fn metadata_gives_the_root_the_target_directory_and_the_app_package() {
        let ws = Workspace::parse(METADATA).unwrap();
        assert_eq!(ws.root, Path::new("/w"));
        assert_eq!(ws.target_directory, Path::new("/shared/target"));
        assert_eq!(ws.build_directory, Path::new("/shared/target"));
        assert_eq!(ws.app.version, "0.3.0");
        assert_eq!(ws.app.license.as_deref(), Some("Apache-2.0"));
        assert_eq!(ws.app.homepage, None);
        assert_eq!(
            ws.oci_layout(),
            Path::new("/shared/target/oci/visit-tracker")
        );
        assert_eq!(ws.chart_dir(), Path::new("/w/charts/visit-tracker"));
        assert_eq!(ws.chart_packages_dir(), Path::new("/shared/target/charts"));
        assert_eq!(ws.venv(), Path::new("/shared/target/venv"));

        let with_build_dir = METADATA.replace(
            r#""target_directory""#,
            r#""build_directory":"/b","target_directory""#,
        );
        let ws = Workspace::parse(&with_build_dir).unwrap();
        assert_eq!(ws.build_directory, Path::new("/b"));
    }

    #[test]
    fn another_workspace_is_refused_as_not_ours() {
        let other = METADATA.replace(r#""name":"visit-tracker""#, r#""name":"other""#);
        let err = Workspace::parse(&other).unwrap_err().to_string();
        assert!(err.contains("/w has no package `visit-tracker`"), "{err}");
    }

    #[test]
    fn chart_package_is_named_after_chart_yaml_as_it_is_now() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace {
            root: dir.path().to_path_buf(),
            target_directory: dir.path().join("t"),
            build_directory: dir.path().join("t"),
            app: Workspace::parse(METADATA).unwrap().app,
        };
        let chart = ws.chart_dir();
        std::fs::create_dir_all(&chart).unwrap();
        std::fs::write(chart.join("Chart.yaml"), "name: vt\nversion: 1.2.3\n").unwrap();
        assert_eq!(
            ws.chart_package().unwrap(),
            dir.path().join("t/charts/vt-1.2.3.tgz")
        );
        std::fs::write(chart.join("Chart.yaml"), "name: vt\nversion: 1.2.4\n").unwrap();
        assert_eq!(
            ws.chart_package().unwrap(),
            dir.path().join("t/charts/vt-1.2.4.tgz")
        );
        std::fs::write(chart.join("Chart.yaml"), "name: vt\n").unwrap();
        let err = format!("{:#}", ws.chart_package().unwrap_err());
        assert!(err.contains("Chart.yaml: no `version`"), "{err}");
    }

    /// This checkout, from the CARGO_MANIFEST_DIR that `cargo test` sets for the test process.
    fn this_checkout() -> PathBuf {
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test"))
    }

    #[test]
    fn the_checkout_is_found_at_run_time_from_the_package_cargo_ran() {
        let xtask_dir = this_checkout();
        let from_xtask = Workspace::find(Some(&xtask_dir), &xtask_dir).unwrap();
        assert_eq!(from_xtask.root, xtask_dir.parent().unwrap());
        // Run directly, without cargo: the current directory's workspace, from any depth.
        let from_cwd = Workspace::find(None, &xtask_dir.join("src")).unwrap();
        assert_eq!(from_cwd.root, from_xtask.root);
        assert_eq!(
            Workspace::current().unwrap().root,
            from_xtask.root,
            "the process's workspace"
        );
    }

    #[test]
    fn outside_a_checkout_or_in_another_workspace_it_says_so() {
        let outside = tempfile::tempdir().unwrap();
        let err = Workspace::find(None, outside.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no Cargo.toml") && err.contains("inside a visit-tracker checkout"),
            "{err}"
        );
        // CARGO_MANIFEST_DIR names the checkout even from a directory outside any workspace...
        let xtask_dir = this_checkout();
        assert!(Workspace::find(Some(&xtask_dir), outside.path()).is_ok());
        // ...but not from inside another workspace: which one was meant is unclear.
        std::fs::write(outside.path().join("Cargo.toml"), "[workspace]\n").unwrap();
        std::fs::create_dir(outside.path().join("sub")).unwrap();
        let err = Workspace::find(Some(&xtask_dir), &outside.path().join("sub"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("current directory is in the workspace at")
                && err.contains(&outside.path().canonicalize().unwrap().display().to_string()),
            "{err}"
        );
    }
}
