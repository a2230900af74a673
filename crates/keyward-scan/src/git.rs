//! Scanning history (`--git`: every commit of every branch, so a key
//! committed and later deleted is still found) and the staged changes
//! (`--staged`, the pre-commit hook). Reads `git log -p` / `git diff
//! --cached` from the `git` on the PATH: only the lines a commit added are
//! reported, with a few lines around them as context (an exchange named
//! just above a key still names its exchange).

use crate::detect::{Detector, Finding};
use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

/// How every patch is asked for: 8 lines of context, plain text, no renames,
/// the usual `a/`/`b/` prefixes whatever the user's settings.
const PATCH: [&str; 6] = ["-U8", "--no-color", "--no-ext-diff", "--no-renames", "--src-prefix=a/", "--dst-prefix=b/"];

/// Why history could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GitError(pub String);

fn git(repo: &Path, args: &[&str]) -> Result<String, GitError> {
    // Settings of the user's that change the patch format are overridden.
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "core.quotePath=false", "-c", "diff.noprefix=false", "-c", "diff.mnemonicPrefix=false"])
        .args(args)
        .output()
        .map_err(|e| GitError(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        return Err(GitError(format!(
            "git {} in {}: {}",
            args.first().copied().unwrap_or_default(),
            repo.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One changed region of one file: its text (context and added lines),
/// where it starts in the new file, and which of its lines were added.
struct Hunk {
    commit: Option<String>,
    file: String,
    start: usize,
    text: String,
    added: HashSet<usize>,
}

/// `@@ -a,b +c,d @@`: (old lines, new start, new lines).
fn hunk_header(range: &str) -> Option<(usize, usize, usize)> {
    let mut parts = range.split_whitespace();
    let count = |p: &str| -> Option<(usize, usize)> {
        let mut it = p.split(',');
        let start = it.next()?.parse().ok()?;
        let n = it.next().map_or(Some(1), |n| n.parse().ok())?;
        Some((start, n))
    };
    let (_, old) = count(parts.next()?.strip_prefix('-')?)?;
    let (start, new) = count(parts.next()?.strip_prefix('+')?)?;
    Some((old, start, new))
}

fn parse(patch: &str, commit_marker: bool) -> Vec<Hunk> {
    let mut hunks = Vec::new();
    let (mut commit, mut file): (Option<String>, Option<String>) = (None, None);
    let mut cur: Option<Hunk> = None;
    let (mut line_no, mut old_left, mut new_left) = (0usize, 0usize, 0usize);
    for l in patch.split('\n') {
        // Inside a hunk, its header's counts say what each line is: a removed
        // `-- comment` reads `--- comment` and is still a removed line.
        if old_left + new_left > 0 {
            if let Some(h) = cur.as_mut() {
                match l.chars().next() {
                    Some('+') => {
                        h.added.insert(line_no);
                        h.text.push_str(&l[1..]);
                        h.text.push('\n');
                        line_no += 1;
                        new_left = new_left.saturating_sub(1);
                    }
                    Some('-') => old_left = old_left.saturating_sub(1),
                    Some('\\') => {}
                    _ => {
                        h.text.push_str(l.get(1..).unwrap_or(""));
                        h.text.push('\n');
                        line_no += 1;
                        old_left = old_left.saturating_sub(1);
                        new_left = new_left.saturating_sub(1);
                    }
                }
            }
            continue;
        }
        if commit_marker && let Some(sha) = l.strip_prefix("\u{1e}commit ") {
            hunks.extend(cur.take());
            commit = Some(sha.trim().to_string());
            file = None;
        } else if let Some(p) = l.strip_prefix("+++ ") {
            hunks.extend(cur.take());
            file = p.strip_prefix("b/").map(str::to_string);
        } else if let Some(range) = l.strip_prefix("@@ ") {
            hunks.extend(cur.take());
            let (Some(f), Some((old, start, new))) = (&file, hunk_header(range)) else { continue };
            (line_no, old_left, new_left) = (start, old, new);
            cur = Some(Hunk {
                commit: commit.clone(),
                file: f.clone(),
                start,
                text: String::new(),
                added: HashSet::new(),
            });
        } else {
            hunks.extend(cur.take());
        }
    }
    hunks.extend(cur);
    hunks
}

fn scan_hunks(detector: &Detector, hunks: Vec<Hunk>) -> Vec<Finding> {
    let mut out = Vec::new();
    for h in hunks {
        for mut f in detector.scan_text(&h.file, &h.text) {
            f.line += h.start - 1;
            f.paired_with = f.paired_with.iter().map(|l| l + h.start - 1).collect();
            if h.added.contains(&f.line) {
                f.commit = h.commit.clone();
                out.push(f);
            }
        }
    }
    out
}

/// Every credential any commit of any branch of `repo` added.
pub fn scan_history(detector: &Detector, repo: &Path) -> Result<Vec<Finding>, GitError> {
    let patch = git(repo, &[&["log", "--all", "-p", "--format=%x1ecommit %H"][..], &PATCH].concat())?;
    Ok(scan_hunks(detector, parse(&patch, true)))
}

/// Every credential the staged changes of `repo` add.
pub fn scan_staged(detector: &Detector, repo: &Path) -> Result<Vec<Finding>, GitError> {
    let patch = git(repo, &[&["diff", "--cached"][..], &PATCH].concat())?;
    Ok(scan_hunks(detector, parse(&patch, false)))
}

/// The marker of a pre-commit hook keyward wrote.
pub const HOOK_MARKER: &str = "# installed by keyward scan --install-hook";

/// Installs a pre-commit hook that scans the staged changes; refuses to
/// replace a hook keyward did not write.
pub fn install_hook(repo: &Path, keyward: &Path) -> Result<std::path::PathBuf, GitError> {
    let hooks = git(repo, &["rev-parse", "--git-path", "hooks"])?;
    let dir = repo.join(hooks.trim());
    std::fs::create_dir_all(&dir).map_err(|e| GitError(format!("cannot create {}: {e}", dir.display())))?;
    let hook = dir.join("pre-commit");
    if let Ok(old) = std::fs::read_to_string(&hook)
        && !old.contains(HOOK_MARKER)
    {
        return Err(GitError(format!(
            "{} already exists and is not keyward's: add `keyward scan --staged` to it yourself",
            hook.display()
        )));
    }
    let script = format!(
        "#!/bin/sh\n{HOOK_MARKER}\n# Refuses a commit that adds a credential; `git commit --no-verify` skips it.\nexec \"{}\" scan --staged\n",
        keyward.display()
    );
    std::fs::write(&hook, script).map_err(|e| GitError(format!("cannot write {}: {e}", hook.display())))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| GitError(format!("cannot make {} executable: {e}", hook.display())))?;
    Ok(hook)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_lines_keep_their_numbers() {
        let patch = "\u{1e}commit abc\ndiff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -3,2 +3,3 @@\n ctx\n+added\n-removed\n ctx2\n";
        let h = parse(patch, true);
        assert_eq!(h.len(), 1);
        assert_eq!((h[0].start, h[0].file.as_str(), h[0].commit.as_deref()), (3, "x.py", Some("abc")));
        assert_eq!(h[0].text, "ctx\nadded\nctx2\n");
        assert!(h[0].added.contains(&4) && h[0].added.len() == 1);
    }

    #[test]
    fn a_removed_sql_comment_does_not_end_the_hunk() {
        let patch = "+++ b/q.sql\n@@ -1 +1,2 @@\n--- old comment\n+-- new comment\n+secret = 'x'\n";
        let h = parse(patch, false);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].text, "-- new comment\nsecret = 'x'\n");
        assert!(h[0].added.contains(&1) && h[0].added.contains(&2));
    }
}
