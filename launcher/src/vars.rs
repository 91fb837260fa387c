//! A snapshot of the environment variables the launcher was started with.
//!
//! The planner reads variables only through this, so tests can hand it any
//! environment without touching the process's own.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};

#[derive(Debug, Clone, Default)]
pub struct Vars {
    map: HashMap<OsString, OsString>,
}

impl Vars {
    /// The current process's environment.
    pub fn from_process() -> Vars {
        Vars {
            map: std::env::vars_os().collect(),
        }
    }

    pub fn from_pairs<K: Into<OsString>, V: Into<OsString>>(pairs: impl IntoIterator<Item = (K, V)>) -> Vars {
        Vars {
            map: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&OsStr> {
        self.map.get(OsStr::new(name)).map(OsString::as_os_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(OsStr::new(name))
    }

    /// Set and non-empty.
    pub fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| !v.is_empty())
    }

    pub fn set(&mut self, name: impl Into<OsString>, value: impl Into<OsString>) {
        self.map.insert(name.into(), value.into());
    }
}
