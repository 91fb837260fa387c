//! Support code shared by the end-to-end tests (tests/standin.rs,
//! tests/e2e.rs, tests/modules_tools.rs): the prerequisites check and skip
//! rule, the test images, the installed layout ("bed"), a process runner,
//! and the two `module` tools (Environment Modules, Lmod).
//!
//! Each test file includes it with `mod support;`. Not every test file uses
//! every helper, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod bed;
pub mod binaries;
pub mod cluster;
pub mod conda_env;
pub mod files;
pub mod images;
pub mod modules;
pub mod mpi_env;
pub mod prereq;
pub mod run;

/// `PATH` in a container before any prefixed change (`env.DefaultPath` of
/// the real runtimes, modelled by the stand-in).
pub fn standin_default_path() -> &'static str {
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}
