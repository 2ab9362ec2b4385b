//! `cargo xtask bench image`: our image assembly against buildah (`podman build`) of the same
//! binaries into the same multi-arch image, timed in the same run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::Args;
use xshell::{Shell, cmd};

use xtask::image::build::{self, GitInfo, tag_for};
use xtask::image::layout;
use xtask::image::oci::{BINARY_PATH, EXPOSED_PORT, Image, Metadata, Platform, USER};
use xtask::term::human_size;
use xtask::tools;
use xtask::workspace::Workspace;

use crate::measure::median_time;

/// The reference: a `FROM scratch` image copying the same binary, as a Dockerfile user writes it.
fn reference_containerfile() -> String {
    format!(
        "FROM scratch\n\
         ARG TARGETARCH\n\
         COPY --chmod=0755 ${{TARGETARCH}}/visit-tracker /{BINARY_PATH}\n\
         USER {USER}\n\
         EXPOSE {EXPOSED_PORT}\n\
         ENTRYPOINT [\"/{BINARY_PATH}\"]\n"
    )
}

/// Times image assembly from already-built binaries (ours: tar, gzip, digests, JSON, layout on
/// disk) against `podman build --platform linux/amd64,linux/arm64 --manifest` of a FROM scratch
/// Containerfile copying the same binaries. Prints medians, the ratio and the image sizes.
#[derive(Debug, Args)]
pub struct ImageBench {
    /// Repetitions of each side; medians are reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
}

impl ImageBench {
    pub fn run(self, sh: &Shell) -> Result<()> {
        tools::need(sh, &xtask::ci::PODMAN)?;
        let workspace = Workspace::current()?;
        let git = GitInfo::load(sh)?;
        let metadata = build::labels(workspace, None, &git.revision, git.commit_time)?;
        let binaries = build::compile(sh, workspace, &Platform::ALL, "release", &git.revision)?;
        let scratch = workspace.target_directory.join("bench-image");
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch)?;
        let result = self.measure(sh, &scratch, &metadata, &binaries);
        let _ = std::fs::remove_dir_all(&scratch);
        let (ours, podman, image) = result?;

        let (ours, podman) = (median_time(&ours), median_time(&podman));
        println!(
            "image assembly, median of {} runs each (same binaries, same machine, same run):",
            self.runs
        );
        println!(
            "  cargo xtask image build (assembly + layout): {:>10.1?}",
            ours
        );
        println!(
            "  podman build --platform amd64,arm64:         {:>10.1?}",
            podman
        );
        println!(
            "  ratio: ours = 1/{:.1} of podman's (target: at most 1/3)",
            podman.as_secs_f64() / ours.as_secs_f64()
        );
        println!("compressed image size per platform (manifest + config + layer):");
        for p in &image.platforms {
            println!(
                "  {:<12} {:>10}",
                p.platform.name(),
                human_size(p.compressed_size())
            );
        }
        Ok(())
    }

    fn measure(
        &self,
        sh: &Shell,
        scratch: &Path,
        metadata: &Metadata,
        binaries: &[(Platform, PathBuf)],
    ) -> Result<(Vec<Duration>, Vec<Duration>, Image)> {
        let context = scratch.join("context");
        for (platform, binary) in binaries {
            let dir = context.join(platform.architecture());
            std::fs::create_dir_all(&dir)?;
            std::fs::copy(binary, dir.join("visit-tracker"))
                .with_context(|| format!("copying {}", binary.display()))?;
        }
        let containerfile = context.join("Containerfile");
        std::fs::write(&containerfile, reference_containerfile())?;
        let platforms = binaries
            .iter()
            .map(|(p, _)| p.name())
            .collect::<Vec<_>>()
            .join(",");
        let label = format!("visit-tracker-bench={}", std::process::id());

        let mut ours = Vec::new();
        let mut podman = Vec::new();
        let mut image = None;
        for run in 1..=self.runs {
            eprintln!("bench image: run {run}/{}", self.runs);
            // Ours: read the binaries, assemble, write the layout (atomically, as `image build`).
            let started = Instant::now();
            let built = build::assemble(metadata, binaries)?;
            layout::write(
                &scratch.join("oci"),
                &built,
                tag_for(&metadata.version)?.as_str(),
            )?;
            ours.push(started.elapsed());
            image = Some(built);

            // buildah, without its layer cache: it must do the same work every run, as ours does.
            let manifest = format!("localhost/visit-tracker-bench-{}:{run}", std::process::id());
            let started = Instant::now();
            let status = cmd!(
                sh,
                "podman build --quiet --no-cache --platform {platforms} --manifest {manifest}
                    --label {label} --file {containerfile} {context}"
            )
            .quiet()
            .ignore_stdout()
            .run();
            podman.push(started.elapsed());
            let _ = cmd!(sh, "podman manifest rm {manifest}")
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .run();
            status.context("podman build of the reference image")?;
        }
        // Remove the reference images, found by their label.
        let filter = format!("label={label}");
        let ids = cmd!(sh, "podman images --quiet --filter {filter}")
            .quiet()
            .read()?;
        let ids: Vec<_> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let _ = cmd!(sh, "podman rmi --force {ids...}")
                .quiet()
                .ignore_stdout()
                .run();
        }
        ensure!(!ours.is_empty(), "no run was measured");
        Ok((ours, podman, image.expect("at least one run")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_containerfile_matches_our_image() {
        let file = reference_containerfile();
        assert!(file.starts_with("FROM scratch\n"));
        assert!(file.contains(
            "COPY --chmod=0755 ${TARGETARCH}/visit-tracker /usr/local/bin/visit-tracker\n"
        ));
        assert!(file.contains("USER 65532:65532\n"));
    }
}
