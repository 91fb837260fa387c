//! The modulefile test support (tests/support/modules.rs) against both real
//! tools: a hand-written Tcl modulefile of the shape spec I8 asks the
//! installer to write, and a `.modulerc` in the syntax both tools accept
//! (docs/testing.md, "Modulefile tools"), loaded, listed and unloaded with
//! Environment Modules and with Lmod.
//!
//! Each check runs once per tool: `cargo test --test modules_tools lmod`.

mod support;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use support::modules::{
    environment_after, module_output, resolve, run_module_commands, without_bookkeeping, ModuleTool,
};

/// `.modulerc` beside the versions: a symbolic version (`conda/analysis3`)
/// and an alias (`conda/analysis3-unstable`), both naming full module names.
const MODULERC: &str = "#%Module1.0\n\
    module-version conda/analysis3-22.10 analysis3\n\
    module-alias conda/analysis3-unstable conda/analysis3-23.01\n";

const BASE_PATH: &str = "/usr/bin:/bin";

/// A modulepath with `conda/analysis3-22.10`, `conda/analysis3-23.01` and
/// the `.modulerc`, each version prepending its own scripts `bin` and image.
struct Modules {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Modules {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("modulefiles");
        fs::create_dir_all(root.join("conda")).unwrap();
        for version in ["22.10", "23.01"] {
            let env = format!("analysis3-{version}");
            fs::write(
                root.join("conda").join(&env),
                format!(
                    "#%Module1.0\n\
                     prepend-path PATH {}\n\
                     prepend-path CONTAINER_OVERLAY_PATH {}\n\
                     setenv FOO bar\n",
                    bin_dir(dir.path(), &env),
                    image(dir.path(), &env)
                ),
            )
            .unwrap();
        }
        fs::write(root.join("conda/.modulerc"), MODULERC).unwrap();
        Modules { _dir: dir, root }
    }
    fn path(&self) -> [&Path; 1] {
        [&self.root]
    }
    fn bin_dir(&self, env: &str) -> String {
        bin_dir(self._dir.path(), env)
    }
    fn image(&self, env: &str) -> String {
        image(self._dir.path(), env)
    }
}

fn bin_dir(base: &Path, env: &str) -> String {
    format!("{}/scripts/{env}.d/bin", base.display())
}

fn image(base: &Path, env: &str) -> String {
    format!("{}/envs/{env}.sqsh", base.display())
}

fn env_map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Each named check as two tests, `<check>::environment_modules` and
/// `<check>::lmod`, skipped (or failed under `LAUNCHER_E2E_REQUIRED=1`) when
/// that tool is missing.
macro_rules! for_both_tools {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            #[test]
            fn environment_modules() {
                let tool = super::ModuleTool::EnvironmentModules;
                if tool.available(concat!(stringify!($check), "::environment_modules")) {
                    super::$check(tool);
                }
            }
            #[test]
            fn lmod() {
                let tool = super::ModuleTool::Lmod;
                if tool.available(concat!(stringify!($check), "::lmod")) {
                    super::$check(tool);
                }
            }
        }
    )*};
}

for_both_tools!(
    no_commands_gives_back_the_base_environment,
    load_sets_path_overlay_and_variables,
    unload_restores_the_environment,
    load_prepends_to_existing_paths_and_unload_keeps_them,
    symbolic_version_loads_its_target,
    alias_loads_its_target,
    avail_and_show_see_versions_and_aliases,
    unknown_module_fails_and_stops_the_sequence,
    unload_by_alias_name_differs_between_tools,
    modulerc_without_the_module_header_is_ignored_by_environment_modules,
    lmod_loads_one_version_per_name,
);

/// The harness itself: what goes in comes back, odd values included, with
/// nothing of bash's or the tool's own added.
fn no_commands_gives_back_the_base_environment(tool: ModuleTool) {
    let modules = Modules::new();
    let base = [("PATH", BASE_PATH), ("ODD", "a b\nc=d 'e' \"f\" $g"), ("EMPTY", "")];
    let env = environment_after(tool, &modules.path(), &base, &[]).unwrap();
    let mut expected = env_map(&base);
    expected.insert("MODULEPATH".into(), modules.root.display().to_string());
    assert_eq!(env, expected);
}

fn load_sets_path_overlay_and_variables(tool: ModuleTool) {
    let modules = Modules::new();
    let env = environment_after(
        tool,
        &modules.path(),
        &[("PATH", BASE_PATH)],
        &["load conda/analysis3-22.10"],
    )
    .unwrap();
    assert_eq!(
        env.get("PATH"),
        Some(&format!("{}:{BASE_PATH}", modules.bin_dir("analysis3-22.10")))
    );
    assert_eq!(
        env.get("CONTAINER_OVERLAY_PATH"),
        Some(&modules.image("analysis3-22.10"))
    );
    assert_eq!(env.get("FOO").map(String::as_str), Some("bar"));
    assert_eq!(support::modules::loaded_modules(&env), ["conda/analysis3-22.10"]);
}

fn unload_restores_the_environment(tool: ModuleTool) {
    let modules = Modules::new();
    let base = [("PATH", BASE_PATH), ("HOME", "/nonexistent-home")];
    let loaded = environment_after(tool, &modules.path(), &base, &["load conda/analysis3-22.10"]).unwrap();
    assert_eq!(
        loaded.get("FOO").map(String::as_str),
        Some("bar"),
        "the load did something"
    );
    let env = environment_after(
        tool,
        &modules.path(),
        &base,
        &["load conda/analysis3-22.10", "unload conda/analysis3-22.10"],
    )
    .unwrap();
    let mut expected = env_map(&base);
    expected.insert("MODULEPATH".into(), modules.root.display().to_string());
    assert_eq!(without_bookkeeping(&env), expected);
}

fn load_prepends_to_existing_paths_and_unload_keeps_them(tool: ModuleTool) {
    let modules = Modules::new();
    let base = [("PATH", BASE_PATH), ("CONTAINER_OVERLAY_PATH", "/site/other.sqsh")];
    let run = run_module_commands(tool, &modules.path(), &base, &["load conda/analysis3-22.10"]).unwrap();
    assert!(run.succeeded(), "{run}");
    assert_eq!(
        run.env.get("CONTAINER_OVERLAY_PATH"),
        Some(&format!("{}:/site/other.sqsh", modules.image("analysis3-22.10")))
    );
    let after = environment_after(
        tool,
        &modules.path(),
        &base,
        &["load conda/analysis3-22.10", "unload conda/analysis3-22.10"],
    )
    .unwrap();
    assert_eq!(
        after.get("CONTAINER_OVERLAY_PATH").map(String::as_str),
        Some("/site/other.sqsh")
    );
    assert_eq!(after.get("PATH").map(String::as_str), Some(BASE_PATH));
}

fn symbolic_version_loads_its_target(tool: ModuleTool) {
    let modules = Modules::new();
    assert_eq!(
        resolve(tool, &modules.path(), "conda/analysis3").unwrap(),
        ["conda/analysis3-22.10"]
    );
}

fn alias_loads_its_target(tool: ModuleTool) {
    let modules = Modules::new();
    assert_eq!(
        resolve(tool, &modules.path(), "conda/analysis3-unstable").unwrap(),
        ["conda/analysis3-23.01"]
    );
    let env = environment_after(
        tool,
        &modules.path(),
        &[("PATH", BASE_PATH)],
        &["load conda/analysis3-unstable"],
    )
    .unwrap();
    assert_eq!(
        env.get("CONTAINER_OVERLAY_PATH"),
        Some(&modules.image("analysis3-23.01"))
    );
}

/// The listings differ in format between the tools, so only names are
/// checked; `show` of the symbolic version must open the 22.10 file.
fn avail_and_show_see_versions_and_aliases(tool: ModuleTool) {
    let modules = Modules::new();
    let base = [("PATH", BASE_PATH)];
    let avail = module_output(tool, &modules.path(), &base, "-t avail").unwrap();
    for name in ["conda/analysis3-22.10", "conda/analysis3-23.01", "analysis3-unstable"] {
        assert!(avail.contains(name), "{name} not in avail:\n{avail}");
    }
    let show = module_output(tool, &modules.path(), &base, "show conda/analysis3").unwrap();
    let file = modules.root.join("conda/analysis3-22.10");
    assert!(
        show.contains(&file.display().to_string()) && show.contains("FOO"),
        "show conda/analysis3 does not show {}:\n{show}",
        file.display()
    );
}

/// A failed load is reported, stops the sequence, and leaves the
/// environment as it was.
fn unknown_module_fails_and_stops_the_sequence(tool: ModuleTool) {
    let modules = Modules::new();
    let base = [("PATH", BASE_PATH)];
    let run = run_module_commands(
        tool,
        &modules.path(),
        &base,
        &["load conda/no-such-env", "load conda/analysis3-22.10"],
    )
    .unwrap();
    assert_eq!(run.steps.len(), 1, "{run}");
    let step = run.step("load conda/no-such-env");
    assert!(!step.succeeded(), "{run}");
    assert!(step.stderr.contains("conda/no-such-env"), "{run}");
    assert_eq!(run.env.get("PATH").map(String::as_str), Some(BASE_PATH));
    assert!(!run.env.contains_key("FOO"), "{run}");
    assert!(environment_after(tool, &modules.path(), &base, &["load conda/no-such-env"]).is_err());
}

/// Pinned because tests (and users) must not rely on it: Environment
/// Modules unloads `conda/analysis3` (the symbolic version) while Lmod
/// silently does nothing, exit 0. Unload by full name or by `conda`.
fn unload_by_alias_name_differs_between_tools(tool: ModuleTool) {
    let modules = Modules::new();
    let env = environment_after(
        tool,
        &modules.path(),
        &[("PATH", BASE_PATH)],
        &["load conda/analysis3", "unload conda/analysis3"],
    )
    .unwrap();
    let still_loaded = support::modules::loaded_modules(&env);
    match tool {
        ModuleTool::EnvironmentModules => assert!(still_loaded.is_empty(), "{still_loaded:?}"),
        ModuleTool::Lmod => assert_eq!(still_loaded, ["conda/analysis3-22.10"]),
    }
    let env = environment_after(
        tool,
        &modules.path(),
        &[("PATH", BASE_PATH)],
        &["load conda/analysis3", "unload conda"],
    )
    .unwrap();
    assert!(
        support::modules::loaded_modules(&env).is_empty(),
        "`unload conda` works in both"
    );
}

/// Why the header line of `.modulerc` is not optional: without `#%Module`
/// Environment Modules skips the file silently (the alias is unknown);
/// Lmod reads it either way.
fn modulerc_without_the_module_header_is_ignored_by_environment_modules(tool: ModuleTool) {
    let modules = Modules::new();
    let headerless = MODULERC.strip_prefix("#%Module1.0\n").unwrap();
    fs::write(modules.root.join("conda/.modulerc"), headerless).unwrap();
    let resolved = resolve(tool, &modules.path(), "conda/analysis3-unstable");
    match tool {
        ModuleTool::EnvironmentModules => assert!(resolved.is_err(), "{resolved:?}"),
        ModuleTool::Lmod => assert_eq!(resolved.unwrap(), ["conda/analysis3-23.01"]),
    }
}

/// Lmod treats `conda` as the name and `analysis3-22.10` as a version, and
/// keeps one version of a name loaded: loading a second `conda/…` replaces
/// the first. Environment Modules keeps both.
fn lmod_loads_one_version_per_name(tool: ModuleTool) {
    let modules = Modules::new();
    let env = environment_after(
        tool,
        &modules.path(),
        &[("PATH", BASE_PATH)],
        &["load conda/analysis3-22.10", "load conda/analysis3-23.01"],
    )
    .unwrap();
    let loaded = support::modules::loaded_modules(&env);
    match tool {
        ModuleTool::EnvironmentModules => {
            assert_eq!(loaded, ["conda/analysis3-22.10", "conda/analysis3-23.01"])
        }
        ModuleTool::Lmod => {
            assert_eq!(loaded, ["conda/analysis3-23.01"]);
            assert_eq!(
                env.get("PATH"),
                Some(&format!("{}:{BASE_PATH}", modules.bin_dir("analysis3-23.01")))
            );
        }
    }
}
