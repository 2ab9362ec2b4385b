//! The container image: daemonless multi-arch build, and push to any OCI registry.
//!
//! Library surface for other tasks: [`oci`] assembles an image from bytes (pure), [`layout`]
//! writes it as an OCI image layout and reads one back with every blob verified, and
//! [`build::Build::build`] runs the whole `image build` and returns what it wrote.

pub mod auditable;
pub mod build;
pub mod layout;
pub mod oci;
pub mod push;

use clap::Subcommand;
use xshell::Shell;

#[derive(Debug, Subcommand)]
pub enum Image {
    /// Cross-compile the service and write a multi-arch OCI image layout under target/oci/.
    Build(build::Build),
    /// Push an OCI image layout to a registry, blobs first, tags last.
    Push(push::Push),
}

impl Image {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        match self {
            Image::Build(t) => t.run(sh),
            Image::Push(t) => t.run(sh),
        }
    }
}
