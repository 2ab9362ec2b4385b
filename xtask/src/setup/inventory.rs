//! The GitHub runner image the workflows run on, as `.github/runner-inventory.yml` records it:
//! the programs, Rust targets and components it ships, and the apt packages that would remove
//! its Docker. As a [`Presence`] it says what `cargo xtask setup` would install there.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use saphyr::{LoadableYamlNode, Yaml};
use serde::Deserialize;

use crate::chart::lint::manifest::yaml_to_json;
use crate::tools::{Presence, Source, Tool};

/// Relative to the repository root.
pub const INVENTORY: &str = ".github/runner-inventory.yml";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Inventory {
    /// Where the inventory was read from.
    pub source: Provenance,
    /// The `runs-on` labels this inventory describes.
    pub runs_on: Vec<String>,
    /// Program name on PATH: version (and, where it matters, which package brings it).
    pub programs: BTreeMap<String, String>,
    pub rustup: Rustup,
    /// A package the image has installed: the apt packages whose installation would remove it.
    pub apt_conflicts: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Provenance {
    pub image: String,
    pub image_version: String,
    pub repository: String,
    /// The commit and path of the image's software list.
    pub readme: String,
    /// The commit of the image's build scripts and toolset that were read.
    pub scripts: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rustup {
    pub targets: Vec<String>,
    pub components: Vec<String>,
}

impl Inventory {
    pub fn parse(text: &str) -> Result<Inventory> {
        let docs = Yaml::load_from_str(text)?;
        let doc = docs.first().context("no YAML document")?;
        Ok(serde_json::from_value(yaml_to_json(doc)?)?)
    }

    /// The inventory of the checkout at `root`.
    pub fn load(root: &Path) -> Result<Inventory> {
        let path = root.join(INVENTORY);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Inventory::parse(&text).with_context(|| format!("parsing {INVENTORY}"))
    }

    /// The installed package that installing `package` would remove, if any.
    pub fn conflict(&self, package: &str) -> Option<&str> {
        self.apt_conflicts
            .iter()
            .find(|(_, packages)| packages.iter().any(|p| p == package))
            .map(|(installed, _)| installed.as_str())
    }
}

impl Presence for Inventory {
    /// Only what the image ships: the venv, node modules, cargo tools, .debs and host setup of
    /// this repository are never there before `cargo xtask setup`.
    fn has(&self, tool: &Tool) -> bool {
        let name = tool.name;
        match tool.source {
            Source::Apt(_) | Source::Rustup => self.programs.contains_key(name),
            Source::Llvm(_) => self.programs.keys().any(|p| {
                p == name
                    || p.strip_prefix(name)
                        .and_then(|v| v.strip_prefix('-'))
                        .is_some_and(|v| v.parse::<u32>().is_ok())
            }),
            Source::RustTarget => self.rustup.targets.iter().any(|t| t == name),
            Source::RustComponent(component) => {
                self.rustup.components.iter().any(|c| c == component)
            }
            Source::Pip
            | Source::Npm { .. }
            | Source::Cargo { .. }
            | Source::Deb { .. }
            | Source::Binfmt { .. }
            | Source::StoppedService => false,
        }
    }
}
