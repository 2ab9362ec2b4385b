//! Push time against skopeo copy in the same run, and the cost of a re-push.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use clap::Args;
use testkit::registry::{Registry, SlowProxy};
use xshell::{Shell, cmd};
use xtask::term::human_size;
use xtask::workspace::Workspace;

use crate::measure::{median_time, ms, time};

/// Push time against `skopeo copy --all` in the same run (each to a fresh repository of a local
/// docker-registry), and the time and bytes of a re-push of an unchanged image.
#[derive(Debug, Args)]
pub struct PushBench {
    /// The two-platform layout to push (default: the one `cargo xtask image build` writes; when
    /// it is missing, a synthetic image with two 8 MB layers).
    #[arg(long, value_name = "DIR")]
    pub layout: Option<PathBuf>,
    /// Rounds per tool; medians are reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

impl PushBench {
    pub fn run(self, sh: &Shell) -> Result<()> {
        ensure!(self.runs > 0, "--runs must be at least 1");
        // The xtask binary that started us (`cargo xtask bench` sets XTASK): its `image push` is
        // what is measured, as a user runs it.
        let task = std::env::var_os("XTASK")
            .context("XTASK is not set: run this benchmark as `cargo xtask bench push`")?;
        xtask::tools::need(sh, &xtask::ci::SKOPEO)?;
        xtask::tools::need(sh, &xtask::ci::DOCKER_REGISTRY)?;
        let scratch = sh.create_temp_dir()?;
        let built = Workspace::current()?.oci_layout();
        let layout = match self.layout {
            Some(l) => sh.current_dir().join(l),
            None if built.join("index.json").exists() => built,
            None => {
                let dir = scratch.path().join("layout");
                testkit::registry::write_test_layout(&dir, 8 << 20, 1)?;
                eprintln!(
                    "no {}: using a synthetic image with 2 x 8 MB layers",
                    built.display()
                );
                dir
            }
        };
        let image = xtask::image::push::read_layout(&layout)?;
        let total: u64 = image.blobs.iter().map(|b| b.size).sum();
        eprintln!(
            "bench push: {} ({} blobs, {}), {} rounds each",
            layout.display(),
            image.blobs.len(),
            human_size(total),
            self.runs
        );
        let oci = format!("oci:{}", layout.display());
        // Each push gets a fresh registry: skopeo remembers where it saw a blob and would mount
        // it from the other tool's repository instead of uploading it.
        let push_to = |registry: &str| {
            let repo = format!("{registry}/bench/visit-tracker");
            cmd!(
                sh,
                "{task} image push --image {repo} --layout {layout} --tag bench"
            )
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run()
        };
        let ours_run = || -> Result<Duration> {
            let registry = Registry::start()?;
            Ok(time(|| push_to(&registry.addr()))?)
        };
        let theirs_run = || -> Result<Duration> {
            let registry = Registry::start()?;
            let dest = format!("docker://{}/bench/visit-tracker:bench", registry.addr());
            let copy = || {
                cmd!(
                    sh,
                    "skopeo copy --all --quiet --dest-tls-verify=false {oci} {dest}"
                )
                .quiet()
                .ignore_stdout()
                .run()
            };
            Ok(time(copy)?)
        };
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..self.runs {
            // Alternate who goes first, so warm caches favour neither.
            if round % 2 == 0 {
                ours.push(ours_run()?);
                theirs.push(theirs_run()?);
            } else {
                theirs.push(theirs_run()?);
                ours.push(ours_run()?);
            }
        }
        let registry = Registry::start()?;
        push_to(&registry.addr())?;
        // The re-push goes through a counting proxy, so the bytes are what went on the wire.
        let proxy = SlowProxy::start(registry.socket_addr(), u64::MAX)?;
        let uploads_before = registry.blob_uploads();
        let repush = time(|| push_to(&proxy.addr()))?;
        let blob_uploads = registry.blob_uploads() - uploads_before;

        let (m_ours, m_theirs) = (median_time(&ours), median_time(&theirs));
        println!(
            "push of {} ({} blobs), median of {} rounds:",
            human_size(total),
            image.blobs.len(),
            self.runs
        );
        println!("  cargo xtask image push   {:>8.1} ms", ms(m_ours));
        println!("  skopeo copy --all        {:>8.1} ms", ms(m_theirs));
        println!(
            "  ratio (task / skopeo)    {:>8.2}   target: <= 1.00",
            m_ours.as_secs_f64() / m_theirs.as_secs_f64()
        );
        println!(
            "re-push of the unchanged image: {:.1} ms, {} sent in all requests, {} blob uploads \
             (target: 0)",
            ms(repush),
            human_size(proxy.bytes_sent()),
            blob_uploads
        );
        Ok(())
    }
}
