//! CPU and memory of replicas, read from /proc. A replica is a process
//! group (the command and whatever it started), so its use is the sum over
//! the group's processes.

use std::collections::HashMap;
use std::time::Instant;

/// Clock ticks per second of /proc's CPU times; 100 on every Linux we run on.
const TICKS: f64 = 100.0;

/// CPU ticks and resident kilobytes of every process, by process group.
pub fn snapshot() -> HashMap<i32, (u64, u64)> {
    let mut groups: HashMap<i32, (u64, u64)> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return groups;
    };
    let page_kb = 4; // x86_64 and aarch64 Linux
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may hold spaces and parentheses: fields start after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After ')': state(0) ppid(1) pgrp(2) … utime(11) stime(12) … rss(21)
        let (Some(pgrp), Some(utime), Some(stime), Some(rss)) = (
            fields.get(2).and_then(|f| f.parse::<i32>().ok()),
            fields.get(11).and_then(|f| f.parse::<u64>().ok()),
            fields.get(12).and_then(|f| f.parse::<u64>().ok()),
            fields.get(21).and_then(|f| f.parse::<u64>().ok()),
        ) else {
            continue;
        };
        let g = groups.entry(pgrp).or_default();
        g.0 += utime + stime;
        g.1 += rss * page_kb;
    }
    groups
}

/// Turns tick counters into a CPU share between two samples.
#[derive(Default)]
pub struct CpuMeter {
    last: HashMap<i32, (Instant, u64)>,
}

impl CpuMeter {
    pub fn percent(&mut self, group: i32, ticks: u64) -> f64 {
        let now = Instant::now();
        let pct = match self.last.get(&group) {
            Some((at, before)) if ticks >= *before => {
                let secs = now.duration_since(*at).as_secs_f64();
                if secs > 0.0 {
                    (ticks - before) as f64 / TICKS / secs * 100.0
                } else {
                    0.0
                }
            }
            _ => 0.0,
        };
        self.last.insert(group, (now, ticks));
        pct
    }

    /// Forgets groups that are gone.
    pub fn retain(&mut self, alive: &[i32]) {
        self.last.retain(|g, _| alive.contains(g));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_process_group_shows_cpu_and_memory() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .process_group(0)
            .spawn()
            .unwrap();
        let group = child.id() as i32;
        let mut meter = CpuMeter::default();
        let first = snapshot()[&group];
        meter.percent(group, first.0);
        std::thread::sleep(std::time::Duration::from_millis(500));
        let second = snapshot()[&group];
        let cpu = meter.percent(group, second.0);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            cpu > 30.0,
            "a spinning shell uses most of a core, saw {cpu}"
        );
        assert!(second.1 > 100, "resident memory in kB: {}", second.1);
    }
}
