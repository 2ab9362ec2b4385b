//! OCI image layout on disk (`oci-layout`, `index.json`, `blobs/sha256/`): written atomically,
//! read back with every blob checked against its digest and size.
//!
//! `index.json` holds one entry: the multi-arch image index, annotated with
//! `org.opencontainers.image.ref.name` = the version tag. That is the shape
//! `skopeo copy --all docker://... oci:DIR:TAG` writes, so `skopeo`, `podman` and `umoci` address
//! the image as `oci:DIR:TAG` (or `oci:DIR` when there is one image) and pick a platform from it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use oci_spec::image::{
    ANNOTATION_REF_NAME, Descriptor, DescriptorBuilder, ImageIndex, ImageIndexBuilder,
    ImageManifest, MediaType, OciLayoutBuilder,
};

use super::oci::{Image, canonical_json, sha256_digest};

/// The layout version this writer produces and the reader accepts.
pub const LAYOUT_VERSION: &str = "1.0.0";

/// Writes `image` as an OCI image layout at `dir`, tagged `ref_name`. The layout is built in a
/// sibling temporary directory and renamed into place, so `dir` never holds a half-written image;
/// a previous layout at `dir` is replaced.
pub fn write(dir: &Path, image: &Image, ref_name: &str) -> Result<()> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dir
        .file_name()
        .with_context(|| format!("{} has no directory name", dir.display()))?
        .to_string_lossy()
        .into_owned();
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let written = write_into(&tmp, image, ref_name);
    if let Err(err) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(err.context(format!("writing the image layout in {}", tmp.display())));
    }
    // Two renames: the old layout steps aside, the new one takes its place. A reader sees the
    // old layout, the new one, or (for an instant) none; never a mix.
    if dir.exists() {
        std::fs::rename(dir, &old)
            .with_context(|| format!("moving the previous {} aside", dir.display()))?;
    }
    std::fs::rename(&tmp, dir)
        .with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    Ok(())
}

fn write_into(dir: &Path, image: &Image, ref_name: &str) -> Result<()> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    for blob in image.blobs() {
        let hex = blob.digest.trim_start_matches("sha256:");
        std::fs::write(blobs.join(hex), &blob.bytes)?;
    }
    let layout = OciLayoutBuilder::default()
        .image_layout_version(LAYOUT_VERSION)
        .build()?;
    std::fs::write(dir.join("oci-layout"), canonical_json(&layout)?)?;
    std::fs::write(dir.join("index.json"), index_json(image, ref_name)?)?;
    Ok(())
}

/// The layout's `index.json`: the image index, tagged `ref_name`.
pub fn index_json(image: &Image, ref_name: &str) -> Result<Vec<u8>> {
    let entry = DescriptorBuilder::default()
        .media_type(MediaType::ImageIndex)
        .size(image.index.size())
        .digest(image.index.oci_digest())
        .annotations([(ANNOTATION_REF_NAME.to_owned(), ref_name.to_owned())])
        .build()?;
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![entry])
        .build()?;
    canonical_json(&index)
}

/// An OCI image layout opened for reading.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
    /// The layout's `index.json`.
    pub index: ImageIndex,
}

/// One platform's image as found in a layout.
#[derive(Debug, Clone)]
pub struct PlatformEntry {
    /// The descriptor in the image index, with its `platform`.
    pub descriptor: Descriptor,
    pub manifest: ImageManifest,
}

impl Layout {
    /// Opens the layout at `dir`, checking `oci-layout` and parsing `index.json`.
    pub fn open(dir: &Path) -> Result<Layout> {
        let marker = dir.join("oci-layout");
        let layout: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&marker).with_context(|| format!("reading {}", marker.display()))?,
        )
        .with_context(|| format!("parsing {}", marker.display()))?;
        let version = &layout["imageLayoutVersion"];
        ensure!(
            version == LAYOUT_VERSION,
            "{}: imageLayoutVersion is {version}, expected \"{LAYOUT_VERSION}\"",
            marker.display()
        );
        let index_path = dir.join("index.json");
        let index = ImageIndex::from_file(&index_path)
            .with_context(|| format!("reading {}", index_path.display()))?;
        Ok(Layout {
            dir: dir.to_path_buf(),
            index,
        })
    }

    /// Where the blob with this digest lives.
    pub fn blob_path(&self, descriptor: &Descriptor) -> Result<PathBuf> {
        let hex = descriptor.as_digest_sha256().with_context(|| {
            format!("{}: only sha256 digests are supported", descriptor.digest())
        })?;
        Ok(self.dir.join("blobs/sha256").join(hex))
    }

    /// Reads the blob `descriptor` points to, refusing it unless its size and sha256 match.
    pub fn read_blob(&self, descriptor: &Descriptor) -> Result<Vec<u8>> {
        let path = self.blob_path(descriptor)?;
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        ensure!(
            bytes.len() as u64 == descriptor.size(),
            "{}: {} bytes, but the descriptor says {}",
            path.display(),
            bytes.len(),
            descriptor.size()
        );
        let actual = sha256_digest(&bytes);
        ensure!(
            actual == descriptor.digest().to_string(),
            "{}: content digest is {actual}, expected {}",
            path.display(),
            descriptor.digest()
        );
        Ok(bytes)
    }

    /// The `index.json` entry tagged `ref_name`, or the only entry when `ref_name` is `None`.
    pub fn entry(&self, ref_name: Option<&str>) -> Result<&Descriptor> {
        let manifests = self.index.manifests();
        match ref_name {
            Some(wanted) => manifests
                .iter()
                .find(|d| ref_name_of(d) == Some(wanted))
                .with_context(|| {
                    let tags: Vec<_> = manifests.iter().filter_map(ref_name_of).collect();
                    format!(
                        "{}/index.json has no image tagged `{wanted}` (tags: {})",
                        self.dir.display(),
                        tags.join(", ")
                    )
                }),
            None => match manifests.as_slice() {
                [only] => Ok(only),
                other => bail!(
                    "{}/index.json lists {} images: name one by its tag",
                    self.dir.display(),
                    other.len()
                ),
            },
        }
    }

    /// The image index an `index.json` entry points to.
    pub fn image_index(&self, entry: &Descriptor) -> Result<ImageIndex> {
        ensure!(
            *entry.media_type() == MediaType::ImageIndex,
            "{}: expected an image index, found {}",
            entry.digest(),
            entry.media_type()
        );
        let bytes = self.read_blob(entry)?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing image index {}", entry.digest()))
    }

    /// Each platform's manifest under an image index.
    pub fn platforms(&self, index: &ImageIndex) -> Result<Vec<PlatformEntry>> {
        index
            .manifests()
            .iter()
            .map(|descriptor| {
                let bytes = self.read_blob(descriptor)?;
                let manifest = serde_json::from_slice(&bytes)
                    .with_context(|| format!("parsing manifest {}", descriptor.digest()))?;
                Ok(PlatformEntry {
                    descriptor: descriptor.clone(),
                    manifest,
                })
            })
            .collect()
    }

    /// Checks everything `index.json` reaches (indexes, manifests, configs, layers): each blob
    /// exists, has the size its descriptor says and hashes to its name. Returns the blob count.
    pub fn verify(&self) -> Result<usize> {
        let mut count = 0;
        for entry in self.index.manifests() {
            let index = self.image_index(entry)?;
            count += 1;
            for platform in self.platforms(&index)? {
                count += 1;
                self.read_blob(platform.manifest.config())?;
                count += 1;
                for layer in platform.manifest.layers() {
                    self.read_blob(layer)?;
                    count += 1;
                }
            }
        }
        Ok(count)
    }
}

fn ref_name_of(descriptor: &Descriptor) -> Option<&str> {
    descriptor
        .annotations()
        .as_ref()?
        .get(ANNOTATION_REF_NAME)
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::super::oci::{Metadata, Platform, assemble};
    use super::*;

    fn image() -> Image {
        let metadata = Metadata {
            title: "t".into(),
            description: "d".into(),
            source: "s".into(),
            url: "u".into(),
            licenses: "MIT".into(),
            version: "0.1.0".into(),
            revision: "r".into(),
            created: 0,
        };
        assemble(
            &metadata,
            &[
                (Platform::Amd64, b"a".to_vec()),
                (Platform::Arm64, b"b".to_vec()),
            ],
        )
        .unwrap()
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-layout-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn written_layout_reads_back_and_verifies() {
        let root = scratch("roundtrip");
        let dir = root.join("oci/visit-tracker");
        let image = image();
        write(&dir, &image, "0.1.0").unwrap();
        // Written twice: the second replaces the first and leaves no temporary directory behind.
        write(&dir, &image, "0.1.0").unwrap();
        let names: Vec<_> = std::fs::read_dir(root.join("oci"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("visit-tracker")]);

        let layout = Layout::open(&dir).unwrap();
        assert_eq!(layout.verify().unwrap(), 7);
        let entry = layout.entry(Some("0.1.0")).unwrap();
        assert_eq!(entry.digest().to_string(), image.index.digest);
        assert_eq!(layout.entry(None).unwrap(), entry);
        let err = layout.entry(Some("latest")).unwrap_err().to_string();
        assert!(
            err.contains("no image tagged `latest` (tags: 0.1.0)"),
            "{err}"
        );
        let platforms = layout
            .platforms(&layout.image_index(entry).unwrap())
            .unwrap();
        assert_eq!(platforms.len(), 2);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_tampered_blob_is_refused_with_its_path() {
        let root = scratch("tampered");
        let image = image();
        write(&root, &image, "0.1.0").unwrap();
        let layer = &image.platforms[0].layer;
        let path = root
            .join("blobs/sha256")
            .join(layer.digest.trim_start_matches("sha256:"));
        let mut bytes = layer.bytes.clone();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = Layout::open(&root)
            .unwrap()
            .verify()
            .unwrap_err()
            .to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("content digest is"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
