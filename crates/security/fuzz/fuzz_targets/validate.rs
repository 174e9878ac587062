//! Any input: no panic, and the verdict is self-consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_security::{Category, Decision, validate_command};

fuzz_target!(
    init: {
        // libfuzzer-sys aborts on every panic, even one caught on purpose: the validator catches
        // its parser's (brush-parser 0.4 panics on an overflowing redirect fd, `8544444444447<7`)
        // and refuses the command. A quiet hook keeps a panic that escapes the validator fatal
        // (libfuzzer-sys still aborts when the target unwinds) without counting the caught ones.
        std::panic::set_hook(Box::new(|_| {}));
    },
    |data: &[u8]| {
        if let Ok(s) = std::str::from_utf8(data) {
            let v = validate_command(s);
            assert_eq!(v.is_safe, v.decision == Decision::Allow);
            if v.category == Category::Blocked {
                assert_eq!(v.decision, Decision::Block);
            }
        }
    }
);
