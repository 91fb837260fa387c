//! L19 trust: no user but root and the installation's owner may be able to
//! change what a launch reads or runs.
//!
//! `check` walks a path the way the kernel resolves it — every component,
//! every symlink hop (up to the kernel's own limit of 40), `..` taken from
//! the directory really reached — and refuses the file when someone else
//! could change it or the way to it:
//!
//! - the file is writable by others, or owned by an untrusted uid;
//! - a directory a name is looked up in is writable by others without the
//!   sticky bit, or owned by an untrusted uid (an owner can rename entries);
//! - in a sticky directory writable by others, the entry looked up is owned
//!   by an untrusted uid (the sticky bit lets the entry's owner replace it);
//! - the file was looked up only in case it exists (`Lookup::Optional`: an
//!   `overrides/NAME.sh`, `env.toml`) in a directory others can write, sticky
//!   or not: anyone could have put it there.
//!
//! Trusted uids: root, the installation's owner (`Owner`) and the caller
//! itself (its own files can only be changed by itself and root).
//! Everything is asked through the `Probe`: one `lstat` per directory on the
//! way and one `readlink` per symlink hop. Nothing is cached across calls.

use std::cell::Cell;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::error::LaunchError;
use crate::probe::{FileStat, Probe};

/// Symbolic links followed in one walk: the kernel's `MAXSYMLINKS`. Past it
/// `open` fails with `ELOOP`, and so does the walk.
pub const MAX_SYMLINK_HOPS: usize = 40;
/// `/proc/sys/kernel/overflowuid`: how a user namespace shows unmapped owners.
const OVERFLOW_UID: u32 = 65534;
/// `..` climbs above the working directory (relative paths only).
const MAX_CLIMB: usize = 4096;

/// Why a file is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Named on purpose (the config, a `script =` target): absent is an error.
    Required,
    /// Looked up in case it exists (`env.toml`, `overrides/NAME.sh`): its
    /// mere presence changes the launch, so in a directory others can write
    /// it is never trusted, whoever owns it.
    Optional,
}

/// Where the installation's owner — the one uid trusted besides root and
/// the caller — comes from.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// The file checked is the default config, `launcher.toml` beside the
    /// launcher: the owner of the directory it is in (`<scripts>`), who can
    /// replace the launcher binary itself anyway.
    OfItsDirectory,
    /// The file checked is the config named by `LAUNCHER_CONFIG`: its own
    /// owner (the caller chose that file).
    OfItself,
    /// Any later file of a launch whose config, already checked, is
    /// `config`; `named`: it came from `LAUNCHER_CONFIG`.
    FromConfig { config: &'a Path, named: bool },
    /// Known already (tools such as `installer check`).
    Uid(u32),
}

/// One file to check.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub path: &'a Path,
    /// What the file is, for messages: `config`, `env.toml`, …
    pub what: &'static str,
    pub lookup: Lookup,
    /// `path`'s own `lstat`, when already known (the `fstat` after an
    /// `O_NOFOLLOW` open): saves one call.
    pub known: Option<FileStat>,
    pub owner: Owner<'a>,
}

/// Check `req.path` (L19); returns the `lstat` of the file finally reached.
pub fn check(probe: &dyn Probe, req: &Request) -> Result<FileStat, LaunchError> {
    if let Some((prefix, stat)) = checked_prefix(probe, req) {
        // The config's directory was walked when the config was checked:
        // start there (one `stat`) instead of at `/`.
        let rest = req.path.strip_prefix(&prefix).unwrap_or(req.path);
        let mut walk = Walk::new(probe, req, Some(Dir { path: prefix, stat }));
        match walk.run(rest) {
            Ok(found) => return walk.judge(found),
            Err(Stop::Fail(e)) => return Err(e),
            // `..` above the config's directory: walk the whole path.
            Err(Stop::Restart) => {}
        }
    }
    let mut walk = Walk::new(probe, req, None);
    match walk.run(req.path) {
        Ok(found) => walk.judge(found),
        Err(Stop::Fail(e)) => Err(e),
        Err(Stop::Restart) => unreachable!("only a walk from a prefix restarts"),
    }
}

/// For a later file below the checked config's directory: that directory
/// and its `stat`.
fn checked_prefix(probe: &dyn Probe, req: &Request) -> Option<(PathBuf, FileStat)> {
    let Owner::FromConfig { config, .. } = req.owner else {
        return None;
    };
    let dir = config.parent().filter(|d| !d.as_os_str().is_empty())?;
    let rest = req.path.strip_prefix(dir).ok()?;
    if rest.as_os_str().is_empty() {
        return None;
    }
    let stat = probe.stat(dir).ok().filter(FileStat::is_dir)?;
    Some((dir.to_path_buf(), stat))
}

/// A directory reached, by its physical path (symlinks resolved).
#[derive(Debug, Clone)]
struct Dir {
    path: PathBuf,
    stat: FileStat,
}

/// Something to judge once the walk is done (the installation's owner may
/// only be known then).
#[derive(Debug)]
enum Check {
    /// A name is looked up in this directory.
    LookIn(Dir),
    /// `path`, owned by `uid`, is an entry of `dir`, which is sticky and
    /// writable by others.
    SharedEntry { dir: Dir, path: PathBuf, uid: u32 },
    /// The file looked up in case it exists is in `dir`, which others can
    /// write.
    OptionalIn { dir: Dir, path: PathBuf },
    /// The file finally reached.
    File { path: PathBuf, stat: FileStat },
}

enum Stop {
    Fail(LaunchError),
    /// A walk from a prefix met `..` above it.
    Restart,
}

impl From<LaunchError> for Stop {
    fn from(e: LaunchError) -> Stop {
        Stop::Fail(e)
    }
}

enum Part {
    Root,
    Up,
    /// A name; `true` for the last name of the requested path itself.
    Name(OsString, bool),
}

fn parts(path: &Path, requested: bool) -> Vec<Part> {
    let mut parts: Vec<Part> = path
        .components()
        .filter_map(|c| match c {
            Component::RootDir => Some(Part::Root),
            Component::ParentDir => Some(Part::Up),
            Component::Normal(name) => Some(Part::Name(name.to_os_string(), false)),
            Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    if requested {
        if let Some(Part::Name(_, last)) = parts.last_mut() {
            *last = true;
        }
    }
    parts
}

struct Walk<'a> {
    probe: &'a dyn Probe,
    req: &'a Request<'a>,
    /// Directories from the base of the walk to where it is now.
    dirs: Vec<Dir>,
    from_prefix: bool,
    hops: usize,
    climbs: usize,
    checks: Vec<Check>,
    /// `lstat("/")`, asked once.
    root: Option<FileStat>,
    /// Owner of the directory the requested name was looked up in.
    parent_uid: Option<u32>,
}

impl<'a> Walk<'a> {
    fn new(probe: &'a dyn Probe, req: &'a Request<'a>, prefix: Option<Dir>) -> Walk<'a> {
        Walk {
            probe,
            req,
            from_prefix: prefix.is_some(),
            dirs: prefix.into_iter().collect(),
            hops: 0,
            climbs: 0,
            checks: Vec::new(),
            root: None,
            parent_uid: None,
        }
    }

    fn unreadable(&self, at: &Path, e: std::io::Error) -> Stop {
        let reason = if at == self.req.path {
            e.to_string()
        } else {
            format!("{}: {e}", at.display())
        };
        Stop::Fail(LaunchError::Unreadable {
            what: self.req.what,
            path: self.req.path.to_path_buf(),
            reason,
        })
    }

    /// Resolve `path` (relative to the walk's base) and return the path and
    /// `lstat` of what it names.
    fn run(&mut self, path: &Path) -> Result<(PathBuf, FileStat), Stop> {
        let mut pending = parts(path, true);
        pending.reverse();
        if self.dirs.is_empty() && !matches!(pending.last(), Some(Part::Root)) {
            // A relative path: the kernel starts at the working directory.
            let here = PathBuf::from(".");
            let stat = self.probe.stat(&here).map_err(|e| self.unreadable(&here, e))?;
            self.dirs.push(Dir { path: here, stat });
        }
        // What the walk last arrived at: `None` means the current directory.
        let mut last: Option<(PathBuf, FileStat)> = None;
        while let Some(part) = pending.pop() {
            last = None;
            match part {
                Part::Root => {
                    let stat = match self.root {
                        Some(stat) => stat,
                        None => {
                            let root = Path::new("/");
                            let stat = self.probe.lstat(root).map_err(|e| self.unreadable(root, e))?;
                            *self.root.insert(stat)
                        }
                    };
                    self.dirs.clear();
                    self.dirs.push(Dir {
                        path: PathBuf::from("/"),
                        stat,
                    });
                }
                Part::Up => self.up()?,
                Part::Name(name, requested) => {
                    let dir = self.dirs.last().expect("the walk always has a base").clone();
                    let path = dir.path.join(&name);
                    let known = self.req.known.filter(|_| requested);
                    let stat = match known {
                        Some(stat) => stat,
                        None => self.probe.lstat(&path).map_err(|e| self.unreadable(&path, e))?,
                    };
                    self.checks.push(Check::LookIn(dir.clone()));
                    let shared = dir.stat.world_writable();
                    if shared && dir.stat.sticky() {
                        self.checks.push(Check::SharedEntry {
                            dir: dir.clone(),
                            path: path.clone(),
                            uid: stat.uid,
                        });
                    }
                    if requested {
                        self.parent_uid = Some(dir.stat.uid);
                        if shared && self.req.lookup == Lookup::Optional {
                            self.checks.push(Check::OptionalIn {
                                dir,
                                path: path.clone(),
                            });
                        }
                    }
                    if stat.is_symlink() {
                        self.hops += 1;
                        if self.hops > MAX_SYMLINK_HOPS {
                            return Err(Stop::Fail(LaunchError::Insecure {
                                what: self.req.what,
                                path: self.req.path.to_path_buf(),
                                why: format!(
                                    "more than {MAX_SYMLINK_HOPS} symbolic links on the way (the kernel's limit)"
                                ),
                                fix: "point the link at the file itself".into(),
                            }));
                        }
                        let target = self.probe.read_link(&path).map_err(|e| self.unreadable(&path, e))?;
                        let mut more = parts(&target, false);
                        more.reverse();
                        pending.extend(more);
                    } else if stat.is_dir() {
                        self.dirs.push(Dir {
                            path: path.clone(),
                            stat,
                        });
                        last = Some((path, stat));
                    } else if pending.is_empty() {
                        last = Some((path, stat));
                    } else {
                        let e = std::io::Error::from_raw_os_error(libc::ENOTDIR);
                        return Err(self.unreadable(&path, e));
                    }
                }
            }
        }
        Ok(last.unwrap_or_else(|| {
            let dir = self.dirs.last().expect("the walk always has a base");
            (dir.path.clone(), dir.stat)
        }))
    }

    /// `..`: back to the directory the walk came from; at `/` it stays; from
    /// the working directory it climbs, checking the parent like any
    /// directory on the way.
    fn up(&mut self) -> Result<(), Stop> {
        if self.dirs.len() > 1 {
            self.dirs.pop();
            return Ok(());
        }
        let base = self.dirs[0].clone();
        if base.path == Path::new("/") {
            return Ok(());
        }
        if self.from_prefix {
            return Err(Stop::Restart);
        }
        self.climbs += 1;
        let parent = if base.path == Path::new(".") {
            PathBuf::from("..")
        } else {
            base.path.join("..")
        };
        let stat = self.probe.stat(&parent).map_err(|e| self.unreadable(&parent, e))?;
        if stat.same_file(&base.stat) || self.climbs > MAX_CLIMB {
            return Ok(()); // the root directory
        }
        let dir = Dir { path: parent, stat };
        self.checks.push(Check::LookIn(dir.clone()));
        if stat.world_writable() && stat.sticky() {
            self.checks.push(Check::SharedEntry {
                dir: dir.clone(),
                path: base.path,
                uid: base.stat.uid,
            });
        }
        self.dirs[0] = dir;
        Ok(())
    }

    /// Judge what the walk saw, in order; the first problem is the error.
    fn judge(mut self, (path, stat): (PathBuf, FileStat)) -> Result<FileStat, LaunchError> {
        self.checks.push(Check::File { path, stat });
        let judge = Judge {
            walk: &self,
            found: stat,
            owner: Cell::new(None),
            caller: Cell::new(None),
        };
        for check in &self.checks {
            judge.check(check)?;
        }
        Ok(stat)
    }
}

/// Who is trusted, worked out lazily: a tree owned by root needs neither
/// the owner's uid nor the caller's.
struct Judge<'w> {
    walk: &'w Walk<'w>,
    found: FileStat,
    owner: Cell<Option<u32>>,
    caller: Cell<Option<u32>>,
}

fn mode(stat: &FileStat) -> String {
    format!("{:04o}", stat.mode & 0o7777)
}

impl Judge<'_> {
    fn owner(&self) -> u32 {
        if let Some(uid) = self.owner.get() {
            return uid;
        }
        let walk = self.walk;
        let uid = match walk.req.owner {
            Owner::Uid(uid) => uid,
            Owner::OfItself => self.found.uid,
            Owner::OfItsDirectory => walk.parent_uid.unwrap_or(0),
            // The walk started at the config's directory: its stat says.
            Owner::FromConfig { named: false, .. } if walk.from_prefix => walk.dirs.first().map_or(0, |d| d.stat.uid),
            Owner::FromConfig { config, named } => {
                let at = if named { Some(config) } else { config.parent() };
                // Unknown (the config has gone meanwhile): root alone.
                at.filter(|p| !p.as_os_str().is_empty())
                    .and_then(|p| walk.probe.stat(p).ok())
                    .map_or(0, |s| s.uid)
            }
        };
        self.owner.set(Some(uid));
        uid
    }

    fn caller(&self) -> u32 {
        if let Some(uid) = self.caller.get() {
            return uid;
        }
        let uid = self.walk.probe.caller_uid();
        self.caller.set(Some(uid));
        uid
    }

    fn trusted(&self, uid: u32) -> bool {
        uid == 0 || uid == self.owner() || uid == self.caller() || self.unmapped(uid)
    }

    /// In the native runtime's user namespace (an ordinary user's launch)
    /// every owner but the caller shows as the overflow uid, root included:
    /// the real owners cannot be told apart there. The outside hop, on the
    /// host, already walked the same paths with their real owners before it
    /// started the container; so inside such a namespace the overflow uid is
    /// taken as trusted, never on a host (docs/native-runtime.md).
    fn unmapped(&self, uid: u32) -> bool {
        uid == OVERFLOW_UID && self.walk.probe.in_partial_user_namespace()
    }

    /// "root", "root and uid 1000 (the installation's owner)", …
    fn who(&self) -> String {
        let owner = self.owner();
        let caller = self.caller();
        let mut who = String::from("root");
        if owner != 0 {
            who.push_str(&format!(", uid {owner} (the installation's owner)"));
        }
        if caller != 0 && caller != owner {
            who.push_str(&format!(", uid {caller} (you)"));
        }
        who
    }

    fn refuse(&self, why: String, fix: String) -> LaunchError {
        LaunchError::Insecure {
            what: self.walk.req.what,
            path: self.walk.req.path.to_path_buf(),
            why,
            fix,
        }
    }

    /// `it` for the requested path itself, else the path.
    fn name(&self, path: &Path) -> String {
        if path == self.walk.req.path {
            "it".into()
        } else {
            path.display().to_string()
        }
    }

    fn check(&self, check: &Check) -> Result<(), LaunchError> {
        match check {
            Check::LookIn(dir) => {
                let shown = dir.path.display();
                if dir.stat.world_writable() && !dir.stat.sticky() {
                    return Err(self.refuse(
                        format!(
                            "directory {shown} is writable by others (mode {}): anyone can rename what is in it",
                            mode(&dir.stat)
                        ),
                        format!("chmod o-w {shown}"),
                    ));
                }
                if !self.trusted(dir.stat.uid) {
                    return Err(self.refuse(
                        format!(
                            "directory {shown} belongs to uid {}, who can rename what is in it (trusted: {})",
                            dir.stat.uid,
                            self.who()
                        ),
                        format!("chown root {shown} (or the installation's owner), or move the installation out of it"),
                    ));
                }
            }
            Check::SharedEntry { dir, path, uid } => {
                if !self.trusted(*uid) {
                    return Err(self.refuse(
                        format!(
                            "{} belongs to uid {uid} in {}, a directory others can write (mode {}), so uid {uid} can replace it (trusted: {})",
                            path.display(),
                            dir.path.display(),
                            mode(&dir.stat),
                            self.who()
                        ),
                        format!(
                            "chmod o-w {}, and remove {} if you did not put it there",
                            dir.path.display(),
                            path.display()
                        ),
                    ));
                }
            }
            Check::OptionalIn { dir, path } => {
                return Err(self.refuse(
                    format!(
                        "it is in {}, a directory others can write (mode {}), where anyone could have put it",
                        dir.path.display(),
                        mode(&dir.stat)
                    ),
                    format!(
                        "chmod o-w {}, and remove {} if you did not put it there",
                        dir.path.display(),
                        path.display()
                    ),
                ));
            }
            Check::File { path, stat } => {
                let shown = path.display();
                if stat.world_writable() {
                    return Err(self.refuse(
                        format!("{} is writable by others (mode {})", self.name(path), mode(stat)),
                        format!("chmod o-w {shown}"),
                    ));
                }
                if !self.trusted(stat.uid) {
                    return Err(self.refuse(
                        format!(
                            "{} belongs to uid {}, who can change it (trusted: {})",
                            self.name(path),
                            stat.uid,
                            self.who()
                        ),
                        format!("chown root {shown} (or the installation's owner), or remove it if you did not put it there"),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::ffi::OsString;
    use std::io;

    #[derive(Clone, Debug)]
    enum Kind {
        Dir,
        File,
        Link(PathBuf),
    }

    #[derive(Clone, Debug)]
    struct Node {
        kind: Kind,
        mode: u32,
        uid: u32,
        ino: u64,
    }

    /// An in-memory file system: absolute paths, lexically normal.
    struct FakeFs {
        nodes: HashMap<PathBuf, Node>,
        cwd: PathBuf,
        caller: u32,
        /// Runs in a user namespace mapping only some uids.
        userns: bool,
        calls: RefCell<Vec<String>>,
    }

    fn lexical(path: &Path) -> PathBuf {
        let mut out = PathBuf::from("/");
        for c in path.components() {
            match c {
                Component::ParentDir => {
                    out.pop();
                }
                Component::Normal(n) => out.push(n),
                _ => {}
            }
        }
        out
    }

    impl FakeFs {
        /// `/` owned by root, 0755; the caller is uid 1000.
        fn new() -> FakeFs {
            let mut fs = FakeFs {
                nodes: HashMap::new(),
                cwd: PathBuf::from("/"),
                caller: 1000,
                userns: false,
                calls: RefCell::new(Vec::new()),
            };
            fs.add("/", Kind::Dir, 0o755, 0);
            fs
        }

        fn add(&mut self, path: &str, kind: Kind, mode: u32, uid: u32) -> &mut FakeFs {
            let ino = self.nodes.len() as u64 + 1;
            self.nodes.insert(PathBuf::from(path), Node { kind, mode, uid, ino });
            self
        }
        fn dir(&mut self, path: &str, mode: u32, uid: u32) -> &mut FakeFs {
            self.add(path, Kind::Dir, mode, uid)
        }
        fn file(&mut self, path: &str, mode: u32, uid: u32) -> &mut FakeFs {
            self.add(path, Kind::File, mode, uid)
        }
        fn link(&mut self, path: &str, target: &str, uid: u32) -> &mut FakeFs {
            self.add(path, Kind::Link(PathBuf::from(target)), 0o777, uid)
        }

        fn absolute(&self, path: &Path) -> PathBuf {
            lexical(&self.cwd.join(path))
        }

        fn node(&self, path: &Path) -> io::Result<&Node> {
            self.nodes
                .get(path)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
        }

        fn to_stat(node: &Node) -> FileStat {
            let kind = match node.kind {
                Kind::Dir => libc::S_IFDIR,
                Kind::File => libc::S_IFREG,
                Kind::Link(_) => libc::S_IFLNK,
            };
            FileStat {
                mode: kind | node.mode,
                dev: 1,
                ino: node.ino,
                uid: node.uid,
            }
        }

        /// Resolve every link (tests only use paths without `..` after links).
        fn follow(&self, path: &Path, depth: usize) -> io::Result<PathBuf> {
            assert!(depth < 100, "link loop in the fake");
            let mut out = PathBuf::from("/");
            for c in path.components() {
                match c {
                    Component::Normal(n) => {
                        out.push(n);
                        if let Kind::Link(target) = &self.node(&out)?.kind {
                            let base = out.parent().unwrap().to_path_buf();
                            out = self.follow(&lexical(&base.join(target)), depth + 1)?;
                        }
                    }
                    Component::ParentDir => {
                        out.pop();
                    }
                    _ => {}
                }
            }
            Ok(out)
        }

        fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
    }

    impl Probe for FakeFs {
        fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
            self.calls.borrow_mut().push(format!("readlink {}", path.display()));
            match &self.node(&self.absolute(path))?.kind {
                Kind::Link(target) => Ok(target.clone()),
                _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
            }
        }
        fn stat(&self, path: &Path) -> io::Result<FileStat> {
            self.calls.borrow_mut().push(format!("stat {}", path.display()));
            let real = self.follow(&self.absolute(path), 0)?;
            Ok(FakeFs::to_stat(self.node(&real)?))
        }
        fn lstat(&self, path: &Path) -> io::Result<FileStat> {
            self.calls.borrow_mut().push(format!("lstat {}", path.display()));
            Ok(FakeFs::to_stat(self.node(&self.absolute(path))?))
        }
        fn read_file(&self, _: &Path) -> io::Result<crate::probe::FileRead> {
            unimplemented!("the walk never reads")
        }
        fn readable(&self, _: &Path) -> bool {
            unimplemented!("the walk never asks")
        }
        fn list_dir(&self, _: &Path) -> io::Result<Vec<OsString>> {
            unimplemented!("the walk never lists")
        }
        fn caller_uid(&self) -> u32 {
            self.calls.borrow_mut().push("geteuid".into());
            self.caller
        }
        fn in_partial_user_namespace(&self) -> bool {
            self.userns
        }
    }

    /// `/apps/scripts/{launcher.toml, e-1.d/env.toml, overrides/}`, all
    /// root's, 0755/0644.
    fn site() -> FakeFs {
        let mut fs = FakeFs::new();
        fs.dir("/apps", 0o755, 0)
            .dir("/apps/scripts", 0o755, 0)
            .file("/apps/scripts/launcher.toml", 0o644, 0)
            .dir("/apps/scripts/e-1.d", 0o755, 0)
            .file("/apps/scripts/e-1.d/env.toml", 0o644, 0)
            .dir("/apps/scripts/overrides", 0o755, 0);
        fs
    }

    fn request<'a>(path: &'a str, lookup: Lookup, owner: Owner<'a>) -> Request<'a> {
        Request {
            path: Path::new(path),
            what: "thing",
            lookup,
            known: None,
            owner,
        }
    }

    fn config(fs: &FakeFs) -> Result<FileStat, LaunchError> {
        let path = "/apps/scripts/launcher.toml";
        let known = fs.lstat(Path::new(path)).ok();
        fs.calls.borrow_mut().clear();
        let mut req = request(path, Lookup::Required, Owner::OfItsDirectory);
        req.known = known;
        check(fs, &req)
    }

    /// A later file of the launch whose config is `site()`'s.
    fn from_config() -> Owner<'static> {
        Owner::FromConfig {
            config: Path::new("/apps/scripts/launcher.toml"),
            named: false,
        }
    }

    /// The error line and its hint.
    fn refused(result: Result<FileStat, LaunchError>) -> (String, String) {
        let e = result.expect_err("refused");
        assert_eq!(e.exit_code(), 125);
        let hint = e.hint().expect("a hint");
        assert!(!hint.contains("+t"), "the sticky bit is no fix: {hint}");
        (e.to_string(), hint)
    }

    #[test]
    fn l19_l23_root_owned_tree_costs_one_lstat_per_directory() {
        let fs = site();
        config(&fs).unwrap();
        assert_eq!(fs.calls(), ["lstat /", "lstat /apps", "lstat /apps/scripts"]);
    }

    #[test]
    fn l19_world_writable_ancestor_is_refused_naming_it() {
        let mut fs = site();
        fs.dir("/apps", 0o777, 0);
        let (line, hint) = refused(config(&fs));
        assert_eq!(
            line,
            "refusing thing /apps/scripts/launcher.toml: directory /apps is writable by others (mode 0777): \
             anyone can rename what is in it"
        );
        assert_eq!(hint, "hint: chmod o-w /apps");
    }

    #[test]
    fn l19_file_writable_by_others_or_owned_by_another_user_is_refused() {
        let mut fs = site();
        fs.file("/apps/scripts/launcher.toml", 0o666, 0);
        let (line, hint) = refused(config(&fs));
        assert!(line.ends_with(": it is writable by others (mode 0666)"), "{line}");
        assert_eq!(hint, "hint: chmod o-w /apps/scripts/launcher.toml");
        fs.file("/apps/scripts/launcher.toml", 0o644, 2002);
        let (line, _) = refused(config(&fs));
        assert!(
            line.contains("it belongs to uid 2002, who can change it (trusted: root, uid 1000 (you))"),
            "{line}"
        );
    }

    #[test]
    fn l19_overflow_uid_is_trusted_only_inside_a_partial_user_namespace() {
        // What an ordinary user's native-runtime container shows: every
        // owner but the caller as 65534.
        let mut fs = site();
        fs.dir("/", 0o755, OVERFLOW_UID).dir("/apps", 0o755, OVERFLOW_UID);
        let (line, _) = refused(config(&fs));
        assert!(
            line.contains("65534"),
            "on a host, nobody's directory is not trusted: {line}"
        );
        fs.userns = true;
        config(&fs).unwrap();
    }

    #[test]
    fn l19_directory_owned_by_another_user_is_refused() {
        let mut fs = site();
        fs.dir("/apps", 0o755, 2002);
        let (line, hint) = refused(config(&fs));
        assert!(
            line.contains("directory /apps belongs to uid 2002, who can rename what is in it"),
            "{line}"
        );
        assert!(hint.contains("chown root /apps"), "{hint}");
    }

    #[test]
    fn l19_owner_is_the_owner_of_the_configs_directory() {
        // A tree owned by a service account (uid 500) is fine…
        let mut fs = site();
        fs.dir("/apps/scripts", 0o755, 500)
            .file("/apps/scripts/launcher.toml", 0o644, 500);
        config(&fs).unwrap();
        assert!(
            !fs.calls().contains(&"geteuid".to_string()),
            "owner known from the walk"
        );
        // …and so are its later files; another uid's are not.
        fs.file("/apps/scripts/e-1.d/env.toml", 0o644, 500);
        check(
            &fs,
            &request("/apps/scripts/e-1.d/env.toml", Lookup::Optional, from_config()),
        )
        .unwrap();
        fs.file("/apps/scripts/e-1.d/env.toml", 0o644, 501);
        let (line, _) = refused(check(
            &fs,
            &request("/apps/scripts/e-1.d/env.toml", Lookup::Optional, from_config()),
        ));
        assert!(line.contains("uid 501"), "{line}");
        assert!(line.contains("uid 500 (the installation's owner)"), "{line}");
        // A config owned by someone else than the directory's owner is not.
        fs.dir("/apps/scripts", 0o755, 0);
        let (line, _) = refused(config(&fs));
        assert!(line.contains("it belongs to uid 500"), "{line}");
    }

    #[test]
    fn l19_launcher_config_is_trusted_by_its_own_owner_and_so_are_the_callers_files() {
        let mut fs = FakeFs::new();
        fs.dir("/home", 0o755, 0)
            .dir("/home/u", 0o700, 1500)
            .file("/home/u/my.toml", 0o644, 1500)
            .dir("/tmp", 0o1777, 0)
            .file("/tmp/mine.sh", 0o755, 1000);
        check(&fs, &request("/home/u/my.toml", Lookup::Required, Owner::OfItself)).unwrap();
        let named = Owner::FromConfig {
            config: Path::new("/home/u/my.toml"),
            named: true,
        };
        check(&fs, &request("/tmp/mine.sh", Lookup::Required, named)).unwrap();
        fs.file("/tmp/mine.sh", 0o755, 2002);
        let (line, _) = refused(check(&fs, &request("/tmp/mine.sh", Lookup::Required, named)));
        assert!(
            line.contains("/tmp/mine.sh belongs to uid 2002 in /tmp, a directory others can write (mode 1777)"),
            "{line}"
        );
    }

    #[test]
    fn l19_sticky_directory_protects_only_entries_of_trusted_users() {
        let mut fs = FakeFs::new();
        fs.dir("/tmp", 0o1777, 0)
            .dir("/tmp/site", 0o755, 0)
            .file("/tmp/site/x.sh", 0o755, 0)
            .dir("/tmp/evil", 0o755, 2002)
            .file("/tmp/evil/x.sh", 0o755, 0);
        check(&fs, &request("/tmp/site/x.sh", Lookup::Required, Owner::Uid(0))).unwrap();
        let (line, hint) = refused(check(&fs, &request("/tmp/evil/x.sh", Lookup::Required, Owner::Uid(0))));
        assert!(
            line.contains("/tmp/evil belongs to uid 2002 in /tmp, a directory others can write (mode 1777), so uid 2002 can replace it"),
            "{line}"
        );
        assert_eq!(
            hint,
            "hint: chmod o-w /tmp, and remove /tmp/evil if you did not put it there"
        );
    }

    #[test]
    fn l19_optional_file_in_a_directory_others_can_write_is_never_trusted() {
        let mut fs = site();
        fs.dir("/apps/scripts/overrides", 0o1777, 0)
            .file("/apps/scripts/overrides/python3.sh", 0o755, 0);
        let path = "/apps/scripts/overrides/python3.sh";
        let (line, _) = refused(check(&fs, &request(path, Lookup::Optional, from_config())));
        assert!(
            line.contains("it is in /apps/scripts/overrides, a directory others can write (mode 1777), where anyone could have put it"),
            "{line}"
        );
        // Named on purpose and owned by root: the sticky bit protects it.
        check(&fs, &request(path, Lookup::Required, from_config())).unwrap();
    }

    #[test]
    fn l19_symlink_hops_are_followed_as_far_as_the_kernel_does() {
        let mut fs = site();
        fs.dir("/drop", 0o777, 0).file("/drop/hello.sh", 0o755, 0);
        // 12 hops, the last one into a directory anyone can write.
        for i in 0..12 {
            let target = if i == 11 {
                "/drop/hello.sh".to_string()
            } else {
                format!("l{}", i + 1)
            };
            fs.link(&format!("/apps/scripts/l{i}"), &target, 0);
        }
        let (line, _) = refused(check(
            &fs,
            &request("/apps/scripts/l0", Lookup::Required, from_config()),
        ));
        assert!(line.contains("directory /drop is writable by others"), "{line}");
        // 40 hops to a safe file pass; 41 are refused like the kernel's ELOOP.
        let mut fs = site();
        fs.file("/apps/f", 0o644, 0);
        for i in 0..41 {
            let target = if i == 40 {
                "/apps/f".to_string()
            } else {
                format!("l{}", i + 1)
            };
            fs.link(&format!("/apps/l{i}"), &target, 0);
        }
        check(&fs, &request("/apps/l1", Lookup::Required, Owner::Uid(0))).unwrap();
        let (line, _) = refused(check(&fs, &request("/apps/l0", Lookup::Required, Owner::Uid(0))));
        assert!(line.contains("more than 40 symbolic links"), "{line}");
    }

    #[test]
    fn l19_dot_dot_is_taken_from_the_directory_really_reached() {
        let mut fs = site();
        // /apps/scripts/x -> /srv/a/b, so x/.. is /srv/a, not /apps/scripts.
        fs.dir("/srv", 0o755, 0)
            .dir("/srv/a", 0o777, 0)
            .dir("/srv/a/b", 0o755, 0)
            .file("/srv/a/f.sh", 0o755, 0)
            .file("/apps/scripts/f.sh", 0o755, 0)
            .link("/apps/scripts/x", "/srv/a/b", 0);
        let (line, _) = refused(check(
            &fs,
            &request("/apps/scripts/x/../f.sh", Lookup::Required, Owner::Uid(0)),
        ));
        assert!(line.contains("directory /srv/a is writable by others"), "{line}");
        // `..` after a component others can write.
        fs.dir("/apps/pub", 0o777, 0).dir("/apps/pub/tools", 0o755, 0);
        let (line, _) = refused(check(
            &fs,
            &request("/apps/pub/tools/../../scripts/f.sh", Lookup::Required, Owner::Uid(0)),
        ));
        assert!(line.contains("directory /apps/pub is writable by others"), "{line}");
        check(
            &fs,
            &request("/apps/scripts/../scripts/f.sh", Lookup::Required, Owner::Uid(0)),
        )
        .unwrap();
    }

    #[test]
    fn l19_relative_path_starts_at_the_working_directory() {
        let mut fs = site();
        fs.dir("/w", 0o777, 0).file("/w/f", 0o644, 0).file("/apps/f", 0o644, 0);
        fs.cwd = PathBuf::from("/w");
        let (line, _) = refused(check(&fs, &request("f", Lookup::Required, Owner::Uid(0))));
        assert!(line.contains("directory . is writable by others"), "{line}");
        fs.cwd = PathBuf::from("/apps/scripts");
        check(&fs, &request("../f", Lookup::Required, Owner::Uid(0))).unwrap();
        fs.dir("/apps", 0o777, 0);
        let (line, _) = refused(check(&fs, &request("../f", Lookup::Required, Owner::Uid(0))));
        assert!(line.contains("directory .. is writable by others"), "{line}");
    }

    #[test]
    fn l19_l23_later_files_start_at_the_checked_config_directory() {
        let fs = site();
        check(
            &fs,
            &request("/apps/scripts/e-1.d/env.toml", Lookup::Optional, from_config()),
        )
        .unwrap();
        assert_eq!(
            fs.calls(),
            [
                "stat /apps/scripts",
                "lstat /apps/scripts/e-1.d",
                "lstat /apps/scripts/e-1.d/env.toml"
            ]
        );
        // `..` above it: the whole path is walked instead.
        let mut fs = site();
        fs.dir("/apps/envs", 0o777, 0).file("/apps/envs/x.sh", 0o755, 0);
        let (line, _) = refused(check(
            &fs,
            &request("/apps/scripts/../envs/x.sh", Lookup::Required, from_config()),
        ));
        assert!(line.contains("directory /apps/envs is writable by others"), "{line}");
    }

    #[test]
    fn l19_a_vanished_component_is_unreadable_not_a_panic() {
        let fs = site();
        let e = check(&fs, &request("/apps/nope/f", Lookup::Required, Owner::Uid(0))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read thing /apps/nope/f: /apps/nope: No such file or directory (os error 2)"
        );
    }
}
