//! Bounded tool output: text is cut at a character boundary and ends with a visible marker.

use rmcp::model::{CallToolResult, ContentBlock};

/// A tool error (`isError: true`) with a text a person can act on and a structured body a program
/// can branch on (`{"error": "blocked", …}`).
pub fn structured_error(text: impl Into<String>, body: serde_json::Value) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(text.into())]);
    result.structured_content = Some(body);
    result
}

/// Cuts `text` to at most `max` bytes (on a character boundary) and appends a marker saying how much
/// was dropped. Returns the text unchanged when it fits.
pub fn truncate_text(text: &str, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text.to_owned(), false);
    }
    let mut cut = max;
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let marker = format!(
        "\n…[truncated: showing {cut} of {} bytes; narrow the request (filters, limit, offset) to see the rest]",
        text.len()
    );
    (format!("{}{marker}", &text[..cut]), true)
}

/// Applies [`truncate_text`] to every text block of a tool result, with `max` bytes shared by all
/// blocks. Structured content is dropped when the text had to be cut, since it would no longer match.
pub fn bound_result(result: &mut CallToolResult, max: usize) -> bool {
    let mut budget = max;
    let mut truncated = false;
    for block in result.content.iter_mut() {
        let ContentBlock::Text(t) = block else {
            continue;
        };
        if t.text.len() > budget {
            let (cut, _) = truncate_text(&t.text, budget);
            t.text = cut;
            truncated = true;
            budget = 0;
        } else {
            budget -= t.text.len();
        }
    }
    if truncated {
        result.structured_content = None;
    }
    truncated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_char_boundaries_and_marks() {
        let (s, cut) = truncate_text("héllo wörld", 2);
        assert!(cut);
        assert!(s.starts_with('h'));
        assert!(s.contains("truncated: showing 1 of 13 bytes"));
        let (s, cut) = truncate_text("short", 10);
        assert!(!cut);
        assert_eq!(s, "short");
    }

    #[test]
    fn results_share_one_budget() {
        let mut r =
            CallToolResult::success(vec![ContentBlock::text("aaaa"), ContentBlock::text("bbbb")]);
        assert!(bound_result(&mut r, 6));
        let texts: Vec<_> = r
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        assert_eq!(texts[0], "aaaa");
        assert!(texts[1].starts_with("bb\n…[truncated"));
    }
}
