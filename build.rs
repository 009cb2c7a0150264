//! Names the build for `clab --version` and every report: the commit it was built from
//! (with `-dirty` when the sources differ from it), the compiler, and the profile.

use std::path::Path;
use std::process::Command;

fn main() {
    let commit = commit().unwrap_or_else(|| "unknown commit".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let compiler =
        output(Command::new(rustc).arg("--version")).unwrap_or_else(|| "an unknown rustc".into());
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=CLAB_COMMIT={commit}");
    println!("cargo:rustc-env=CLAB_RUSTC={compiler}");
    println!("cargo:rustc-env=CLAB_PROFILE={profile}");
    // Again when the sources or the commit change; a clean clone of a tag says no `-dirty`.
    for watched in ["src", "build.rs", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={watched}");
    }
    if let Some(git_dir) = output(Command::new("git").args(["rev-parse", "--git-dir"])) {
        let git_dir = Path::new(&git_dir);
        for file in ["HEAD", "index", "packed-refs"] {
            println!("cargo:rerun-if-changed={}", git_dir.join(file).display());
        }
        if let Some(head) = output(Command::new("git").args(["symbolic-ref", "-q", "HEAD"])) {
            println!("cargo:rerun-if-changed={}", git_dir.join(head).display());
        }
    }
}

/// The short commit, `-dirty` if tracked files differ from it; `None` outside a git checkout.
fn commit() -> Option<String> {
    let hash = output(Command::new("git").args(["rev-parse", "--short=12", "HEAD"]))?;
    let dirty = Command::new("git")
        .args(["diff", "--quiet", "HEAD", "--"])
        .status()
        .map(|status| status.code() == Some(1))
        .unwrap_or(false);
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}

/// A command's standard output, trimmed, if it ran and succeeded.
fn output(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}
