//! cosign's tag-based attachments: signatures under `sha256-<hex>.sig` and attestations under
//! `sha256-<hex>.att`, each an OCI image manifest with one layer per signature or envelope.
//!
//! Adding to an attachment keeps what is there, as cosign does: the new layer is appended to the
//! existing manifest, unless an equal one is already there (then nothing is pushed).

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result, ensure};
use oci_spec::image::{Descriptor, Digest, ImageManifest, ImageManifestBuilder, MediaType};
use serde::Serialize;

use crate::image::oci::canonical_json;
use crate::registry::{Blob, Fetched, Manifest, PushSet, Tag};

/// The tag of the signatures of the manifest `digest`: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> Tag {
    suffixed_tag(digest, "sig")
}

/// The tag of cosign's attestations of the manifest `digest`: `sha256-<hex>.att`.
pub fn attestation_tag(digest: &Digest) -> Tag {
    suffixed_tag(digest, "att")
}

fn suffixed_tag(digest: &Digest, suffix: &str) -> Tag {
    format!("{}-{}.{suffix}", digest.algorithm(), digest.digest())
        .parse()
        .expect("an algorithm, hex digits and a suffix make a valid tag")
}

/// One layer to attach: its bytes, media type and annotations.
#[derive(Debug, Clone)]
pub struct Layer {
    pub blob: Blob,
    pub media_type: String,
    pub annotations: BTreeMap<String, String>,
}

impl Layer {
    pub fn descriptor(&self) -> Descriptor {
        let mut d = Descriptor::new(
            MediaType::from(self.media_type.as_str()),
            self.blob.size,
            self.blob.digest.clone(),
        );
        d.set_annotations(Some(
            self.annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        ));
        d
    }
}

/// The layers of an attachment manifest.
pub fn layers(existing: &Fetched) -> Result<Vec<Descriptor>> {
    let manifest: ImageManifest = serde_json::from_slice(&existing.bytes)
        .with_context(|| format!("attachment {} is not an image manifest", existing.digest))?;
    Ok(manifest.layers().clone())
}

/// The config cosign's attachments carry (an image config whose `rootfs` lists the layers, as
/// go-containerregistry makes it). Nobody reads it, but it must be a valid image config.
#[derive(Serialize)]
struct Config {
    architecture: &'static str,
    os: &'static str,
    config: BTreeMap<String, String>,
    rootfs: RootFs,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

/// What to push to attach `new` layers under `tag`, given what the tag holds now: the existing
/// layers plus each new one that `is_duplicate` finds no equal of. `None` when there is none.
pub fn append(
    tag: Tag,
    existing: Option<&Fetched>,
    new: Vec<Layer>,
    is_duplicate: impl Fn(&Descriptor, &Layer) -> bool,
) -> Result<Option<PushSet>> {
    let mut all = match existing {
        Some(fetched) => layers(fetched)?,
        None => Vec::new(),
    };
    let mut blobs = Vec::new();
    for layer in new {
        if all.iter().any(|d| is_duplicate(d, &layer)) {
            continue;
        }
        all.push(layer.descriptor());
        blobs.push(layer.blob);
    }
    if blobs.is_empty() {
        return Ok(None);
    }
    // cosign refuses to read more than 1000 layers: fail here instead of writing what it rejects.
    ensure!(
        all.len() <= 1000,
        "{tag} would hold {} layers; cosign reads at most 1000",
        all.len()
    );
    let config = Config {
        architecture: "",
        os: "",
        config: BTreeMap::new(),
        rootfs: RootFs {
            kind: "layers",
            diff_ids: all.iter().map(|d| d.digest().to_string()).collect(),
        },
    };
    let config = Blob::from_bytes(serde_json::to_vec(&config)?, Some("config"));
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        // containers/image refuses a sigstore attachment of any other manifest type.
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config.size,
            config.digest.clone(),
        ))
        .layers(all)
        .build()?;
    let manifest = Manifest::new(MediaType::ImageManifest, canonical_json(&manifest)?);
    blobs.insert(0, config);
    Ok(Some(PushSet {
        blobs,
        manifests: vec![manifest],
        tags: vec![tag],
    }))
}

/// Whether an existing layer is the same as `new`: digest, media type, and every annotation of
/// `new` (but `ignore_annotation`) present with the same value. cosign's duplicate test, before
/// it checks the signature.
pub fn same_layer(existing: &Descriptor, new: &Layer, ignore_annotation: &str) -> bool {
    let empty = HashMap::new();
    let theirs = existing.annotations().as_ref().unwrap_or(&empty);
    *existing.digest() == new.blob.digest
        && existing.media_type().to_string() == new.media_type
        && new
            .annotations
            .iter()
            .filter(|(k, _)| k.as_str() != ignore_annotation)
            .all(|(k, v)| theirs.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(byte: &str) -> Digest {
        format!("sha256:{}", byte.repeat(32)).parse().unwrap()
    }

    fn layer(payload: &[u8], signature: &str) -> Layer {
        Layer {
            blob: Blob::from_bytes(payload.to_vec(), None),
            media_type: "application/vnd.dev.cosign.simplesigning.v1+json".into(),
            annotations: BTreeMap::from([(
                "dev.cosignproject.cosign/signature".into(),
                signature.into(),
            )]),
        }
    }

    fn layers_of(set: &PushSet) -> usize {
        layers(&fetched(set)).unwrap().len()
    }

    fn fetched(set: &PushSet) -> Fetched {
        let m = set.root().unwrap();
        Fetched {
            digest: m.digest.clone(),
            media_type: m.media_type.clone(),
            bytes: m.bytes.clone(),
        }
    }

    #[test]
    fn tags_are_cosigns() {
        assert_eq!(
            signature_tag(&digest("ab")).to_string(),
            format!("sha256-{}.sig", "ab".repeat(32))
        );
        assert_eq!(
            attestation_tag(&digest("0c")).to_string(),
            format!("sha256-{}.att", "0c".repeat(32))
        );
    }

    #[test]
    fn layers_are_appended_once() {
        let tag = signature_tag(&digest("ab"));
        let never = |_: &Descriptor, _: &Layer| false;
        let first = append(tag.clone(), None, vec![layer(b"one", "c2ln")], never)
            .unwrap()
            .unwrap();
        assert_eq!(first.tags, std::slice::from_ref(&tag));
        let manifest: serde_json::Value =
            serde_json::from_slice(&first.root().unwrap().bytes).unwrap();
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(
            manifest["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"],
            "c2ln"
        );
        let config: serde_json::Value = serde_json::from_slice(match &first.blobs[0].source {
            crate::registry::BlobSource::Bytes(b) => b,
            _ => unreachable!(),
        })
        .unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            manifest["layers"][0]["digest"]
        );

        let existing = fetched(&first);
        let second = layer(b"two", "b3RoZXI=");
        let dup =
            |e: &Descriptor, n: &Layer| same_layer(e, n, "dev.cosignproject.cosign/signature");
        let set = append(tag.clone(), Some(&existing), vec![second.clone()], dup)
            .unwrap()
            .unwrap();
        let layers = layers(&fetched(&set)).unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[1].digest(), &second.blob.digest);
        // Only the new layer's blob (and the new config) are pushed: the first is there.
        assert_eq!(set.blobs.len(), 2);

        // The same payload signed again (another signature value): a duplicate by layer, so the
        // caller's signature check decides; with none, nothing is pushed.
        let again = layer(b"one", "b3RoZXI=");
        assert!(
            append(tag.clone(), Some(&existing), vec![again.clone()], dup)
                .unwrap()
                .is_none()
        );
        assert!(!same_layer(&layers[0], &layer(b"one", "x"), "none"));
        let both = append(tag, None, vec![again, layer(b"two", "x")], never)
            .unwrap()
            .unwrap();
        assert_eq!(layers_of(&both), 2);
    }
}
