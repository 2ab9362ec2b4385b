//! OCI 1.1 referrers: an attestation as an artifact manifest whose `subject` is the attested
//! manifest, and the referrers tag schema (`sha256-<hex>`, an image index listing them) for
//! registries without the referrers API.

use std::collections::HashMap;

use anyhow::{Context, Result, ensure};
use oci_spec::image::{
    Descriptor, Digest, ImageIndex, ImageIndexBuilder, ImageManifest, ImageManifestBuilder,
    MediaType,
};

use crate::image::oci::canonical_json;
use crate::registry::{Blob, Fetched, Manifest, Tag};

/// The artifact type of a DSSE-signed in-toto statement, as cosign writes its referrers.
pub const IN_TOTO_ARTIFACT_TYPE: &str = "application/vnd.in-toto+json";
/// The layer holding the envelope.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The statement's predicate type, on the manifest (so the referrers list shows it) and the
/// layer. cosign's `.att` layers use `predicateType`, which the layer carries as well.
pub const PREDICATE_TYPE_ANNOTATION: &str = "in-toto.io/predicate-type";
pub const COSIGN_PREDICATE_TYPE_ANNOTATION: &str = "predicateType";

/// The empty config of an artifact: the two bytes `{}`.
pub fn empty_config() -> Blob {
    Blob::from_bytes(&b"{}"[..], Some("empty config"))
}

/// The tag of the referrers tag schema for `digest`: `<alg>-<hex>`.
pub fn referrers_tag(digest: &Digest) -> Tag {
    format!("{}-{}", digest.algorithm(), digest.digest())
        .parse()
        .expect("an algorithm and hex digits make a valid tag")
}

/// The descriptor of a manifest the registry holds: what a `subject` points at.
pub fn descriptor_of(fetched: &Fetched) -> Descriptor {
    Descriptor::new(
        fetched.media_type.clone(),
        fetched.bytes.len() as u64,
        fetched.digest.clone(),
    )
}

/// The artifact manifest of one envelope about `subject`. Deterministic (no creation time): the
/// same envelope about the same manifest is the same artifact, so attesting again adds nothing.
pub fn artifact(subject: Descriptor, envelope: &Blob, predicate_type: &str) -> Result<Manifest> {
    let config = empty_config();
    let mut layer = Descriptor::new(
        MediaType::from(DSSE_MEDIA_TYPE),
        envelope.size,
        envelope.digest.clone(),
    );
    layer.set_annotations(Some(HashMap::from([
        (
            PREDICATE_TYPE_ANNOTATION.to_owned(),
            predicate_type.to_owned(),
        ),
        (
            COSIGN_PREDICATE_TYPE_ANNOTATION.to_owned(),
            predicate_type.to_owned(),
        ),
    ])));
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::from(IN_TOTO_ARTIFACT_TYPE))
        .config(Descriptor::new(
            MediaType::EmptyJSON,
            config.size,
            config.digest,
        ))
        .layers(vec![layer])
        .subject(subject)
        .annotations(HashMap::from([(
            PREDICATE_TYPE_ANNOTATION.to_owned(),
            predicate_type.to_owned(),
        )]))
        .build()?;
    Ok(Manifest::new(
        MediaType::ImageManifest,
        canonical_json(&manifest)?,
    ))
}

/// The entry a referrers list has for an artifact manifest: its descriptor with the artifact
/// type (else its config's media type) and its annotations.
pub fn index_entry(manifest: &Manifest) -> Result<Descriptor> {
    let parsed: ImageManifest =
        serde_json::from_slice(&manifest.bytes).context("not an image manifest")?;
    let mut d = Descriptor::new(
        manifest.media_type.clone(),
        manifest.bytes.len() as u64,
        manifest.digest.clone(),
    );
    d.set_artifact_type(Some(
        parsed
            .artifact_type()
            .clone()
            .unwrap_or_else(|| parsed.config().media_type().clone()),
    ));
    d.set_annotations(parsed.annotations().clone());
    Ok(d)
}

/// The referrers tag schema's index with `entries` added to what it lists now (`existing`, the
/// bytes under the tag, if any), or `None` when it lists them all already.
pub fn add_to_index(
    existing: Option<&Fetched>,
    entries: &[Descriptor],
) -> Result<Option<Manifest>> {
    let mut manifests = match existing {
        Some(fetched) => {
            let index: ImageIndex = serde_json::from_slice(&fetched.bytes).with_context(|| {
                format!(
                    "the referrers tag holds {} which is not an image index",
                    fetched.digest
                )
            })?;
            index.manifests().clone()
        }
        None => Vec::new(),
    };
    let before = manifests.len();
    for entry in entries {
        if !manifests.iter().any(|m| m.digest() == entry.digest()) {
            manifests.push(entry.clone());
        }
    }
    if manifests.len() == before {
        return Ok(None);
    }
    ensure!(
        manifests.iter().all(|m| m.artifact_type().is_some()),
        "a referrers list entry has no artifactType"
    );
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()?;
    Ok(Some(Manifest::new(
        MediaType::ImageIndex,
        canonical_json(&index)?,
    )))
}

/// The artifact's `subject` digest and its envelope layer, checked to be an in-toto referrer.
pub fn parse_artifact(fetched: &Fetched) -> Result<(Option<Digest>, Descriptor)> {
    let manifest: ImageManifest =
        serde_json::from_slice(&fetched.bytes).context("not an image manifest")?;
    let layer = manifest
        .layers()
        .iter()
        .find(|l| l.media_type().to_string() == DSSE_MEDIA_TYPE)
        .with_context(|| format!("no {DSSE_MEDIA_TYPE} layer"))?
        .clone();
    Ok((
        manifest.subject().as_ref().map(|s| s.digest().clone()),
        layer,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Descriptor {
        Descriptor::new(
            MediaType::ImageIndex,
            491,
            format!("sha256:{}", "ab".repeat(32))
                .parse::<Digest>()
                .unwrap(),
        )
    }

    #[test]
    fn artifacts_point_at_their_subject() {
        let envelope = Blob::from_bytes(&b"{\"payloadType\":\"x\"}"[..], None);
        let a = artifact(subject(), &envelope, "https://slsa.dev/provenance/v1").unwrap();
        let json: serde_json::Value = serde_json::from_slice(&a.bytes).unwrap();
        assert_eq!(json["artifactType"], IN_TOTO_ARTIFACT_TYPE);
        assert_eq!(
            json["config"]["mediaType"],
            "application/vnd.oci.empty.v1+json"
        );
        assert_eq!(
            json["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(json["subject"]["digest"], subject().digest().to_string());
        assert_eq!(json["subject"]["size"], 491);
        assert_eq!(json["layers"][0]["mediaType"], DSSE_MEDIA_TYPE);
        let fetched = Fetched {
            digest: a.digest.clone(),
            media_type: a.media_type.clone(),
            bytes: a.bytes.clone(),
        };
        let (s, layer) = parse_artifact(&fetched).unwrap();
        assert_eq!(s.as_ref(), Some(subject().digest()));
        assert_eq!(layer.digest(), &envelope.digest);
        // The same envelope about the same subject is the same artifact.
        let again = artifact(subject(), &envelope, "https://slsa.dev/provenance/v1").unwrap();
        assert_eq!(again.digest, a.digest);
    }

    #[test]
    fn the_tag_index_grows_without_duplicates() {
        assert_eq!(
            referrers_tag(subject().digest()).to_string(),
            format!("sha256-{}", "ab".repeat(32))
        );
        let one = artifact(subject(), &Blob::from_bytes(&b"1"[..], None), "p1").unwrap();
        let two = artifact(subject(), &Blob::from_bytes(&b"2"[..], None), "p2").unwrap();
        let e1 = index_entry(&one).unwrap();
        assert_eq!(
            e1.artifact_type().as_ref().unwrap().to_string(),
            IN_TOTO_ARTIFACT_TYPE
        );
        assert_eq!(
            e1.annotations().as_ref().unwrap()[PREDICATE_TYPE_ANNOTATION],
            "p1"
        );
        let first = add_to_index(None, std::slice::from_ref(&e1))
            .unwrap()
            .unwrap();
        let as_fetched = |m: &Manifest| Fetched {
            digest: m.digest.clone(),
            media_type: m.media_type.clone(),
            bytes: m.bytes.clone(),
        };
        assert!(
            add_to_index(Some(&as_fetched(&first)), std::slice::from_ref(&e1))
                .unwrap()
                .is_none()
        );
        let e2 = index_entry(&two).unwrap();
        let second = add_to_index(Some(&as_fetched(&first)), &[e1, e2])
            .unwrap()
            .unwrap();
        let index: ImageIndex = serde_json::from_slice(&second.bytes).unwrap();
        let digests: Vec<_> = index
            .manifests()
            .iter()
            .map(|m| m.digest().clone())
            .collect();
        assert_eq!(digests, [one.digest, two.digest]);
    }
}
