//! in-toto Statement v1: what an attestation says (a typed predicate) about which artifacts (subjects
//! named by digest). A DSSE envelope signs exactly the bytes of [`Statement::to_bytes`].

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `_type` of every statement this project writes.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The DSSE `payloadType` of an in-toto statement (in-toto attestation spec, envelope.md).
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// `predicateType` of SLSA build provenance v1.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// `predicateType` of a CycloneDX BOM (in-toto predicates/cyclonedx.md); the predicate is the BOM.
pub const CYCLONEDX_BOM: &str = "https://cyclonedx.org/bom";

/// An in-toto Statement v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Value,
}

/// An artifact the statement is about: a name and its digests (`{"sha256": "<hex>"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    /// The subject `name` with the sha256 digest `digest` (`sha256:<hex>` or bare hex).
    pub fn sha256(name: &str, digest: &str) -> Result<Subject> {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        ensure!(
            is_sha256_hex(hex),
            "subject `{name}`: `{digest}` is not a sha256 digest (64 lower-case hex digits)"
        );
        ensure!(!name.is_empty(), "a statement subject needs a name");
        Ok(Subject {
            name: name.to_owned(),
            digest: BTreeMap::from([("sha256".to_owned(), hex.to_owned())]),
        })
    }

    /// `sha256:<hex>`, when the subject has a sha256 digest.
    pub fn sha256_digest(&self) -> Option<String> {
        self.digest.get("sha256").map(|hex| format!("sha256:{hex}"))
    }
}

impl Statement {
    pub fn new(subject: Vec<Subject>, predicate_type: &str, predicate: Value) -> Statement {
        Statement {
            type_: STATEMENT_TYPE.to_owned(),
            subject,
            predicate_type: predicate_type.to_owned(),
            predicate,
        }
    }

    /// The bytes to sign and to store: compact JSON with keys sorted at every level, so the same
    /// statement always gives the same bytes (and the same digest).
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::image::oci::canonical_json(self).expect("a statement serializes to JSON")
    }

    /// Parses a statement and checks what the in-toto spec requires of it: the v1 `_type`, at
    /// least one subject, every subject with a sha256 digest, a predicate type and an object
    /// predicate.
    pub fn from_bytes(bytes: &[u8]) -> Result<Statement> {
        let statement: Statement =
            serde_json::from_slice(bytes).context("parsing an in-toto statement")?;
        statement.validate()?;
        Ok(statement)
    }

    /// See [`Statement::from_bytes`].
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.type_ == STATEMENT_TYPE,
            "statement `_type` is `{}`, expected `{STATEMENT_TYPE}`",
            self.type_
        );
        if self.subject.is_empty() {
            bail!("the statement has no subject");
        }
        for subject in &self.subject {
            let hex = subject.digest.get("sha256").with_context(|| {
                format!("statement subject `{}` has no sha256 digest", subject.name)
            })?;
            ensure!(
                is_sha256_hex(hex),
                "statement subject `{}`: `{hex}` is not a sha256 digest",
                subject.name
            );
        }
        ensure!(
            !self.predicate_type.is_empty(),
            "the statement has no predicateType"
        );
        ensure!(
            self.predicate.is_object(),
            "the statement's predicate is not a JSON object"
        );
        Ok(())
    }
}

fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const HEX: &str = "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a";

    #[test]
    fn statement_serializes_with_the_spec_field_names_in_canonical_order() {
        let s = Statement::new(
            vec![Subject::sha256("ghcr.io/acme/visit-tracker", &format!("sha256:{HEX}")).unwrap()],
            SLSA_PROVENANCE_V1,
            json!({"b": 1, "a": 2}),
        );
        let text = String::from_utf8(s.to_bytes()).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"_type":"https://in-toto.io/Statement/v1","predicate":{{"a":2,"b":1}},"predicateType":"https://slsa.dev/provenance/v1","subject":[{{"digest":{{"sha256":"{HEX}"}},"name":"ghcr.io/acme/visit-tracker"}}]}}"#
            )
        );
        assert_eq!(Statement::from_bytes(text.as_bytes()).unwrap(), s);
        assert_eq!(
            s.subject[0].sha256_digest().unwrap(),
            format!("sha256:{HEX}")
        );
    }

    #[test]
    fn subjects_need_a_sha256_digest_and_a_name() {
        assert!(Subject::sha256("x", HEX).is_ok());
        for bad in ["sha256:abc", "sha512:00", &HEX.to_uppercase()] {
            let err = Subject::sha256("x", bad).unwrap_err().to_string();
            assert!(err.contains("is not a sha256 digest"), "{bad}: {err}");
        }
        assert!(Subject::sha256("", HEX).is_err());
    }

    #[test]
    fn invalid_statements_are_refused_naming_the_problem() {
        let good = json!({
            "_type": STATEMENT_TYPE,
            "subject": [{"name": "a", "digest": {"sha256": HEX}}],
            "predicateType": CYCLONEDX_BOM,
            "predicate": {},
        });
        assert!(Statement::from_bytes(good.to_string().as_bytes()).is_ok());
        let refused = |patch: Value, expected: &str| {
            let mut bad = good.clone();
            for (k, v) in patch.as_object().unwrap() {
                bad[k] = v.clone();
            }
            let err = format!(
                "{:#}",
                Statement::from_bytes(bad.to_string().as_bytes()).unwrap_err()
            );
            assert!(err.contains(expected), "{patch}: {err}");
        };
        refused(
            json!({"_type": "https://in-toto.io/Statement/v0.1"}),
            "expected `https://in-toto.io/Statement/v1`",
        );
        refused(json!({"subject": []}), "no subject");
        refused(
            json!({"subject": [{"name": "a", "digest": {"sha1": "00"}}]}),
            "subject `a` has no sha256 digest",
        );
        refused(json!({"predicate": []}), "not a JSON object");
        refused(json!({"predicateType": ""}), "no predicateType");
    }
}
