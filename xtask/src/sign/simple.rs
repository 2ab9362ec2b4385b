//! cosign's simple-signing payload: the JSON a signature covers, naming the signed manifest by
//! digest and the reference it was signed under.

use anyhow::{Context, Result, ensure};
use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};

/// The media type of a signature layer: the payload, with the signature in an annotation.
pub const MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 DER signature over the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of every cosign container image signature.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// The payload. Field order as cosign's Go structs write it; readers such as containers/image
/// refuse unknown fields, so exactly these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    pub critical: Critical,
    /// Annotations given to `cosign sign -a`; `null` without them, as cosign writes it.
    pub optional: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Critical {
    pub identity: Identity,
    pub image: Image,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

/// The exact bytes to sign for the manifest `digest` signed as `identity`. No timestamp: the same
/// manifest signed again gives the same payload (and, with RFC 6979, the same signature).
pub fn payload(identity: &str, digest: &Digest) -> Vec<u8> {
    let payload = Payload {
        critical: Critical {
            identity: Identity {
                docker_reference: identity.to_owned(),
            },
            image: Image {
                docker_manifest_digest: digest.to_string(),
            },
            kind: SIGNATURE_TYPE.to_owned(),
        },
        optional: None,
    };
    serde_json::to_vec(&payload).expect("plain strings serialize")
}

/// Parses a payload as strictly as containers/image does.
pub fn parse(bytes: &[u8]) -> Result<Payload> {
    let payload: Payload =
        serde_json::from_slice(bytes).context("not a cosign simple-signing payload")?;
    ensure!(
        payload.critical.kind == SIGNATURE_TYPE,
        "payload type `{}`, expected `{SIGNATURE_TYPE}`",
        payload.critical.kind
    );
    Ok(payload)
}

impl Payload {
    /// The repository the identity names, without tag or digest (what cosign compares).
    pub fn repository(&self) -> &str {
        let reference = &self.critical.identity.docker_reference;
        let name = reference.split('@').next().unwrap_or(reference);
        let last_part = name.rfind('/').map_or(0, |i| i + 1);
        match name[last_part..].rfind(':') {
            Some(i) => &name[..last_part + i],
            None => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_bytes_are_cosigns() {
        let digest: Digest = format!("sha256:{}", "0f".repeat(32)).parse().unwrap();
        let bytes = payload("127.0.0.1:5000/team/app:1.2.3", &digest);
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1:5000/team/app:1.2.3"}},"image":{{"docker-manifest-digest":"sha256:{}"}},"type":"cosign container image signature"}},"optional":null}}"#,
                "0f".repeat(32)
            )
        );
        let parsed = parse(&bytes).unwrap();
        assert_eq!(
            parsed.critical.image.docker_manifest_digest,
            digest.to_string()
        );
        assert_eq!(parsed.repository(), "127.0.0.1:5000/team/app");
    }

    #[test]
    fn strict_like_containers_image() {
        let extra = br#"{"critical":{"identity":{"docker-reference":"a/b"},"image":{"docker-manifest-digest":"sha256:00"},"type":"cosign container image signature","x":1},"optional":null}"#;
        assert!(parse(extra).is_err());
        let other_type = br#"{"critical":{"identity":{"docker-reference":"a/b"},"image":{"docker-manifest-digest":"sha256:00"},"type":"atomic container signature"},"optional":null}"#;
        assert!(format!("{:#}", parse(other_type).unwrap_err()).contains("atomic"));
        let with_annotations = br#"{"critical":{"identity":{"docker-reference":"h:5/a/b"},"image":{"docker-manifest-digest":"sha256:00"},"type":"cosign container image signature"},"optional":{"by":"ci"}}"#;
        assert_eq!(parse(with_annotations).unwrap().repository(), "h:5/a/b");
    }
}
