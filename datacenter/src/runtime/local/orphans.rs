//! Replicas left behind by an earlier life of this datacenter.
//!
//! The parent-death signal reaches only a replica's first process. When the
//! datacenter dies without stopping its replicas (SIGKILL, a crash), what
//! that process started (`npm start` → `node`, a shell's background jobs)
//! lives on as an orphan. Every replica process carries `OWNER_VAR` in its
//! environment, naming the datacenter's work folder, and children inherit
//! it; on start the datacenter ends every process that still carries its
//! name before it starts anything.

use std::path::Path;

/// The environment variable that names the datacenter a replica belongs to.
pub const OWNER_VAR: &str = "CLOUDPORT_REPLICA_OF";

/// The value of `OWNER_VAR` for replicas started from this work folder.
pub fn owner_of(work_dir: &Path) -> String {
    std::fs::canonicalize(work_dir)
        .unwrap_or_else(|_| work_dir.to_path_buf())
        .display()
        .to_string()
}

/// Kills (SIGKILL) every process whose environment says it belongs to
/// `owner`, with the rest of its process group; returns the pids it found.
pub fn sweep(owner: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let my_group = process_group(me);
    let marker = format!("{OWNER_VAR}={owner}");
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // Other users' processes are unreadable, and not ours to end.
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var == marker.as_bytes())
        {
            found.push(pid);
        }
    }
    for &pid in &found {
        unsafe {
            if let Some(group) = process_group(pid).filter(|g| *g > 1 && Some(*g) != my_group) {
                kill(-group, 9);
            }
            kill(pid, 9);
        }
    }
    if !found.is_empty() {
        tracing::warn!(count = found.len(), pids = ?found, "ended replica processes left by an earlier run of this datacenter");
    }
    found
}

fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(2)?.parse().ok()
}

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};

    fn gone(child: &mut std::process::Child) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn only_processes_carrying_this_owner_are_ended() {
        let dir = tempfile::tempdir().unwrap();
        let owner = owner_of(dir.path());
        let spawn = |value: &str| {
            std::process::Command::new("sleep")
                .arg("30")
                .env(OWNER_VAR, value)
                .process_group(0)
                .spawn()
                .unwrap()
        };
        let mut ours = spawn(&owner);
        let mut other = spawn(&format!("{owner}-elsewhere"));
        let mut unmarked = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        // /proc shows the new environment only once exec has happened.
        std::thread::sleep(Duration::from_millis(100));

        let found = sweep(&owner);
        assert_eq!(found, vec![ours.id() as i32]);
        assert!(gone(&mut ours), "the marked process survived the sweep");
        assert!(
            other.try_wait().unwrap().is_none(),
            "another datacenter's replica was killed"
        );
        assert!(unmarked.try_wait().unwrap().is_none());
        for c in [&mut other, &mut unmarked] {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    #[test]
    fn the_owner_names_the_work_folder_however_it_was_spelled() {
        let dir = tempfile::tempdir().unwrap();
        let dotted = dir.path().join(".");
        assert_eq!(owner_of(&dotted), owner_of(dir.path()));
    }
}
