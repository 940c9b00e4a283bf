//! Confined file access for the tools (git, flux, helm charts): every path is opened through a
//! cap-std directory handle on a root, one component at a time, never following a symlink.
//!
//! There are no string checks on resolved paths here: each step is an `openat` relative to the
//! previous directory's descriptor with `O_NOFOLLOW` (cap-std's `open_dir_nofollow` and
//! `FollowSymlinks::No`), inside cap-std's sandbox, so neither a symlink nor `..` at any depth can
//! leave the root — and nothing is created before a bad component is met, because directories
//! are created only as the walk reaches them. Writes go to a fresh temporary file that is renamed
//! over the target, so an existing inode (a hard link to somewhere else) is never written into.

use super::ToolError;
use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt, PermissionsExt};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// Why a confined operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ConfinedError {
    /// The path itself is not acceptable (absolute, `..`, empty, NUL byte).
    #[error("path `{path}` is refused: {why}")]
    Refused { path: String, why: String },
    #[error("`{path}` is a symlink; bosun does not follow symlinks in {root}: remove the link and use the real path inside it")]
    Symlink { path: String, root: String },
    #[error("`{path}` is a file, not a directory")]
    NotDir { path: String },
    #[error("`{path}` is a directory")]
    IsDir { path: String },
    #[error("`{path}` does not exist")]
    NotFound { path: String },
    #[error("`{path}` is larger than {max} bytes")]
    TooLarge { path: String, max: u64 },
    #[error("{path}: {detail}")]
    Io { path: String, detail: String },
}

impl From<ConfinedError> for ToolError {
    fn from(e: ConfinedError) -> Self {
        match e {
            ConfinedError::Refused { .. } => ToolError::InvalidArguments(e.to_string()),
            other => ToolError::Failed(other.to_string()),
        }
    }
}

/// A path relative to a root: only normal components (`.` is dropped), no `..`, not absolute,
/// no NUL byte, not empty. This is argument parsing; the confinement itself is `Root`'s.
pub fn relative(p: &str) -> Result<PathBuf, ConfinedError> {
    let bad = |why: &str| ConfinedError::Refused {
        path: p.to_string(),
        why: why.to_string(),
    };
    if p.is_empty() || p.len() > 4096 || p.contains('\0') {
        return Err(bad("empty, too long or has a NUL byte"));
    }
    let mut out = PathBuf::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir => return Err(bad("`..` leaves the directory")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(bad("use a path relative to the directory"))
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(bad("it names the directory itself"));
    }
    Ok(out)
}

/// A directory that file access is confined to.
pub struct Root {
    dir: Dir,
    shown: PathBuf,
}

impl std::fmt::Debug for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Root({})", self.shown.display())
    }
}

fn io(path: &Path, e: std::io::Error) -> ConfinedError {
    if e.kind() == std::io::ErrorKind::NotFound {
        return ConfinedError::NotFound {
            path: path.display().to_string(),
        };
    }
    ConfinedError::Io {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

impl Root {
    /// Open `path` (trusted: the runtime's workspace, a clone it made, a chart the caller named)
    /// as the root; everything below it is reached only through this handle.
    pub fn open(path: &Path) -> Result<Self, ConfinedError> {
        let dir =
            Dir::open_ambient_dir(path, cap_std::ambient_authority()).map_err(|e| io(path, e))?;
        Ok(Self {
            dir,
            shown: path.to_path_buf(),
        })
    }

    /// Open `path`, creating it (and its parents) first if needed — for the runtime's own
    /// directories in the workspace.
    pub fn create(path: &Path) -> Result<Self, ConfinedError> {
        std::fs::create_dir_all(path).map_err(|e| io(path, e))?;
        Self::open(path)
    }

    /// The root as it was named.
    pub fn path(&self) -> &Path {
        &self.shown
    }

    fn symlink(&self, rel: &Path) -> ConfinedError {
        ConfinedError::Symlink {
            path: rel.display().to_string(),
            root: self.shown.display().to_string(),
        }
    }

    /// Walk to the directory `rel` one component at a time without following symlinks;
    /// with `create`, missing directories are made as the walk reaches them.
    fn walk(&self, rel: &Path, create: bool) -> Result<Dir, ConfinedError> {
        let mut cur = self.dir.try_clone().map_err(|e| io(&self.shown, e))?;
        let mut seen = PathBuf::new();
        for c in rel.components() {
            let name = match c {
                Component::Normal(s) => s,
                Component::CurDir => continue,
                _ => {
                    return Err(ConfinedError::Refused {
                        path: rel.display().to_string(),
                        why: "only relative paths without `..` are allowed".into(),
                    })
                }
            };
            seen.push(name);
            match cur.symlink_metadata(name) {
                Ok(m) if m.file_type().is_symlink() => return Err(self.symlink(&seen)),
                Ok(m) if !m.is_dir() => {
                    return Err(ConfinedError::NotDir {
                        path: seen.display().to_string(),
                    })
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                    match cur.create_dir(name) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(io(&seen, e)),
                    }
                }
                Err(e) => return Err(io(&seen, e)),
            }
            // the real check: O_NOFOLLOW relative to the previous directory's descriptor
            cur = cur
                .open_dir_nofollow(name)
                .map_err(|e| match cur.symlink_metadata(name) {
                    Ok(m) if m.file_type().is_symlink() => self.symlink(&seen),
                    _ => io(&seen, e),
                })?;
        }
        Ok(cur)
    }

    fn split(rel: &Path) -> Result<(&Path, &std::ffi::OsStr), ConfinedError> {
        let name = rel.file_name().ok_or_else(|| ConfinedError::Refused {
            path: rel.display().to_string(),
            why: "it has no file name".into(),
        })?;
        Ok((rel.parent().unwrap_or(Path::new("")), name))
    }

    /// A directory below the root as a root of its own (must exist; no symlinks on the way).
    pub fn subdir(&self, rel: &Path) -> Result<Root, ConfinedError> {
        Ok(Root {
            dir: self.walk(rel, false)?,
            shown: self.shown.join(rel),
        })
    }

    /// A directory below the root, created as needed, as a root of its own.
    pub fn create_subdir(&self, rel: &Path) -> Result<Root, ConfinedError> {
        Ok(Root {
            dir: self.walk(rel, true)?,
            shown: self.shown.join(rel),
        })
    }

    /// Whether `rel` exists (without following a symlink in its last component).
    pub fn exists(&self, rel: &Path) -> bool {
        let Ok((parent, name)) = Self::split(rel) else {
            return false;
        };
        self.walk(parent, false)
            .is_ok_and(|d| d.symlink_metadata(name).is_ok())
    }

    /// Read the regular file `rel`, at most `max` bytes (larger files are refused).
    pub fn read(&self, rel: &Path, max: u64) -> Result<Vec<u8>, ConfinedError> {
        let (parent, name) = Self::split(rel)?;
        let dir = self.walk(parent, false)?;
        read_in(&dir, name, rel, max, &self.shown)
    }

    /// Write `bytes` to `rel` (parents created as needed) with `mode`: a new file renamed over
    /// the old one. Returns whether a file existed there before.
    pub fn write(&self, rel: &Path, bytes: &[u8], mode: u32) -> Result<bool, ConfinedError> {
        let (parent, name) = Self::split(rel)?;
        // refuse before anything is created when the parent path is a file or a symlink
        let dir = self.walk(parent, true)?;
        let existed = match dir.symlink_metadata(name) {
            Ok(m) if m.file_type().is_symlink() => return Err(self.symlink(rel)),
            Ok(m) if m.is_dir() => {
                return Err(ConfinedError::IsDir {
                    path: rel.display().to_string(),
                })
            }
            Ok(_) => true,
            Err(_) => false,
        };
        let tmp = format!(
            ".{}.bosun-{}",
            name.to_string_lossy(),
            super::sha256_hex(
                format!("{:?}{}", std::time::SystemTime::now(), std::process::id()).as_bytes()
            )
            .get(..12)
            .unwrap_or("tmp")
        );
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true).mode(mode);
        opts.follow(FollowSymlinks::No);
        let result = (|| {
            let mut f = dir.open_with(&tmp, &opts).map_err(|e| io(rel, e))?;
            f.write_all(bytes).map_err(|e| io(rel, e))?;
            f.set_permissions(cap_std::fs::Permissions::from_mode(mode))
                .map_err(|e| io(rel, e))?;
            f.sync_all().map_err(|e| io(rel, e))?;
            dir.rename(&tmp, &dir, name).map_err(|e| io(rel, e))
        })();
        if result.is_err() {
            let _ = dir.remove_file(&tmp);
        }
        result.map(|()| existed)
    }

    /// Remove the file (or symlink: the link itself, never its target) `rel`.
    pub fn remove_file(&self, rel: &Path) -> Result<(), ConfinedError> {
        let (parent, name) = Self::split(rel)?;
        let dir = self.walk(parent, false)?;
        match dir.symlink_metadata(name) {
            Ok(m) if m.is_dir() => Err(ConfinedError::IsDir {
                path: rel.display().to_string(),
            }),
            Ok(_) => dir.remove_file_or_symlink(name).map_err(|e| io(rel, e)),
            Err(e) => Err(io(rel, e)),
        }
    }

    /// Every entry below the directory `under` (the root when empty), skipping `.git`, as
    /// paths relative to the root, sorted; at most `cap`. Symlinks are listed, never entered.
    pub fn list(&self, under: &Path, cap: usize) -> Result<Vec<Entry>, ConfinedError> {
        let start = self.walk(under, false)?;
        let mut out = Vec::new();
        let mut stack = vec![(start, under.to_path_buf())];
        while let Some((d, at)) = stack.pop() {
            let rd = d.entries().map_err(|e| io(&at, e))?;
            for e in rd {
                let e = e.map_err(|e| io(&at, e))?;
                let name = e.file_name();
                if name == ".git" {
                    continue;
                }
                let rel = at.join(&name);
                let ft = e.file_type().map_err(|e| io(&rel, e))?;
                if ft.is_symlink() {
                    out.push(Entry {
                        path: rel,
                        kind: EntryKind::Symlink,
                    });
                } else if ft.is_dir() {
                    let sub = d.open_dir_nofollow(&name).map_err(|e| io(&rel, e))?;
                    stack.push((sub, rel));
                } else if ft.is_file() {
                    out.push(Entry {
                        path: rel,
                        kind: EntryKind::File,
                    });
                }
                if out.len() >= cap {
                    out.sort();
                    return Ok(out);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Copy every regular file below the root into `dest` (a fresh directory), refusing any
    /// symlink and more than `max` bytes in all; returns the hash of the copied tree (relative
    /// path + bytes of each file, in path order). `.git` is left out.
    pub fn copy_tree(&self, dest: &Root, max: u64) -> Result<String, ConfinedError> {
        self.tree(Some(dest), max)
    }

    /// The hash `copy_tree` would return, without copying.
    pub fn hash_tree(&self, max: u64) -> Result<String, ConfinedError> {
        self.tree(None, max)
    }

    fn tree(&self, dest: Option<&Root>, max: u64) -> Result<String, ConfinedError> {
        use sha2::{Digest, Sha256};
        let entries = self.list(Path::new(""), 100_000)?;
        let mut h = Sha256::new();
        let mut total = 0u64;
        for e in &entries {
            if e.kind == EntryKind::Symlink {
                return Err(self.symlink(&e.path));
            }
            let b = self.read(&e.path, max.saturating_sub(total))?;
            total += b.len() as u64;
            h.update(e.path.to_string_lossy().as_bytes());
            h.update([0]);
            h.update((b.len() as u64).to_le_bytes());
            h.update(&b);
            if let Some(d) = dest {
                d.write(&e.path, &b, 0o600)?;
            }
        }
        Ok(format!("{:x}", h.finalize()))
    }
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub path: PathBuf,
    pub kind: EntryKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    File,
    Symlink,
}

fn read_in(
    dir: &Dir,
    name: &std::ffi::OsStr,
    rel: &Path,
    max: u64,
    root: &Path,
) -> Result<Vec<u8>, ConfinedError> {
    match dir.symlink_metadata(name) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(ConfinedError::Symlink {
                path: rel.display().to_string(),
                root: root.display().to_string(),
            })
        }
        Ok(m) if m.is_dir() => {
            return Err(ConfinedError::IsDir {
                path: rel.display().to_string(),
            })
        }
        Ok(_) => {}
        Err(e) => return Err(io(rel, e)),
    }
    let mut opts = OpenOptions::new();
    opts.read(true);
    opts.follow(FollowSymlinks::No);
    let f = dir.open_with(name, &opts).map_err(|e| io(rel, e))?;
    let meta = f.metadata().map_err(|e| io(rel, e))?;
    if !meta.is_file() {
        return Err(ConfinedError::Io {
            path: rel.display().to_string(),
            detail: "not a regular file".into(),
        });
    }
    if meta.len() > max {
        return Err(ConfinedError::TooLarge {
            path: rel.display().to_string(),
            max,
        });
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(max.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| io(rel, e))?;
    if buf.len() as u64 > max {
        return Err(ConfinedError::TooLarge {
            path: rel.display().to_string(),
            max,
        });
    }
    Ok(buf)
}

/// Read a single file named by an absolute or relative host path (e.g. a chart archive the
/// caller named): its directory is opened as the root and the file itself is not followed if
/// it is a symlink.
pub fn read_file_at(path: &Path, max: u64) -> Result<Vec<u8>, ConfinedError> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| ConfinedError::Refused {
        path: path.display().to_string(),
        why: "it has no file name".into(),
    })?;
    let root = Root::open(parent)?;
    read_in(&root.dir, name, Path::new(name), max, parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_and_dotdot_never_leave_the_root() {
        let ws = tempfile::tempdir().expect("ws");
        let outside = tempfile::tempdir().expect("outside");
        std::fs::write(outside.path().join("victim"), "keep").expect("victim");
        let root = Root::open(ws.path()).expect("root");
        std::os::unix::fs::symlink(outside.path(), ws.path().join("link")).expect("symlink");
        std::os::unix::fs::symlink(outside.path().join("victim"), ws.path().join("f"))
            .expect("symlink");
        for p in ["link/x.yaml", "link/a/b/x.yaml", "f", "link/victim"] {
            let e = root.write(Path::new(p), b"x", 0o644).expect_err(p);
            assert!(matches!(e, ConfinedError::Symlink { .. }), "{p}: {e}");
            assert!(root.read(Path::new(p), 10).is_err(), "{p}");
        }
        assert!(root.write(Path::new("../x"), b"x", 0o644).is_err());
        assert!(root.write(Path::new("/tmp/x"), b"x", 0o644).is_err());
        assert!(relative("a/../../x").is_err() && relative("/etc/x").is_err());
        assert_eq!(
            std::fs::read_to_string(outside.path().join("victim")).expect("read"),
            "keep"
        );
        assert_eq!(std::fs::read_dir(outside.path()).expect("ls").count(), 1);
        // a file in the middle of a path is not a directory; nothing is created
        root.write(Path::new("a/b.yaml"), b"1", 0o644)
            .expect("write");
        assert!(root.write(Path::new("a/b.yaml/c"), b"1", 0o644).is_err());
        assert!(!root
            .write(Path::new("a/c/d.yaml"), b"2", 0o644)
            .expect("new"));
        assert!(root
            .write(Path::new("a/c/d.yaml"), b"3", 0o644)
            .expect("again"));
        assert_eq!(root.read(Path::new("a/c/d.yaml"), 10).expect("read"), b"3");
        let listed: Vec<_> = root
            .list(Path::new(""), 100)
            .expect("list")
            .into_iter()
            .map(|e| e.path.display().to_string())
            .collect();
        assert_eq!(listed, ["a/b.yaml", "a/c/d.yaml", "f", "link"]);
        assert!(root.hash_tree(1 << 20).is_err(), "symlinks refused");
    }
}
