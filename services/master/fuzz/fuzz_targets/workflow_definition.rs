//! Any text as a workflow definition (YAML or JSON): no panic, no stack overflow; what parses
//! either passes the static checks or is refused with reasons.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_master::workflow::definition::{check_static, parse};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(def) = parse(text)
        && let Err(reasons) = check_static(&def)
    {
        assert!(!reasons.is_empty());
    }
});
