//! CycloneDX 1.5 JSON SBOM of what goes into the image: the app crate and its normal (not build,
//! not dev) dependencies resolved for the musl targets, from `cargo metadata`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use xshell::{Shell, cmd};

use crate::workspace::APP;
use crate::{cargo, tools};

/// Where the SBOM is written (the release attaches and attests this file).
pub const SBOM_PATH: &str = "target/sbom/visit-tracker.cdx.json";
/// The image's platforms; a dependency only another platform needs is not in the image.
const TARGETS: [&str; 2] = ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"];

/// Writes the SBOM to [`SBOM_PATH`] and returns its path.
pub fn write(sh: &Shell) -> Result<PathBuf> {
    let cargo = cargo();
    let [t1, t2] = TARGETS;
    let json = cmd!(
        sh,
        "{cargo} metadata --format-version 1 --locked --filter-platform {t1} --filter-platform {t2}"
    )
    .read()
    .context("cargo metadata for the SBOM")?;
    let metadata: Value = serde_json::from_str(&json).context("parsing cargo metadata")?;
    let bom = cyclonedx(&metadata, APP)?;
    let path = sh.current_dir().join(SBOM_PATH);
    std::fs::create_dir_all(path.parent().expect("SBOM_PATH has a directory"))?;
    tools::write_atomic(&path, serde_json::to_string_pretty(&bom)?.as_bytes())?;
    Ok(path)
}

fn purl(pkg: &Value) -> String {
    format!(
        "pkg:cargo/{}@{}",
        pkg["name"].as_str().unwrap_or(""),
        pkg["version"].as_str().unwrap_or("")
    )
}

/// The CycloneDX document for `root` and everything it needs at run time. Deterministic: same
/// metadata, same bytes (no timestamp or random serial number).
pub fn cyclonedx(metadata: &Value, root: &str) -> Result<Value> {
    let packages: BTreeMap<&str, &Value> = metadata["packages"]
        .as_array()
        .context("cargo metadata has no `packages`")?
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p)))
        .collect();
    let root_id = packages
        .iter()
        .find(|(_, p)| p["name"] == root && p["source"].is_null())
        .map(|(id, _)| *id)
        .with_context(|| format!("no workspace package `{root}` in cargo metadata"))?;
    // Edges that are normal dependencies on at least one of the filtered platforms.
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for node in metadata["resolve"]["nodes"]
        .as_array()
        .context("cargo metadata has no `resolve` (was --no-deps used?)")?
    {
        let id = node["id"].as_str().unwrap_or("");
        let deps = node["deps"].as_array().into_iter().flatten().filter(|d| {
            d["dep_kinds"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()))
        });
        edges.insert(id, deps.filter_map(|d| d["pkg"].as_str()).collect());
    }
    let mut seen = BTreeSet::from([root_id]);
    let mut queue = vec![root_id];
    while let Some(id) = queue.pop() {
        for dep in edges.get(id).into_iter().flatten() {
            if seen.insert(dep) {
                queue.push(dep);
            }
        }
    }
    let component = |id: &str| -> Result<Value> {
        let Some(p) = packages.get(id) else {
            bail!("cargo metadata resolves `{id}` but does not list it");
        };
        let mut c = json!({
            "type": if id == root_id { "application" } else { "library" },
            "bom-ref": purl(p),
            "name": p["name"],
            "version": p["version"],
            "purl": purl(p),
        });
        if let Some(license) = p["license"].as_str() {
            c["licenses"] = json!([{ "expression": license }]);
        }
        if let Some(desc) = p["description"].as_str() {
            c["description"] = json!(desc.trim());
        }
        Ok(c)
    };
    let mut components = Vec::new();
    let mut dependencies = Vec::new();
    for id in &seen {
        if *id != root_id {
            components.push(component(id)?);
        }
        let mut on: Vec<String> = edges
            .get(id)
            .into_iter()
            .flatten()
            .filter_map(|d| packages.get(d).map(|p| purl(p)))
            .collect();
        on.sort();
        on.dedup();
        dependencies.push(json!({ "ref": purl(packages[id]), "dependsOn": on }));
    }
    components.sort_by(|a, b| a["bom-ref"].as_str().cmp(&b["bom-ref"].as_str()));
    dependencies.sort_by(|a, b| a["ref"].as_str().cmp(&b["ref"].as_str()));
    Ok(json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "tools": { "components": [{ "type": "application", "name": "cargo xtask security-scan" }] },
            "component": component(root_id)?,
        },
        "components": components,
        "dependencies": dependencies,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(id: &str, name: &str, version: &str, registry: bool) -> Value {
        json!({
            "id": id, "name": name, "version": version, "license": "MIT",
            "source": if registry { json!("registry+https://github.com/rust-lang/crates.io-index") } else { Value::Null },
        })
    }

    fn dep(pkg: &str, kind: Value) -> Value {
        json!({ "pkg": pkg, "dep_kinds": [{ "kind": kind }] })
    }

    #[test]
    fn only_normal_dependencies_reachable_from_the_app() {
        let metadata = json!({
            "packages": [
                pkg("app", "visit-tracker", "0.1.0", false),
                pkg("tokio", "tokio", "1.0.0", true),
                pkg("bytes", "bytes", "1.2.0", true),
                pkg("cc", "cc", "1.0.0", true),
                pkg("proptest", "proptest", "1.0.0", true),
                pkg("unrelated", "unrelated", "0.1.0", true),
            ],
            "resolve": { "nodes": [
                { "id": "app", "deps": [
                    dep("tokio", Value::Null), dep("cc", json!("build")), dep("proptest", json!("dev")),
                ]},
                { "id": "tokio", "deps": [dep("bytes", Value::Null)] },
                { "id": "bytes", "deps": [] },
                { "id": "cc", "deps": [] },
                { "id": "proptest", "deps": [] },
                { "id": "unrelated", "deps": [] },
            ]},
        });
        let bom = cyclonedx(&metadata, "visit-tracker").unwrap();
        assert_eq!(bom["bomFormat"], "CycloneDX");
        assert_eq!(bom["metadata"]["component"]["type"], "application");
        assert_eq!(
            bom["metadata"]["component"]["purl"],
            "pkg:cargo/visit-tracker@0.1.0"
        );
        let names: Vec<&str> = bom["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["bytes", "tokio"]);
        assert_eq!(bom["components"][0]["licenses"][0]["expression"], "MIT");
        let app = bom["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["ref"] == "pkg:cargo/visit-tracker@0.1.0")
            .unwrap();
        assert_eq!(app["dependsOn"], json!(["pkg:cargo/tokio@1.0.0"]));
        assert_eq!(
            cyclonedx(&metadata, "visit-tracker").unwrap(),
            bom,
            "deterministic"
        );
    }

    #[test]
    fn missing_app_is_an_error_naming_it() {
        let err = cyclonedx(
            &json!({ "packages": [], "resolve": { "nodes": [] } }),
            "nope",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`nope`"), "{err}");
    }
}
