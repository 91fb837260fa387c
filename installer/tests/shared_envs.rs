//! Issue 10 item 8: two scripts trees that share one envs dir are
//! serialised. Two trees deploy and roll back the same env in one envs dir
//! from two threads at once while a third party, holding the envs dir's
//! lock as any installer run does, looks at the live image and the backup:
//! every run succeeds, no run ever finds another's temporary file (so none
//! can remove one), the backup is always the image that was live before
//! (no generation lost, backup and live never the same), and both trees
//! end consistent.
mod common;

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::*;

const ENV: &str = "e-1";
/// Operations per tree.
const OPS: usize = 18;

fn names(i: usize) -> Vec<Vec<u8>> {
    vec![b"common".to_vec(), format!("gen-{i:02}").into_bytes()]
}

#[test]
fn i4_two_trees_on_one_envs_dir_are_serialised() {
    let f = Fixture::new();
    // A second scripts tree beside the first, with the same config: its
    // envs_dir ("../envs") is the same directory.
    let scripts2 = f.root().join("scripts2");
    fs::create_dir_all(&scripts2).unwrap();
    fs::copy(f.scripts.join("launcher.toml"), scripts2.join("launcher.toml")).unwrap();
    let trees = [f.scripts.clone(), scripts2.clone()];

    // One image per deploy: generation i holds bin/gen-i.
    let deploys_per_tree = OPS - OPS / 3;
    let mut generation_of: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut images: Vec<PathBuf> = Vec::new();
    for i in 0..2 * deploys_per_tree {
        let image = f.root().join(format!("gen-{i:02}.sqsh"));
        let names = names(i);
        make_image(&f.root().join(format!("src-{i}")), PREFIX, ENV, &files(&names), &image);
        generation_of.insert(fs::read(&image).unwrap(), i);
        images.push(image);
    }
    let generation = |path: &Path| -> Option<usize> {
        let bytes = fs::read(path).ok()?;
        Some(
            *generation_of
                .get(&bytes)
                .unwrap_or_else(|| panic!("{}: not a generation", path.display())),
        )
    };

    let trees_done = AtomicUsize::new(0);
    // Deploys (by generation) that have finished, and the count of
    // snapshots, so that the observer knows what may have happened since.
    let finished: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());
    let snapshots = AtomicU64::new(0);
    let run = |tree: &Path, args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_installer"));
        c.arg("--scripts").arg(tree).args(args).arg("--launcher");
        c.arg(&f.launcher).env_remove("INSTALLER_SCRIPTS");
        c
    };
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for (t, tree) in trees.iter().enumerate() {
            let (images, finished, failures, run, trees_done) = (&images, &finished, &failures, &run, &trees_done);
            scope.spawn(move || {
                let mut next = t * deploys_per_tree;
                for op in 0..OPS {
                    let (mut command, deployed) = if op % 3 == 2 {
                        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_installer"));
                        c.arg("--scripts").arg(tree).args(["rollback", "--env", ENV]);
                        (c, None)
                    } else {
                        let image = images[next].to_str().unwrap().to_string();
                        next += 1;
                        (run(tree, &["deploy", &image, "--env", ENV]), Some(next - 1))
                    };
                    let out = command.output().unwrap();
                    let text = format!("{}{}", stdout(&out), stderr(&out));
                    if !out.status.success() {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("tree {t} op {op}: {}: {text}", out.status));
                    }
                    if text.contains("left by an interrupted run") {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("tree {t} op {op} removed a temporary: {text}"));
                    }
                    if let Some(g) = deployed {
                        finished.lock().unwrap().insert(g);
                    }
                }
                trees_done.fetch_add(1, Ordering::Relaxed);
            });
        }
        // The observer: what a run of either tree sees once it holds the
        // envs dir's lock.
        scope.spawn(|| {
            let mut previous: Option<(Option<usize>, Option<usize>, BTreeSet<usize>)> = None;
            while trees_done.load(Ordering::Relaxed) < 2 {
                let lock = installer::lock::acquire(&f.envs, true, |_| {}).unwrap();
                let finished_before = finished.lock().unwrap().clone();
                let temporaries = f.image_leftovers();
                let (live, backup) = (generation(&f.live(ENV)), generation(&f.envs.join(".backup").join(format!("{ENV}.sqsh"))));
                drop(lock);
                snapshots.fetch_add(1, Ordering::Relaxed);
                assert!(temporaries.is_empty(), "temporaries under the envs lock: {temporaries:?}");
                if let (Some(l), Some(b)) = (live, backup) {
                    assert_ne!(l, b, "backup and live are the same generation");
                }
                // Every deploy and rollback makes the backup the image that
                // was live before it: so after any change, the backup is
                // the live image seen last, or one that went live since.
                if let Some((was_live, was_backup, was_finished)) = &previous {
                    if (live, backup) != (*was_live, *was_backup) {
                        let since: Vec<usize> = (0..images.len()).filter(|g| !was_finished.contains(g)).collect();
                        let possible = |g: Option<usize>| g == *was_live || g == *was_backup || g.is_some_and(|g| since.contains(&g));
                        assert!(
                            possible(backup) && possible(live),
                            "generation lost: (live, backup) went from ({was_live:?}, {was_backup:?}) to ({live:?}, {backup:?})"
                        );
                    }
                }
                previous = Some((live, backup, finished_before));
                std::thread::sleep(Duration::from_millis(3));
            }
        });
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(snapshots.load(Ordering::Relaxed) > 10, "the observer hardly ran");

    // Both trees end consistent once each has rebuilt its farm.
    let (live, backup) = (
        generation(&f.live(ENV)).unwrap(),
        generation(&f.envs.join(".backup").join(format!("{ENV}.sqsh"))).unwrap(),
    );
    assert_ne!(live, backup);
    for tree in &trees {
        assert_success(&run(tree, &["-q", "farm", ENV]).output().unwrap());
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_installer"))
            .arg("--scripts")
            .arg(tree)
            .arg("check")
            .output()
            .unwrap();
        assert_success(&out);
    }
    assert!(f.image_leftovers().is_empty(), "{:?}", f.image_leftovers());
}
