//! Kubernetes schemas: every rendered object under `kubernetes-validate --strict` for the oldest
//! and newest Kubernetes release the chart supports (Chart.yaml's kubeVersion).

use std::path::Path;

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use super::crds::CRDS;
use crate::chart::engine::Rendered;
use crate::chart::{CHART_DIR, chart_field};
use crate::tools::{self, Tool};

/// Kubernetes' own schemas per release, offline.
pub const KUBERNETES_VALIDATE: Tool = Tool::pip("kubernetes-validate");
/// Oldest and newest Kubernetes versions of Chart.yaml's kubeVersion.
pub fn kube_versions(sh: &Shell) -> Result<(String, String)> {
    let path = sh.current_dir().join(CHART_DIR).join("Chart.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let constraint = chart_field(&text, "kubeVersion")
        .with_context(|| format!("{}: no kubeVersion", path.display()))?;
    kube_version_bounds(&constraint).with_context(|| format!("{}: kubeVersion", path.display()))
}

/// `>=1.30.0-0 <1.38.0-0` gives `1.30.0` and `1.37.0`: the schemas exist per minor release, and an
/// exclusive upper bound means the minor release before it.
pub fn kube_version_bounds(constraint: &str) -> Result<(String, String)> {
    let mut oldest = None;
    let mut newest = None;
    for part in constraint.split_whitespace() {
        let (op, version) = if let Some(v) = part.strip_prefix(">=") {
            (">=", v)
        } else if let Some(v) = part.strip_prefix("<=") {
            ("<=", v)
        } else if let Some(v) = part.strip_prefix('<') {
            ("<", v)
        } else {
            bail!("`{part}`: expected >=X.Y.Z, <X.Y.Z or <=X.Y.Z");
        };
        let v = semver::Version::parse(version.trim_start_matches('v'))
            .with_context(|| format!("`{part}` is not a semantic version"))?;
        match op {
            ">=" => oldest = Some(format!("{}.{}.0", v.major, v.minor)),
            "<=" => newest = Some(format!("{}.{}.0", v.major, v.minor)),
            _ => {
                let minor = if v.patch == 0 {
                    v.minor.checked_sub(1)
                } else {
                    Some(v.minor)
                };
                let minor = minor.with_context(|| format!("`{part}` leaves no version"))?;
                newest = Some(format!("{}.{minor}.0", v.major));
            }
        }
    }
    match (oldest, newest) {
        (Some(o), Some(n)) => Ok((o, n)),
        _ => bail!("`{constraint}` needs both a lower and an upper bound"),
    }
}

/// Every rendered object under `kubernetes-validate --strict` for each version. Kinds without a
/// schema in Kubernetes must be exactly those of [`CRDS`], which [`super::crds`] checks.
pub fn validate(sh: &Shell, rendered: &[Rendered], versions: &[&str]) -> Result<()> {
    let validate = tools::need(sh, &KUBERNETES_VALIDATE)?;
    let files: Vec<&Path> = rendered.iter().map(|r| r.path.as_path()).collect();
    for version in versions {
        let files = &files;
        let out = cmd!(sh, "{validate} --strict --quiet -k {version} {files...}")
            .ignore_status()
            .output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let problems: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !is_known_crd_warning(l))
            .collect();
        if !out.status.success() || !problems.is_empty() {
            bail!(
                "kubernetes-validate --strict -k {version} found problems:\n{}",
                problems.join("\n")
            );
        }
    }
    Ok(())
}

/// kubernetes-validate's "no schema" warning for one of the CRD kinds the chart knows about.
fn is_known_crd_warning(line: &str) -> bool {
    line.contains("Couldn't find schema for kind")
        && CRDS
            .iter()
            .any(|(k, _)| line.contains(&format!("kind {k} with")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_versions_come_from_the_constraint_bounds() {
        let (o, n) = kube_version_bounds(">=1.30.0-0 <1.38.0-0").unwrap();
        assert_eq!((o.as_str(), n.as_str()), ("1.30.0", "1.37.0"));
        let (o, n) = kube_version_bounds(">=1.29.3 <=1.33.1").unwrap();
        assert_eq!((o.as_str(), n.as_str()), ("1.29.0", "1.33.0"));
        assert!(kube_version_bounds(">=1.30.0").is_err());
        assert!(kube_version_bounds("~1.30").is_err());
    }
}
