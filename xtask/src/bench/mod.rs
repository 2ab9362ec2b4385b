//! Benchmarks: each prints its figures next to a reference measured in the same run, never a
//! timed assertion.

mod app;
mod image;
mod push;

use clap::Subcommand;
use xshell::Shell;

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// The service under wrk against the Redis INCR ceiling (redis-benchmark).
    App(app::AppBench),
    /// Image assembly from built binaries against `podman build` of the same binaries.
    Image(image::ImageBench),
    /// `image push` against `skopeo copy --all`, and a re-push of an unchanged image.
    Push(push::PushBench),
}

impl Bench {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        match self {
            Bench::App(b) => b.run(sh),
            Bench::Image(b) => b.run(sh),
            Bench::Push(b) => b.run(sh),
        }
    }
}
