//! `cargo xtask act` end to end: act runs the real workflows offline in host mode. The release
//! workflow, for a `v*` tag, fills a local `docker-registry` with the multi-arch image under its
//! semver tags and the chart under its version, and its build job uploads the evidence; ci.yml's
//! `chart` job runs; every workflow and event plans in a dry run.

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

/// The chart job as on GitHub's runner: only the inventory's programs and what its setup installs.
#[test]
fn ci_chart_job_runs_under_act() {
    let (out, text) = act(
        &[
            "--workflow",
            "ci.yml",
            "--event",
            "push",
            "--job",
            "chart",
            "--runner-path",
        ],
        &[],
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("chart lint: all checks passed"), "{text}");
    assert!(text.contains("Job succeeded"), "{text}");
    // With PATH reduced to the runner's programs and what the job's setup step installs.
    assert!(text.contains("act: job chart runs with PATH="), "{text}");
}

#[test]
fn release_workflow_fills_a_local_registry_with_image_and_chart() {
    let registry = Registry::start().expect("starting docker-registry");
    let version = crate_version();
    let repo = format!("{}/acme", registry.addr());
    // A token only this run knows: act must pass it in and never print it.
    let token = format!("local-token-{}", std::process::id());
    let (out, text) = act(
        &[
            "--workflow",
            "release.yml",
            "--event",
            "tag",
            "--job",
            "build",
            "--runner-path",
            "--tag",
            &format!("v{version}"),
            "--registry",
            &repo,
            "--secret",
            "GITHUB_TOKEN",
        ],
        &[("GITHUB_TOKEN", &token)],
    );
    assert!(
        out.status.success(),
        "{text}\nregistry log:\n{}",
        registry.log()
    );
    assert!(!text.contains(&token), "the secret was printed");

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
