//! `cargo xtask act` end to end: act runs the real workflows offline in host mode. The release
//! workflow, for a `v*` tag, fills a local `docker-registry` with the multi-arch image under its
//! semver tags and the chart under its version, and signs them with a throwaway key, which the
//! real cosign verifies; ci.yml's jobs run, each with the runner's PATH; every workflow and event
//! plans in a dry run.

use std::process::{Command, Output};
use std::sync::Mutex;

use testkit::registry::Registry;
use testkit::workspace_root;

/// act runs share target/act and the cargo target directory: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn act(args: &[&str], envs: &[(&str, &str)]) -> (Output, String) {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(workspace_root())
        .arg("act")
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("running xtask act");
    let text = format!(
        "status {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

fn crate_version() -> String {
    let sh = xshell::Shell::new().unwrap();
    sh.change_dir(workspace_root());
    xtask::workspace::Workspace::load(&sh).unwrap().app.version
}

#[test]
fn every_workflow_and_event_plans_in_a_dry_run() {
    let tag = format!("v{}", crate_version());
    for (workflow, event, expected) in [
        (
            "ci.yml",
            "pull-request",
            &["would run: cargo xtask chart bump --check"][..],
        ),
        // publish pushes the image job's layout, passed on through the run's artifacts.
        (
            "ci.yml",
            "push",
            &[
                "upload-artifact (act stand-in)",
                "download-artifact (act stand-in)",
                "would run: cargo xtask image push --layout",
            ][..],
        ),
        (
            "release.yml",
            "tag",
            // act would run all of ci.yml first (its `needs`): the release runs without it.
            &[
                "would run: cargo xtask release",
                "left out job(s) ci",
                "[release/build]",
                "[release/sign",
                "[release/publish]",
            ][..],
        ),
    ] {
        let (out, text) = act(
            &[
                "--workflow",
                workflow,
                "--event",
                event,
                "--tag",
                &tag,
                "--dry-run",
            ],
            &[],
        );
        assert!(out.status.success(), "{workflow} on {event}:\n{text}");
        for expect in expected {
            assert!(
                text.contains(expect),
                "{workflow} on {event}: no `{expect}`:\n{text}"
            );
        }
        // Only the image job builds the image; e2e and publish use its layout.
        assert_eq!(
            text.matches("would run: cargo xtask image build").count(),
            usize::from(workflow == "ci.yml"),
            "{workflow} on {event}:\n{text}"
        );
        // GitHub-only steps are skipped under act, whatever the event.
        for github_only in [
            "would run: cosign",
            "would run: gh release",
            "would run: helm install",
            "would run: kind load",
            "would run: kubectl",
        ] {
            assert!(
                !text.contains(github_only),
                "{workflow} on {event} ran {github_only}:\n{text}"
            );
        }
    }
}

/// The quick tests ci.yml's `test` job runs under act, one per kind of thing its setup installs
/// that the runner lacks: redis-server (the service against the chart's environment), promtool
/// (the chart's alert rules), docker-registry (a chart pushed and pulled back); each renders the
/// chart with the Helm engine.
const QUICK_TESTS: [&str; 3] = [
    "chart/the_service_accepts_the_charts_environment_and_exports_every_series_the_chart_uses",
    "chart/alert_rules_fire_and_stay_quiet_and_queries_use_exported_series",
    "chart_push/helm_pulls_the_pushed_chart_by_version_and_renders_it",
];

/// `text` without terminal colours (the workflows set CARGO_TERM_COLOR=always).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters up to the final letter (`\x1b[32m`).
            Some('[') => {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            // A character set choice (`\x1b(B`): one more character.
            Some(_) => {
                chars.next();
            }
            None => {}
        }
    }
    out
}

/// The lines act printed for `job` of `workflow` (`[ci/test ] ...`: act pads the names of the
/// jobs that run together to one width).
fn job_lines<'a>(text: &'a str, workflow: &str, job: &str) -> Vec<&'a str> {
    let prefix = format!("[{workflow}/{job}");
    text.lines()
        .filter(|l| {
            l.strip_prefix(&prefix)
                .is_some_and(|rest| rest.trim_start_matches(' ').starts_with(']'))
        })
        .collect()
}

/// Whether act reported `job` of `workflow` as succeeded.
fn succeeded(text: &str, workflow: &str, job: &str) -> bool {
    job_lines(text, workflow, job)
        .iter()
        .any(|l| l.contains("Job succeeded"))
}

/// Each of `jobs` ran with the reduced PATH `--runner-path` gave it, and succeeded.
fn succeeded_with_runner_path(text: &str, workflow: &str, jobs: &[&str]) {
    for job in jobs {
        assert!(
            text.contains(&format!("act: job {job} runs with PATH=")),
            "{job}: {text}"
        );
        assert!(
            succeeded(text, workflow, job),
            "job {job} did not succeed:\n{text}"
        );
    }
}

/// The PATH act gave `job`: the one `--runner-path` wrote into the workflow copy act ran.
fn job_path(copy: &str, job: &str) -> std::path::PathBuf {
    let path = workspace_root().join("target/act/workflows").join(copy);
    let wf: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let dir = std::path::PathBuf::from(wf["jobs"][job]["env"]["PATH"].as_str().unwrap());
    assert_eq!(
        dir,
        workspace_root().join("target/act/runner-path").join(job),
        "{}",
        path.display()
    );
    dir
}

/// Every ci.yml job that can run off GitHub, in one act run, each as on GitHub's runner: PATH
/// reduced to the inventory's programs and what its own setup steps install. `image` builds and
/// uploads the layout, `security-scan` audits both platforms' binaries of that layout, `chart`
/// lints, `test` runs [`QUICK_TESTS`].
#[test]
fn ci_jobs_run_under_act_with_the_runners_path() {
    let only = format!("XTASK_TEST_ONLY={}", QUICK_TESTS.join(","));
    let (out, text) = act(
        &[
            "--workflow",
            "ci.yml",
            "--event",
            "push",
            "--job",
            "chart",
            "--job",
            "security-scan",
            "--job",
            "test",
            "--runner-path",
            "--env",
            &only,
        ],
        &[],
    );
    assert!(out.status.success(), "{text}");
    let text = plain(&text);
    succeeded_with_runner_path(&text, "ci", &["chart", "image", "security-scan", "test"]);
    // Each job had its own PATH: what its setup installs, not what another job's does.
    let has = |job: &str, program: &str| job_path("ci.yml", job).join(program).exists();
    assert!(has("test", "redis-server") && has("test", "docker-registry"));
    assert!(has("chart", "promtool") && !has("chart", "redis-server"));
    assert!(!has("image", "redis-server") && !has("security-scan", "promtool"));
    // e2e and publish were not asked for (publish would refuse: e2e tested nothing under act).
    assert!(
        job_lines(&text, "ci", "publish").is_empty() && job_lines(&text, "ci", "e2e").is_empty(),
        "{text}"
    );

    assert!(text.contains("chart lint: all checks passed"), "{text}");
    // security-scan got the layout image uploaded in this run and audited both binaries.
    assert!(
        text.contains("upload-artifact (act stand-in)")
            && text.contains("download-artifact (act stand-in): artifact oci-layout"),
        "{text}"
    );
    for platform in ["linux/amd64", "linux/arm64"] {
        assert!(
            job_lines(&text, "ci", "security-scan")
                .iter()
                .any(|l| l.contains(&format!("security-scan: the {platform} binary of"))),
            "no audit of the {platform} binary:\n{text}"
        );
    }
    assert!(text.contains("security-scan: clean"), "{text}");
    // The test job ran exactly the quick tests, and nothing else (not the act tests again).
    for test in QUICK_TESTS {
        let name = test.split_once('/').unwrap().1;
        assert!(
            text.contains(&format!("test {name} ... ok")),
            "{name}:\n{text}"
        );
    }
    let ran = job_lines(&text, "ci", "test")
        .iter()
        .filter(|l| l.contains(" ... ok"))
        .count();
    assert_eq!(ran, QUICK_TESTS.len(), "{text}");
}

/// A key pair from `cargo xtask sign --generate-key` under `prefix` (PREFIX.key, PREFIX.pub).
fn generate_key(prefix: &std::path::Path, password: &str) -> (String, std::path::PathBuf) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(workspace_root())
        .args(["sign", "--generate-key", "--output"])
        .arg(prefix)
        .env("COSIGN_PASSWORD", password)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", testkit::describe(&out));
    let key = std::fs::read_to_string(prefix.with_extension("key")).unwrap();
    (key, prefix.with_extension("pub"))
}

/// The real cosign against the loopback registry: plain HTTP, no transparency log (a key, no
/// Rekor), no credentials of this machine.
fn cosign(args: &[&str], home: &std::path::Path) -> Output {
    let sh = xshell::Shell::new().unwrap();
    sh.change_dir(workspace_root());
    let bin = xtask::tools::need(&sh, &xtask::sign::cosign::COSIGN).unwrap();
    Command::new(bin)
        .args(args)
        .args(["--insecure-ignore-tlog=true", "--allow-http-registry=true"])
        .env("HOME", home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env_remove("COSIGN_PASSWORD")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// release.yml through `sign` under act, as a tag push: `build` releases into a local registry,
/// `sign` signs the index and the chart and attaches the provenance and the SBOMs with a
/// throwaway key given as act secrets, which the real cosign then verifies.
#[test]
fn release_workflow_fills_a_local_registry_with_image_and_chart() {
    let registry = Registry::start().expect("starting docker-registry");
    let version = crate_version();
    let repo = format!("{}/acme", registry.addr());
    // A token only this run knows: act must pass it in and never print it.
    let token = format!("local-token-{}", std::process::id());
    let keys = tempfile::tempdir().unwrap();
    let password = format!("a throwaway passphrase {}", std::process::id());
    let (key, public) = generate_key(&keys.path().join("release"), &password);
    let (_, other_public) = generate_key(&keys.path().join("other"), &password);
    let (out, text) = act(
        &[
            "--workflow",
            "release.yml",
            "--event",
            "tag",
            "--job",
            "sign",
            "--runner-path",
            "--tag",
            &format!("v{version}"),
            "--registry",
            &repo,
            "--secret",
            "GITHUB_TOKEN",
            "--secret",
            "COSIGN_PRIVATE_KEY",
            "--secret",
            "COSIGN_PASSWORD",
        ],
        &[
            ("GITHUB_TOKEN", &token),
            ("COSIGN_PRIVATE_KEY", &key),
            ("COSIGN_PASSWORD", &password),
        ],
    );
    assert!(
        out.status.success(),
        "{text}\nregistry log:\n{}",
        registry.log()
    );
    assert!(!text.contains(&token), "the token was printed");
    assert!(!text.contains(&password), "the passphrase was printed");
    for line in key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!text.contains(line), "the private key was printed");
    }
    succeeded_with_runner_path(&text, "release", &["build", "sign"]);
    assert!(job_lines(&text, "release", "publish").is_empty(), "{text}");

    // The multi-arch index, under every semver tag docker/metadata-action would give.
    let image = format!("docker://{repo}/visit-tracker");
    let raw = |tag: &str| {
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("{image}:{tag}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{image}:{tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let index = raw(&version);
    let v = semver::Version::parse(&version).unwrap();
    let mut tags = vec![version.clone()];
    if v.pre.is_empty() {
        tags.extend([format!("{}.{}", v.major, v.minor), "latest".into()]);
        // Like docker/metadata-action, no bare `0` tag: 0.x releases promise no compatibility.
        if v.major > 0 {
            tags.push(v.major.to_string());
        }
    }
    for tag in &tags {
        assert_eq!(raw(tag), index, "{tag} points elsewhere");
    }
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let mut platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);

    // build uploaded the evidence the later jobs sign and publish, with the chart package.
    let evidence = workspace_root().join("target/act/artifacts/release/release-evidence");
    for file in [
        format!("visit-tracker-{version}.tgz"),
        "provenance.intoto.json".into(),
        "sbom-linux-amd64.cdx.json".into(),
        "sbom-linux-arm64.cdx.json".into(),
    ] {
        assert!(
            evidence.join(&file).is_file(),
            "no {file} in {}",
            evidence.display()
        );
    }

    // The sign job's signatures and attestations, by the real cosign with the public key: the
    // index and the chart, the provenance of the index, each platform's SBOM; another key fails.
    let home = keys.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let public = public.to_str().unwrap();
    let chart = format!("{repo}/charts/visit-tracker:{version}");
    let index_ref = format!("{}:{version}", image.trim_start_matches("docker://"));
    for reference in [&index_ref, &chart] {
        let out = cosign(&["verify", "--key", public, reference], &home);
        assert!(
            out.status.success(),
            "cosign verify {reference}: {}",
            testkit::describe(&out)
        );
        let out = cosign(
            &["verify", "--key", other_public.to_str().unwrap(), reference],
            &home,
        );
        assert!(
            !out.status.success(),
            "cosign verify {reference} with another key: {}",
            testkit::describe(&out)
        );
    }
    let name = image.trim_start_matches("docker://");
    let mut attested = vec![(index_ref.clone(), "https://slsa.dev/provenance/v1")];
    for m in index["manifests"].as_array().unwrap() {
        let digest = m["digest"].as_str().unwrap();
        attested.push((format!("{name}@{digest}"), "https://cyclonedx.org/bom"));
    }
    for (reference, predicate_type) in &attested {
        let out = cosign(
            &[
                "verify-attestation",
                "--key",
                public,
                "--type",
                predicate_type,
                reference,
            ],
            &home,
        );
        assert!(
            out.status.success(),
            "cosign verify-attestation {reference} ({predicate_type}): {}",
            testkit::describe(&out)
        );
    }

    // The chart under its version, pulled back and rendered by the real Helm engine.
    let sh = xshell::Shell::new().unwrap();
    sh.change_dir(workspace_root());
    let chart_yaml =
        std::fs::read_to_string(workspace_root().join("charts/visit-tracker/Chart.yaml")).unwrap();
    // The chart version follows the app version: release vX.Y.Z publishes chart X.Y.Z.
    let chart_version = version.clone();
    let pulled = tempfile::tempdir().unwrap();
    let info = xtask::chart::engine::Engine::new(&sh)
        .unwrap()
        .pull(
            &sh,
            &format!("oci://{repo}/charts/visit-tracker"),
            &chart_version,
            pulled.path(),
            true,
        )
        .unwrap();
    assert_eq!(info["name"], "visit-tracker", "{info}");
    assert_eq!(info["version"], chart_version.as_str(), "{info}");
    // The committed chart is untouched: the release bumped its own copy.
    assert_eq!(
        std::fs::read_to_string(workspace_root().join("charts/visit-tracker/Chart.yaml")).unwrap(),
        chart_yaml
    );
}
