//! `installer`: builds and maintains a launcher installation (the scripts
//! tree of symlinks, the launcher binary and its config) from squashfs
//! images of conda environments. See `../shared/spec/installer.md` and
//! docs/installer.md.
//!
//! One concern per module: `image` reads images, `activation` reads the
//! activation variables out of them, `tree` models directory trees, `swap`
//! replaces live files and trees atomically, `lock` serialises runs,
//! `verify` reads every data block of an image, `fault` is the crash-test hook, `modulefile` writes modulefiles, and
//! `farm`/`check`/`status`/`demo`/`pack`/`deploy` (with rollback)/`alias`
//! are the subcommands; `cli` turns the command line into calls of them.

// Output goes through `output`: the print macros panic when a write fails.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod activation;
pub mod alias;
pub mod base;
pub mod build;
pub mod check;
pub mod cli;
pub mod demo;
pub mod deploy;
pub mod diff;
pub mod error;
pub mod farm;
pub mod fault;
pub mod generations;
pub mod image;
pub mod kernels;
pub mod leftovers;
pub mod lifecycle;
pub mod lock;
pub mod manifest;
pub mod modulefile;
pub mod output;
pub mod pack;
pub mod runtime;
pub mod site;
pub mod status;
pub mod swap;
pub mod tree;
pub mod trust;
pub mod ui;
pub mod verify;

pub use error::{InstallError, Result};
