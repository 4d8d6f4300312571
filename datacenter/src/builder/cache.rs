//! The dependency cache of one component, under
//! `<root>/cache/<team>/<app>/<name>/`.
//!
//! - `python/<key>/venv`: a virtualenv keyed by a hash of requirements.txt /
//!   pyproject.toml (and the install command). Virtualenvs are not
//!   relocatable, so replicas use it where it is (the artifact's
//!   `path_prepend`); `python/<key>/used-by/<version>` records which
//!   artifacts rely on it, and only venvs no remaining artifact uses are
//!   pruned.
//! - `node/<key>/node_modules`: keyed by a hash of package.json and the
//!   lockfile; restored into a build by a hard-link copy (`cp -al`, cheap and
//!   independent of later changes to the build tree's directories) and
//!   stored the same way after a successful install. Only the latest entry
//!   is kept: artifacts hold their own links to the files.
//! - tool caches that the tools manage themselves: `pip`, `npm` (download
//!   caches), `cargo/home` + `cargo/target` (CARGO_HOME, CARGO_TARGET_DIR),
//!   `m2` (maven's local repository), `go/{build,mod,path}`.
//!
//! A venv or node_modules entry counts only once complete: a `ready` marker
//! written after the install (python) or an atomic rename (node), so a build
//! killed half-way never leaves a broken cache behind.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};

pub struct Cache {
    dir: PathBuf,
}

/// The tool-managed part of the environment for one language.
pub struct ToolEnv {
    pub vars: Vec<(String, String)>,
    /// The language's tool cache already existed (an incremental build).
    pub warm: Option<bool>,
}

impl Cache {
    pub fn open(dir: PathBuf) -> Result<Cache> {
        fs::create_dir_all(&dir).map_err(Error::internal)?;
        Ok(Cache { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn tool_env(&self, language: &str) -> ToolEnv {
        let p = |rel: &str| self.dir.join(rel).display().to_string();
        let mut vars = vec![
            ("CLOUDPORT_CACHE".to_string(), p("")),
            ("PIP_CACHE_DIR".to_string(), p("pip")),
            ("npm_config_cache".to_string(), p("npm")),
            (
                "npm_config_update_notifier".to_string(),
                "false".to_string(),
            ),
        ];
        let warm = |rel: &str| Some(self.dir.join(rel).is_dir());
        let warm = match language {
            "rust" => {
                vars.push(("CARGO_HOME".into(), p("cargo/home")));
                vars.push(("CARGO_TARGET_DIR".into(), p("cargo/target")));
                warm("cargo/target")
            }
            "go" => {
                vars.push(("GOCACHE".into(), p("go/build")));
                vars.push(("GOMODCACHE".into(), p("go/mod")));
                vars.push(("GOPATH".into(), p("go/path")));
                warm("go/build")
            }
            "maven" => warm("m2"),
            _ => None,
        };
        ToolEnv { vars, warm }
    }

    pub fn python(&self, key: &str) -> PythonDeps {
        PythonDeps {
            dir: self.dir.join("python").join(key),
        }
    }

    pub fn node(&self, key: &str) -> NodeDeps {
        NodeDeps {
            parent: self.dir.join("node"),
            key: key.into(),
        }
    }
}

/// A hash of some files of the tree (absent ones count as absent) and of
/// the command that installs from them: a changed install step must not
/// reuse what an older one produced.
pub fn fingerprint(dir: &Path, files: &[&str], command: &str) -> String {
    let mut h = Sha256::new();
    for name in files {
        h.update(name.as_bytes());
        match fs::read(dir.join(name)) {
            Ok(bytes) => {
                h.update(b"\x01");
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
            Err(_) => h.update(b"\x00"),
        }
    }
    h.update(command.as_bytes());
    // 64 bits name a handful of entries per component; shorter paths keep
    // the venv's script shebangs short.
    hex::encode(&h.finalize()[..8])
}

pub struct PythonDeps {
    dir: PathBuf,
}

impl PythonDeps {
    pub fn venv(&self) -> PathBuf {
        self.dir.join("venv")
    }

    pub fn bin(&self) -> PathBuf {
        self.venv().join("bin")
    }

    pub fn ready(&self) -> bool {
        self.dir.join("ready").is_file() && self.bin().join("python3").exists()
    }

    /// Clears what an interrupted install may have left.
    pub fn prepare(&self) -> Result<()> {
        if self.dir.exists() {
            fs::remove_dir_all(&self.dir).map_err(Error::internal)?;
        }
        fs::create_dir_all(&self.dir).map_err(Error::internal)
    }

    pub fn mark_ready(&self) -> Result<()> {
        fs::write(self.dir.join("ready"), b"").map_err(Error::internal)
    }

    pub fn record_use(&self, version: &str) -> Result<()> {
        let used = self.dir.join("used-by");
        fs::create_dir_all(&used).map_err(Error::internal)?;
        fs::write(used.join(version), b"").map_err(Error::internal)
    }

    /// Removes the other venvs of the component that no existing artifact
    /// (a directory of `artifacts`) uses.
    pub fn prune_others(&self, artifacts: &Path) {
        let Some(parent) = self.dir.parent() else {
            return;
        };
        let Ok(entries) = fs::read_dir(parent) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path == self.dir {
                continue;
            }
            let in_use = fs::read_dir(path.join("used-by"))
                .map(|users| {
                    users
                        .flatten()
                        .any(|u| artifacts.join(u.file_name()).is_dir())
                })
                .unwrap_or(false);
            if !in_use {
                let _ = fs::remove_dir_all(&path);
            }
        }
    }
}

pub struct NodeDeps {
    parent: PathBuf,
    key: String,
}

impl NodeDeps {
    fn entry(&self) -> PathBuf {
        self.parent.join(&self.key)
    }

    pub fn ready(&self) -> bool {
        self.entry().join("node_modules").is_dir()
    }

    /// Hard-link copy of the cached node_modules into `build`.
    pub async fn restore(&self, build: &Path) -> Result<()> {
        let target = build.join("node_modules");
        if fs::symlink_metadata(&target).is_ok() {
            remove_any(&target).map_err(Error::internal)?;
        }
        cp_al(&self.entry().join("node_modules"), &target).await
    }

    /// Keeps `build`'s node_modules for the next build with the same
    /// dependencies, replacing older entries.
    pub async fn store(&self, build: &Path) -> Result<()> {
        let from = build.join("node_modules");
        if !from.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(&self.parent).map_err(Error::internal)?;
        let staging = self.parent.join(format!(".{}.incoming", self.key));
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(Error::internal)?;
        }
        fs::create_dir_all(&staging).map_err(Error::internal)?;
        cp_al(&from, &staging.join("node_modules")).await?;
        let entry = self.entry();
        if entry.exists() {
            fs::remove_dir_all(&entry).map_err(Error::internal)?;
        }
        fs::rename(&staging, &entry).map_err(Error::internal)?;
        if let Ok(others) = fs::read_dir(&self.parent) {
            for other in others.flatten() {
                if other.path() != entry {
                    let _ = remove_any(&other.path());
                }
            }
        }
        Ok(())
    }
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => Ok(()),
    }
}

async fn cp_al(from: &Path, to: &Path) -> Result<()> {
    let out = tokio::process::Command::new("cp")
        .arg("-al")
        .arg("--")
        .arg(from)
        .arg(to)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Error::Internal(format!("cp -al: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "cp -al {} {}: {}",
            from.display(),
            to.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_follows_files_and_command() {
        let t = tempfile::tempdir().unwrap();
        let a = fingerprint(t.path(), &["requirements.txt"], "pip");
        fs::write(t.path().join("requirements.txt"), "six\n").unwrap();
        let b = fingerprint(t.path(), &["requirements.txt"], "pip");
        assert_ne!(a, b);
        assert_eq!(b, fingerprint(t.path(), &["requirements.txt"], "pip"));
        assert_ne!(b, fingerprint(t.path(), &["requirements.txt"], "pip --pre"));
        assert_eq!(b.len(), 16);
    }

    #[tokio::test]
    async fn node_modules_round_trip_by_hard_links() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::open(t.path().join("cache")).unwrap();
        let build1 = t.path().join("b1");
        fs::create_dir_all(build1.join("node_modules/left-pad")).unwrap();
        fs::write(build1.join("node_modules/left-pad/index.js"), "x").unwrap();
        let deps = cache.node("k1");
        assert!(!deps.ready());
        deps.store(&build1).await.unwrap();
        assert!(deps.ready());
        let build2 = t.path().join("b2");
        fs::create_dir_all(&build2).unwrap();
        deps.restore(&build2).await.unwrap();
        let f1 = fs::metadata(build1.join("node_modules/left-pad/index.js")).unwrap();
        let f2 = fs::metadata(build2.join("node_modules/left-pad/index.js")).unwrap();
        assert_eq!(f1.ino(), f2.ino(), "restored by hard link");
        // A newer key replaces the older entry.
        cache.node("k2").store(&build1).await.unwrap();
        assert!(!cache.node("k1").ready());
        assert!(cache.node("k2").ready());
    }

    #[test]
    fn unused_venvs_are_pruned() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::open(t.path().join("cache")).unwrap();
        let artifacts = t.path().join("artifacts");
        fs::create_dir_all(artifacts.join("v1")).unwrap();
        let old = cache.python("old");
        old.prepare().unwrap();
        old.record_use("v1").unwrap();
        let orphan = cache.python("orphan");
        orphan.prepare().unwrap();
        let current = cache.python("current");
        current.prepare().unwrap();
        current.prune_others(&artifacts);
        assert!(old.venv().parent().unwrap().exists(), "v1 still uses it");
        assert!(!orphan.venv().parent().unwrap().exists());
        fs::remove_dir(artifacts.join("v1")).unwrap();
        current.prune_others(&artifacts);
        assert!(!old.venv().parent().unwrap().exists());
    }
}
