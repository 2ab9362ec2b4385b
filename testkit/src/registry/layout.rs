//! A synthetic two-platform OCI image layout for push tests: real gzip layers of seeded noise,
//! image configs, manifests and an index, serialized with serde.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use sha2::{Digest, Sha256};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Writes a small but real two-platform OCI image layout (amd64, arm64) at `dir` with layers of
/// `layer_size` pseudo-random bytes (seeded, so the same seed gives the same image). Returns the
/// index digest. For push tests that need an image, not a runnable one.
pub fn write_test_layout(dir: &Path, layer_size: usize, seed: u64) -> Result<String> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let put = |media_type: &'static str, bytes: &[u8]| -> Result<Descriptor> {
        let hex = format!("{:x}", Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes)?;
        Ok(Descriptor::new(
            media_type,
            format!("sha256:{hex}"),
            bytes.len(),
        ))
    };
    let mut noise = Noise::new(seed);
    let mut manifests = Vec::new();
    for architecture in ["amd64", "arm64"] {
        // Real gzip (of noise, stored): tools sniff the compression and would convert a fake.
        let raw = noise.bytes(layer_size);
        let diff_id = format!("sha256:{:x}", Sha256::digest(&raw));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
        std::io::Write::write_all(&mut gz, &raw)?;
        let layer = put(LAYER, &gz.finish()?)?;
        let platform = Platform {
            architecture,
            os: "linux",
        };
        let config = ImageConfig {
            architecture,
            os: "linux",
            config: Empty {},
            rootfs: RootFs {
                kind: "layers",
                diff_ids: vec![diff_id],
            },
        };
        let config = put(CONFIG, &serde_json::to_vec(&config)?)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: MANIFEST,
            config,
            layers: vec![layer],
        };
        let mut manifest = put(MANIFEST, &serde_json::to_vec(&manifest)?)?;
        manifest.platform = Some(platform);
        manifests.push(manifest);
    }
    let mut entry = put(INDEX, &serde_json::to_vec(&Index::new(manifests))?)?;
    let digest = entry.digest.clone();
    entry.annotations = Some(BTreeMap::from([(
        "org.opencontainers.image.ref.name",
        "test",
    )]));
    std::fs::write(
        dir.join("oci-layout"),
        serde_json::to_vec(&LayoutVersion {
            image_layout_version: "1.0.0",
        })?,
    )?;
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&Index::new(vec![entry]))?,
    )?;
    Ok(digest)
}

/// xorshift of a seed: incompressible enough that sizes mean what they say.
struct Noise(u64);

impl Noise {
    fn new(seed: u64) -> Self {
        Self(
            seed.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        )
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                self.0 as u8
            })
            .collect()
    }
}

// The OCI JSON shapes, fields in the order the OCI examples (and so most tools) write them.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: &'static str,
    digest: String,
    size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Platform>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<&'static str, &'static str>>,
}

impl Descriptor {
    fn new(media_type: &'static str, digest: String, size: usize) -> Self {
        Self {
            media_type,
            digest,
            size,
            platform: None,
            annotations: None,
        }
    }
}

#[derive(Serialize)]
struct Platform {
    architecture: &'static str,
    os: &'static str,
}

#[derive(Serialize)]
struct ImageConfig {
    architecture: &'static str,
    os: &'static str,
    config: Empty,
    rootfs: RootFs,
}

/// `{}`: an image config without runtime settings.
#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

impl Index {
    fn new(manifests: Vec<Descriptor>) -> Self {
        Self {
            schema_version: 2,
            media_type: INDEX,
            manifests,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LayoutVersion {
    image_layout_version: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned from the hand-formatted JSON this code replaced: the same seed gives the same
    /// bytes, and struct field order (not serde_json's map order) decides them.
    #[test]
    fn same_seed_same_image_down_to_the_byte() {
        let dir = tempfile::tempdir().unwrap();
        let digest = write_test_layout(dir.path(), 1000, 1).unwrap();
        let expected = "sha256:63d333e7617f5a634ea1e9b4b25b5fbb2f78681665be68b7bb0b790e078e33c6";
        assert_eq!(digest, expected);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("index.json")).unwrap(),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{expected}","size":491,"annotations":{{"org.opencontainers.image.ref.name":"test"}}}}]}}"#
            )
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("oci-layout")).unwrap(),
            r#"{"imageLayoutVersion":"1.0.0"}"#
        );
        let blobs = std::fs::read_dir(dir.path().join("blobs/sha256")).unwrap();
        // Index, and per platform a manifest, a config and a layer.
        assert_eq!(blobs.count(), 7);
    }
}
