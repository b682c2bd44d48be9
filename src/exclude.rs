//! Exclude patterns: paths replwatch leaves alone on both sides.
//!
//! gitignore syntax (the `ignore` crate's matcher, the one ripgrep uses): `*.log` anywhere,
//! `build/` directories only, `/top` anchored at SRC's root, `**/cache/**`, `!keep.log` to
//! re-include. As with rsync without `--delete-excluded`, an excluded path is neither copied
//! nor deleted, and the watcher's events under it never reach the queue.

use std::path::Path;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

#[derive(Clone, Debug)]
pub struct Excludes {
    matcher: Option<Gitignore>,
}

impl Excludes {
    pub fn new(patterns: &[String]) -> Result<Excludes, String> {
        if patterns.is_empty() {
            return Ok(Excludes { matcher: None });
        }
        let mut b = GitignoreBuilder::new("");
        for p in patterns {
            b.add_line(None, p).map_err(|e| format!("'{p}': {e}"))?;
        }
        let matcher = b.build().map_err(|e| e.to_string())?;
        Ok(Excludes {
            matcher: Some(matcher),
        })
    }

    pub fn none() -> Excludes {
        Excludes { matcher: None }
    }

    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// Is the SRC-relative `rel` (a directory if `is_dir`) excluded, itself or through an
    /// excluded ancestor?
    pub fn excludes(&self, rel: &Path, is_dir: bool) -> bool {
        match &self.matcher {
            None => false,
            Some(m) => {
                !rel.as_os_str().is_empty()
                    && m.matched_path_or_any_parents(rel, is_dir).is_ignore()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(p: &[&str]) -> Excludes {
        Excludes::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn extension_anywhere() {
        let e = ex(&["*.tmp"]);
        assert!(e.excludes(Path::new("a.tmp"), false));
        assert!(e.excludes(Path::new("d/e/a.tmp"), false));
        assert!(!e.excludes(Path::new("a.txt"), false));
    }

    #[test]
    fn directory_only_patterns_cover_their_contents() {
        let e = ex(&["build/"]);
        assert!(e.excludes(Path::new("build"), true));
        assert!(!e.excludes(Path::new("build"), false));
        assert!(e.excludes(Path::new("x/build/out.o"), false));
    }

    #[test]
    fn anchored_vs_unanchored() {
        let e = ex(&["/top"]);
        assert!(e.excludes(Path::new("top"), true));
        assert!(!e.excludes(Path::new("sub/top"), true));
        let e = ex(&["cache"]);
        assert!(e.excludes(Path::new("sub/cache"), true));
    }

    #[test]
    fn negation_re_includes() {
        let e = ex(&["*.log", "!keep.log"]);
        assert!(e.excludes(Path::new("a.log"), false));
        assert!(!e.excludes(Path::new("keep.log"), false));
    }

    #[test]
    fn nothing_excluded_by_default() {
        assert!(!Excludes::none().excludes(Path::new("a"), false));
        assert!(Excludes::new(&[]).unwrap().is_empty());
    }
}
