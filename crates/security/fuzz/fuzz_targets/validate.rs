//! Any input: no panic, and the verdict is self-consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_security::{Category, Decision, validate_command};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let v = validate_command(s);
        assert_eq!(v.is_safe, v.decision == Decision::Allow);
        if v.category == Category::Blocked {
            assert_eq!(v.decision, Decision::Block);
        }
    }
});
