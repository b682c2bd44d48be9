//! The tree comparison the tests and the benchmarks share: everything replwatch promises to
//! mirror about an entry (type, permission bits, mtime to the nanosecond, owner when run as
//! root, a file's size and bytes, a symlink's target).
//!
//! `tests/support/mod.rs` declares it; `examples/common/mod.rs` includes the same file by
//! path, so it uses only the crate's ordinary dependencies.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What replwatch promises to mirror about one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub mtime: (i64, i64),
    pub owner: Option<(u32, u32)>,
    pub size: Option<u64>,
    pub content: Option<blake3::Hash>,
    pub target: Option<OsString>,
}

impl Node {
    /// The properties in which `other` differs from `self`.
    pub fn differences(&self, other: &Node) -> Vec<&'static str> {
        [
            ("type", self.kind != other.kind),
            ("mode", self.mode != other.mode),
            ("mtime", self.mtime != other.mtime),
            ("owner", self.owner != other.owner),
            ("size", self.size != other.size),
            ("bytes", self.content != other.content),
            ("target", self.target != other.target),
        ]
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect()
    }
}

/// Every entry below `root` (not `root` itself unless `with_root`), by relative path.
/// Special files are left out (replwatch skips them). Panics if the tree cannot be read.
pub fn listing(root: &Path, with_root: bool) -> BTreeMap<PathBuf, Node> {
    try_listing(root, with_root, true).unwrap_or_else(|e| panic!("{e}"))
}

/// [`listing`], with file bytes hashed only when `contents`, and an error (naming the path)
/// when an entry cannot be read or vanishes while the tree is listed.
pub fn try_listing(
    root: &Path,
    with_root: bool,
    contents: bool,
) -> io::Result<BTreeMap<PathBuf, Node>> {
    let at = |p: &Path, e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", p.display()));
    let mut out = BTreeMap::new();
    let owners = rustix::process::geteuid().is_root();
    for e in walkdir::WalkDir::new(root)
        .follow_links(false)
        .min_depth(if with_root { 0 } else { 1 })
    {
        let e = e.map_err(io::Error::other)?;
        let p = e.path();
        let m = p.symlink_metadata().map_err(|e| at(p, e))?;
        let ft = m.file_type();
        let kind = if ft.is_symlink() {
            "symlink"
        } else if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else {
            continue;
        };
        let file = kind == "file";
        let content = if file && contents {
            let f = fs::File::open(p).map_err(|e| at(p, e))?;
            let mut h = blake3::Hasher::new();
            h.update_reader(f).map_err(|e| at(p, e))?;
            Some(h.finalize())
        } else {
            None
        };
        let target = if kind == "symlink" {
            Some(fs::read_link(p).map_err(|e| at(p, e))?.into_os_string())
        } else {
            None
        };
        let node = Node {
            kind,
            mode: if kind == "symlink" {
                0
            } else {
                m.mode() & 0o7777
            },
            mtime: (m.mtime(), m.mtime_nsec()),
            owner: owners.then(|| (m.uid(), m.gid())),
            size: file.then_some(m.len()),
            content,
            target,
        };
        out.insert(p.strip_prefix(root).unwrap().to_path_buf(), node);
    }
    Ok(out)
}

/// Differences between two trees (their roots included), one per entry, each starting with
/// a line that names the entry; empty when they mirror each other.
pub fn tree_diff(src: &Path, rep: &Path) -> Vec<String> {
    try_tree_diff(src, rep, true).unwrap_or_else(|e| panic!("{e}"))
}

/// [`tree_diff`], comparing file bytes only when `contents` (sizes always), and an error
/// instead of a panic when a tree cannot be listed.
pub fn try_tree_diff(src: &Path, rep: &Path, contents: bool) -> io::Result<Vec<String>> {
    let a = try_listing(src, true, contents)?;
    let b = try_listing(rep, true, contents)?;
    // The root's relative path is empty: show it as `.`.
    let name = |p: &Path| {
        if p.as_os_str().is_empty() {
            ".".to_string()
        } else {
            p.display().to_string()
        }
    };
    let mut diffs = Vec::new();
    for (p, n) in &a {
        match b.get(p) {
            None => diffs.push(format!("missing in replica: {}", name(p))),
            Some(m) if m != n => diffs.push(format!(
                "{} differs: {}\n  src {:?}\n  rep {:?}",
                n.differences(m).join(", "),
                name(p),
                n,
                m
            )),
            _ => {}
        }
    }
    for p in b.keys() {
        if !a.contains_key(p) {
            diffs.push(format!("extra in replica: {}", name(p)));
        }
    }
    Ok(diffs)
}

#[track_caller]
pub fn assert_mirrored(src: &Path, rep: &Path) {
    let d = tree_diff(src, rep);
    assert!(
        d.is_empty(),
        "replica differs from source:\n{}",
        d.join("\n")
    );
}
