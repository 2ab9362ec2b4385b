//! SARIF 2.1.0 output of the security scan, one run per tool, for GitHub code scanning.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Finding;

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// One SARIF log with a run for each tool that has findings (GitHub shows them per tool). With no
/// findings the log still holds one empty run, so an upload clears earlier alerts.
pub fn log(findings: &[Finding]) -> Value {
    let mut by_tool: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        by_tool.entry(f.tool).or_default().push(f);
    }
    let mut runs: Vec<Value> = by_tool
        .into_iter()
        .map(|(tool, findings)| run(tool, &findings))
        .collect();
    if runs.is_empty() {
        runs.push(run("visit-tracker security-scan", &[]));
    }
    json!({ "$schema": SCHEMA, "version": "2.1.0", "runs": runs })
}

fn run(tool: &str, findings: &[&Finding]) -> Value {
    let mut rules: Vec<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
    rules.sort_unstable();
    rules.dedup();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.rule,
                "level": "error",
                "message": { "text": f.message },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": f.file },
                        "region": { "startLine": f.line },
                    }
                }],
            })
        })
        .collect();
    json!({
        "tool": { "driver": {
            "name": tool,
            "rules": rules.iter().map(|r| json!({ "id": r })).collect::<Vec<_>>(),
        }},
        "results": results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(tool: &'static str, rule: &str, line: u32) -> Finding {
        Finding {
            tool,
            rule: rule.into(),
            message: format!("{rule} found"),
            file: "a/b.yml".into(),
            line,
        }
    }

    #[test]
    fn one_run_per_tool_with_rules_and_locations() {
        let log = log(&[
            finding("zizmor", "template-injection", 3),
            finding("cargo-deny", "RUSTSEC-2021-0003", 7),
            finding("zizmor", "template-injection", 9),
        ]);
        assert_eq!(log["version"], "2.1.0");
        let runs = log["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0]["tool"]["driver"]["name"], "cargo-deny");
        let zizmor = &runs[1];
        assert_eq!(
            zizmor["tool"]["driver"]["rules"],
            json!([{ "id": "template-injection" }])
        );
        let results = zizmor["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        let loc = &results[1]["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "a/b.yml");
        assert_eq!(loc["region"]["startLine"], 9);
    }

    #[test]
    fn no_findings_is_one_empty_run() {
        let log = log(&[]);
        assert_eq!(log["runs"].as_array().unwrap().len(), 1);
        assert_eq!(log["runs"][0]["results"], json!([]));
    }
}
