//! Component logs: the stdout and stderr of a component's replicas, kept on
//! disk with retention, searchable, and fanned out live to stream
//! subscribers on `logs:<team>/<app>/<name>`.
//!
//! `append` is the hot path (a chatty app prints 100k lines a second): it
//! numbers the line, publishes it to the hub and puts it on the component's
//! bounded in-memory queue, all under one short lock and without touching
//! the disk (except once per component and process, to recover the last
//! sequence number). A writer thread per active component drains the queue
//! in batches straight into the file (no user-space buffer, so a line is
//! readable as soon as its batch is written), and goes away after a while of
//! silence. When the queue is full, lines are counted instead of queued, and
//! the writer stores one "N lines skipped" line when it catches up.
//!
//! On disk, one directory per component, `<root>/<team>/<app>/<name>/`,
//! holds JSON lines (one serialised [`LogLine`] each): `current.log`, and
//! rotated files `<first seq>-<oldest ms>-<newest ms>.log` (zero-padded, so
//! they sort by age; the times let searches skip files and retention judge
//! age without opening them).

use super::hub::{Hub, HubMessage};
use super::MAX_LINE_BYTES;
use crate::api::{Level, LogLine, LogPage, LogQuery};
use crate::error::{Error, Result};
use crate::store::components::Key;
use crate::store::now_ms;
use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Lines waiting for the writer, per component.
pub const MAX_QUEUED_LINES: usize = 16_384;
/// Bytes (roughly: message, step and a fixed overhead per line) waiting for
/// the writer, per component.
pub const MAX_QUEUED_BYTES: usize = 4 << 20;
/// Lines a search returns unless asked otherwise, and at most.
pub const DEFAULT_LIMIT: usize = 500;
pub const MAX_LIMIT: usize = 5000;

const CURRENT: &str = "current.log";
/// A writer with nothing to write for this long ends (a new one starts with
/// the next line).
const WRITER_IDLE: Duration = Duration::from_secs(10);
/// How long a search or tail waits for the writer to store what was
/// appended before it; past that it reads what is on disk.
const FLUSH_WAIT: Duration = Duration::from_secs(5);
/// Accounting overhead of one queued line beyond its strings.
const LINE_OVERHEAD: usize = 64;
/// Where removed components' directories go before they are deleted.
const TRASH: &str = ".trash";
/// The last sequence number, noted when retention empties `current.log`,
/// so numbering continues after a restart even with no line left.
const SEQ_NOTE: &str = "seq";

/// Which pipe of the replica a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Per component, all files together.
    pub max_bytes: u64,
    /// Rotated files whose newest line is older than this are deleted.
    pub max_age: Duration,
    /// `current.log` is rotated when it reaches this size.
    pub file_bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_bytes: 64 << 20,
            max_age: Duration::from_secs(7 * 24 * 3600),
            file_bytes: 8 << 20,
        }
    }
}

/// The stored output of every component, and its live fan-out.
pub struct ComponentLogs {
    shared: Arc<Shared>,
    components: Mutex<HashMap<Key, Arc<Comp>>>,
}

struct Shared {
    root: PathBuf,
    hub: Arc<Hub>,
    retention: Retention,
}

/// One component's state.
struct Comp {
    dir: PathBuf,
    channel: String,
    state: Mutex<State>,
    /// The writer waits here for lines.
    wake: Condvar,
    /// Searches wait here for the writer to store a sequence number.
    stored: Condvar,
    /// The files; held by the writer while it writes a batch, and by
    /// readers while they open a consistent set of files.
    disk: Mutex<Disk>,
}

#[derive(Default)]
struct State {
    /// The last sequence number given out; `None` until recovered from disk.
    seq: Option<i64>,
    queue: Vec<Arc<LogLine>>,
    queued_bytes: usize,
    /// Lines not queued because the queue was full, since the last batch.
    dropped: u64,
    /// Every line up to this sequence number is in the files (or was given
    /// up on after a write error).
    stored: i64,
    writer: bool,
    writer_waiting: bool,
    flush_waiters: usize,
    /// Stop after writing what is queued (the `ComponentLogs` was dropped).
    shutdown: bool,
    /// The component's logs were deleted: write nothing more.
    removed: bool,
    /// High-water marks of the queue, for tests and diagnostics.
    max_queued_lines: usize,
    max_queued_bytes: usize,
}

#[derive(Default)]
struct Disk {
    /// `current.log`, opened for appending.
    file: Option<File>,
    /// What `current.log` holds; loaded once per process.
    current: Option<FileStats>,
    removed: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct FileStats {
    bytes: u64,
    lines: u64,
    first_seq: i64,
    min_ms: i64,
    max_ms: i64,
}

impl FileStats {
    fn add(&mut self, line: &LogLine, bytes: u64) {
        if self.lines == 0 {
            self.first_seq = line.seq;
            self.min_ms = line.time;
            self.max_ms = line.time;
        }
        self.min_ms = self.min_ms.min(line.time);
        self.max_ms = self.max_ms.max(line.time);
        self.lines += 1;
        self.bytes += bytes;
    }
}

/// A rotated file, as its name describes it.
#[derive(Debug, Clone)]
struct Segment {
    path: PathBuf,
    first_seq: i64,
    min_ms: i64,
    max_ms: i64,
}

fn segment_name(s: &FileStats) -> String {
    format!(
        "{:020}-{:015}-{:015}.log",
        s.first_seq.max(0),
        s.min_ms.max(0),
        s.max_ms.max(0)
    )
}

fn parse_segment(dir: &Path, name: &str) -> Option<Segment> {
    let stem = name.strip_suffix(".log")?;
    let mut parts = stem.split('-');
    let first_seq = parts.next()?.parse().ok()?;
    let min_ms = parts.next()?.parse().ok()?;
    let max_ms = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(Segment {
        path: dir.join(name),
        first_seq,
        min_ms,
        max_ms,
    })
}

/// Rotated files of a directory, oldest first.
fn segments(dir: &Path) -> std::io::Result<Vec<Segment>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if let Some(name) = entry.file_name().to_str() {
            if let Some(s) = parse_segment(dir, name) {
                out.push(s);
            }
        }
    }
    out.sort_by_key(|s| s.first_seq);
    Ok(out)
}

fn valid_key(key: &Key) -> Result<()> {
    let mut errors = Vec::new();
    for (what, part) in [
        ("team", &key.team),
        ("app", &key.app),
        ("component name", &key.name),
    ] {
        if let Err(e) = crate::validate::dns_label(what, part) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}

fn truncate_message(message: &str) -> String {
    let message = message.trim_end_matches(['\n', '\r']);
    if message.len() <= MAX_LINE_BYTES {
        return message.to_string();
    }
    let mut cut = MAX_LINE_BYTES - '…'.len_utf8();
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut m = String::with_capacity(cut + 3);
    m.push_str(&message[..cut]);
    m.push('…');
    m
}

fn skipped_message(count: u64) -> String {
    format!("{count} lines skipped (the app writes faster than logs are stored)")
}

impl ComponentLogs {
    /// `root` is `<data_dir>/logs`; nothing is read or created until used.
    pub fn new(root: PathBuf, hub: Arc<Hub>, retention: Retention) -> ComponentLogs {
        ComponentLogs {
            shared: Arc::new(Shared {
                root,
                hub,
                retention,
            }),
            components: Mutex::new(HashMap::new()),
        }
    }

    pub fn channel(key: &Key) -> String {
        format!("logs:{key}")
    }

    fn comp(&self, key: &Key) -> Arc<Comp> {
        let mut map = self.components.lock().unwrap();
        if let Some(c) = map.get(key) {
            return c.clone();
        }
        let c = Arc::new(Comp {
            dir: self
                .shared
                .root
                .join(&key.team)
                .join(&key.app)
                .join(&key.name),
            channel: Self::channel(key),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            stored: Condvar::new(),
            disk: Mutex::new(Disk::default()),
        });
        map.insert(key.clone(), c.clone());
        c
    }

    /// One output line of one replica. Never waits for the disk (but for
    /// recovering the sequence number on a component's first line since
    /// the process started: one short read of its newest file).
    pub fn append(&self, key: &Key, replica: u32, version: &str, stream: Stream, message: &str) {
        if valid_key(key).is_err() {
            tracing::debug!(%key, "ignoring a log line of an invalid component key");
            return;
        }
        let comp = self.comp(key);
        let message = truncate_message(message);
        let step = format!("{replica}/{version}");
        let level = match stream {
            Stream::Stdout => Level::Info,
            Stream::Stderr => Level::Error,
        };
        let cost = message.len() + step.len() + LINE_OVERHEAD;
        let mut st = comp.state.lock().unwrap();
        if st.removed {
            return;
        }
        let seq = comp.next_seq(&mut st);
        let line = Arc::new(LogLine {
            seq,
            time: now_ms(),
            level,
            step,
            message,
        });
        // Published under the component's lock, so subscribers see lines in
        // sequence order even when replicas append concurrently.
        self.shared
            .hub
            .publish(&comp.channel, HubMessage::Line(line.clone()));
        if st.queue.len() >= MAX_QUEUED_LINES || st.queued_bytes + cost > MAX_QUEUED_BYTES {
            st.dropped += 1;
        } else {
            st.queue.push(line);
            st.queued_bytes += cost;
            st.max_queued_lines = st.max_queued_lines.max(st.queue.len());
            st.max_queued_bytes = st.max_queued_bytes.max(st.queued_bytes);
        }
        self.ensure_writer(&comp, &mut st);
    }

    /// Wakes the component's writer, or starts one.
    fn ensure_writer(&self, comp: &Arc<Comp>, st: &mut State) {
        if st.writer {
            if st.writer_waiting {
                st.writer_waiting = false;
                comp.wake.notify_one();
            }
            return;
        }
        let (c, shared) = (comp.clone(), self.shared.clone());
        match std::thread::Builder::new()
            .name("component-logs".into())
            .spawn(move || writer(c, shared))
        {
            Ok(_) => st.writer = true,
            // The lines stay queued; the next append tries again.
            Err(e) => tracing::warn!(error = %e, "cannot start a component log writer"),
        }
    }

    /// Waits (a bounded time) until every line appended so far is in the files.
    async fn flush(&self, comp: &Arc<Comp>) {
        {
            let mut st = comp.state.lock().unwrap();
            let target = st.seq.unwrap_or(0);
            if st.stored >= target || st.removed {
                return;
            }
            self.ensure_writer(comp, &mut st);
        }
        let comp = comp.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + FLUSH_WAIT;
            let mut st = comp.state.lock().unwrap();
            let target = st.seq.unwrap_or(0);
            st.flush_waiters += 1;
            while st.stored < target && !st.removed && st.writer {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    tracing::warn!(dir = %comp.dir.display(), "component log writer is slow; reading what is stored");
                    break;
                }
                st = comp.stored.wait_timeout(st, left).unwrap().0;
            }
            st.flush_waiters -= 1;
        })
        .await;
    }

    /// Newest `limit` lines (of those containing `q`, within `[since,
    /// until)`), oldest first; `truncated` when more matched.
    pub async fn search(&self, key: &Key, query: &LogQuery) -> Result<LogPage> {
        valid_key(key)?;
        let comp = self.comp(key);
        self.flush(&comp).await;
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let filter = Filter::new(query);
        let (lines, truncated) =
            spawn_read(comp, move |files| collect_newest(files, limit, &filter)).await?;
        Ok(LogPage { lines, truncated })
    }

    /// The last `n` stored lines, oldest first.
    pub async fn tail(&self, key: &Key, n: usize) -> Result<Vec<LogLine>> {
        valid_key(key)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let comp = self.comp(key);
        self.flush(&comp).await;
        let filter = Filter::new(&LogQuery::default());
        let (lines, _) = spawn_read(comp, move |files| collect_newest(files, n, &filter)).await?;
        Ok(lines)
    }

    /// Deletes a component's logs; lines still queued are dropped. A later
    /// line starts the component's log afresh.
    pub async fn remove(&self, key: &Key) {
        if valid_key(key).is_err() {
            return;
        }
        let comp = self.comp(key);
        {
            let mut map = self.components.lock().unwrap();
            if map.get(key).is_some_and(|c| Arc::ptr_eq(c, &comp)) {
                map.remove(key);
            }
        }
        {
            let mut st = comp.state.lock().unwrap();
            st.removed = true;
            st.queue = Vec::new();
            st.queued_bytes = 0;
            st.dropped = 0;
            comp.wake.notify_all();
            comp.stored.notify_all();
        }
        let root = self.shared.root.clone();
        let res = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let trash = {
                let mut disk = comp.disk.lock().unwrap();
                disk.removed = true;
                disk.file = None;
                disk.current = None;
                // Renamed away under the lock: a new writer for the same key
                // starts in an empty directory.
                let trash =
                    root.join(TRASH)
                        .join(format!("{}-{}", now_ms(), rand::random::<u64>()));
                fs::create_dir_all(root.join(TRASH))?;
                match fs::rename(&comp.dir, &trash) {
                    Ok(()) => trash,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(e),
                }
            };
            fs::remove_dir_all(&trash)?;
            // Empty app and team directories go too (fails harmlessly if not empty).
            if let Some(app) = comp.dir.parent() {
                if fs::remove_dir(app).is_ok() {
                    if let Some(team) = app.parent() {
                        let _ = fs::remove_dir(team);
                    }
                }
            }
            Ok(())
        })
        .await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, %key, "cannot delete component logs"),
            Err(e) => tracing::warn!(error = %e, %key, "cannot delete component logs"),
        }
    }

    /// Applies retention to every component on disk: rotated files whose
    /// newest line is older than `max_age` go (and `current.log` is emptied
    /// when all of it is that old), then the oldest rotated files while the
    /// component holds more than `max_bytes`.
    pub async fn enforce_retention(&self) {
        let root = self.shared.root.clone();
        let dirs = tokio::task::spawn_blocking(move || {
            let _ = fs::remove_dir_all(root.join(TRASH));
            component_dirs(&root)
        })
        .await
        .unwrap_or_default();
        for key in dirs {
            let comp = self.comp(&key);
            let retention = self.shared.retention;
            let res = tokio::task::spawn_blocking(move || {
                let mut disk = comp.disk.lock().unwrap();
                if disk.removed {
                    return Ok(());
                }
                apply_retention(&comp.dir, &mut disk, &retention, true)
            })
            .await;
            if let Ok(Err(e)) = res {
                tracing::warn!(error = %e, %key, "cannot apply log retention");
            }
        }
    }

    #[cfg(test)]
    fn comp_for_test(&self, key: &Key) -> Arc<Comp> {
        self.comp(key)
    }
}

impl Drop for ComponentLogs {
    /// Writers store what is queued, then end.
    fn drop(&mut self) {
        for comp in self.components.lock().unwrap().values() {
            let mut st = comp.state.lock().unwrap();
            st.shutdown = true;
            comp.wake.notify_all();
        }
    }
}

impl Comp {
    fn next_seq(&self, st: &mut State) -> i64 {
        let last = match st.seq {
            Some(s) => s,
            None => {
                let s = match recover_seq(&self.dir) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, dir = %self.dir.display(), "cannot read the last log line; numbering from 1");
                        0
                    }
                };
                st.stored = s;
                s
            }
        };
        st.seq = Some(last + 1);
        last + 1
    }
}

/// The sequence number of the newest stored line (or, when retention
/// emptied the component, the one it noted).
fn recover_seq(dir: &Path) -> std::io::Result<i64> {
    let mut seq = match fs::read_to_string(dir.join(SEQ_NOTE)) {
        Ok(s) => s.trim().parse().unwrap_or(0),
        Err(_) => 0,
    };
    if let Some(l) = last_line(&dir.join(CURRENT))? {
        return Ok(seq.max(l.seq));
    }
    for s in segments(dir)?.iter().rev() {
        if let Some(l) = last_line(&s.path)? {
            seq = seq.max(l.seq);
            break;
        }
    }
    Ok(seq)
}

/// The last line of a file that parses, reading backwards in chunks.
fn last_line(path: &Path) -> std::io::Result<Option<LogLine>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut end = f.metadata()?.len();
    // Bytes after `end` not yet split into lines (a line may span chunks).
    let mut carry: Vec<u8> = Vec::new();
    const CHUNK: u64 = 64 * 1024;
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; (end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&carry);
        // Every complete line in `chunk` (the first piece may be partial
        // unless we reached the file's start).
        let mut pieces: Vec<&[u8]> = chunk.split(|&b| b == b'\n').collect();
        let head = if start > 0 {
            Some(pieces.remove(0))
        } else {
            None
        };
        for piece in pieces.iter().rev() {
            if let Ok(l) = serde_json::from_slice::<LogLine>(piece) {
                return Ok(Some(l));
            }
        }
        carry = head.map(|h| h.to_vec()).unwrap_or_default();
        end = start;
    }
    Ok(None)
}

/// Components with a log directory: `<root>/<team>/<app>/<name>`.
fn component_dirs(root: &Path) -> Vec<Key> {
    let names = |p: &Path| -> Vec<String> {
        fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| crate::validate::dns_label("", n).is_ok())
            .collect()
    };
    let mut out = Vec::new();
    for team in names(root) {
        for app in names(&root.join(&team)) {
            for name in names(&root.join(&team).join(&app)) {
                out.push(Key {
                    team: team.clone(),
                    app: app.clone(),
                    name,
                });
            }
        }
    }
    out
}

/// Loads what `current.log` holds (once per process).
fn load_current(dir: &Path) -> std::io::Result<FileStats> {
    let mut stats = FileStats::default();
    let f = match File::open(dir.join(CURRENT)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(stats),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::new(f);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        match serde_json::from_slice::<LogLine>(buf.strip_suffix(b"\n").unwrap_or(&buf)) {
            Ok(l) => stats.add(&l, n as u64),
            Err(_) => stats.bytes += n as u64,
        }
    }
    Ok(stats)
}

/// Opens `current.log` for appending, ending a torn last line first.
fn open_current(dir: &Path, disk: &mut Disk) -> std::io::Result<()> {
    if disk.file.is_some() {
        return Ok(());
    }
    // A removed sibling may take the app directory away meanwhile: retry once.
    if fs::create_dir_all(dir).is_err() {
        fs::create_dir_all(dir)?;
    }
    if disk.current.is_none() {
        disk.current = Some(load_current(dir)?);
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(dir.join(CURRENT))?;
    let len = file.metadata()?.len();
    if len > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::Start(len - 1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
            if let Some(c) = disk.current.as_mut() {
                c.bytes += 1;
            }
        }
    }
    disk.file = Some(file);
    Ok(())
}

/// Renames `current.log` to a segment named after what it holds.
fn rotate(dir: &Path, disk: &mut Disk, retention: &Retention) -> std::io::Result<()> {
    disk.file = None;
    let stats = disk.current.take().unwrap_or_default();
    disk.current = Some(FileStats::default());
    if stats.lines > 0 {
        fs::rename(dir.join(CURRENT), dir.join(segment_name(&stats)))?;
    } else {
        // Nothing worth keeping (only unreadable lines).
        fs::remove_file(dir.join(CURRENT))?;
    }
    apply_retention(dir, disk, retention, false)
}

/// Drops rotated files past their age (when `by_age`) and the oldest ones
/// while the component holds more than `max_bytes`. Called with the disk lock.
fn apply_retention(
    dir: &Path,
    disk: &mut Disk,
    retention: &Retention,
    by_age: bool,
) -> std::io::Result<()> {
    let cutoff = now_ms().saturating_sub(retention.max_age.as_millis() as i64);
    let mut segs = segments(dir)?;
    if by_age {
        let mut kept = Vec::with_capacity(segs.len());
        for s in segs {
            if s.max_ms < cutoff {
                remove_if_present(&s.path)?;
            } else {
                kept.push(s);
            }
        }
        segs = kept;
        if disk.current.is_none() && dir.join(CURRENT).exists() {
            disk.current = Some(load_current(dir)?);
        }
        if let Some(c) = disk.current.as_mut() {
            if c.lines > 0 && c.max_ms < cutoff {
                if let Some(last) = last_line(&dir.join(CURRENT))? {
                    let note = dir.join(SEQ_NOTE);
                    let tmp = dir.join(format!("{SEQ_NOTE}.tmp"));
                    fs::write(&tmp, last.seq.to_string())?;
                    fs::rename(&tmp, &note)?;
                }
                // Appends go to the end of the file whatever its length, so
                // an open writer simply continues in the emptied file.
                match OpenOptions::new().write(true).open(dir.join(CURRENT)) {
                    Ok(f) => f.set_len(0)?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                *c = FileStats::default();
            }
        }
    }
    // `current.log` counts as full: it grows to `file_bytes` before the
    // next rotation applies retention again, and the total must stay within
    // `max_bytes` meanwhile.
    let current = match fs::metadata(dir.join(CURRENT)) {
        Ok(m) => m.len(),
        Err(_) => 0,
    }
    .max(retention.file_bytes);
    let mut sizes = Vec::with_capacity(segs.len());
    for s in &segs {
        sizes.push(fs::metadata(&s.path).map(|m| m.len()).unwrap_or(0));
    }
    let mut total: u64 = current + sizes.iter().sum::<u64>();
    for (s, size) in segs.iter().zip(sizes) {
        if total <= retention.max_bytes {
            break;
        }
        remove_if_present(&s.path)?;
        total -= size;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// One writer thread per active component: drains the queue in batches.
fn writer(comp: Arc<Comp>, shared: Arc<Shared>) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let batch = {
            let mut st = comp.state.lock().unwrap();
            loop {
                if st.removed {
                    st.writer = false;
                    comp.stored.notify_all();
                    return;
                }
                if !st.queue.is_empty() || st.dropped > 0 {
                    break;
                }
                if st.shutdown {
                    st.writer = false;
                    return;
                }
                st.writer_waiting = true;
                let (g, timeout) = comp.wake.wait_timeout(st, WRITER_IDLE).unwrap();
                st = g;
                st.writer_waiting = false;
                if timeout.timed_out() && st.queue.is_empty() && st.dropped == 0 {
                    st.writer = false;
                    return;
                }
            }
            let mut batch = std::mem::take(&mut st.queue);
            st.queued_bytes = 0;
            if st.dropped > 0 {
                let count = std::mem::take(&mut st.dropped);
                let seq = comp.next_seq(&mut st);
                let line = Arc::new(LogLine {
                    seq,
                    time: now_ms(),
                    level: Level::Warn,
                    step: "logs".into(),
                    message: skipped_message(count),
                });
                shared
                    .hub
                    .publish(&comp.channel, HubMessage::Line(line.clone()));
                batch.push(line);
            }
            batch
        };
        let last = batch.last().map(|l| l.seq).unwrap_or(0);
        if let Err(e) = write_batch(&comp, &shared, &batch, &mut buf) {
            tracing::warn!(error = %e, dir = %comp.dir.display(), lines = batch.len(), "cannot store component log lines");
        }
        drop(batch);
        if buf.capacity() > 1 << 20 {
            buf = Vec::with_capacity(64 * 1024);
        }
        let mut st = comp.state.lock().unwrap();
        st.stored = st.stored.max(last);
        if st.flush_waiters > 0 {
            comp.stored.notify_all();
        }
    }
}

fn write_batch(
    comp: &Comp,
    shared: &Shared,
    batch: &[Arc<LogLine>],
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    let mut disk = comp.disk.lock().unwrap();
    if disk.removed {
        return Ok(());
    }
    let result = (|| {
        open_current(&comp.dir, &mut disk)?;
        buf.clear();
        for line in batch {
            let start = buf.len();
            serde_json::to_writer(&mut *buf, &**line).map_err(std::io::Error::other)?;
            buf.push(b'\n');
            let n = (buf.len() - start) as u64;
            let stats = disk.current.get_or_insert_with(Default::default);
            stats.add(line, n);
            if stats.bytes >= shared.retention.file_bytes {
                disk.file.as_mut().expect("opened").write_all(buf)?;
                buf.clear();
                rotate(&comp.dir, &mut disk, &shared.retention)?;
                open_current(&comp.dir, &mut disk)?;
            }
        }
        if !buf.is_empty() {
            disk.file.as_mut().expect("opened").write_all(buf)?;
        }
        Ok(())
    })();
    if result.is_err() {
        // Reopen (and recount) next time.
        disk.file = None;
        disk.current = None;
    }
    result
}

/// A consistent set of open files, oldest first: taken under the disk lock
/// so a rotation cannot make a line appear twice or not at all; read after
/// (open handles survive renames and deletions).
struct Snapshot {
    files: Vec<(File, u64, Option<(i64, i64)>)>,
}

async fn spawn_read<T: Send + 'static>(
    comp: Arc<Comp>,
    read: impl FnOnce(Snapshot) -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(move || {
        let snapshot = {
            let disk = comp.disk.lock().unwrap();
            let mut files = Vec::new();
            if !disk.removed {
                for s in segments(&comp.dir)? {
                    if let Ok(f) = File::open(&s.path) {
                        let len = f.metadata()?.len();
                        files.push((f, len, Some((s.min_ms, s.max_ms))));
                    }
                }
                match File::open(comp.dir.join(CURRENT)) {
                    Ok(f) => {
                        let len = f.metadata()?.len();
                        files.push((f, len, None));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Snapshot { files }
        };
        read(snapshot)
    })
    .await
    .map_err(Error::internal)?
    .map_err(|e| Error::internal(format!("reading component logs: {e}")))
}

struct Filter {
    q: Option<String>,
    /// `q` as it appears inside a JSON string: a cheap test on the raw line
    /// before parsing it (it may match elsewhere in the line, never misses).
    raw: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
}

impl Filter {
    fn new(query: &LogQuery) -> Filter {
        let q = query.q.clone().filter(|q| !q.is_empty());
        let raw = q.as_ref().map(|q| {
            let s = serde_json::to_string(q).expect("strings serialise");
            s[1..s.len() - 1].to_string()
        });
        Filter {
            q,
            raw,
            since: query.since,
            until: query.until,
        }
    }

    /// Whether a file whose lines' times lie in `[min, max]` can hold a match.
    fn may_hold(&self, range: Option<(i64, i64)>) -> bool {
        let Some((min, max)) = range else {
            return true;
        };
        self.since.is_none_or(|s| max >= s) && self.until.is_none_or(|u| min < u)
    }

    fn raw_match(&self, raw: &[u8]) -> bool {
        match &self.raw {
            None => true,
            Some(r) => std::str::from_utf8(raw).is_ok_and(|s| s.contains(r.as_str())),
        }
    }

    fn matches(&self, l: &LogLine) -> bool {
        self.q
            .as_ref()
            .is_none_or(|q| l.message.contains(q.as_str()))
            && self.since.is_none_or(|s| l.time >= s)
            && self.until.is_none_or(|u| l.time < u)
    }
}

/// The newest `limit` matching lines, oldest first, and whether more matched.
fn collect_newest(
    snapshot: Snapshot,
    limit: usize,
    filter: &Filter,
) -> std::io::Result<(Vec<LogLine>, bool)> {
    // Newest files first; each file's matches in a ring of what is still needed.
    let mut newest_first: Vec<VecDeque<LogLine>> = Vec::new();
    let mut have = 0usize;
    let mut truncated = false;
    let mut raw = Vec::new();
    for (file, len, range) in snapshot.files.into_iter().rev() {
        if !filter.may_hold(range) {
            continue;
        }
        // One more than needed, to know whether anything older matched.
        let want = limit + 1 - have;
        let mut ring: VecDeque<LogLine> = VecDeque::new();
        let mut reader = BufReader::with_capacity(256 * 1024, file.take(len));
        loop {
            raw.clear();
            if reader.read_until(b'\n', &mut raw)? == 0 {
                break;
            }
            if raw.last() != Some(&b'\n') {
                // A line still being written.
                break;
            }
            raw.pop();
            if !filter.raw_match(&raw) {
                continue;
            }
            let Ok(line) = serde_json::from_slice::<LogLine>(&raw) else {
                continue;
            };
            if !filter.matches(&line) {
                continue;
            }
            if ring.len() == want {
                ring.pop_front();
            }
            ring.push_back(line);
        }
        have += ring.len();
        newest_first.push(ring);
        if have > limit {
            truncated = true;
            break;
        }
    }
    let mut lines: Vec<LogLine> = newest_first.into_iter().rev().flatten().collect();
    if lines.len() > limit {
        lines.drain(..lines.len() - limit);
    }
    Ok((lines, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        Key {
            team: "acme".into(),
            app: "shop".into(),
            name: name.into(),
        }
    }

    fn open_logs(dir: &Path, retention: Retention) -> ComponentLogs {
        ComponentLogs::new(dir.join("logs"), Arc::new(Hub::default()), retention)
    }

    async fn all(logs: &ComponentLogs, key: &Key) -> Vec<LogLine> {
        logs.tail(key, usize::MAX / 2).await.unwrap()
    }

    fn files(dir: &Path) -> (Vec<(String, u64)>, u64) {
        let mut out: Vec<(String, u64)> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| {
                (
                    e.file_name().into_string().unwrap(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect();
        out.sort();
        let total = out.iter().map(|(_, n)| n).sum();
        (out, total)
    }

    #[tokio::test]
    async fn search_finds_by_substring_and_time_range() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = open_logs(tmp.path(), Retention::default());
        let k = key("web");
        for i in 0..5 {
            logs.append(&k, 1, "v1", Stream::Stdout, &format!("early {i}"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let t0 = now_ms();
        logs.append(&k, 2, "v1", Stream::Stderr, "GET /cart needle \"quoted\"\n");
        logs.append(&k, 1, "v1", Stream::Stdout, "middle plain");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let t1 = now_ms();
        for i in 0..5 {
            logs.append(&k, 1, "v2", Stream::Stdout, &format!("late {i} needle"));
        }

        // Substring, found right after appending (the search flushes).
        let page = logs
            .search(
                &k,
                &LogQuery {
                    q: Some("needle \"quoted\"".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(!page.truncated);
        assert_eq!(page.lines.len(), 1, "{page:?}");
        let l = &page.lines[0];
        assert_eq!(l.seq, 6);
        assert_eq!(l.level, Level::Error);
        assert_eq!(l.step, "2/v1");
        assert_eq!(l.message, "GET /cart needle \"quoted\"");

        let page = logs
            .search(
                &k,
                &LogQuery {
                    q: Some("needle".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let seqs: Vec<i64> = page.lines.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, vec![6, 8, 9, 10, 11, 12]);

        // Time range [t0, t1): exactly the two middle lines.
        let page = logs
            .search(
                &k,
                &LogQuery {
                    since: Some(t0),
                    until: Some(t1),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let msgs: Vec<&str> = page.lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(msgs, vec!["GET /cart needle \"quoted\"", "middle plain"]);

        // Substring and range together.
        let page = logs
            .search(
                &k,
                &LogQuery {
                    q: Some("needle".into()),
                    since: Some(t1),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.lines.len(), 5);
        assert!(page.lines.iter().all(|l| l.message.starts_with("late")));

        // No match; another component sees nothing of this one.
        let page = logs
            .search(
                &k,
                &LogQuery {
                    q: Some("absent".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(page.lines.is_empty() && !page.truncated);
        assert!(all(&logs, &key("other")).await.is_empty());

        // Stored as JSON lines in the component's directory.
        let current =
            fs::read_to_string(tmp.path().join("logs/acme/shop/web/current.log")).unwrap();
        assert_eq!(current.lines().count(), 12);
        let first: LogLine = serde_json::from_str(current.lines().next().unwrap()).unwrap();
        assert_eq!((first.seq, first.message.as_str()), (1, "early 0"));

        // Long messages are cut to 4096 bytes.
        logs.append(&k, 1, "v2", Stream::Stdout, &"é".repeat(5000));
        let last = logs.tail(&k, 1).await.unwrap();
        assert!(last[0].message.len() <= MAX_LINE_BYTES);
        assert!(last[0].message.ends_with('…'));
    }

    #[tokio::test]
    async fn limit_keeps_the_newest_and_says_truncated() {
        let tmp = tempfile::tempdir().unwrap();
        // Small files, so the matches span rotated files too.
        let logs = open_logs(
            tmp.path(),
            Retention {
                file_bytes: 2000,
                ..Default::default()
            },
        );
        let k = key("api");
        for i in 1..=300 {
            let tag = if i % 3 == 0 { "hit" } else { "miss" };
            logs.append(&k, 1, "v1", Stream::Stdout, &format!("{tag} {i}"));
        }
        let q = |limit| LogQuery {
            q: Some("hit".into()),
            limit,
            ..Default::default()
        };
        let page = logs.search(&k, &q(Some(10))).await.unwrap();
        assert!(page.truncated);
        let seqs: Vec<i64> = page.lines.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, (0..10).map(|n| 273 + 3 * n).collect::<Vec<i64>>());
        // Exactly as many as match: not truncated.
        let page = logs.search(&k, &q(Some(100))).await.unwrap();
        assert_eq!(page.lines.len(), 100);
        assert!(!page.truncated);
        assert_eq!(page.lines[0].seq, 3);
        assert_eq!(page.lines[99].seq, 300);
        // Default 500; more than 5000 is capped.
        let page = logs.search(&k, &LogQuery::default()).await.unwrap();
        assert_eq!(page.lines.len(), 300);
        assert!(!page.truncated);
        assert!(
            segments(&tmp.path().join("logs/acme/shop/api"))
                .unwrap()
                .len()
                > 2
        );
        assert_eq!(
            logs.tail(&k, 3)
                .await
                .unwrap()
                .iter()
                .map(|l| l.seq)
                .collect::<Vec<_>>(),
            vec![298, 299, 300]
        );
    }

    #[tokio::test]
    async fn seq_continues_after_reopening() {
        let tmp = tempfile::tempdir().unwrap();
        let k = key("worker");
        {
            let logs = open_logs(tmp.path(), Retention::default());
            for i in 1..=10 {
                logs.append(&k, 1, "v1", Stream::Stdout, &format!("line {i}"));
            }
            assert_eq!(logs.tail(&k, 1).await.unwrap()[0].seq, 10);
        }
        // A crash left half a line behind.
        let current = tmp.path().join("logs/acme/shop/worker/current.log");
        let mut f = OpenOptions::new().append(true).open(&current).unwrap();
        f.write_all(br#"{"seq":11,"time":1,"lev"#).unwrap();
        drop(f);

        let logs = open_logs(tmp.path(), Retention::default());
        let hub_rx = &mut logs.shared.hub.subscribe(&ComponentLogs::channel(&k));
        logs.append(&k, 1, "v2", Stream::Stdout, "after restart");
        match hub_rx.try_recv() {
            Ok(HubMessage::Line(l)) => assert_eq!(l.seq, 11),
            other => panic!("expected a line, got {other:?}"),
        }
        let lines = all(&logs, &k).await;
        let seqs: Vec<i64> = lines.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, (1..=11).collect::<Vec<_>>());
        assert_eq!(lines[10].message, "after restart");

        // Also when only rotated files remain.
        drop(logs);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let dir = tmp.path().join("logs/acme/shop/worker");
        fs::rename(
            dir.join(CURRENT),
            dir.join("00000000000000000001-000000000000001-000000000000002.log"),
        )
        .unwrap();
        let logs = open_logs(tmp.path(), Retention::default());
        logs.append(&k, 1, "v2", Stream::Stdout, "again");
        assert_eq!(logs.tail(&k, 1).await.unwrap()[0].seq, 12);
    }

    #[tokio::test]
    async fn rotation_and_retention_by_bytes_drop_the_oldest_files() {
        let tmp = tempfile::tempdir().unwrap();
        let retention = Retention {
            file_bytes: 4096,
            max_bytes: 20_000,
            ..Default::default()
        };
        let logs = open_logs(tmp.path(), retention);
        let k = key("chatty");
        let dir = tmp.path().join("logs/acme/shop/chatty");
        let pad = "x".repeat(60);
        for i in 1..=1000 {
            logs.append(&k, 1, "v1", Stream::Stdout, &format!("{i} {pad}"));
        }
        let tail = logs.tail(&k, 1).await.unwrap();
        assert_eq!(tail[0].seq, 1000);

        let (names, total) = files(&dir);
        let segs = segments(&dir).unwrap();
        assert!(segs.len() >= 3, "{names:?}");
        // Every file near file_bytes (rotated when it reaches it).
        for (name, size) in &names {
            assert!(*size < 4096 + 200, "{name} {size}");
        }
        // Bytes retention kept the total under max_bytes by dropping the oldest.
        assert!(total <= 20_000, "{total} {names:?}");
        assert!(segs[0].first_seq > 1);
        let kept = all(&logs, &k).await;
        assert_eq!(kept.last().unwrap().seq, 1000);
        let oldest = kept[0].seq;
        assert!(oldest > 1 && oldest == segs[0].first_seq);
        // Contiguous: only whole old files went.
        assert!(kept.windows(2).all(|w| w[1].seq == w[0].seq + 1));
        let page = logs
            .search(
                &k,
                &LogQuery {
                    q: Some(format!("1 {pad}")),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(page.lines.iter().all(|l| l.seq >= oldest));
        assert!(page.lines.iter().all(|l| l.message.contains("1 x")));

        // Retention by age: everything is older than a tiny max_age.
        let logs2 = ComponentLogs::new(
            tmp.path().join("logs"),
            Arc::new(Hub::default()),
            Retention {
                max_age: Duration::from_millis(1),
                ..retention
            },
        );
        drop(logs);
        tokio::time::sleep(Duration::from_millis(20)).await;
        logs2.enforce_retention().await;
        assert!(segments(&dir).unwrap().is_empty());
        assert!(all(&logs2, &k).await.is_empty());
        // Numbering goes on (the component's state outlives its old lines).
        logs2.append(&k, 1, "v1", Stream::Stdout, "fresh");
        let lines = all(&logs2, &k).await;
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].seq, 1001);

        // Remove deletes the component's directory.
        logs2.remove(&k).await;
        assert!(!dir.exists());
        assert!(all(&logs2, &k).await.is_empty());
    }

    #[tokio::test]
    async fn a_burst_does_not_block_and_memory_stays_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = open_logs(tmp.path(), Retention::default());
        let k = key("burst");
        const N: usize = 200_000;
        let msg = "GET /api/items?page=3 200 12ms user-agent=curl/8.5 ".repeat(2);
        let started = Instant::now();
        for _ in 0..N {
            logs.append(&k, 1, "v7", Stream::Stdout, &msg);
        }
        let took = started.elapsed();
        let rate = N as f64 / took.as_secs_f64();
        println!("component logs: {N} appends in {took:?} = {rate:.0} lines/s");
        assert!(took < Duration::from_secs(5), "appending took {took:?}");

        let (hw_lines, hw_bytes) = {
            let comp = logs.comp_for_test(&k);
            let st = comp.state.lock().unwrap();
            (st.max_queued_lines, st.max_queued_bytes)
        };
        assert!(hw_lines <= MAX_QUEUED_LINES && hw_bytes <= MAX_QUEUED_BYTES);

        let lines = all(&logs, &k).await;
        println!(
            "component logs: all {N} lines stored or counted {:?} after the burst began",
            started.elapsed()
        );
        let skipped: u64 = lines
            .iter()
            .filter(|l| l.step == "logs")
            .map(|l| {
                assert!(l
                    .message
                    .ends_with("lines skipped (the app writes faster than logs are stored)"));
                l.message.split(' ').next().unwrap().parse::<u64>().unwrap()
            })
            .sum();
        let stored = lines.iter().filter(|l| l.step == "1/v7").count() as u64;
        println!("component logs: stored {stored}, skipped {skipped}, queue high-water {hw_lines} lines / {hw_bytes} bytes");
        // Every line is either stored or counted in a "skipped" line.
        assert_eq!(stored + skipped, N as u64);
        assert!(lines.windows(2).all(|w| w[1].seq > w[0].seq));
    }

    #[tokio::test]
    async fn a_steady_100k_lines_per_second_is_stored() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = open_logs(tmp.path(), Retention::default());
        let k = key("steady");
        const N: usize = 100_000;
        let msg = "GET /api/items?page=3 200 12ms user-agent=curl/8.5 ".repeat(2);
        let started = Instant::now();
        // 1000 lines every 10 ms: 100k lines/s.
        for chunk in 0..N / 1000 {
            for _ in 0..1000 {
                logs.append(&k, 1, "v1", Stream::Stdout, &msg);
            }
            let due = started + Duration::from_millis(10 * (chunk as u64 + 1));
            tokio::time::sleep_until(due.into()).await;
        }
        let lines = all(&logs, &k).await;
        let skipped: usize = lines
            .iter()
            .filter(|l| l.step == "logs")
            .map(|l| {
                l.message
                    .split(' ')
                    .next()
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            })
            .sum();
        let stored = lines.iter().filter(|l| l.step == "1/v1").count();
        println!(
            "component logs: {N} lines at 100k/s: stored {stored}, skipped {skipped}, all stored {:?} after the start",
            started.elapsed()
        );
        assert_eq!(stored + skipped, N);
        // The writer keeps up (a generous bound: the machine may be busy).
        assert!(
            skipped * 10 <= N,
            "{skipped} of {N} lines skipped at 100k lines/s"
        );
    }

    #[tokio::test]
    async fn a_stalled_writer_drops_lines_and_says_how_many() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = open_logs(tmp.path(), Retention::default());
        let k = key("stall");
        logs.append(&k, 1, "v1", Stream::Stdout, "first");
        assert_eq!(logs.tail(&k, 5).await.unwrap().len(), 1);
        let comp = logs.comp_for_test(&k);
        const N: usize = 50_000;
        {
            // The disk is stuck: the writer cannot store anything.
            let _stuck = comp.disk.lock().unwrap();
            let started = Instant::now();
            for i in 0..N {
                logs.append(&k, 1, "v1", Stream::Stdout, &format!("line {i}"));
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "append waited for the disk"
            );
            let st = comp.state.lock().unwrap();
            assert!(st.queue.len() <= MAX_QUEUED_LINES);
            assert!(st.max_queued_lines <= MAX_QUEUED_LINES);
            assert!(st.max_queued_bytes <= MAX_QUEUED_BYTES);
            assert!(st.dropped > 0);
        }
        let lines = all(&logs, &k).await;
        let skipped: Vec<&LogLine> = lines
            .iter()
            .filter(|l| l.message.contains("lines skipped"))
            .collect();
        // One "N lines skipped" line per overflow; there are two when the
        // queue overflowed before the writer took its first batch and got stuck.
        assert!(
            (1..=2).contains(&skipped.len()),
            "{} lines say lines were skipped",
            skipped.len()
        );
        let count: usize = skipped
            .iter()
            .map(|l| {
                l.message
                    .split(' ')
                    .next()
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            })
            .sum();
        assert!(skipped.iter().all(|l| l.level == Level::Warn));
        let stored = lines
            .iter()
            .filter(|l| l.message.starts_with("line "))
            .count();
        // At most the queue, plus the one batch the writer took before it got stuck.
        assert!(stored <= 2 * MAX_QUEUED_LINES);
        assert_eq!(stored + count, N);
        // The last skipped line comes after the stored ones, numbered after
        // every dropped one.
        let last = lines.last().unwrap();
        assert!(last.message.contains("lines skipped"), "{}", last.message);
        assert_eq!(last.seq, 1 + N as i64 + skipped.len() as i64);
    }

    #[tokio::test]
    async fn a_hub_subscriber_receives_lines_live() {
        let tmp = tempfile::tempdir().unwrap();
        let hub = Arc::new(Hub::default());
        let logs = ComponentLogs::new(tmp.path().join("logs"), hub.clone(), Retention::default());
        let k = key("live");
        assert_eq!(ComponentLogs::channel(&k), "logs:acme/shop/live");
        let mut rx = hub.subscribe(&ComponentLogs::channel(&k));
        logs.append(&k, 2, "v3", Stream::Stdout, "hello");
        logs.append(&k, 1, "v3", Stream::Stderr, "oops");
        logs.append(&key("elsewhere"), 1, "v3", Stream::Stdout, "not mine");
        for (seq, level, step, message) in [
            (1, Level::Info, "2/v3", "hello"),
            (2, Level::Error, "1/v3", "oops"),
        ] {
            let msg = tokio::time::timeout(Duration::from_secs(1), rx.recv())
                .await
                .expect("a line arrives at once")
                .unwrap();
            let HubMessage::Line(l) = msg else {
                panic!("expected a line")
            };
            assert_eq!(
                (l.seq, l.level, l.step.as_str(), l.message.as_str()),
                (seq, level, step, message)
            );
        }
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn invalid_keys_touch_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = open_logs(tmp.path(), Retention::default());
        let bad = Key {
            team: "..".into(),
            app: "x".into(),
            name: "y".into(),
        };
        logs.append(&bad, 1, "v1", Stream::Stdout, "escape");
        assert!(matches!(logs.tail(&bad, 10).await, Err(Error::Invalid(_))));
        assert!(matches!(
            logs.search(&bad, &LogQuery::default()).await,
            Err(Error::Invalid(_))
        ));
        assert!(!tmp.path().join("logs").exists());
    }
}
