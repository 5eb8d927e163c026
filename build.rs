//! Bakes the git commit into the binary, for `--version` and the build_info metric.
//!
//! `LOGIN_ETL_GIT_COMMIT` wins (the Dockerfile passes it: the build context has no .git); else
//! `git rev-parse` of the checkout; else "unknown" (a source tarball).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=LOGIN_ETL_GIT_COMMIT");
    // A new commit changes HEAD, the branch file it points to, or packed-refs. Only paths that
    // exist are named: a missing one would make cargo rerun this script on every build.
    let mut watched = vec![".git/HEAD".to_string(), ".git/packed-refs".to_string()];
    if let Ok(head) = std::fs::read_to_string(".git/HEAD") {
        if let Some(branch) = head.trim().strip_prefix("ref: ") {
            watched.push(format!(".git/{branch}"));
        }
    }
    for path in watched.iter().filter(|p| std::path::Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
    let commit = std::env::var("LOGIN_ETL_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());
    let short: String = commit.trim().chars().take(12).collect();
    println!("cargo:rustc-env=LOGIN_ETL_GIT_COMMIT={short}");
}

fn git_commit() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|c| !c.is_empty())
}
