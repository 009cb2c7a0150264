//! The wire protocol shared by clients, the lab and process-pool workers
//! (`docs/protocol.md`).
//!
//! Requests and replies are single ASCII lines. This module parses and formats them and
//! frames a byte stream into lines; it does no I/O and holds no policy about sockets, so the
//! blocking and the async servers, the process-pool workers and the load generator share it.

use std::fmt;
use std::time::Duration;

/// The longest request line accepted, in bytes, not counting its terminator.
pub const MAX_LINE: usize = 4096;

/// The largest `fib` argument any server accepts: fib(93) no longer fits in a `u64`.
pub const HARD_MAX_N: u32 = 92;

/// The longest `spin` or `sleep` a client may ask for, so one request cannot occupy a
/// server for longer than a minute.
pub const MAX_MILLIS: u64 = 60_000;

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Naive doubly-recursive Fibonacci of `n`.
    Fib(u32),
    /// Busy CPU work for about this many milliseconds.
    Spin(u64),
    /// Wait without CPU for this many milliseconds.
    Sleep(u64),
    /// Reply with the text unchanged.
    Echo(String),
    /// Reply with the server's counters as one JSON object.
    Stats,
    /// Reply with the GIL's events after this time (nanoseconds on the lock's clock) as one
    /// JSON object: what `clab top` polls.
    Events(u64),
    /// One call of a profiled function: CPU work holding the interpreter lock, CPU work with
    /// it released, then a wait.
    Work(WorkProfile),
    /// One call of the workload the server was started with (`clab serve --workload`).
    Call,
}

/// The most bytes a profiled call may carry across a process boundary.
pub const MAX_WORK_BYTES: u32 = 16 << 20;

/// What one call of a function does, as `clab workload` measures it: how long it computes
/// holding the GIL, how long it computes with the GIL released (a C call that lets go),
/// how long it waits, and how many bytes cross when it runs in another process or
/// interpreter (its arguments and result, pickled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct WorkProfile {
    pub held: Duration,
    pub released: Duration,
    pub waiting: Duration,
    pub bytes: u32,
}

impl WorkProfile {
    /// Parses `HELD+RELEASED+WAITING[+BYTES]`: three durations, each at most [`MAX_MILLIS`],
    /// and a byte count (`1.8ms+0us+0us+120B`).
    pub fn parse(text: &str) -> Result<WorkProfile, String> {
        let parts: Vec<&str> = text.split('+').map(str::trim).collect();
        let (held, released, waiting, bytes) = match parts.as_slice() {
            [held, released, waiting] => (held, released, waiting, "0"),
            [held, released, waiting, bytes] => (held, released, waiting, *bytes),
            _ => {
                return Err(format!(
                    "{text:?} is not HELD+RELEASED+WAITING[+BYTES], such as 1.8ms+0us+0us+120B"
                ));
            }
        };
        let bytes = match bytes.strip_suffix('B').unwrap_or(bytes).parse::<u32>() {
            Ok(bytes) if bytes <= MAX_WORK_BYTES => bytes,
            _ => {
                return Err(format!(
                    "{bytes:?} in {text:?} is not a byte count up to {MAX_WORK_BYTES}"
                ));
            }
        };
        let duration = |part: &str| {
            humantime::parse_duration(part)
                .map_err(|e| format!("{part:?} in {text:?}: {e}"))
                .and_then(|length| {
                    if length <= Duration::from_millis(MAX_MILLIS) {
                        Ok(length)
                    } else {
                        Err(format!("{part:?} in {text:?} is over {MAX_MILLIS} ms"))
                    }
                })
        };
        Ok(WorkProfile {
            held: duration(held)?,
            released: duration(released)?,
            waiting: duration(waiting)?,
            bytes,
        })
    }

    /// The CPU a call takes, with the lock or without.
    pub fn computing(&self) -> Duration {
        self.held + self.released
    }
}

impl fmt::Display for WorkProfile {
    /// `HELD+RELEASED+WAITING+BYTES` in microseconds and bytes, as [`WorkProfile::parse`]
    /// reads it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = |length: Duration| length.as_micros();
        write!(
            f,
            "{}us+{}us+{}us+{}B",
            us(self.held),
            us(self.released),
            us(self.waiting),
            self.bytes
        )
    }
}

/// Why a request line was refused; its `Display` is the reason sent after `ERR `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("empty request")]
    Empty,
    #[error("request is not valid UTF-8")]
    NotUtf8,
    #[error("n must be an integer from 0 to {max_n}")]
    BadN { max_n: u32 },
    #[error("ms must be an integer from 0 to {MAX_MILLIS}")]
    BadMillis,
    #[error("µs must be an integer from 0 to {}", MAX_MILLIS * 1000)]
    BadMicros,
    #[error("bytes must be an integer from 0 to {MAX_WORK_BYTES}")]
    BadBytes,
    #[error("usage: {usage}")]
    Usage { usage: &'static str },
    #[error("unknown command \"{0}\"")]
    Unknown(String),
}

impl Request {
    /// Parses one request line (without its terminator; a trailing `\r` is allowed).
    /// `max_n` is the server's limit for `fib`.
    pub fn parse(line: &[u8], max_n: u32) -> Result<Request, RequestError> {
        let line = std::str::from_utf8(line).map_err(|_| RequestError::NotUtf8)?;
        let line = line.strip_suffix('\r').unwrap_or(line);
        // `echo` keeps its text byte for byte, so it is split off before any trimming.
        if let Some(text) = strip_keyword(line.trim_start(), "echo") {
            return Ok(Request::Echo(text.get(1..).unwrap_or_default().to_owned()));
        }
        let mut words = line.split_ascii_whitespace();
        let Some(first) = words.next() else {
            return Err(RequestError::Empty);
        };
        let rest: Vec<&str> = words.collect();
        let one_argument = |usage| match rest.as_slice() {
            [argument] => Ok(*argument),
            _ => Err(RequestError::Usage { usage }),
        };
        match first.to_ascii_lowercase().as_str() {
            "fib" => parse_n(one_argument("fib <n>")?, max_n),
            "spin" => parse_millis(one_argument("spin <ms>")?).map(Request::Spin),
            "sleep" => parse_millis(one_argument("sleep <ms>")?).map(Request::Sleep),
            "work" => match rest.as_slice() {
                [held, released, waiting, bytes @ ..] if bytes.len() <= 1 => {
                    Ok(Request::Work(WorkProfile {
                        held: parse_micros(held)?,
                        released: parse_micros(released)?,
                        waiting: parse_micros(waiting)?,
                        bytes: bytes.first().map_or(Ok(0), |bytes| parse_bytes(bytes))?,
                    }))
                }
                _ => Err(RequestError::Usage {
                    usage: "work <held_us> <released_us> <waiting_us> [<bytes>]",
                }),
            },
            "call" if rest.is_empty() => Ok(Request::Call),
            "call" => Err(RequestError::Usage { usage: "call" }),
            "stats" if rest.is_empty() => Ok(Request::Stats),
            "stats" => Err(RequestError::Usage { usage: "stats" }),
            "events" => one_argument("events <since_ns>")?
                .parse()
                .map(Request::Events)
                .map_err(|_| RequestError::Usage {
                    usage: "events <since_ns>",
                }),
            // A bare number is `fib <n>`, as the essays' clients send it; anything that
            // looks like a number (a sign, digits) gets the range message, not "unknown".
            _ if rest.is_empty() && looks_numeric(first) => parse_n(first, max_n),
            _ => Err(RequestError::Unknown(truncate(first, 40).to_owned())),
        }
    }
}

/// `Some(rest)` if `line` starts with `keyword` (any case) followed by a space, a tab or
/// nothing; `rest` still starts with that separator.
fn strip_keyword<'a>(line: &'a str, keyword: &str) -> Option<&'a str> {
    let head = line.get(..keyword.len())?;
    let rest = &line[keyword.len()..];
    let separated = rest.is_empty() || rest.starts_with([' ', '\t']);
    (head.eq_ignore_ascii_case(keyword) && separated).then_some(rest)
}

fn looks_numeric(word: &str) -> bool {
    let digits = word.strip_prefix(['-', '+']).unwrap_or(word);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn parse_n(word: &str, max_n: u32) -> Result<Request, RequestError> {
    match word.parse::<u32>() {
        Ok(n) if n <= max_n => Ok(Request::Fib(n)),
        _ => Err(RequestError::BadN { max_n }),
    }
}

fn parse_bytes(word: &str) -> Result<u32, RequestError> {
    match word.parse::<u32>() {
        Ok(bytes) if bytes <= MAX_WORK_BYTES => Ok(bytes),
        _ => Err(RequestError::BadBytes),
    }
}

fn parse_micros(word: &str) -> Result<Duration, RequestError> {
    match word.parse::<u64>() {
        Ok(us) if us <= MAX_MILLIS * 1000 => Ok(Duration::from_micros(us)),
        _ => Err(RequestError::BadMicros),
    }
}

fn parse_millis(word: &str) -> Result<u64, RequestError> {
    match word.parse::<u64>() {
        Ok(ms) if ms <= MAX_MILLIS => Ok(ms),
        _ => Err(RequestError::BadMillis),
    }
}

/// The first `max` bytes of `text`, cut at a character boundary, so an error message
/// never echoes a client's whole line back.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl fmt::Display for Request {
    /// The canonical request line, without a terminator.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Fib(n) => write!(f, "fib {n}"),
            Request::Spin(ms) => write!(f, "spin {ms}"),
            Request::Sleep(ms) => write!(f, "sleep {ms}"),
            Request::Echo(text) => write!(f, "echo {text}"),
            Request::Stats => f.write_str("stats"),
            Request::Events(since_ns) => write!(f, "events {since_ns}"),
            Request::Work(profile) => write!(
                f,
                "work {} {} {} {}",
                profile.held.as_micros(),
                profile.released.as_micros(),
                profile.waiting.as_micros(),
                profile.bytes
            ),
            Request::Call => f.write_str("call"),
        }
    }
}

/// A reply, as a server sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Fib(u64),
    Spun(u64),
    Slept(u64),
    Echo(String),
    /// `stats` and `events`: one JSON object.
    Json(String),
    /// A `work` or `call` done.
    Worked,
    Error(String),
}

impl fmt::Display for Reply {
    /// The reply line, without a terminator.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Fib(value) => write!(f, "{value}"),
            Reply::Spun(ms) => write!(f, "spun {ms}"),
            Reply::Slept(ms) => write!(f, "slept {ms}"),
            Reply::Echo(text) | Reply::Json(text) => f.write_str(text),
            Reply::Worked => f.write_str("worked"),
            Reply::Error(reason) => write!(f, "ERR {reason}"),
        }
    }
}

impl Reply {
    /// Reads the reply line `line` (without its newline) to `request`, as a process-pool
    /// worker sent it; a line that does not fit the request is an error reply.
    pub fn for_request(request: &Request, line: &str) -> Reply {
        let text = match ReplyLine::parse(line) {
            ReplyLine::Err(reason) => return Reply::Error(reason.to_owned()),
            ReplyLine::Ok(text) => text,
        };
        let expected = match request {
            Request::Fib(_) => return text.parse().map_or_else(|_| malformed(text), Reply::Fib),
            Request::Echo(_) => return Reply::Echo(text.to_owned()),
            Request::Stats | Request::Events(_) => return Reply::Json(text.to_owned()),
            Request::Spin(ms) => Reply::Spun(*ms),
            Request::Sleep(ms) => Reply::Slept(*ms),
            // A call that crossed a process boundary brings its bytes back after the word.
            Request::Work(_) | Request::Call if text.starts_with("worked ") => {
                return Reply::Worked;
            }
            Request::Work(_) | Request::Call => Reply::Worked,
        };
        if expected.to_string() == text {
            expected
        } else {
            malformed(text)
        }
    }
}

fn malformed(text: &str) -> Reply {
    Reply::Error(format!("malformed reply \"{}\"", truncate(text, 40)))
}

/// A reply line as a client sees it: a value, or `ERR <reason>`. Clients cannot tell the
/// kinds of successful reply apart without knowing the request, so they get the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyLine<'a> {
    Ok(&'a str),
    Err(&'a str),
}

impl<'a> ReplyLine<'a> {
    /// Reads one reply line (without its `\n`; a trailing `\r` is dropped).
    pub fn parse(line: &'a str) -> ReplyLine<'a> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        match line.strip_prefix("ERR ") {
            Some(reason) => ReplyLine::Err(reason),
            None => ReplyLine::Ok(line),
        }
    }
}

/// One item cut from the byte stream by [`LineFramer`].
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A request line, without its `\n`.
    Line(&'a [u8]),
    /// The client sent more than [`MAX_LINE`] bytes without a newline.
    TooLong,
}

/// Cuts a byte stream into request lines, holding at most one partial line.
///
/// The connection loop pushes what it reads, then takes lines until [`next_line`] says
/// none is complete. A partial line is a request too once the client has nothing more in
/// flight (the essays' clients send `b"30"` and wait); the loop tells when that is.
///
/// [`next_line`]: LineFramer::next_line
#[derive(Debug, Default)]
pub struct LineFramer {
    buffer: Vec<u8>,
    /// Where the unconsumed bytes start in `buffer`.
    start: usize,
    /// How far `buffer[start..]` is known to hold no newline, so a slow trickle of bytes
    /// is not rescanned from the start each time.
    scanned: usize,
}

impl LineFramer {
    pub fn new() -> LineFramer {
        LineFramer::default()
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        } else if self.start >= MAX_LINE {
            // Compact only now and then, so pipelined input is not shifted per line.
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes held for lines not yet taken (bounded by [`MAX_LINE`] plus the last push).
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// The next request line; `None` if more bytes are needed.
    ///
    /// A partial line (no newline yet) is returned as complete if `partial_is_complete()`
    /// says so; it is asked only when there is one. `TooLong` means the pending line has
    /// outgrown [`MAX_LINE`]: its bytes are dropped, and the connection should be closed.
    pub fn next_line(&mut self, partial_is_complete: impl FnOnce() -> bool) -> Option<Frame<'_>> {
        let pending = &self.buffer[self.start..];
        let (end, consumed) = match find_newline(&pending[self.scanned..]) {
            Some(offset) => (self.scanned + offset, self.scanned + offset + 1),
            None if pending.len() > MAX_LINE => (pending.len(), pending.len()),
            None if !pending.is_empty() && partial_is_complete() => (pending.len(), pending.len()),
            // Everything read has been taken: give the buffer back, so a connection that is
            // waiting for its next request holds none.
            None if pending.is_empty() => {
                *self = LineFramer::default();
                return None;
            }
            None => {
                self.scanned = pending.len();
                return None;
            }
        };
        let line_start = self.start;
        self.start += consumed;
        self.scanned = 0;
        if end > MAX_LINE {
            return Some(Frame::TooLong);
        }
        Some(Frame::Line(&self.buffer[line_start..line_start + end]))
    }
}

fn find_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(line: &str) -> Result<Request, RequestError> {
        Request::parse(line.as_bytes(), 45)
    }

    #[test]
    fn parses_every_request_kind() {
        assert_eq!(parse("30"), Ok(Request::Fib(30)));
        assert_eq!(parse("fib 20"), Ok(Request::Fib(20)));
        assert_eq!(parse("  FIB   7 \r"), Ok(Request::Fib(7)));
        assert_eq!(parse("spin 5"), Ok(Request::Spin(5)));
        assert_eq!(parse("sleep 10"), Ok(Request::Sleep(10)));
        assert_eq!(
            parse("echo hi there "),
            Ok(Request::Echo("hi there ".into()))
        );
        assert_eq!(parse("echo"), Ok(Request::Echo(String::new())));
        assert_eq!(parse("echo\t x"), Ok(Request::Echo(" x".into())));
        assert_eq!(parse("stats"), Ok(Request::Stats));
    }

    #[test]
    fn refuses_bad_requests_with_a_reason() {
        let bad_n = Err(RequestError::BadN { max_n: 45 });
        assert_eq!(parse("-1"), bad_n);
        assert_eq!(parse("46"), bad_n);
        assert_eq!(parse("fib x"), bad_n);
        assert_eq!(parse("99999999999999999999"), bad_n);
        assert_eq!(parse("fib").unwrap_err().to_string(), "usage: fib <n>");
        assert_eq!(parse("fib 1 2").unwrap_err().to_string(), "usage: fib <n>");
        assert_eq!(
            parse("abc").unwrap_err().to_string(),
            "unknown command \"abc\""
        );
        assert_eq!(
            parse("echoes").unwrap_err().to_string(),
            "unknown command \"echoes\""
        );
        assert_eq!(parse(""), Err(RequestError::Empty));
        assert_eq!(parse(" \t\r"), Err(RequestError::Empty));
        assert_eq!(parse("sleep 60001"), Err(RequestError::BadMillis));
        assert_eq!(
            parse("stats now"),
            Err(RequestError::Usage { usage: "stats" })
        );
        assert_eq!(parse("events 0"), Ok(Request::Events(0)));
        for bad in ["events", "events -1", "events soon", "events 1 2"] {
            assert_eq!(
                parse(bad),
                Err(RequestError::Usage {
                    usage: "events <since_ns>"
                }),
                "{bad}"
            );
        }
        assert_eq!(Request::parse(b"\xff\xfe", 45), Err(RequestError::NotUtf8));
    }

    #[test]
    fn a_profiled_call_parses_and_round_trips() {
        let profile = WorkProfile {
            held: Duration::from_micros(1800),
            released: Duration::ZERO,
            waiting: Duration::from_micros(5),
            bytes: 0,
        };
        assert_eq!(parse("work 1800 0 5"), Ok(Request::Work(profile)));
        assert_eq!(Request::Work(profile).to_string(), "work 1800 0 5 0");
        let crossing = WorkProfile {
            bytes: 120,
            ..profile
        };
        assert_eq!(parse("work 1800 0 5 120"), Ok(Request::Work(crossing)));
        assert_eq!(parse("work 1 2 3 -4"), Err(RequestError::BadBytes));
        assert_eq!(parse("CALL"), Ok(Request::Call));
        assert_eq!(
            parse("work 1 2"),
            Err(RequestError::Usage {
                usage: "work <held_us> <released_us> <waiting_us> [<bytes>]"
            })
        );
        assert_eq!(parse("work 1 -2 3"), Err(RequestError::BadMicros));
        assert_eq!(
            parse("call now"),
            Err(RequestError::Usage { usage: "call" })
        );
        assert_eq!(WorkProfile::parse(&profile.to_string()), Ok(profile));
        assert_eq!(WorkProfile::parse("1.8ms+0s+5us"), Ok(profile));
        assert_eq!(WorkProfile::parse("1.8ms+0s+5us+120B"), Ok(crossing));
        assert_eq!(
            Reply::for_request(&Request::Work(crossing), "worked xxx"),
            Reply::Worked
        );
        for bad in ["1ms+2ms", "1ms+x+0s", "61s+0s+0s", "1ms+0s+0s+lots"] {
            let error = WorkProfile::parse(bad).unwrap_err();
            assert!(error.contains(bad), "{bad}: {error}");
        }
    }

    #[test]
    fn an_unknown_command_is_quoted_briefly() {
        let long = "x".repeat(1000);
        let reason = parse(&long).unwrap_err().to_string();
        assert!(reason.len() < 60, "{reason}");
    }

    #[test]
    fn reply_lines_format_and_parse() {
        assert_eq!(Reply::Fib(832040).to_string(), "832040");
        assert_eq!(Reply::Spun(5).to_string(), "spun 5");
        assert_eq!(
            Reply::Error("empty request".into()).to_string(),
            "ERR empty request"
        );
        assert_eq!(
            ReplyLine::parse("ERR line too long"),
            ReplyLine::Err("line too long")
        );
        assert_eq!(ReplyLine::parse("55\r"), ReplyLine::Ok("55"));
    }

    #[test]
    fn reply_lines_are_read_for_their_request() {
        assert_eq!(Reply::for_request(&Request::Fib(10), "55"), Reply::Fib(55));
        assert_eq!(
            Reply::for_request(&Request::Spin(3), "spun 3"),
            Reply::Spun(3)
        );
        assert_eq!(
            Reply::for_request(&Request::Fib(10), "ERR worker died"),
            Reply::Error("worker died".into())
        );
        assert!(matches!(
            Reply::for_request(&Request::Fib(10), "spun 3"),
            Reply::Error(_)
        ));
        assert!(matches!(
            Reply::for_request(&Request::Sleep(1), "slept 2"),
            Reply::Error(_)
        ));
    }

    #[test]
    fn framer_splits_pipelined_lines_and_keeps_the_partial() {
        let mut framer = LineFramer::new();
        framer.push(b"1\r\nfib 2\n\nfib");
        let more_coming = || false;
        assert_eq!(framer.next_line(more_coming), Some(Frame::Line(b"1\r")));
        assert_eq!(framer.next_line(more_coming), Some(Frame::Line(b"fib 2")));
        assert_eq!(framer.next_line(more_coming), Some(Frame::Line(b"")));
        assert_eq!(framer.next_line(more_coming), None);
        framer.push(b" 3\n");
        assert_eq!(framer.next_line(more_coming), Some(Frame::Line(b"fib 3")));
        assert_eq!(
            framer.next_line(|| panic!("asked with no partial line")),
            None
        );
    }

    #[test]
    fn framer_hands_over_a_bare_request() {
        let mut framer = LineFramer::new();
        framer.push(b"30");
        assert_eq!(framer.next_line(|| true), Some(Frame::Line(b"30")));
        assert_eq!(framer.next_line(|| true), None);
    }

    #[test]
    fn framer_caps_the_line_length() {
        let mut framer = LineFramer::new();
        framer.push(&[b'a'; MAX_LINE]);
        assert_eq!(framer.next_line(|| false), None);
        framer.push(b"\n");
        assert!(matches!(framer.next_line(|| false), Some(Frame::Line(l)) if l.len() == MAX_LINE));
        framer.push(&[b'a'; MAX_LINE + 1]);
        assert_eq!(framer.next_line(|| true), Some(Frame::TooLong));
        assert_eq!(
            framer.next_line(|| true),
            None,
            "the long line's bytes are dropped"
        );
        let mut framer = LineFramer::new();
        framer.push(&[b'b'; 5000]);
        framer.push(b"\n");
        assert_eq!(framer.next_line(|| false), Some(Frame::TooLong));
    }

    fn request_strategy() -> impl Strategy<Value = Request> {
        prop_oneof![
            (0..=45u32).prop_map(Request::Fib),
            (0..=MAX_MILLIS).prop_map(Request::Spin),
            (0..=MAX_MILLIS).prop_map(Request::Sleep),
            "[ -~]{0,100}".prop_map(Request::Echo),
            Just(Request::Stats),
            any::<u64>().prop_map(Request::Events),
        ]
    }

    proptest! {
        #[test]
        fn parser_never_panics(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Request::parse(&line, HARD_MAX_N);
        }

        #[test]
        fn format_then_parse_round_trips(request in request_strategy()) {
            prop_assert_eq!(Request::parse(request.to_string().as_bytes(), 45), Ok(request));
        }

        #[test]
        fn error_replies_round_trip(reason in "[ -~]{1,80}") {
            let line = Reply::Error(reason.clone()).to_string();
            prop_assert_eq!(ReplyLine::parse(&line), ReplyLine::Err(&reason));
        }

        /// However the stream is cut into reads, the framer yields the same lines, and
        /// never holds more than one line plus one read.
        #[test]
        fn framing_is_independent_of_how_reads_are_cut(
            lines in proptest::collection::vec("[ -~]{0,60}", 0..30),
            cuts in proptest::collection::vec(1..50usize, 1..20),
        ) {
            let stream: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
            let mut framer = LineFramer::new();
            let mut seen = Vec::new();
            let mut rest = &stream[..];
            let mut cut = cuts.iter().cycle();
            while !rest.is_empty() {
                let n = (*cut.next().unwrap()).min(rest.len());
                framer.push(&rest[..n]);
                rest = &rest[n..];
                while let Some(frame) = framer.next_line(|| false) {
                    match frame {
                        Frame::Line(l) => seen.push(String::from_utf8(l.to_vec()).unwrap()),
                        Frame::TooLong => prop_assert!(false, "no line here is too long"),
                    }
                }
                prop_assert!(framer.buffer.len() <= 2 * MAX_LINE + 50);
            }
            prop_assert_eq!(seen, lines);
        }

        /// Arbitrary bytes in arbitrary reads never panic the framer and never make it
        /// buffer more than a capped line plus one read.
        #[test]
        fn framer_survives_arbitrary_bytes(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 0..10),
        ) {
            let mut framer = LineFramer::new();
            for (index, chunk) in chunks.iter().enumerate() {
                framer.push(chunk);
                prop_assert!(framer.buffer.len() - framer.start <= MAX_LINE + 3000);
                // Alternate between waiting for more and taking the partial line.
                while let Some(frame) = framer.next_line(|| index % 2 == 0) {
                    if let Frame::Line(line) = frame {
                        prop_assert!(line.len() <= MAX_LINE);
                        let _ = Request::parse(line, HARD_MAX_N);
                    }
                }
            }
        }
    }
}
