//! Property tests (testing.md "Reliability"): arguments round-trip byte for
//! byte (L20), and no input to the flag or config parsers makes them panic.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use launcher::config::Config;
use launcher::flags::parse_direct;
use launcher::invocation::Invocation;
use launcher::plan::{plan, Action};
use launcher::probe::OsProbe;
use launcher::quote::quote;
use launcher::vars::Vars;
use proptest::prelude::*;

/// An inside-the-container scripts tree (marker present), built once.
fn inside_tree() -> &'static (tempfile::TempDir, PathBuf) {
    static TREE: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    TREE.get_or_init(|| {
        let t = tempfile::tempdir().unwrap();
        let s = t.path().join("scripts");
        std::fs::create_dir_all(s.join("e-1.d/bin")).unwrap();
        std::fs::write(s.join("launcher"), "").unwrap();
        symlink("../../launcher", s.join("e-1.d/bin/python3")).unwrap();
        let real = t.path().join("opt/conda/e-1/bin/python3");
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(&real, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(t.path().join("marker")).unwrap();
        std::fs::write(
            s.join("launcher.toml"),
            format!(
                "[container]\nmarker = \"../marker\"\nprefix = \"{}\"\n",
                t.path().join("opt/conda").display()
            ),
        )
        .unwrap();
        let link = s.join("e-1.d/bin/python3");
        (t, link)
    })
}

fn any_arg() -> impl Strategy<Value = OsString> {
    prop::collection::vec(any::<u8>().prop_filter("no NUL in argv", |b| *b != 0), 0..24).prop_map(OsString::from_vec)
}

/// Arguments a flag parser must get right: real flags (with and without
/// `=`), `--`, empty strings, repeats, and arbitrary bytes.
fn flag_like_arg() -> impl Strategy<Value = OsString> {
    prop_oneof![
        Just(OsString::from("--path")),
        Just(OsString::from("--env")),
        Just(OsString::from("--runtime=/r")),
        Just(OsString::from("--dry-run")),
        Just(OsString::from("--")),
        Just(OsString::from("")),
        Just(OsString::from("x")),
        any_arg(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// L20: whatever the arguments, the planned argv carries them unchanged.
    #[test]
    fn l20_plan_keeps_arguments_byte_for_byte(args in prop::collection::vec(any_arg(), 0..8)) {
        let (_t, link) = inside_tree();
        let mut argv = vec![link.clone().into_os_string()];
        argv.extend(args.iter().cloned());
        let inv = Invocation { argv, at_execfn: None, cwd: None };
        let Action::Exec(exec) = plan(&inv, &Vars::default(), &OsProbe).unwrap().action else {
            panic!("expected exec");
        };
        prop_assert_eq!(&exec.argv[1..], &args[..]);
    }

    /// L4: the flag parser never panics, and what follows the command is
    /// never touched: the command and its arguments are the tail of the
    /// input, and what comes before is flags alone (the same oracle as the
    /// `flags` fuzz target).
    #[test]
    fn l4_flag_parser_total(args in prop::collection::vec(flag_like_arg(), 0..8)) {
        if let Ok(call) = parse_direct(&args) {
            match &call.command {
                Some(command) => {
                    let at = args.len() - call.args.len() - 1;
                    prop_assert_eq!(&args[at], command);
                    prop_assert_eq!(&call.args[..], &args[at + 1..]);
                    let flags = parse_direct(&args[..at]).unwrap();
                    prop_assert_eq!(&flags.flags, &call.flags);
                    prop_assert_eq!(flags.command, None);
                }
                None => prop_assert!(call.args.is_empty()),
            }
        }
    }

    /// L19: arbitrary bytes as launcher.toml give a config or an error,
    /// never a panic; errors are one line.
    #[test]
    fn l19_config_parser_total(text in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Err(e) = Config::parse(&text, Path::new("/x/launcher.toml")) {
            prop_assert!(!e.to_string().contains('\n'));
        }
    }

    /// L19: TOML-shaped input built from real keys and junk.
    #[test]
    fn l19_config_parser_total_on_toml_shapes(
        lines in prop::collection::vec(
            prop_oneof![
                Just("[runtime]".to_string()), Just("[container]".to_string()), Just("[commands.x]".to_string()),
                Just("[container.env]".to_string()), "[a-z_]{1,10} = \"[ -~]{0,10}\"", "[a-z_]{1,10} = [0-9]{1,3}",
                "binds = \\[\"[/a-z,]{0,10}\"\\]", "host = (true|false|1)",
            ],
            0..12,
        )
    ) {
        let text = lines.join("\n");
        if let Err(e) = Config::parse(text.as_bytes(), Path::new("/x/launcher.toml")) {
            prop_assert!(!e.to_string().contains('\n'), "{}", e);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// L17: a quoted word pasted into bash gives back the same bytes.
    #[test]
    fn l17_quote_round_trips_through_bash(word in any_arg()) {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("printf '%s' {}", quote(&word)))
            .output()
            .unwrap();
        prop_assert_eq!(out.stdout, word.as_bytes().to_vec());
    }
}
