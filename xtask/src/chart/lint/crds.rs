//! Custom resources (monitoring, external secrets, Gateway API) against their CRDs' schemas, as
//! compiled into the @kubernetes-models packages pinned in xtask/node (crd_validate.mjs).

use anyhow::{Context, Result, ensure};
use xshell::{Shell, cmd};

use super::manifest::load_documents;
use super::node::node_tools;
use crate::chart::engine::Rendered;
use crate::tools;

/// Kinds no Kubernetes release defines, with the API version the chart must use: their schemas
/// come with their operators' CRDs.
pub const CRDS: &[(&str, &str)] = &[
    ("ServiceMonitor", "monitoring.coreos.com/v1"),
    ("PodMonitor", "monitoring.coreos.com/v1"),
    ("PrometheusRule", "monitoring.coreos.com/v1"),
    ("AlertmanagerConfig", "monitoring.coreos.com/v1alpha1"),
    ("ExternalSecret", "external-secrets.io/v1"),
    ("HTTPRoute", "gateway.networking.k8s.io/v1"),
];

/// The validator, compiled into the xtask and written next to target/node/node_modules, where
/// node resolves its imports.
const SCRIPT: &str = include_str!("crd_validate.mjs");

/// Custom resources against their CRDs' schemas (types, enums, required fields, patterns). CRD
/// schemas allow unknown fields (the API server prunes them), so a misspelt optional field is
/// not caught here.
pub fn validate(sh: &Shell, rendered: &[Rendered]) -> Result<()> {
    let mut items = Vec::new();
    for r in rendered {
        for doc in load_documents(&r.path)? {
            let kind = doc["kind"].as_str().unwrap_or_default();
            let Some((_, expected)) = CRDS.iter().find(|(k, _)| *k == kind) else {
                continue;
            };
            let api = doc["apiVersion"].as_str().unwrap_or_default();
            ensure!(
                api == *expected,
                "{}: {kind} has apiVersion {api}, expected {expected}",
                r.path.display()
            );
            let source = format!("{}.yaml", r.label);
            items.push(serde_json::json!({ "source": source, "object": doc }));
        }
    }
    if items.is_empty() {
        return Ok(());
    }
    let script = node_tools(sh)?.join("crd_validate.mjs");
    tools::write_if_changed(&script, SCRIPT.as_bytes())?;
    let input = serde_json::to_string(&items)?;
    cmd!(sh, "node {script}")
        .stdin(input)
        .quiet()
        .ignore_stdout()
        .run()
        .context("custom resources do not match their CRD schemas")?;
    eprintln!("{} custom resources match their CRD schemas", items.len());
    Ok(())
}
