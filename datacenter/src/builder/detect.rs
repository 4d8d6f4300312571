//! Language detection: from a source tree to a [`DetectedPlan`].
//!
//! Precedence, most specific first: the language named in the build
//! settings, then `cloudport.yaml`, then the files of the tree (Dockerfile,
//! package.json, Python, Cargo.toml, pom.xml, go.mod, Procfile, index.html).
//! Commands follow a similar ladder: language default < Procfile `web:` <
//! cloudport.yaml `build`/`run` < the build settings, so a user can always
//! take over without renaming files.
//!
//! Step names matter to the builder: `install` is the dependency step that
//! the cache may skip, `build` is what a custom build command replaces, and
//! `package` (Rust) copies the binary out of the cached target directory.
//! Steps reference `$CLOUDPORT_VENV`, `$CLOUDPORT_CACHE` and
//! `$CARGO_TARGET_DIR`, which the builder sets to cache paths.

use super::command::on_path;
use crate::api::{BuildSettings, BuildStep, DetectedPlan};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::fs;
use std::path::Path;

pub const LANGUAGES: &[&str] = &[
    "static",
    "node",
    "python",
    "rust",
    "maven",
    "go",
    "procfile",
    "dockerfile",
];

/// Until the build has produced it, the jar's name is unknown; the builder
/// resolves this after a successful build.
pub const MAVEN_RUN: &str = "java -jar target/*.jar";

pub const DOCKERFILE_ON_LOCAL: &str = "a Dockerfile needs the kubernetes runtime (cloudport datacenter --runtime kubernetes); this datacenter runs local processes";

const PROJECT_FILES: &[&str] = &["cloudport.yaml", "cloudport.yml"];

/// `cloudport.yaml` at the root of the source.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    language: Option<String>,
    build: Option<String>,
    run: Option<String>,
    port: Option<u16>,
    health: Option<String>,
}

/// A plan under construction.
struct Draft {
    reason: Vec<String>,
    steps: Vec<BuildStep>,
    run: Option<String>,
    /// Why no run command was found, for the error message.
    run_hint: String,
    /// Programs the default commands need on this machine.
    tools: Vec<&'static str>,
}

impl Draft {
    fn new() -> Draft {
        Draft {
            reason: Vec::new(),
            steps: Vec::new(),
            run: None,
            run_hint: String::new(),
            tools: Vec::new(),
        }
    }

    fn step(&mut self, name: &str, command: impl Into<String>) {
        self.steps.push(BuildStep {
            name: name.into(),
            command: command.into(),
        });
    }

    /// A custom build command replaces the `build` step and keeps the
    /// dependency install before it.
    fn set_build(&mut self, command: &str) {
        self.steps.retain(|s| s.name != "build");
        let at = self
            .steps
            .iter()
            .position(|s| s.name != "install")
            .unwrap_or(self.steps.len());
        self.steps.insert(
            at,
            BuildStep {
                name: "build".into(),
                command: command.into(),
            },
        );
    }
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Works out how to build and run the tree at `dir`.
pub fn detect(
    dir: &Path,
    overrides: &BuildSettings,
    runtime_kind: &str,
    static_server: &str,
) -> Result<DetectedPlan> {
    let project = read_project_file(dir)?;
    let (language, why) = if let Some(l) = nonempty(&overrides.language) {
        (
            l.to_lowercase(),
            format!("language {l} set in the build settings"),
        )
    } else if let Some(l) = project.as_ref().and_then(|p| nonempty(&p.language)) {
        (
            l.to_lowercase(),
            format!("language {l} set in cloudport.yaml"),
        )
    } else {
        detect_language(dir)?
    };
    if !LANGUAGES.contains(&language.as_str()) {
        return Err(Error::Invalid(vec![format!(
            "unknown language `{language}`; known: {}",
            LANGUAGES.join(", ")
        )]));
    }
    let mut draft = plan_for(&language, dir, static_server)?;
    draft.reason.insert(0, why);

    if !matches!(language.as_str(), "procfile" | "dockerfile") {
        if let Some(web) = procfile_web(dir) {
            draft.run = Some(web);
            draft.reason.push("run command from the Procfile".into());
        }
    }

    let mut build_overridden = false;
    let mut run_overridden = false;
    let mut port = None;
    let mut health_path = None;
    if let Some(p) = &project {
        if let Some(b) = nonempty(&p.build) {
            draft.set_build(b);
            build_overridden = true;
            draft
                .reason
                .push("build command from cloudport.yaml".into());
        }
        if let Some(r) = nonempty(&p.run) {
            draft.run = Some(r.into());
            run_overridden = true;
            draft.reason.push("run command from cloudport.yaml".into());
        }
        port = p.port;
        if let Some(h) = nonempty(&p.health) {
            if !h.starts_with('/') {
                return Err(Error::Invalid(vec![format!(
                    "cloudport.yaml: health must be a path starting with `/`, got `{h}`"
                )]));
            }
            health_path = Some(h.to_string());
        }
    }
    if let Some(b) = nonempty(&overrides.build_command) {
        draft.set_build(b);
        build_overridden = true;
        draft
            .reason
            .push("build command from the build settings".into());
    }
    if let Some(r) = nonempty(&overrides.run_command) {
        draft.run = Some(r.into());
        run_overridden = true;
        draft
            .reason
            .push("run command from the build settings".into());
    }

    let mut runnable = true;
    let mut message = None;
    if language == "dockerfile" && runtime_kind != "kubernetes" {
        runnable = false;
        message = Some(DOCKERFILE_ON_LOCAL.to_string());
    } else if !(build_overridden && run_overridden) {
        if let Some(missing) = draft.tools.iter().find(|t| !on_path(t)) {
            runnable = false;
            message = Some(format!(
                "{language} needs `{missing}`, which is not installed on this datacenter (not on its PATH); \
                 install it or set both a build and a run command"
            ));
        }
    }

    let run_command = match draft.run {
        Some(r) => r,
        None => {
            return Err(Error::Invalid(vec![format!(
                "{language}: no run command found ({}); set one in the build settings or as `run:` in cloudport.yaml",
                draft.run_hint
            )]))
        }
    };
    // The file that decided the language is often the language's own
    // evidence too (`app.py`); say it once.
    let mut said = std::collections::HashSet::new();
    draft.reason.retain(|r| said.insert(r.clone()));
    Ok(DetectedPlan {
        language,
        reason: draft.reason.join("; "),
        steps: draft.steps,
        run_command,
        port,
        health_path,
        runnable,
        message,
    })
}

fn read_project_file(dir: &Path) -> Result<Option<ProjectFile>> {
    for name in PROJECT_FILES {
        let path = dir.join(name);
        if !path.is_file() {
            continue;
        }
        let text = fs::read_to_string(&path)
            .map_err(|e| Error::Invalid(vec![format!("{name}: cannot read it: {e}")]))?;
        let parsed: Option<ProjectFile> = serde_yaml::from_str(&text).map_err(|e| {
            Error::Invalid(vec![format!(
                "{name}: {e} (fields: language, build, run, port, health)"
            )])
        })?;
        return Ok(Some(parsed.unwrap_or_default()));
    }
    Ok(None)
}

fn has(dir: &Path, name: &str) -> bool {
    dir.join(name).is_file()
}

const PY_ENTRIES: &[&str] = &["app.py", "main.py", "server.py"];

fn detect_language(dir: &Path) -> Result<(String, String)> {
    let found = |l: &str, why: &str| Ok((l.to_string(), why.to_string()));
    if has(dir, "Dockerfile") {
        return found("dockerfile", "Dockerfile");
    }
    if has(dir, "package.json") {
        return found("node", "package.json");
    }
    for f in ["requirements.txt", "pyproject.toml"]
        .iter()
        .chain(PY_ENTRIES)
    {
        if has(dir, f) {
            return found("python", f);
        }
    }
    if has(dir, "Cargo.toml") {
        return found("rust", "Cargo.toml");
    }
    if has(dir, "pom.xml") {
        return found("maven", "pom.xml");
    }
    if has(dir, "go.mod") {
        return found("go", "go.mod");
    }
    if has(dir, "Procfile") {
        return found("procfile", "Procfile");
    }
    if has(dir, "index.html") {
        return found("static", "index.html");
    }
    Err(Error::Invalid(vec![
        "could not tell how to build this app: looked for cloudport.yaml, Dockerfile, package.json, \
         requirements.txt, pyproject.toml, app.py/main.py/server.py, Cargo.toml, pom.xml, go.mod, \
         Procfile and index.html at the root of the source; add one of them or set a language in the build settings"
            .into(),
    ]))
}

fn plan_for(language: &str, dir: &Path, static_server: &str) -> Result<Draft> {
    match language {
        "node" => node(dir),
        "python" => python(dir),
        "rust" => rust(dir),
        "maven" => {
            let mut d = Draft::new();
            d.step(
                "build",
                "mvn -B -q package -DskipTests -Dmaven.repo.local=\"$CLOUDPORT_CACHE/m2\"",
            );
            d.run = Some(MAVEN_RUN.into());
            d.tools = vec!["mvn", "java"];
            Ok(d)
        }
        "go" => {
            let mut d = Draft::new();
            d.step("build", "go build -o app .");
            d.run = Some("./app".into());
            d.tools = vec!["go"];
            Ok(d)
        }
        "procfile" => {
            let mut d = Draft::new();
            d.run = procfile_web(dir);
            d.run_hint = if has(dir, "Procfile") {
                "the Procfile has no `web:` line".into()
            } else {
                "there is no Procfile".into()
            };
            Ok(d)
        }
        "static" => {
            let mut d = Draft::new();
            d.run = Some(format!("{static_server} ."));
            if !has(dir, "index.html") {
                d.reason.push("no index.html at the root".into());
            }
            Ok(d)
        }
        "dockerfile" => {
            let mut d = Draft::new();
            // The image's own CMD runs it.
            d.run = Some(String::new());
            Ok(d)
        }
        other => Err(Error::Internal(format!("no plan for language {other}"))),
    }
}

fn node(dir: &Path) -> Result<Draft> {
    let mut d = Draft::new();
    let pkg: serde_json::Value = match fs::read_to_string(dir.join("package.json")) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(vec![format!("package.json is not valid JSON: {e}")]))?,
        Err(_) => serde_json::Value::Null,
    };
    let script = |name: &str| {
        pkg.get("scripts")
            .and_then(|s| s.get(name))
            .and_then(|s| s.as_str())
            .map(|s| !s.trim().is_empty())
            .unwrap_or(false)
    };
    let count = |field: &str| {
        pkg.get(field)
            .and_then(|d| d.as_object())
            .map(|o| o.len())
            .unwrap_or(0)
    };
    let (deps, dev_deps) = (count("dependencies"), count("devDependencies"));
    let (has_start, has_build) = (script("start"), script("build"));
    let lock = has(dir, "package-lock.json") || has(dir, "npm-shrinkwrap.json");

    let mut evidence = vec![format!(
        "{deps} dependenc{}",
        if deps == 1 { "y" } else { "ies" }
    )];
    // Build tools usually live in devDependencies: keep them when there is
    // a build script to run, drop them otherwise.
    let install = deps > 0 || (has_build && dev_deps > 0);
    if install {
        let omit = if has_build { "" } else { " --omit=dev" };
        let cmd = if lock {
            evidence.push("package-lock.json".into());
            format!("npm ci{omit} --no-audit --no-fund")
        } else {
            format!("npm install{omit} --no-audit --no-fund")
        };
        d.step("install", cmd);
    }
    if has_build {
        evidence.push("build script".into());
        d.step("build", "npm run build");
    }
    d.tools = vec!["node"];
    if install || has_build {
        d.tools.push("npm");
    }
    if has_start {
        evidence.push("start script".into());
        d.run = Some("npm start".into());
        d.tools.push("npm");
    } else {
        let main = pkg
            .get("main")
            .and_then(|m| m.as_str())
            .filter(|m| has(dir, m))
            .map(str::to_string);
        let entry = main.or_else(|| {
            ["server.js", "index.js"]
                .iter()
                .find(|f| has(dir, f))
                .map(|f| f.to_string())
        });
        if let Some(e) = &entry {
            evidence.push(format!("entry {e}"));
            d.run = Some(format!("node {}", shell_quote(e)));
        }
        d.run_hint =
            "package.json has no start script and there is no main file, server.js or index.js"
                .into();
    }
    d.reason
        .push(format!("package.json with {}", evidence.join(", ")));
    Ok(d)
}

fn python(dir: &Path) -> Result<Draft> {
    let mut d = Draft::new();
    d.tools = vec!["python3"];
    let mut evidence = Vec::new();
    let venv = "python3 -m venv \"$CLOUDPORT_VENV\" && \"$CLOUDPORT_VENV/bin/pip\" install";
    let reqs = fs::read_to_string(dir.join("requirements.txt")).ok();
    let count = reqs
        .as_deref()
        .map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .count()
        })
        .unwrap_or(0);
    if reqs.is_some() {
        evidence.push(format!(
            "requirements.txt ({count} requirement{})",
            if count == 1 { "" } else { "s" }
        ));
    }
    if count > 0 {
        d.step("install", format!("{venv} -r requirements.txt"));
    } else if let Ok(pyproject) = fs::read_to_string(dir.join("pyproject.toml")) {
        match pyproject_dependencies(&pyproject) {
            Some(deps) if !deps.is_empty() => {
                evidence.push(format!("pyproject.toml ({} dependencies)", deps.len()));
                let args: Vec<String> = deps.iter().map(|r| shell_quote(r)).collect();
                d.step("install", format!("{venv} {}", args.join(" ")));
            }
            Some(_) => evidence.push("pyproject.toml (no dependencies)".into()),
            // Dependencies declared some other way (poetry, dynamic): let
            // the project's build backend install it with them.
            None if pyproject.contains("[build-system]") => {
                evidence.push("pyproject.toml with a build system".into());
                d.step("install", format!("{venv} ."));
            }
            None => evidence.push("pyproject.toml".into()),
        }
    }
    if let Some(entry) = PY_ENTRIES.iter().find(|f| has(dir, f)) {
        evidence.push(entry.to_string());
        d.run = Some(format!("python3 {entry}"));
    }
    d.run_hint = "no app.py, main.py or server.py and no Procfile `web:` line".into();
    d.reason.push(if evidence.is_empty() {
        "no Python files found".into()
    } else {
        evidence.join(" and ")
    });
    Ok(d)
}

fn rust(dir: &Path) -> Result<Draft> {
    let mut d = Draft::new();
    d.tools = vec!["cargo"];
    let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
    let package = toml_string(&manifest, "[package]", "name");
    let bin = if has(dir, "src/main.rs") {
        package.clone()
    } else {
        toml_string(&manifest, "[[bin]]", "name").or(package.clone())
    };
    d.step("build", "cargo build --release");
    match bin {
        Some(name) if is_plain_name(&name) => {
            d.step(
                "package",
                format!(
                    "mkdir -p target/release && cp \"$CARGO_TARGET_DIR/release/{name}\" target/release/"
                ),
            );
            d.reason.push(format!("Cargo.toml (binary {name})"));
            d.run = Some(format!("./target/release/{name}"));
        }
        _ => {
            d.reason.push("Cargo.toml".into());
            d.run_hint = "Cargo.toml names no package or binary".into();
        }
    }
    Ok(d)
}

fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The `web:` command of a Procfile, if any.
pub fn procfile_web(dir: &Path) -> Option<String> {
    let text = fs::read_to_string(dir.join("Procfile")).ok()?;
    text.lines().find_map(|l| {
        let (name, cmd) = l.split_once(':')?;
        (name.trim() == "web" && !cmd.trim().is_empty()).then(|| cmd.trim().to_string())
    })
}

/// A string value of `key` in a TOML `section`: enough of TOML for
/// `[package] name` without a TOML parser.
fn toml_string(text: &str, section: &str, key: &str) -> Option<String> {
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            if inside && line != section {
                // First occurrence only.
                return None;
            }
            inside = line == section;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            if k.trim() == key {
                let v = v.trim();
                let q = v.chars().next()?;
                if q == '"' || q == '\'' {
                    return v[1..].split(q).next().map(str::to_string);
                }
            }
        }
    }
    None
}

/// `[project] dependencies = [...]` of a pyproject.toml; `None` when the
/// table or key is absent.
fn pyproject_dependencies(text: &str) -> Option<Vec<String>> {
    let start = text
        .find("\n[project]")
        .map(|i| i + 1)
        .or_else(|| text.starts_with("[project]").then_some(0))?;
    let body = &text[start + "[project]".len()..];
    let body = match body.find("\n[") {
        Some(end) => &body[..end],
        None => body,
    };
    let mut at = body.split('\n').scan(0usize, |off, l| {
        let here = *off;
        *off += l.len() + 1;
        Some((here, l))
    });
    let (offset, _) = at.find(|(_, l)| {
        l.trim_start()
            .strip_prefix("dependencies")
            .map(|r| r.trim_start().starts_with('='))
            .unwrap_or(false)
    })?;
    let rest = &body[offset..];
    let open = rest.find('[')?;
    let mut deps = Vec::new();
    let mut quote: Option<char> = None;
    let mut current = String::new();
    let mut comment = false;
    for c in rest[open + 1..].chars() {
        if comment {
            comment = c != '\n';
            continue;
        }
        match quote {
            Some(q) if c == q => {
                deps.push(std::mem::take(&mut current));
                quote = None;
            }
            Some(_) => current.push(c),
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => comment = true,
            None if c == ']' => return Some(deps),
            None => {}
        }
    }
    None
}

pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVE: &str = "'/usr/bin/cloudport' serve-static";

    fn examples() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
    }

    fn plan(dir: &Path) -> Result<DetectedPlan> {
        detect(dir, &BuildSettings::default(), "local", SERVE)
    }

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for (name, body) in files {
            let p = t.path().join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, body).unwrap();
        }
        t
    }

    fn invalid_text(r: Result<DetectedPlan>) -> String {
        match r {
            Err(Error::Invalid(m)) => m.join(" "),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn detects_the_samples() {
        let p = plan(&examples().join("static-site")).unwrap();
        assert_eq!(p.language, "static");
        assert_eq!(p.run_command, format!("{SERVE} ."));
        assert!(p.steps.is_empty() && p.runnable);

        let p = plan(&examples().join("python-hello")).unwrap();
        assert_eq!(p.language, "python");
        assert_eq!(p.run_command, "python3 app.py");
        assert!(
            p.steps.is_empty(),
            "no requirements, no venv: {:?}",
            p.steps
        );
        assert_eq!(p.reason, "app.py");

        let p = plan(&examples().join("python-deps")).unwrap();
        assert_eq!(p.language, "python");
        assert_eq!(p.steps.len(), 1);
        assert_eq!(p.steps[0].name, "install");
        assert!(p.steps[0].command.contains("-r requirements.txt"));
        assert!(
            p.reason.contains("requirements.txt (1 requirement)"),
            "{}",
            p.reason
        );

        let p = plan(&examples().join("node-hello")).unwrap();
        assert_eq!(p.language, "node");
        assert_eq!(p.run_command, "npm start");
        assert!(
            p.steps.is_empty(),
            "no dependencies, no npm install: {:?}",
            p.steps
        );
        assert!(p.reason.contains("start script"));
    }

    #[test]
    fn node_installs_and_builds_only_when_needed() {
        let t = tree(&[
            (
                "package.json",
                r#"{"main":"srv.js","dependencies":{"left-pad":"1"}}"#,
            ),
            ("srv.js", ""),
        ]);
        let p = plan(t.path()).unwrap();
        assert_eq!(
            p.steps[0].command,
            "npm install --omit=dev --no-audit --no-fund"
        );
        assert_eq!(p.run_command, "node srv.js");
        let t = tree(&[
            (
                "package.json",
                r#"{"scripts":{"build":"tsc","start":"node dist"},"devDependencies":{"typescript":"5"}}"#,
            ),
            ("package-lock.json", "{}"),
        ]);
        let p = plan(t.path()).unwrap();
        let steps: Vec<_> = p
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.command.as_str()))
            .collect();
        assert_eq!(
            steps,
            vec![
                ("install", "npm ci --no-audit --no-fund"),
                ("build", "npm run build")
            ]
        );
        let t = tree(&[("package.json", "{}")]);
        assert!(invalid_text(plan(t.path())).contains("no start script"));
        let t = tree(&[("package.json", "{nope")]);
        assert!(invalid_text(plan(t.path())).contains("not valid JSON"));
    }

    #[test]
    fn python_variants() {
        let t = tree(&[("main.py", ""), ("requirements.txt", "# nothing\n\n")]);
        let p = plan(t.path()).unwrap();
        assert_eq!(p.run_command, "python3 main.py");
        assert!(p.steps.is_empty());
        let t = tree(&[
            ("server.py", ""),
            (
                "pyproject.toml",
                "[project]\nname = \"x\"\ndependencies = [\n  \"six==1.16.0\", # pinned\n  'uvicorn[standard]>=0.20',\n]\n\n[tool.x]\na = 1\n",
            ),
        ]);
        let p = plan(t.path()).unwrap();
        assert_eq!(p.run_command, "python3 server.py");
        assert!(
            p.steps[0]
                .command
                .ends_with("install six==1.16.0 'uvicorn[standard]>=0.20'"),
            "{}",
            p.steps[0].command
        );
        let t = tree(&[("requirements.txt", "six\n")]);
        assert!(invalid_text(plan(t.path())).contains("no app.py, main.py or server.py"));
    }

    #[test]
    fn procfile_supplies_the_run_command() {
        let t = tree(&[("Procfile", "worker: x\nweb: ./start.sh --port $PORT\n")]);
        let p = plan(t.path()).unwrap();
        assert_eq!(p.language, "procfile");
        assert_eq!(p.run_command, "./start.sh --port $PORT");
        let t = tree(&[
            ("requirements.txt", "six\n"),
            ("Procfile", "web: gunicorn app:app\n"),
        ]);
        let p = plan(t.path()).unwrap();
        assert_eq!(p.language, "python");
        assert_eq!(p.run_command, "gunicorn app:app");
        assert!(p.reason.contains("Procfile"));
        let t = tree(&[("Procfile", "worker: x\n")]);
        assert!(invalid_text(plan(t.path())).contains("no `web:` line"));
    }

    #[test]
    fn cloudport_yaml_overrides() {
        // Only the commands: the language is still detected.
        let t = tree(&[
            ("app.py", ""),
            ("cloudport.yaml", "build: python3 -m compileall .\nrun: python3 app.py --prod\nport: 8000\nhealth: /healthz\n"),
        ]);
        let p = plan(t.path()).unwrap();
        assert_eq!(p.language, "python");
        assert_eq!(p.steps[0].name, "build");
        assert_eq!(p.steps[0].command, "python3 -m compileall .");
        assert_eq!(p.run_command, "python3 app.py --prod");
        assert_eq!(p.port, Some(8000));
        assert_eq!(p.health_path.as_deref(), Some("/healthz"));
        // The language too, beating the files.
        let t = tree(&[
            ("package.json", "{}"),
            ("cloudport.yaml", "language: static\n"),
        ]);
        let p = plan(t.path()).unwrap();
        assert_eq!(p.language, "static");
        assert!(p.reason.contains("cloudport.yaml"));
        // The build settings beat cloudport.yaml.
        let settings = BuildSettings {
            language: Some("procfile".into()),
            build_command: Some("make".into()),
            run_command: Some("./server".into()),
        };
        let p = detect(t.path(), &settings, "local", SERVE).unwrap();
        assert_eq!(p.language, "procfile");
        assert_eq!(p.run_command, "./server");
        assert_eq!(
            p.steps,
            vec![BuildStep {
                name: "build".into(),
                command: "make".into()
            }]
        );
        // Typos are reported, not ignored.
        let t = tree(&[("index.html", ""), ("cloudport.yaml", "commnad: x\n")]);
        assert!(invalid_text(plan(t.path())).contains("cloudport.yaml"));
        let t = tree(&[("index.html", ""), ("cloudport.yaml", "health: healthz\n")]);
        assert!(invalid_text(plan(t.path())).contains("health"));
    }

    #[test]
    fn dockerfile_is_not_runnable_locally() {
        let t = tree(&[("Dockerfile", "FROM scratch\n"), ("package.json", "{}")]);
        let p = plan(t.path()).unwrap();
        assert_eq!(p.language, "dockerfile");
        assert!(!p.runnable);
        assert_eq!(p.message.as_deref(), Some(DOCKERFILE_ON_LOCAL));
        let p = detect(t.path(), &BuildSettings::default(), "kubernetes", SERVE).unwrap();
        assert!(p.runnable);
    }

    #[test]
    fn other_languages() {
        let t = tree(&[
            (
                "Cargo.toml",
                "[package]\nname = \"hello-rs\"\nversion = \"0.1.0\"\n",
            ),
            ("src/main.rs", ""),
        ]);
        let p = plan(t.path()).unwrap();
        assert_eq!(p.language, "rust");
        assert_eq!(p.run_command, "./target/release/hello-rs");
        assert_eq!(p.steps[0].command, "cargo build --release");
        assert_eq!(p.steps[1].name, "package");

        let t = tree(&[("pom.xml", "<project/>")]);
        let p = plan(t.path()).unwrap();
        assert_eq!(p.language, "maven");
        assert!(p.steps[0]
            .command
            .starts_with("mvn -B -q package -DskipTests"));
        assert_eq!(p.run_command, MAVEN_RUN);

        let t = tree(&[("go.mod", "module x\n"), ("main.go", "")]);
        let p = plan(t.path()).unwrap();
        assert_eq!(p.language, "go");
        assert_eq!(p.steps[0].command, "go build -o app .");
        assert_eq!(p.run_command, "./app");
        if !on_path("go") {
            assert!(!p.runnable);
            assert!(p.message.unwrap().contains("`go`"));
        }
    }

    #[test]
    fn nothing_found_says_what_was_looked_for() {
        let t = tree(&[("README.md", "hi")]);
        let msg = invalid_text(plan(t.path()));
        for f in [
            "package.json",
            "requirements.txt",
            "Dockerfile",
            "index.html",
            "go.mod",
        ] {
            assert!(msg.contains(f), "{msg}");
        }
        let settings = BuildSettings {
            language: Some("cobol".into()),
            ..Default::default()
        };
        assert!(
            invalid_text(detect(t.path(), &settings, "local", SERVE)).contains("unknown language")
        );
    }
}
