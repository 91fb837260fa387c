//! Issue 10 item 9: temporary files a `kill -9` leaves in `<envs>`, the
//! backup directory and the modules directory are reported by `check` and
//! removed by the next run that holds their locks (`farm` here). The kills
//! are real: `INSTALLER_FAULT=after:temp:…` makes the installer SIGKILL
//! itself right after it made a temporary file and before it renamed it.
mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const ENV: &str = "e-1";

fn modules(f: &Fixture) -> PathBuf {
    f.root().join("modules/conda")
}

/// `installer …` with the fixture's modules directory.
fn installer(f: &Fixture) -> Command {
    let mut c = f.installer();
    c.env("INSTALLER_MODULES", modules(f));
    c
}

fn deploy(f: &Fixture, image: &Path) -> Command {
    let mut c = installer(f);
    c.arg("deploy")
        .arg(image)
        .args(["--env", ENV, "--launcher"])
        .arg(&f.launcher);
    c
}

/// Hidden files in `dir` other than the lock file and `.modulerc`.
fn temporaries(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && ![".backup", ".modulerc", ".installer.lock"].contains(&n.as_str()))
        .collect();
    names.sort();
    names
}

#[test]
fn i6_temporaries_of_a_killed_run_are_reported_and_removed_by_the_next_farm() {
    // (fault point, directory the temporary is left in, which deploy is
    // killed: the first one, or the second after a first went through)
    let modulefile = format!("temp:{ENV}");
    let cases = [
        ("copy", "envs", 2),
        ("temp:backup", "backup", 2),
        ("temp:link", "envs", 1),
        (modulefile.as_str(), "modules", 1),
        ("temp:.modulerc", "modules", 1),
    ];
    for (point, place, nth) in cases {
        let f = Fixture::new();
        let a = f.pack(ENV, &["common", "only-a"], &[], "a.sqsh");
        let b = f.pack(ENV, &["common", "only-b"], &[], "b.sqsh");
        let killed = if nth == 1 {
            a.clone()
        } else {
            assert_success(&deploy(&f, &a).output().unwrap());
            b.clone()
        };
        let out = deploy(&f, &killed)
            .env("INSTALLER_FAULT", format!("after:{point}"))
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), Some(9), "{point}: {}", stderr(&out));
        let dir = match place {
            "envs" => f.envs.clone(),
            "backup" => f.envs.join(".backup"),
            _ => modules(&f),
        };
        let left = temporaries(&dir);
        assert_eq!(left.len(), 1, "{point}: {left:?} in {}", dir.display());

        // check names it, as a warning.
        let out = installer(&f).arg("check").output().unwrap();
        let report = stdout(&out);
        assert!(
            report.lines().any(|l| l.starts_with("warning: ")
                && l.contains(&format!("/{}: ", left[0]))
                && l.contains("left by an interrupted run")),
            "{point}: {} not reported:\n{report}",
            left[0]
        );

        // The next farm removes it, and says so.
        let out = installer(&f)
            .args(["farm", ENV, "--launcher"])
            .arg(&f.launcher)
            .output()
            .unwrap();
        assert_success(&out);
        assert!(
            stdout(&out).contains(&format!("/{} (", left[0])),
            "{point}: the farm did not remove it:\n{}",
            stdout(&out)
        );
        for dir in [f.envs.clone(), f.envs.join(".backup"), modules(&f)] {
            assert!(temporaries(&dir).is_empty(), "{point}: {:?}", temporaries(&dir));
        }

        // Re-running the killed deploy finishes the job; all is clean.
        assert_success(&deploy(&f, &killed).output().unwrap());
        let out = installer(&f).arg("check").output().unwrap();
        assert_success(&out);
        assert!(!stdout(&out).contains("warning: "), "{point}: {}", stdout(&out));
        assert_eq!(fs::read(f.live(ENV)).unwrap(), fs::read(&killed).unwrap());
    }
}

#[test]
fn i6_check_does_not_call_a_running_deploys_copy_a_leftover_of_a_dead_one() {
    let f = Fixture::new();
    let a = f.pack(ENV, &["common"], &[], "a.sqsh");
    assert_success(&deploy(&f, &a).output().unwrap());
    // A run in progress: it holds the envs dir's lock and has its copy there.
    let held = installer::lock::acquire(&f.envs, false, |_| {}).unwrap();
    fs::write(f.envs.join(format!(".{ENV}.sqsh.deploy-Ab12Cd")), b"partial").unwrap();
    let report = stdout(&installer(&f).arg("check").output().unwrap());
    let line = report
        .lines()
        .find(|l| l.contains(".sqsh.deploy-Ab12Cd"))
        .unwrap_or_else(|| panic!("not reported:\n{report}"));
    assert!(
        line.contains("or of the run that holds") && line.contains(&format!("pid {}", std::process::id())),
        "{line}"
    );
    // What `installer pack -o` writes into the envs dir is never removed.
    fs::write(f.envs.join(".other.sqsh.new-Zz9Yy8"), b"being packed").unwrap();
    drop(held);
    let out = installer(&f)
        .args(["farm", ENV, "--launcher"])
        .arg(&f.launcher)
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(temporaries(&f.envs), vec![".other.sqsh.new-Zz9Yy8".to_string()]);
    let report = stdout(&installer(&f).arg("check").output().unwrap());
    assert!(
        report.contains(".other.sqsh.new-Zz9Yy8: an image being written by `installer pack -o`")
            && report.contains("remove it by hand"),
        "{report}"
    );
}
