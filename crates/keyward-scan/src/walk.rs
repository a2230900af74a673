//! Walking paths: `.gitignore` honoured (also outside a git repository),
//! hidden files included (`.env` is where keys hide), `.git` itself left
//! out, files scanned in parallel, binary and huge files skipped and counted.

use crate::detect::{Detector, Finding};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// How to walk.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Files larger than this are skipped (and counted).
    pub max_file_size: u64,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Counts files as they are done (for a progress display).
    pub progress: Option<std::sync::Arc<AtomicU64>>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self { max_file_size: 10 * 1024 * 1024, threads: 0, progress: None }
    }
}

/// What a scan found and skipped.
#[derive(Debug, Default)]
pub struct ScanReport {
    /// Findings, sorted by file and line.
    pub findings: Vec<Finding>,
    /// Files scanned.
    pub files: u64,
    /// Bytes scanned.
    pub bytes: u64,
    /// Binary files skipped.
    pub skipped_binary: u64,
    /// Files over the size limit skipped.
    pub skipped_large: u64,
    /// Paths that could not be read, with why.
    pub errors: Vec<String>,
}

#[derive(Default)]
struct Tally {
    files: AtomicU64,
    bytes: AtomicU64,
    binary: AtomicU64,
    large: AtomicU64,
}

fn scan_file(detector: &Detector, path: &Path, opts: &ScanOptions, tally: &Tally) -> Result<Vec<Finding>, String> {
    if let Some(p) = &opts.progress {
        p.fetch_add(1, Ordering::Relaxed);
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > opts.max_file_size {
        tally.large.fetch_add(1, Ordering::Relaxed);
        return Ok(Vec::new());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes[..bytes.len().min(8192)].contains(&0) {
        tally.binary.fetch_add(1, Ordering::Relaxed);
        return Ok(Vec::new());
    }
    tally.files.fetch_add(1, Ordering::Relaxed);
    tally.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    let text = String::from_utf8_lossy(&bytes);
    let name = path.to_string_lossy();
    let name = name.strip_prefix("./").unwrap_or(&name);
    Ok(detector.scan_text(name, &text))
}

/// Scans `paths` (files or directories) with `detector`.
pub fn scan_paths(detector: &Detector, paths: &[PathBuf], opts: &ScanOptions) -> ScanReport {
    let tally = Tally::default();
    let found = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
    let Some((first, rest)) = paths.split_first() else { return ScanReport::default() };
    let mut builder = ignore::WalkBuilder::new(first);
    for p in rest {
        builder.add(p);
    }
    builder
        .hidden(false)
        .require_git(false)
        .git_ignore(true)
        .git_exclude(true)
        .parents(true)
        .threads(opts.threads)
        .filter_entry(|e| e.file_name() != ".git");
    builder.build_parallel().run(|| {
        let (found, errors, tally) = (&found, &errors, &tally);
        Box::new(move |entry| {
            match entry {
                Ok(e) if e.file_type().is_some_and(|t| t.is_file()) => match scan_file(detector, e.path(), opts, tally)
                {
                    Ok(f) if !f.is_empty() => found.lock().unwrap_or_else(|p| p.into_inner()).extend(f),
                    Ok(_) => {}
                    Err(err) => errors.lock().unwrap_or_else(|p| p.into_inner()).push(err),
                },
                Ok(_) => {}
                Err(err) => errors.lock().unwrap_or_else(|p| p.into_inner()).push(err.to_string()),
            }
            ignore::WalkState::Continue
        })
    });
    let mut findings = found.into_inner().unwrap_or_else(|p| p.into_inner());
    findings.sort_by(|a, b| (&a.file, a.line, &a.rule).cmp(&(&b.file, b.line, &b.rule)));
    ScanReport {
        findings,
        files: tally.files.into_inner(),
        bytes: tally.bytes.into_inner(),
        skipped_binary: tally.binary.into_inner(),
        skipped_large: tally.large.into_inner(),
        errors: errors.into_inner().unwrap_or_else(|p| p.into_inner()),
    }
}
