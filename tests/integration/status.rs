//! `LOGDIR/replwatch.status.json` and `replwatch status` (issue 14): the live process keeps
//! its state, last pass, last change and failing entries current; `status` exits 0 in sync,
//! 3 when not (entries failing, SRC gone), 1 when no live replwatch is behind the record.
use crate::support::live::*;
use crate::support::*;

use std::fs;
use std::process::Output;
use std::time::Duration;

use rustix::process::Signal;
use serde_json::Value;

fn status(env: &Env, json: bool) -> Output {
    let mut c = replwatch();
    c.arg("status").arg("-l").arg(&env.logs);
    if json {
        c.arg("--json");
    }
    c.output().unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn record(env: &Env) -> (Option<i32>, Value) {
    let out = status(env, true);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", describe(&out)));
    (out.status.code(), v)
}

/// Poll `status --json` until `cond` holds; fail with the last record otherwise.
#[track_caller]
fn wait_record(env: &Env, mut cond: impl FnMut(Option<i32>, &Value) -> bool) -> Value {
    let mut last = Value::Null;
    if wait_until(LOG_WAIT, || {
        let (code, v) = record(env);
        let ok = cond(code, &v);
        last = v;
        ok
    }) {
        last
    } else {
        panic!("status never matched; last: {last:#}");
    }
}

#[test]
fn status_while_watching_says_in_sync_with_the_last_change() {
    let env = env_with(&[("a.txt", b"alpha")]);
    let live = Live::start(&env);
    write(env.src.join("new.txt"), "fresh");
    converge(&env);
    let v = wait_record(&env, |code, v| {
        code == Some(0) && v["last_change"]["path"] == "new.txt"
    });
    assert_eq!(v["state"], "watching");
    assert_eq!(v["running"], true);
    assert_eq!(v["in_sync"], true);
    assert_eq!(v["pid"], live.pid().as_raw_nonzero().get());
    assert_eq!(v["last_pass"]["trigger"], "initial");
    assert_eq!(v["last_pass"]["created"], 1);
    assert_eq!(v["failing_count"], 0);
    assert!(v["last_change"]["lag_ms"].as_u64().is_some(), "{v:#}");

    let out = status(&env, false);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let t = text(&out);
    assert!(t.contains("is watching since"), "{t}");
    assert!(t.contains("last change  copy new.txt"), "{t}");
    assert!(t.ends_with("replica: in sync\n"), "{t}");
}

#[test]
fn status_while_source_is_gone_says_paused() {
    let env = env_with(&[("a.txt", b"alpha")]);
    let _live = Live::start(&env);
    let away = env.root().join("src-away");
    fs::rename(&env.src, &away).unwrap();
    let v = wait_record(&env, |code, v| {
        code == Some(3) && v["state"] == "paused-source-gone"
    });
    assert_eq!(v["in_sync"], false);
    assert_eq!(v["running"], true);
    let t = text(&status(&env, false));
    assert!(t.contains("is paused: SRC gone since"), "{t}");
    assert!(t.contains("NOT in sync"), "{t}");

    fs::rename(&away, &env.src).unwrap();
    wait_record(&env, |code, v| code == Some(0) && v["state"] == "watching");
}

#[test]
fn status_lists_failing_entries_with_their_errors() {
    let env = env_with(&[("ok.txt", b"fine"), ("locked/secret.txt", b"hidden")]);
    let cmd = unprivileged(&env, &["--debounce", "50ms", "-i", "10m", "-d", "5m"]);
    chmod(env.src.join("locked/secret.txt"), 0o000);
    let mut live = Live::spawn(&env, cmd);
    live.wait_watching();
    let v = wait_record(&env, |code, v| code == Some(3) && v["failing_count"] == 1);
    assert_eq!(v["failing"][0]["path"], "locked/secret.txt", "{v:#}");
    let err = v["failing"][0]["error"].as_str().unwrap();
    assert!(err.contains("Permission denied"), "{err}");
    let out = status(&env, false);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let t = text(&out);
    assert!(t.contains("failing      1 entries"), "{t}");
    assert!(t.contains("locked/secret.txt: "), "{t}");

    // Readable again: the next look at it mirrors it, and the status says so.
    chmod(env.src.join("locked/secret.txt"), 0o644);
    write(env.src.join("locked/poke.txt"), "poke");
    wait_record(&env, |code, v| code == Some(0) && v["failing_count"] == 0);
}

#[test]
fn status_after_the_process_died_is_stale_and_exits_1() {
    let env = env_with(&[("a.txt", b"alpha")]);
    let mut live = Live::start(&env);
    wait_record(&env, |code, _| code == Some(0));
    live.signal(Signal::KILL);
    assert!(live.wait_exit(Duration::from_secs(10)).is_some());

    let out = status(&env, false);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let t = text(&out);
    assert!(t.contains("not running: this record is stale"), "{t}");
    let (code, v) = record(&env);
    assert_eq!(code, Some(1));
    assert_eq!(v["running"], false);
    assert_eq!(
        v["state"], "watching",
        "the record is the dead process's last word"
    );
}

#[test]
fn status_after_a_clean_stop_or_without_a_record_exits_1() {
    let env = env_with(&[("a.txt", b"alpha")]);
    let out = status(&env, false);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out).contains("no replwatch status record"),
        "{}",
        describe(&out)
    );

    let mut live = Live::start(&env);
    live.signal(Signal::TERM);
    assert_eq!(
        live.wait_exit(Duration::from_secs(20)).unwrap().code(),
        Some(0)
    );
    let out = status(&env, false);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(text(&out).contains("is not running: pid"), "{}", text(&out));
    assert_eq!(record(&env).1["state"], "stopped");
}
