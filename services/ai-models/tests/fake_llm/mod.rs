//! In-test fakes of the Gemini and Anthropic REST APIs (no provider is reachable here). They check
//! what the real APIs require — the model in the path, `x-goog-api-key`, `x-api-key` +
//! `anthropic-version`, the body fields — and answer in the real formats. Prompts steer failures:
//! `please 429` (one 429 with Retry-After: 1), `overloaded` (one 529), `500 always`, `malformed`.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Default)]
pub struct Seen {
    /// Arrival times per prompt text.
    pub arrivals: HashMap<String, Vec<Instant>>,
    pub requests: usize,
    /// The JSON body of every request that passed the key check, in order.
    pub bodies: Vec<Value>,
}

#[derive(Clone)]
pub struct Fake {
    pub url: String,
    pub gemini_key: String,
    pub anthropic_key: String,
    pub seen: Arc<Mutex<Seen>>,
}

fn err(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

fn gemini_err(code: u16, status: &str, message: &str) -> Response {
    err(
        code,
        json!({"error": {"code": code, "message": message, "status": status}}),
    )
}

fn anthropic_err(code: u16, kind: &str, message: &str) -> Response {
    err(
        code,
        json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

impl Fake {
    /// Counts the request and says how many times this prompt arrived.
    fn arrive(&self, prompt: &str, body: &Value) -> usize {
        let mut s = self.seen.lock().unwrap();
        s.requests += 1;
        s.bodies.push(body.clone());
        let v = s.arrivals.entry(prompt.to_owned()).or_default();
        v.push(Instant::now());
        v.len()
    }

    pub fn arrivals(&self, prompt: &str) -> Vec<Instant> {
        self.seen
            .lock()
            .unwrap()
            .arrivals
            .get(prompt)
            .cloned()
            .unwrap_or_default()
    }

    /// The body of the last request that reached a provider.
    pub fn last_body(&self) -> Value {
        self.seen
            .lock()
            .unwrap()
            .bodies
            .last()
            .cloned()
            .unwrap_or(Value::Null)
    }

    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().requests
    }
}

async fn gemini(
    State(f): State<Fake>,
    Path(rest): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Some(model) = rest.strip_suffix(":generateContent") else {
        return gemini_err(404, "NOT_FOUND", "unknown method");
    };
    let key = headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| q.get("key").cloned());
    if key.as_deref() != Some(f.gemini_key.as_str()) {
        return gemini_err(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
        );
    }
    let Ok(b) = serde_json::from_str::<Value>(&body) else {
        return gemini_err(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    let Some(contents) = b["contents"].as_array().filter(|c| !c.is_empty()) else {
        return gemini_err(
            400,
            "INVALID_ARGUMENT",
            "* GenerateContentRequest.contents: contents is not specified",
        );
    };
    for c in contents {
        let role_ok = matches!(c["role"].as_str(), Some("user" | "model"));
        let parts_ok = c["parts"]
            .as_array()
            .is_some_and(|p| p.iter().all(|p| p["text"].is_string()));
        if !role_ok || !parts_ok {
            return gemini_err(
                400,
                "INVALID_ARGUMENT",
                "Please use a valid role: user, model.",
            );
        }
    }
    if let Some(g) = b.get("generationConfig") {
        for k in g.as_object().unwrap().keys() {
            if ![
                "temperature",
                "maxOutputTokens",
                "topP",
                "topK",
                "stopSequences",
                "candidateCount",
            ]
            .contains(&k.as_str())
            {
                return gemini_err(
                    400,
                    "INVALID_ARGUMENT",
                    &format!("Invalid JSON payload received. Unknown name \"{k}\""),
                );
            }
        }
    }
    let prompt = contents.last().unwrap()["parts"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let n = f.arrive(&prompt, &b);
    if prompt == "please 429" && n == 1 {
        let mut r = gemini_err(
            429,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
        );
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        return r;
    }
    if prompt == "500 always" {
        return gemini_err(500, "INTERNAL", "An internal error has occurred.");
    }
    if prompt == "malformed" {
        return (StatusCode::OK, "{\"candidates\": [").into_response();
    }
    axum::Json(json!({
        "candidates": [{"content": {"parts": [{"text": format!("echo: {prompt}")}], "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 7, "totalTokenCount": 19},
        "modelVersion": model
    }))
    .into_response()
}

async fn anthropic(State(f): State<Fake>, headers: HeaderMap, body: String) -> Response {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if h("x-api-key").as_deref() != Some(f.anthropic_key.as_str()) {
        return anthropic_err(401, "authentication_error", "invalid x-api-key");
    }
    if h("anthropic-version").is_none() {
        return anthropic_err(
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        );
    }
    let Ok(b) = serde_json::from_str::<Value>(&body) else {
        return anthropic_err(400, "invalid_request_error", "invalid JSON");
    };
    if !b["model"].is_string() {
        return anthropic_err(400, "invalid_request_error", "model: Field required");
    }
    if !b["max_tokens"].is_u64() {
        return anthropic_err(400, "invalid_request_error", "max_tokens: Field required");
    }
    let Some(messages) = b["messages"].as_array().filter(|m| !m.is_empty()) else {
        return anthropic_err(
            400,
            "invalid_request_error",
            "messages: at least one message is required",
        );
    };
    if messages[0]["role"] != "user"
        || !messages
            .iter()
            .all(|m| matches!(m["role"].as_str(), Some("user" | "assistant")))
    {
        return anthropic_err(
            400,
            "invalid_request_error",
            "messages: roles must alternate, starting with user",
        );
    }
    // Content is a string or a list of blocks (the Messages API takes both).
    let content = &messages.last().unwrap()["content"];
    let prompt = match content.as_array() {
        Some(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        None => content.as_str().unwrap_or_default().to_owned(),
    };
    let n = f.arrive(&prompt, &b);
    if prompt == "overloaded" && n == 1 {
        return anthropic_err(529, "overloaded_error", "Overloaded");
    }
    axum::Json(json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": b["model"],
        "content": [{"type": "text", "text": format!("echo: {prompt}")}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 20, "output_tokens": 10}
    }))
    .into_response()
}

/// Starts both fakes on one loopback port.
pub async fn start(gemini_key: &str, anthropic_key: &str) -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = Fake {
        url: format!("http://{}", listener.local_addr().unwrap()),
        gemini_key: gemini_key.to_owned(),
        anthropic_key: anthropic_key.to_owned(),
        seen: Arc::default(),
    };
    let app = Router::new()
        .route("/v1beta/models/{*rest}", post(gemini))
        .route("/v1/messages", post(anthropic))
        .with_state(fake.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    fake
}
