//! The builder: from a component's source (a git repository or an uploaded
//! archive) to an immutable, versioned artifact directory that replicas run
//! in.
//!
//! A build is fetch → detect → the plan's steps (dependency install, build)
//! → package. It runs in a scratch directory under `<root>/work` and is
//! renamed into `<root>/artifacts/<team>/<app>/<name>/<version>/` only once
//! everything succeeded, so a half-built artifact never exists. Builds are
//! bounded in number (a semaphore of `max_parallel`) and in time (the whole
//! build; on timeout every process it started is killed), and builds of one
//! component run one at a time, which keeps its dependency cache coherent.
//!
//! Errors follow the crate's rule: whatever the user can fix (a bad URL, a
//! failing `npm install`, an unsafe archive, a timeout) is `Invalid` and not
//! worth retrying; `Internal` is reserved for the datacenter's own faults.

pub mod archive;
pub mod cache;
pub mod command;
pub mod detect;
pub mod source;

pub use source::MAX_UPLOAD_BYTES;

use crate::api::{BuildSettings, DetectedPlan};
use crate::error::{Error, Result};
use crate::logs::EventLog;
use crate::store::components::Key;
use command::{Sink, Spec};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone)]
pub struct BuilderConfig {
    /// e.g. `<data_dir>/builder`; the builder owns everything under it.
    pub root: PathBuf,
    /// Shell command prefix serving a directory on `$PORT`; a static site
    /// runs `{static_server} .` in its artifact.
    pub static_server: String,
    /// `local` or `kubernetes`.
    pub runtime_kind: String,
    /// Whole-build timeout.
    pub timeout: Duration,
    pub max_parallel: usize,
}

impl BuilderConfig {
    /// The defaults: 15 minutes per build, two builds per core.
    pub fn new(root: PathBuf, static_server: String, runtime_kind: String) -> BuilderConfig {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        BuilderConfig {
            root,
            static_server,
            runtime_kind,
            timeout: DEFAULT_TIMEOUT,
            max_parallel: 2 * cores,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceInput {
    Git {
        url: String,
        reference: String,
    },
    /// The archive last stored for the component.
    Upload,
}

#[derive(Debug, Clone)]
pub struct BuildOutput {
    /// Immutable directory with the built app; replicas run with cwd = this dir.
    pub artifact: PathBuf,
    /// `plan.run_command` is what replicas run (`sh -c`).
    pub plan: DetectedPlan,
    /// Directories to put before PATH at run time.
    pub path_prepend: Vec<PathBuf>,
    /// "git https://… @ main (3f2a9c1)" or "upload (12 KB)".
    pub source: String,
    /// Dependencies came from the cache.
    pub cache_hit: bool,
}

pub struct Builder {
    config: BuilderConfig,
    slots: Arc<Semaphore>,
    /// One build at a time per component.
    locks: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
}

impl Builder {
    pub fn new(mut config: BuilderConfig) -> Builder {
        // Artifact paths end up in run commands and PATH: make them absolute.
        if let Ok(abs) = std::path::absolute(&config.root) {
            config.root = abs;
        }
        config.max_parallel = config.max_parallel.max(1);
        clear_stale_work(&config.root.join("work"));
        Builder {
            slots: Arc::new(Semaphore::new(config.max_parallel)),
            config,
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &BuilderConfig {
        &self.config
    }

    /// Stores an uploaded archive (tar.gz or zip, by magic bytes) as the
    /// component's source, after checking that it extracts safely.
    pub async fn store_upload(&self, key: &Key, bytes: &[u8]) -> Result<()> {
        source::store_upload(&self.dir("uploads", key)?, bytes).await
    }

    pub fn has_upload(&self, key: &Key) -> bool {
        self.dir("uploads", key)
            .map(|d| source::stored_upload(&d).is_some())
            .unwrap_or(false)
    }

    /// Fetches the source into a scratch directory and says what a build
    /// would do with it.
    pub async fn detect(
        &self,
        key: Option<&Key>,
        source: &SourceInput,
        overrides: &BuildSettings,
    ) -> Result<DetectedPlan> {
        let work = WorkDir::create(&self.config.root.join("work"))?;
        let job = async {
            let (src, _) = self.fetch(key, source, work.path(), None).await?;
            detect::detect(
                &src,
                overrides,
                &self.config.runtime_kind,
                &self.config.static_server,
            )
        };
        tokio::time::timeout(self.config.timeout, job)
            .await
            .map_err(|_| {
                Error::Invalid(vec![format!(
                    "fetching the source took longer than {}",
                    human_duration(self.config.timeout)
                )])
            })?
    }

    /// Says what a build would do with an archive (tar.gz or zip) that is
    /// not stored anywhere: it is unpacked with the upload checks into a
    /// scratch directory under `<root>/work`, detected there with this
    /// builder's runtime kind, and the directory is removed before the
    /// answer, whatever it is. The blocking task owns the directory, so a
    /// caller that goes away mid-way still leaves nothing behind.
    pub async fn detect_archive(
        &self,
        archive: bytes::Bytes,
        overrides: &BuildSettings,
    ) -> Result<DetectedPlan> {
        if archive.len() > MAX_UPLOAD_BYTES {
            return Err(Error::Invalid(vec![format!(
                "the archive is {}; the limit is {}",
                source::human_bytes(archive.len() as u64),
                source::human_bytes(MAX_UPLOAD_BYTES as u64)
            )]));
        }
        if archive::Format::sniff(&archive).is_none() {
            return Err(archive::not_an_archive());
        }
        let work = WorkDir::create(&self.config.root.join("work"))?;
        let overrides = overrides.clone();
        let runtime_kind = self.config.runtime_kind.clone();
        let static_server = self.config.static_server.clone();
        tokio::task::spawn_blocking(move || {
            let src = work.path().join("src");
            let plan = archive::extract(&archive, &src, archive::Limits::default())
                .and_then(|_| source::remove_git_dir(&src))
                .and_then(|_| detect::detect(&src, &overrides, &runtime_kind, &static_server));
            work.remove_now();
            plan
        })
        .await
        .map_err(Error::internal)?
    }

    /// Fetch → detect → steps → artifact, every line into `log`.
    pub async fn build(
        &self,
        key: &Key,
        version: &str,
        source: &SourceInput,
        overrides: &BuildSettings,
        log: &EventLog,
    ) -> Result<BuildOutput> {
        check_segment("version", version)?;
        let artifact = self.dir("artifacts", key)?.join(version);
        if artifact.exists() {
            return Err(version_exists(key, version));
        }
        let lock = {
            let mut locks = self.locks.lock().unwrap();
            locks.entry(key.clone()).or_default().clone()
        };
        let _one_at_a_time = match lock.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                log.info(
                    "queue",
                    "waiting for the previous build of this component to finish",
                )
                .await;
                lock.lock().await
            }
        };
        if artifact.exists() {
            return Err(version_exists(key, version));
        }
        let _slot = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                log.info(
                    "queue",
                    format!(
                        "waiting for a free build slot ({} builds run at a time)",
                        self.config.max_parallel
                    ),
                )
                .await;
                self.slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(Error::internal)?
            }
        };
        let work = WorkDir::create(&self.config.root.join("work"))?;
        let started = std::time::Instant::now();
        // Dropping the build on timeout drops its running command, whose
        // guard kills the command's whole process group.
        let result = tokio::time::timeout(
            self.config.timeout,
            self.run_build(key, version, &artifact, source, overrides, log, work.path()),
        )
        .await;
        match result {
            Ok(Ok(out)) => {
                log.info(
                    "package",
                    format!("build finished in {}", human_duration(started.elapsed())),
                )
                .await;
                Ok(out)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                let msg = format!(
                    "build timed out after {}; all its processes were stopped",
                    human_duration(self.config.timeout)
                );
                log.error("build", msg.clone()).await;
                Err(Error::Invalid(vec![msg]))
            }
        }
    }

    /// Deletes the artifacts, cache and upload of a component.
    pub fn remove(&self, key: &Key) {
        for area in ["artifacts", "cache", "uploads"] {
            if let Ok(dir) = self.dir(area, key) {
                match fs::remove_dir_all(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(error = %e, dir = %dir.display(), "could not remove builder files")
                    }
                }
            }
        }
        self.locks.lock().unwrap().remove(key);
    }

    /// `<root>/<area>/<team>/<app>/<name>`.
    fn dir(&self, area: &str, key: &Key) -> Result<PathBuf> {
        check_segment("team", &key.team)?;
        check_segment("app", &key.app)?;
        check_segment("component", &key.name)?;
        Ok(self
            .config
            .root
            .join(area)
            .join(&key.team)
            .join(&key.app)
            .join(&key.name))
    }

    /// Puts the source in `<work>/src`; returns it and its description.
    async fn fetch(
        &self,
        key: Option<&Key>,
        source: &SourceInput,
        work: &Path,
        log: Option<&EventLog>,
    ) -> Result<(PathBuf, String)> {
        let src = work.join("src");
        let home = work.join("home");
        fs::create_dir_all(&home).map_err(Error::internal)?;
        match source {
            SourceInput::Git { url, reference } => {
                source::check_git(url, reference)?;
                let shown = source::redact(url);
                if let Some(log) = log {
                    log.info("fetch", format!("cloning {shown} at {reference}"))
                        .await;
                }
                let sink = log.map(|l| Sink::Log(l, "fetch")).unwrap_or(Sink::Discard);
                let commit = source::git_clone(url, reference, &src, &home, sink).await?;
                if let Some(log) = log {
                    log.info(
                        "fetch",
                        format!("checked out {reference} at commit {commit}"),
                    )
                    .await;
                }
                Ok((src, format!("git {shown} @ {reference} ({commit})")))
            }
            SourceInput::Upload => {
                let key = key.ok_or_else(|| {
                    Error::Invalid(vec![
                        "an upload source belongs to a component; name the component".into(),
                    ])
                })?;
                let (archive, size) = source::stored_upload(&self.dir("uploads", key)?)
                    .ok_or_else(|| {
                        Error::Invalid(vec![format!(
                            "nothing was uploaded for {key} yet; upload a .tar.gz or .zip of the source first"
                        )])
                    })?;
                let size = source::human_bytes(size);
                if let Some(log) = log {
                    log.info("fetch", format!("extracting the upload ({size})"))
                        .await;
                }
                let dest = src.clone();
                let summary = tokio::task::spawn_blocking(move || {
                    archive::extract_file(&archive, &dest, archive::Limits::default())
                })
                .await
                .map_err(Error::internal)??;
                source::remove_git_dir(&src)?;
                if let Some(log) = log {
                    let stripped = summary
                        .stripped
                        .map(|d| format!(", top-level folder {d}/ stripped"))
                        .unwrap_or_default();
                    log.info(
                        "fetch",
                        format!(
                            "{} files, {}{stripped}",
                            summary.files,
                            source::human_bytes(summary.bytes)
                        ),
                    )
                    .await;
                }
                Ok((src, format!("upload ({size})")))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_build(
        &self,
        key: &Key,
        version: &str,
        artifact: &Path,
        source: &SourceInput,
        overrides: &BuildSettings,
        log: &EventLog,
        work: &Path,
    ) -> Result<BuildOutput> {
        let fetched = self.fetch(Some(key), source, work, Some(log)).await;
        let (src, description) = report(log, "fetch", fetched).await?;

        let plan = detect::detect(
            &src,
            overrides,
            &self.config.runtime_kind,
            &self.config.static_server,
        );
        let mut plan = report(log, "detect", plan).await?;
        log_plan(log, &plan).await;
        if !plan.runnable {
            let msg = plan
                .message
                .clone()
                .unwrap_or_else(|| format!("{} cannot be built here", plan.language));
            return report(log, "detect", Err(Error::Invalid(vec![msg]))).await;
        }

        let cache = report(log, "install", cache::Cache::open(self.dir("cache", key)?)).await?;
        let tools = cache.tool_env(&plan.language);
        let install = plan
            .steps
            .iter()
            .find(|s| s.name == "install")
            .map(|s| s.command.clone());
        let mut prepend = Vec::new();
        let mut extra_env = tools.vars;
        let mut cache_hit = tools.warm == Some(true);
        let mut skip_install = false;
        let mut python = None;
        let mut node = None;
        match (plan.language.as_str(), &install) {
            ("python", Some(cmd)) => {
                let fp = cache::fingerprint(&src, &["requirements.txt", "pyproject.toml"], cmd);
                let deps = cache.python(&fp);
                extra_env.push(("CLOUDPORT_VENV".into(), deps.venv().display().to_string()));
                prepend.push(deps.bin());
                if deps.ready() {
                    skip_install = true;
                    log.info(
                        "install",
                        format!("dependencies from cache (virtualenv {fp})"),
                    )
                    .await;
                } else {
                    report(log, "install", deps.prepare()).await?;
                }
                python = Some(deps);
            }
            ("node", Some(cmd)) => {
                let fp = cache::fingerprint(
                    &src,
                    &["package.json", "package-lock.json", "npm-shrinkwrap.json"],
                    cmd,
                );
                let deps = cache.node(&fp);
                if deps.ready() {
                    match deps.restore(&src).await {
                        Ok(()) => {
                            skip_install = true;
                            log.info(
                                "install",
                                format!("dependencies from cache (node_modules {fp})"),
                            )
                            .await;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "restoring node_modules from the cache");
                            log.warn(
                                "install",
                                "the cached node_modules could not be restored; installing again",
                            )
                            .await;
                        }
                    }
                }
                prepend.push(src.join("node_modules/.bin"));
                node = Some(deps);
            }
            _ => {}
        }
        if install.is_some() && !skip_install {
            log.info("install", "installing dependencies").await;
        }
        if let Some(warm) = tools.warm {
            let state = if warm { "warm" } else { "cold" };
            log.info("build", format!("{} build cache is {state}", plan.language))
                .await;
        }
        cache_hit |= skip_install;

        let home = work.join("home");
        let mut env = command::clean_env(&home, &prepend);
        env.extend(extra_env);
        for step in &plan.steps {
            if step.name == "install" && skip_install {
                continue;
            }
            run_step(log, &step.name, &step.command, &src, &env).await?;
            if step.name == "install" {
                if let Some(deps) = &python {
                    report(log, "install", deps.mark_ready()).await?;
                }
                if let Some(deps) = &node {
                    if let Err(e) = deps.store(&src).await {
                        tracing::warn!(error = %e, "storing node_modules in the cache");
                        log.warn("install", "could not keep node_modules for the next build")
                            .await;
                    }
                }
            }
        }

        if plan.language == "maven" && plan.run_command == detect::MAVEN_RUN {
            let jar = report(log, "package", find_jar(&src)).await?;
            plan.run_command = format!("java -jar target/{}", detect::shell_quote(&jar));
            log.info("package", format!("run command: {}", plan.run_command))
                .await;
        }

        // Package: the scratch tree becomes the artifact in one rename.
        report(log, "package", source::remove_git_dir(&src)).await?;
        if artifact.exists() {
            return report(log, "package", Err(version_exists(key, version))).await;
        }
        let parent = artifact.parent().expect("artifact has a parent");
        report(
            log,
            "package",
            fs::create_dir_all(parent).map_err(Error::internal),
        )
        .await?;
        report(
            log,
            "package",
            fs::rename(&src, artifact).map_err(Error::internal),
        )
        .await?;

        let mut path_prepend = Vec::new();
        if let Some(deps) = &python {
            if let Err(e) = deps.record_use(version) {
                tracing::warn!(error = %e, "recording the venv's user");
            }
            deps.prune_others(parent);
            path_prepend.push(deps.bin());
        }
        let bin = artifact.join("node_modules/.bin");
        if plan.language == "node" && bin.is_dir() {
            path_prepend.push(bin);
        }
        let dir = artifact.to_path_buf();
        let (files, bytes) = tokio::task::spawn_blocking(move || tree_size(&dir))
            .await
            .unwrap_or((0, 0));
        log.info(
            "package",
            format!(
                "artifact {version}: {files} files, {}",
                source::human_bytes(bytes)
            ),
        )
        .await;
        Ok(BuildOutput {
            artifact: artifact.to_path_buf(),
            plan,
            path_prepend,
            source: description,
            cache_hit,
        })
    }
}

async fn log_plan(log: &EventLog, plan: &DetectedPlan) {
    log.info("detect", format!("{}: {}", plan.language, plan.reason))
        .await;
    for s in &plan.steps {
        log.info("detect", format!("step {}: {}", s.name, s.command))
            .await;
    }
    if !plan.run_command.is_empty() {
        log.info("detect", format!("run command: {}", plan.run_command))
            .await;
    }
    if let Some(p) = plan.port {
        log.info("detect", format!("port {p}")).await;
    }
    if let Some(h) = &plan.health_path {
        log.info("detect", format!("health check path {h}")).await;
    }
}

/// Runs one step in the build tree; a non-zero exit fails the build.
async fn run_step(
    log: &EventLog,
    step: &str,
    command: &str,
    cwd: &Path,
    env: &[(String, String)],
) -> Result<()> {
    log.info(step, format!("$ {command}")).await;
    let spec = Spec::shell(command, cwd, env);
    let finished = command::run(&spec, Sink::Log(log, step))
        .await
        .map_err(|e| Error::Internal(format!("cannot start sh for step {step}: {e}")));
    let finished = report(log, step, finished).await?;
    if finished.success() {
        return Ok(());
    }
    let msg = format!(
        "step {step} failed: `{command}` ended with {}{}",
        finished.status(),
        finished
            .last_line()
            .map(|l| format!(" (last output: {l})"))
            .unwrap_or_default()
    );
    report(log, step, Err(Error::Invalid(vec![msg]))).await
}

/// Logs an error under `step` before handing it up. The user sees their
/// own mistakes in full; our faults only as a pointer to the server log.
async fn report<T>(log: &EventLog, step: &str, r: Result<T>) -> Result<T> {
    match r {
        Ok(v) => Ok(v),
        Err(e) => {
            match &e {
                Error::Internal(cause) => {
                    tracing::error!(%cause, step, event = %log.event_id, "build failed");
                    log.error(
                        step,
                        "an internal error stopped the build; the datacenter's log has the cause",
                    )
                    .await;
                }
                other => log.error(step, other.to_string()).await,
            }
            Err(e)
        }
    }
}

fn version_exists(key: &Key, version: &str) -> Error {
    Error::Conflict(format!("version {version} of {key} already exists"))
}

/// Path segments come from users: nothing that could climb or nest.
fn check_segment(what: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s != "."
        && s != ".."
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(vec![format!(
            "{what} `{s}` must be letters, digits, `-`, `_` or `.`"
        )]))
    }
}

/// The runnable jar of a maven build: not the sources, javadoc, tests or
/// the shade plugin's `original-` leftovers.
fn find_jar(dir: &Path) -> Result<String> {
    let mut jars: Vec<(u64, String)> = fs::read_dir(dir.join("target"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let skip = !name.ends_with(".jar")
                        || name.starts_with("original-")
                        || ["-sources.jar", "-javadoc.jar", "-tests.jar"]
                            .iter()
                            .any(|s| name.ends_with(s));
                    (!skip).then(|| (e.metadata().map(|m| m.len()).unwrap_or(0), name))
                })
                .collect()
        })
        .unwrap_or_default();
    // The fat jar, when there is one, is the largest.
    jars.sort();
    jars.pop().map(|(_, n)| n).ok_or_else(|| {
        Error::Invalid(vec![
            "the maven build produced no jar in target/; set a run command".into(),
        ])
    })
}

fn tree_size(dir: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => {
                    files += 1;
                    bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                }
                _ => {}
            }
        }
    }
    (files, bytes)
}

pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else if s >= 1 {
        format!("{s}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A scratch directory, removed (in the background) when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(parent: &Path) -> Result<WorkDir> {
        fs::create_dir_all(parent).map_err(Error::internal)?;
        let dir = parent.join(format!("{:016x}", rand::random::<u64>()));
        fs::create_dir(&dir).map_err(Error::internal)?;
        Ok(WorkDir(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Removes it now, on this thread (for callers already off the runtime).
    fn remove_now(mut self) {
        let dir = std::mem::take(&mut self.0);
        if let Err(e) = fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(error = %e, dir = %dir.display(), "could not remove a scratch directory");
            }
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let dir = std::mem::take(&mut self.0);
        if dir.as_os_str().is_empty() {
            return;
        }
        let remove = move || {
            let _ = fs::remove_dir_all(&dir);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(remove);
            }
            Err(_) => remove(),
        }
    }
}

/// Scratch trees of builds that died with a previous process.
fn clear_stale_work(work: &Path) {
    if !work.exists() {
        return;
    }
    let aside = work.with_file_name(format!("work.stale-{:016x}", rand::random::<u64>()));
    if fs::rename(work, &aside).is_ok() {
        std::thread::spawn(move || {
            let _ = fs::remove_dir_all(&aside);
        });
    }
}

#[cfg(test)]
mod tests;
