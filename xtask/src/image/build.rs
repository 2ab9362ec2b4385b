//! `cargo xtask image build`: cross-compiles the service per platform and writes a multi-arch OCI
//! image layout. Cargo, git and the disk are here; the assembly itself is pure (`oci.rs`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use xshell::{Shell, cmd};

use super::oci::{self, Image, Metadata, Platform};
use super::{auditable, layout};
use crate::cargo;
use crate::registry::Tag;
use crate::term::human_size;
use crate::tools::{self, Source, Tool};
use crate::workspace::{self, Workspace};

/// The package and binary that go into the image.
pub const PACKAGE: &str = workspace::APP;

/// Cross-compiles the service per platform (static musl, rust-lld) and writes a reproducible
/// multi-arch OCI image layout, by default to target/oci/visit-tracker.
#[derive(Debug, Args)]
pub struct Build {
    /// Platforms to build, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "linux/amd64,linux/arm64",
        value_name = "OS/ARCH"
    )]
    pub platform: Vec<Platform>,
    /// Directory of the OCI image layout (replaced atomically) [default: <target-dir>/oci/visit-tracker].
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Image version: the `org.opencontainers.image.version` label and the layout's tag
    /// [default: the crate version].
    #[arg(long)]
    pub version: Option<String>,
    /// Timestamp of every file and date in the image, in seconds since the epoch
    /// [default: the HEAD commit time].
    #[arg(long, env = "SOURCE_DATE_EPOCH", value_name = "SECONDS")]
    pub source_date_epoch: Option<u64>,
    /// Cargo profile to build the binaries with.
    #[arg(long, default_value = "release")]
    pub profile: String,
}

impl Build {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let built = self.build(sh, Workspace::current()?)?;
        println!("layout: {} (tag {})", built.output.display(), built.tag);
        println!("index:  {}", built.image.index.digest);
        for p in &built.image.platforms {
            println!(
                "  {:<12} {:>9} compressed  manifest {}",
                p.platform.name(),
                human_size(p.compressed_size()),
                p.manifest.digest
            );
        }
        Ok(())
    }

    /// Compiles `workspace`'s service (from the shell's directory, its root), assembles the image
    /// and writes the layout; returns what was written.
    pub fn build(self, sh: &Shell, workspace: &Workspace) -> Result<Built> {
        let output = self.output.unwrap_or_else(|| workspace.oci_layout());
        if let Some(version) = &self.version {
            tag_for(version)?; // Refused before a long build, not after.
        }
        let git = GitInfo::load(sh)?;
        let metadata = labels(
            workspace,
            self.version,
            &git.revision,
            self.source_date_epoch.unwrap_or(git.commit_time),
        )?;
        let binaries = compile(sh, workspace, &self.platform, &self.profile, &git.revision)?;

        let started = Instant::now();
        let image = assemble(&metadata, &binaries)?;
        let tag = tag_for(&metadata.version)?;
        layout::write(&output, &image, tag.as_str())?;
        eprintln!(
            "image: assembled and wrote {} in {:.2?}",
            output.display(),
            started.elapsed()
        );
        Ok(Built {
            output,
            tag,
            image,
            binaries,
        })
    }
}

/// The result of `image build`: the layout on disk and the image it holds.
#[derive(Debug)]
pub struct Built {
    /// The OCI image layout directory.
    pub output: PathBuf,
    /// The layout's tag for the image index (`org.opencontainers.image.ref.name`).
    pub tag: Tag,
    pub image: Image,
    /// The binaries the image was assembled from, per platform.
    pub binaries: Vec<(Platform, PathBuf)>,
}

/// Reads the built binaries and assembles the image from them.
pub fn assemble(metadata: &Metadata, binaries: &[(Platform, PathBuf)]) -> Result<Image> {
    let loaded = binaries
        .iter()
        .map(|(platform, path)| {
            std::fs::read(path)
                .with_context(|| format!("reading {}", path.display()))
                .map(|bytes| (*platform, bytes))
        })
        .collect::<Result<Vec<_>>>()?;
    oci::assemble(metadata, &loaded)
}

/// The layout tag for a version. SemVer build metadata (`+...`) is not allowed in an OCI tag, so
/// it becomes `-...`, as docker/metadata-action does; anything else invalid is an error.
pub fn tag_for(version: &str) -> Result<Tag> {
    version.replace('+', "-").parse().map_err(|_| {
        anyhow::anyhow!(
            "--version `{version}` cannot be an image tag (letters, digits, `_`, `.`, `-`; at most 128)"
        )
    })
}

/// The image's labels for `workspace`'s service at `revision`: description, license and source
/// come from the app's Cargo.toml, which must set them.
pub fn labels(
    workspace: &Workspace,
    version: Option<String>,
    revision: &str,
    created: u64,
) -> Result<Metadata> {
    let app = &workspace.app;
    let field = |value: &Option<String>, name: &str| {
        value
            .clone()
            .with_context(|| format!("app/Cargo.toml: `{name}` is not set (it labels the image)"))
    };
    let repository = field(&app.repository, "repository")?;
    Ok(Metadata {
        title: app.name.clone(),
        description: field(&app.description, "description")?,
        url: app.homepage.clone().unwrap_or_else(|| repository.clone()),
        source: repository,
        licenses: field(&app.license, "license")?,
        version: version.unwrap_or_else(|| app.version.clone()),
        revision: revision.to_owned(),
        created,
    })
}

/// The commit the image is built from.
#[derive(Debug, Clone)]
pub struct GitInfo {
    pub revision: String,
    /// Committer time of HEAD, seconds since the epoch: the default `SOURCE_DATE_EPOCH`.
    pub commit_time: u64,
}

impl GitInfo {
    pub fn load(sh: &Shell) -> Result<GitInfo> {
        let revision = cmd!(sh, "git rev-parse HEAD").quiet().read().context(
            "reading the git revision (the image is labelled with it): is this a git checkout?",
        )?;
        let time = cmd!(sh, "git show -s --format=%ct HEAD").quiet().read()?;
        let commit_time = time
            .trim()
            .parse()
            .with_context(|| format!("git gave `{time}` as the HEAD commit time"))?;
        let dirty = cmd!(sh, "git status --porcelain --untracked-files=no")
            .quiet()
            .read()
            .unwrap_or_default();
        if !dirty.trim().is_empty() {
            eprintln!(
                "image: warning: uncommitted changes; the image is labelled {revision} but is not that commit"
            );
        }
        Ok(GitInfo {
            revision,
            commit_time,
        })
    }
}

/// Builds the service for each platform with `profile` and returns the binaries' paths.
/// One cargo invocation for all targets, so cargo schedules them together.
pub fn compile(
    sh: &Shell,
    workspace: &Workspace,
    platforms: &[Platform],
    profile: &str,
    revision: &str,
) -> Result<Vec<(Platform, PathBuf)>> {
    if platforms.is_empty() {
        bail!("--platform: give at least one platform");
    }
    for platform in platforms {
        tools::need(sh, &Tool::rust_target(platform.rust_target()))?;
    }
    tools::need(sh, &auditable::CARGO_AUDITABLE)?;
    let cargo_home = cargo_home()?;
    let mut args = vec![
        "build".to_owned(),
        "--locked".into(),
        "--package".into(),
        PACKAGE.into(),
        "--bin".into(),
        PACKAGE.into(),
        "--profile".into(),
        profile.into(),
    ];
    for platform in platforms {
        let target = platform.rust_target();
        args.extend(["--target".into(), target.into(), "--config".into()]);
        args.push(rustflags_config(
            target,
            &[
                (&cargo_home, "/cargo"),
                (&workspace.target_directory, "/target"),
                (&workspace.build_directory, "/build"),
            ],
        ));
    }
    // ring compiles C: clang cross-compiles to every target, unlike the host gcc. A compiler the
    // caller chose wins.
    tools::need(sh, &super::CLANG)?;
    let ar = tools::need(sh, &super::LLVM_AR)?;
    let includes = platforms
        .iter()
        .map(|p| {
            let header = tools::need(sh, musl_headers(*p))?;
            Ok((
                *p,
                header
                    .parent()
                    .expect("a header has a directory")
                    .to_owned(),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let _compilers: Vec<_> = c_toolchain_env(&includes, &ar)
        .into_iter()
        .filter(|(name, _)| std::env::var_os(name).is_none())
        .map(|(name, value)| sh.push_env(name, value))
        .collect();
    let targets: Vec<_> = platforms.iter().map(|p| p.rust_target()).collect();
    eprintln!(
        "image: cargo build --profile {profile} (with cargo-auditable) for {}",
        targets.join(", ")
    );
    // The service reports its revision in the build_info metric (`option_env!`).
    let _revision = sh.push_env("VT_GIT_REVISION", revision);
    // RUSTFLAGS would replace the target rustflags above (static CRT, remapping): drop it here.
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS"] {
        if sh.var_os(var).is_some() {
            eprintln!("image: ignoring {var}: the image's rustflags are fixed for reproducibility");
        }
    }
    let cargo = cargo();
    // Each binary embeds its dependency list, for scanners and the SBOMs.
    let auditable = auditable::wrapper_env(&args);
    // Without what `cargo run` set for the xtask: ring's build script watches CARGO_MANIFEST_DIR,
    // and would be rebuilt, with everything above it, whenever it differs from the last build's.
    crate::without_cargo_run_env(cmd!(sh, "{cargo} {args...}"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .envs(auditable)
        .run()
        .with_context(|| format!("building {PACKAGE} for {}", targets.join(", ")))?;
    Ok(platforms
        .iter()
        .map(|p| {
            let path = workspace
                .target_directory
                .join(p.rust_target())
                .join(profile_dir(profile))
                .join(PACKAGE);
            (*p, path)
        })
        .collect())
}

/// The cc crate's per-target compiler, archiver and flags: clang, `ar` (an llvm-ar) and
/// [`musl_cflags`] with each platform's musl header directory.
pub fn c_toolchain_env(platforms: &[(Platform, PathBuf)], ar: &Path) -> Vec<(String, String)> {
    platforms
        .iter()
        .flat_map(|(p, include)| {
            let target = p.rust_target().replace('-', "_");
            [
                (format!("CC_{target}"), "clang".to_owned()),
                (format!("AR_{target}"), ar.display().to_string()),
                (format!("CFLAGS_{target}"), musl_cflags(*p, include)),
            ]
        })
        .collect()
}

/// Debian's musl C headers (musl-dev 1.2.3-1 of bookworm, pinned by URL and sha256 as its
/// Packages index lists them, unpacked under the target directory): the same headers on every
/// host, Debian or Ubuntu, for either target, without a cross compiler or a foreign apt
/// architecture. Found by a header the package has.
pub const MUSL_HEADERS_AMD64: Tool = Tool {
    name: "musl-headers-amd64",
    source: Source::Deb {
        url: "http://deb.debian.org/debian/pool/main/m/musl/musl-dev_1.2.3-1_amd64.deb",
        sha256: "7c34f29a0c1aa12f6da1d25ed6de6fe6bbd9e048ee76b3dcb88c5e51fb65507f",
        path: "usr/include/x86_64-linux-musl/stdlib.h",
    },
};
pub const MUSL_HEADERS_ARM64: Tool = Tool {
    name: "musl-headers-arm64",
    source: Source::Deb {
        url: "http://deb.debian.org/debian/pool/main/m/musl/musl-dev_1.2.3-1_arm64.deb",
        sha256: "55c2ca4bc3041c8ed8ac7dc3ef6080d9551a21650568b2fd7610b59eaf98a4f4",
        path: "usr/include/aarch64-linux-musl/stdlib.h",
    },
};

/// The musl headers a platform's C compiles against.
pub fn musl_headers(platform: Platform) -> &'static Tool {
    match platform {
        Platform::Amd64 => &MUSL_HEADERS_AMD64,
        Platform::Arm64 => &MUSL_HEADERS_ARM64,
    }
}

/// C flags for the allocator's C (mimalloc): musl's headers in `include` instead of the host's
/// glibc ones, which clang would otherwise take from /usr/include, with their directory mapped
/// to where a musl system keeps them (no machine's path reaches the binary); and fixed
/// `__DATE__`/`__TIME__`, which mimalloc prints in its verbose banner and would make every
/// build's binary differ (clang ignores `SOURCE_DATE_EPOCH` before 16). mimalloc without
/// transparent huge pages (`MI_DEFAULT_ALLOW_THP=0`): with them, each 2 MiB of its arenas that
/// the kernel backs with a huge page is resident as a whole, and the service's peak RSS was
/// 18 to 22 MiB instead of about 7. The cc crate splits CFLAGS at whitespace: no value may
/// hold a space.
pub fn musl_cflags(platform: Platform, include: &Path) -> String {
    let include = include.display();
    let triple = match platform {
        Platform::Amd64 => "x86_64-linux-musl",
        Platform::Arm64 => "aarch64-linux-musl",
    };
    format!(
        "-nostdlibinc -isystem {include} -ffile-prefix-map={include}=/usr/include/{triple} \
         -Wno-builtin-macro-redefined -D__DATE__=\"-\" -D__TIME__=\"-\" -DMI_DEFAULT_ALLOW_THP=0"
    )
}

fn cargo_home() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return Ok(PathBuf::from(home));
    }
    let home = std::env::var_os("HOME").context("neither CARGO_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cargo"))
}

/// `--config` value setting the target's rustflags: path remapping, so no machine-specific
/// directory (cargo home, target dir) reaches the binary, plus the static CRT of
/// `.cargo/config.toml`, repeated so it holds whether cargo merges or replaces the array.
/// Workspace sources need no remapping: cargo passes them to rustc relative to the workspace
/// root. The remaps name no checkout directory, so clones sharing a target dir share its builds.
pub fn rustflags_config(target: &str, remaps: &[(&Path, &str)]) -> String {
    let mut flags = vec!["-C".to_owned(), "target-feature=+crt-static".to_owned()];
    let mut seen = Vec::new();
    for (from, to) in remaps {
        if seen.contains(from) {
            continue;
        }
        seen.push(*from);
        flags.push(format!("--remap-path-prefix={}={to}", from.display()));
    }
    // A JSON string array is a valid TOML array, quoting and escaping included.
    let array = serde_json::to_string(&flags).expect("strings serialize");
    format!("target.{target}.rustflags={array}")
}

/// The directory under `target/<triple>/` a cargo profile writes to.
pub fn profile_dir(profile: &str) -> &str {
    match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustflags_keep_crt_static_and_remap_each_directory_once() {
        let home = Path::new("/home/me/.cargo");
        let target = Path::new("/src/my \"repo\"/target");
        let config = rustflags_config(
            "aarch64-unknown-linux-musl",
            &[(home, "/cargo"), (target, "/target"), (target, "/build")],
        );
        assert_eq!(
            config,
            r#"target.aarch64-unknown-linux-musl.rustflags=["-C","target-feature=+crt-static","--remap-path-prefix=/home/me/.cargo=/cargo","--remap-path-prefix=/src/my \"repo\"/target=/target"]"#
        );
    }

    #[test]
    fn c_flags_point_each_target_at_its_own_musl_headers() {
        let includes: Vec<_> = Platform::ALL
            .iter()
            .map(|p| (*p, PathBuf::from(format!("/t/debs/{}", p.rust_target()))))
            .collect();
        let env = c_toolchain_env(&includes, Path::new("/usr/bin/llvm-ar"));
        for (platform, include) in &includes {
            let name = format!("CFLAGS_{}", platform.rust_target().replace('-', "_"));
            let (_, flags) = env.iter().find(|(n, _)| *n == name).unwrap();
            let flags: Vec<_> = flags.split_whitespace().collect();
            let at = flags.iter().position(|f| *f == "-isystem").unwrap();
            assert_eq!(Path::new(flags[at + 1]), include);
            // The host's glibc headers stay out; neither build dates nor the header directory
            // reach the binary.
            assert!(flags.contains(&"-nostdlibinc"), "{flags:?}");
            assert!(flags.contains(&r#"-D__DATE__="-""#), "{flags:?}");
            assert!(flags.contains(&"-DMI_DEFAULT_ALLOW_THP=0"), "{flags:?}");
            assert!(
                flags
                    .iter()
                    .any(|f| f.starts_with(&format!("-ffile-prefix-map={}=", include.display()))),
                "{flags:?}"
            );
        }
    }

    #[test]
    fn profiles_map_to_their_directories() {
        assert_eq!(profile_dir("release"), "release");
        assert_eq!(profile_dir("dev"), "debug");
        assert_eq!(profile_dir("dist"), "dist");
    }

    #[test]
    fn tags_drop_build_metadata_plus_and_refuse_invalid_ones() {
        assert_eq!(tag_for("1.2.3").unwrap(), "1.2.3");
        assert_eq!(tag_for("1.2.3-rc.1+abc").unwrap(), "1.2.3-rc.1-abc");
        for bad in ["", "-1", "1 2", "a/b", &"x".repeat(129)] {
            let err = tag_for(bad).unwrap_err().to_string();
            assert!(err.contains("cannot be an image tag"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_app_package_labels_the_image() {
        let json = r#"{"packages":[{"name":"visit-tracker","version":"0.3.0","description":"Counts",
            "license":"Apache-2.0","repository":"https://x/y","homepage":null}],
            "workspace_root":"/w","target_directory":"/w/target"}"#;
        let ws = Workspace::parse(json).unwrap();
        let m = labels(&ws, None, "abc", 7).unwrap();
        assert_eq!(
            (
                m.title.as_str(),
                m.version.as_str(),
                m.url.as_str(),
                m.source.as_str(),
                m.revision.as_str(),
                m.created
            ),
            (
                "visit-tracker",
                "0.3.0",
                "https://x/y",
                "https://x/y",
                "abc",
                7
            )
        );
        let m = labels(&ws, Some("9.9.9".into()), "abc", 7).unwrap();
        assert_eq!(m.version, "9.9.9");
        let no_license = json.replace(r#""license":"Apache-2.0","#, "");
        let ws = Workspace::parse(&no_license).unwrap();
        let err = labels(&ws, None, "abc", 7).unwrap_err().to_string();
        assert!(err.contains("`license` is not set"), "{err}");
    }

    #[test]
    fn cli_rejects_unknown_platforms_with_the_supported_list() {
        use clap::Parser;
        let err = crate::Cli::try_parse_from([
            "cargo xtask",
            "image",
            "build",
            "--platform",
            "linux/amd64,windows/amd64",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown platform `windows/amd64`"), "{err}");
        assert!(err.contains("linux/amd64, linux/arm64"), "{err}");
    }
}
