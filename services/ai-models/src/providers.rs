//! The providers' REST wire formats (Gemini `generateContent`, Anthropic Messages) and one HTTP call
//! path with retries: exponential backoff with jitter on 429/500/503/529 and connection failures,
//! at least `Retry-After`, never on 4xx client errors.

use std::time::Duration;

use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::keys::scrub;

/// Which API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Gemini,
    Anthropic,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Gemini => "gemini",
            Provider::Anthropic => "anthropic",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Provider::Gemini => "Gemini",
            Provider::Anthropic => "Anthropic",
        }
    }
}

/// What a generation returned.
#[derive(Debug, Clone)]
pub struct Reply {
    pub text: String,
    pub finish_reason: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub model_version: Option<String>,
    pub attempts: u32,
}

/// Retry settings.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base: Duration,
    pub max_backoff: Duration,
}

/// A failed call, with texts free of the key.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{provider} answered HTTP {status}: {message}{hint}")]
    Status {
        provider: &'static str,
        status: u16,
        message: String,
        hint: String,
        attempts: u32,
    },
    #[error("{provider} returned a response this service cannot read ({detail})")]
    Malformed {
        provider: &'static str,
        detail: String,
    },
    #[error("cannot reach {provider} at {url}: {detail}")]
    Network {
        provider: &'static str,
        url: String,
        detail: String,
    },
}

fn retryable(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 529)
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = policy.base.saturating_mul(1u32 << attempt.min(16));
    let jitter = rand::rng().random_range(0.5..1.0);
    exp.mul_f64(jitter).min(policy.max_backoff)
}

/// The provider's own error message from an error body, if it has one.
fn provider_message(body: &Value) -> Option<String> {
    body.pointer("/error/message")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn hint(provider: Provider, status: u16, key_file: &str) -> String {
    match status {
        401 | 403 => format!(" — check the API key in {key_file} (the file is re-read on change)"),
        404 => " — check the model name (listModels shows the configured ones)".to_owned(),
        429 => format!(
            " — {} is rate limiting or the quota is spent; retried with backoff",
            provider.title()
        ),
        529 => " — Anthropic is overloaded; retried with backoff".to_owned(),
        500..=599 => " — provider error; retried with backoff".to_owned(),
        _ => String::new(),
    }
}

/// Where a request goes and how it authenticates.
pub struct Endpoint<'a> {
    pub provider: Provider,
    pub url: &'a str,
    pub key: &'a SecretString,
    /// Where the key came from, named in errors about it.
    pub key_file: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
}

/// Sends `body` as JSON to the endpoint with the provider's auth header, retrying as the policy
/// says; returns the parsed JSON body of the first success and the number of attempts.
pub async fn post(
    http: &reqwest::Client,
    to: &Endpoint<'_>,
    body: &Value,
    policy: RetryPolicy,
) -> Result<(Value, u32), CallError> {
    let Endpoint {
        provider,
        url,
        key,
        key_file,
        headers: extra_headers,
    } = *to;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let mut req = http.post(url).json(body);
        req = match provider {
            Provider::Gemini => req.header("x-goog-api-key", key.expose_secret()),
            Provider::Anthropic => req.header("x-api-key", key.expose_secret()),
        };
        for (k, v) in extra_headers {
            req = req.header(*k, *v);
        }
        let sent = req.send().await;
        let last = attempt > policy.max_retries;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                let connect = e.is_connect();
                let detail = scrub(&e.without_url().to_string(), Some(key));
                if connect && !last {
                    tokio::time::sleep(backoff(&policy, attempt)).await;
                    continue;
                }
                return Err(CallError::Network {
                    provider: provider.title(),
                    url: url.to_owned(),
                    detail,
                });
            }
        };
        let status = resp.status().as_u16();
        let wait_hint = retry_after(resp.headers());
        let text = resp.text().await.unwrap_or_default();
        if (200..300).contains(&status) {
            let json: Value = serde_json::from_str(&text).map_err(|e| CallError::Malformed {
                provider: provider.title(),
                detail: format!("not JSON: {e}"),
            })?;
            return Ok((json, attempt));
        }
        let too_long = wait_hint.is_some_and(|ra| ra > policy.max_backoff);
        if retryable(status) && !last && !too_long {
            let b = backoff(&policy, attempt);
            let wait = wait_hint.map_or(b, |ra| ra.max(b));
            tracing::warn!(
                message = "Provider asked to retry.",
                provider = provider.name(),
                status,
                attempt,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            );
            tokio::time::sleep(wait).await;
            continue;
        }
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = provider_message(&parsed).unwrap_or_else(|| {
            let mut t = text.clone();
            t.truncate(t.floor_char_boundary(300));
            t
        });
        let status_for_hint = if status == 400 && message.contains("API key") {
            401
        } else {
            status
        };
        let mut hint = hint(provider, status_for_hint, key_file);
        if let Some(ra) = wait_hint {
            hint.push_str(&format!(
                " (the provider asks to retry after {} s)",
                ra.as_secs()
            ));
        }
        return Err(CallError::Status {
            provider: provider.title(),
            status,
            message: scrub(&message, Some(key)),
            hint,
            attempts: attempt,
        });
    }
}

/// Reads a Gemini `generateContent` response.
pub fn parse_gemini(v: &Value, attempts: u32) -> Result<Reply, CallError> {
    let malformed = |d: &str| CallError::Malformed {
        provider: "Gemini",
        detail: d.to_owned(),
    };
    let candidate = v.pointer("/candidates/0").ok_or_else(|| {
        match v
            .pointer("/promptFeedback/blockReason")
            .and_then(Value::as_str)
        {
            Some(r) => malformed(&format!("the prompt was blocked: {r}")),
            None => malformed("no candidates"),
        }
    })?;
    let text: String = candidate
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("")
        })
        .unwrap_or_default();
    let usage = v
        .get("usageMetadata")
        .ok_or_else(|| malformed("no usageMetadata"))?;
    let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
    Ok(Reply {
        text,
        finish_reason: candidate
            .get("finishReason")
            .and_then(Value::as_str)
            .map(str::to_owned),
        input_tokens: n("promptTokenCount"),
        output_tokens: n("candidatesTokenCount") + n("thoughtsTokenCount"),
        model_version: v
            .get("modelVersion")
            .and_then(Value::as_str)
            .map(str::to_owned),
        attempts,
    })
}

/// Reads an Anthropic Messages response.
pub fn parse_anthropic(v: &Value, attempts: u32) -> Result<Reply, CallError> {
    let malformed = |d: &str| CallError::Malformed {
        provider: "Anthropic",
        detail: d.to_owned(),
    };
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no content array"))?;
    let text = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("");
    let usage = v.get("usage").ok_or_else(|| malformed("no usage"))?;
    let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
    Ok(Reply {
        text,
        finish_reason: v
            .get("stop_reason")
            .and_then(Value::as_str)
            .map(str::to_owned),
        input_tokens: n("input_tokens")
            + n("cache_creation_input_tokens")
            + n("cache_read_input_tokens"),
        output_tokens: n("output_tokens"),
        model_version: v.get("model").and_then(Value::as_str).map(str::to_owned),
        attempts,
    })
}

/// A Gemini request body.
pub fn gemini_body(
    contents: Vec<(String, Vec<String>)>,
    system: Option<Vec<String>>,
    generation: Value,
    safety: Option<Value>,
) -> Value {
    let parts = |texts: Vec<String>| {
        texts
            .into_iter()
            .map(|text| json!({"text": text}))
            .collect::<Vec<_>>()
    };
    let mut body = json!({
        "contents": contents
            .into_iter()
            .map(|(role, texts)| json!({"role": role, "parts": parts(texts)}))
            .collect::<Vec<_>>(),
    });
    if let Some(s) = system {
        body["systemInstruction"] = json!({"parts": parts(s)});
    }
    if generation.as_object().is_some_and(|m| !m.is_empty()) {
        body["generationConfig"] = generation;
    }
    if let Some(s) = safety {
        body["safetySettings"] = s;
    }
    body
}

/// Anthropic's `content` (or `system`): one text as a string, several as text blocks.
pub fn anthropic_content(mut texts: Vec<String>) -> Value {
    if texts.len() == 1 {
        return json!(texts.remove(0));
    }
    Value::Array(
        texts
            .into_iter()
            .map(|text| json!({"type": "text", "text": text}))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_wire_formats_and_refuses_malformed_ones() {
        let g = json!({"candidates": [{"content": {"parts": [{"text": "Hel"}, {"text": "lo"}], "role": "model"}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}, "modelVersion": "gemini-2.5-flash"});
        let r = parse_gemini(&g, 1).unwrap();
        assert_eq!(
            (r.text.as_str(), r.input_tokens, r.output_tokens),
            ("Hello", 5, 2)
        );
        assert!(
            parse_gemini(&json!({"promptFeedback": {"blockReason": "SAFETY"}}), 1)
                .unwrap_err()
                .to_string()
                .contains("blocked: SAFETY")
        );
        let a = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
            "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn", "usage": {"input_tokens": 9, "output_tokens": 1}});
        let r = parse_anthropic(&a, 2).unwrap();
        assert_eq!(
            (r.text.as_str(), r.input_tokens, r.output_tokens, r.attempts),
            ("Hi", 9, 1, 2)
        );
        assert!(parse_anthropic(&json!({"type": "message"}), 1).is_err());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_retries: 5,
            base: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        assert!(backoff(&p, 1) <= Duration::from_millis(200));
        assert!(backoff(&p, 10) <= Duration::from_secs(1));
        assert!(retryable(529) && retryable(429) && !retryable(401) && !retryable(400));
    }
}
