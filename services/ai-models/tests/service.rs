//! The `mcp-ai-models` binary against fake Gemini and Anthropic servers: generations with usage and
//! cost, retries honouring Retry-After, no retry on bad keys, allow-lists, budgets, usage sums, and
//! canary keys that never reach logs (at debug level), metrics or errors.

mod fake_llm;

use std::time::Duration;

use mcp_test_support::{ServiceProcess, client, free_port, structured as sc, text, tool};
use serde_json::{Value, json};

const GEMINI_KEY: &str = "CANARY-gemini-key-5f1a";
const ANTHROPIC_KEY: &str = "CANARY-anthropic-key-9c2e";

async fn start(fake: &fake_llm::Fake, keys: bool, extra: &str) -> ServiceProcess {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    if keys {
        std::fs::write(dir.path().join("gemini_api_key"), format!("{GEMINI_KEY}\n")).unwrap();
        std::fs::write(dir.path().join("anthropic_api_key"), ANTHROPIC_KEY).unwrap();
    }
    let port = free_port();
    let config = format!(
        "[server]\nport = {port}\nlog_level = \"debug\"\n\n[ai_models]\nmax_retries = 2\nretry_base_ms = 50\nmax_backoff_secs = 5\n{extra}\n\n[ai_models.gemini]\nenabled = true\nbase_url = \"{url}\"\napi_key_file = \"{d}/gemini_api_key\"\nmodels = [\"gemini-2.5-flash\"]\ndefault_model = \"gemini-2.5-flash\"\napi_version = \"\"\n[ai_models.gemini.prices]\n\"gemini-2.5-flash\" = {{ input_per_mtok = 0.30, output_per_mtok = 2.50 }}\n\n[ai_models.anthropic]\nenabled = true\nbase_url = \"{url}\"\napi_key_file = \"{d}/anthropic_api_key\"\nmodels = [\"claude-sonnet-4-5\", \"claude-haiku-4-5\"]\ndefault_model = \"claude-sonnet-4-5\"\napi_version = \"2023-06-01\"\n[ai_models.anthropic.prices]\n\"claude-sonnet-4-5\" = {{ input_per_mtok = 3.0, output_per_mtok = 15.0 }}\n",
        url = fake.url
    );
    ServiceProcess::spawn(env!("CARGO_BIN_EXE_mcp-ai-models"), dir, port, &config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generations_retries_usage_and_keys_that_never_leak() {
    let fake = fake_llm::start(GEMINI_KEY, ANTHROPIC_KEY).await;
    let svc = start(&fake, true, "").await;
    let c = client(&svc.url("/mcp"), None).await;
    let mut errors = Vec::new();

    let r = tool(&c, "listModels", json!({})).await;
    assert_eq!(sc(&r)["providers"][0]["key_present"], true, "{}", text(&r));

    let r = tool(&c, "gemini_generateContent", json!({"prompt": "hello", "temperature": 0.2, "max_output_tokens": 50, "system_instruction": "be brief"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let s = sc(&r);
    assert_eq!(s["text"], "echo: hello");
    assert_eq!(s["finish_reason"], "STOP");
    assert_eq!(
        s["usage"],
        json!({"input_tokens": 12, "output_tokens": 7, "total_tokens": 19})
    );
    let expected = (12.0 * 0.30 + 7.0 * 2.50) / 1e6;
    assert!(
        (s["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-12,
        "{s}"
    );

    let r = tool(
        &c,
        "anthropic_createMessage",
        json!({"prompt": "hi", "system": "terse", "max_tokens": 64}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert_eq!(sc(&r)["text"], "echo: hi");
    assert_eq!(sc(&r)["finish_reason"], "end_turn");
    assert!(
        (sc(&r)["cost_usd"].as_f64().unwrap() - (20.0 * 3.0 + 10.0 * 15.0) / 1e6).abs() < 1e-12
    );

    // 429 with Retry-After: 1, then success; 529 overloaded, then success.
    let r = tool(
        &c,
        "gemini_generateContent",
        json!({"prompt": "please 429"}),
    )
    .await;
    assert_eq!(sc(&r)["attempts"], 2, "{}", text(&r));
    let t = fake.arrivals("please 429");
    assert!(
        t[1] - t[0] >= Duration::from_millis(990),
        "retried after {:?}",
        t[1] - t[0]
    );
    let r = tool(
        &c,
        "anthropic_createMessage",
        json!({"prompt": "overloaded"}),
    )
    .await;
    assert_eq!(sc(&r)["attempts"], 2, "{}", text(&r));

    // Persistent 500: max_retries + 1 attempts, then a clear error.
    let r = tool(
        &c,
        "gemini_generateContent",
        json!({"prompt": "500 always"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).contains("HTTP 500") && text(&r).contains("An internal error"),
        "{}",
        text(&r)
    );
    assert_eq!(fake.arrivals("500 always").len(), 3);
    errors.push(text(&r));
    let r = tool(&c, "gemini_generateContent", json!({"prompt": "malformed"})).await;
    assert!(text(&r).contains("cannot read"), "{}", text(&r));
    errors.push(text(&r));

    // Models outside the allow-list never reach the provider.
    let before = fake.requests();
    let r = tool(
        &c,
        "anthropic_createMessage",
        json!({"prompt": "x", "model": "claude-opus-4-1"}),
    )
    .await;
    assert!(
        text(&r).contains("not allowed") && text(&r).contains("claude-haiku-4-5"),
        "{}",
        text(&r)
    );
    let r = tool(
        &c,
        "gemini_generateContent",
        json!({"contents": [{"role": "assistant", "text": "x"}]}),
    )
    .await;
    assert!(text(&r).contains("role `assistant`"), "{}", text(&r));
    assert_eq!(fake.requests(), before);

    // A wrong key: no retry, the key file named, the key itself nowhere.
    std::fs::write(svc.path("anthropic_api_key"), "CANARY-wrong-key-0000").unwrap();
    let r = tool(
        &c,
        "anthropic_createMessage",
        json!({"prompt": "with wrong key"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    let t = text(&r);
    assert!(t.contains("401") && t.contains("anthropic_api_key"), "{t}");
    assert!(
        fake.arrivals("with wrong key").is_empty(),
        "the fake refuses before counting"
    );
    errors.push(t);
    std::fs::write(svc.path("gemini_api_key"), "CANARY-wrong-gemini-0000").unwrap();
    let r = tool(
        &c,
        "gemini_generateContent",
        json!({"prompt": "wrong gemini key"}),
    )
    .await;
    assert!(
        text(&r).contains("API key not valid") && text(&r).contains("gemini_api_key"),
        "{}",
        text(&r)
    );
    errors.push(text(&r));
    // Re-read on change: the right key works again without a restart.
    std::fs::write(svc.path("anthropic_api_key"), ANTHROPIC_KEY).unwrap();
    let r = tool(
        &c,
        "anthropic_createMessage",
        json!({"prompt": "key is back"}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));

    // Usage: five successful calls.
    let r = tool(&c, "getUsage", json!({})).await;
    let u = sc(&r);
    assert_eq!(u["total"]["calls"], 5, "{u}");
    assert_eq!(u["total"]["input_tokens"], 12 * 2 + 20 * 3);
    assert_eq!(u["by_provider"]["gemini"]["calls"], 2);
    assert_eq!(u["by_provider"]["anthropic"]["output_tokens"], 30);
    let cost = u["total"]["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - (2.0 * expected + 3.0 * (20.0 * 3.0 + 10.0 * 15.0) / 1e6)).abs() < 1e-12,
        "{u}"
    );

    let metrics = mcp_test_support::metrics(&svc.url("/metrics")).await;
    assert!(
        metrics.contains(
            r#"mcp_llm_tokens_total{kind="input",model="gemini-2.5-flash",provider="gemini"} 24"#
        ),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("mcp_llm_cost_usd_total{model=\"claude-sonnet-4-5\",provider=\"anthropic\"}")
    );
    c.cancel().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = svc.log();
    assert!(
        log.contains(r#""level":"DEBUG""#),
        "the log was not at debug level"
    );
    assert!(log.contains("LLM call finished."));
    for key in [
        GEMINI_KEY,
        ANTHROPIC_KEY,
        "CANARY-wrong-key-0000",
        "CANARY-wrong-gemini-0000",
    ] {
        assert!(!log.contains(key), "log contains {key}");
        assert!(!metrics.contains(key), "metrics contain {key}");
        for e in &errors {
            assert!(!e.contains(key), "error contains {key}: {e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_keys_degrade_health_and_budgets_stop_spending() {
    let fake = fake_llm::start(GEMINI_KEY, ANTHROPIC_KEY).await;
    let svc = start(&fake, false, "daily_budget_usd = 0.00001").await;
    let health: Value = reqwest::get(svc.url("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["checks"]["gemini"]["details"]["key_present"], false);
    let c = client(&svc.url("/mcp"), None).await;
    let r = tool(&c, "gemini_generateContent", json!({"prompt": "x"})).await;
    assert!(
        text(&r).contains("no gemini API key") && text(&r).contains("GEMINI_API_KEY_FILE"),
        "{}",
        text(&r)
    );

    // Keys arrive: the next call reads them. The budget allows the first call, then refuses.
    std::fs::write(svc.path("anthropic_api_key"), ANTHROPIC_KEY).unwrap();
    let r = tool(&c, "anthropic_createMessage", json!({"prompt": "first"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let r = tool(&c, "anthropic_createMessage", json!({"prompt": "second"})).await;
    assert!(text(&r).contains("daily budget"), "{}", text(&r));
    assert!(fake.arrivals("second").is_empty());
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_own_argument_shapes_reach_them_as_their_wire_bodies() {
    let fake = fake_llm::start(GEMINI_KEY, ANTHROPIC_KEY).await;
    let svc = start(&fake, true, "").await;
    let c = client(&svc.url("/mcp"), None).await;

    // Gemini's own request: contents with parts, systemInstruction, generationConfig, safetySettings.
    let r = tool(
        &c,
        "gemini_generateContent",
        json!({
            "contents": [
                {"role": "user", "parts": [{"text": "first"}]},
                {"role": "model", "parts": [{"text": "ok"}]},
                {"role": "user", "parts": [{"text": "native gemini"}]}
            ],
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "generationConfig": {"temperature": 0.1, "maxOutputTokens": 40, "topK": 5},
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
        }),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert_eq!(sc(&r)["text"], "echo: native gemini");
    assert_eq!(
        fake.last_body(),
        json!({
            "contents": [
                {"role": "user", "parts": [{"text": "first"}]},
                {"role": "model", "parts": [{"text": "ok"}]},
                {"role": "user", "parts": [{"text": "native gemini"}]}
            ],
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "generationConfig": {"temperature": 0.1, "maxOutputTokens": 40, "topK": 5},
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
        })
    );
    // The simple names still work, and fill the same wire fields.
    let r = tool(
        &c,
        "gemini_generateContent",
        json!({"prompt": "simple", "system_instruction": "terse", "top_p": 0.5}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert_eq!(
        fake.last_body(),
        json!({
            "contents": [{"role": "user", "parts": [{"text": "simple"}]}],
            "systemInstruction": {"parts": [{"text": "terse"}]},
            "generationConfig": {"topP": 0.5}
        })
    );

    // Anthropic's Messages API: string and block content, system as blocks, max_tokens.
    let r = tool(
        &c,
        "anthropic_createMessage",
        json!({
            "messages": [
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
                {"role": "user", "content": [{"type": "text", "text": "native "}, {"type": "text", "text": "anthropic"}]}
            ],
            "system": [{"type": "text", "text": "be terse"}],
            "max_tokens": 77,
            "top_k": 3
        }),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert_eq!(sc(&r)["text"], "echo: native anthropic");
    assert_eq!(
        fake.last_body(),
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 77,
            "top_k": 3,
            "system": "be terse",
            "messages": [
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "hi"},
                {"role": "user", "content": [{"type": "text", "text": "native "}, {"type": "text", "text": "anthropic"}]}
            ]
        })
    );

    // Wrong shapes answer with the expected shape, never reaching a provider.
    let before = fake.requests();
    let r = tool(
        &c,
        "gemini_generateContent",
        json!({"contents": "just a string"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    let t = text(&r);
    assert!(
        t.starts_with("invalid arguments for `gemini_generateContent`: invalid type: string \"just a string\", expected a sequence. Expected arguments: {"),
        "{t}"
    );
    assert!(
        t.contains("contents?: [{role: string, content?: string | [{text: string, type?: string}], parts?: [{text: string, type?: string}], text?: string}]"),
        "{t}"
    );
    assert!(!t.contains("failed to deserialize"), "{t}");
    let r = tool(
        &c,
        "anthropic_createMessage",
        json!({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    let t = text(&r);
    assert!(t.contains("only text blocks"), "{t}");
    let r = tool(
        &c,
        "anthropic_createMessage",
        json!({"messages": [{"role": "user", "content": 5}]}),
    )
    .await;
    let t = text(&r);
    assert!(
        t.contains("a string, or a list of text blocks [{\"type\": \"text\", \"text\": \"...\"}] (only text blocks are supported)"),
        "{t}"
    );
    let r = tool(
        &c,
        "gemini_generateContent",
        json!({"prompt": "x", "temperature": 0.2, "generationConfig": {"temperature": 0.3}}),
    )
    .await;
    assert!(
        text(&r).contains("give `temperature` or `generationConfig.temperature`, not both"),
        "{}",
        text(&r)
    );
    assert_eq!(fake.requests(), before);
}
