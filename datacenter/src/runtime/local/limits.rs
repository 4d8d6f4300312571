//! Resource limits of replicas.
//!
//! Where the host hands this process a cgroup v2 subtree it may write to
//! (a systemd unit with `Delegate=yes`, a container with its own cgroup
//! namespace), every replica gets a cgroup of its own with `memory.max` and
//! `cpu.max` taken from the component's resources, and the kernel enforces
//! both for the replica and everything it starts. Elsewhere (cgroup v1
//! hosts, or a cgroup this process may not write) the limits fall back to
//! rlimits set between fork and exec: memory only, CPU is not limited.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The CPU period of `cpu.max`: the kernel's default, 100 ms.
const CPU_PERIOD_US: i64 = 100_000;
/// Slack above the component's memory for the language runtime itself when
/// only `RLIMIT_DATA` can bound it (it counts mappings, not resident pages).
const RLIMIT_SLACK_MB: u64 = 64;

/// What a component may use, from its `resources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    pub memory_mb: i64,
    pub cpu_millicores: i64,
}

/// The host's cgroup v2 subtree for replicas, found once per process.
pub fn host_tree() -> Option<&'static CgroupTree> {
    static TREE: OnceLock<Option<CgroupTree>> = OnceLock::new();
    TREE.get_or_init(|| {
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        match CgroupTree::adopt(Path::new("/sys/fs/cgroup"), &own, std::process::id()) {
            Ok(tree) => {
                tracing::info!(cgroup = %tree.replicas.display(), "replica limits: cgroup v2 (memory.max, cpu.max)");
                Some(tree)
            }
            Err(why) => {
                tracing::info!(%why, "replica limits: rlimits (memory only); no writable cgroup v2 subtree");
                None
            }
        }
    })
    .as_ref()
}

/// `<this process's cgroup>/replicas`, with the memory and cpu controllers
/// enabled for the cgroups below it.
#[derive(Debug)]
pub struct CgroupTree {
    replicas: PathBuf,
}

impl CgroupTree {
    /// Takes over the cgroup this process runs in. cgroup v2 lets only
    /// leaves hold processes once controllers are handed down, so this
    /// process first moves into a leaf of its own (`datacenter`), then
    /// enables `memory` and `cpu` for its subtree and for `replicas`.
    ///
    /// `mount` is where cgroup2 is mounted and `proc_self_cgroup` the text
    /// of `/proc/self/cgroup`; both are parameters so the steps can be
    /// checked against an ordinary directory.
    pub fn adopt(mount: &Path, proc_self_cgroup: &str, pid: u32) -> Result<Self, String> {
        let own = proc_self_cgroup
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or("the host has no cgroup v2 hierarchy (cgroup v1 only)")?;
        if proc_self_cgroup.lines().any(|l| !l.starts_with("0::")) {
            // A hybrid host: controllers sit in v1 hierarchies, not in v2.
            return Err("the memory and cpu controllers are on cgroup v1".into());
        }
        let own = mount.join(own.trim().trim_start_matches('/'));
        let available = std::fs::read_to_string(own.join("cgroup.controllers"))
            .map_err(|e| format!("{}: {e}", own.join("cgroup.controllers").display()))?;
        for needed in ["memory", "cpu"] {
            if !available.split_whitespace().any(|c| c == needed) {
                return Err(format!(
                    "the {needed} controller is not delegated to {}",
                    own.display()
                ));
            }
        }
        let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
        let leaf = own.join("datacenter");
        std::fs::create_dir_all(&leaf).map_err(|e| io("create the datacenter's leaf", e))?;
        write_to(&leaf.join("cgroup.procs"), &pid.to_string())
            .map_err(|e| io("move the datacenter into its leaf", e))?;
        write_to(&own.join("cgroup.subtree_control"), "+memory +cpu")
            .map_err(|e| io("enable memory and cpu below the datacenter's cgroup", e))?;
        let replicas = own.join("replicas");
        std::fs::create_dir_all(&replicas).map_err(|e| io("create the replicas' cgroup", e))?;
        write_to(&replicas.join("cgroup.subtree_control"), "+memory +cpu")
            .map_err(|e| io("enable memory and cpu for replicas", e))?;
        Ok(CgroupTree { replicas })
    }

    /// The cgroup of one replica with its limits written, ready for the
    /// replica's process to join between fork and exec.
    pub fn prepare(&self, name: &str, r: Resources) -> std::io::Result<ReplicaCgroup> {
        let dir = self.replicas.join(name);
        std::fs::create_dir_all(&dir)?;
        let (memory_max, cpu_max) = cgroup_values(r);
        write_to(&dir.join("memory.max"), &memory_max)?;
        // No swap beyond the limit, where the kernel has swap accounting.
        let _ = write_to(&dir.join("memory.swap.max"), "0");
        write_to(&dir.join("cpu.max"), &cpu_max)?;
        let procs = OpenOptions::new()
            .write(true)
            .create(true)
            .open(dir.join("cgroup.procs"))?;
        Ok(ReplicaCgroup { dir, procs })
    }
}

/// `memory.max` in bytes and `cpu.max` as "quota period" in microseconds.
fn cgroup_values(r: Resources) -> (String, String) {
    let memory = (r.memory_mb.max(16) as u64) * 1024 * 1024;
    let quota = (r.cpu_millicores.max(10) * CPU_PERIOD_US / 1000).max(1000);
    (memory.to_string(), format!("{quota} {CPU_PERIOD_US}"))
}

fn write_to(path: &Path, value: &str) -> std::io::Result<()> {
    // cgroupfs files exist already; `create` only matters for a plain
    // directory standing in for cgroupfs, and never truncates.
    let mut f = OpenOptions::new().write(true).create(true).open(path)?;
    f.write_all(value.as_bytes())
}

/// One replica's cgroup: its process joins it through `procs_fd` before
/// exec, so everything it starts is inside too.
#[derive(Debug)]
pub struct ReplicaCgroup {
    dir: PathBuf,
    procs: File,
}

impl ReplicaCgroup {
    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// Kills every process in the cgroup, even those that left the
    /// replica's process group (kernels from 5.14 on).
    pub fn kill_all(&self) {
        let _ = write_to(&self.dir.join("cgroup.kill"), "1");
    }
}

impl Drop for ReplicaCgroup {
    fn drop(&mut self) {
        // Only an empty cgroup can be removed; a busy one stays for the next start.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Limits applied in the child between fork and exec.
#[derive(Debug, Clone, Copy)]
pub struct ChildLimits {
    /// `RLIMIT_DATA` in bytes, or none when a cgroup bounds memory.
    data_bytes: Option<u64>,
    /// The replica cgroup's `cgroup.procs`, to join.
    cgroup_procs: Option<RawFd>,
}

impl ChildLimits {
    pub fn new(r: Resources, cgroup: Option<&ReplicaCgroup>) -> Self {
        match cgroup {
            Some(cg) => ChildLimits {
                data_bytes: None,
                cgroup_procs: Some(cg.procs_fd()),
            },
            None => ChildLimits {
                data_bytes: Some((r.memory_mb.max(16) as u64 + RLIMIT_SLACK_MB) * 1024 * 1024),
                cgroup_procs: None,
            },
        }
    }

    /// Runs in the child between fork and exec: only async-signal-safe calls.
    #[cfg(target_os = "linux")]
    pub fn apply(&self) -> std::io::Result<()> {
        #[repr(C)]
        struct Rlimit {
            cur: u64,
            max: u64,
        }
        extern "C" {
            fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
            fn setrlimit(resource: i32, rlim: *const Rlimit) -> i32;
            fn write(fd: i32, buf: *const u8, count: usize) -> isize;
        }
        const PR_SET_PDEATHSIG: i32 = 1;
        const RLIMIT_CORE: i32 = 4;
        const RLIMIT_DATA: i32 = 2;
        const RLIMIT_NOFILE: i32 = 7;
        unsafe {
            // If the datacenter dies (even by SIGKILL), its replicas die with
            // it instead of lingering as orphans; the reconciler restarts them.
            prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0);
            if let Some(fd) = self.cgroup_procs {
                // "0" is the writing process: the replica joins its cgroup
                // before it runs a single instruction of the app.
                if write(fd, b"0".as_ptr(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(bytes) = self.data_bytes {
                // The data segment (heap and private writable mappings).
                // Reservations that are never written (V8's, the JVM's) do
                // not count, so this does not break them.
                setrlimit(
                    RLIMIT_DATA,
                    &Rlimit {
                        cur: bytes,
                        max: bytes,
                    },
                );
            }
            setrlimit(RLIMIT_CORE, &Rlimit { cur: 0, max: 0 });
            setrlimit(
                RLIMIT_NOFILE,
                &Rlimit {
                    cur: 65536,
                    max: 65536,
                },
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = "0::/system.slice/cloudport.service\n";

    /// A directory standing in for a delegated cgroup v2 subtree: the
    /// kernel side (enforcement) cannot run on cgroup v1 hosts, the steps
    /// this process takes can.
    fn fake_mount(controllers: &str) -> tempfile::TempDir {
        let mount = tempfile::tempdir().unwrap();
        let own = mount.path().join("system.slice/cloudport.service");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(own.join("cgroup.controllers"), controllers).unwrap();
        mount
    }

    fn read(p: PathBuf) -> String {
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn adopting_moves_this_process_into_a_leaf_and_delegates_memory_and_cpu() {
        let mount = fake_mount("cpuset cpu io memory pids");
        let tree = CgroupTree::adopt(mount.path(), V2, 4242).unwrap();
        let own = mount.path().join("system.slice/cloudport.service");
        assert_eq!(read(own.join("datacenter/cgroup.procs")), "4242");
        assert_eq!(read(own.join("cgroup.subtree_control")), "+memory +cpu");
        assert_eq!(
            read(own.join("replicas/cgroup.subtree_control")),
            "+memory +cpu"
        );
        assert_eq!(tree.replicas, own.join("replicas"));
    }

    #[test]
    fn cgroup_v1_hybrid_or_undelegated_hosts_fall_back_with_the_reason() {
        let mount = fake_mount("cpuset cpu io memory pids");
        let v1 = "4:memory:/x\n1:cpu:/\n0::/\n";
        assert!(CgroupTree::adopt(mount.path(), v1, 1)
            .unwrap_err()
            .contains("cgroup v1"));
        assert!(CgroupTree::adopt(mount.path(), "", 1)
            .unwrap_err()
            .contains("no cgroup v2"));
        let no_memory = fake_mount("cpu io pids");
        let why = CgroupTree::adopt(no_memory.path(), V2, 1).unwrap_err();
        assert!(why.contains("memory controller is not delegated"), "{why}");
        // Nothing was moved or created on refusal.
        assert!(!no_memory
            .path()
            .join("system.slice/cloudport.service/datacenter")
            .exists());
    }

    #[test]
    fn a_replica_cgroup_carries_the_components_memory_and_cpu() {
        let mount = fake_mount("cpu memory");
        let tree = CgroupTree::adopt(mount.path(), V2, 1).unwrap();
        let cg = tree
            .prepare(
                "team.app.web.0",
                Resources {
                    memory_mb: 256,
                    cpu_millicores: 500,
                },
            )
            .unwrap();
        let dir = mount
            .path()
            .join("system.slice/cloudport.service/replicas/team.app.web.0");
        assert_eq!(read(dir.join("memory.max")), (256u64 << 20).to_string());
        assert_eq!(read(dir.join("cpu.max")), "50000 100000");
        assert_eq!(read(dir.join("memory.swap.max")), "0");
        assert!(cg.procs_fd() >= 0);
    }

    #[test]
    fn tiny_settings_are_raised_to_workable_minimums() {
        let (mem, cpu) = cgroup_values(Resources {
            memory_mb: 0,
            cpu_millicores: 1,
        });
        assert_eq!(mem, (16u64 << 20).to_string());
        assert_eq!(cpu, "1000 100000");
        let (_, two_cores) = cgroup_values(Resources {
            memory_mb: 64,
            cpu_millicores: 2000,
        });
        assert_eq!(two_cores, "200000 100000");
    }

    /// The child writes "0" to the cgroup's `cgroup.procs` before exec: on
    /// cgroupfs that moves it, here it leaves the mark the kernel would read.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_child_joins_its_cgroup_before_exec() {
        use std::os::unix::process::CommandExt;
        let mount = fake_mount("cpu memory");
        let tree = CgroupTree::adopt(mount.path(), V2, 1).unwrap();
        let r = Resources {
            memory_mb: 64,
            cpu_millicores: 100,
        };
        let cg = tree.prepare("t.a.c.0", r).unwrap();
        let limits = ChildLimits::new(r, Some(&cg));
        assert_eq!(limits.data_bytes, None, "a cgroup bounds memory instead");
        let mut cmd = std::process::Command::new("true");
        unsafe {
            cmd.pre_exec(move || limits.apply());
        }
        assert!(cmd.status().unwrap().success());
        let procs = mount
            .path()
            .join("system.slice/cloudport.service/replicas/t.a.c.0/cgroup.procs");
        assert_eq!(read(procs), "0");
    }

    #[test]
    fn without_a_cgroup_memory_is_bounded_by_rlimit_data() {
        let limits = ChildLimits::new(
            Resources {
                memory_mb: 128,
                cpu_millicores: 500,
            },
            None,
        );
        assert_eq!(limits.data_bytes, Some((128 + 64) << 20));
        assert_eq!(limits.cgroup_procs, None);
    }
}
