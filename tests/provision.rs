//! `python/provision` on a pyenv root of its own making: it refuses a tarball whose checksum
//! is not the one pyenv's definition expects, keeps an interpreter already built, and says
//! each in one line — without fetching or building anything.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A pyenv root with definitions of 3.13.5 and 3.13.5t expecting `sha256` for the tarball.
fn pyenv_root(sha256: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let definitions = root.path().join("plugins/python-build/share/python-build");
    std::fs::create_dir_all(&definitions).unwrap();
    std::fs::write(
        definitions.join("3.13.5"),
        format!(
            "install_package \"Python-3.13.5\" \"https://www.python.org/ftp/python/3.13.5/Python-3.13.5.tar.xz#{sha256}\" standard\n"
        ),
    )
    .unwrap();
    std::fs::write(
        definitions.join("3.13.5t"),
        "export PYTHON_BUILD_FREE_THREADING=1\n",
    )
    .unwrap();
    root
}

fn provision(root: &Path, tarball: &Path) -> (i32, String, String) {
    let mut command = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/python/provision"));
    command
        .env("PYENV_ROOT", root)
        .arg("--tarball")
        .arg(tarball);
    let output = common::output_within(&mut command, Duration::from_secs(30));
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn sha256(path: &Path) -> String {
    let output =
        common::output_within(Command::new("sha256sum").arg(path), Duration::from_secs(10));
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn a_tarball_with_another_checksum_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("Python-3.13.5.tar.xz");
    std::fs::write(&tarball, b"not CPython").unwrap();
    let root = pyenv_root(&"0".repeat(64));
    let (status, stdout, stderr) = provision(root.path(), &tarball);
    assert_eq!(status, 1, "{stdout}{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("provision: refused Python-3.13.5.tar.xz: its sha256 ")
            && stderr.contains(&format!("is not the {} pyenv", "0".repeat(64))),
        "{stderr}"
    );
    // Nothing reached pyenv's cache.
    assert!(!root.path().join("cache").exists());
}

#[test]
fn an_interpreter_already_built_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("python3.13_3.13.5.orig.tar.xz");
    std::fs::write(&tarball, b"a tarball").unwrap();
    let root = pyenv_root(&sha256(&tarball));
    // An "interpreter" that answers the free-threading question as a 3.13t does.
    let bin = root.path().join("versions/3.13.5t/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let python = bin.join("python");
    std::fs::write(&python, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&python, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (status, stdout, stderr) = provision(root.path(), &tarball);
    assert_eq!(status, 0, "{stdout}{stderr}");
    assert_eq!(
        stdout.trim(),
        "provision: kept CPython 3.13.5t (free-threaded), already in pyenv's versions; the tarball checks"
    );
}

#[test]
fn a_tarball_of_no_version_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("python.tar.xz");
    std::fs::write(&tarball, b"?").unwrap();
    let root = pyenv_root(&"0".repeat(64));
    let (status, _, stderr) = provision(root.path(), &tarball);
    assert_eq!(status, 1);
    assert_eq!(
        stderr.trim(),
        "provision: cannot tell a CPython 3.13 version from the name python.tar.xz"
    );
}
