//! What a tool people install and script should do, checked on the real binary: a version
//! that names its build, completions a shell loads, a manual page, exit statuses in the
//! help, and every machine-readable output parsing as what it says it is.

mod common;

use std::process::Command;

use common::{PATIENCE, Server, clab, output_within};

fn stdout_of(args: &[&str]) -> String {
    let output = output_within(clab().args(args), PATIENCE);
    assert!(
        output.status.success(),
        "clab {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_version_names_the_commit_the_compiler_and_the_profile() {
    let version = stdout_of(&["--version"]);
    let commit = version
        .split("(commit ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no commit in {version:?}"));
    let hash = commit.strip_suffix("-dirty").unwrap_or(commit);
    assert!(
        hash == "unknown commit"
            || (hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit())),
        "{version:?}"
    );
    assert!(version.starts_with(&format!("clab {} (", env!("CARGO_PKG_VERSION"))));
    assert!(version.contains(", rustc ") && version.trim_end().ends_with(')'));
}

#[test]
fn bash_loads_the_completions() {
    if clab::system::programs::on_path("bash").is_none() {
        eprintln!("skipped: no bash");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("clab.bash");
    std::fs::write(&script, stdout_of(&["completions", "bash"])).unwrap();
    let output = output_within(
        Command::new("bash")
            .arg("-c")
            .arg(format!("source {}; complete -p clab", script.display())),
        PATIENCE,
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("_clab clab"), "{said}");
}

#[test]
fn the_manual_page_is_roff_with_every_subcommand() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH clab 1"), "{page}");
    for subcommand in [
        "serve",
        "load",
        "top",
        "demo",
        "lab",
        "worker",
        "completions",
    ] {
        assert!(page.contains(subcommand), "{subcommand} missing");
    }
}

#[test]
fn the_help_lists_the_exit_statuses() {
    let help = stdout_of(&["--help"]);
    for status in ["0 ", "1 ", "2 ", "3 ", "130, 143"] {
        assert!(
            help.contains(&format!("\n  {status}")),
            "{status:?} in {help}"
        );
    }
}

#[test]
fn lab_list_shows_each_claims_essay_and_rule_as_text_and_as_json() {
    let text = stdout_of(&["lab", "list"]);
    let json: serde_json::Value = serde_json::from_str(&stdout_of(&["lab", "list", "--json"]))
        .expect("lab list --json is JSON");
    let entries = json.as_array().unwrap();
    assert_eq!(entries.len(), clab::lab::catalogue().len());
    for (entry, experiment) in entries.iter().zip(clab::lab::catalogue()) {
        assert_eq!(entry["id"], experiment.id);
        assert_eq!(entry["essay"], experiment.essay);
        assert!(entry["rule"].as_str().is_some_and(|rule| !rule.is_empty()));
        assert!(entry["history"].is_array());
        assert!(text.contains(&format!("  essay: {}", experiment.essay)));
    }
    assert_eq!(text.matches("\n  rule:  ").count(), entries.len());
}

#[test]
fn load_writes_its_json_to_stdout_with_a_dash_and_the_summary_to_stderr() {
    let server = Server::start("threads", &[]);
    let output = output_within(
        clab()
            .args(["load", "rate", "--addr", &server.addr.to_string()])
            .args(["--connections", "1", "--request", "fib 1"])
            .args(["--warmup", "0s", "--duration", "300ms", "--json", "-"]),
        PATIENCE,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let result: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is the JSON alone");
    assert_eq!(result["schema"], "clab-load/1");
    assert!(!stderr.trim().is_empty(), "the summary goes to stderr");
}

#[test]
fn top_json_prints_one_object_per_refresh() {
    let server = Server::start("threads", &["--gil", "new"]);
    let output = output_within(
        clab()
            .args(["top", "--json", "--addr", &server.addr.to_string()])
            .args(["--interval", "100ms", "--duration", "500ms"]),
        PATIENCE,
    );
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 3, "{text}");
    for line in lines {
        let refresh: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert!(refresh["requests_per_s"].is_number(), "{line}");
        assert_eq!(refresh["gil"]["variant"], "new", "{line}");
    }
}
