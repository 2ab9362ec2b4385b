//! Packages the chart into a deterministic .tgz.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use flate2::{Compression, GzBuilder};
use xshell::{Shell, cmd};

use super::CHART_DIR;
use crate::tools;
use crate::workspace::{ChartMeta, Workspace};

/// Packages the chart into a deterministic .tgz in Helm's layout (`visit-tracker/...`), honouring
/// .helmignore: sorted entries, fixed owner and modes, mtime from SOURCE_DATE_EPOCH or the last
/// commit, gzip without a timestamp. The same chart gives the same bytes on any machine.
#[derive(Debug, Args)]
pub struct Package {
    /// Directory to write visit-tracker-<version>.tgz into [default: <target-dir>/charts, where
    /// `chart push` looks].
    #[arg(long, visible_alias = "output", value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

impl Package {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let out_dir = match self.out_dir {
            Some(dir) => dir,
            None => Workspace::current()?.chart_packages_dir(),
        };
        let path = package(sh, &out_dir)?;
        println!("{}", path.display());
        Ok(())
    }
}

/// Builds the archive of the chart under the root and writes it atomically into `out_dir`.
pub fn package(sh: &Shell, out_dir: &Path) -> Result<PathBuf> {
    let chart = sh.current_dir().join(CHART_DIR);
    let meta = ChartMeta::read(&chart)?;
    let mtime = source_date_epoch(
        std::env::var("SOURCE_DATE_EPOCH").ok().as_deref(),
        cmd!(sh, "git log -1 --format=%ct")
            .quiet()
            .ignore_stderr()
            .read()
            .ok()
            .as_deref(),
    )?;
    let files = chart_files(&chart)?;
    let bytes = archive(&meta.name, &files, mtime)?;
    let out_dir = sh.current_dir().join(out_dir);
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let path = out_dir.join(meta.package_file_name());
    tools::write_atomic(&path, &bytes)?;
    eprintln!(
        "packaged {} files of {CHART_DIR} (mtime {mtime})",
        files.len()
    );
    Ok(path)
}

/// The timestamp every entry gets: SOURCE_DATE_EPOCH when set, else the last commit's time.
pub fn source_date_epoch(env: Option<&str>, commit_time: Option<&str>) -> Result<u64> {
    if let Some(v) = env.filter(|v| !v.trim().is_empty()) {
        return v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"));
    }
    match commit_time.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => v.parse().with_context(|| format!("git commit time {v:?}")),
        None => bail!("no SOURCE_DATE_EPOCH and no git commit to take a timestamp from"),
    }
}

/// The chart's files (relative paths with `/`, and contents) that .helmignore keeps, sorted.
pub fn chart_files(chart: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let ignore_file = chart.join(".helmignore");
    let rules = match std::fs::read_to_string(&ignore_file) {
        Ok(text) => {
            HelmIgnore::parse(&text).with_context(|| format!("{}", ignore_file.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HelmIgnore::parse("")?,
        Err(e) => return Err(e).with_context(|| format!("reading {}", ignore_file.display())),
    };
    let mut files = Vec::new();
    let mut dirs = vec![String::new()];
    while let Some(dir) = dirs.pop() {
        let full = chart.join(&dir);
        for entry in
            std::fs::read_dir(&full).with_context(|| format!("reading {}", full.display()))?
        {
            let entry = entry?;
            let name = entry
                .file_name()
                .into_string()
                .map_err(|n| anyhow::anyhow!("{}: file name {n:?} is not UTF-8", full.display()))?;
            let rel = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            let kind = entry.file_type()?;
            if rules.ignored(&rel, kind.is_dir()) {
                continue;
            }
            if kind.is_dir() {
                dirs.push(rel);
            } else if kind.is_file() {
                let bytes = std::fs::read(entry.path())
                    .with_context(|| format!("reading {}", entry.path().display()))?;
                files.push((rel, bytes));
            } else {
                bail!(
                    "{}: only files and directories can be packaged",
                    entry.path().display()
                );
            }
        }
    }
    files.sort();
    Ok(files)
}

/// A gzip'd tar of `files` under `name/`: only file entries, sorted, mode 0644, owner 0:0,
/// the same mtime everywhere, and a gzip header without time or file name.
pub fn archive(name: &str, files: &[(String, Vec<u8>)], mtime: u64) -> Result<Vec<u8>> {
    let mut sorted: Vec<&(String, Vec<u8>)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut tar = tar::Builder::new(Vec::new());
    for (path, bytes) in sorted {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        tar.append_data(&mut header, format!("{name}/{path}"), bytes.as_slice())
            .with_context(|| format!("adding {path} to the archive"))?;
    }
    let tar = tar.into_inner()?;
    let mut gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    gz.write_all(&tar)?;
    Ok(gz.finish()?)
}

/// Helm's .helmignore rules (helm.sh/helm/v4/pkg/ignore): globs on the base name, or on the
/// whole path when the pattern has a `/`; a trailing `/` matches directories only; `!` negates.
/// Like Helm, dot files under templates/ are always left out.
#[derive(Debug)]
pub struct HelmIgnore {
    patterns: Vec<Pattern>,
}

#[derive(Debug)]
struct Pattern {
    glob: String,
    negate: bool,
    dir_only: bool,
    whole_path: bool,
}

impl HelmIgnore {
    pub fn parse(text: &str) -> Result<HelmIgnore> {
        let mut patterns = Vec::new();
        for (i, line) in text
            .lines()
            .chain(std::iter::once("templates/.?*"))
            .enumerate()
        {
            let mut rule = line.trim();
            if rule.is_empty() || rule.starts_with('#') {
                continue;
            }
            ensure!(
                !rule.contains("**"),
                "line {}: `**` is not supported by Helm",
                i + 1
            );
            let negate = rule.starts_with('!');
            rule = rule.trim_start_matches('!');
            let dir_only = rule.ends_with('/');
            rule = rule.trim_end_matches('/');
            let whole_path = rule.contains('/');
            patterns.push(Pattern {
                glob: rule.trim_start_matches('/').to_owned(),
                negate,
                dir_only,
                whole_path,
            });
        }
        Ok(HelmIgnore { patterns })
    }

    /// Whether `path` (relative, `/`-separated) is left out, as Helm's `Rules.Ignore` decides.
    pub fn ignored(&self, path: &str, is_dir: bool) -> bool {
        let base = path.rsplit('/').next().unwrap_or(path);
        for p in &self.patterns {
            let subject = if p.whole_path { path } else { base };
            let matched = glob_match(&p.glob, subject);
            if p.negate {
                if (p.dir_only && !is_dir) || !matched {
                    return true;
                }
                continue;
            }
            if p.dir_only && !is_dir {
                continue;
            }
            if matched {
                return true;
            }
        }
        false
    }
}

/// Go's `filepath.Match`: `*` and `?` never cross `/`; `[...]` classes with ranges and `^`/`!`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len())
                .take_while(|&i| i == 0 || n[i - 1] != '/')
                .any(|i| go(&p[1..], &n[i..])),
            Some('?') => n.first().is_some_and(|&c| c != '/') && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(&c) = n.first() else { return false };
                let Some(end) = p.iter().skip(1).position(|&x| x == ']').map(|e| e + 1) else {
                    return false;
                };
                let mut class = &p[1..end];
                let negated = matches!(class.first(), Some('^' | '!'));
                if negated {
                    class = &class[1..];
                }
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == c;
                        i += 1;
                    }
                }
                hit != negated && go(&p[end + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && go(&p[2..], &n[1..]),
            Some(&c) => n.first() == Some(&c) && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_behave_like_go_filepath_match() {
        assert!(glob_match("*.swp", "a.swp"));
        assert!(!glob_match("*.swp", "dir/a.swp"));
        assert!(glob_match("templates/.?*", "templates/.hidden"));
        assert!(!glob_match("templates/.?*", "templates/."));
        assert!(glob_match("*~", "values.yaml~"));
        assert!(glob_match("[a-c]?.txt", "bx.txt"));
        assert!(!glob_match("[^a-c]?.txt", "bx.txt"));
        assert!(glob_match(".DS_Store", ".DS_Store"));
    }

    #[test]
    fn helmignore_rules_follow_helm() {
        let rules = HelmIgnore::parse("# c\n.git/\n*.bak\n/ci/*.yaml\n").unwrap();
        assert!(rules.ignored(".git", true));
        assert!(
            !rules.ignored(".git", false),
            "trailing / matches directories only"
        );
        assert!(rules.ignored("templates/x.bak", false));
        assert!(rules.ignored("ci/a.yaml", false));
        assert!(!rules.ignored("templates/ci/a.yaml", false));
        assert!(
            rules.ignored("templates/.editor", false),
            "Helm's default rule"
        );
        assert!(!rules.ignored("templates/deployment.yaml", false));
        assert!(HelmIgnore::parse("**/x\n").is_err());
    }

    #[test]
    fn mtime_prefers_source_date_epoch_then_the_commit() {
        assert_eq!(source_date_epoch(Some("100"), Some("200")).unwrap(), 100);
        assert_eq!(source_date_epoch(None, Some("200\n")).unwrap(), 200);
        assert_eq!(source_date_epoch(Some(""), Some("200")).unwrap(), 200);
        assert!(source_date_epoch(Some("yesterday"), None).is_err());
        assert!(source_date_epoch(None, None).is_err());
    }

    #[test]
    fn archives_are_sorted_fixed_and_reproducible() {
        let files = vec![
            ("values.yaml".to_owned(), b"a: 1\n".to_vec()),
            ("Chart.yaml".to_owned(), b"name: x\n".to_vec()),
        ];
        let one = archive("x", &files, 1_700_000_000).unwrap();
        let reversed: Vec<_> = files.iter().rev().cloned().collect();
        assert_eq!(one, archive("x", &reversed, 1_700_000_000).unwrap());
        assert_ne!(one, archive("x", &files, 1_700_000_001).unwrap());
        // gzip header: no modification time.
        assert_eq!(&one[4..8], &[0, 0, 0, 0]);
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(one.as_slice()));
        let entries: Vec<(String, u32, u64, u64)> = tar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                let path = e.path().unwrap().display().to_string();
                (
                    path,
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("x/Chart.yaml".to_owned(), 0o644, 0, 1_700_000_000),
                ("x/values.yaml".to_owned(), 0o644, 0, 1_700_000_000)
            ]
        );
    }
}
