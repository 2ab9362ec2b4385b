//! SLSA build provenance v1 for the image index: which source, toolchain and lockfile the image was
//! built from, with which parameters, by which builder. Pure: facts in, statement out.
//!
//! The build type (`<repository>/xtask/image-build/v1`) is `cargo xtask image build`; its
//! `externalParameters` are everything a rebuild needs to give the same index digest:
//! `repository`, `revision` (the commit), `ref` (the git ref built, when known), `version` (the
//! image version label and layout tag), `platforms`, `sourceDateEpoch` and `profile`. The
//! `internalParameters` name the Rust target of each platform, fixed by the xtask.

use serde_json::{Value, json};

use super::statement::{SLSA_PROVENANCE_V1, Statement, Subject};
use crate::image::oci::{Platform, rfc3339};

/// What was built, from what, with what: everything the predicate records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildFacts {
    /// Source repository URL (the image's `org.opencontainers.image.source`).
    pub repository: String,
    /// Full commit hash the image was built from.
    pub revision: String,
    /// The git ref built (`refs/tags/v1.2.3`), when known.
    pub git_ref: Option<String>,
    /// Image version (label and layout tag).
    pub version: String,
    pub platforms: Vec<Platform>,
    pub source_date_epoch: u64,
    pub profile: String,
    /// `rustc -vV` output.
    pub rustc_verbose_version: String,
    /// Other build tools with their versions, e.g. `("cargo-auditable", "0.7.7")`.
    pub tools: Vec<(String, String)>,
    /// sha256 hex of the Cargo.lock the build used.
    pub lockfile_sha256: String,
    /// Each platform's binary in the image, with its sha256 hex.
    pub binaries: Vec<(Platform, String)>,
}

/// Who ran the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builder {
    /// A GitHub Actions workflow run, from its `GITHUB_*` variables.
    GitHub {
        server_url: String,
        repository: String,
        run_id: String,
        run_attempt: String,
        /// `owner/repo/.github/workflows/release.yml@refs/tags/v1.2.3`.
        workflow_ref: String,
    },
    /// Anything else: a laptop, act, another CI.
    Local,
}

impl Builder {
    /// GitHub Actions when its variables say so (act sets them too, and `ACT`: local), else local.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Builder {
        let get = |name: &str| var(name).filter(|v| !v.is_empty());
        if get("ACT").is_some() || get("GITHUB_ACTIONS").as_deref() != Some("true") {
            return Builder::Local;
        }
        match (
            get("GITHUB_SERVER_URL"),
            get("GITHUB_REPOSITORY"),
            get("GITHUB_RUN_ID"),
            get("GITHUB_WORKFLOW_REF"),
        ) {
            (Some(server_url), Some(repository), Some(run_id), Some(workflow_ref)) => {
                Builder::GitHub {
                    server_url,
                    repository,
                    run_id,
                    run_attempt: get("GITHUB_RUN_ATTEMPT").unwrap_or_else(|| "1".into()),
                    workflow_ref,
                }
            }
            _ => Builder::Local,
        }
    }

    /// `runDetails.builder.id`: the workflow file at its ref on GitHub (as GitHub's own
    /// provenance names it), else the local builder of `repository`.
    pub fn id(&self, repository: &str) -> String {
        match self {
            Builder::GitHub {
                server_url,
                workflow_ref,
                ..
            } => format!("{server_url}/{workflow_ref}"),
            Builder::Local => format!("{repository}/xtask/local-builder/v1"),
        }
    }

    /// `runDetails.metadata.invocationId`: the URL of the run's attempt, on GitHub.
    pub fn invocation_id(&self) -> Option<String> {
        match self {
            Builder::GitHub {
                server_url,
                repository,
                run_id,
                run_attempt,
                ..
            } => Some(format!(
                "{server_url}/{repository}/actions/runs/{run_id}/attempts/{run_attempt}"
            )),
            Builder::Local => None,
        }
    }
}

/// When the build ran, in seconds since the epoch, where known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuildTimes {
    pub started_on: Option<u64>,
    pub finished_on: Option<u64>,
}

/// `buildDefinition.buildType` for `repository`.
pub fn build_type(repository: &str) -> String {
    format!("{}/xtask/image-build/v1", repository.trim_end_matches('/'))
}

/// The SLSA v1 provenance predicate.
pub fn predicate(facts: &BuildFacts, builder: &Builder, times: BuildTimes) -> Value {
    let repository = facts.repository.trim_end_matches('/');
    let mut external = json!({
        "repository": repository,
        "revision": facts.revision,
        "version": facts.version,
        "platforms": facts.platforms.iter().map(|p| p.name()).collect::<Vec<_>>(),
        "sourceDateEpoch": facts.source_date_epoch,
        "profile": facts.profile,
    });
    if let Some(git_ref) = &facts.git_ref {
        external["ref"] = json!(git_ref);
    }
    let targets: serde_json::Map<String, Value> = facts
        .platforms
        .iter()
        .map(|p| (p.name().to_owned(), json!(p.rust_target())))
        .collect();

    let source_uri = match &facts.git_ref {
        Some(git_ref) => format!("git+{repository}@{git_ref}"),
        None => format!("git+{repository}"),
    };
    let mut resolved = vec![
        json!({ "uri": source_uri, "digest": { "gitCommit": facts.revision } }),
        json!({
            "name": "Cargo.lock",
            "uri": format!("git+{repository}@{}#Cargo.lock", facts.revision),
            "digest": { "sha256": facts.lockfile_sha256 },
        }),
        rustc_dependency(&facts.rustc_verbose_version),
    ];
    resolved.extend(facts.tools.iter().map(
        |(name, version)| json!({ "name": name, "uri": format!("pkg:cargo/{name}@{version}") }),
    ));

    let mut metadata = serde_json::Map::new();
    if let Some(id) = builder.invocation_id() {
        metadata.insert("invocationId".into(), json!(id));
    }
    if let Some(t) = times.started_on {
        metadata.insert("startedOn".into(), json!(rfc3339(t)));
    }
    if let Some(t) = times.finished_on {
        metadata.insert("finishedOn".into(), json!(rfc3339(t)));
    }
    let byproducts: Vec<Value> = facts
        .binaries
        .iter()
        .map(|(platform, sha256)| {
            json!({
                "name": format!("{}/{}", platform.name(), crate::image::oci::BINARY_PATH),
                "digest": { "sha256": sha256 },
            })
        })
        .collect();
    let mut run_details = json!({ "builder": { "id": builder.id(repository) } });
    if !metadata.is_empty() {
        run_details["metadata"] = Value::Object(metadata);
    }
    if !byproducts.is_empty() {
        run_details["byproducts"] = json!(byproducts);
    }
    json!({
        "buildDefinition": {
            "buildType": build_type(repository),
            "externalParameters": external,
            "internalParameters": { "rustTargets": targets },
            "resolvedDependencies": resolved,
        },
        "runDetails": run_details,
    })
}

/// The in-toto statement: the provenance predicate about the image index `index_digest`, named
/// `subject_name` (the image repository, e.g. `ghcr.io/acme/visit-tracker`).
pub fn statement(
    subject_name: &str,
    index_digest: &str,
    facts: &BuildFacts,
    builder: &Builder,
    times: BuildTimes,
) -> anyhow::Result<Statement> {
    Ok(Statement::new(
        vec![Subject::sha256(subject_name, index_digest)?],
        SLSA_PROVENANCE_V1,
        predicate(facts, builder, times),
    ))
}

/// Seconds since the epoch of a UTC time written as `YYYY-MM-DDThh:mm:ssZ` (how `image build`
/// writes `org.opencontainers.image.created`): the image's `SOURCE_DATE_EPOCH`.
pub fn epoch_of_rfc3339(text: &str) -> anyhow::Result<u64> {
    let bad = || anyhow::anyhow!("`{text}` is not a UTC time like 2023-11-14T22:13:20Z");
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> anyhow::Result<i64> {
        text[range].parse::<u32>().map(i64::from).map_err(|_| bad())
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    // Howard Hinnant's days_from_civil, the inverse of `rfc3339`'s civil_from_days.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).map_err(|_| bad())
}

/// The compiler as a resolved dependency: its release and commit (a git commit of
/// rust-lang/rust), with the whole `rustc -vV` as an annotation.
fn rustc_dependency(verbose_version: &str) -> Value {
    let field = |key: &str| {
        verbose_version
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
            .map(str::trim)
    };
    let mut dependency = json!({
        "name": "rustc",
        "annotations": { "rustc -vV": verbose_version.trim_end() },
    });
    if let Some(release) = field("release") {
        dependency["uri"] = json!(format!("pkg:generic/rustc@{release}"));
    }
    if let Some(commit) = field("commit-hash").filter(|c| *c != "unknown") {
        dependency["digest"] = json!({ "gitCommit": commit });
    }
    dependency
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUSTC: &str = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\n\
        commit-hash: c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0\ncommit-date: 2026-04-14\n\
        host: x86_64-unknown-linux-gnu\nrelease: 1.95.0\nLLVM version: 22.1.2\n";

    fn facts() -> BuildFacts {
        BuildFacts {
            repository: "https://github.com/acme/visit-tracker".into(),
            revision: "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1".into(),
            git_ref: Some("refs/tags/v1.2.3".into()),
            version: "1.2.3".into(),
            platforms: Platform::ALL.to_vec(),
            source_date_epoch: 1_700_000_000,
            profile: "release".into(),
            rustc_verbose_version: RUSTC.into(),
            tools: vec![("cargo-auditable".into(), "0.7.7".into())],
            lockfile_sha256: "ab".repeat(32),
            binaries: vec![(Platform::Amd64, "cd".repeat(32))],
        }
    }

    fn github() -> Builder {
        let env = [
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "acme/visit-tracker"),
            ("GITHUB_RUN_ID", "42"),
            ("GITHUB_RUN_ATTEMPT", "2"),
            (
                "GITHUB_WORKFLOW_REF",
                "acme/visit-tracker/.github/workflows/release.yml@refs/tags/v1.2.3",
            ),
        ];
        Builder::from_env(|name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn github_run_is_the_builder_and_the_run_attempt_the_invocation() {
        let builder = github();
        let p = predicate(
            &facts(),
            &builder,
            BuildTimes {
                started_on: Some(1_700_000_100),
                finished_on: Some(1_700_000_200),
            },
        );
        let run = &p["runDetails"];
        assert_eq!(
            run["builder"]["id"],
            "https://github.com/acme/visit-tracker/.github/workflows/release.yml@refs/tags/v1.2.3"
        );
        assert_eq!(
            run["metadata"]["invocationId"],
            "https://github.com/acme/visit-tracker/actions/runs/42/attempts/2"
        );
        assert_eq!(run["metadata"]["startedOn"], "2023-11-14T22:15:00Z");
        assert_eq!(run["metadata"]["finishedOn"], "2023-11-14T22:16:40Z");
        assert_eq!(
            run["byproducts"][0]["name"],
            "linux/amd64/usr/local/bin/visit-tracker"
        );
    }

    #[test]
    fn act_and_machines_without_github_variables_are_local() {
        assert_eq!(Builder::from_env(|_| None), Builder::Local);
        let act = |name: &str| match name {
            "ACT" => Some("true".to_owned()),
            _ => Some("x".to_owned()),
        };
        assert_eq!(Builder::from_env(act), Builder::Local);
        let p = predicate(&facts(), &Builder::Local, BuildTimes::default());
        assert_eq!(
            p["runDetails"]["builder"]["id"],
            "https://github.com/acme/visit-tracker/xtask/local-builder/v1"
        );
        assert!(p["runDetails"].get("metadata").is_none());
    }

    #[test]
    fn definition_names_source_lockfile_toolchain_and_every_rebuild_parameter() {
        let p = predicate(&facts(), &github(), BuildTimes::default());
        let def = &p["buildDefinition"];
        assert_eq!(
            def["buildType"],
            "https://github.com/acme/visit-tracker/xtask/image-build/v1"
        );
        assert_eq!(
            def["externalParameters"],
            json!({
                "repository": "https://github.com/acme/visit-tracker",
                "revision": "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
                "ref": "refs/tags/v1.2.3",
                "version": "1.2.3",
                "platforms": ["linux/amd64", "linux/arm64"],
                "sourceDateEpoch": 1_700_000_000,
                "profile": "release",
            })
        );
        assert_eq!(
            def["internalParameters"]["rustTargets"]["linux/arm64"],
            "aarch64-unknown-linux-musl"
        );
        let deps = def["resolvedDependencies"].as_array().unwrap();
        assert_eq!(
            deps[0],
            json!({
                "uri": "git+https://github.com/acme/visit-tracker@refs/tags/v1.2.3",
                "digest": { "gitCommit": "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1" },
            })
        );
        assert_eq!(deps[1]["digest"]["sha256"], "ab".repeat(32));
        assert_eq!(deps[2]["name"], "rustc");
        assert_eq!(deps[2]["uri"], "pkg:generic/rustc@1.95.0");
        assert_eq!(
            deps[2]["digest"]["gitCommit"],
            "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0"
        );
        assert!(
            deps[2]["annotations"]["rustc -vV"]
                .as_str()
                .unwrap()
                .ends_with("LLVM version: 22.1.2")
        );
        assert_eq!(deps[3]["uri"], "pkg:cargo/cargo-auditable@0.7.7");
    }

    #[test]
    fn unknown_ref_is_left_out_not_guessed() {
        let mut f = facts();
        f.git_ref = None;
        let p = predicate(&f, &Builder::Local, BuildTimes::default());
        assert!(
            p["buildDefinition"]["externalParameters"]
                .get("ref")
                .is_none()
        );
        assert_eq!(
            p["buildDefinition"]["resolvedDependencies"][0]["uri"],
            "git+https://github.com/acme/visit-tracker"
        );
    }

    #[test]
    fn rfc3339_times_read_back_to_their_epoch() {
        for epoch in [0, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(epoch_of_rfc3339(&rfc3339(epoch)).unwrap(), epoch);
        }
        for bad in [
            "2023-11-14 22:13:20Z",
            "2023-13-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "",
        ] {
            assert!(epoch_of_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn statement_is_about_the_index_digest() {
        let digest = format!("sha256:{}", "ef".repeat(32));
        let s = statement(
            "ghcr.io/acme/visit-tracker",
            &digest,
            &facts(),
            &Builder::Local,
            BuildTimes::default(),
        )
        .unwrap();
        s.validate().unwrap();
        assert_eq!(s.predicate_type, SLSA_PROVENANCE_V1);
        assert_eq!(s.subject[0].name, "ghcr.io/acme/visit-tracker");
        assert_eq!(s.subject[0].sha256_digest().unwrap(), digest);
    }
}
