//! The Helm v4 engine (helm-python-sdk's libhelm, driven by helm_engine.py): the only code that
//! runs the Python helper. Render, `helm lint`, refuse bad values, load, package and pull.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;
use xshell::{Shell, cmd};

use super::{CHART_DIR, TESTS_DIR};
use crate::tools;

/// The helper, compiled into the xtask so the Rust side and the script it drives always come
/// from the same commit, whatever directory the binary is started from.
const SCRIPT: &str = include_str!("helm_engine.py");
/// Where the helper is written for the venv's python to run (also handy to run it by hand).
const SCRIPT_PATH: &str = "target/xtask/helm_engine.py";

/// Release and namespace of every render: a namespace of its own, as the README installs it
/// (checkov rightly flags `default`).
pub const RELEASE: &str = "visit-tracker";
pub const NAMESPACE: &str = "visit-tracker";

/// The venv's python with the helper script in place.
pub struct Engine {
    python: PathBuf,
    script: PathBuf,
}

/// One rendered values case: its label and the multi-document manifest file.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub label: String,
    pub path: PathBuf,
}

impl Engine {
    /// Sets up the venv (helm-python-sdk) and writes the embedded helper under target/.
    pub fn new(sh: &Shell) -> Result<Engine> {
        let python = tools::need(sh, &tools::VENV_PYTHON)?;
        let script = sh.current_dir().join(SCRIPT_PATH);
        tools::write_if_changed(&script, SCRIPT.as_bytes())?;
        Ok(Engine { python, script })
    }

    /// Renders defaults, each values-<env>.yaml and charts/tests/all-on.yaml into `out`.
    pub fn render_all(&self, sh: &Shell, out: &Path) -> Result<Vec<Rendered>> {
        let cases = render_cases(sh)?;
        let args: Vec<String> = cases
            .iter()
            .map(|(label, values)| format!("{label}={values}"))
            .collect();
        let (python, script) = (&self.python, &self.script);
        if out.exists() {
            std::fs::remove_dir_all(out).with_context(|| format!("clearing {}", out.display()))?;
        }
        cmd!(
            sh,
            "{python} {script} render {CHART_DIR} {out} {RELEASE} {NAMESPACE} {args...}"
        )
        .run()
        .context("rendering the chart with the Helm engine")?;
        Ok(cases
            .into_iter()
            .map(|(label, _)| Rendered {
                path: out.join(format!("{label}.yaml")),
                label,
            })
            .collect())
    }

    /// `helm lint --strict` with every values case, for each Kubernetes version.
    pub fn lint(&self, sh: &Shell, kube_versions: &[&str]) -> Result<()> {
        let values: Vec<String> = render_cases(sh)?.into_iter().map(|(_, v)| v).collect();
        let (python, script) = (&self.python, &self.script);
        for version in kube_versions {
            let values = &values;
            cmd!(
                sh,
                "{python} {script} lint {CHART_DIR} {version} {values...}"
            )
            .run()
            .with_context(|| format!("helm lint --strict for Kubernetes {version}"))?;
        }
        Ok(())
    }

    /// Each values file must be refused by the chart (schema or template check) with the message
    /// its first `# expect: ...` line names.
    pub fn refuse(&self, sh: &Shell, files: &[PathBuf]) -> Result<()> {
        let (python, script) = (&self.python, &self.script);
        cmd!(sh, "{python} {script} refuse {CHART_DIR} {files...}")
            .quiet()
            .run()
            .context("a bad values file was not refused as expected")
    }

    /// Loads a packaged chart like `helm install` does and renders it; returns the engine's JSON
    /// (`name`, `version`, `templates`).
    pub fn load_archive(&self, sh: &Shell, archive: &Path) -> Result<Value> {
        let (python, script) = (&self.python, &self.script);
        let out = cmd!(sh, "{python} {script} load {archive} {RELEASE} {NAMESPACE}")
            .read()
            .with_context(|| format!("the Helm engine could not load {}", archive.display()))?;
        serde_json::from_str(&out).context("reading the Helm engine's load report")
    }

    /// Helm's own `helm package` into `dest`; returns the archive's path.
    pub fn helm_package(&self, sh: &Shell, dest: &Path) -> Result<PathBuf> {
        let (python, script) = (&self.python, &self.script);
        let out = cmd!(sh, "{python} {script} helm-package {CHART_DIR} {dest}")
            .read()
            .context("helm package (Helm engine)")?;
        Ok(PathBuf::from(out.trim()))
    }

    /// `helm pull REFERENCE --version VERSION -d DEST` (plain HTTP when `plain_http`, for a
    /// loopback registry), then the pulled archive loaded and rendered like `helm install`;
    /// returns the engine's JSON (`file`, `name`, `version`, `templates`).
    pub fn pull(
        &self,
        sh: &Shell,
        reference: &str,
        version: &str,
        dest: &Path,
        plain_http: bool,
    ) -> Result<Value> {
        let (python, script) = (&self.python, &self.script);
        let transport = if plain_http { "plain-http" } else { "https" };
        let out = cmd!(
            sh,
            "{python} {script} pull {reference} {version} {dest} {transport}"
        )
        .read()
        .with_context(|| format!("helm pull {reference} --version {version}"))?;
        serde_json::from_str(&out).context("reading the Helm engine's pull report")
    }
}

/// (label, values file relative to the root; empty for the defaults).
fn render_cases(sh: &Shell) -> Result<Vec<(String, String)>> {
    let mut cases = vec![("default".to_owned(), String::new())];
    let chart = sh.current_dir().join(CHART_DIR);
    let mut envs: Vec<String> = std::fs::read_dir(&chart)
        .with_context(|| format!("reading {}", chart.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| Some(n.strip_prefix("values-")?.strip_suffix(".yaml")?.to_owned()))
        .collect();
    envs.sort();
    for env in envs {
        cases.push((env.clone(), format!("{CHART_DIR}/values-{env}.yaml")));
    }
    cases.push(("all-on".to_owned(), format!("{TESTS_DIR}/all-on.yaml")));
    Ok(cases)
}
