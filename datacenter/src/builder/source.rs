//! Where source trees come from: git repositories and stored uploads.

use super::archive::{self, Format, Limits};
use super::command::{self, Sink, Spec};
use crate::error::{Error, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// Largest archive `store_upload` accepts.
pub const MAX_UPLOAD_BYTES: usize = 100 << 20;

const STORED: &[Format] = &[Format::TarGz, Format::Zip];

fn stored_name(f: Format) -> String {
    format!("source.{}", f.extension())
}

/// The archive stored in `dir`, with its size.
pub fn stored_upload(dir: &Path) -> Option<(PathBuf, u64)> {
    STORED.iter().find_map(|f| {
        let p = dir.join(stored_name(*f));
        fs::metadata(&p)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| (p, m.len()))
    })
}

/// Validates `bytes` as a safe archive and stores it in `dir`, replacing
/// the previous upload.
pub async fn store_upload(dir: &Path, bytes: &[u8]) -> Result<()> {
    if bytes.len() > MAX_UPLOAD_BYTES {
        return Err(Error::Invalid(vec![format!(
            "the upload is {}; the limit is {}",
            human_bytes(bytes.len() as u64),
            human_bytes(MAX_UPLOAD_BYTES as u64)
        )]));
    }
    let format = Format::sniff(bytes).ok_or_else(archive::not_an_archive)?;
    // Walk it now, so a hostile or broken archive is refused at upload
    // time rather than discovered by the next build.
    let copy = bytes.to_vec();
    tokio::task::spawn_blocking(move || archive::inspect(&copy, Limits::default()))
        .await
        .map_err(Error::internal)??;
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(Error::internal)?;
    let incoming = dir.join(format!(".incoming-{}", rand::random::<u64>()));
    tokio::fs::write(&incoming, bytes)
        .await
        .map_err(Error::internal)?;
    tokio::fs::rename(&incoming, dir.join(stored_name(format)))
        .await
        .map_err(Error::internal)?;
    for other in STORED.iter().filter(|f| **f != format) {
        let _ = tokio::fs::remove_file(dir.join(stored_name(*other))).await;
    }
    Ok(())
}

/// Only network and local-file transports: `ext::` runs commands, `ssh`
/// would use the datacenter's keys, and plain paths bypass `file://`'s
/// shallow-clone rules.
pub fn check_git(url: &str, reference: &str) -> Result<()> {
    let mut problems = Vec::new();
    let scheme_ok = ["http://", "https://", "file://"]
        .iter()
        .any(|s| url.len() > s.len() && url[..s.len()].eq_ignore_ascii_case(s));
    if !scheme_ok {
        problems.push(format!(
            "git URL `{}` is not allowed: use an http://, https:// or file:// URL",
            redact(url)
        ));
    } else if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        problems.push("git URL must not contain spaces or control characters".into());
    }
    if reference.is_empty()
        || reference.starts_with('-')
        || reference
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        problems.push(format!(
            "git reference `{reference}` is not a valid branch, tag or commit"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(problems))
    }
}

/// The URL with any password replaced, for logs and descriptions.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

fn looks_like_commit(r: &str) -> bool {
    (7..=40).contains(&r.len()) && r.chars().all(|c| c.is_ascii_hexdigit())
}

/// Clones `reference` of `url` into `dest` (which must not exist) and
/// returns the short commit. The `.git` directory is removed: an artifact
/// carries the tree, not the history.
pub async fn git_clone(
    url: &str,
    reference: &str,
    dest: &Path,
    home: &Path,
    sink: Sink<'_>,
) -> Result<String> {
    check_git(url, reference)?;
    let mut env = command::clean_env(home, &[]);
    env.extend(
        [
            ("GIT_TERMINAL_PROMPT", "0"),
            ("GIT_CONFIG_NOSYSTEM", "1"),
            // Submodules and redirects stay on the same transports.
            ("GIT_ALLOW_PROTOCOL", "file:http:https"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let cwd = dest.parent().unwrap_or(Path::new("/")).to_path_buf();
    let git = |args: &[&str], cwd: &Path| Spec {
        program: "git".into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        cwd: cwd.to_path_buf(),
        env: env.clone(),
    };
    let dest_s = dest.display().to_string();
    let run = move |spec: Spec| async move {
        command::run(&spec, sink)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot run git on this datacenter: {e}")))
    };

    let shallow = run(git(
        &[
            "-c",
            "advice.detachedHead=false",
            "clone",
            "--depth",
            "1",
            "--branch",
            reference,
            "--",
            url,
            &dest_s,
        ],
        &cwd,
    ))
    .await?;
    if !shallow.success() {
        // `--branch` takes branches and tags only; a commit needs the history.
        let failed = if looks_like_commit(reference) {
            let _ = fs::remove_dir_all(dest);
            let full = run(git(&["clone", "--no-checkout", "--", url, &dest_s], &cwd)).await?;
            if full.success() {
                let checkout = run(git(
                    &[
                        "-c",
                        "advice.detachedHead=false",
                        "checkout",
                        "--detach",
                        reference,
                    ],
                    dest,
                ))
                .await?;
                (!checkout.success()).then_some(checkout)
            } else {
                Some(full)
            }
        } else {
            Some(shallow)
        };
        if let Some(f) = failed {
            return Err(Error::Invalid(vec![format!(
                "fetch failed: git could not get `{reference}` of {} ({}){}",
                redact(url),
                f.status(),
                f.last_line().map(|l| format!(": {l}")).unwrap_or_default()
            )]));
        }
    }
    let head = run(git(&["rev-parse", "--short=7", "HEAD"], dest)).await?;
    let commit = head
        .last_line()
        .filter(|_| head.success())
        .unwrap_or("unknown")
        .to_string();
    remove_git_dir(dest)?;
    Ok(commit)
}

pub fn remove_git_dir(tree: &Path) -> Result<()> {
    let git = tree.join(".git");
    match fs::symlink_metadata(&git) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(&git).map_err(Error::internal),
        Ok(_) => fs::remove_file(&git).map_err(Error::internal),
        Err(_) => Ok(()),
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: &[&str] = &["B", "KB", "MB", "GB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if v < 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A repository with two commits on `main`, a tag and a branch.
    pub fn make_repo(dir: &Path) -> (String, String) {
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
                .args([
                    "-c",
                    "init.defaultBranch=main",
                    "-c",
                    "commit.gpgsign=false",
                ])
                .args(args)
                .current_dir(dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "git {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        git(&["init", "-q"]);
        fs::write(dir.join("index.html"), "first").unwrap();
        git(&["add", "."]);
        git(&["commit", "-q", "-m", "first"]);
        let first = git(&["rev-parse", "HEAD"]);
        fs::write(dir.join("index.html"), "second").unwrap();
        git(&["commit", "-q", "-am", "second"]);
        git(&["tag", "v2"]);
        git(&["branch", "other", &first]);
        let second = git(&["rev-parse", "HEAD"]);
        (first, second)
    }

    #[test]
    fn only_safe_git_urls() {
        for ok in [
            "https://example.com/a.git",
            "http://h/x",
            "file:///tmp/repo",
        ] {
            check_git(ok, "main").unwrap();
        }
        for bad in [
            "ext::sh -c touch% /tmp/pwned",
            "ssh://git@github.com/a/b",
            "git@github.com:a/b.git",
            "/tmp/repo",
            "../repo",
            "git://example.com/x",
            "https://",
        ] {
            match check_git(bad, "main") {
                Err(Error::Invalid(m)) => assert!(m[0].contains("not allowed"), "{bad}: {m:?}"),
                other => panic!("{bad} accepted: {other:?}"),
            }
        }
        assert!(check_git("https://h/x", "--upload-pack=evil").is_err());
        assert!(check_git("https://h/x", "").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("https://user:tok@github.com/a/b"),
            "https://***@github.com/a/b"
        );
        assert_eq!(
            redact("https://github.com/a/b@c"),
            "https://github.com/a/b@c"
        );
        assert_eq!(redact("file:///x"), "file:///x");
    }

    #[tokio::test]
    async fn clones_branches_tags_and_commits_from_a_file_url() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        fs::create_dir_all(&repo).unwrap();
        let (first, second) = make_repo(&repo);
        let url = format!("file://{}", repo.display());
        let home = t.path().join("home");
        fs::create_dir_all(&home).unwrap();

        for (reference, want, commit) in [
            ("main", "second", &second),
            ("v2", "second", &second),
            ("other", "first", &first),
            (first.as_str(), "first", &first),
            (&first[..10], "first", &first),
        ] {
            let dest = t.path().join(format!("out-{reference}"));
            let short = git_clone(&url, reference, &dest, &home, Sink::Discard)
                .await
                .unwrap();
            assert_eq!(short, commit[..7], "{reference}");
            assert_eq!(fs::read_to_string(dest.join("index.html")).unwrap(), want);
            assert!(!dest.join(".git").exists());
        }

        let dest = t.path().join("out-missing");
        match git_clone(&url, "no-such-branch", &dest, &home, Sink::Discard).await {
            Err(Error::Invalid(m)) => {
                assert!(
                    m[0].contains("no-such-branch") && m[0].contains("exit status"),
                    "{m:?}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn uploads_are_checked_and_replaced() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("up");
        match store_upload(&dir, b"plain text").await {
            Err(Error::Invalid(m)) => assert!(m[0].contains(".tar.gz or .zip")),
            other => panic!("{other:?}"),
        }
        assert!(stored_upload(&dir).is_none());
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file("index.html", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut zip, b"hi").unwrap();
        let bytes = zip.finish().unwrap().into_inner();
        store_upload(&dir, &bytes).await.unwrap();
        let (path, size) = stored_upload(&dir).unwrap();
        assert!(path.ends_with("source.zip"));
        assert_eq!(size, bytes.len() as u64);
        let too_big = vec![0x1f; MAX_UPLOAD_BYTES + 1];
        assert!(matches!(
            store_upload(&dir, &too_big).await,
            Err(Error::Invalid(_))
        ));
    }
}
