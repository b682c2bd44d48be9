//! The tree walk: one directory pair after another (listed ahead by `readers`), scan both
//! sides, plan, hand the actions to a sink (through the executor's workers for copies), and
//! queue the subdirectories to descend.
//!
//! A full pass walks the whole tree; a batch compares the directories watcher events pointed
//! at and walks whole only what is new. Memory is bounded by the few largest directories being
//! listed and the depth, never the whole tree.

use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;

use crate::entry::{Entry, Kind};
use crate::exclude::Excludes;
use crate::exec::{BATCH_BYTES, BATCH_FILES, DirState, Job, new_state, release, with_workers};
use crate::handle::{open_child_dir, open_dir_beneath};
use crate::links::{Found, LinkSets};
use crate::plan::{Action, PlanOptions, plan_dir, rename_matches, reserve_root};
use crate::queue::Batch;
use crate::readers::{
    Ahead, Fault, Opened, Readers, ReplicaSide, Request, list_pair, open_checked, open_request,
};
use crate::report::{Counters, Reporter};
use crate::scan::{Listing, stat_entry};
use crate::sink::Sink;
use crate::tempname::is_temp_name;

/// Directory levels whose handles queued subdirectories keep. Deeper down, a subdirectory is
/// opened from the roots by its path (beneath them, no symlinks) and checked to be the
/// directory its listing showed, so a walk holds a bounded number of descriptors whatever the
/// depth.
const HELD_DEPTH: usize = 32;

/// Directories whose handles queued subdirectories keep, at most, wherever they are: a walk
/// that reads ahead works on several paths at once, and each would otherwise keep its levels'
/// handles. Past this, subdirectories are reopened and checked as deep ones are.
const HELD_DIRS: usize = 32;

/// What a walk needs besides its sink.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) reporter: &'a Reporter,
    pub(crate) counters: &'a Counters,
    pub(crate) plan: PlanOptions,
    pub(crate) excludes: &'a Excludes,
    pub(crate) stop: &'a AtomicBool,
    /// The run's hard-link sets (used when `plan.hard_links`).
    pub(crate) links: &'a LinkSets,
    /// SRC's and REPLICA's roots for this walk (REPLICA's is `None` in a dry run without one).
    pub(crate) roots: (&'a OwnedFd, Option<&'a OwnedFd>),
}

pub(crate) struct Walk<'a> {
    sink: &'a dyn Sink,
    pub(crate) ctx: Ctx<'a>,
    jobs: Option<SyncSender<Job>>,
    stack: Vec<Request>,
    /// Subdirectories taken off the stack, in the order they are worked on: being read ahead
    /// by the readers, or to be read here.
    ahead: VecDeque<Next>,
    /// Directories whose handles queued subdirectories keep (see [`HELD_DIRS`]).
    held: usize,
    /// The readers listing queued subdirectories ahead of the walker (a walk that writes),
    /// and how many subdirectories they are given at once.
    readers: Option<(Readers, usize)>,
    /// The batch being synced, if this is not a full pass: which entries to walk whole.
    batch: Option<&'a Batch>,
    /// Renames a sink that does not write (dry run, look-ahead) counted as done: later
    /// listings of the replica are read as if they had happened, so the rename is not also
    /// counted as a removal and a creation. (from, to, the replica entry moved.)
    moved: Vec<(PathBuf, PathBuf, Entry)>,
    /// REPLICA's root, kept only by a walk whose sink does not write.
    dst_root: Option<OwnedFd>,
    /// The directories this batch compared already.
    compared: HashSet<PathBuf>,
    /// This walk's number in the link register.
    walk_id: u64,
    /// Links the plan decided, carried out once every copy is done (their leader may be one
    /// of them): the SRC-relative directory and the action.
    links: Vec<(PathBuf, DirIds, Action)>,
    /// Link sets a batch met for the first time: (inode, names it has).
    new_sets: Vec<(crate::links::Inode, u64)>,
    /// Directories holding other names of files a batch copied anew: compared too, so those
    /// names are linked to the new copy.
    relink: Vec<PathBuf>,
}

/// A subdirectory taken off the stack.
enum Next {
    /// Handed to a reader.
    Ahead {
        rel: PathBuf,
        fresh: bool,
        parent: Option<Arc<DirState>>,
        rx: Ahead,
    },
    /// Read by the walker when its turn comes.
    Here(Request),
}

/// The work of one pass or batch, run once as a look-ahead and once for real.
pub(crate) type Body<'b> = dyn Fn(&mut Walk<'_>, &OwnedFd, Option<&OwnedFd>) + 'b;

/// Run a walk through `sink`, with `workers` copy workers, over what `body` asks for.
pub(crate) fn walk<'a>(
    sink: &'a dyn Sink,
    ctx: Ctx<'a>,
    workers: usize,
    batch: Option<&'a Batch>,
    body: impl FnOnce(&mut Walk<'_>),
) {
    let plan = ctx.plan;
    let walk_id = ctx.links.start_walk();
    let (links, new_sets) = std::thread::scope(|s| {
        // Only a walk that writes reads ahead: a dry run's replica directories may still be
        // where a counted rename would have moved them from (`Walk::unmoved`).
        let readers = sink.writes().then(|| {
            let n = reader_threads();
            let window = n * crate::readers::AHEAD_PER_READER;
            (Readers::start(s, n, ctx.roots, plan), window)
        });
        with_workers(sink, workers, plan, |jobs| {
            let mut walk = Walk {
                sink,
                ctx,
                jobs,
                stack: Vec::new(),
                ahead: VecDeque::new(),
                readers,
                held: 0,
                batch,
                moved: Vec::new(),
                dst_root: None,
                compared: HashSet::new(),
                walk_id,
                links: Vec::new(),
                new_sets: Vec::new(),
                relink: Vec::new(),
            };
            body(&mut walk);
            (walk.links, walk.new_sets)
        })
    });
    make_links(sink, ctx, links);
    // A set met for the first time by a batch, whose other names the batch did not all
    // meet: they are somewhere in the tree, and only a full pass finds them.
    if new_sets
        .iter()
        .any(|&(inode, nlink)| (ctx.links.met(inode, walk_id) as u64) < nlink)
    {
        ctx.counters.full_wanted.store(true, Ordering::Relaxed);
    }
    if batch.is_none() && !ctx.counters.cut.load(Ordering::Relaxed) {
        ctx.links.forget_unmet(walk_id);
    }
}

/// Device and inode of a directory pair's source and replica (`None`: not known).
type DirIds = (Option<(u64, u64)>, Option<(u64, u64)>);

fn dir_ids(state: &DirState) -> DirIds {
    let id = |fd: &OwnedFd| rustix::fs::fstat(fd).ok().map(|st| (st.st_dev, st.st_ino));
    (id(&state.src), state.dst.as_ref().and_then(id))
}

/// Reader threads for a walk: one per core, at least one (it still overlaps the walker's
/// planning with listing), at most four (past that the kernel's locks, not cores, limit).
/// Asked once per run: the answer reads cgroup files, and live mode walks at every batch.
fn reader_threads() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4)))
}

/// Carry out the links a walk planned, now that the copies of their leaders are done, and
/// put back the metadata of each directory they were made in (a new name is a write in it).
fn make_links(sink: &dyn Sink, ctx: Ctx<'_>, links: Vec<(PathBuf, DirIds, Action)>) {
    let (src_root, dst_root) = ctx.roots;
    let mut links = links.into_iter().peekable();
    while let Some((rel, ids, first)) = links.next() {
        let mut here = vec![first];
        while let Some((_, _, a)) = links.next_if(|(r, _, _)| *r == rel) {
            here.push(a);
        }
        if ctx.stop.load(Ordering::Relaxed) {
            ctx.counters.cut.store(true, Ordering::Relaxed);
            return;
        }
        let dirs = (|| {
            // The directories the walk planned the links in, or none: reopened by path (the
            // walk let go of their handles), so checked to be the same directories.
            let src = open_checked(src_root, &rel, ids.0).map_err(|e| ("open source dir", e))?;
            let dst = dst_root
                .map(|d| open_checked(d, &rel, ids.1))
                .transpose()
                .map_err(|e| ("open replica dir", e))?;
            Ok::<_, (&'static str, io::Error)>((src, dst))
        })();
        let (src, dst) = match dirs {
            Ok(d) => d,
            Err((what, e)) => {
                ctx.reporter.fault(ctx.counters, what, &rel, &e);
                continue;
            }
        };
        let state = new_state(src, dst, rel, true);
        for action in &here {
            let Action::Link { leader, .. } = action else {
                continue;
            };
            let leader_dir = match (split(leader), dst_root) {
                (Some((dir, name)), Some(root)) => match open_dir_beneath(root, &dir) {
                    Ok(d) => Some((d, name)),
                    Err(e) => {
                        let path = state.rel.join(action.name());
                        ctx.reporter.fault(
                            ctx.counters,
                            "open the hard link's replica dir",
                            &path,
                            &e,
                        );
                        continue;
                    }
                },
                // A dry run without a replica: nothing to open.
                _ => None,
            };
            sink.link(
                state.target(),
                leader_dir.as_ref().map(|(d, n)| (d.as_fd(), *n)),
                action,
            );
        }
        release(sink, &state, ctx.plan);
    }
}

impl Walk<'_> {
    /// Has a stop been requested? If so, this walk is cut short here: say so.
    pub(crate) fn stopping(&self) -> bool {
        let stop = self.ctx.stop.load(Ordering::Relaxed);
        if stop {
            self.ctx.counters.cut.store(true, Ordering::Relaxed);
        }
        stop
    }

    pub(crate) fn fault(&self, what: &'static str, rel: &Path, e: &io::Error) {
        self.ctx.reporter.fault(self.ctx.counters, what, rel, e);
    }

    /// Leave excluded entries out of both listings (neither copied nor deleted). Temp files
    /// of ours are never excluded: a crashed run's leftovers must still be cleaned.
    fn exclude(&self, rel: &Path, src: &mut Listing, dst: &mut Listing) {
        let ex = self.ctx.excludes;
        if ex.is_empty() {
            return;
        }
        let out = |name: &OsStr, dir: bool| ex.excludes(&rel.join(name), dir);
        src.entries.retain(|e| !out(&e.name, e.kind == Kind::Dir));
        src.errors.retain(|(n, _)| !out(n, false));
        dst.entries
            .retain(|e| is_temp_name(&e.name) || !out(&e.name, e.kind == Kind::Dir));
    }

    /// Plan and apply one directory pair's listings, and queue its subdirectories: all of
    /// them when `deep`, else only those this call creates (a new directory is always walked
    /// whole: files made in it before its watch existed have no events).
    pub(crate) fn dir(
        &mut self,
        state: Arc<DirState>,
        mut src: Listing,
        mut dst: Listing,
        deep: bool,
    ) {
        self.exclude(&state.rel, &mut src, &mut dst);
        // A temp file this process is writing (a copy of the pass beside a batch) is not a
        // crashed run's leftover: it is not part of the replica's listing at all.
        dst.entries
            .retain(|e| !(is_temp_name(&e.name) && crate::tempname::in_flight(&e.name)));
        self.overlay(&state.rel, &mut dst);
        let c = &self.ctx;
        if self.batch.is_some()
            && let Ok(mut compared) = c.counters.compared.lock()
        {
            compared.push(state.rel.clone());
        }
        c.counters
            .scanned
            .fetch_add(src.entries.len() as u64, Ordering::Relaxed);
        // REPLICA's versions folder is no part of the mirror (see `versions`): out of both
        // listings before anything else looks at them.
        let mut actions = if state.rel.as_os_str().is_empty() {
            reserve_root(&mut src.entries, &mut dst.entries, c.plan)
        } else {
            Vec::new()
        };
        self.read_xattrs(&state, &mut src, &mut dst);
        if c.plan.hard_links {
            self.link_sets(&state.rel, &mut src.entries);
        }
        let c = &self.ctx;
        let mut keep = Vec::with_capacity(src.errors.len());
        for (name, err) in src.errors {
            c.reporter
                .fault(c.counters, "scan", &state.rel.join(&name), &err);
            keep.push(name);
        }
        actions.extend(plan_dir(&src.entries, &dst.entries, &keep, c.plan));
        if c.plan.hard_links && self.batch.is_some() {
            self.note_relinks(&state.rel, &src.entries, &actions);
        }
        if !actions.is_empty() {
            state.touched.store(true, Ordering::Relaxed);
            self.sink.prepare_dir(state.target());
        }
        // Sets, not lists: a directory of 100,000 subdirectories asks about each of them.
        let mut failed: HashSet<&OsString> = HashSet::new();
        let mut made: HashSet<&OsString> = HashSet::new();
        let mut batch = Vec::new();
        let mut batch_bytes = 0u64;
        let mut link_ids = None;
        for action in &actions {
            // A type change whose removal failed (the old entry, or its version, could not be
            // moved away) is not carried on: the new entry would be renamed over the old one.
            if !matches!(action, Action::Remove { .. }) && failed.contains(action.name()) {
                continue;
            }
            match action {
                Action::CopyFile { name, .. }
                | Action::CheckContent { name }
                | Action::AppendFile { name } => {
                    if self.jobs.is_none() {
                        self.sink.apply(state.target(), action);
                        continue;
                    }
                    batch_bytes += src
                        .entries
                        .binary_search_by(|e| e.name.as_os_str().cmp(name))
                        .map_or(0, |i| src.entries[i].size);
                    batch.push(action.clone());
                    if batch.len() >= BATCH_FILES || batch_bytes >= BATCH_BYTES {
                        self.send(&state, std::mem::take(&mut batch));
                        batch_bytes = 0;
                    }
                }
                Action::Link { .. } => {
                    let ids = *link_ids.get_or_insert_with(|| dir_ids(&state));
                    self.links.push((state.rel.clone(), ids, action.clone()));
                }
                _ => {
                    let ok = self.sink.apply(state.target(), action);
                    match (ok, action) {
                        (false, _) => {
                            failed.insert(action.name());
                        }
                        (true, Action::MakeDir { name, .. }) => {
                            made.insert(name);
                        }
                        _ => {}
                    }
                }
            }
        }
        if !batch.is_empty() {
            self.send(&state, batch);
        }
        // What the plan leaves out is not descended into (a directory whose name differs
        // only in case from another's must not be merged into it).
        let left_out: HashSet<&OsString> = actions
            .iter()
            .filter(|a| matches!(a, Action::Unsupported { .. } | Action::SkipSpecial { .. }))
            .map(Action::name)
            .collect();
        let subdirs: Vec<&Entry> = src
            .entries
            .iter()
            .rev()
            .filter(|e| {
                e.kind == Kind::Dir && !failed.contains(&e.name) && !left_out.contains(&e.name)
            })
            .collect();
        let hold = !subdirs.is_empty()
            && self.held < HELD_DIRS
            && state.rel.components().count() < HELD_DEPTH;
        if hold {
            self.held += 1;
            state.queued.store(subdirs.len(), Ordering::Relaxed);
        }
        for e in subdirs {
            let fresh = made.contains(&e.name);
            let rel = state.rel.join(&e.name);
            let queued_deep = self.batch.is_some_and(|b| b.deep.contains(&rel));
            let dst_id = dst
                .entries
                .binary_search_by(|d| d.name.cmp(&e.name))
                .ok()
                .map(|i| &dst.entries[i])
                .filter(|d| d.kind == Kind::Dir)
                .map(|d| (d.dev, d.ino));
            self.stack.push(Request {
                parent: hold.then(|| Arc::clone(&state)),
                rel,
                ids: ((e.dev, e.ino), dst_id),
                fresh,
                scan: deep || fresh || queued_deep,
                name: e.name.clone(),
            });
        }
        release(self.sink, &state, self.ctx.plan);
    }

    /// Read the extended attributes of both listings where the plan compares them, and of the
    /// source where an ACL it holds limits the mode the replica gets (see
    /// `plan::source_mode`). A source entry whose attributes cannot be read is a scan error
    /// (its replica is left alone); a replica entry's are then not compared.
    fn read_xattrs(&self, state: &DirState, src: &mut Listing, dst: &mut Listing) {
        let plan = self.ctx.plan;
        let ns = plan.xattrs;
        if !ns.any() && !plan.caps.perms {
            return;
        }
        crate::readers::read_source_xattrs(&state.src, src, plan);
        if ns.any()
            && let Some(d) = &state.dst
        {
            // What `list_pair` has not read already (an overlay entry).
            let _ = crate::xattr::read_listing(d, &mut dst.entries, ns);
        }
    }

    /// Tell the plan, for each source file with other names, which name leads its link set
    /// (see `links`) and whether the replica already holds that leader. Names remembered from
    /// an earlier walk are used only if SRC still has that inode under the name and the
    /// replica an up-to-date copy of it; if none is, this name takes the lead.
    fn link_sets(&mut self, rel: &Path, entries: &mut [Entry]) {
        let (src_root, dst_root) = self.ctx.roots;
        let links = self.ctx.links;
        let full = self.batch.is_none();
        let caps = self.ctx.plan.caps;
        for e in entries.iter_mut() {
            // A name the replica cannot hold is not mirrored: it must not lead a set.
            if e.kind != Kind::File || e.nlink < 2 || caps.refuses_name(&e.name).is_some() {
                continue;
            }
            let inode = (e.dev, e.ino);
            let path = rel.join(&e.name);
            let (leader, now) = match links.find(inode, &path, self.walk_id, full) {
                Found::New => {
                    if !full {
                        self.new_sets.push((inode, e.nlink));
                    }
                    continue;
                }
                Found::Leader => continue,
                Found::Other { rel, now } => (rel, now),
            };
            let stat_at = |root: &OwnedFd, p: &Path| {
                let (dir, name) = split(p)?;
                let d = open_dir_beneath(root, &dir).ok()?;
                stat_entry(&d, name).ok().flatten()
            };
            let up_to_date = |p: &Path| {
                stat_at(dst_root?, p).and_then(|r| {
                    (r.kind == Kind::File
                        && r.size == e.size
                        && crate::plan::same_time(r.mtime, e.mtime, self.ctx.plan))
                    .then_some(r.ino)
                })
            };
            let found = if now {
                let ino = up_to_date(&leader);
                Some((leader, ino))
            } else {
                links.others(inode, &path).into_iter().find_map(|cand| {
                    let same = stat_at(src_root, &cand).is_some_and(|s| (s.dev, s.ino) == inode);
                    let ino = up_to_date(&cand).filter(|_| same)?;
                    links.lead(inode, &cand, 0);
                    Some((cand, Some(ino)))
                })
            };
            let Some((leader, leader_ino)) = found else {
                links.lead(inode, &path, self.walk_id);
                continue;
            };
            e.link = Some(Box::new(crate::entry::LinkTo {
                leader,
                leader_ino,
                leader_in_walk: now,
            }));
        }
    }

    /// A batch that copies a file anew (its bytes changed through this name, or it took the
    /// lead of its set) must bring the set's other names along: their directories are
    /// compared next, where the plan links them to the new copy.
    fn note_relinks(&mut self, rel: &Path, entries: &[Entry], actions: &[Action]) {
        for a in actions {
            // An append may turn into a whole copy (a new inode) too.
            let (Action::CopyFile { name, .. } | Action::AppendFile { name }) = a else {
                continue;
            };
            let Ok(i) = entries.binary_search_by(|e| e.name.as_os_str().cmp(name)) else {
                continue;
            };
            let e = &entries[i];
            if e.nlink < 2 {
                continue;
            }
            for other in self.ctx.links.others((e.dev, e.ino), &rel.join(name)) {
                if let Some((dir, _)) = split(&other) {
                    self.relink.push(dir);
                }
            }
        }
    }

    /// Compare the directories `note_relinks` asked for (a batch's last step).
    pub(crate) fn relink(&mut self, src_root: &OwnedFd, dst_root: &OwnedFd) {
        while let Some(dir) = self.relink.pop() {
            if self.stopping() {
                return;
            }
            self.compare(src_root, dst_root, &dir);
            self.drain();
        }
    }

    /// Hand a batch of copies to the workers (or do it here if they are gone).
    fn send(&self, state: &Arc<DirState>, actions: Vec<Action>) {
        let Some(tx) = &self.jobs else { return };
        state.pending.fetch_add(1, Ordering::AcqRel);
        let job = Job {
            dir: Arc::clone(state),
            actions,
        };
        if let Err(back) = tx.send(job) {
            for action in &back.0.actions {
                self.sink.apply(state.target(), action);
            }
            state.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Work through queued subdirectories, depth first (give or take the few read ahead).
    pub(crate) fn drain(&mut self) {
        loop {
            self.read_ahead();
            let Some(next) = self.ahead.pop_front() else {
                return;
            };
            if self.stopping() {
                self.stack.clear();
                self.ahead.clear();
                return;
            }
            let (rel, fresh, parent, opened) = match next {
                Next::Ahead {
                    rel,
                    fresh,
                    parent,
                    rx,
                } => {
                    let opened = rx.recv().unwrap_or_else(|_| {
                        Err(("scan", io::Error::other("a reader thread stopped")))
                    });
                    (rel, fresh, parent, opened)
                }
                Next::Here(task) => {
                    let opened = self.open_here(&task);
                    (task.rel, task.fresh, task.parent, opened)
                }
            };
            // Opened: its parent's handles are needed by one subdirectory fewer.
            if let Some(p) = parent
                && p.queued.fetch_sub(1, Ordering::Relaxed) == 1
            {
                self.held -= 1;
            }
            match opened {
                Ok(Opened { src, dst, lists }) => {
                    let state = new_state(src, dst, rel, fresh);
                    match lists {
                        Some((src_list, dst_list)) => self.dir(state, src_list, dst_list, true),
                        None => release(self.sink, &state, self.ctx.plan),
                    }
                }
                // Never delete on the strength of a failed scan: the subtree is left alone. One
                // rule for whatever vanishes between being listed and being acted on, file or
                // directory: the pass could not do what it planned, so it is a fault (exit 3,
                // like rsync's 24), and the next look at its directory mirrors it as gone.
                Err((what, e)) if e.kind() == io::ErrorKind::NotFound => {
                    let c = &self.ctx;
                    c.reporter
                        .fault_msg(c.counters, what, &rel, "vanished during the pass");
                }
                Err((what, e)) => self.fault(what, &rel, &e),
            }
        }
    }

    /// Take the next subdirectories off the stack, in the order they will be worked on, and
    /// hand those to scan to the readers: as many as keep them busy (one, without readers).
    fn read_ahead(&mut self) {
        let window = self.readers.as_ref().map_or(1, |r| r.1);
        while self.ahead.len() < window {
            let Some(task) = self.stack.pop() else {
                return;
            };
            let next = match &self.readers {
                Some((r, _)) if task.scan => {
                    let (rel, fresh) = (task.rel.clone(), task.fresh);
                    let parent = task.parent.clone();
                    match r.submit(task) {
                        Ok(rx) => Next::Ahead {
                            rel,
                            fresh,
                            parent,
                            rx,
                        },
                        Err(task) => Next::Here(task),
                    }
                }
                _ => Next::Here(task),
            };
            self.ahead.push_back(next);
        }
    }

    /// Open (and list, if it is to be scanned) a queued subdirectory here, on the walker.
    fn open_here(&self, task: &Request) -> Result<Opened, Fault> {
        let (src, dst) = open_request(self.ctx.roots, task)?;
        let dst = match dst {
            ReplicaSide::Open(d) => Some(d),
            // Only a dry run gets here: the directory was not really made, or not really
            // renamed there (then it is read where it still is).
            ReplicaSide::Missing(_) if task.fresh || !self.sink.writes() => self.unmoved(&task.rel),
            ReplicaSide::Missing(e) => return Err(("open replica dir", e)),
            ReplicaSide::NoRoot => self.unmoved(&task.rel),
        };
        let lists = if task.scan {
            Some(list_pair(&src, dst.as_ref(), self.ctx.plan)?)
        } else {
            None
        };
        Ok(Opened { src, dst, lists })
    }

    /// Compare one SRC-relative directory with its replica: both listings, planned and
    /// applied as in a full pass; subdirectories get their own metadata checked, and new ones
    /// (or ones the batch walks whole) are walked. Where the directory is missing on either
    /// side, the deepest ancestor present on both is compared instead: what is missing is then
    /// created whole or removed from there.
    pub(crate) fn compare(&mut self, src_root: &OwnedFd, dst_root: &OwnedFd, rel: &Path) {
        let comps = components(rel);
        // Below the reserved root name there is nothing to mirror (in SRC) and nothing to
        // touch (in REPLICA: the versions folder): the root is compared, and reports it.
        let mut depth = if in_reserved(rel) { 0 } else { comps.len() };
        let (src, dst) = loop {
            let p: PathBuf = comps[..depth].iter().collect();
            match (
                open_dir_beneath(src_root, &p),
                open_dir_beneath(dst_root, &p),
            ) {
                (Ok(s), Ok(d)) => break (s, d),
                (Err(e), _) | (_, Err(e)) if depth == 0 => {
                    self.fault("open root", Path::new(""), &e);
                    return;
                }
                _ => depth -= 1,
            }
        };
        let base: PathBuf = comps[..depth].iter().collect();
        if !self.compared.insert(base.clone()) {
            // Several places the batch looks at led here (their own directories are gone):
            // once is what a real pass does; twice would count a dry run's removals twice.
            return;
        }
        let lists = self.list_pair(&src, Some(&dst));
        match lists {
            Ok((sl, dl)) => self.dir(new_state(src, Some(dst), base, false), sl, dl, false),
            Err((what, e)) => self.fault(what, &base, &e),
        }
    }

    /// The listings of a directory pair (see [`list_pair`]).
    pub(crate) fn list_pair(
        &self,
        src: &OwnedFd,
        dst: Option<&OwnedFd>,
    ) -> Result<(Listing, Listing), Fault> {
        list_pair(src, dst, self.ctx.plan)
    }

    /// Mirror a rename seen in SRC as a rename in REPLICA when the plan says the replica
    /// entry under the old name is what SRC now holds under the new one (`now_at`: where the
    /// new name is in SRC now, after the batch's later renames) and the rename can replace
    /// what the replica holds there. Missing replica ancestors of the new name are created
    /// first. If not, or if the rename fails, nothing happens here: comparing both
    /// directories, which the batch does next, copies and removes what it must.
    pub(crate) fn rename(
        &mut self,
        src_root: &OwnedFd,
        dst_root: &OwnedFd,
        (from, to): (&Path, &Path),
        now_at: &Path,
    ) -> bool {
        let ex = self.ctx.excludes;
        if in_reserved(from) || in_reserved(to) || in_reserved(now_at) {
            // Never move REPLICA's versions folder, nor anything into or out of it.
            return false;
        }
        let (Some((from_dir, from_name)), Some((to_dir, to_name)), Some((now_dir, now_name))) =
            (split(from), split(to), split(now_at))
        else {
            return false;
        };
        let decided = (|| {
            let src_dir = open_dir_beneath(src_root, &now_dir).ok()?;
            let now = stat_entry(&src_dir, now_name).ok()??;
            let is_dir = now.kind == Kind::Dir;
            if ex.excludes(from, is_dir) || ex.excludes(to, is_dir) {
                return None;
            }
            let dst_from = open_dir_beneath(dst_root, &from_dir).ok()?;
            let old = stat_entry(&dst_from, from_name).ok()??;
            let dst_to = open_dir_beneath(dst_root, &to_dir).ok();
            let there = match &dst_to {
                Some(d) => stat_entry(d, to_name).ok()?,
                None => None,
            };
            let there_kind = there.as_ref().map(|t| t.kind);
            rename_matches(&old, &now, there.as_ref(), self.ctx.plan)
                .then_some((dst_from, dst_to, old, there_kind))
        })();
        let Some((dst_from, dst_to, old, there_kind)) = decided else {
            return false;
        };
        if !self.sink.writes() {
            // Counted as done: later listings read the replica as if it had happened.
            let fd = dst_from.as_fd();
            let done = self.sink.rename(
                (fd, from_name),
                (fd, to_name),
                (from, to),
                old.kind,
                there_kind,
            );
            if done {
                self.moved.push((from.to_path_buf(), to.to_path_buf(), old));
            }
            return done;
        }
        let dst_to = match dst_to {
            Some(d) => d,
            None => match self.make_dirs(src_root, dst_root, &to_dir) {
                Some(d) => d,
                None => return false,
            },
        };
        self.sink.rename(
            (dst_from.as_fd(), from_name),
            (dst_to.as_fd(), to_name),
            (from, to),
            old.kind,
            there_kind,
        )
    }

    /// Create the replica directories missing on the way to `rel` (each as a planned `MakeDir`
    /// through the sink; their metadata follows when their directories are compared) and
    /// return the last. `None` if SRC has no such directories any more, or one cannot be made.
    fn make_dirs(&mut self, src_root: &OwnedFd, dst_root: &OwnedFd, rel: &Path) -> Option<OwnedFd> {
        let mut src = open_dir_beneath(src_root, Path::new("")).ok()?;
        let mut dst = open_dir_beneath(dst_root, Path::new("")).ok()?;
        let mut at = PathBuf::new();
        for name in components(rel) {
            let next_src = open_child_dir(&src, name).ok()?;
            let next_dst = match open_child_dir(&dst, name) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let target = crate::sink::Target {
                        src: src.as_fd(),
                        dst: Some(dst.as_fd()),
                        rel: &at,
                        inherits_acl: None,
                    };
                    let make = Action::MakeDir {
                        name: name.to_os_string(),
                        reason: crate::plan::Reason::New,
                    };
                    if !self.sink.apply(target, &make) {
                        return None;
                    }
                    open_child_dir(&dst, name).ok()?
                }
                Err(_) => return None,
            };
            at.push(name);
            (src, dst) = (next_src, next_dst);
        }
        Some(dst)
    }

    /// For a sink that does not write: the replica directory that a counted rename would have
    /// put at `rel`, opened where it still is.
    fn unmoved(&self, rel: &Path) -> Option<OwnedFd> {
        let root = self.dst_root.as_ref()?;
        let mut at = rel.to_path_buf();
        let mut any = false;
        for (from, to, _) in self.moved.iter().rev() {
            if let Some(p) = crate::queue::moved(&at, to, from) {
                at = p;
                any = true;
            }
        }
        if !any {
            return None;
        }
        open_dir_beneath(root, &at).ok()
    }

    /// Remember REPLICA's root, for reading a dry run's renamed directories where they are.
    pub(crate) fn set_dst_root(&mut self, dst: &OwnedFd) {
        if !self.sink.writes() {
            self.dst_root = dst.try_clone().ok();
        }
    }

    /// Read a replica listing as if the renames a non-writing sink counted had happened.
    fn overlay(&self, rel: &Path, dst: &mut Listing) {
        for (from, to, entry) in &self.moved {
            if let Some((dir, name)) = split(from)
                && dir == rel
            {
                dst.entries.retain(|e| e.name != name);
            }
            if let Some((dir, name)) = split(to)
                && dir == rel
            {
                dst.entries.retain(|e| e.name != name);
                let mut e = entry.clone();
                e.name = name.to_os_string();
                let at = dst.entries.partition_point(|x| x.name < e.name);
                dst.entries.insert(at, e);
            }
        }
    }
}

fn components(rel: &Path) -> Vec<&OsStr> {
    rel.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect()
}

/// Is `rel` the reserved root name (the versions folder) or below it?
fn in_reserved(rel: &Path) -> bool {
    components(rel)
        .first()
        .is_some_and(|c| crate::versions::is_reserved(c))
}

/// Parent and name of a non-root relative path.
fn split(rel: &Path) -> Option<(PathBuf, &OsStr)> {
    let comps = components(rel);
    let (name, parent) = comps.split_last()?;
    Some((parent.iter().collect(), name))
}
