//! How far a long operation has come, read from its event log: the phases
//! of a build (fetch → … → healthy) or of a deploy, each pending, current,
//! done, skipped or failed. The event page draws them above the log, so a
//! user sees at a glance where a build stands without reading its lines.

/// Where one phase stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseState {
    Pending,
    Current,
    Done,
    /// Passed over: dependencies from the cache, nothing to compile.
    Skipped,
    Failed,
}

impl PhaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseState::Pending => "pending",
            PhaseState::Current => "current",
            PhaseState::Done => "done",
            PhaseState::Skipped => "skipped",
            PhaseState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    pub name: &'static str,
    pub state: PhaseState,
}

/// A phase and the log steps that belong to it.
type Spec = (&'static str, &'static [&'static str]);

const ROLLOUT: &[&str] = &["deploy", "link", "address", "rollout", "stop"];
const BUILD: &[Spec] = &[
    ("fetch", &["fetch"]),
    ("detect", &["detect"]),
    ("install", &["install"]),
    ("build", &["build"]),
    ("package", &["package"]),
    ("deploy", ROLLOUT),
    ("start", &["start"]),
    ("healthy", &["health", "done"]),
];
const DEPLOY: &[Spec] = &[
    ("deploy", ROLLOUT),
    ("start", &["start"]),
    ("healthy", &["health", "done"]),
];

/// The phases of an event of `action` given the steps of its log lines in
/// order and its status (`running`, `succeeded`, `failed`, …). Operations
/// without phases (create, update, stop, delete, scale) give none.
pub fn phases<'a>(
    action: &str,
    steps: impl IntoIterator<Item = &'a str>,
    status: &str,
) -> Vec<Phase> {
    let spec = match action {
        "build" => BUILD,
        "deploy" | "rollback" | "restart" | "start" => DEPLOY,
        _ => return Vec::new(),
    };
    let mut seen = vec![false; spec.len()];
    let mut current: Option<usize> = None;
    for step in steps {
        let Some(i) = spec.iter().position(|(_, steps)| steps.contains(&step)) else {
            continue;
        };
        // A build opens with "building vN" under the step `build`, before it
        // fetches anything; phases only move forward from the first one.
        if action == "build" && current.is_none() && i != 0 {
            continue;
        }
        if current.is_some_and(|c| i < c) {
            continue;
        }
        seen[i] = true;
        current = Some(i);
    }
    let ended_well = status == "succeeded";
    let failed = status == "failed";
    spec.iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let state = match current {
                // Failed before the first phase began (refused, or given up).
                None if failed && i == 0 => PhaseState::Failed,
                None if ended_well => PhaseState::Skipped,
                None => PhaseState::Pending,
                Some(c) if i < c => {
                    if seen[i] {
                        PhaseState::Done
                    } else {
                        PhaseState::Skipped
                    }
                }
                Some(c) if i == c => {
                    if ended_well {
                        PhaseState::Done
                    } else if failed {
                        PhaseState::Failed
                    } else {
                        PhaseState::Current
                    }
                }
                Some(_) if ended_well => PhaseState::Skipped,
                Some(_) => PhaseState::Pending,
            };
            Phase { name, state }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use PhaseState::*;

    fn states(action: &str, steps: &[&str], status: &str) -> Vec<(&'static str, PhaseState)> {
        phases(action, steps.iter().copied(), status)
            .into_iter()
            .map(|p| (p.name, p.state))
            .collect()
    }

    /// The steps of a real build of python-hello from git, as the worker
    /// and the builder log them.
    const PYTHON_BUILD: &[&str] = &[
        "accepted", "build", "fetch", "fetch", "detect", "detect", "package", "package", "build",
        "deploy", "address", "start", "health", "health", "done",
    ];

    #[test]
    fn a_finished_build_shows_every_phase_done_or_skipped() {
        assert_eq!(
            states("build", PYTHON_BUILD, "succeeded"),
            [
                ("fetch", Done),
                ("detect", Done),
                ("install", Skipped),
                ("build", Skipped),
                ("package", Done),
                ("deploy", Done),
                ("start", Done),
                ("healthy", Done),
            ]
        );
    }

    #[test]
    fn a_running_build_shows_where_it_stands() {
        let s = states(
            "build",
            &["accepted", "build", "fetch", "detect", "install"],
            "running",
        );
        assert_eq!(s[0], ("fetch", Done));
        assert_eq!(s[1], ("detect", Done));
        assert_eq!(s[2], ("install", Current));
        assert!(s[3..].iter().all(|(_, st)| *st == Pending), "{s:?}");
    }

    #[test]
    fn the_opening_build_line_does_not_jump_ahead() {
        let s = states("build", &["accepted", "build"], "running");
        assert!(s.iter().all(|(_, st)| *st == Pending), "{s:?}");
    }

    #[test]
    fn a_failure_marks_the_phase_it_happened_in() {
        let s = states(
            "build",
            &["build", "fetch", "detect", "install", "install"],
            "failed",
        );
        assert_eq!(s[2], ("install", Failed));
        assert_eq!(s[3], ("build", Pending));
        let unhealthy = states("deploy", &["deploy", "start", "health"], "failed");
        assert_eq!(unhealthy[2], ("healthy", Failed));
        let refused = states("build", &["accepted", "retry"], "failed");
        assert_eq!(refused[0], ("fetch", Failed));
    }

    #[test]
    fn a_rollback_has_the_deploy_phases_and_a_stop_has_none() {
        let s = states("rollback", &["deploy", "rollout", "start"], "running");
        assert_eq!(
            s,
            [("deploy", Done), ("start", Current), ("healthy", Pending)]
        );
        assert!(phases("stop", ["stop"], "succeeded").is_empty());
        assert!(phases("scale", ["scale"], "running").is_empty());
    }
}
