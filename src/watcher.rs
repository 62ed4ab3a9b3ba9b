//! The HeartbeatWatcher: watches the heartbeat files and the instructions file
//! and tells the Supervisor what changed.
//!
//! It watches the *folders* holding the files (editors save by writing a temp
//! file and renaming it over the original, which a watch on the file itself
//! misses), debounces bursts of events, and re-checks every file's size and
//! modification time each second as a fallback for file systems where `notify`
//! sees nothing (network mounts, some containers).
//!
//! Only a real change wakes anyone: a create, a remove, a rename, or a new size
//! or modification time. Reading a file makes the kernel report it opened,
//! read and closed; were those forwarded, an agent reading its heartbeat file
//! would wake itself to read it again, forever (issue 19: 128 Redis commands
//! per idle agent per second).

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

/// Events from the `notify` thread, without the ones that only report access.
#[derive(Message)]
#[rtype(result = "()")]
struct PathsTouched {
    paths: Vec<PathBuf>,
    /// A create, remove or rename: the file may be another one now, whatever
    /// its size and modification time say.
    moved: bool,
}

impl PathsTouched {
    /// What `event` says about files, or `None` when it only reports access
    /// (open, read, close), which changes nothing.
    fn from_event(event: notify::Event) -> Option<Self> {
        use notify::EventKind;
        use notify::event::ModifyKind;
        let moved = match event.kind {
            EventKind::Access(_) => return None,
            EventKind::Create(_)
            | EventKind::Remove(_)
            | EventKind::Modify(ModifyKind::Name(_)) => true,
            EventKind::Modify(_) | EventKind::Any | EventKind::Other => false,
        };
        Some(Self {
            paths: event.paths,
            moved,
        })
    }
}

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
    /// Files with events since the last flush: whether one was a create, remove or rename.
    dirty: BTreeMap<PathBuf, bool>,
    flush_scheduled: bool,
    /// Interval of the polling fallback ([`POLL`]; tests turn it off to see
    /// what the events alone do).
    poll: Duration,
    /// Whether to ask for file events (tests turn them off to see what polling
    /// alone does).
    events: bool,
}

impl HeartbeatWatcher {
    /// A watcher of `instructions` and of each agent's heartbeat file.
    pub fn new(
        instructions: PathBuf,
        heartbeats: BTreeMap<String, PathBuf>,
        listener: Recipient<HeartbeatChanged>,
        reload: Recipient<InstructionsChanged>,
    ) -> Self {
        // The instructions are stamped now, before any agent starts, not when
        // the actor first runs: an edit made in between would otherwise be the
        // stamp, and never seen.
        let stamps = HashMap::from([(instructions.clone(), stamp(&instructions))]);
        Self {
            instructions,
            heartbeats,
            listener,
            reload,
            watcher: None,
            watched_dirs: BTreeSet::new(),
            stamps,
            dirty: BTreeMap::new(),
            flush_scheduled: false,
            poll: POLL,
            events: true,
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

    fn mark(
        &mut self,
        ctx: &mut Context<Self>,
        paths: impl IntoIterator<Item = PathBuf>,
        moved: bool,
    ) {
        let files = self.files();
        for path in paths {
            if let Some(file) = files.iter().find(|f| same_file(f, &path)) {
                *self.dirty.entry(file.clone()).or_default() |= moved;
            }
        }
        if !self.dirty.is_empty() && !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.run_later(DEBOUNCE, |watcher, _| watcher.flush());
        }
    }

    fn flush(&mut self) {
        self.flush_scheduled = false;
        for (file, moved) in std::mem::take(&mut self.dirty) {
            let now = stamp(&file);
            let before = self.stamps.insert(file.clone(), now);
            if !moved && before == Some(now) {
                continue;
            }
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
            if let Some(touched) = event.ok().and_then(PathsTouched::from_event) {
                me.do_send(touched);
            }
        });
        match watcher {
            Ok(w) if self.events => self.watcher = Some(w),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "file events unavailable; polling heartbeat files every second")
            }
        }
        self.watch_all();
        ctx.run_interval(self.poll, |watcher, ctx| {
            let changed: Vec<PathBuf> = watcher
                .files()
                .into_iter()
                .filter(|f| watcher.stamps.get(f).copied().flatten() != stamp(f))
                .collect();
            watcher.mark(ctx, changed, false);
        });
    }
}

impl Handler<PathsTouched> for HeartbeatWatcher {
    type Result = ();

    fn handle(&mut self, msg: PathsTouched, ctx: &mut Self::Context) {
        self.mark(ctx, msg.paths, msg.moved);
    }
}

impl Handler<WatchHeartbeats> for HeartbeatWatcher {
    type Result = ();

    fn handle(&mut self, msg: WatchHeartbeats, _: &mut Self::Context) {
        self.heartbeats = msg.files;
        self.watch_all();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records which agents' heartbeats were reported changed.
    struct Listener(Arc<Mutex<Vec<String>>>);

    impl Actor for Listener {
        type Context = Context<Self>;
    }

    impl Handler<HeartbeatChanged> for Listener {
        type Result = ();

        fn handle(&mut self, msg: HeartbeatChanged, _: &mut Self::Context) {
            self.0.lock().unwrap().push(msg.agent);
        }
    }

    impl Handler<InstructionsChanged> for Listener {
        type Result = ();

        fn handle(&mut self, _: InstructionsChanged, _: &mut Self::Context) {
            self.0.lock().unwrap().push("instructions".to_string());
        }
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("porki-watcher-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Waits past the debounce and a polling round.
    async fn settle() {
        tokio::time::sleep(POLL + DEBOUNCE * 4).await;
    }

    #[actix_rt::test]
    async fn reading_a_heartbeat_file_wakes_nobody_and_changing_it_does() {
        let dir = temp_dir();
        let heartbeat = dir.join("heartbeat").join("builder.md");
        std::fs::create_dir_all(heartbeat.parent().unwrap()).unwrap();
        std::fs::write(&heartbeat, "# control\n").unwrap();
        std::fs::write(dir.join("INSTRUCTIONS.md"), "# project\n").unwrap();
        let missing = dir.join("heartbeat").join("new.md");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = Listener(seen.clone()).start();
        let mut watcher = HeartbeatWatcher::new(
            dir.join("INSTRUCTIONS.md"),
            BTreeMap::from([
                ("builder".to_string(), heartbeat.clone()),
                ("newcomer".to_string(), missing.clone()),
            ]),
            listener.clone().recipient(),
            listener.recipient(),
        );
        // Only the file events: what wakes an agent must not depend on polling.
        watcher.poll = Duration::from_secs(3600);
        let _watcher = watcher.start();
        settle().await;
        assert!(missing.exists(), "a missing heartbeat file is created");
        let woken = || seen.lock().unwrap().clone();
        // What an agent does when woken: open, read, close. Many times over.
        for _ in 0..20 {
            std::fs::read_to_string(&heartbeat).unwrap();
            tokio::time::sleep(DEBOUNCE / 2).await;
        }
        // A change of its metadata alone (mode) changes no line either.
        let mode = std::fs::metadata(&heartbeat).unwrap().permissions();
        std::fs::set_permissions(&heartbeat, mode).unwrap();
        settle().await;
        assert_eq!(woken(), Vec::<String>::new(), "reads woke the agent");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&heartbeat)
            .unwrap()
            .write_all(b"PAUSE\n")
            .unwrap();
        settle().await;
        assert_eq!(woken(), ["builder"], "an append must wake the agent once");
        // An editor's save: a new file renamed over the old one, here of the same
        // size and modification time (as `cp -p` or rsync leave it).
        let saved = dir.join("heartbeat").join(".builder.md.swp");
        std::fs::write(&saved, "# control\nSTOP!\n").unwrap();
        let modified = std::fs::metadata(&heartbeat).unwrap().modified().unwrap();
        std::fs::File::options()
            .write(true)
            .open(&saved)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        std::fs::rename(&saved, &heartbeat).unwrap();
        settle().await;
        assert_eq!(
            woken(),
            ["builder", "builder"],
            "a rename over the file must wake the agent"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[actix_rt::test]
    async fn without_file_events_polling_sees_a_change_and_nothing_else() {
        let dir = temp_dir();
        let heartbeat = dir.join("builder.md");
        std::fs::write(&heartbeat, "").unwrap();
        std::fs::write(dir.join("INSTRUCTIONS.md"), "# project\n").unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = Listener(seen.clone()).start();
        let mut watcher = HeartbeatWatcher::new(
            dir.join("INSTRUCTIONS.md"),
            BTreeMap::from([("builder".to_string(), heartbeat.clone())]),
            listener.clone().recipient(),
            listener.recipient(),
        );
        watcher.events = false;
        watcher.poll = DEBOUNCE * 2;
        let _watcher = watcher.start();
        tokio::time::sleep(DEBOUNCE * 6).await;
        std::fs::read_to_string(&heartbeat).unwrap();
        tokio::time::sleep(DEBOUNCE * 6).await;
        assert!(seen.lock().unwrap().is_empty(), "nothing changed");
        std::fs::write(&heartbeat, "PAUSE\n").unwrap();
        tokio::time::sleep(DEBOUNCE * 8).await;
        assert_eq!(*seen.lock().unwrap(), ["builder"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[actix_rt::test]
    async fn an_instructions_edit_before_the_watcher_first_runs_is_seen() {
        let dir = temp_dir();
        let instructions = dir.join("INSTRUCTIONS.md");
        std::fs::write(&instructions, "# project\n").unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = Listener(seen.clone()).start();
        // Made when porki starts; its actor runs a moment later, after the
        // agents started, by when an operator may have edited the file.
        let watcher = HeartbeatWatcher::new(
            instructions.clone(),
            BTreeMap::new(),
            listener.clone().recipient(),
            listener.recipient(),
        );
        std::fs::write(&instructions, "# project\n\n## Agents\n").unwrap();
        let _watcher = watcher.start();
        settle().await;
        assert_eq!(*seen.lock().unwrap(), ["instructions"], "the edit is read");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
