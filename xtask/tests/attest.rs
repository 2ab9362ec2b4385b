//! The evidence a release carries, for a real image build, checked by tools we did not write: the
//! dependency lists both binaries embed, read back with llvm-objcopy and Python's zlib, are what
//! `cargo tree` resolves from Cargo.lock; the binaries scan audits both; `cargo xtask attest`
//! writes SBOMs that CycloneDX's official schema accepts and provenance that in-toto's protobuf
//! bindings parse as a Statement v1 with a SLSA v1 predicate. The release image is built once
//! (cargo reuses what `tests/image.rs` compiled) and shared by every test here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use xshell::{Shell, cmd};
use xtask::image::build::{Build, Built};
use xtask::image::oci::Platform;
use xtask::workspace::Workspace;

/// The image's subject name in the statements.
const IMAGE: &str = "registry.example/acme/visit-tracker";

fn shell() -> Shell {
    let sh = Shell::new().unwrap();
    sh.change_dir(testkit::workspace_root());
    sh
}

/// The release image of this checkout, both platforms, built once per test binary.
fn image() -> &'static Built {
    static IMAGE: OnceLock<Built> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let sh = shell();
        let workspace = Workspace::load(&sh).unwrap();
        Build {
            platform: Platform::ALL.to_vec(),
            output: Some(workspace.target_directory.join("oci/visit-tracker-attest")),
            version: None,
            source_date_epoch: None,
            profile: "release".into(),
        }
        .build(&sh, &workspace)
        .expect("cargo xtask image build")
    })
}

/// The attestations of [`image`], written once by the real `cargo xtask attest`.
fn attested() -> &'static PathBuf {
    static OUT: OnceLock<PathBuf> = OnceLock::new();
    OUT.get_or_init(|| {
        let out = Workspace::load(&shell())
            .unwrap()
            .target_directory
            .join("attest-test");
        let _ = std::fs::remove_dir_all(&out);
        let (status, text) = attest(&out);
        assert!(status.status.success(), "attest failed:\n{text}");
        out
    })
}

fn attest(out: &Path) -> (Output, String) {
    let built = image();
    let version = Workspace::load(&shell()).unwrap().app.version;
    xtask(&[
        "attest",
        "--layout",
        built.output.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--image",
        IMAGE,
        "--git-ref",
        &format!("refs/tags/v{version}"),
        "--started-on",
        "1700000000",
        "--finished-on",
        "1700000100",
    ])
}

fn xtask(args: &[&str]) -> (Output, String) {
    let root = testkit::workspace_root();
    let out = testkit::task(
        env!("CARGO_BIN_EXE_xtask"),
        &root,
        &root.join("target/no-docker-config"),
    )
    .args(args)
    .output()
    .expect("running xtask");
    let text = testkit::describe(&out);
    (out, text)
}

/// The `.dep-v0` JSON of `binary`, read without our code: llvm-objcopy copies the section out,
/// Python's zlib inflates it.
fn embedded_by_objcopy(binary: &Path) -> Value {
    let sh = shell();
    let objcopy = xtask::tools::need(&sh, &xtask::ci::LLVM_OBJCOPY).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let (section, copy) = (scratch.path().join("dep-v0.z"), scratch.path().join("copy"));
    let dump = format!(".dep-v0={}", section.display());
    // An output file, so the input binary is left untouched.
    cmd!(sh, "{objcopy} --dump-section {dump} {binary} {copy}")
        .run()
        .unwrap();
    let json = cmd!(
        sh,
        "python3 -c 'import sys, zlib; sys.stdout.write(zlib.decompress(open(sys.argv[1], \"rb\").read()).decode())' {section}"
    )
    .read()
    .unwrap();
    serde_json::from_str(&json).unwrap()
}

fn name_versions(packages: &Value) -> BTreeSet<(String, String)> {
    packages
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every package `cargo tree` resolves from Cargo.lock for the app on `target`, along normal and
/// build dependencies (not dev): what the binary is built from.
fn resolved_by_cargo_tree(target: &str) -> BTreeSet<(String, String)> {
    let sh = shell();
    let format = "{p}";
    let tree = cmd!(
        sh,
        "cargo tree --locked --offline -p visit-tracker --target {target} -e normal,build
            --prefix none --format {format}"
    )
    .read()
    .unwrap();
    tree.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next().unwrap().to_owned();
            let version = words.next().unwrap().trim_start_matches('v').to_owned();
            (name, version)
        })
        .collect()
}

#[test]
fn both_binaries_embed_exactly_what_cargo_resolves_from_the_lockfile() {
    let built = image();
    let lockfile = std::fs::read_to_string(testkit::workspace_root().join("Cargo.lock")).unwrap();
    for (platform, binary) in &built.binaries {
        let embedded = embedded_by_objcopy(binary);
        let packages = embedded["packages"].as_array().unwrap();
        let roots: Vec<&Value> = packages.iter().filter(|p| p["root"] == true).collect();
        assert_eq!(roots.len(), 1, "{platform}: one root");
        assert_eq!(roots[0]["name"], "visit-tracker", "{platform}");
        assert_eq!(roots[0]["source"], "local", "{platform}");
        let listed = name_versions(&embedded["packages"]);
        // cargo-auditable lists what `cargo metadata` resolves, which unifies features with the
        // app's dev-dependencies (reqwest turns on hyper's client half: `want`, `try-lock`...).
        // So the list may hold a few crates the binary does not link, but never lacks one.
        let resolved = resolved_by_cargo_tree(platform.rust_target());
        let missing: Vec<_> = resolved.difference(&listed).collect();
        assert!(
            missing.is_empty(),
            "{platform}: cargo tree resolves crates the binary does not list: {missing:?}"
        );
        for p in packages.iter().filter(|p| p["source"] == "crates.io") {
            let entry = format!(
                "name = \"{}\"\nversion = \"{}\"\nsource = \"registry+",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap()
            );
            assert!(
                lockfile.contains(&entry),
                "{platform}: {entry} not in Cargo.lock"
            );
        }
        for direct in ["axum", "tokio", "redis", "rustls"] {
            assert!(
                listed.iter().any(|(n, _)| n == direct),
                "{platform}: {direct} missing"
            );
        }
        println!("{platform}: {} crates embedded", listed.len());
    }
}

#[test]
fn binaries_scan_audits_both_platforms_of_the_layout() {
    let built = image();
    let root = testkit::workspace_root();
    let db = xtask::scan::deps::advisory_db_dir(&root, None)
        .unwrap_or_else(|| root.join("xtask/tests/fixtures/scan/advisory-db"));
    let (out, text) = xtask(&[
        "security-scan",
        "--only",
        "binaries",
        "--layout",
        built.output.to_str().unwrap(),
        "--advisory-db",
        db.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{text}");
    for platform in Platform::ALL {
        assert!(
            text.contains(&format!("the {platform} binary of ")) && text.contains("0 finding(s)"),
            "{platform} not audited:\n{text}"
        );
    }
}

#[test]
fn sboms_validate_against_cyclonedx_schema_and_list_what_each_binary_embeds() {
    let built = image();
    let out = attested();
    let sh = shell();
    let python = xtask::tools::need(&sh, &xtask::tools::VENV_PYTHON).unwrap();
    let check = xtask::tools::need(&sh, &xtask::ci::CHECK_JSONSCHEMA).unwrap();
    let res = cmd!(
        sh,
        "{python} -c 'import cyclonedx, os; print(os.path.dirname(cyclonedx.__file__))'"
    )
    .read()
    .unwrap();
    let schema = Path::new(&res).join("schema/_res/bom-1.5.SNAPSHOT.schema.json");
    // Without --base-uri the schema's relative $refs (SPDX, JSF) resolve against cyclonedx.org.
    let base = format!("file://{}", schema.display());
    let validate = |file: &Path| {
        cmd!(sh, "{check} --base-uri {base} --schemafile {schema} {file}")
            .quiet()
            .ignore_status()
            .output()
            .unwrap()
    };
    for p in &built.image.platforms {
        let file = out.join(format!(
            "sbom-{}.cdx.json",
            p.platform.name().replace('/', "-")
        ));
        let result = validate(&file);
        assert!(
            result.status.success(),
            "{}: {}",
            file.display(),
            testkit::describe(&result)
        );
        let bom: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(bom["specVersion"], "1.5");
        assert!(
            bom["serialNumber"]
                .as_str()
                .unwrap()
                .starts_with("urn:uuid:")
        );
        let subject = &bom["metadata"]["component"];
        assert_eq!(subject["version"], p.manifest.digest.as_str());
        assert_eq!(
            subject["purl"],
            format!(
                "pkg:oci/visit-tracker@{}?arch={}",
                p.manifest.digest.replace(':', "%3A"),
                p.platform.architecture()
            )
        );

        // The components are the binary's embedded crates as llvm-objcopy reads them.
        let binary = &built
            .binaries
            .iter()
            .find(|(q, _)| *q == p.platform)
            .unwrap()
            .1;
        let embedded = embedded_by_objcopy(binary);
        assert_eq!(
            name_versions(&bom["components"]),
            name_versions(&embedded["packages"]),
            "{}",
            p.platform
        );
        let app = bom["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "application")
            .unwrap();
        let binary_sha256 = format!("{:x}", Sha256::digest(std::fs::read(binary).unwrap()));
        assert_eq!(app["hashes"][0]["content"], binary_sha256.as_str());
        for c in bom["components"].as_array().unwrap() {
            if c["purl"].is_string() {
                assert_eq!(c["hashes"][0]["alg"], "SHA-256", "{c}");
            }
        }

        // The schema really is applied: a hash algorithm it does not know is refused.
        let mut bad = bom.clone();
        bad["components"][0]["hashes"] = json!([{ "alg": "SHA256", "content": "00" }]);
        let bad_file = out.join("bad.cdx.json");
        std::fs::write(&bad_file, serde_json::to_vec(&bad).unwrap()).unwrap();
        assert!(
            !validate(&bad_file).status.success(),
            "the CycloneDX schema accepted an unknown hash algorithm"
        );
    }
}

#[test]
fn the_same_image_gives_the_same_sboms() {
    let first = attested();
    let again = tempfile::tempdir().unwrap();
    let (out, text) = attest(again.path());
    assert!(out.status.success(), "{text}");
    for platform in Platform::ALL {
        let name = format!("sbom-{}.cdx.json", platform.name().replace('/', "-"));
        assert_eq!(
            std::fs::read(first.join(&name)).unwrap(),
            std::fs::read(again.path().join(&name)).unwrap(),
            "{name}"
        );
    }
}

/// Parses a statement with in-toto's protobuf bindings (unknown or misspelled fields are errors)
/// and validates it with the library's Statement rules; then the predicate as SLSA Provenance v1.
const IN_TOTO_CHECK: &str = r#"
import json, sys
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
text = open(sys.argv[1]).read()
pb = json_format.Parse(text, statement_pb2.Statement())
Statement.copy_from_pb(pb).validate()
json_format.Parse(json.dumps(json.loads(text)["predicate"]), provenance_pb2.Provenance())
print("in-toto statement and SLSA provenance parsed")
"#;

#[test]
fn provenance_is_an_in_toto_statement_with_a_slsa_v1_predicate() {
    let built = image();
    let out = attested();
    let sh = shell();
    let python = xtask::tools::need(&sh, &xtask::tools::VENV_PYTHON).unwrap();
    let check = xtask::tools::need(&sh, &xtask::ci::CHECK_JSONSCHEMA).unwrap();
    let schema = testkit::workspace_root().join("xtask/src/attest/provenance.schema.json");
    let in_toto = |file: &Path| {
        cmd!(sh, "{python} -c {IN_TOTO_CHECK} {file}")
            .quiet()
            .ignore_status()
            .output()
            .unwrap()
    };
    let ours = |file: &Path| {
        cmd!(sh, "{check} --schemafile {schema} {file}")
            .quiet()
            .ignore_status()
            .output()
            .unwrap()
    };
    let file = out.join("provenance.intoto.json");
    for result in [in_toto(&file), ours(&file)] {
        assert!(result.status.success(), "{}", testkit::describe(&result));
    }

    let statement: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(statement["subject"][0]["name"], IMAGE);
    assert_eq!(
        format!(
            "sha256:{}",
            statement["subject"][0]["digest"]["sha256"]
                .as_str()
                .unwrap()
        ),
        built.image.index.digest
    );
    let predicate = &statement["predicate"];
    let external = &predicate["buildDefinition"]["externalParameters"];
    let head = cmd!(sh, "git rev-parse HEAD").read().unwrap();
    assert_eq!(external["revision"], head.as_str());
    assert_eq!(external["platforms"], json!(["linux/amd64", "linux/arm64"]));
    let lock = std::fs::read(testkit::workspace_root().join("Cargo.lock")).unwrap();
    let committed = cmd!(sh, "git show HEAD:Cargo.lock").read().unwrap() + "\n";
    if committed.as_bytes() == lock.as_slice() {
        assert_eq!(
            predicate["buildDefinition"]["resolvedDependencies"][1]["digest"]["sha256"],
            format!("{:x}", Sha256::digest(&lock))
        );
    }
    assert_eq!(
        predicate["runDetails"]["metadata"]["startedOn"],
        "2023-11-14T22:13:20Z"
    );
    assert!(
        predicate["runDetails"]["builder"]["id"]
            .as_str()
            .unwrap()
            .ends_with("/xtask/local-builder/v1")
    );

    // Both checkers can fail: in-toto's on a misspelled field, ours on a missing build type.
    let mut misspelled = statement.clone();
    misspelled["predicate"]["runDetails"]["bulider"] = json!({ "id": "x" });
    let bad = out.join("misspelled.intoto.json");
    std::fs::write(&bad, serde_json::to_vec(&misspelled).unwrap()).unwrap();
    assert!(
        !in_toto(&bad).status.success(),
        "in-toto accepted `bulider`"
    );
    let mut untyped = statement.clone();
    untyped["predicate"]["buildDefinition"]
        .as_object_mut()
        .unwrap()
        .remove("buildType");
    let bad = out.join("untyped.intoto.json");
    std::fs::write(&bad, serde_json::to_vec(&untyped).unwrap()).unwrap();
    assert!(
        !ours(&bad).status.success(),
        "our schema accepted no buildType"
    );
}
