//! `cargo xtask sign`, `attest` and `verify` against a real registry (Debian's docker-registry),
//! checked by verifiers we did not write: the real cosign (both ways: it verifies ours, we verify
//! its), skopeo fetching the signature attachments, securesystemslib verifying the envelopes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock};

use testkit::describe;
use testkit::registry::{Registry, write_test_layout};

const OURS_PASSWORD: &str = "ours: a passphrase with spaces";
const THEIRS_PASSWORD: &str = "theirs-pw";
const SLSA: &str = "https://slsa.dev/provenance/v1";
const CYCLONEDX: &str = "https://cyclonedx.org/bom";

/// Runs the task binary with a clean credential environment and `COSIGN_PASSWORD` as given.
fn xtask(args: &[&str], password: Option<&str>, home: &Path) -> Output {
    let root = testkit::workspace_root();
    let mut cmd = testkit::task(env!("CARGO_BIN_EXE_xtask"), &root, &home.join(".docker"));
    cmd.args(args).env("HOME", home);
    if let Some(p) = password {
        cmd.env("COSIGN_PASSWORD", p);
    }
    cmd.output().unwrap()
}

/// The real cosign (Debian trixie's 2.5.0), which `cargo xtask setup test` unpacked.
fn cosign_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let sh = xshell::Shell::new().unwrap();
        sh.change_dir(testkit::workspace_root());
        xtask::tools::need(&sh, &xtask::sign::cosign::COSIGN).unwrap()
    })
}

/// Runs cosign against the loopback registry: plain HTTP allowed, no transparency log (a key
/// signature needs none, and there is no network).
fn cosign(args: &[&str], password: Option<&str>, home: &Path) -> Output {
    let mut cmd = Command::new(cosign_bin());
    cmd.args(args)
        .env("HOME", home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env_remove("COSIGN_PASSWORD")
        .stdin(Stdio::null());
    if let Some(p) = password {
        cmd.env("COSIGN_PASSWORD", p);
    }
    cmd.output().unwrap()
}

fn cosign_verify(reference: &str, public_key: &Path, home: &Path) -> Output {
    let key = public_key.to_str().unwrap();
    cosign(
        &[
            "verify",
            "--key",
            key,
            "--insecure-ignore-tlog=true",
            "--allow-http-registry=true",
            reference,
        ],
        None,
        home,
    )
}

fn cosign_sign(reference: &str, private_key: &Path, password: &str, home: &Path) -> Output {
    let key = private_key.to_str().unwrap();
    cosign(
        &[
            "sign",
            "--key",
            key,
            "--tlog-upload=false",
            "--allow-http-registry=true",
            "--yes",
            reference,
        ],
        Some(password),
        home,
    )
}

fn ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what}: {}", describe(out));
}

fn refused(out: &Output, what: &str, expected: &str) {
    assert!(
        !out.status.success(),
        "{what} should fail: {}",
        describe(out)
    );
    assert!(
        describe(out).contains(expected),
        "{what}: expected {expected:?}; {}",
        describe(out)
    );
}

/// `skopeo inspect --raw`: a manifest's exact bytes, read by a tool we did not write.
fn raw(reference: &str) -> Vec<u8> {
    let out = testkit::skopeo_raw(reference);
    ok(&out, &format!("skopeo inspect {reference}"));
    out.stdout
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", xtask::tools::hex_digest(bytes))
}

fn tags(repo: &str) -> BTreeSet<String> {
    let out = Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{repo}"))
        .output()
        .unwrap();
    ok(&out, "skopeo list-tags");
    json(&out.stdout)["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

fn sig_tag(digest: &str) -> String {
    format!("{}.sig", digest.replace(':', "-"))
}

/// A registry with a small two-platform image pushed as `team/app:1.2.3` and a chart
/// `charts/visit-tracker:0.4.2`, both through `cargo xtask ... push`.
struct Published {
    tmp: tempfile::TempDir,
    registry: Registry,
    image: String,
    index: String,
    platforms: Vec<String>,
    chart: String,
    chart_digest: String,
}

fn publish() -> Published {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start().unwrap();
    let image = format!("{}/team/app", registry.addr());
    let layout = tmp.path().join("layout");
    let index = write_test_layout(&layout, 2000, 7).unwrap();
    let out = xtask(
        &[
            "image",
            "push",
            "--image",
            &image,
            "--layout",
            layout.to_str().unwrap(),
            "--tag",
            "1.2.3",
        ],
        None,
        tmp.path(),
    );
    ok(&out, "image push");
    let platforms = json(&raw(&format!("{image}:1.2.3")))["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_owned())
        .collect();

    let package = tmp.path().join("visit-tracker-0.4.2.tgz");
    write_chart(&package);
    let out = xtask(
        &[
            "chart",
            "push",
            "--repo",
            &format!("oci://{}/charts", registry.addr()),
            "--package",
            package.to_str().unwrap(),
        ],
        None,
        tmp.path(),
    );
    ok(&out, "chart push");
    let chart = format!("{}/charts/visit-tracker", registry.addr());
    let chart_digest = sha256(&raw(&format!("{chart}:0.4.2")));
    Published {
        tmp,
        registry,
        image,
        index,
        platforms,
        chart,
        chart_digest,
    }
}

/// A minimal chart package: what `chart push` needs is `<name>/Chart.yaml`.
fn write_chart(path: &Path) {
    let chart_yaml = b"apiVersion: v2\nname: visit-tracker\nversion: 0.4.2\nappVersion: 0.4.2\n";
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(chart_yaml.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "visit-tracker/Chart.yaml", &chart_yaml[..])
        .unwrap();
    std::fs::write(path, tar.into_inner().unwrap().finish().unwrap()).unwrap();
}

/// Our key pair (from `sign --generate-key`) and one from `cosign generate-key-pair`.
struct Keys {
    ours_key: PathBuf,
    ours_pub: PathBuf,
    theirs_key: PathBuf,
    theirs_pub: PathBuf,
}

fn keys(dir: &Path) -> Keys {
    let prefix = dir.join("ours");
    let out = xtask(
        &[
            "sign",
            "--generate-key",
            "--output",
            prefix.to_str().unwrap(),
        ],
        Some(OURS_PASSWORD),
        dir,
    );
    ok(&out, "sign --generate-key");
    let theirs = dir.join("theirs");
    let out = cosign(
        &[
            "generate-key-pair",
            "--output-key-prefix",
            theirs.to_str().unwrap(),
        ],
        Some(THEIRS_PASSWORD),
        dir,
    );
    ok(&out, "cosign generate-key-pair");
    Keys {
        ours_key: dir.join("ours.key"),
        ours_pub: dir.join("ours.pub"),
        theirs_key: dir.join("theirs.key"),
        theirs_pub: dir.join("theirs.pub"),
    }
}

#[test]
fn cosign_and_we_verify_each_others_signatures_of_an_image_and_a_chart() {
    let p = publish();
    let home = p.tmp.path();
    let k = keys(home);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&k.ours_key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the private key is private");
    let image_ref = format!("{}:1.2.3", p.image);
    let chart_ref = format!("{}:0.4.2", p.chart);
    let (ours_key, ours_pub) = (k.ours_key.to_str().unwrap(), k.ours_pub.to_str().unwrap());
    let (theirs_key, theirs_pub) = (
        k.theirs_key.to_str().unwrap(),
        k.theirs_pub.to_str().unwrap(),
    );

    // We sign the image index and the chart; the real cosign accepts both with our key only.
    let out = xtask(
        &["sign", &image_ref, &chart_ref, "--key", ours_key],
        Some(OURS_PASSWORD),
        home,
    );
    ok(&out, "sign");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "{}:{}\n{}:{}\n",
            p.image,
            sig_tag(&p.index),
            p.chart,
            sig_tag(&p.chart_digest)
        )
    );
    for (reference, digest) in [(&image_ref, &p.index), (&chart_ref, &p.chart_digest)] {
        let out = cosign_verify(reference, &k.ours_pub, home);
        ok(&out, &format!("cosign verify {reference}"));
        let payloads = json(&out.stdout);
        assert_eq!(
            payloads[0]["critical"]["image"]["docker-manifest-digest"],
            digest.as_str(),
            "{}",
            describe(&out)
        );
        assert_eq!(
            payloads[0]["critical"]["identity"]["docker-reference"],
            reference.as_str()
        );
    }
    let out = cosign_verify(&image_ref, &k.theirs_pub, home);
    refused(
        &out,
        "cosign verify with another key",
        "no matching signatures",
    );
    let out = xtask(&["verify", &image_ref, "--key", ours_pub], None, home);
    ok(&out, "verify");
    let out = xtask(&["verify", &image_ref, "--key", theirs_pub], None, home);
    refused(
        &out,
        "verify with another key",
        "wrong key: 1 signature(s) stored",
    );

    // Signing again changes nothing: the same payload is already signed with this key.
    let sig_manifest = format!("{}:{}", p.image, sig_tag(&p.index));
    let before = raw(&sig_manifest);
    let out = xtask(
        &["sign", &image_ref, "--key", ours_key],
        Some(OURS_PASSWORD),
        home,
    );
    ok(&out, "sign again");
    assert!(describe(&out).contains("already signed with this key"));
    assert_eq!(raw(&sig_manifest), before);

    // cosign signs the same image with its own key: it appends to our signature manifest, our
    // verify accepts its signature, and cosign still accepts ours.
    let out = cosign_sign(&image_ref, &k.theirs_key, THEIRS_PASSWORD, home);
    ok(&out, "cosign sign");
    assert_eq!(
        json(&raw(&sig_manifest))["layers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let out = xtask(&["verify", &image_ref, "--key", theirs_pub], None, home);
    ok(&out, "verify cosign's signature");
    assert!(
        describe(&out).contains("1 of 2 signature(s)"),
        "{}",
        describe(&out)
    );
    ok(
        &cosign_verify(&image_ref, &k.ours_pub, home),
        "cosign verify ours after its own",
    );

    // A key from `cosign generate-key-pair` signs with our task (its only signature on the chart).
    let out = xtask(
        &["sign", &chart_ref, "--key", theirs_key],
        Some(THEIRS_PASSWORD),
        home,
    );
    ok(&out, "sign with cosign's key");
    ok(
        &cosign_verify(&chart_ref, &k.theirs_pub, home),
        "cosign verify, cosign's key, our signature",
    );

    // Our key signs with cosign (a platform manifest no one signed yet), and we verify that.
    let platform = format!("{}@{}", p.image, p.platforms[0]);
    ok(
        &cosign_sign(&platform, &k.ours_key, OURS_PASSWORD, home),
        "cosign sign with our key",
    );
    let out = xtask(&["verify", &platform, "--key", ours_pub], None, home);
    ok(&out, "verify cosign's signature made with our key");

    // skopeo (containers/image) finds the attachment by its tag and copies every signature.
    let registries_d = home.join("registries.d");
    std::fs::create_dir_all(&registries_d).unwrap();
    std::fs::write(
        registries_d.join("default.yaml"),
        "default-docker:\n  use-sigstore-attachments: true\n",
    )
    .unwrap();
    let copied = home.join("copied");
    let out = Command::new("skopeo")
        .arg("--registries.d")
        .arg(&registries_d)
        .args([
            "copy",
            "--all",
            "--src-tls-verify=false",
            "--preserve-digests",
        ])
        .arg(format!("docker://{image_ref}"))
        .arg(format!("dir:{}", copied.display()))
        .output()
        .unwrap();
    ok(&out, "skopeo copy with sigstore attachments");
    let signatures = skopeo_signatures(&copied);
    assert_eq!(signatures.len(), 2, "ours and cosign's");
    let ours = xtask::sign::simple::payload(&image_ref, &p.index.parse().unwrap());
    assert!(
        signatures
            .iter()
            .any(|(payload, sig)| *payload == ours && !sig.is_empty()),
        "our payload and signature annotation, as skopeo read them"
    );

    // The tag moves to other bytes: our push refuses to do it, someone else's tool does it; then
    // cosign refuses, and we say the tag was moved.
    let other = home.join("other");
    let moved = write_test_layout(&other, 2000, 8).unwrap();
    let out = xtask(
        &[
            "image",
            "push",
            "--image",
            &p.image,
            "--layout",
            other.to_str().unwrap(),
            "--tag",
            "1.2.3",
        ],
        None,
        home,
    );
    refused(
        &out,
        "image push of other bytes under the signed version",
        "1.2.3 is a published version",
    );
    let skopeo = testkit::require_program("skopeo");
    let out = Command::new(skopeo)
        .args(["copy", "--quiet", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}", other.display()))
        .arg(format!("docker://{image_ref}"))
        .output()
        .unwrap();
    ok(&out, "skopeo copy of other bytes under the signed tag");
    let out = cosign_verify(&image_ref, &k.ours_pub, home);
    refused(
        &out,
        "cosign verify after the tag moved",
        "no signatures found",
    );
    let out = xtask(&["verify", &image_ref, "--key", ours_pub], None, home);
    refused(
        &out,
        "verify after the tag moved",
        &format!(
            "the tag 1.2.3 was moved to other bytes (it names {moved} now, the key signed {})",
            p.index
        ),
    );
    drop(p.registry);
}

/// The signatures skopeo stored beside a `dir:` copy: `(payload, base64 signature)` of each
/// `signature-N` file (`\0sigstore-json\n` then JSON, containers/image's format).
fn skopeo_signatures(dir: &Path) -> Vec<(Vec<u8>, String)> {
    use base64::Engine;
    let mut out = Vec::new();
    for n in 1.. {
        let Ok(bytes) = std::fs::read(dir.join(format!("signature-{n}"))) else {
            break;
        };
        let body = bytes
            .strip_prefix(b"\0sigstore-json\n")
            .expect("a sigstore signature");
        let j = json(body);
        assert_eq!(j["mimeType"], xtask::sign::simple::MEDIA_TYPE);
        let payload = base64::engine::general_purpose::STANDARD
            .decode(j["payload"].as_str().unwrap())
            .unwrap();
        let sig = j["annotations"][xtask::sign::simple::SIGNATURE_ANNOTATION]
            .as_str()
            .unwrap()
            .to_owned();
        out.push((payload, sig));
    }
    out
}

/// An in-toto statement about `digests`.
fn statement(dir: &Path, name: &str, predicate_type: &str, digests: &[&str]) -> PathBuf {
    let subjects: Vec<_> = digests
        .iter()
        .map(|d| serde_json::json!({"name": "app", "digest": {"sha256": d.strip_prefix("sha256:").unwrap()}}))
        .collect();
    let s = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": subjects,
        "predicateType": predicate_type,
        "predicate": {"note": name},
    });
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&s).unwrap()).unwrap();
    path
}

#[test]
fn attestations_are_referrers_that_cosign_and_securesystemslib_accept() {
    let p = publish();
    let home = p.tmp.path();
    let k = keys(home);
    let (ours_key, ours_pub) = (k.ours_key.to_str().unwrap(), k.ours_pub.to_str().unwrap());
    let image_ref = format!("{}:1.2.3", p.image);
    let amd64 = &p.platforms[0];
    let amd64_ref = format!("{}@{amd64}", p.image);

    let provenance = statement(home, "provenance", SLSA, &[&p.index]);
    let sbom = statement(home, "sbom", CYCLONEDX, &[amd64]);
    let out = xtask(
        &[
            "attach",
            &image_ref,
            "--key",
            ours_key,
            "--statement",
            provenance.to_str().unwrap(),
        ],
        Some(OURS_PASSWORD),
        home,
    );
    ok(&out, "attest the index");
    assert!(
        describe(&out).contains(&format!("referrers tag {}", p.index.replace(':', "-"))),
        "docker-registry 2.8 has no referrers API: {}",
        describe(&out)
    );
    let out = xtask(
        &[
            "attach",
            &amd64_ref,
            "--key",
            ours_key,
            "--statement",
            sbom.to_str().unwrap(),
        ],
        Some(OURS_PASSWORD),
        home,
    );
    ok(&out, "attest a platform manifest");
    // A statement about another manifest is refused before anything is pushed.
    let before = tags(&p.image);
    let out = xtask(
        &[
            "attach",
            &image_ref,
            "--key",
            ours_key,
            "--statement",
            sbom.to_str().unwrap(),
        ],
        Some(OURS_PASSWORD),
        home,
    );
    refused(
        &out,
        "attest a statement about another manifest",
        &format!("is about {amd64}, not {}", p.index),
    );
    assert_eq!(tags(&p.image), before);

    // Read back with skopeo: the referrers tag lists an in-toto artifact whose subject is the
    // index; the envelope comes straight from the registry's storage.
    let mut envelopes = Vec::new();
    for (subject, predicate_type) in [(&p.index, SLSA), (amd64, CYCLONEDX)] {
        let listing = json(&raw(&format!("{}:{}", p.image, subject.replace(':', "-"))));
        let entries = listing["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{listing}");
        assert_eq!(entries[0]["artifactType"], "application/vnd.in-toto+json");
        assert_eq!(
            entries[0]["annotations"]["in-toto.io/predicate-type"],
            predicate_type
        );
        let artifact = raw(&format!(
            "{}@{}",
            p.image,
            entries[0]["digest"].as_str().unwrap()
        ));
        assert_eq!(sha256(&artifact), entries[0]["digest"].as_str().unwrap());
        let artifact = json(&artifact);
        assert_eq!(artifact["subject"]["digest"], subject.as_str());
        assert_eq!(
            artifact["config"]["mediaType"],
            "application/vnd.oci.empty.v1+json"
        );
        let layer = &artifact["layers"][0];
        assert_eq!(layer["mediaType"], "application/vnd.dsse.envelope.v1+json");
        let blob = stored_blob(&p.registry, layer["digest"].as_str().unwrap());
        let path = home.join(format!("envelope-{}.json", envelopes.len()));
        std::fs::write(&path, blob).unwrap();
        envelopes.push(path);
    }

    // securesystemslib verifies both envelopes with our public key (finding it by its own key
    // id), and refuses them with cosign's.
    let sh = xshell::Shell::new().unwrap();
    sh.change_dir(testkit::workspace_root());
    let python = xtask::tools::need(&sh, &xtask::tools::VENV_PYTHON).unwrap();
    let script = testkit::workspace_root().join("xtask/tests/fixtures/sign/verify_dsse.py");
    let run = |public: &Path| {
        Command::new(&python)
            .arg(&script)
            .arg(public)
            .args(&envelopes)
            .output()
            .unwrap()
    };
    let out = run(&k.ours_pub);
    ok(&out, "securesystemslib verifies our envelopes");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["predicateType"], SLSA);
    assert_eq!(
        lines[0]["subjects"][0],
        p.index.strip_prefix("sha256:").unwrap()
    );
    assert_eq!(lines[1]["predicateType"], CYCLONEDX);
    refused(
        &run(&k.theirs_pub),
        "securesystemslib with another key",
        "VerificationError",
    );

    // cosign reads the same envelopes from its `.att` form.
    for (reference, predicate_type) in [(&image_ref, SLSA), (&amd64_ref, CYCLONEDX)] {
        let out = cosign(
            &[
                "verify-attestation",
                "--key",
                ours_pub,
                "--type",
                predicate_type,
                "--insecure-ignore-tlog=true",
                "--allow-http-registry=true",
                reference,
            ],
            None,
            home,
        );
        ok(&out, &format!("cosign verify-attestation {reference}"));
    }
    let out = cosign(
        &[
            "verify-attestation",
            "--key",
            k.theirs_pub.to_str().unwrap(),
            "--type",
            SLSA,
            "--insecure-ignore-tlog=true",
            "--allow-http-registry=true",
            &image_ref,
        ],
        None,
        home,
    );
    refused(
        &out,
        "cosign verify-attestation with another key",
        "no matching attestations",
    );

    // Our verify: the signature and both attestations. The SBOM is checked against the binary
    // in the layer, which this test layout (random bytes) does not have: that check alone fails.
    ok(
        &xtask(
            &["sign", &image_ref, "--key", ours_key],
            Some(OURS_PASSWORD),
            home,
        ),
        "sign",
    );
    let out = xtask(&["verify", &image_ref, "--key", ours_pub], None, home);
    refused(
        &out,
        "verify of an SBOM without the binary",
        "1 of 4 checks):\n  - sbom linux/amd64: linux/amd64: reading /usr/local/bin/visit-tracker \
         from the layer",
    );
    let said = describe(&out);
    assert!(
        said.contains(&format!("ok    attestation {SLSA}")),
        "{said}"
    );
    assert!(
        said.contains(&format!("ok    attestation {CYCLONEDX}")),
        "{said}"
    );

    // An attestation listed for the arm64 manifest but about amd64, and one signed with another
    // key: pushed by hand (attest refuses the first), named by verify.
    plant_bad_attestations(&p, &k);
    let out = xtask(&["verify", &image_ref, "--key", ours_pub], None, home);
    let arm64 = &p.platforms[1];
    refused(
        &out,
        "verify with a mismatched attestation",
        "attestation subject mismatch: ",
    );
    let said = describe(&out);
    assert!(
        said.contains(&format!(
            "is listed for {arm64} but is about statement subjects {amd64}"
        )),
        "{said}"
    );
    assert!(
        said.contains("none of its 1 signature(s) verifies with the key"),
        "{said}"
    );
    assert!(said.contains("3 of 6 checks"), "{said}");
}

/// A blob as the registry stored it on disk.
fn stored_blob(registry: &Registry, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let path = registry
        .storage()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Pushes, with the library, two attestations to the arm64 manifest that verify must refuse:
/// one about the amd64 manifest, one signed with cosign's key.
fn plant_bad_attestations(p: &Published, k: &Keys) {
    use xtask::registry::name::Reference;
    use xtask::registry::{PushSet, RegistryArgs, Repo};
    use xtask::sign::{dsse, keys, referrers};
    let repo = Repo::open(&RegistryArgs::default(), &p.image.parse().unwrap()).unwrap();
    let arm64 = repo
        .block_on(repo.manifest(
            &Reference::Digest(p.platforms[1].parse().unwrap()),
            &xtask::registry::progress::Quiet,
        ))
        .unwrap()
        .unwrap();
    let about_amd64 =
        std::fs::read(statement(p.tmp.path(), "x", CYCLONEDX, &[&p.platforms[0]])).unwrap();
    let about_arm64 =
        std::fs::read(statement(p.tmp.path(), "y", CYCLONEDX, &[&p.platforms[1]])).unwrap();
    let ours = keys::decrypt_private_key(
        &std::fs::read_to_string(&k.ours_key).unwrap(),
        OURS_PASSWORD.as_bytes(),
    )
    .unwrap();
    let theirs = keys::decrypt_private_key(
        &std::fs::read_to_string(&k.theirs_key).unwrap(),
        THEIRS_PASSWORD.as_bytes(),
    )
    .unwrap();
    let mut set = PushSet {
        blobs: vec![referrers::empty_config()],
        ..PushSet::default()
    };
    for (key, statement) in [(&ours, &about_amd64), (&theirs, &about_arm64)] {
        let envelope = dsse::sign(key, statement).unwrap();
        let blob = xtask::registry::Blob::from_bytes(serde_json::to_vec(&envelope).unwrap(), None);
        set.manifests
            .push(referrers::artifact(referrers::descriptor_of(&arm64), &blob, CYCLONEDX).unwrap());
        set.blobs.push(blob);
    }
    let progress = Arc::new(Silent);
    xtask::registry::push(&repo, &set, progress.clone()).unwrap();
    let tag = referrers::referrers_tag(&arm64.digest);
    let entries: Vec<_> = set
        .manifests
        .iter()
        .map(|m| referrers::index_entry(m).unwrap())
        .collect();
    let index = referrers::add_to_index(None, &entries).unwrap().unwrap();
    let index = PushSet {
        blobs: Vec::new(),
        manifests: vec![index],
        tags: vec![tag],
    };
    xtask::registry::push(&repo, &index, progress).unwrap();
}

struct Silent;

impl xtask::registry::Progress for Silent {
    fn report(&self, _: xtask::registry::Event<'_>) {}
}

#[test]
fn bad_input_fails_clearly_and_pushes_nothing() {
    let p = publish();
    let home = p.tmp.path();
    let image_ref = format!("{}:1.2.3", p.image);

    // Keys: no passphrase variable, no overwriting.
    let prefix = home.join("k");
    let prefix = prefix.to_str().unwrap();
    let out = xtask(&["sign", "--generate-key", "--output", prefix], None, home);
    refused(
        &out,
        "generate-key without COSIGN_PASSWORD",
        "COSIGN_PASSWORD is not set",
    );
    assert!(!home.join("k.key").exists());
    ok(
        &xtask(
            &["sign", "--generate-key", "--output", prefix],
            Some(""),
            home,
        ),
        "empty passphrase",
    );
    let key_text = std::fs::read(home.join("k.key")).unwrap();
    refused(
        &xtask(
            &["sign", "--generate-key", "--output", prefix],
            Some(""),
            home,
        ),
        "generate-key over an existing key",
        "k.key already exists: not overwriting a key",
    );
    assert_eq!(std::fs::read(home.join("k.key")).unwrap(), key_text);
    let key = home.join("k.key");
    let key = key.to_str().unwrap();
    let public = home.join("k.pub");
    let public = public.to_str().unwrap();

    let before = tags(&p.image);
    let missing = home.join("missing.key");
    let out = xtask(
        &["sign", &image_ref, "--key", missing.to_str().unwrap()],
        Some(""),
        home,
    );
    refused(
        &out,
        "sign with a missing key",
        &format!("reading the private key {}", missing.display()),
    );
    let out = xtask(&["sign", &image_ref, "--key", key], Some("not it"), home);
    refused(
        &out,
        "sign with a wrong passphrase",
        "wrong passphrase (COSIGN_PASSWORD)",
    );
    let out = xtask(&["sign", &image_ref, "--key", key], None, home);
    refused(
        &out,
        "sign without COSIGN_PASSWORD",
        "COSIGN_PASSWORD is not set",
    );
    // One reference that does not resolve stops the run before the good one is signed.
    let out = xtask(
        &[
            "sign",
            &image_ref,
            &format!("{}:9.9.9", p.image),
            "--key",
            key,
        ],
        Some(""),
        home,
    );
    refused(
        &out,
        "sign a missing tag",
        ":9.9.9: no such manifest in the registry",
    );
    assert_eq!(tags(&p.image), before, "nothing was pushed");

    // Verify: an unsigned image, and a private key where the public one belongs.
    let out = xtask(&["verify", &image_ref, "--key", public], None, home);
    refused(
        &out,
        "verify an unsigned image",
        &format!(
            "signature missing: nothing under {} for {}",
            sig_tag(&p.index),
            p.index
        ),
    );
    let out = xtask(&["verify", &image_ref, "--key", key], None, home);
    refused(
        &out,
        "verify with the private key",
        "is a private key: verifying takes the public key",
    );

    // An unreachable registry: a clear error after the retries, non-zero exit. (`verify` and
    // `attest` resolve the reference through the same read.)
    let nowhere = format!("127.0.0.1:{}/team/app:1.2.3", testkit::free_port());
    let out = xtask(&["sign", &nowhere, "--key", key], Some(""), home);
    refused(
        &out,
        "sign on an unreachable registry",
        "getting manifest 1.2.3: unreachable after 5 tries",
    );
    assert_eq!(tags(&p.image), before, "nothing was pushed");
}
