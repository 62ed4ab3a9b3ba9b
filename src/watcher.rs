//! The HeartbeatWatcher: watches the heartbeat files and the instructions file
//! and tells the Supervisor what changed.
//!
//! It watches the *folders* holding the files (editors save by writing a temp
//! file and renaming it over the original, which a watch on the file itself
//! misses), debounces bursts of events, and re-checks every file's size and
//! modification time each second as a fallback for file systems where `notify`
//! sees nothing (network mounts, some containers).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use notify::{RecursiveMode, Watcher};

use crate::project::{Project, ProjectError};

/// Quiet time after the last event before files are looked at.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Interval of the polling fallback.
const POLL: Duration = Duration::from_secs(1);

/// An agent's heartbeat file changed (or may have: the agent reads it and applies what is new).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct HeartbeatChanged {
    /// Agent name.
    pub agent: String,
}

/// The instructions file changed and was read again.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct InstructionsChanged {
    /// The new project, or why it was refused (the running agents stay as they are).
    pub project: Result<Project, ProjectError>,
}

/// Replace the set of watched heartbeat files (after an instructions change).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct WatchHeartbeats {
    /// Agent name → heartbeat file.
    pub files: BTreeMap<String, PathBuf>,
}

/// Events from the `notify` thread.
#[derive(Message)]
#[rtype(result = "()")]
struct PathsTouched(Vec<PathBuf>);

/// Size and modification time, to notice changes without events.
type Stamp = Option<(u64, SystemTime)>;

/// The watcher actor.
pub struct HeartbeatWatcher {
    instructions: PathBuf,
    heartbeats: BTreeMap<String, PathBuf>,
    listener: Recipient<HeartbeatChanged>,
    reload: Recipient<InstructionsChanged>,
    watcher: Option<notify::RecommendedWatcher>,
    watched_dirs: BTreeSet<PathBuf>,
    stamps: HashMap<PathBuf, Stamp>,
    dirty: BTreeSet<PathBuf>,
    flush_scheduled: bool,
}

impl HeartbeatWatcher {
    /// A watcher of `instructions` and of each agent's heartbeat file.
    pub fn new(
        instructions: PathBuf,
        heartbeats: BTreeMap<String, PathBuf>,
        listener: Recipient<HeartbeatChanged>,
        reload: Recipient<InstructionsChanged>,
    ) -> Self {
        Self {
            instructions,
            heartbeats,
            listener,
            reload,
            watcher: None,
            watched_dirs: BTreeSet::new(),
            stamps: HashMap::new(),
            dirty: BTreeSet::new(),
            flush_scheduled: false,
        }
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.heartbeats.values().cloned().collect();
        files.push(self.instructions.clone());
        files
    }

    /// Creates missing heartbeat files and watches every folder involved.
    fn watch_all(&mut self) {
        for (agent, path) in &self.heartbeats {
            if !path.exists() {
                let created = path
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| {
                        std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(path)
                            .map(drop)
                    });
                match created {
                    Ok(()) => {
                        tracing::info!(%agent, path = %path.display(), "heartbeat file created")
                    }
                    Err(e) => {
                        tracing::warn!(%agent, path = %path.display(), error = %e, "cannot create the heartbeat file; watching for it")
                    }
                }
            }
        }
        let dirs: BTreeSet<PathBuf> = self
            .files()
            .iter()
            .filter_map(|f| f.parent().map(folder_of))
            .collect();
        if let Some(watcher) = self.watcher.as_mut() {
            for dir in dirs.difference(&self.watched_dirs) {
                if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the folder; polling it every second");
                }
            }
        }
        self.watched_dirs = dirs;
        for file in self.files() {
            self.stamps
                .entry(file.clone())
                .or_insert_with(|| stamp(&file));
        }
    }

    fn mark(&mut self, ctx: &mut Context<Self>, paths: impl IntoIterator<Item = PathBuf>) {
        let files = self.files();
        for path in paths {
            if let Some(file) = files.iter().find(|f| same_file(f, &path)) {
                self.dirty.insert(file.clone());
            }
        }
        if !self.dirty.is_empty() && !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.run_later(DEBOUNCE, |watcher, _| watcher.flush());
        }
    }

    fn flush(&mut self) {
        self.flush_scheduled = false;
        for file in std::mem::take(&mut self.dirty) {
            self.stamps.insert(file.clone(), stamp(&file));
            if file == self.instructions {
                tracing::info!(path = %file.display(), "instructions changed; reading them again");
                let project = Project::load(&file);
                self.reload.do_send(InstructionsChanged { project });
            }
            for (agent, path) in &self.heartbeats {
                if *path == file {
                    self.listener.do_send(HeartbeatChanged {
                        agent: agent.clone(),
                    });
                }
            }
        }
    }
}

/// The folder to watch for a file's parent (`""` means the current folder).
fn folder_of(dir: &Path) -> PathBuf {
    if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir.to_path_buf()
    }
}

/// Whether an event path is the watched file (events may carry absolute paths).
fn same_file(watched: &Path, event: &Path) -> bool {
    if watched == event {
        return true;
    }
    match (watched.file_name(), event.file_name()) {
        (Some(a), Some(b)) if a == b => {
            let canon = |p: &Path| p.parent().and_then(|d| folder_of(d).canonicalize().ok());
            canon(watched) == canon(event)
        }
        _ => false,
    }
}

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

impl Actor for HeartbeatWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let me = ctx.address();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                me.do_send(PathsTouched(event.paths));
            }
        });
        match watcher {
            Ok(w) => self.watcher = Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "file events unavailable; polling heartbeat files every second")
            }
        }
        self.watch_all();
        ctx.run_interval(POLL, |watcher, ctx| {
            let changed: Vec<PathBuf> = watcher
                .files()
                .into_iter()
                .filter(|f| watcher.stamps.get(f).copied().flatten() != stamp(f))
                .collect();
            watcher.mark(ctx, changed);
        });
    }
}

impl Handler<PathsTouched> for HeartbeatWatcher {
    type Result = ();

    fn handle(&mut self, msg: PathsTouched, ctx: &mut Self::Context) {
        self.mark(ctx, msg.0);
    }
}

impl Handler<WatchHeartbeats> for HeartbeatWatcher {
    type Result = ();

    fn handle(&mut self, msg: WatchHeartbeats, _: &mut Self::Context) {
        self.heartbeats = msg.files;
        self.watch_all();
    }
}
