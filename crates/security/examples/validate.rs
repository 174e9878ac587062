//! Prints the validator's verdict for each argument: `cargo run -p mcp-security --example validate -- 'ls -la'`.

fn main() {
    for cmd in std::env::args().skip(1) {
        let v = mcp_security::validate_command(&cmd);
        println!("{cmd:?}\n  {:?} {} — {}", v.decision, v.category, v.reason);
    }
}
