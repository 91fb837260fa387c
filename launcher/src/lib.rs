//! `launcher`: a multicall binary that runs the commands of a
//! squashfs-packed conda environment through Singularity/Apptainer.
//!
//! Flow of one call (see docs/architecture.md):
//! `invocation` (who am I?) → `config` → `plan` (pure: what to exec) →
//! `exec` (the one place that replaces the process).

pub mod config;
pub mod container_env;
pub mod error;
pub mod exec;
pub mod flags;
pub mod handover;
pub mod invocation;
pub mod mounts;
pub mod native;
pub mod pbs;
pub mod plan;
pub mod probe;
pub mod quote;
pub mod runtime;
pub mod trust;
pub mod vars;
