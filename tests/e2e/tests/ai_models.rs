//! ai-models behind master against the fake providers (no provider is reachable here): the seed's
//! dotted name and the wire name both answer with text, usage and cost; getUsage adds up.

mod common;
#[path = "../../../services/ai-models/tests/fake_llm/mod.rs"]
mod fake_llm;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generate_content_through_master_reports_usage_and_cost() {
    let fake = fake_llm::start("gemini-test-key", "anthropic-test-key").await;
    let ai = start_ai_models(&fake.url).await;
    let master = start_master(
        &downstream("ai_models", None, "http", &ai.url("/mcp")),
        server_config(),
    )
    .await;
    let c = mcp_client(&master.url("/mcp")).await;
    for name in [
        "ai_models_gemini_generateContent",
        "ai.models.gemini.generateContent",
    ] {
        let r = c
            .call_tool(call(name, json!({"prompt": "status report"})))
            .await
            .unwrap();
        assert_ne!(r.is_error, Some(true), "{name}: {}", text_of(&r));
        let s = r.structured_content.unwrap();
        assert_eq!(s["text"], "echo: status report");
        assert_eq!(s["usage"]["total_tokens"], 19);
        assert!(s["cost_usd"].as_f64().unwrap() > 0.0, "{s}");
    }
    let r = c
        .call_tool(call(
            "ai_models_anthropic_createMessage",
            json!({"messages": [{"role": "user", "text": "hi"}]}),
        ))
        .await
        .unwrap();
    let s = r.structured_content.unwrap();
    assert_eq!(
        s["cost_usd"],
        serde_json::Value::Null,
        "no price configured"
    );
    assert!(s["cost_note"].as_str().unwrap().contains("no price"));
    let r = c
        .call_tool(call("ai_models_getUsage", json!({"provider": "gemini"})))
        .await
        .unwrap();
    let u = r.structured_content.unwrap();
    assert_eq!(u["total"]["calls"], 2);
    assert_eq!(u["total"]["input_tokens"], 24);
    c.cancel().await.unwrap();
}
