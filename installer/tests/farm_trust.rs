//! Issue 10 ("What to build"): `installer farm` never links an override
//! that the launcher's L19 trust rule would refuse: another uid's script,
//! one others can write, or anything in an overrides directory others can
//! write, sticky (1777) or not. Run as root (to give files to uid 2002).
mod common;

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::Path;

use common::*;

const ENV: &str = "e-1";
const OTHER_UID: u32 = 2002;

fn script(path: &Path, mode: u32, uid: Option<u32>) {
    fs::write(path, "#!/bin/sh\necho override\n").unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    if let Some(uid) = uid {
        chown(path, Some(uid), Some(uid)).unwrap();
    }
}

fn override_names(f: &Fixture) -> Vec<String> {
    let Ok(entries) = fs::read_dir(f.env_dir(ENV).join("overrides")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn farm(f: &Fixture) -> (String, String) {
    let out = f
        .installer()
        .args(["farm", ENV, "--launcher"])
        .arg(&f.launcher)
        .output()
        .unwrap();
    assert_success(&out);
    (stdout(&out), stderr(&out))
}

#[test]
fn l19_farm_links_no_override_the_launcher_would_refuse() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (chown to uid {OTHER_UID})");
        return;
    }
    let f = Fixture::new();
    f.image(ENV, &[Entry::File(b"python3")]);
    let site = f.scripts.join("overrides");
    let per_env = site.join(ENV);
    fs::create_dir_all(&per_env).unwrap();
    for dir in [&site, &per_env] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    script(&site.join("good.sh"), 0o755, None);
    script(&site.join("theirs.sh"), 0o755, Some(OTHER_UID));
    script(&site.join("writable.sh"), 0o757, None);
    script(&per_env.join("env-good.sh"), 0o755, None);
    // A per-env override refused: the site's one of that name is linked
    // instead (the launcher would find that one next anyway).
    script(&site.join("both.sh"), 0o755, None);
    script(&per_env.join("both.sh"), 0o755, Some(OTHER_UID));

    let (_, err) = farm(&f);
    assert_eq!(override_names(&f), ["both.sh", "env-good.sh", "good.sh"]);
    assert_eq!(
        fs::read_link(f.env_dir(ENV).join("overrides/both.sh")).unwrap(),
        Path::new("../../overrides/both.sh")
    );
    for refused in [
        site.join("theirs.sh"),
        site.join("writable.sh"),
        per_env.join("both.sh"),
    ] {
        let line = err
            .lines()
            .find(|l| {
                l.contains(&format!(
                    "{}: not linked into {ENV}.d/overrides (L19)",
                    refused.display()
                ))
            })
            .unwrap_or_else(|| panic!("no warning for {}:\n{err}", refused.display()));
        assert!(line.starts_with("installer: warning: "), "{line}");
    }
    assert!(
        err.contains("belongs to uid 2002") || err.contains("uid 2002"),
        "the owner is named:\n{err}"
    );
    // check agrees with the farm (no missing link) and names each file.
    let report = stdout(&f.installer().arg("check").output().unwrap());
    assert!(!report.contains(": missing"), "{report}");
    for refused in ["theirs.sh", "writable.sh"] {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("problem: ") && l.contains(refused)),
            "{refused}:\n{report}"
        );
    }

    // The attack of issue 10 item 2: a sticky overrides dir others can
    // write, holding another uid's script. Nothing in it is linked, not
    // even root's own scripts (anyone could have put them there).
    fs::set_permissions(&site, fs::Permissions::from_mode(0o1777)).unwrap();
    script(&site.join("python3.sh"), 0o755, Some(OTHER_UID));
    let (_, err) = farm(&f);
    assert_eq!(override_names(&f), ["env-good.sh"], "{err}");
    for name in ["python3.sh", "good.sh", "both.sh"] {
        assert!(
            err.contains(&format!(
                "{}: not linked into {ENV}.d/overrides (L19)",
                site.join(name).display()
            )),
            "{name}:\n{err}"
        );
    }
    assert!(err.contains("1777"), "the mode is named:\n{err}");
    let out = f.installer().arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(!stdout(&out).contains(": missing"), "{}", stdout(&out));
    // Fixed: the links come back.
    fs::set_permissions(&site, fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_file(site.join("python3.sh")).unwrap();
    fs::remove_file(site.join("theirs.sh")).unwrap();
    fs::remove_file(site.join("writable.sh")).unwrap();
    fs::remove_file(per_env.join("both.sh")).unwrap();
    let (_, err) = farm(&f);
    assert!(!err.contains("not linked"), "{err}");
    assert_eq!(override_names(&f), ["both.sh", "env-good.sh", "good.sh"]);
    f.check_clean();
}
