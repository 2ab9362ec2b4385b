//! CycloneDX 1.5 SBOM of one platform image: the crates its binary embeds (cargo auditable's
//! `.dep-v0` list) with purls and Cargo.lock's sha256 checksums, the binary with its sha256, and the
//! platform manifest as the subject (`metadata.component`). Pure: the same image and lockfile give
//! the same bytes, serial number included.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail, ensure};
use auditable_serde::{DependencyKind, Source, VersionInfo};
use serde_json::{Value, json};
use sha1_smol::Sha1;

use crate::image::oci::{BINARY_PATH, Platform, rfc3339};

/// The CycloneDX version written; release tooling and tests validate against this schema.
pub const SPEC_VERSION: &str = "1.5";
/// The media type of a CycloneDX JSON document.
pub const MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";

/// One platform of a built image, as the SBOM describes it.
#[derive(Debug, Clone)]
pub struct PlatformImage<'a> {
    /// The image's name without registry, e.g. `visit-tracker`.
    pub name: &'a str,
    pub platform: Platform,
    /// `sha256:<hex>` of the platform's image manifest: what the SBOM is about.
    pub manifest_digest: &'a str,
    /// The image's creation time (`SOURCE_DATE_EPOCH`), used as the SBOM's timestamp.
    pub created: u64,
    /// sha256 hex of the binary in the image.
    pub binary_sha256: &'a str,
    /// The dependency list the binary embeds.
    pub embedded: &'a VersionInfo,
}

/// What Cargo.lock and `cargo metadata` add about each crate, by `(name, version)`.
#[derive(Debug, Clone, Default)]
pub struct CrateFacts {
    /// Cargo.lock `checksum` (sha256 hex of the `.crate` file) of registry crates.
    pub checksums: BTreeMap<(String, String), String>,
    /// SPDX license expressions from the crates' manifests.
    pub licenses: BTreeMap<(String, String), String>,
    /// The source repository of the workspace (the app's `repository`).
    pub repository: Option<String>,
}

/// The image's package URL (purl-spec `oci` type: digest as version, `:` encoded).
pub fn image_purl(name: &str, manifest_digest: &str, platform: Platform) -> String {
    format!(
        "pkg:oci/{name}@{}?arch={}",
        manifest_digest.replace(':', "%3A"),
        platform.architecture()
    )
}

/// `pkg:cargo/<name>@<version>`.
pub fn crate_purl(name: &str, version: &str) -> String {
    format!("pkg:cargo/{name}@{version}")
}

/// A name-based UUID (RFC 9562 version 5, SHA-1, URL namespace) as a CycloneDX serial number:
/// the same name always gives the same serial, so the same image gives the same SBOM.
pub fn serial_number(name: &str) -> String {
    // RFC 9562 appendix: the URL namespace 6ba7b811-9dad-11d1-80b4-00c04fd430c8.
    const NAMESPACE_URL: [u8; 16] = [
        0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30,
        0xc8,
    ];
    let mut sha1 = Sha1::new();
    sha1.update(&NAMESPACE_URL);
    sha1.update(name.as_bytes());
    let mut b: [u8; 16] = sha1.digest().bytes()[..16]
        .try_into()
        .expect("SHA-1 is 20 bytes");
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The embedded packages as `(name, version, kind)`, checked: exactly one root, every dependency
/// index in range.
pub fn embedded_crates(info: &VersionInfo) -> Result<Vec<(String, String, DependencyKind)>> {
    let count = info.packages.len();
    let roots = info.packages.iter().filter(|p| p.root).count();
    ensure!(
        roots == 1,
        "the embedded dependency list has {roots} root packages, expected 1"
    );
    for p in &info.packages {
        if let Some(bad) = p.dependencies.iter().find(|&&i| i >= count) {
            bail!(
                "embedded package {} {} depends on index {bad} of {count}",
                p.name,
                p.version
            );
        }
    }
    Ok(info
        .packages
        .iter()
        .map(|p| (p.name.clone(), p.version.to_string(), p.kind))
        .collect())
}

/// The CycloneDX document for one platform image.
pub fn cyclonedx(image: &PlatformImage<'_>, facts: &CrateFacts) -> Result<Value> {
    embedded_crates(image.embedded)?;
    let packages = &image.embedded.packages;
    let image_ref = image_purl(image.name, image.manifest_digest, image.platform);
    let manifest_hex = image
        .manifest_digest
        .strip_prefix("sha256:")
        .with_context(|| format!("`{}` is not a sha256 digest", image.manifest_digest))?;

    // bom-refs: purls for registry crates; the workspace's own crates (the root is the binary)
    // are not published, so they get a plain `name@version` reference and no purl.
    let refs: Vec<String> = packages
        .iter()
        .map(|p| match p.source {
            Source::Local => format!("{}@{}", p.name, p.version),
            _ => crate_purl(&p.name, &p.version.to_string()),
        })
        .collect();
    let unique: BTreeSet<&String> = refs.iter().collect();
    ensure!(
        unique.len() == refs.len(),
        "the embedded dependency list names a crate version twice"
    );

    let mut components = Vec::new();
    let mut application = None;
    for (p, bom_ref) in packages.iter().zip(&refs) {
        let key = (p.name.clone(), p.version.to_string());
        let mut c = json!({
            "bom-ref": bom_ref,
            "name": p.name,
            "version": p.version.to_string(),
        });
        if let Some(license) = facts.licenses.get(&key) {
            c["licenses"] = json!([{ "expression": license }]);
        }
        if p.root {
            ensure!(
                p.source == Source::Local,
                "the binary's root package {} is not a workspace crate",
                p.name
            );
            c["type"] = json!("application");
            c["hashes"] = json!([{ "alg": "SHA-256", "content": image.binary_sha256 }]);
            c["evidence"] = json!({ "occurrences": [{ "location": format!("/{BINARY_PATH}") }] });
            if let Some(repo) = &facts.repository {
                c["externalReferences"] = json!([{ "type": "vcs", "url": repo }]);
            }
            application = Some(c);
            continue;
        }
        c["type"] = json!("library");
        // Build-time crates (proc macros, build-script dependencies) shaped the binary but are not
        // in it: CycloneDX's `excluded` scope.
        c["scope"] = json!(match p.kind {
            DependencyKind::Runtime => "required",
            DependencyKind::Build => "excluded",
        });
        match p.source {
            Source::Local => {}
            Source::CratesIo => {
                c["purl"] = json!(bom_ref);
                let checksum = facts.checksums.get(&key).with_context(|| {
                    format!(
                        "Cargo.lock has no checksum for {} {}, which the {} binary embeds: was \
                         the image built from this checkout's Cargo.lock?",
                        p.name, p.version, image.platform
                    )
                })?;
                c["hashes"] = json!([{ "alg": "SHA-256", "content": checksum }]);
            }
            ref other => bail!(
                "{} {} comes from `{}`: only crates.io and workspace crates are expected in the \
                 image (deny.toml allows no other source)",
                p.name,
                p.version,
                String::from(other.clone())
            ),
        }
        components.push(c);
    }
    let application = application.expect("embedded_crates checked there is a root");
    let application_ref = application["bom-ref"].clone();
    components.push(application);
    components.sort_by(|a, b| a["bom-ref"].as_str().cmp(&b["bom-ref"].as_str()));

    let mut dependencies: Vec<Value> = packages
        .iter()
        .zip(&refs)
        .map(|(p, bom_ref)| {
            let mut on: Vec<&str> = p.dependencies.iter().map(|&i| refs[i].as_str()).collect();
            on.sort_unstable();
            on.dedup();
            json!({ "ref": bom_ref, "dependsOn": on })
        })
        .collect();
    dependencies.push(json!({ "ref": image_ref, "dependsOn": [application_ref] }));
    dependencies.sort_by(|a, b| a["ref"].as_str().cmp(&b["ref"].as_str()));

    Ok(json!({
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": serial_number(&image_ref),
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(image.created),
            "tools": { "components": [
                { "type": "application", "name": "cargo-auditable", "version": crate::image::auditable::VERSION },
                { "type": "application", "name": "cargo xtask attest" },
            ]},
            "component": {
                "type": "container",
                "bom-ref": image_ref,
                "name": image.name,
                "version": image.manifest_digest,
                "purl": image_ref,
                "hashes": [{ "alg": "SHA-256", "content": manifest_hex }],
                "properties": [
                    { "name": "oci:platform", "value": image.platform.name() },
                ],
            },
        },
        "components": components,
        "dependencies": dependencies,
    }))
}

/// The `(name, version, purl)` of every crate an SBOM lists as a component, the application
/// included: what a verifier compares with the binary's embedded list.
pub fn listed_crates(bom: &Value) -> Result<BTreeSet<(String, String, Option<String>)>> {
    bom["components"]
        .as_array()
        .context("the SBOM has no `components`")?
        .iter()
        .map(|c| {
            Ok((
                c["name"]
                    .as_str()
                    .context("a component has no name")?
                    .to_owned(),
                c["version"]
                    .as_str()
                    .context("a component has no version")?
                    .to_owned(),
                c["purl"].as_str().map(str::to_owned),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedded() -> VersionInfo {
        // Through text: the format's source names deserialize from borrowed strings only.
        serde_json::from_str(&json!({
            "packages": [
                { "name": "visit-tracker", "version": "0.3.0", "source": "local", "dependencies": [1, 3], "root": true },
                { "name": "tokio", "version": "1.50.0", "source": "crates.io", "dependencies": [2] },
                { "name": "bytes", "version": "1.10.0", "source": "crates.io" },
                { "name": "tokio-macros", "version": "2.6.0", "source": "crates.io", "kind": "build" },
            ],
            "format": 1,
        })
        .to_string())
        .unwrap()
    }

    fn facts() -> CrateFacts {
        let key = |n: &str, v: &str| (n.to_owned(), v.to_owned());
        CrateFacts {
            checksums: BTreeMap::from([
                (key("tokio", "1.50.0"), "11".repeat(32)),
                (key("bytes", "1.10.0"), "22".repeat(32)),
                (key("tokio-macros", "2.6.0"), "33".repeat(32)),
                (key("unused", "9.9.9"), "44".repeat(32)),
            ]),
            licenses: BTreeMap::from([(key("tokio", "1.50.0"), "MIT".to_owned())]),
            repository: Some("https://github.com/acme/visit-tracker".into()),
        }
    }

    fn image(info: &VersionInfo) -> PlatformImage<'_> {
        PlatformImage {
            name: "visit-tracker",
            platform: Platform::Arm64,
            manifest_digest: "sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
            created: 1_700_000_000,
            binary_sha256: "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            embedded: info,
        }
    }

    #[test]
    fn serial_numbers_are_standard_uuid_v5() {
        // Python: uuid.uuid5(uuid.NAMESPACE_URL, "https://www.python.org/")
        assert_eq!(
            serial_number("https://www.python.org/"),
            "urn:uuid:5406f80d-92e9-51cd-a176-77445955e733"
        );
    }

    #[test]
    fn image_is_the_subject_with_its_manifest_digest_and_platform() {
        let info = embedded();
        let bom = cyclonedx(&image(&info), &facts()).unwrap();
        assert_eq!(bom["specVersion"], "1.5");
        let subject = &bom["metadata"]["component"];
        let purl = "pkg:oci/visit-tracker@sha256%3Aeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee?arch=arm64";
        assert_eq!(subject["type"], "container");
        assert_eq!(subject["purl"], purl);
        assert_eq!(subject["hashes"][0]["content"], "e".repeat(64));
        assert_eq!(bom["serialNumber"], serial_number(purl));
        assert_eq!(bom["metadata"]["timestamp"], "2023-11-14T22:13:20Z");
        let deps = bom["dependencies"].as_array().unwrap();
        let top = deps.iter().find(|d| d["ref"] == purl).unwrap();
        assert_eq!(top["dependsOn"], json!(["visit-tracker@0.3.0"]));
    }

    #[test]
    fn components_are_exactly_the_embedded_crates_with_lockfile_hashes() {
        let info = embedded();
        let bom = cyclonedx(&image(&info), &facts()).unwrap();
        let listed: BTreeSet<(String, String)> = listed_crates(&bom)
            .unwrap()
            .into_iter()
            .map(|(n, v, _)| (n, v))
            .collect();
        let expected: BTreeSet<(String, String)> = embedded_crates(&info)
            .unwrap()
            .into_iter()
            .map(|(n, v, _)| (n, v))
            .collect();
        assert_eq!(listed, expected, "`unused` from the lockfile stays out");
        let by_name = |name: &str| {
            bom["components"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .unwrap()
                .clone()
        };
        let tokio = by_name("tokio");
        assert_eq!(tokio["purl"], "pkg:cargo/tokio@1.50.0");
        assert_eq!(
            tokio["hashes"],
            json!([{ "alg": "SHA-256", "content": "11".repeat(32) }])
        );
        assert_eq!(tokio["scope"], "required");
        assert_eq!(tokio["licenses"][0]["expression"], "MIT");
        assert_eq!(by_name("tokio-macros")["scope"], "excluded");
        let app = by_name("visit-tracker");
        assert_eq!(app["type"], "application");
        assert!(app.get("purl").is_none(), "the app is not on crates.io");
        assert_eq!(app["hashes"][0]["content"], "f".repeat(64));
        assert_eq!(
            app["evidence"]["occurrences"][0]["location"],
            "/usr/local/bin/visit-tracker"
        );
        let app_deps = bom["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["ref"] == "visit-tracker@0.3.0")
            .unwrap();
        assert_eq!(
            app_deps["dependsOn"],
            json!(["pkg:cargo/tokio-macros@2.6.0", "pkg:cargo/tokio@1.50.0"])
        );
    }

    #[test]
    fn same_inputs_same_document() {
        let info = embedded();
        assert_eq!(
            cyclonedx(&image(&info), &facts()).unwrap(),
            cyclonedx(&image(&info), &facts()).unwrap()
        );
        let other = PlatformImage {
            manifest_digest: "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
            ..image(&info)
        };
        assert_ne!(
            cyclonedx(&image(&info), &facts()).unwrap()["serialNumber"],
            cyclonedx(&other, &facts()).unwrap()["serialNumber"]
        );
    }

    #[test]
    fn a_crate_missing_from_the_lockfile_is_an_error_naming_it() {
        let info = embedded();
        let mut f = facts();
        f.checksums.remove(&("bytes".into(), "1.10.0".into()));
        let err = cyclonedx(&image(&info), &f).unwrap_err().to_string();
        assert!(
            err.contains("no checksum for bytes 1.10.0, which the linux/arm64 binary embeds"),
            "{err}"
        );
    }

    #[test]
    fn embedded_lists_without_one_root_or_with_bad_indices_are_refused() {
        let mut info = embedded();
        info.packages[0].root = false;
        let err = cyclonedx(&image(&info), &facts()).unwrap_err().to_string();
        assert!(err.contains("0 root packages"), "{err}");
        let mut info = embedded();
        info.packages[1].dependencies = vec![7];
        let err = cyclonedx(&image(&info), &facts()).unwrap_err().to_string();
        assert!(err.contains("depends on index 7 of 4"), "{err}");
    }
}
