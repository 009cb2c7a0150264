//! `clab worker`: a process-pool worker. It reads one request line at a time on stdin,
//! computes it, and writes the reply line on stdout — the server's own protocol, so the IPC
//! cost is comparable to the network path and can be watched with `strace`.

use std::io::{self, BufRead, Write};

use crate::protocol::{MAX_LINE, Reply};
use crate::work::{self, Free};

/// Serves requests from `input` until it ends, one at a time.
pub fn serve(input: impl BufRead, mut output: impl Write, max_n: u32) -> io::Result<()> {
    // Cap each read so a runaway parent cannot make the worker buffer without bound.
    let mut input = input.take(0);
    let mut line = Vec::with_capacity(64);
    loop {
        line.clear();
        input.set_limit(MAX_LINE as u64 + 2);
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let reply = if line.last() != Some(&b'\n') && line.len() > MAX_LINE {
            // Not our parent's doing; say so and stop rather than guess where lines resume.
            writeln!(output, "{}", Reply::Error("line too long".into()))?;
            return output.flush();
        } else {
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            work::answer_copied(body, max_n, &mut Free)
        };
        writeln!(output, "{reply}")?;
        output.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_each_line_in_turn() {
        let mut output = Vec::new();
        serve(
            &b"fib 10\nspin 1\nbogus\necho a\nwork 0 0 0 3\n7"[..],
            &mut output,
            45,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(output).unwrap(),
            "55\nspun 1\nERR unknown command \"bogus\"\na\nworked xxx\n13\n"
        );
    }

    #[test]
    fn stops_at_an_overlong_line() {
        let mut input = vec![b'1'; MAX_LINE + 10];
        input.extend_from_slice(b"\nfib 1\n");
        let mut output = Vec::new();
        serve(&input[..], &mut output, 45).unwrap();
        assert_eq!(String::from_utf8(output).unwrap(), "ERR line too long\n");
    }
}
