//! A bounded fuzzing campaign over the framing, the parser and the connection state machine,
//! driven exactly as a server drives them but without sockets: arbitrary bytes in arbitrary
//! reads never panic, never make a connection buffer without bound, and always come back as
//! whole reply lines. (cargo-fuzz needs a nightly toolchain, which these machines cannot
//! install; proptest runs on stable.)
//!
//! CI runs the default number of cases; for a longer campaign:
//! `PROPTEST_CASES=200000 cargo test --release --test fuzz_protocol`.

use std::sync::Arc;

use clab::protocol::MAX_LINE;
use clab::server::session::{Action, READ_CHUNK, Session};
use clab::server::{Model, ServerConfig, Service, Shutdown};
use clab::work::Free;
use proptest::prelude::*;

fn service() -> Arc<Service> {
    // A small max_n keeps any fib the fuzzer writes cheap.
    let config = ServerConfig::builder(Model::Serial)
        .max_n(20)
        .build()
        .unwrap();
    Service::new(config, Shutdown::new().unwrap()).unwrap()
}

/// Lines that look like the protocol (so the fuzzer reaches the parser's deeper branches),
/// mixed with arbitrary bytes.
fn chunk() -> impl Strategy<Value = Vec<u8>> {
    let shaped = prop_oneof![
        (0..30u32).prop_map(|n| format!("{n}\n")),
        (0..30u32).prop_map(|n| format!("fib {n}\r\n")),
        (0..3u64).prop_map(|ms| format!("spin {ms}\n")),
        (0..3u64).prop_map(|ms| format!("sleep {ms}\n")),
        "[ -~]{0,40}".prop_map(|text| format!("echo {text}\n")),
        Just("stats\n".to_string()),
        "[a-z ]{0,12}".prop_map(|text| format!("{text}\n")),
    ]
    .prop_map(String::into_bytes);
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..READ_CHUNK),
        2 => proptest::collection::vec(shaped, 1..20).prop_map(|lines| lines.concat()),
        1 => (1..20_000usize).prop_map(|n| vec![b'7'; n]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn sessions_survive_any_input(chunks in proptest::collection::vec(chunk(), 1..12), pending in any::<bool>()) {
        let service = service();
        let mut session = Session::new();
        let mut closed = false;
        for chunk in &chunks {
            // Reads come in at most READ_CHUNK bytes, as from a socket.
            for read in chunk.chunks(READ_CHUNK) {
                session.received(read);
                prop_assert!(session.buffered() <= MAX_LINE + READ_CHUNK, "buffered {}", session.buffered());
                loop {
                    match session.next_action(&service, &mut Free, || pending) {
                        Action::Write => {
                            let output = std::str::from_utf8(session.output());
                            prop_assert!(output.is_ok(), "replies are UTF-8");
                            let output = output.unwrap();
                            prop_assert!(output.ends_with('\n') && output.matches('\n').count() == 1, "one whole line: {output:?}");
                            session.written();
                        }
                        Action::Wait(_) | Action::Await(_) => {}
                        Action::Read => break,
                        Action::Close => {
                            closed = true;
                            break;
                        }
                    }
                }
                if closed {
                    break;
                }
            }
            if closed {
                break;
            }
        }
    }
}
