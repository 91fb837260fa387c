//! `installer deploy` and `installer rollback` (I6) on real images: round
//! trips with `check` clean after each, and a SIGKILL after every named
//! step (`INSTALLER_FAULT=after:<step>`) leaving the old or the new image
//! live, with `check` passing once the same command is run again.
mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use common::*;
use installer::deploy::{DEPLOY_STEPS, ROLLBACK_STEPS};

const ENV: &str = "e-1";

fn bytes(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A site with images A (tools a, common) and B (tools b, common) packed.
fn site() -> (Fixture, Vec<u8>, Vec<u8>) {
    let f = Fixture::new();
    let a = f.pack(ENV, &["common", "only-a"], &[], "a.sqsh");
    let b = f.pack(ENV, &["common", "only-b"], &[], "b.sqsh");
    let (a, b) = (bytes(&a), bytes(&b));
    assert_ne!(a, b);
    (f, a, b)
}

fn deployed(f: &Fixture, file: &str) {
    assert_success(&f.deploy(&f.root().join(file), ENV).output().unwrap());
}

fn has_link(f: &Fixture, name: &str) -> bool {
    fs::symlink_metadata(f.bin(ENV).join(name)).is_ok()
}

#[test]
fn i6_deploy_rollback_deploy_round_trip_keeps_check_clean() {
    let (f, a, b) = site();
    deployed(&f, "a.sqsh");
    f.check_clean();
    assert_eq!(bytes(&f.live(ENV)), a);
    assert!(has_link(&f, "only-a"));
    assert_eq!(
        fs::read_link(f.envs.join(ENV)).unwrap(),
        Path::new("/opt/conda").join(ENV)
    );

    deployed(&f, "b.sqsh");
    f.check_clean();
    assert_eq!(bytes(&f.live(ENV)), b);
    assert_eq!(bytes(&f.envs.join(".backup").join(format!("{ENV}.sqsh"))), a);
    assert!(has_link(&f, "only-b") && !has_link(&f, "only-a"));

    let out = f.installer().args(["rollback", "--env", ENV]).output().unwrap();
    assert_success(&out);
    f.check_clean();
    assert_eq!(bytes(&f.live(ENV)), a);
    assert_eq!(
        bytes(&f.envs.join(".backup").join(format!("{ENV}.sqsh"))),
        b,
        "the rolled-back image is the new backup"
    );
    assert!(has_link(&f, "only-a") && !has_link(&f, "only-b"));

    deployed(&f, "b.sqsh");
    f.check_clean();
    assert_eq!(bytes(&f.live(ENV)), b);
    assert!(f.image_leftovers().is_empty(), "{:?}", f.image_leftovers());

    // The same deploy again changes nothing and says so.
    let out = f.deploy(&f.root().join("b.sqsh"), ENV).output().unwrap();
    assert_success(&out);
    assert!(
        stdout(&out).contains("image unchanged") && stdout(&out).contains("unchanged (4 links)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        bytes(&f.envs.join(".backup").join(format!("{ENV}.sqsh"))),
        a,
        "a repeated deploy must not overwrite the backup"
    );
}

#[test]
fn i6_bad_input_changes_nothing() {
    let (f, a, _b) = site();
    deployed(&f, "a.sqsh");
    // Not an image.
    fs::write(f.root().join("junk.sqsh"), b"not squashfs").unwrap();
    let out = f.deploy(&f.root().join("junk.sqsh"), ENV).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("installer: image ") && stderr(&out).lines().count() == 1,
        "{}",
        stderr(&out)
    );
    // An image of another env (no <prefix>/e-1/bin inside).
    let other = f.pack("other", &["x"], &[], "other.sqsh");
    let out = f.deploy(&other, ENV).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("/opt/conda/e-1/bin"), "{}", stderr(&out));
    assert_eq!(bytes(&f.live(ENV)), a);
    // No backup yet: nothing to roll back to.
    let out = f.installer().args(["rollback", "--env", ENV]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("no backup to roll back to"), "{}", stderr(&out));
    assert_eq!(bytes(&f.live(ENV)), a);
    assert!(f.image_leftovers().is_empty(), "{:?}", f.image_leftovers());
    f.check_clean();
}

/// Run `command` with `INSTALLER_FAULT=after:<step>`: it must die of SIGKILL.
fn killed_after(mut command: std::process::Command, step: &str) {
    let out = command
        .env("INSTALLER_FAULT", format!("after:{step}"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(9),
        "step {step}: expected death by SIGKILL, got {} (stderr: {})",
        out.status,
        stderr(&out)
    );
}

/// Every file a killed run left in `<envs>` and the backup directory is
/// named by `check` (issue 10 item 9: a temporary file as a warning, an
/// interrupted rollback's journal as a problem); returns their names.
fn reported_leftovers(f: &Fixture, step: &str) -> Vec<String> {
    let report = stdout(&f.installer().arg("check").output().unwrap());
    let names: Vec<String> = f
        .image_leftovers()
        .iter()
        .map(|p| Path::new(p).file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in &names {
        assert!(
            report.lines().any(
                |l| (l.starts_with("warning: ") || l.starts_with("problem: ")) && l.contains(&format!("/{name}: "))
            ),
            "step {step}: {name} is not reported by check:\n{report}"
        );
    }
    names
}

#[test]
fn i6_deploy_killed_after_every_step_leaves_old_or_new_and_recovers() {
    for step in DEPLOY_STEPS {
        let (f, a, b) = site();
        deployed(&f, "a.sqsh");
        killed_after(f.deploy(&f.root().join("b.sqsh"), ENV), step);
        let live = bytes(&f.live(ENV));
        assert!(
            live == a || live == b,
            "step {step}: the live image is neither the old nor the new one"
        );
        let left = reported_leftovers(&f, step);
        if step == "copy" || step == "sync" {
            assert!(
                left.iter().any(|n| n.contains(".sqsh.deploy-")),
                "step {step}: {left:?}"
            );
        }
        // Re-running the same command finishes the job, and first removes
        // what the killed run left (saying so).
        let out = f.deploy(&f.root().join("b.sqsh"), ENV).output().unwrap();
        assert_success(&out);
        for name in &left {
            assert!(
                stdout(&out).contains(&format!("/{name} (")) && stdout(&out).contains("left by an interrupted run"),
                "step {step}: {name} not removed:\n{}",
                stdout(&out)
            );
        }
        f.check_clean();
        assert_eq!(bytes(&f.live(ENV)), b, "step {step}");
        assert_eq!(
            bytes(&f.envs.join(".backup").join(format!("{ENV}.sqsh"))),
            a,
            "step {step}: backup"
        );
        assert!(f.image_leftovers().is_empty(), "step {step}: {:?}", f.image_leftovers());
        assert!(f.leftovers().is_empty(), "step {step}: {:?}", f.leftovers());
    }
}

#[test]
fn i6_rollback_killed_after_every_step_leaves_old_or_new_and_recovers() {
    for step in ROLLBACK_STEPS {
        let (f, a, b) = site();
        deployed(&f, "a.sqsh");
        deployed(&f, "b.sqsh");
        let mut rollback = f.installer();
        rollback.args(["rollback", "--env", ENV]);
        killed_after(rollback, step);
        let live = bytes(&f.live(ENV));
        assert!(
            live == a || live == b,
            "step {step}: the live image is neither the old nor the new one"
        );
        reported_leftovers(&f, step);
        // `check` says what to do.
        let out = f.installer().arg("check").output().unwrap();
        assert_eq!(out.status.code(), Some(1), "step {step}: {}", stdout(&out));
        assert!(
            stdout(&out).contains(&format!("a rollback of {ENV} was interrupted")),
            "step {step}: {}",
            stdout(&out)
        );
        // Re-running finishes the interrupted rollback (never rolls back twice).
        assert_success(&f.installer().args(["rollback", "--env", ENV]).output().unwrap());
        f.check_clean();
        assert_eq!(bytes(&f.live(ENV)), a, "step {step}");
        assert_eq!(
            bytes(&f.envs.join(".backup").join(format!("{ENV}.sqsh"))),
            b,
            "step {step}: backup"
        );
        assert!(f.image_leftovers().is_empty(), "step {step}: {:?}", f.image_leftovers());
    }
}

#[test]
fn i6_dry_run_changes_nothing() {
    let (f, a, _b) = site();
    deployed(&f, "a.sqsh");
    let before = fs::read_dir(&f.envs).unwrap().count();
    let out = f
        .deploy(&f.root().join("b.sqsh"), ENV)
        .arg("--dry-run")
        .output()
        .unwrap();
    assert_success(&out);
    assert!(stdout(&out).contains("would rename"), "{}", stdout(&out));
    assert_eq!(bytes(&f.live(ENV)), a);
    assert_eq!(fs::read_dir(&f.envs).unwrap().count(), before);
}

#[test]
fn i6_image_replaced_while_waiting_for_the_lock_is_checked_again() {
    let (f, a, _) = site();
    deployed(&f, "a.sqsh");
    let other = f.pack("other", &["x"], &[], "other.sqsh");
    let image = f.root().join("next.sqsh");
    fs::copy(f.root().join("b.sqsh"), &image).unwrap();
    let lock = f.hold_lock();
    let waiting = spawn_waiting(&mut f.deploy(&image, ENV));
    fs::rename(&other, &image).unwrap();
    drop(lock);
    let (code, err) = waiting.finish();
    assert_eq!(bytes(&f.live(ENV)), a, "the live image changed: {err}");
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains(&image.display().to_string()), "{err}");
    assert!(f.image_leftovers().is_empty(), "{:?}", f.image_leftovers());
}

#[test]
fn i6_deploying_the_live_image_again_makes_it_readable() {
    let (f, _, _) = site();
    deployed(&f, "a.sqsh");
    fs::set_permissions(f.live(ENV), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    deployed(&f, "a.sqsh");
    let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(f.live(ENV)).unwrap().permissions());
    assert_eq!(mode & 0o7777, 0o644);
    f.check_clean();
}

#[test]
fn i6_deploy_removes_the_image_an_unfinished_rollback_kept_aside() {
    let (f, a, _) = site();
    deployed(&f, "a.sqsh");
    deployed(&f, "b.sqsh");
    let prev = f.envs.join(".backup").join(format!(".{ENV}.sqsh.prev"));
    fs::write(&prev, &a).unwrap();
    let text = stdout(&f.check_clean());
    assert!(
        text.contains(&format!(
            ".backup/.{ENV}.sqsh.prev: left by an interrupted rollback of {ENV}"
        )),
        "{text}"
    );
    deployed(&f, "a.sqsh");
    assert!(!prev.exists(), "{} is still there", prev.display());
    assert!(f.image_leftovers().is_empty(), "{:?}", f.image_leftovers());
    let text = stdout(&f.check_clean());
    assert!(!text.contains("warning: "), "{text}");
}

#[test]
fn i8_an_activation_value_with_a_control_character_is_not_captured() {
    let f = Fixture::new();
    let image = f.pack(
        ENV,
        &["tool"],
        &[("a.sh", "export TABBED=\"x\ty\"\n"), ("b.sh", "export PLAIN=ok\n")],
        "a.sqsh",
    );
    let out = f
        .deploy(&image, ENV)
        .arg("--modules")
        .arg(f.root().join("modules/conda"))
        .output()
        .unwrap();
    assert_success(&out);
    assert!(
        stderr(&out).contains("activate.d/a.sh not captured (line 1: the value of TABBED contains a control character"),
        "{}",
        stderr(&out)
    );
    let module = fs::read_to_string(f.root().join("modules/conda").join(ENV)).unwrap();
    assert!(!module.contains("TABBED") && !module.contains("\\t"), "{module}");
    assert!(module.contains("setenv PLAIN ok"), "{module}");
    let facts = fs::read_to_string(f.env_dir(ENV).join("env.toml")).unwrap();
    assert!(
        facts.contains("not_captured = [\"etc/conda/activate.d/a.sh\"]") && !facts.contains("TABBED"),
        "{facts}"
    );
}

/// Four images of ENV: tools `common` and `only-<name>`.
fn four(f: &Fixture) -> Vec<Vec<u8>> {
    ["a", "b", "c", "d"]
        .iter()
        .map(|n| bytes(&f.pack(ENV, &["common", &format!("only-{n}")], &[], &format!("{n}.sqsh"))))
        .collect()
}

fn deploy_keep(f: &Fixture, file: &str, keep: &str) -> std::process::Command {
    let mut c = f.deploy(&f.root().join(file), ENV);
    c.args(["--keep", keep]);
    c
}

/// The generations of ENV: (id, bytes, live, latest backup), newest first.
fn generations(f: &Fixture) -> Vec<(String, Vec<u8>, bool, bool)> {
    installer::generations::list(&f.live(ENV), &f.envs.join(".backup"), ENV)
        .into_iter()
        .map(|g| (g.id, bytes(&g.path), g.live, g.latest_backup))
        .collect()
}

fn id_of(f: &Fixture, image: &[u8]) -> String {
    generations(f)
        .into_iter()
        .find(|g| g.1 == image)
        .unwrap_or_else(|| {
            panic!(
                "no generation holds that image: {:?}",
                generations(f).iter().map(|g| &g.0).collect::<Vec<_>>()
            )
        })
        .0
}

#[test]
fn i6_keep_n_generations_rollback_to_any_and_status_lists_them() {
    let f = Fixture::new();
    let img = four(&f);
    for file in ["a.sqsh", "b.sqsh", "c.sqsh", "d.sqsh"] {
        assert_success(&deploy_keep(&f, file, "2").output().unwrap());
        f.check_clean();
    }
    // Live d; backups c (the most recent) and b; a pruned.
    let gens = generations(&f);
    let contents: Vec<&Vec<u8>> = gens.iter().map(|g| &g.1).collect();
    assert_eq!(contents, [&img[3], &img[2], &img[1]]);
    assert!(gens[0].2 && gens[1].3);
    let status = stdout(&f.installer().arg("status").output().unwrap());
    for g in &gens {
        assert!(status.contains(&g.0), "status does not list {}:\n{status}", g.0);
    }
    assert!(
        status.contains("live") && status.contains("backup (rollback)"),
        "{status}"
    );

    // Back to b (not the most recent backup); d becomes the most recent, c is kept.
    let b = id_of(&f, &img[1]);
    assert_success(
        &f.installer()
            .args(["rollback", "--env", ENV, "--to", &b])
            .output()
            .unwrap(),
    );
    f.check_clean();
    assert_eq!(bytes(&f.live(ENV)), img[1]);
    assert!(has_link(&f, "only-b") && !has_link(&f, "only-d"));
    let contents: Vec<Vec<u8>> = generations(&f).into_iter().map(|g| g.1).collect();
    assert_eq!(contents.len(), 3);
    assert!(contents.contains(&img[2]) && contents.contains(&img[3]));
    assert_eq!(bytes(&f.envs.join(".backup").join(format!("{ENV}.sqsh"))), img[3]);
    // IDs are for life: b's is unchanged now that it is live.
    assert_eq!(id_of(&f, &img[1]), b);
    // A plain rollback undoes it.
    assert_success(&f.installer().args(["rollback", "--env", ENV]).output().unwrap());
    assert_eq!(bytes(&f.live(ENV)), img[3]);
    // An unknown ID: exit 4, the IDs listed, nothing changed.
    let out = f
        .installer()
        .args(["rollback", "--env", ENV, "--to", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no generation nope") && stderr(&out).contains("(live)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(bytes(&f.live(ENV)), img[3]);
    assert!(f.image_leftovers().is_empty(), "{:?}", f.image_leftovers());
}

#[test]
fn i6_deploy_with_keep_killed_after_every_step_keeps_every_generation() {
    for step in DEPLOY_STEPS {
        let f = Fixture::new();
        let img = four(&f);
        for file in ["a.sqsh", "b.sqsh", "c.sqsh"] {
            assert_success(&deploy_keep(&f, file, "3").output().unwrap());
        }
        killed_after(deploy_keep(&f, "d.sqsh", "3"), step);
        let live = bytes(&f.live(ENV));
        assert!(live == img[2] || live == img[3], "step {step}: live is neither c nor d");
        // Nothing that was a generation before is lost by the kill.
        let contents: Vec<Vec<u8>> = generations(&f).into_iter().map(|g| g.1).collect();
        for (i, old) in img[..3].iter().enumerate() {
            assert!(contents.contains(old), "step {step}: image {i} lost");
        }
        assert_success(&deploy_keep(&f, "d.sqsh", "3").output().unwrap());
        f.check_clean();
        let contents: Vec<Vec<u8>> = generations(&f).into_iter().map(|g| g.1).collect();
        assert_eq!(
            contents,
            [img[3].clone(), img[2].clone(), img[1].clone(), img[0].clone()],
            "step {step}"
        );
        assert!(f.image_leftovers().is_empty(), "step {step}: {:?}", f.image_leftovers());
    }
}

#[test]
fn i6_rollback_to_killed_after_every_step_leaves_old_or_new_and_recovers() {
    for step in ROLLBACK_STEPS {
        let f = Fixture::new();
        let img = four(&f);
        for file in ["a.sqsh", "b.sqsh", "c.sqsh"] {
            assert_success(&deploy_keep(&f, file, "3").output().unwrap());
        }
        let a = id_of(&f, &img[0]);
        let mut rollback = f.installer();
        rollback.args(["rollback", "--env", ENV, "--to", &a]);
        killed_after(rollback, step);
        let live = bytes(&f.live(ENV));
        assert!(live == img[0] || live == img[2], "step {step}: live is neither a nor c");
        // Between the swap and the backup step the image rolled back from
        // is held by the rollback's `.prev` name (its journal finishes it).
        let mut contents: Vec<Vec<u8>> = generations(&f).into_iter().map(|g| g.1).collect();
        let prev = f.envs.join(".backup").join(format!(".{ENV}.sqsh.prev"));
        if prev.exists() {
            contents.push(bytes(&prev));
        }
        for (i, old) in img[..3].iter().enumerate() {
            assert!(contents.contains(old), "step {step}: image {i} lost");
        }
        assert_success(
            &f.installer()
                .args(["rollback", "--env", ENV, "--to", &a])
                .output()
                .unwrap(),
        );
        f.check_clean();
        assert_eq!(bytes(&f.live(ENV)), img[0], "step {step}");
        assert_eq!(
            bytes(&f.envs.join(".backup").join(format!("{ENV}.sqsh"))),
            img[2],
            "step {step}"
        );
        let contents: Vec<Vec<u8>> = generations(&f).into_iter().map(|g| g.1).collect();
        assert_eq!(contents.len(), 3, "step {step}");
        assert!(f.image_leftovers().is_empty(), "step {step}: {:?}", f.image_leftovers());
    }
}
