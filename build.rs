//! Records the git revision assay was built from (written into every job's record).

use std::process::Command;

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let revision = match git(&["rev-parse", "HEAD"]) {
        Some(rev) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{rev}-dirty")
            } else {
                rev
            }
        }
        None => "unknown".to_string(),
    };
    println!("cargo:rustc-env=ASSAY_GIT_REVISION={revision}");
    // The revision changes with HEAD or the branch it names; "-dirty" with the binary's sources. Not
    // `.git/index`: `git status` rewrites it, and a fresh clone would build twice.
    // (Only paths that exist: cargo takes a missing one as changed on every build.)
    let mut watched = vec![".git/HEAD".to_string(), ".git/packed-refs".to_string()];
    if let Some(branch) = std::fs::read_to_string(".git/HEAD")
        .ok()
        .and_then(|h| h.strip_prefix("ref: ").map(|r| r.trim().to_string()))
    {
        watched.push(format!(".git/{branch}"));
    }
    watched.extend(["src", "Cargo.toml", "Cargo.lock", "build.rs"].map(String::from));
    for path in watched {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
