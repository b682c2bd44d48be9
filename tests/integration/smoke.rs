//! The smallest end-to-end check: a tree is mirrored and a second pass changes nothing.
use crate::support::*;

#[test]
fn mirrors_a_small_tree_and_is_idempotent() {
    let env = Env::new();
    write(env.src.join("a/b/c.txt"), "hello");
    mkdir(env.src.join("empty"));
    symlink("a/b/c.txt", env.src.join("link"));
    set_mtime(env.src.join("a"), 1_000_000_000, 123_456_789);
    env.once_ok();
    let before = inodes(&env.rep);
    env.once_ok();
    assert_eq!(before, inodes(&env.rep), "second pass replaced entries");
}
