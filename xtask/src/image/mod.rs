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

use crate::tools::{CARGO, GIT, Needs, RUSTUP, Source, Tool};

/// ring compiles C for the musl targets: clang cross-compiles to every target, the host gcc not.
pub const CLANG: Tool = Tool::apt("clang", "clang");
/// ring's archiver (`AR_<target>`). Distributions ship it as `llvm-ar-NN` next to their clang;
/// the `llvm` package adds the plain name.
pub const LLVM_AR: Tool = Tool {
    name: "llvm-ar",
    source: Source::Llvm("llvm"),
};
pub const MUSL_AMD64: Tool = Tool::rust_target("x86_64-unknown-linux-musl");
pub const MUSL_ARM64: Tool = Tool::rust_target("aarch64-unknown-linux-musl");

/// `image build`: cargo for the musl targets (the git revision labels the image).
pub const BUILD_NEEDS: Needs = Needs {
    tools: &[
        &CARGO,
        &RUSTUP,
        &GIT,
        &CLANG,
        &LLVM_AR,
        &MUSL_AMD64,
        &MUSL_ARM64,
        &auditable::CARGO_AUDITABLE,
        &build::MUSL_HEADERS_AMD64,
        &build::MUSL_HEADERS_ARM64,
    ],
    tasks: &[],
};
/// `image push`: git names the commit of a `sha-<7>` tag when neither --sha nor GITHUB_SHA does.
pub const PUSH_NEEDS: Needs = Needs {
    tools: &[&GIT],
    tasks: &[],
};

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
