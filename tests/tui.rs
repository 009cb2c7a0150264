//! The terminal views on a real terminal: tmux (120×40) runs `clab demo`, `clab top` and a
//! live `clab load`, and the screen is read back as text. Skipped, saying so, where tmux is
//! not installed (`.ci/run` installs it).

mod common;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{PATIENCE, Server, all_reaped, children, timing_lock};

/// A tmux server of the test's own (its own socket), killed when dropped, running one
/// command in a 120×40 window under a shell that writes down how it exited (tmux 3.3
/// sometimes leaves its pane's process a zombie, its status unread).
struct Tmux {
    socket: String,
    status: tempfile::TempDir,
}

impl Tmux {
    /// `None` when tmux is not installed.
    fn run(name: &str, command: &[&str]) -> Option<Tmux> {
        if clab::system::programs::on_path("tmux").is_none() {
            eprintln!("skipped: no tmux installed (`apt-get install tmux`)");
            return None;
        }
        let tmux = Tmux {
            socket: format!("clab-test-{}-{name}", std::process::id()),
            status: tempfile::tempdir().unwrap(),
        };
        let line = format!(
            "{}; echo $? > {}/status; sleep 60",
            command.join(" "),
            tmux.status.path().display()
        );
        tmux.tmux(&[
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            "40",
            "-s",
            "t",
            "-e",
            "RUST_LOG=warn",
            &line,
        ]);
        Some(tmux)
    }

    fn tmux(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t"])
    }

    /// The screen with its attributes as escape sequences (`capture-pane -e`).
    fn screen_escaped(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-e", "-t", "t"])
    }

    /// The screen, once `ready` says it shows what is waited for.
    fn screen_when(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "no {what} on screen:\n{screen}");
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The command's pid: the child of the pane's shell.
    fn pid(&self) -> u32 {
        let shell: u32 = self
            .tmux(&["list-panes", "-t", "t", "-F", "#{pane_pid}"])
            .trim()
            .parse()
            .expect("the pane's pid");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let [command] = children(shell)[..] {
                return command;
            }
            assert!(Instant::now() < deadline, "the shell started nothing");
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn keys(&self, keys: &str) {
        self.tmux(&["send-keys", "-t", "t", keys]);
    }

    /// The command's exit status, once it has exited.
    fn exit_status(&self) -> i32 {
        let path = self.status.path().join("status");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(status) = std::fs::read_to_string(&path)
                && let Ok(status) = status.trim().parse()
            {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running:\n{}",
                self.screen()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

/// The demo's caption, its lines joined as one text.
fn caption(screen: &str) -> String {
    screen
        .lines()
        .skip_while(|line| !line.contains("what is happening"))
        .skip(1)
        .take_while(|line| line.starts_with('│'))
        .map(|line| line.trim_matches('│').trim())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The number after `before` in `text`, up to the next space.
fn number_after(text: &str, before: &str) -> f64 {
    let at = text
        .find(before)
        .unwrap_or_else(|| panic!("no {before:?} in {text:?}"))
        + before.len();
    text[at..].split(' ').next().unwrap().parse().unwrap()
}

/// The share of the last second `thread` held the GIL, from its row in the threads table.
fn held_share(screen: &str, thread: &str) -> f64 {
    screen
        .lines()
        .filter_map(|line| line.strip_prefix('│')?.strip_prefix(thread))
        .find_map(|row| {
            let mut columns = row.split_whitespace();
            let now = columns.next()?;
            ["holding", "waiting", "released"]
                .contains(&now)
                .then(|| columns.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no row for {thread} in\n{screen}"))
}

#[test]
fn demo_convoy_shows_the_rate_collapse_and_the_hog_taking_the_gil() {
    let _timing = timing_lock();
    let clab = env!("CARGO_BIN_EXE_clab");
    let Some(tmux) = Tmux::run(
        "demo",
        &[clab, "demo", "convoy", "--joins-after", "2s", "--run", "8s"],
    ) else {
        return;
    };
    let demo = tmux.pid();
    // The caption, a second after the hog joined: the fall and who took the GIL.
    let screen = tmux.screen_when("caption a second after the hog joined", |screen| {
        let caption = caption(screen);
        caption.contains("held the GIL within") && caption.contains("joined 1.")
    });
    let caption = caption(&screen);
    let fall = number_after(&caption, "(−");
    assert!(
        fall > 90.0,
        "the tiny requests fell only {fall} %:\n{screen}"
    );
    let within = number_after(&caption, "held the GIL within ");
    assert!(within <= 1.0, "the hog took {within} s:\n{screen}");
    // Between two of its requests the hog's thread lets go for a moment, so what it shows
    // "now" may be either; its share of the last second is the mechanism.
    let hog = caption
        .split("The hog's thread (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no hog's thread named in {caption:?}"));
    let held = held_share(&screen, hog);
    assert!(held > 50.0, "the hog's thread held {held} %:\n{screen}");
    assert!(screen.contains("hog joined"), "{screen}");
    // q stops the server, reaps it and gives the terminal back.
    let server = children(demo);
    assert_eq!(server.len(), 1, "the demo's children: {server:?}");
    tmux.keys("q");
    assert_eq!(tmux.exit_status(), 0);
    all_reaped(&server, "the demo's server");
    tmux.screen_when("the terminal given back", |screen| {
        !screen.contains("what is happening")
    });
}

/// `clab top` on a terminal, watching a `threads --gil new` server that has computed once.
fn top_on_a_terminal(name: &str) -> Option<(Server, Tmux)> {
    top_on_a_terminal_with(name, &[], &[])
}

/// [`top_on_a_terminal`], run under `env` with `environment` (NAME=VALUE) and `options`.
fn top_on_a_terminal_with(
    name: &str,
    environment: &[&str],
    options: &[&str],
) -> Option<(Server, Tmux)> {
    let server = Server::start("threads", &["--gil", "new"]);
    assert_eq!(server.connect().request("fib 25"), "75025");
    let addr = server.addr.to_string();
    let mut command = vec!["env"];
    command.extend(environment);
    command.extend([env!("CARGO_BIN_EXE_clab"), "top", "--addr", &addr]);
    command.extend(options);
    let tmux = Tmux::run(name, &command)?;
    Some((server, tmux))
}

/// How many colours the escape sequences in `screen` set (SGR 30–38, 40–48, 90–107; not
/// 39 and 49, which go back to the terminal's own).
fn colours_set(screen: &str) -> usize {
    screen
        .split("\x1b[")
        .skip(1)
        .filter_map(|sequence| sequence.split_once('m').map(|(parameters, _)| parameters))
        .flat_map(|parameters| parameters.split(';'))
        .filter(|parameter| {
            parameter
                .parse::<u32>()
                .is_ok_and(|code| matches!(code, 30..=38 | 40..=48 | 90..=97 | 100..=107))
        })
        .count()
}

/// The dashboard is coloured, and not at all with NO_COLOR set or `--color never`.
#[test]
fn no_color_and_color_never_draw_the_dashboard_without_colour() {
    for (name, environment, options, coloured) in [
        ("top-colour", &[][..], &[][..], true),
        ("top-no-color", &["NO_COLOR=1"][..], &[][..], false),
        ("top-color-never", &[][..], &["--color", "never"][..], false),
    ] {
        let Some((_server, tmux)) = top_on_a_terminal_with(name, environment, options) else {
            return;
        };
        tmux.screen_when("dashboard", |screen| {
            screen.contains("requests/s") && screen.contains("who held the GIL")
        });
        let colours = colours_set(&tmux.screen_escaped());
        assert_eq!(colours > 0, coloured, "{name}: {colours} colours set");
        tmux.keys("q");
        assert_eq!(tmux.exit_status(), 0);
    }
}

#[test]
fn top_draws_the_dashboard_and_q_gives_the_terminal_back() {
    let Some((_server, tmux)) = top_on_a_terminal("top") else {
        return;
    };
    // The whole first frame, its last panel included: the screen may be read mid-draw.
    let screen = tmux.screen_when("dashboard", |screen| {
        screen.contains("requests/s") && screen.contains("who held the GIL")
    });
    assert!(screen.contains("GIL new (5.0 ms interval)"), "{screen}");
    tmux.keys("q");
    assert_eq!(tmux.exit_status(), 0);
    tmux.screen_when("the terminal given back", |screen| {
        !screen.contains("who held the GIL")
    });
}

#[test]
fn a_signal_ends_top_and_gives_the_terminal_back() {
    let Some((_server, tmux)) = top_on_a_terminal("top-signal") else {
        return;
    };
    tmux.screen_when("dashboard", |screen| screen.contains("requests/s"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tmux.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(tmux.exit_status(), 0);
    tmux.screen_when("the terminal given back", |screen| {
        !screen.contains("requests/s")
    });
}

#[test]
fn load_on_a_terminal_is_live_and_marks_the_hogs_arrival() {
    let server = Server::start("threads", &["--gil", "new"]);
    let clab = env!("CARGO_BIN_EXE_clab");
    let addr = server.addr.to_string();
    let Some(tmux) = Tmux::run(
        "load",
        &[
            clab,
            "load",
            "mix",
            "--addr",
            &addr,
            "--hog",
            "30",
            "--hog-after",
            "1s",
            "--duration",
            "3s",
            "--warmup",
            "0s",
        ],
    ) else {
        return;
    };
    let screen = tmux.screen_when("hog's arrival", |screen| {
        screen.contains("hog joined at 1.0 s")
    });
    assert!(screen.contains("requests/s, log scale"), "{screen}");
    assert!(screen.contains("rapid"), "{screen}");
    // At the end the live view gives way to the summary table.
    assert_eq!(tmux.exit_status(), 0);
    tmux.screen_when("the summary in place of the live view", |screen| {
        screen.contains("│ rapid ┆") && !screen.contains("log scale")
    });
}
