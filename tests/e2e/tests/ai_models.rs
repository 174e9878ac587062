//! ai-models behind master against the fake providers (no provider is reachable here): the seed's
//! dotted name and the wire name both answer with text, usage and cost; getUsage adds up.

mod common;
#[path = "../../../services/ai-models/tests/fake_llm/mod.rs"]
mod fake_llm;

use common::*;
use mcp_runtime::{ConfigDoc, ShutdownToken};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generate_content_through_master_reports_usage_and_cost() {
    let fake = fake_llm::start("gemini-test-key", "anthropic-test-key").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("g"), "gemini-test-key").unwrap();
    std::fs::write(dir.path().join("a"), "anthropic-test-key").unwrap();
    let text = format!(
        "[ai_models.gemini]\nenabled = true\nbase_url = {url:?}\napi_key_file = {g:?}\nmodels = []\ndefault_model = \"gemini-2.5-flash\"\napi_version = \"\"\nprices = {{ \"gemini-2.5-flash\" = {{ input_per_mtok = 0.30, output_per_mtok = 2.50 }} }}\n\n[ai_models.anthropic]\nenabled = true\nbase_url = {url:?}\napi_key_file = {a:?}\nmodels = []\ndefault_model = \"claude-haiku-4-5\"\napi_version = \"2023-06-01\"\nprices = {{}}\n",
        url = fake.url,
        g = dir.path().join("g").display().to_string(),
        a = dir.path().join("a").display().to_string(),
    );
    let doc = ConfigDoc::from_str(&text, "test").unwrap();
    let shutdown = ShutdownToken::new();
    let ai = mcp_runtime::start::<mcp_ai_models::AiModels>(&doc, server_config(), shutdown.clone())
        .await
        .unwrap();
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
    shutdown.cancel();
}
