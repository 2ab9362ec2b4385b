//! `image build` for real: release cross-builds read back by skopeo and umoci, run by podman
//! (arm64 through qemu-user) against a real redis-server, and rebuilt from two clones to prove
//! the digest is reproducible. The release image is built once and shared by every test here.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use sha2::{Digest, Sha256};
use xshell::{Shell, cmd};
use xtask::image::build::{Build, Built};
use xtask::image::layout::Layout;
use xtask::image::oci::{BINARY_PATH, Platform};
use xtask::workspace::Workspace;

const MAX_COMPRESSED: u64 = 5 << 20;

/// The release image of this checkout, both platforms, built once per test binary.
fn image() -> &'static Built {
    static IMAGE: OnceLock<Built> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let sh = shell();
        let target = Workspace::load(&sh).unwrap().target_directory;
        build(
            &sh,
            Platform::ALL.to_vec(),
            target.join("oci/visit-tracker-test"),
        )
    })
}

fn shell() -> Shell {
    let sh = Shell::new().unwrap();
    sh.change_dir(testkit::workspace_root());
    sh
}

fn build(sh: &Shell, platform: Vec<Platform>, output: PathBuf) -> Built {
    Build {
        platform,
        output: Some(output),
        version: None,
        source_date_epoch: None,
        profile: "release".into(),
    }
    .build(sh, &Workspace::load(sh).unwrap())
    .expect("cargo xtask image build")
}

fn hex_sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Every `{"digest", "size"}` pair anywhere in a JSON document.
fn descriptors(value: &serde_json::Value, out: &mut Vec<(String, u64)>) {
    match value {
        serde_json::Value::Object(map) => {
            if let (Some(d), Some(s)) = (map.get("digest"), map.get("size")) {
                out.push((d.as_str().unwrap().to_owned(), s.as_u64().unwrap()));
            }
            map.values().for_each(|v| descriptors(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| descriptors(v, out)),
        _ => {}
    }
}

#[test]
fn every_blob_hashes_to_its_name_and_every_size_matches() {
    let built = image();
    let blobs = built.output.join("blobs/sha256");
    let mut referenced = Vec::new();
    let index_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(built.output.join("index.json")).unwrap()).unwrap();
    descriptors(&index_json, &mut referenced);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&blobs).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        assert_eq!(
            hex_sha256(&bytes),
            name,
            "{} does not hash to its name",
            path.display()
        );
        if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            descriptors(&json, &mut referenced);
        }
        names.push(name);
    }
    // 1 index + per platform: manifest, config, layer.
    assert_eq!(names.len(), 1 + 3 * Platform::ALL.len());
    for (digest, size) in &referenced {
        let path = blobs.join(digest.strip_prefix("sha256:").unwrap());
        let actual = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{digest} is referenced but {}: {e}", path.display()))
            .len();
        assert_eq!(actual, *size, "size of {digest}");
    }
    // Every blob is referenced by something (the index.json entry reaches them all).
    for name in &names {
        assert!(
            referenced.iter().any(|(d, _)| d.ends_with(name.as_str())),
            "{name} is unreferenced"
        );
    }
    assert_eq!(
        Layout::open(&built.output).unwrap().verify().unwrap(),
        names.len()
    );
}

#[test]
fn skopeo_reads_the_index_and_each_platform() {
    testkit::require_program("skopeo");
    let built = image();
    let sh = shell();
    let dir = &built.output;
    let raw = cmd!(sh, "skopeo inspect --raw oci:{dir}").read().unwrap();
    assert_eq!(
        raw.as_bytes(),
        built.image.index.bytes,
        "skopeo resolves oci:DIR to the image index"
    );
    let tagged = format!("oci:{}:{}", dir.display(), built.tag);
    for platform in Platform::ALL {
        let arch = platform.architecture();
        let config = cmd!(
            sh,
            "skopeo inspect --config --override-arch {arch} {tagged}"
        )
        .read()
        .unwrap();
        let config: serde_json::Value = serde_json::from_str(&config).unwrap();
        assert_eq!(config["architecture"], arch);
        assert_eq!(config["config"]["User"], "65532:65532");
        let labels = &config["config"]["Labels"];
        assert_eq!(labels["org.opencontainers.image.title"], "visit-tracker");
        let revision = cmd!(sh, "git rev-parse HEAD").read().unwrap();
        assert_eq!(
            labels["org.opencontainers.image.revision"],
            revision.as_str()
        );
    }
}

/// umoci reads the layout (gc keeps every blob: all are reachable), and unpacking each
/// platform gives a root file system holding the binary and its parent directories, nothing else.
#[test]
fn umoci_unpacks_exactly_the_binary_for_each_platform() {
    testkit::require_program("umoci");
    testkit::require_program("skopeo");
    let built = image();
    let sh = shell();
    let scratch = Scratch::new("umoci");
    let copy = scratch.0.join("layout");
    let layout = &built.output;
    cmd!(sh, "cp -r {layout} {copy}").run().unwrap();
    cmd!(sh, "umoci gc --layout {copy}").run().unwrap();
    assert_eq!(
        std::fs::read_dir(copy.join("blobs/sha256"))
            .unwrap()
            .count(),
        7
    );
    assert_eq!(
        cmd!(sh, "umoci ls --layout {copy}").read().unwrap(),
        built.tag
    );

    for (platform, binary) in &built.binaries {
        // umoci 0.4 cannot pick a platform out of an index: skopeo narrows it to one manifest.
        let arch = platform.architecture();
        let single = scratch.0.join(arch);
        let from = format!("oci:{}:{}", built.output.display(), built.tag);
        let to = format!("oci:{}:{arch}", single.display());
        cmd!(sh, "skopeo copy --quiet --override-arch {arch} {from} {to}")
            .run()
            .unwrap();
        let bundle = scratch.0.join(format!("{arch}-bundle"));
        let image = format!("{}:{arch}", single.display());
        cmd!(sh, "umoci unpack --rootless --image {image} {bundle}")
            .run()
            .unwrap();
        let rootfs = bundle.join("rootfs");
        let listed = cmd!(sh, "find {rootfs} -mindepth 1 -printf '%P %M\n'")
            .read()
            .unwrap();
        assert_eq!(
            listed.lines().collect::<Vec<_>>(),
            [
                "usr drwxr-xr-x",
                "usr/local drwxr-xr-x",
                "usr/local/bin drwxr-xr-x",
                "usr/local/bin/visit-tracker -rwxr-xr-x",
            ],
            "{platform}"
        );
        assert_eq!(
            std::fs::read(rootfs.join(BINARY_PATH)).unwrap(),
            std::fs::read(binary).unwrap(),
            "{platform}: unpacked binary differs from the build"
        );
    }
}

/// The layer tar read directly: root-owned entries, the binary a static executable of the
/// right architecture (no ELF interpreter, so no libc or loader needed), and small images.
#[test]
fn each_platform_is_one_static_binary_and_small() {
    let built = image();
    for p in &built.image.platforms {
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(p.layer.bytes.as_slice())
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(format!("sha256:{}", hex_sha256(&tar)), p.diff_id);
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut names = Vec::new();
        let mut elf = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header();
            assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
            assert_eq!(header.mode().unwrap(), 0o755);
            names.push(entry.path().unwrap().display().to_string());
            if entry.header().entry_type().is_file() {
                entry.read_to_end(&mut elf).unwrap();
            }
        }
        assert_eq!(names, ["usr/", "usr/local/", "usr/local/bin/", BINARY_PATH]);
        assert_eq!(&elf[..4], b"\x7fELF");
        let machine = u16::from_le_bytes([elf[18], elf[19]]);
        let expected = match p.platform {
            Platform::Amd64 => 0x3e,
            Platform::Arm64 => 0xb7,
        };
        assert_eq!(machine, expected, "{}: ELF machine", p.platform);
        assert!(
            !has_interpreter(&elf),
            "{}: binary is dynamically linked",
            p.platform
        );
        let size = p.compressed_size();
        println!(
            "{}: {size} bytes compressed ({:.2} MiB), binary {} bytes",
            p.platform,
            size as f64 / f64::from(1 << 20),
            elf.len()
        );
        assert!(
            size < MAX_COMPRESSED,
            "{}: {size} bytes is over 5 MiB",
            p.platform
        );
    }
}

/// Whether a 64-bit little-endian ELF has a PT_INTERP program header (a dynamic loader).
fn has_interpreter(elf: &[u8]) -> bool {
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap()) as usize;
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3
    })
}

#[test]
fn amd64_container_serves_as_non_root_on_a_read_only_root() {
    serves_requests(Platform::Amd64);
}

#[test]
fn arm64_container_serves_through_qemu() {
    serves_requests(Platform::Arm64);
}

fn serves_requests(platform: Platform) {
    testkit::require_program("podman");
    testkit::require_program("runc");
    let built = image();
    let sh = shell();
    let redis = testkit::redis::RedisServer::start();
    let arch = platform.architecture();
    let image = PodmanImage::load(&sh, built, platform);
    let port = testkit::free_port();
    let container = Container::run(
        &sh,
        &image.0,
        &[
            format!("LISTEN_ADDR=127.0.0.1:{port}"),
            "REDIS_HOST=127.0.0.1".into(),
            format!("REDIS_PORT={}", redis.port()),
        ],
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // arm64 runs under qemu-user: give it time to start on a busy machine.
    if let Err(err) = testkit::wait_for_port(addr, Duration::from_secs(120)) {
        panic!(
            "{platform}: {err}\ncontainer logs:\n{}",
            container.logs(&sh)
        );
    }

    let (status, _) = http(addr, "GET", "/healthz");
    assert_eq!(status, 200, "{platform}: GET /healthz");
    let first = visits(addr);
    let second = visits(addr);
    assert_eq!(
        second,
        first + 1,
        "{platform}: POST /api/visits counts one visit"
    );
    let stored = redis.cli(&["GET", "{visit-tracker}:total"]);
    assert_eq!(
        stored.trim(),
        second.to_string(),
        "{platform}: the total is stored in Redis"
    );
    let (_, metrics) = http(addr, "GET", "/metrics");
    let revision = cmd!(sh, "git rev-parse HEAD").read().unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("build_info") && l.contains(&revision)),
        "{platform}: build_info names revision {revision}:\n{metrics}"
    );

    // The image has no shell, so look at the process from the host.
    let (pid_format, name) = ("{{.State.Pid}}", &container.0);
    let pid = cmd!(sh, "podman inspect --format {pid_format} {name}")
        .read()
        .unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["65532"; 4],
        "{platform}"
    );
    let gid_line = status.lines().find(|l| l.starts_with("Gid:")).unwrap();
    assert_eq!(
        gid_line.split_whitespace().nth(1),
        Some("65532"),
        "{platform}"
    );
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .expect("the container has a root mount");
    let options = root.split_whitespace().nth(5).unwrap();
    assert!(
        options.split(',').any(|o| o == "ro"),
        "{platform}: root mounted {options}"
    );
    println!(
        "{platform} ({arch}) served /healthz and counted visits as uid 65532 on a read-only root"
    );
}

/// POSTs a visit and returns the new total from the JSON body.
fn visits(addr: SocketAddr) -> u64 {
    let (status, body) = http(addr, "POST", "/api/visits");
    assert_eq!(status, 200, "POST /api/visits: {body}");
    let json: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    json["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("no total in {body}"))
}

/// A minimal HTTP/1.1 exchange: the test needs status and body, nothing a client library adds.
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (status, body.to_owned())
}

/// One platform of the layout copied into podman's storage under a unique name, removed on drop.
struct PodmanImage(String);

impl PodmanImage {
    fn load(sh: &Shell, built: &Built, platform: Platform) -> PodmanImage {
        let arch = platform.architecture();
        let name = format!(
            "localhost/visit-tracker-test-{}-{arch}:{}",
            std::process::id(),
            built.tag
        );
        let from = format!("oci:{}:{}", built.output.display(), built.tag);
        let to = format!("containers-storage:{name}");
        cmd!(sh, "skopeo copy --quiet --override-arch {arch} {from} {to}")
            .run()
            .unwrap();
        PodmanImage(name)
    }
}

impl Drop for PodmanImage {
    fn drop(&mut self) {
        let name = &self.0;
        let _ = Shell::new().and_then(|sh| {
            cmd!(sh, "podman rmi --force {name}")
                .quiet()
                .ignore_stdout()
                .run()
        });
    }
}

/// A detached container with a unique name, removed on drop.
struct Container(String);

impl Container {
    fn run(sh: &Shell, image: &str, env: &[String]) -> Container {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "visit-tracker-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let env: Vec<_> = env.iter().flat_map(|e| ["--env", e.as_str()]).collect();
        // runc, host network and lowered ulimits: what podman needs on these machines (see COMMON).
        cmd!(
            sh,
            "podman run --detach --name {name} --runtime runc --network host --read-only
                --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 {env...} {image}"
        )
        .quiet()
        .ignore_stdout()
        .run()
        .unwrap();
        Container(name)
    }

    fn logs(&self, sh: &Shell) -> String {
        let name = &self.0;
        match cmd!(sh, "podman logs {name}").ignore_status().output() {
            Ok(out) => {
                String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr)
            }
            Err(err) => err.to_string(),
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let name = &self.0;
        let _ = Shell::new().and_then(|sh| {
            cmd!(sh, "podman rm --force --time 0 {name}")
                .quiet()
                .ignore_stdout()
                .run()
        });
    }
}

/// A directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("xtask-image-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Two clones of HEAD in different directories give the same index digest, the second built with
/// cargo-auditable found somewhere else on PATH (where it is installed must not reach the bytes);
/// a new commit gives another digest. amd64 only: one platform proves the point at half the build time. The clones share a
/// target directory of their own (dependencies compile once; this checkout's artifacts are left
/// alone), and are cloned one after the other so the second clone really recompiles the service.
#[test]
fn same_commit_anywhere_gives_the_same_digest_and_a_new_commit_another() {
    image(); // Builds first: the clones then compete with nothing for the two cores.
    let sh = shell();
    let root = testkit::workspace_root();
    let revision = cmd!(sh, "git rev-parse HEAD").read().unwrap();
    let shared_target = Workspace::load(&sh)
        .unwrap()
        .target_directory
        .join("image-repro");
    let scratch = Scratch::new("repro");
    // A cargo-auditable elsewhere on PATH that leaves a mark when cargo runs it.
    let elsewhere = scratch.0.join("tools-elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let installed = xtask::tools::which("cargo-auditable").expect("cargo-auditable on PATH");
    let mark = scratch.0.join("wrapper-used");
    let wrapper = elsewhere.join("cargo-auditable");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ntouch '{}'\nexec '{}' \"$@\"\n",
            mark.display(),
            installed.display()
        ),
    )
    .unwrap();
    cmd!(sh, "chmod +x {wrapper}").run().unwrap();
    let path_elsewhere = std::env::join_paths(
        std::iter::once(elsewhere.clone())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let clone_and_build = |name: &str, path: Option<&std::ffi::OsStr>| -> (PathBuf, Built) {
        let checkout = scratch.0.join(name);
        cmd!(sh, "git clone --quiet --no-checkout {root} {checkout}")
            .run()
            .unwrap();
        cmd!(sh, "git -C {checkout} checkout --quiet --detach {revision}")
            .run()
            .unwrap();
        let clone_sh = Shell::new().unwrap();
        clone_sh.change_dir(&checkout);
        clone_sh.set_var("CARGO_TARGET_DIR", &shared_target);
        if let Some(path) = path {
            clone_sh.set_var("PATH", path);
        }
        let built = build(
            &clone_sh,
            vec![Platform::Amd64],
            scratch.0.join(format!("{name}.oci")),
        );
        (checkout, built)
    };
    let (_, first) = clone_and_build("first-checkout", None);
    assert!(!mark.exists());
    let (second_dir, second) = clone_and_build("elsewhere/second-checkout", Some(&path_elsewhere));
    assert!(
        mark.exists(),
        "the second build did not run the other cargo-auditable"
    );
    assert_eq!(first.image.index.digest, second.image.index.digest);
    assert_eq!(
        std::fs::read(first.output.join("index.json")).unwrap(),
        std::fs::read(second.output.join("index.json")).unwrap()
    );
    println!("same commit, two checkouts: {}", first.image.index.digest);

    cmd!(
        sh,
        "git -C {second_dir} -c user.name=test -c user.email=test@localhost commit --quiet --allow-empty -m another"
    )
    .run()
    .unwrap();
    let clone_sh = Shell::new().unwrap();
    clone_sh.change_dir(&second_dir);
    clone_sh.set_var("CARGO_TARGET_DIR", &shared_target);
    let other = build(
        &clone_sh,
        vec![Platform::Amd64],
        scratch.0.join("other.oci"),
    );
    assert_ne!(other.image.index.digest, first.image.index.digest);
    // Not only the labels: the service embeds its revision (build_info), so the binary changes.
    assert_ne!(
        other.image.platforms[0].layer.digest,
        first.image.platforms[0].layer.digest
    );
    println!("next commit: {}", other.image.index.digest);
}
