//! Committed secrets: detect-secrets over the tracked files (or the paths given).

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::Value;
use xshell::{Shell, cmd};

use super::{Finding, relative};
use crate::tools::{self, Tool};

/// The secret scanner (it lists the tracked files with git).
pub const DETECT_SECRETS: Tool = Tool::pip("detect-secrets");

/// Test fixtures hold planted fake secrets on purpose (the scanner's own tests need them); the
/// repository-wide scan leaves them out, and only them.
pub const FIXTURES_EXCLUDED: &str = "^xtask/tests/fixtures/";

/// Hits a person audited as false positives (`is_secret: false`), e.g. `existingSecret: redis` in
/// the chart's values. Matched by file, detector and hash, so lines may move.
pub const BASELINE: &str = ".secrets.baseline";

/// Scans every tracked file (minus [`FIXTURES_EXCLUDED`]), or exactly `paths` when given; hits
/// audited in [`BASELINE`] do not count.
pub fn scan(sh: &Shell, paths: &[PathBuf]) -> Result<Vec<Finding>> {
    let detect = tools::need(sh, &DETECT_SECRETS)?;
    // The baseline holds hashes and line numbers that look like secrets themselves.
    let baseline_excluded = format!("^{}$", BASELINE.replace('.', "\\."));
    let exclude = if paths.is_empty() {
        vec![
            "--exclude-files",
            FIXTURES_EXCLUDED,
            "--exclude-files",
            &baseline_excluded,
        ]
    } else {
        vec![]
    };
    // Without paths detect-secrets reads `git ls-files`: untracked build output is never scanned.
    let out = cmd!(sh, "{detect} scan {exclude...} {paths...}")
        .read()
        .context("running detect-secrets")?;
    let report: Value = serde_json::from_str(&out).context("parsing detect-secrets' JSON")?;
    let baseline: Value = match std::fs::read_to_string(sh.current_dir().join(BASELINE)) {
        Ok(text) => serde_json::from_str(&text).with_context(|| format!("parsing {BASELINE}"))?,
        Err(_) => Value::Null,
    };
    let found = findings(sh, &unaudited(&report, &baseline));
    if !found.is_empty() {
        eprintln!(
            "security-scan: remove each secret below (and rotate it). For a false positive, add it \
             to {BASELINE} with `detect-secrets scan --baseline {BASELINE}` (in target/venv/bin) \
             and mark it as a false positive with `detect-secrets audit {BASELINE}`."
        );
    }
    Ok(found)
}

/// The hits of `report` that `baseline` does not list as audited false positives.
pub fn unaudited(report: &Value, baseline: &Value) -> Value {
    let key = |file: &str, hit: &Value| {
        (
            file.to_owned(),
            hit["type"].as_str().unwrap_or("").to_owned(),
            hit["hashed_secret"].as_str().unwrap_or("").to_owned(),
        )
    };
    let mut audited = std::collections::BTreeSet::new();
    for (file, hits) in baseline["results"].as_object().into_iter().flatten() {
        for hit in hits.as_array().into_iter().flatten() {
            if hit["is_secret"] == false {
                audited.insert(key(file, hit));
            }
        }
    }
    let mut results = serde_json::Map::new();
    for (file, hits) in report["results"].as_object().into_iter().flatten() {
        let left: Vec<Value> = hits
            .as_array()
            .into_iter()
            .flatten()
            .filter(|hit| !audited.contains(&key(file, hit)))
            .cloned()
            .collect();
        if !left.is_empty() {
            results.insert(file.clone(), Value::Array(left));
        }
    }
    serde_json::json!({ "results": results })
}

/// detect-secrets' `results` (file → list of hits) as findings, in file order.
fn findings(sh: &Shell, report: &Value) -> Vec<Finding> {
    let mut found = Vec::new();
    if let Some(results) = report["results"].as_object() {
        for (file, hits) in results {
            for hit in hits.as_array().into_iter().flatten() {
                found.push(Finding {
                    tool: "detect-secrets",
                    rule: hit["type"].as_str().unwrap_or("secret").to_owned(),
                    // The hash identifies the value without printing it.
                    message: format!(
                        "possible committed secret (sha1 {})",
                        hit["hashed_secret"].as_str().unwrap_or("?")
                    ),
                    file: relative(sh, file),
                    line: hit["line_number"].as_u64().unwrap_or(1) as u32,
                });
            }
        }
    }
    found.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_hits_audited_as_false_positives_are_dropped() {
        let hit = |t: &str, h: &str, line: u64| json!({"type": t, "hashed_secret": h, "line_number": line});
        let report = json!({"results": {
            "values.yaml": [hit("Secret Keyword", "aaa", 20), hit("Secret Keyword", "bbb", 30)],
            "key.env": [hit("AWS Access Key", "ccc", 1)],
        }});
        let mut audited = hit("Secret Keyword", "aaa", 3);
        audited["is_secret"] = json!(false);
        let mut real = hit("AWS Access Key", "ccc", 1);
        real["is_secret"] = json!(true);
        let baseline = json!({"results": {"values.yaml": [audited], "key.env": [real]}});
        let left = unaudited(&report, &baseline);
        assert_eq!(
            left,
            json!({"results": {
                "key.env": [hit("AWS Access Key", "ccc", 1)],
                "values.yaml": [hit("Secret Keyword", "bbb", 30)],
            }})
        );
    }
}
