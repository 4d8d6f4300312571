//! Safe extraction of uploaded archives (tar.gz and zip).
//!
//! An upload is hostile until proven otherwise, so every entry is checked
//! before anything touches the disk:
//! - absolute paths and `..` components are rejected;
//! - at most [`MAX_ENTRIES`] entries and [`MAX_TOTAL_BYTES`] written in total,
//!   counted on the bytes actually produced by the decompressor (a header's
//!   claimed size means nothing in a zip bomb);
//! - symbolic links are created last, after every file, so no later entry can
//!   be written *through* one; a link whose target is absolute or leaves the
//!   tree (checked lexically, then again on the real filesystem to catch chains
//!   of links) rejects the archive;
//! - hard links must name a regular file extracted earlier from the same
//!   archive and become copies (so they count against the size limit);
//! - devices, fifos and other special entries are skipped, as is macOS's
//!   `__MACOSX/` metadata folder.
//!
//! When every entry sits under one top-level directory (GitHub's
//! "Download ZIP", `git archive --prefix`), that directory is stripped.
//! The same walk without a destination ([`inspect`]) validates an upload when
//! it is stored, so a bad archive is refused at once rather than at build time;
//! [`extract`] unpacks one held in memory (a detection preview).

use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Seek, Write};
use std::path::{Component, Path, PathBuf};

pub const MAX_ENTRIES: usize = 50_000;
pub const MAX_TOTAL_BYTES: u64 = 1 << 30;
/// A symlink's target is a path, not content.
const MAX_LINK_TARGET: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_entries: usize,
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: MAX_ENTRIES,
            max_bytes: MAX_TOTAL_BYTES,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    TarGz,
    Zip,
}

impl Format {
    /// By magic bytes: names and content types of uploads are not trusted.
    pub fn sniff(head: &[u8]) -> Option<Format> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Format::TarGz)
        } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            Some(Format::Zip)
        } else {
            None
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::TarGz => "tar.gz",
            Format::Zip => "zip",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub entries: usize,
    pub files: usize,
    pub bytes: u64,
    /// The top-level directory that was stripped, if any.
    pub stripped: Option<String>,
}

/// Validates an archive held in memory without writing anything.
pub fn inspect(bytes: &[u8], limits: Limits) -> Result<Summary> {
    match Format::sniff(bytes) {
        Some(Format::TarGz) => walk_tar_gz(bytes, None, limits),
        Some(Format::Zip) => walk_zip(io::Cursor::new(bytes), None, limits),
        None => Err(not_an_archive()),
    }
}

/// Extracts the archive file at `archive` into `dest` (created if missing,
/// expected empty).
pub fn extract_file(archive: &Path, dest: &Path, limits: Limits) -> Result<Summary> {
    let mut file = fs::File::open(archive).map_err(Error::internal)?;
    let mut head = [0u8; 4];
    let n = read_head(&mut file, &mut head).map_err(Error::internal)?;
    file.rewind().map_err(Error::internal)?;
    fs::create_dir_all(dest).map_err(Error::internal)?;
    match Format::sniff(&head[..n]) {
        Some(Format::TarGz) => walk_tar_gz(io::BufReader::new(file), Some(dest), limits),
        Some(Format::Zip) => walk_zip(io::BufReader::new(file), Some(dest), limits),
        None => Err(not_an_archive()),
    }
}

/// Extracts an archive held in memory into `dest` (created if missing,
/// expected empty), with the same checks as [`extract_file`].
pub fn extract(bytes: &[u8], dest: &Path, limits: Limits) -> Result<Summary> {
    let format = Format::sniff(bytes).ok_or_else(not_an_archive)?;
    fs::create_dir_all(dest).map_err(Error::internal)?;
    match format {
        Format::TarGz => walk_tar_gz(bytes, Some(dest), limits),
        Format::Zip => walk_zip(io::Cursor::new(bytes), Some(dest), limits),
    }
}

fn read_head(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

pub fn not_an_archive() -> Error {
    Error::Invalid(vec!["the upload is not a .tar.gz or .zip archive".into()])
}

fn invalid(msg: impl std::fmt::Display) -> Error {
    Error::Invalid(vec![format!("archive: {msg}")])
}

/// Write failures caused by the archive's own shape (a file where a folder
/// was expected, …) are the user's; anything else (disk full, permissions)
/// is ours.
fn write_error(path: &Path, e: io::Error) -> Error {
    use io::ErrorKind::*;
    match e.kind() {
        AlreadyExists | NotADirectory | IsADirectory | InvalidInput | DirectoryNotEmpty => {
            invalid(format!("cannot write {}: {e}", path.display()))
        }
        _ => Error::Internal(format!("extracting {}: {e}", path.display())),
    }
}

/// An entry's path made relative and safe, or why not. `None` for entries
/// that name the root itself (`./`).
fn safe_path(raw: &[u8]) -> Result<Option<PathBuf>> {
    use std::os::unix::ffi::OsStrExt;
    let shown = String::from_utf8_lossy(raw);
    if raw.starts_with(b"/") {
        return Err(invalid(format!("entry `{shown}` has an absolute path")));
    }
    let mut out = PathBuf::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                return Err(invalid(format!(
                    "entry `{shown}` has a `..` component (path traversal)"
                )))
            }
            p => out.push(std::ffi::OsStr::from_bytes(p)),
        }
    }
    debug_assert!(out.components().all(|c| matches!(c, Component::Normal(_))));
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

#[derive(Debug)]
struct PendingLink {
    path: PathBuf,
    target: PathBuf,
}

/// The state of one walk over an archive; `dest = None` only validates.
struct Walk<'a> {
    dest: Option<&'a Path>,
    limits: Limits,
    summary: Summary,
    links: Vec<PendingLink>,
    /// First components of every entry, to decide on stripping.
    tops: BTreeSet<OsString>,
    /// Some entry lives below its first component, or names it as a directory.
    top_is_dir: bool,
    /// Some entry *is* a top-level non-directory.
    top_has_non_dir: bool,
}

enum Kind {
    Dir,
    File { executable: bool },
    Symlink,
    HardLink,
    Skip,
}

impl<'a> Walk<'a> {
    fn new(dest: Option<&'a Path>, limits: Limits) -> Self {
        Walk {
            dest,
            limits,
            summary: Summary::default(),
            links: Vec::new(),
            tops: BTreeSet::new(),
            top_is_dir: false,
            top_has_non_dir: false,
        }
    }

    fn count_entry(&mut self) -> Result<()> {
        self.summary.entries += 1;
        if self.summary.entries > self.limits.max_entries {
            return Err(invalid(format!(
                "more than {} entries",
                self.limits.max_entries
            )));
        }
        Ok(())
    }

    fn note_top(&mut self, path: &Path, is_dir: bool) {
        let mut parts = path.components();
        if let Some(Component::Normal(first)) = parts.next() {
            self.tops.insert(first.to_os_string());
            if parts.next().is_some() || is_dir {
                self.top_is_dir = true;
            } else {
                self.top_has_non_dir = true;
            }
        }
    }

    /// Copies `r` into `w` while counting against the total-size limit;
    /// never writes a byte past it.
    fn copy_limited(&mut self, r: &mut dyn Read, w: &mut dyn Write, name: &Path) -> Result<u64> {
        let corrupt = |e: io::Error| invalid(format!("entry {} is corrupt: {e}", name.display()));
        let remaining = self.limits.max_bytes - self.summary.bytes;
        let n = io::copy(&mut (&mut *r).take(remaining), w).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof | io::ErrorKind::Other => {
                corrupt(e)
            }
            _ => write_error(name, e),
        })?;
        self.summary.bytes += n;
        if n == remaining {
            let mut probe = [0u8; 1];
            let more = loop {
                match r.read(&mut probe) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other.map_err(corrupt)?,
                }
            };
            if more > 0 {
                return Err(invalid(format!(
                    "expands to more than {} bytes",
                    self.limits.max_bytes
                )));
            }
        }
        Ok(n)
    }

    fn entry(
        &mut self,
        raw_path: &[u8],
        kind: Kind,
        body: &mut dyn Read,
        link: Option<&[u8]>,
    ) -> Result<()> {
        self.count_entry()?;
        if matches!(kind, Kind::Skip) {
            return Ok(());
        }
        let Some(path) = safe_path(raw_path)? else {
            return Ok(());
        };
        if path.starts_with("__MACOSX") {
            return Ok(());
        }
        self.note_top(&path, matches!(kind, Kind::Dir));
        match kind {
            Kind::Skip => Ok(()),
            Kind::Dir => {
                if let Some(dest) = self.dest {
                    let full = dest.join(&path);
                    fs::create_dir_all(&full).map_err(|e| write_error(&path, e))?;
                }
                Ok(())
            }
            Kind::File { executable } => {
                self.summary.files += 1;
                match self.dest {
                    Some(dest) => {
                        let full = dest.join(&path);
                        if let Some(parent) = full.parent() {
                            fs::create_dir_all(parent).map_err(|e| write_error(&path, e))?;
                        }
                        let mut f =
                            create_file(&full, executable).map_err(|e| write_error(&path, e))?;
                        self.copy_limited(body, &mut f, &path)?;
                    }
                    None => {
                        self.copy_limited(body, &mut io::sink(), &path)?;
                    }
                }
                Ok(())
            }
            Kind::Symlink => {
                let target = link.unwrap_or_default();
                let target = PathBuf::from(String::from_utf8_lossy(target).into_owned());
                self.links.push(PendingLink { path, target });
                Ok(())
            }
            Kind::HardLink => {
                let raw = link.unwrap_or_default();
                let target = match safe_path(raw) {
                    Ok(Some(t)) => t,
                    _ => {
                        return Err(invalid(format!(
                            "hard link {} points outside the archive ({})",
                            path.display(),
                            String::from_utf8_lossy(raw)
                        )))
                    }
                };
                self.summary.files += 1;
                if let Some(dest) = self.dest {
                    let from = dest.join(&target);
                    let is_file = fs::symlink_metadata(&from)
                        .map(|m| m.is_file())
                        .unwrap_or(false);
                    if !is_file {
                        return Err(invalid(format!(
                            "hard link {} points to {}, which is not a file earlier in the archive",
                            path.display(),
                            target.display()
                        )));
                    }
                    let executable = is_executable(&from);
                    let mut src = fs::File::open(&from).map_err(|e| write_error(&target, e))?;
                    let full = dest.join(&path);
                    if let Some(parent) = full.parent() {
                        fs::create_dir_all(parent).map_err(|e| write_error(&path, e))?;
                    }
                    let mut f =
                        create_file(&full, executable).map_err(|e| write_error(&path, e))?;
                    self.copy_limited(&mut src, &mut f, &path)?;
                }
                Ok(())
            }
        }
    }

    /// Strips a single top-level directory, then creates the symlinks.
    fn finish(mut self) -> Result<Summary> {
        let strip = if self.tops.len() == 1 && self.top_is_dir && !self.top_has_non_dir {
            self.tops.iter().next().cloned()
        } else {
            None
        };
        if let Some(top) = &strip {
            if let Some(dest) = self.dest {
                strip_top(dest, top)?;
            }
            for link in &mut self.links {
                link.path = link
                    .path
                    .strip_prefix(top)
                    .unwrap_or(&link.path)
                    .to_path_buf();
            }
            // A link that *was* the top directory cannot exist (top_has_non_dir).
            self.links.retain(|l| !l.path.as_os_str().is_empty());
            self.summary.stripped = Some(top.to_string_lossy().into_owned());
        }
        for link in &self.links {
            check_link_lexically(link)?;
        }
        if let Some(dest) = self.dest {
            for link in &self.links {
                create_link(dest, link)?;
            }
            // Lexically fine links can still chain outside (`a -> .`,
            // `b -> a/..`): ask the filesystem where each one really lands.
            let root = fs::canonicalize(dest).map_err(Error::internal)?;
            for link in &self.links {
                if let Ok(real) = fs::canonicalize(dest.join(&link.path)) {
                    if !real.starts_with(&root) {
                        return Err(invalid(format!(
                            "symlink {} resolves outside the archive",
                            link.path.display()
                        )));
                    }
                }
            }
        }
        Ok(self.summary)
    }
}

fn create_file(path: &Path, executable: bool) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    // A duplicate entry replaces the earlier file (tar semantics).
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if executable { 0o755 } else { 0o644 })
        .open(path)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn check_link_lexically(link: &PendingLink) -> Result<()> {
    let escape = || {
        invalid(format!(
            "symlink {} points outside the archive ({})",
            link.path.display(),
            link.target.display()
        ))
    };
    if link.target.is_absolute() || link.target.as_os_str().is_empty() {
        return Err(escape());
    }
    // Depth below the root of the directory holding the link, then walk the target.
    let mut depth = link.path.components().count() as i64 - 1;
    for c in link.target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return Err(escape()),
        }
        if depth < 0 {
            return Err(escape());
        }
    }
    Ok(())
}

fn create_link(dest: &Path, link: &PendingLink) -> Result<()> {
    // Never create anything through an existing symlink: that is how a
    // link-then-file pair writes outside the tree.
    let mut prefix = dest.to_path_buf();
    let parts: Vec<_> = link.path.components().collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        prefix.push(part);
        match fs::symlink_metadata(&prefix) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(invalid(format!(
                    "entry {} goes through a symlink",
                    link.path.display()
                )))
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(invalid(format!(
                    "entry {} is inside a file",
                    link.path.display()
                )))
            }
            Err(_) => fs::create_dir(&prefix).map_err(|e| write_error(&link.path, e))?,
        }
    }
    let full = dest.join(&link.path);
    if fs::symlink_metadata(&full).is_ok() {
        return Err(invalid(format!(
            "symlink {} collides with another entry",
            link.path.display()
        )));
    }
    std::os::unix::fs::symlink(&link.target, &full).map_err(|e| write_error(&link.path, e))
}

fn strip_top(dest: &Path, top: &std::ffi::OsStr) -> Result<()> {
    let inner = dest.join(top);
    if !fs::symlink_metadata(&inner)
        .map(|m| m.is_dir())
        .unwrap_or(false)
    {
        return Ok(());
    }
    let mut aside = dest.as_os_str().to_os_string();
    aside.push(".strip");
    let aside = PathBuf::from(aside);
    fs::rename(&inner, &aside).map_err(Error::internal)?;
    fs::remove_dir(dest).map_err(Error::internal)?;
    fs::rename(&aside, dest).map_err(Error::internal)?;
    Ok(())
}

fn walk_tar_gz<R: Read>(reader: R, dest: Option<&Path>, limits: Limits) -> Result<Summary> {
    let gz = flate2::read::GzDecoder::new(reader);
    let mut archive = tar::Archive::new(gz);
    let mut walk = Walk::new(dest, limits);
    let entries = archive
        .entries()
        .map_err(|e| invalid(format!("not a readable tar.gz: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(format!("not a readable tar.gz: {e}")))?;
        use tar::EntryType as T;
        let header = entry.header();
        let kind = match header.entry_type() {
            T::Directory => Kind::Dir,
            T::Regular | T::Continuous => Kind::File {
                executable: header.mode().map(|m| m & 0o111 != 0).unwrap_or(false),
            },
            T::Symlink => Kind::Symlink,
            T::Link => Kind::HardLink,
            // Long names and pax records are folded into the next entry by
            // the tar crate; devices, fifos and the like have no place in
            // an app's source.
            _ => Kind::Skip,
        };
        let path = entry.path_bytes().into_owned();
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        walk.entry(&path, kind, &mut entry, link.as_deref())?;
    }
    walk.finish()
}

fn walk_zip<R: Read + Seek>(reader: R, dest: Option<&Path>, limits: Limits) -> Result<Summary> {
    let mut zip =
        zip::ZipArchive::new(reader).map_err(|e| invalid(format!("not a readable zip: {e}")))?;
    // The central directory says how many entries there are: refuse before
    // touching any of them.
    if zip.len() > limits.max_entries {
        return Err(invalid(format!("more than {} entries", limits.max_entries)));
    }
    let mut walk = Walk::new(dest, limits);
    for i in 0..zip.len() {
        let mut file = zip
            .by_index(i)
            .map_err(|e| invalid(format!("entry {i} is unreadable: {e}")))?;
        let name = file.name_raw().to_vec();
        if file.is_symlink() {
            let mut target = Vec::new();
            (&mut file)
                .take(MAX_LINK_TARGET)
                .read_to_end(&mut target)
                .map_err(|e| invalid(format!("entry {i} is unreadable: {e}")))?;
            walk.entry(&name, Kind::Symlink, &mut io::empty(), Some(&target))?;
        } else if file.is_dir() {
            walk.entry(&name, Kind::Dir, &mut io::empty(), None)?;
        } else {
            let executable = file.unix_mode().map(|m| m & 0o111 != 0).unwrap_or(false);
            walk.entry(&name, Kind::File { executable }, &mut file, None)?;
        }
    }
    walk.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar header with any raw name, bypassing the tar crate's own checks
    /// (which would refuse to *write* the malicious archives we need).
    fn raw_header(name: &[u8], kind: tar::EntryType, size: u64, link: &[u8]) -> tar::Header {
        let mut h = tar::Header::new_old();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name);
            old.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        h
    }

    enum E<'a> {
        File(&'a str, &'a [u8]),
        Dir(&'a str),
        Sym(&'a str, &'a str),
        Hard(&'a str, &'a str),
    }

    fn tar_gz(entries: &[E]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for e in entries {
            match e {
                E::File(name, data) => {
                    let h = raw_header(
                        name.as_bytes(),
                        tar::EntryType::Regular,
                        data.len() as u64,
                        b"",
                    );
                    b.append(&h, *data).unwrap();
                }
                E::Dir(name) => {
                    let h = raw_header(name.as_bytes(), tar::EntryType::Directory, 0, b"");
                    b.append(&h, io::empty()).unwrap();
                }
                E::Sym(name, target) => {
                    let h = raw_header(
                        name.as_bytes(),
                        tar::EntryType::Symlink,
                        0,
                        target.as_bytes(),
                    );
                    b.append(&h, io::empty()).unwrap();
                }
                E::Hard(name, target) => {
                    let h = raw_header(name.as_bytes(), tar::EntryType::Link, 0, target.as_bytes());
                    b.append(&h, io::empty()).unwrap();
                }
            }
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    fn zip_of(entries: &[E]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        for e in entries {
            match e {
                E::File(name, data) => {
                    w.start_file(*name, opts).unwrap();
                    w.write_all(data).unwrap();
                }
                E::Dir(name) => w.add_directory(*name, opts).unwrap(),
                E::Sym(name, target) => w.add_symlink(*name, *target, opts).unwrap(),
                E::Hard(..) => unreachable!("zip has no hard links"),
            }
        }
        w.finish().unwrap().into_inner()
    }

    fn extract_bytes(bytes: &[u8], limits: Limits) -> (tempfile::TempDir, Result<Summary>) {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("upload");
        fs::write(&file, bytes).unwrap();
        let dest = tmp.path().join("out");
        let r = extract_file(&file, &dest, limits);
        (tmp, r)
    }

    fn assert_invalid(r: Result<Summary>, needle: &str) {
        match r {
            Err(Error::Invalid(m)) => {
                assert!(m.join(" ").contains(needle), "expected `{needle}` in {m:?}")
            }
            other => panic!("expected Invalid containing `{needle}`, got {other:?}"),
        }
    }

    #[test]
    fn sniffs_by_magic_bytes() {
        assert_eq!(Format::sniff(&tar_gz(&[])), Some(Format::TarGz));
        assert_eq!(
            Format::sniff(&zip_of(&[E::File("a", b"x")])),
            Some(Format::Zip)
        );
        assert_eq!(Format::sniff(b"hello"), None);
        assert_invalid(
            inspect(b"#!/bin/sh\necho hi\n", Limits::default()),
            "not a .tar.gz or .zip",
        );
    }

    #[test]
    fn extracts_and_strips_a_single_top_directory() {
        for bytes in [
            tar_gz(&[
                E::Dir("repo-main/"),
                E::File("repo-main/index.html", b"<h1>hi</h1>"),
                E::File("repo-main/sub/a.txt", b"a"),
                E::Sym("repo-main/link", "sub/a.txt"),
            ]),
            zip_of(&[
                E::Dir("repo-main/"),
                E::File("repo-main/index.html", b"<h1>hi</h1>"),
                E::File("repo-main/sub/a.txt", b"a"),
                E::Sym("repo-main/link", "sub/a.txt"),
            ]),
        ] {
            let (tmp, r) = extract_bytes(&bytes, Limits::default());
            let s = r.unwrap();
            assert_eq!(s.stripped.as_deref(), Some("repo-main"));
            let out = tmp.path().join("out");
            assert_eq!(
                fs::read_to_string(out.join("index.html")).unwrap(),
                "<h1>hi</h1>"
            );
            assert_eq!(fs::read_to_string(out.join("link")).unwrap(), "a");
            assert!(!out.join("repo-main").exists());
            assert_eq!(
                inspect(&bytes, Limits::default())
                    .unwrap()
                    .stripped
                    .as_deref(),
                Some("repo-main")
            );
        }
    }

    #[test]
    fn keeps_several_top_level_entries() {
        let bytes = tar_gz(&[E::File("app.py", b"print(1)"), E::File("lib/x.py", b"")]);
        let (tmp, r) = extract_bytes(&bytes, Limits::default());
        assert_eq!(r.unwrap().stripped, None);
        assert!(tmp.path().join("out/app.py").is_file());
        assert!(tmp.path().join("out/lib/x.py").is_file());
        // A single top-level *file* is not a directory to strip.
        let bytes = tar_gz(&[E::File("index.html", b"x")]);
        let (tmp, r) = extract_bytes(&bytes, Limits::default());
        assert_eq!(r.unwrap().stripped, None);
        assert!(tmp.path().join("out/index.html").is_file());
    }

    #[test]
    fn extracts_from_memory_with_the_same_checks() {
        for bytes in [
            tar_gz(&[E::Dir("r/"), E::File("r/app.py", b"print()")]),
            zip_of(&[E::Dir("r/"), E::File("r/app.py", b"print()")]),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let out = tmp.path().join("out");
            let s = extract(&bytes, &out, Limits::default()).unwrap();
            assert_eq!(s.stripped.as_deref(), Some("r"));
            assert_eq!(fs::read_to_string(out.join("app.py")).unwrap(), "print()");
        }
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("a/out");
        let evil = tar_gz(&[E::File("ok.txt", b"x"), E::File("../evil.txt", b"x")]);
        assert_invalid(extract(&evil, &out, Limits::default()), "path traversal");
        assert!(!tmp.path().join("a/evil.txt").exists());
        assert_invalid(
            extract(b"plain text", &out, Limits::default()),
            "not a .tar.gz or .zip",
        );
    }

    #[test]
    fn rejects_path_traversal() {
        let t = tar_gz(&[E::File("ok.txt", b"x"), E::File("../evil.txt", b"x")]);
        let (tmp, r) = extract_bytes(&t, Limits::default());
        assert_invalid(r, "path traversal");
        assert!(!tmp.path().join("evil.txt").exists());
        let t = tar_gz(&[E::File("a/../../evil.txt", b"x")]);
        assert_invalid(extract_bytes(&t, Limits::default()).1, "path traversal");
        let z = zip_of(&[E::File("../evil.txt", b"x")]);
        let (tmp, r) = extract_bytes(&z, Limits::default());
        assert_invalid(r, "path traversal");
        assert!(!tmp.path().join("evil.txt").exists());
        assert_invalid(inspect(&z, Limits::default()), "path traversal");
    }

    #[test]
    fn rejects_absolute_paths() {
        let t = tar_gz(&[E::File("/tmp/cloudport-evil.txt", b"x")]);
        assert_invalid(extract_bytes(&t, Limits::default()).1, "absolute path");
        let z = zip_of(&[E::File("/tmp/cloudport-evil.txt", b"x")]);
        assert_invalid(extract_bytes(&z, Limits::default()).1, "absolute path");
        assert!(!Path::new("/tmp/cloudport-evil.txt").exists());
    }

    #[test]
    fn rejects_symlinks_that_escape() {
        let cases: Vec<Vec<u8>> = vec![
            tar_gz(&[E::Sym("etc", "/etc")]),
            tar_gz(&[E::Sym("up", "../..")]),
            tar_gz(&[E::Sym("sub/up", "../../x")]),
            zip_of(&[E::Sym("etc", "/etc")]),
            zip_of(&[E::Sym("up", "../outside")]),
        ];
        for bytes in cases {
            let (tmp, r) = extract_bytes(&bytes, Limits::default());
            assert_invalid(r, "points outside the archive");
            assert!(fs::read_dir(tmp.path().join("out"))
                .unwrap()
                .all(|e| { !e.unwrap().file_type().unwrap().is_symlink() }));
            assert_invalid(
                inspect(&bytes, Limits::default()),
                "points outside the archive",
            );
        }
    }

    #[test]
    fn rejects_symlink_chains_and_writes_through_links() {
        // Each link looks inside on its own; together they reach the parent.
        let chain = tar_gz(&[E::Sym("r", "."), E::Sym("e", "r/..")]);
        assert_invalid(
            extract_bytes(&chain, Limits::default()).1,
            "resolves outside",
        );
        // A link to a directory inside, then an entry placed through it.
        let through = tar_gz(&[E::Dir("d/"), E::Sym("l", "d"), E::Sym("l/x", "y")]);
        assert_invalid(
            extract_bytes(&through, Limits::default()).1,
            "through a symlink",
        );
        // Stripping the top directory must not turn an inside link into an escape.
        let strip = tar_gz(&[E::File("top/f", b"x"), E::Sym("top/l", "../top/f")]);
        assert_invalid(extract_bytes(&strip, Limits::default()).1, "points outside");
    }

    #[test]
    fn hard_links_copy_inside_files_and_reject_escapes() {
        let ok = tar_gz(&[E::File("a.txt", b"hello"), E::Hard("b.txt", "a.txt")]);
        let (tmp, r) = extract_bytes(&ok, Limits::default());
        r.unwrap();
        assert_eq!(
            fs::read_to_string(tmp.path().join("out/b.txt")).unwrap(),
            "hello"
        );
        let out = tar_gz(&[E::Hard("passwd", "/etc/passwd")]);
        assert_invalid(extract_bytes(&out, Limits::default()).1, "hard link");
        let up = tar_gz(&[E::Hard("x", "../x")]);
        assert_invalid(extract_bytes(&up, Limits::default()).1, "hard link");
        let missing = tar_gz(&[E::Hard("x", "nothing-here")]);
        assert_invalid(
            extract_bytes(&missing, Limits::default()).1,
            "not a file earlier",
        );
    }

    #[test]
    fn limits_entries() {
        let names: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
        let entries: Vec<E> = names.iter().map(|n| E::File(n, b"x")).collect();
        let limits = Limits {
            max_entries: 10,
            max_bytes: MAX_TOTAL_BYTES,
        };
        assert_invalid(
            extract_bytes(&tar_gz(&entries), limits).1,
            "more than 10 entries",
        );
        assert_invalid(
            extract_bytes(&zip_of(&entries), limits).1,
            "more than 10 entries",
        );
        assert_invalid(inspect(&zip_of(&entries), limits), "more than 10 entries");
    }

    #[test]
    fn limits_bytes_actually_written() {
        // 8 MiB of zeros compresses to a few KiB: a small bomb.
        let zeros = vec![0u8; 8 << 20];
        let limits = Limits {
            max_entries: MAX_ENTRIES,
            max_bytes: 1 << 20,
        };
        let t = tar_gz(&[E::File("zeros", &zeros)]);
        assert!(t.len() < 100_000);
        assert_invalid(extract_bytes(&t, limits).1, "expands to more than");
        let z = zip_of(&[E::File("zeros", &zeros)]);
        assert!(z.len() < 100_000);
        assert_invalid(extract_bytes(&z, limits).1, "expands to more than");
        assert_invalid(inspect(&z, limits), "expands to more than");
        // Many small files add up too.
        let chunk = vec![1u8; 300 << 10];
        let many = tar_gz(&[
            E::File("a", &chunk),
            E::File("b", &chunk),
            E::File("c", &chunk),
            E::File("d", &chunk),
        ]);
        assert_invalid(inspect(&many, limits), "expands to more than");
    }

    #[test]
    fn zip_with_lying_header_is_still_bounded() {
        // Claims a tiny uncompressed size in its headers; the walk counts
        // what the decompressor really produces.
        let zeros = vec![0u8; 4 << 20];
        let mut z = zip_of(&[E::File("zeros", &zeros)]);
        let len = (4u32 << 20).to_le_bytes();
        let small = 10u32.to_le_bytes();
        let mut i = 0;
        while i + 4 <= z.len() {
            if z[i..i + 4] == len {
                z[i..i + 4].copy_from_slice(&small);
            }
            i += 1;
        }
        let limits = Limits {
            max_entries: MAX_ENTRIES,
            max_bytes: 1 << 20,
        };
        let (tmp, r) = extract_bytes(&z, limits);
        // Either the reader notices the lie (Invalid) or it stops early:
        // never more than the limit on disk.
        assert!(!matches!(r, Err(Error::Internal(_))), "{r:?}");
        let written = fs::metadata(tmp.path().join("out/zeros"))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(written <= 1 << 20, "{written} bytes written");
    }
}
