//! DSSE envelopes around in-toto statements: the pre-authentication encoding (PAE), signing and
//! verifying with a cosign key, and the few statement fields the tasks check.
//!
//! The `keyid` is the one securesystemslib derives for the public key, so its verifiers (which
//! only try a key whose id matches the signature's) find ours without being told.

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE as B64_URL};
use p256::ecdsa::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::keys;

/// The payload type of an in-toto statement (in-toto attestation spec v1, envelope.md).
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The statement `_type` of in-toto attestation v1; cosign's own v0.1 is read as well.
pub const STATEMENT_TYPE_V1: &str = "https://in-toto.io/Statement/v1";
const STATEMENT_TYPE_PREFIX: &str = "https://in-toto.io/Statement/";

/// A DSSE envelope, fields in the order cosign (go-securesystemslib) writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Standard base64 of the statement bytes: cosign decodes it with Go's StdEncoding.
    pub payload: String,
    pub signatures: Vec<Signature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// securesystemslib needs the field present (an empty id is allowed).
    #[serde(default)]
    pub keyid: String,
    pub sig: String,
}

/// `DSSEv1 <len(type)> <type> <len(body)> <body>`: what is signed, so that the payload type is
/// covered too and no JSON canonicalization is needed.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// securesystemslib's default key id of an ECDSA P-256 public key: the sha256 of the canonical
/// JSON of `{keytype, keyval: {public: PEM}, scheme}`.
pub fn keyid(key: &VerifyingKey) -> Result<String> {
    let pem = keys::public_key_pem(key)?;
    // Canonical JSON escapes only `\` and `"`; a PEM has neither, its newlines stay raw.
    ensure!(
        !pem.contains(['\\', '"']),
        "unexpected characters in the PEM"
    );
    let canonical = format!(
        r#"{{"keytype":"ecdsa","keyval":{{"public":"{pem}"}},"scheme":"ecdsa-sha2-nistp256"}}"#
    );
    Ok(crate::tools::hex_digest(canonical.as_bytes()))
}

/// Signs `statement` (the exact bytes of an in-toto statement) into an envelope.
pub fn sign(key: &SigningKey, statement: &[u8]) -> Result<Envelope> {
    let signature = keys::sign(key, &pae(IN_TOTO_PAYLOAD_TYPE, statement));
    Ok(Envelope {
        payload_type: IN_TOTO_PAYLOAD_TYPE.to_owned(),
        payload: B64.encode(statement),
        signatures: vec![Signature {
            keyid: keyid(key.verifying_key())?,
            sig: B64.encode(signature),
        }],
    })
}

/// Why an envelope was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not a DSSE envelope of an in-toto statement.
    Malformed(String),
    /// Well formed, but no signature verifies with the key.
    WrongKey { signatures: usize },
}

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvelopeError::Malformed(why) => write!(f, "not a DSSE in-toto envelope: {why}"),
            EnvelopeError::WrongKey { signatures } => write!(
                f,
                "none of its {signatures} signature(s) verifies with the key (signed with another \
                 key, or altered)"
            ),
        }
    }
}

impl std::error::Error for EnvelopeError {}

/// Checks `envelope` (its JSON bytes) with `key` and returns the statement bytes it signs.
pub fn verify(envelope: &[u8], key: &VerifyingKey) -> Result<Vec<u8>, EnvelopeError> {
    let malformed = |why: String| EnvelopeError::Malformed(why);
    let env: Envelope =
        serde_json::from_slice(envelope).map_err(|e| malformed(format!("JSON: {e}")))?;
    if env.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(malformed(format!(
            "payloadType `{}`, expected `{IN_TOTO_PAYLOAD_TYPE}`",
            env.payload_type
        )));
    }
    // DSSE allows either base64 alphabet.
    let decode = |s: &str| B64.decode(s).or_else(|_| B64_URL.decode(s));
    let body = decode(&env.payload).map_err(|e| malformed(format!("payload: {e}")))?;
    let message = pae(&env.payload_type, &body);
    let verified = env
        .signatures
        .iter()
        .any(|s| decode(&s.sig).is_ok_and(|sig| keys::verify(key, &message, &sig)));
    if !verified {
        return Err(EnvelopeError::WrongKey {
            signatures: env.signatures.len(),
        });
    }
    Ok(body)
}

/// The statement fields the tasks look at.
#[derive(Debug, Clone, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub kind: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Subject {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub digest: std::collections::BTreeMap<String, String>,
}

impl Statement {
    /// Parses and checks what every in-toto statement must have.
    pub fn parse(bytes: &[u8]) -> Result<Statement> {
        let statement: Statement =
            serde_json::from_slice(bytes).context("not an in-toto statement")?;
        if !statement.kind.starts_with(STATEMENT_TYPE_PREFIX) {
            bail!(
                "`_type` is `{}`, not an in-toto statement ({STATEMENT_TYPE_V1})",
                statement.kind
            );
        }
        ensure!(
            !statement.subject.is_empty(),
            "the statement has no subject"
        );
        ensure!(
            !statement.predicate_type.is_empty(),
            "the statement has no predicateType"
        );
        Ok(statement)
    }

    /// The subjects' sha256 digests as `sha256:<hex>`.
    pub fn subject_digests(&self) -> Vec<String> {
        self.subject
            .iter()
            .filter_map(|s| s.digest.get("sha256"))
            .map(|hex| format!("sha256:{hex}"))
            .collect()
    }

    /// Whether a subject is the manifest `digest`.
    pub fn names(&self, digest: &str) -> bool {
        self.subject_digests().iter().any(|d| d == digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_the_spec_example() {
        // secure-systems-lab/dsse protocol.md.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn envelopes_verify_with_their_key_only() {
        let key = keys::generate();
        let statement = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{"sha256":"00"}}],"predicateType":"https://example.com/p","predicate":{}}"#;
        let env = sign(&key, statement).unwrap();
        assert_eq!(env.signatures[0].keyid.len(), 64);
        let json = serde_json::to_vec(&env).unwrap();
        assert!(json.starts_with(br#"{"payloadType":"application/vnd.in-toto+json","payload":""#));
        assert_eq!(verify(&json, key.verifying_key()).unwrap(), statement);

        let other = keys::generate();
        assert_eq!(
            verify(&json, other.verifying_key()),
            Err(EnvelopeError::WrongKey { signatures: 1 })
        );
        let mut altered = env.clone();
        altered.payload = B64.encode(&statement[..statement.len() - 1]);
        let altered = serde_json::to_vec(&altered).unwrap();
        assert!(matches!(
            verify(&altered, key.verifying_key()),
            Err(EnvelopeError::WrongKey { .. })
        ));
        let mut retyped = env;
        retyped.payload_type = "text/plain".into();
        let retyped = serde_json::to_vec(&retyped).unwrap();
        assert!(matches!(
            verify(&retyped, key.verifying_key()),
            Err(EnvelopeError::Malformed(_))
        ));
    }

    #[test]
    fn statements_name_their_subjects() {
        let s = Statement::parse(br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"ab"}},{"name":"b","digest":{"sha512":"cd"}}],"predicateType":"p"}"#).unwrap();
        assert_eq!(s.subject_digests(), ["sha256:ab"]);
        assert!(s.names("sha256:ab"));
        assert!(!s.names("sha256:cd"));
        assert!(
            Statement::parse(br#"{"_type":"x","subject":[{"digest":{}}],"predicateType":"p"}"#)
                .is_err()
        );
        assert!(
            Statement::parse(
                br#"{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"p"}"#
            )
            .is_err()
        );
    }
}
