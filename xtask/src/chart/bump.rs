//! Sets the chart version, appVersion and image reference, keeping comments and layout; and
//! checks that the chart follows the app's version (the version scheme of the releases).

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use saphyr::{LoadableYamlNode, MarkedYaml, ScalarStyle};
use semver::Version;
use xshell::{Shell, cmd};

use super::{CHART_DIR, chart_field};
use crate::tools;
use crate::workspace::Workspace;

/// Sets `version` and `appVersion` in Chart.yaml and `image.tag`/`image.digest` in values.yaml,
/// editing the scalars in place so comments, order and layout stay as they are. The image tag
/// follows appVersion; the digest is set with --digest and cleared otherwise (an old digest
/// would pin an old image). Both files are checked before either is written.
///
/// The chart version follows the app version: with the crate at X.Y.Z, `chart bump X.Y.Z` sets
/// both to it, and release vX.Y.Z publishes chart X.Y.Z (`--check` keeps them equal).
#[derive(Debug, Args)]
pub struct Bump {
    /// The new chart version (semver, higher than the current one; the crate's version, as the
    /// releases expect); also `--version X`.
    #[arg(
        long = "version",
        value_name = "VERSION",
        conflicts_with_all = ["patch", "minor", "major", "check", "keep_version"],
        required_unless_present_any = ["new_version", "patch", "minor", "major", "check", "keep_version"]
    )]
    pub version: Option<String>,
    #[arg(value_name = "VERSION", conflicts_with_all = ["version", "patch", "minor", "major", "check", "keep_version"], hide = true)]
    pub new_version: Option<String>,
    /// Keep the chart version; set only appVersion and the image (what `release` does: the
    /// chart already carries the release's version).
    #[arg(long, conflicts_with_all = ["patch", "minor", "major", "check"])]
    pub keep_version: bool,
    /// Increase the patch version.
    #[arg(long, conflicts_with_all = ["minor", "major", "check"])]
    pub patch: bool,
    /// Increase the minor version.
    #[arg(long, conflicts_with_all = ["major", "check"])]
    pub minor: bool,
    /// Increase the major version.
    #[arg(long, conflicts_with = "check")]
    pub major: bool,
    /// appVersion (and image tag) to set; default: the visit-tracker crate's version.
    #[arg(long)]
    pub app_version: Option<String>,
    /// Pull the image by this digest (`sha256:<64 hex>`), e.g. the one `image push` printed.
    #[arg(long)]
    pub digest: Option<String>,
    /// Only check that the chart follows the app (a pull-request check): Chart.yaml's version
    /// and appVersion and values.yaml's image.tag equal the visit-tracker crate's version, and
    /// the version is not lower than at BASE_REF. Without BASE_REF: origin/$GITHUB_BASE_REF,
    /// else origin/main.
    #[arg(long, value_name = "BASE_REF", num_args = 0..=1, default_missing_value = "")]
    pub check: Option<String>,
}

/// How the new chart version is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Increment {
    Exact(String),
    /// The current version again.
    Keep,
    Patch,
    Minor,
    Major,
}

impl Bump {
    pub fn run(self, sh: &Shell) -> Result<()> {
        if let Some(base) = &self.check {
            return check(
                sh,
                &base_ref(base, std::env::var("GITHUB_BASE_REF").ok().as_deref()),
            );
        }
        let version = self.version.or(self.new_version);
        let increment = match (&version, self.patch, self.minor, self.major) {
            (Some(v), ..) => Increment::Exact(v.clone()),
            (None, ..) if self.keep_version => Increment::Keep,
            (None, true, ..) => Increment::Patch,
            (None, _, true, _) => Increment::Minor,
            (None, _, _, true) => Increment::Major,
            _ => bail!(
                "give a version, --keep-version, --patch, --minor, --major or --check BASE_REF"
            ),
        };
        let app_version = match self.app_version {
            Some(v) => v,
            None => Workspace::current()?.app.version.clone(),
        };
        let root = sh.current_dir();
        let chart_path = root.join(CHART_DIR).join("Chart.yaml");
        let values_path = root.join(CHART_DIR).join("values.yaml");
        let chart = read(&chart_path)?;
        let values = read(&values_path)?;
        let (new_chart, new_values, version) = bump_texts(
            &chart,
            &values,
            &increment,
            &app_version,
            self.digest.as_deref(),
        )
        .map_err(|e| e.at(&chart_path, &values_path))?;
        // Both edits are complete and re-checked before the first write.
        tools::write_atomic(&chart_path, new_chart.as_bytes())?;
        tools::write_atomic(&values_path, new_values.as_bytes())?;
        println!("chart {version}, appVersion {app_version}");
        Ok(())
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// An edit error that knows which of the two files it is about.
#[derive(Debug)]
pub enum BumpError {
    Chart(anyhow::Error),
    Values(anyhow::Error),
    Input(anyhow::Error),
}

impl BumpError {
    fn at(self, chart: &Path, values: &Path) -> anyhow::Error {
        match self {
            BumpError::Chart(e) => e.context(format!("{}", chart.display())),
            BumpError::Values(e) => e.context(format!("{}", values.display())),
            BumpError::Input(e) => e,
        }
    }
}

/// The new texts of Chart.yaml and values.yaml, and the new chart version. Pure: no file access.
pub fn bump_texts(
    chart: &str,
    values: &str,
    increment: &Increment,
    app_version: &str,
    digest: Option<&str>,
) -> std::result::Result<(String, String, String), BumpError> {
    let current = chart_field(chart, "version")
        .context("no `version` field")
        .and_then(|v| Version::parse(&v).with_context(|| format!("version {v:?} is not semver")));
    // A parse error outranks a missing field: it says where the file is broken.
    locate(chart, &["version"]).map_err(BumpError::Chart)?;
    let current = current.map_err(BumpError::Chart)?;
    let next = next_version(&current, increment).map_err(BumpError::Input)?;
    Version::parse(app_version)
        .with_context(|| format!("appVersion {app_version:?} is not semver"))
        .map_err(BumpError::Input)?;
    if let Some(d) = digest {
        ensure_digest(d).map_err(BumpError::Input)?;
    }
    let chart = set_scalar(chart, &["version"], &next.to_string()).map_err(BumpError::Chart)?;
    let chart = set_scalar(&chart, &["appVersion"], app_version).map_err(BumpError::Chart)?;
    let values = set_scalar(values, &["image", "tag"], app_version).map_err(BumpError::Values)?;
    let values = set_scalar(&values, &["image", "digest"], digest.unwrap_or(""))
        .map_err(BumpError::Values)?;
    Ok((chart, values, next.to_string()))
}

/// The version after `increment`; an explicit one must be higher than `current`.
pub fn next_version(current: &Version, increment: &Increment) -> Result<Version> {
    let mut next = current.clone();
    next.pre = semver::Prerelease::EMPTY;
    next.build = semver::BuildMetadata::EMPTY;
    match increment {
        Increment::Exact(v) => {
            let v = Version::parse(v.trim_start_matches('v'))
                .with_context(|| format!("{v:?} is not a semantic version (X.Y.Z)"))?;
            ensure!(
                v > *current,
                "version {v} is not higher than the current {current}"
            );
            return Ok(v);
        }
        Increment::Keep => return Ok(current.clone()),
        Increment::Patch if !current.pre.is_empty() => {}
        Increment::Patch => next.patch += 1,
        Increment::Minor => (next.minor, next.patch) = (next.minor + 1, 0),
        Increment::Major => (next.major, next.minor, next.patch) = (next.major + 1, 0, 0),
    }
    Ok(next)
}

fn ensure_digest(digest: &str) -> Result<()> {
    let hex = digest
        .strip_prefix("sha256:")
        .with_context(|| format!("digest {digest:?} must start with sha256:"))?;
    ensure!(
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "digest {digest:?} needs 64 lower-case hex digits after sha256:"
    );
    Ok(())
}

/// Where a scalar sits in `text`: byte range and quoting style.
#[derive(Debug, PartialEq, Eq)]
struct Located {
    start: usize,
    end: usize,
    style: ScalarStyle,
}

/// Finds the scalar at `path` (mapping keys from the root) with its position in the text.
fn locate(text: &str, path: &[&str]) -> Result<Located> {
    let docs = MarkedYaml::load_from_str(text)
        .map_err(|e| anyhow::anyhow!("line {}: {}", e.marker().line(), e.info()))?;
    let mut node = docs.first().context("the file is empty")?;
    for (i, key) in path.iter().enumerate() {
        node = node
            .data
            .as_mapping_get(key)
            .with_context(|| format!("no `{}` field", path[..=i].join(".")))?;
    }
    let field = path.join(".");
    let line = node.span.start.line();
    ensure!(
        matches!(node.data, saphyr::YamlData::Value(_)),
        "line {line}: `{field}` is not a scalar"
    );
    let byte = |chars: usize| {
        text.char_indices()
            .nth(chars)
            .map_or(text.len(), |(b, _)| b)
    };
    let (start, mut end) = (byte(node.span.start.index()), byte(node.span.end.index()));
    let style = match text[start..].chars().next() {
        Some('"') => ScalarStyle::DoubleQuoted,
        Some('\'') => ScalarStyle::SingleQuoted,
        _ => ScalarStyle::Plain,
    };
    // Splicing is safe for one-line scalars next to their key; block or folded ones are refused.
    let line_before = text[..start].rsplit('\n').next().unwrap_or("");
    ensure!(
        !line_before.trim().is_empty() && !text[start..end].contains('\n'),
        "line {line}: `{field}` is a block scalar; write it on one line"
    );
    // A plain scalar's span may run into trailing spaces before a comment.
    while end > start && text.as_bytes()[end - 1] == b' ' {
        end -= 1;
    }
    Ok(Located { start, end, style })
}

/// `text` with the scalar at `path` replaced by `value`, in its quoting style (plain values that
/// YAML would read as something else get double quotes). Re-parsed to prove the edit.
fn set_scalar(text: &str, path: &[&str], value: &str) -> Result<String> {
    let at = locate(text, path)?;
    let rendered = match at.style {
        ScalarStyle::SingleQuoted => format!("'{}'", value.replace('\'', "''")),
        ScalarStyle::Plain if plain_is_string(value) => value.to_owned(),
        _ => format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\"")),
    };
    let mut out = String::with_capacity(text.len() + rendered.len());
    out.push_str(&text[..at.start]);
    out.push_str(&rendered);
    out.push_str(&text[at.end..]);
    let docs = MarkedYaml::load_from_str(&out)
        .map_err(|e| anyhow::anyhow!("editing `{}` broke the file: {}", path.join("."), e))?;
    let mut node = docs.first().context("the edit emptied the file")?;
    for key in path {
        node = node
            .data
            .as_mapping_get(key)
            .context("the edit lost the field")?;
    }
    let got = match &node.data {
        saphyr::YamlData::Value(saphyr::Scalar::String(s)) => s.to_string(),
        saphyr::YamlData::Representation(s, ..) => s.to_string(),
        other => bail!("`{}` reads back as {other:?}", path.join(".")),
    };
    ensure!(
        got == value,
        "`{}` reads back as {got:?}, not {value:?}",
        path.join(".")
    );
    Ok(out)
}

/// Whether `value` written plain reads back as the same string (not a number, bool or null).
fn plain_is_string(value: &str) -> bool {
    !value.is_empty()
        && !value.starts_with(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
        && !value.contains(": ")
        && !value.contains(" #")
        && value.parse::<f64>().is_err()
        && !matches!(
            value.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "~" | "yes" | "no" | "on" | "off"
        )
}

/// The base of `--check`: as given, else the pull request's base branch on origin, else main.
pub fn base_ref(given: &str, github_base_ref: Option<&str>) -> String {
    match (given, github_base_ref.filter(|b| !b.is_empty())) {
        ("", Some(branch)) => format!("origin/{branch}"),
        ("", None) => "origin/main".to_owned(),
        (given, _) => given.to_owned(),
    }
}

/// `--check BASE_REF`: the chart follows the crate's version, which did not go down since the
/// merge base with BASE_REF.
fn check(sh: &Shell, base: &str) -> Result<()> {
    let merge_base = cmd!(sh, "git merge-base {base} HEAD")
        .read()
        .with_context(|| {
            format!(
                "finding the merge base of {base} and HEAD (a shallow clone needs the history: \
             `git fetch origin <branch>`, or actions/checkout with fetch-depth: 0)"
            )
        })?;
    let spec = format!("{merge_base}:{CHART_DIR}/Chart.yaml");
    let base_chart = cmd!(sh, "git show {spec}")
        .quiet()
        .ignore_stderr()
        .read()
        .ok();
    let base_version = base_chart
        .as_deref()
        .and_then(|t| chart_field(t, "version"));
    let root = sh.current_dir().join(CHART_DIR);
    let chart = read(&root.join("Chart.yaml"))?;
    let values = read(&root.join("values.yaml"))?;
    let app_version = &Workspace::current()?.app.version;
    follows_app(&chart, &values, app_version)?;
    not_lower(base_version.as_deref(), app_version)
        .with_context(|| format!("compared with {base}"))?;
    println!("chart version check against {base}: ok (chart and app at {app_version})");
    Ok(())
}

/// The version scheme: the chart in git carries the app's version, as `version`, `appVersion`
/// and the image tag (or no tag, which means appVersion), so release vX.Y.Z publishes chart
/// X.Y.Z and every release's chart version is its own. On failure, names each field that is off
/// and the command that fixes it.
pub fn follows_app(chart: &str, values: &str, app_version: &str) -> Result<()> {
    let app = Version::parse(app_version)
        .with_context(|| format!("the app version {app_version:?} is not semver"))?;
    let version = chart_field(chart, "version");
    let fields = [
        ("Chart.yaml", "version", version.clone()),
        ("Chart.yaml", "appVersion", chart_field(chart, "appVersion")),
        (
            "values.yaml",
            "image.tag",
            nested_field(values, &["image", "tag"]).filter(|t| !t.is_empty()),
        ),
    ];
    let off: Vec<String> = fields
        .iter()
        .filter(|(file, _, value)| {
            value.as_deref() != Some(app_version) && !(*file == "values.yaml" && value.is_none())
        })
        .map(|(file, field, value)| {
            format!(
                "{file} {field} is {}",
                value.as_deref().unwrap_or("missing")
            )
        })
        .collect();
    if off.is_empty() {
        return Ok(());
    }
    let fix = match version.as_deref().map(Version::parse) {
        Some(Ok(v)) if v < app => format!("run `cargo xtask chart bump {app}`"),
        Some(Ok(v)) if v == app => "run `cargo xtask chart bump --keep-version`".to_owned(),
        Some(Ok(v)) => format!(
            "the chart is ahead of the app: set the crate version (Cargo.toml \
             [workspace.package]) to {v}"
        ),
        _ => format!("set Chart.yaml `version` to {app}"),
    };
    bail!(
        "{CHART_DIR}: the chart version follows the app version {app} (release v{app} publishes \
         chart {app}), but {}: {fix}",
        off.join(", ")
    )
}

/// Versions only go up: the version is not lower than the base's (if the base had a chart).
pub fn not_lower(base: Option<&str>, current: &str) -> Result<()> {
    let Some(base) = base else {
        return Ok(());
    };
    let parse = |v: &str| Version::parse(v).with_context(|| format!("version {v:?} is not semver"));
    ensure!(
        parse(current)? >= parse(base)?,
        "the version went down from {base} to {current}: published versions are never reused, \
         so versions only go up"
    );
    Ok(())
}

/// The scalar at `path` (mapping keys from the root) as text.
fn nested_field(text: &str, path: &[&str]) -> Option<String> {
    use saphyr::{Scalar, Yaml};
    let docs = Yaml::load_from_str(text).ok()?;
    let mut node = docs.first()?;
    for key in path {
        node = node.as_mapping_get(key)?;
    }
    match node {
        Yaml::Value(Scalar::String(s)) => Some(s.to_string()),
        Yaml::Value(Scalar::Integer(i)) => Some(i.to_string()),
        Yaml::Value(Scalar::FloatingPoint(f)) => Some(f.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHART: &str = "# The chart.\napiVersion: v2\nname: visit-tracker\n# Bump me.\nversion: 0.1.0   # inline\nappVersion: \"0.1.0\"\nkubeVersion: \">=1.30.0-0\"\n";
    const VALUES: &str = "## @section Image\nimage:\n  ## @param image.tag Tag\n  tag: '0.1.0'\n  ## @param image.digest Digest\n  digest: \"\"\n  pullPolicy: IfNotPresent\nreplicaCount: 2\n";
    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn bump(inc: Increment, digest: Option<&str>) -> (String, String, String) {
        bump_texts(CHART, VALUES, &inc, "0.2.0", digest)
            .map_err(|e| e.at(Path::new("Chart.yaml"), Path::new("values.yaml")))
            .unwrap()
    }

    fn error(chart: &str, values: &str, inc: Increment, app: &str) -> String {
        let e = bump_texts(chart, values, &inc, app, None).unwrap_err();
        format!(
            "{:#}",
            e.at(Path::new("Chart.yaml"), Path::new("values.yaml"))
        )
    }

    #[test]
    fn edits_only_the_scalars_and_keeps_comments_and_quotes() {
        let (chart, values, version) = bump(Increment::Minor, None);
        assert_eq!(version, "0.2.0");
        assert_eq!(
            chart,
            CHART
                .replace("version: 0.1.0   # inline", "version: 0.2.0   # inline")
                .replace("appVersion: \"0.1.0\"", "appVersion: \"0.2.0\"")
        );
        assert_eq!(values, VALUES.replace("tag: '0.1.0'", "tag: '0.2.0'"));
    }

    #[test]
    fn digest_is_set_and_cleared() {
        let (_, values, _) = bump(Increment::Exact("1.0.0".into()), Some(DIGEST));
        assert!(
            values.contains(&format!("  digest: \"{DIGEST}\"\n")),
            "{values}"
        );
        let (_, again, _) = bump_texts(CHART, &values, &Increment::Patch, "0.2.0", None)
            .map_err(|e| e.at(Path::new("a"), Path::new("b")))
            .unwrap();
        assert!(again.contains("  digest: \"\"\n"), "{again}");
        let e = bump_texts(
            CHART,
            VALUES,
            &Increment::Patch,
            "0.2.0",
            Some("sha256:xyz"),
        )
        .unwrap_err();
        assert!(
            format!("{:#}", e.at(Path::new("a"), Path::new("b"))).contains("64 lower-case hex")
        );
    }

    #[test]
    fn increments_follow_semver() {
        let v = Version::parse("1.2.3").unwrap();
        let next = |i| next_version(&v, &i).unwrap().to_string();
        assert_eq!(next(Increment::Patch), "1.2.4");
        assert_eq!(next(Increment::Minor), "1.3.0");
        assert_eq!(next(Increment::Major), "2.0.0");
        assert_eq!(next(Increment::Exact("1.2.4-rc.1".into())), "1.2.4-rc.1");
        assert_eq!(next(Increment::Keep), "1.2.3");
        let rc = Version::parse("1.3.0-rc.1").unwrap();
        assert_eq!(
            next_version(&rc, &Increment::Patch).unwrap().to_string(),
            "1.3.0"
        );
    }

    #[test]
    fn refuses_invalid_and_non_increasing_versions() {
        assert!(
            error(CHART, VALUES, Increment::Exact("1.2".into()), "0.2.0")
                .contains("not a semantic version")
        );
        assert!(
            error(CHART, VALUES, Increment::Exact("0.1.0".into()), "0.2.0")
                .contains("not higher than the current 0.1.0")
        );
        assert!(
            error(CHART, VALUES, Increment::Exact("0.0.9".into()), "0.2.0").contains("not higher")
        );
        assert!(
            error(CHART, VALUES, Increment::Patch, "latest")
                .contains("appVersion \"latest\" is not semver")
        );
    }

    #[test]
    fn malformed_files_are_named_with_the_line() {
        let broken = "apiVersion: v2\nname: x\nversion: [0.1.0\nappVersion: 1\n";
        let e = error(broken, VALUES, Increment::Patch, "0.2.0");
        assert!(e.starts_with("Chart.yaml: line "), "{e}");
        let e = error(
            CHART,
            "image:\n  tag: 1\n   bad: [\n",
            Increment::Patch,
            "0.2.0",
        );
        assert!(e.starts_with("values.yaml: line "), "{e}");
        let e = error(CHART, "replicaCount: 2\n", Increment::Patch, "0.2.0");
        assert!(e.contains("values.yaml: no `image` field"), "{e}");
        let e = error(
            "name: x\nversion: |\n  0.1.0\n",
            VALUES,
            Increment::Patch,
            "0.2.0",
        );
        assert!(e.contains("block scalar"), "{e}");
    }

    #[test]
    fn plain_scalars_stay_plain_only_when_safe() {
        assert_eq!(
            set_scalar("a: x # c\n", &["a"], "1.2.3").unwrap(),
            "a: 1.2.3 # c\n"
        );
        assert_eq!(set_scalar("a: x\n", &["a"], "1.5").unwrap(), "a: \"1.5\"\n");
        assert_eq!(set_scalar("a: x\n", &["a"], "").unwrap(), "a: \"\"\n");
        assert_eq!(
            set_scalar("a: x\n", &["a"], "true").unwrap(),
            "a: \"true\"\n"
        );
    }

    #[test]
    fn check_base_defaults_to_the_pull_requests_base_branch() {
        assert_eq!(base_ref("", Some("release-1")), "origin/release-1");
        assert_eq!(base_ref("", Some("")), "origin/main");
        assert_eq!(base_ref("", None), "origin/main");
        assert_eq!(base_ref("v1.0.0", Some("main")), "v1.0.0");
    }

    #[test]
    fn the_command_line_takes_the_version_either_way() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            bump: Bump,
        }
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("bump").chain(args.iter().copied()))
        };
        let bump = parse(&["1.2.3"]).unwrap().bump;
        assert_eq!(bump.version.or(bump.new_version).as_deref(), Some("1.2.3"));
        let bump = parse(&["--version", "1.2.3", "--app-version", "1.2.3"])
            .unwrap()
            .bump;
        assert_eq!(bump.version.as_deref(), Some("1.2.3"));
        assert_eq!(parse(&["--check"]).unwrap().bump.check.as_deref(), Some(""));
        assert_eq!(
            parse(&["--check", "main"]).unwrap().bump.check.as_deref(),
            Some("main")
        );
        assert!(parse(&[]).is_err());
        assert!(
            parse(&["--keep-version", "--digest", "sha256:x"])
                .unwrap()
                .bump
                .keep_version
        );
        assert!(parse(&["1.2.3", "--keep-version"]).is_err());
        assert!(parse(&["1.2.3", "--patch"]).is_err());
        assert!(parse(&["1.2.3", "--version", "1.2.4"]).is_err());
    }

    #[test]
    fn the_chart_follows_the_app_version_and_the_error_names_the_fix() {
        let chart = |v: &str, app: &str| format!("name: x\nversion: {v}\nappVersion: \"{app}\"\n");
        let values = |tag: &str| format!("image:\n  tag: \"{tag}\"\n  digest: \"\"\n");
        follows_app(&chart("1.2.3", "1.2.3"), &values("1.2.3"), "1.2.3").unwrap();
        // No image tag means appVersion.
        follows_app(&chart("1.2.3", "1.2.3"), &values(""), "1.2.3").unwrap();
        let err = |c: &str, v: &str, app: &str| follows_app(c, v, app).unwrap_err().to_string();
        // The crate went to 1.3.0 and the chart stayed.
        let e = err(&chart("1.2.3", "1.2.3"), &values("1.2.3"), "1.3.0");
        assert!(
            e.contains(
                "but Chart.yaml version is 1.2.3, Chart.yaml appVersion is 1.2.3, values.yaml \
                 image.tag is 1.2.3: run `cargo xtask chart bump 1.3.0`"
            ),
            "{e}"
        );
        let e = err(&chart("1.3.0", "1.2.3"), &values("1.3.0"), "1.3.0");
        assert!(
            e.contains(
                "Chart.yaml appVersion is 1.2.3: run `cargo xtask chart bump --keep-version`"
            ),
            "{e}"
        );
        let e = err(&chart("1.4.0", "1.4.0"), &values("1.4.0"), "1.3.0");
        assert!(e.contains("the chart is ahead of the app"), "{e}");
        let e = err("name: x\n", &values(""), "1.3.0");
        assert!(e.contains("Chart.yaml version is missing"), "{e}");
    }

    #[test]
    fn versions_never_go_down() {
        not_lower(None, "0.1.0").unwrap();
        not_lower(Some("0.1.0"), "0.1.0").unwrap();
        not_lower(Some("0.1.0"), "0.2.0").unwrap();
        let e = not_lower(Some("0.2.0"), "0.1.9").unwrap_err().to_string();
        assert!(e.contains("went down from 0.2.0 to 0.1.9"), "{e}");
    }

    /// The self-check of the scheme on this checkout (what `chart bump --check` runs in CI).
    #[test]
    fn the_committed_chart_follows_the_crate_version() {
        let ws = Workspace::current().unwrap();
        let dir = ws.root.join(CHART_DIR);
        follows_app(
            &read(&dir.join("Chart.yaml")).unwrap(),
            &read(&dir.join("values.yaml")).unwrap(),
            &ws.app.version,
        )
        .unwrap();
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;

    /// A repository root with the chart's two files, in a fresh temporary directory.
    fn root(chart: &str, values: &str) -> (Shell, std::path::PathBuf) {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("xtask-bump-{}-{n}", std::process::id()));
        let chart_dir = dir.join(CHART_DIR);
        std::fs::create_dir_all(&chart_dir).unwrap();
        std::fs::write(chart_dir.join("Chart.yaml"), chart).unwrap();
        std::fs::write(chart_dir.join("values.yaml"), values).unwrap();
        let sh = Shell::new().unwrap();
        sh.change_dir(&dir);
        (sh, dir)
    }

    fn bump(version: &str) -> Bump {
        Bump {
            version: Some(version.to_owned()),
            new_version: None,
            keep_version: false,
            patch: false,
            minor: false,
            major: false,
            app_version: Some("0.3.0".to_owned()),
            digest: None,
            check: None,
        }
    }

    fn files(dir: &Path) -> Vec<(String, String)> {
        let chart_dir = dir.join(CHART_DIR);
        let mut out: Vec<_> = std::fs::read_dir(&chart_dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    std::fs::read_to_string(e.path()).unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn writes_both_files_and_leaves_no_temporary_file() {
        let (sh, dir) = root(
            "version: 0.1.0\nappVersion: 0.1.0\n",
            "image:\n  tag: 0.1.0\n  digest: \"\"\n",
        );
        bump("0.2.0").run(&sh).unwrap();
        assert_eq!(
            files(&dir),
            [
                (
                    "Chart.yaml".to_owned(),
                    "version: 0.2.0\nappVersion: 0.3.0\n".to_owned()
                ),
                (
                    "values.yaml".to_owned(),
                    "image:\n  tag: 0.3.0\n  digest: \"\"\n".to_owned()
                ),
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_error_in_either_file_changes_neither() {
        let chart = "version: 0.1.0\nappVersion: 0.1.0\n";
        for (values, version, message) in [
            ("image:\n  tag: [0.1.0\n", "0.2.0", "values.yaml: line"),
            ("image:\n  tag: 0.1.0\n", "0.2.0", "no `image.digest` field"),
            (
                "image:\n  tag: 0.1.0\n  digest: \"\"\n",
                "0.0.1",
                "not higher",
            ),
        ] {
            let (sh, dir) = root(chart, values);
            let before = files(&dir);
            let err = format!("{:#}", bump(version).run(&sh).unwrap_err());
            assert!(err.contains(message), "{err}");
            assert_eq!(files(&dir), before);
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
}
