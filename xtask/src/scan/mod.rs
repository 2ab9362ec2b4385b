//! `cargo xtask security-scan`: dependencies, the image's binaries, workflows, chart policy,
//! committed secrets.
//!
//! Each scanner is an established tool (cargo-deny, RustSec's library, zizmor, checkov,
//! detect-secrets) run with machine-readable output; its findings become one [`Finding`] shape, printed as
//! `file:line: [tool rule] message` and optionally written as one SARIF 2.1.0 file.

pub mod binaries;
pub mod chart;
pub mod deps;
pub mod sarif;
pub mod secrets;
pub mod workflows;

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use xshell::Shell;

use crate::chart::lint::policy;
use crate::tools::{self, CARGO, GIT, Needs, VENV_PYTHON};

/// Scan dependencies, the image's binaries, workflows, the rendered chart and tracked files.
#[derive(Debug, Args)]
pub struct SecurityScan {
    /// RustSec advisory database to use offline (a checkout or a data-only snapshot with a
    /// `crates/` directory). Default: `../shared/advisory-db` next to the repository when it
    /// exists, otherwise cargo-deny fetches the current database.
    #[arg(long, value_name = "DIR", env = "XTASK_ADVISORY_DB")]
    pub advisory_db: Option<PathBuf>,
    /// Write every finding to this SARIF 2.1.0 file (for GitHub code scanning).
    #[arg(long, value_name = "FILE")]
    pub sarif: Option<PathBuf>,
    /// Run only these scanners (comma-separated). Default: all.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Scanner>,
    /// Leave these scanners out (comma-separated). `cargo xtask ci` skips `chart`: its `chart
    /// lint` step runs the same policy check (checkov, same config) over the same renders.
    #[arg(long, value_enum, value_delimiter = ',', conflicts_with = "only")]
    pub skip: Vec<Scanner>,
    /// Cargo.toml whose lockfile the dependency scan checks (and binary findings point into).
    #[arg(long, value_name = "FILE", default_value = "Cargo.toml")]
    pub manifest_path: PathBuf,
    /// OCI image layout whose binaries (every platform) the binaries scan audits
    /// [default: <target-dir>/oci/visit-tracker, as `image build` writes it].
    #[arg(long, value_name = "DIR")]
    pub layout: Option<PathBuf>,
    /// Binaries the binaries scan audits instead of the layout's.
    #[arg(long, value_name = "FILE")]
    pub binary: Vec<PathBuf>,
    /// Files or directories the secret scan reads instead of every tracked file.
    #[arg(long, value_name = "PATH")]
    pub secrets_path: Vec<PathBuf>,
}

/// `security-scan`: every scanner's tool, the Helm engine for the chart scanner, and git (the
/// offline advisory database becomes a scratch repository; detect-secrets lists tracked files).
pub const NEEDS: Needs = Needs {
    tools: &[
        &CARGO,
        &GIT,
        &deps::CARGO_DENY,
        &deps::FIND,
        &deps::CP,
        &workflows::ZIZMOR,
        &VENV_PYTHON,
        &policy::CHECKOV,
        &secrets::DETECT_SECRETS,
    ],
    tasks: &[],
};

/// One scanner of the security scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scanner {
    /// RustSec advisories, licenses, bans and duplicates, sources (cargo-deny).
    Deps,
    /// RustSec advisories of the crates each image binary embeds (cargo auditable data).
    Binaries,
    /// GitHub workflows (zizmor).
    Workflows,
    /// Policy over the rendered chart (checkov).
    Chart,
    /// Committed secrets in tracked files (detect-secrets).
    Secrets,
}

impl Scanner {
    /// Every scanner, in the order they run.
    pub const ALL: [Scanner; 5] = [
        Scanner::Deps,
        Scanner::Binaries,
        Scanner::Workflows,
        Scanner::Chart,
        Scanner::Secrets,
    ];

    /// `only` when given (in its order), else every scanner; without those in `skip`.
    pub fn selected(only: &[Scanner], skip: &[Scanner]) -> Vec<Scanner> {
        let wanted = if only.is_empty() {
            &Self::ALL[..]
        } else {
            only
        };
        wanted
            .iter()
            .copied()
            .filter(|s| !skip.contains(s))
            .collect()
    }
}

/// A problem one scanner found, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The tool that reported it, e.g. `cargo-deny`.
    pub tool: &'static str,
    /// The tool's rule or advisory ID, e.g. `RUSTSEC-2021-0003`.
    pub rule: String,
    pub message: String,
    /// Relative to the repository root.
    pub file: String,
    /// 1-based; 1 when the tool gives no line.
    pub line: u32,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: [{} {}] {}",
            self.file, self.line, self.tool, self.rule, self.message
        )
    }
}

impl SecurityScan {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let scanners = Scanner::selected(&self.only, &self.skip);
        let mut findings = Vec::new();
        for scanner in scanners {
            eprintln!("security-scan: {scanner:?}");
            let found = match scanner {
                Scanner::Deps => deps::scan(sh, &self.manifest_path, self.advisory_db.as_deref())?,
                Scanner::Binaries => {
                    let layout = match &self.layout {
                        Some(dir) => dir.clone(),
                        None => crate::workspace::Workspace::current()?.oci_layout(),
                    };
                    binaries::scan(
                        sh,
                        &layout,
                        &self.binary,
                        &self.manifest_path,
                        self.advisory_db.as_deref(),
                    )?
                }
                Scanner::Workflows => workflows::scan(sh)?,
                Scanner::Chart => chart::scan(sh)?,
                Scanner::Secrets => secrets::scan(sh, &self.secrets_path)?,
            };
            eprintln!("security-scan: {scanner:?}: {} finding(s)", found.len());
            findings.extend(found);
        }
        for finding in &findings {
            println!("{finding}");
        }
        if let Some(path) = &self.sarif {
            let log = sarif::log(&findings);
            tools::write_atomic(path, serde_json::to_string_pretty(&log)?.as_bytes())?;
            eprintln!("security-scan: SARIF written to {}", path.display());
        }
        if !findings.is_empty() {
            bail!("security scan found {} problem(s)", findings.len());
        }
        eprintln!("security-scan: clean");
        Ok(())
    }
}

/// The 1-based line of the first line of `text` that contains `needle`, if any.
pub fn line_of(text: &str, needle: &str) -> Option<u32> {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i as u32 + 1)
}

/// The repository-relative form of a path a tool printed (tools print absolute or `./` paths).
pub fn relative(sh: &Shell, path: &str) -> String {
    let root = sh.current_dir();
    let p = std::path::Path::new(path);
    p.strip_prefix(&root)
        .unwrap_or(p)
        .to_string_lossy()
        .trim_start_matches("./")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn finding_prints_file_line_tool_rule_and_message() {
        let f = Finding {
            tool: "cargo-deny",
            rule: "RUSTSEC-2021-0003".into(),
            message: "smallvec 1.6.0: Buffer overflow".into(),
            file: "Cargo.lock".into(),
            line: 12,
        };
        assert_eq!(
            f.to_string(),
            "Cargo.lock:12: [cargo-deny RUSTSEC-2021-0003] smallvec 1.6.0: Buffer overflow"
        );
    }

    #[test]
    fn scanners_are_all_or_only_those_named_minus_the_skipped() {
        assert_eq!(Scanner::selected(&[], &[]), Scanner::ALL);
        assert_eq!(
            Scanner::selected(&[], &[Scanner::Chart]),
            [
                Scanner::Deps,
                Scanner::Binaries,
                Scanner::Workflows,
                Scanner::Secrets,
            ]
        );
        assert_eq!(
            Scanner::selected(&[Scanner::Secrets, Scanner::Deps], &[]),
            [Scanner::Secrets, Scanner::Deps]
        );
        let cli = crate::Cli::try_parse_from(["xtask", "security-scan", "--skip", "chart"]);
        let crate::Task::SecurityScan(scan) = cli.unwrap().task else {
            panic!("not the security scan");
        };
        assert_eq!(scan.skip, [Scanner::Chart]);
        assert!(
            crate::Cli::try_parse_from([
                "xtask",
                "security-scan",
                "--only",
                "deps",
                "--skip",
                "chart"
            ])
            .is_err()
        );
    }

    #[test]
    fn line_of_is_one_based_and_none_when_absent() {
        assert_eq!(line_of("a\nb\nc", "b"), Some(2));
        assert_eq!(line_of("a", "z"), None);
    }
}
