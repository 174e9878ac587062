//! Stage 5 of the pipeline for downstream tools: one call sent to a service on behalf of a caller,
//! with master's signed identity, the caller's trace as a child span, progress relayed under the
//! client's own token, cancellation passed on, and retry only where it is safe (read-only or
//! idempotent tools, after a connection failure). Approved calls go through here too.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mcp_runtime::assertion::IDENTITY_META_KEY;
use mcp_runtime::auth::Identity;
use rand::Rng;
use rmcp::model::*;
use rmcp::{Peer, RoleServer};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::{Gateway, fmt_secs};
use crate::downstream::{CallError, Downstream, Unavailable};

/// A call in flight to a downstream, and the client it came from (for the service's own
/// requests: sampling, elicitation, logs).
pub(super) struct InFlight {
    pub(super) id: u64,
    pub(super) peer: Peer<RoleServer>,
}

/// Removes an in-flight entry when a forwarded call ends, however it ends.
struct InFlightGuard<'a> {
    gateway: &'a Gateway,
    index: usize,
    id: u64,
    progress_key: Option<String>,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.gateway.inflight.lock()
            && let Some(v) = m.get_mut(&self.index)
        {
            v.retain(|f| f.id != self.id);
        }
        if let Some(k) = &self.progress_key
            && let Ok(mut p) = self.gateway.progress.lock()
        {
            p.remove(k);
        }
    }
}

/// One call to send downstream.
pub(crate) struct Outgoing<'a> {
    pub index: usize,
    /// The service's own tool name.
    pub name: &'a str,
    pub arguments: Option<Map<String, Value>>,
    /// `_meta` to pass on (the caller's, plus e.g. an approval token).
    pub meta: RequestMetaObject,
    /// Whom master signs the call for.
    pub identity: &'a Identity,
    /// The caller's OAuth access token, exchanged for the downstream's own token when the
    /// downstream's `auth` is `token_exchange`.
    pub subject_token: Option<&'a mcp_runtime::oauth::SubjectToken>,
    pub correlation_id: &'a str,
    pub trace_id: Option<&'a str>,
    /// Whether a connection failure may be retried (read-only or idempotent tool).
    pub retry: bool,
    pub peer: Option<&'a Peer<RoleServer>>,
    /// The client's progress token, under which the service's progress is relayed.
    pub progress: Option<ProgressToken>,
    pub ct: &'a CancellationToken,
}

impl Gateway {
    /// Sends one call downstream (retrying where allowed) and counts it in the proxied-call metrics.
    pub(crate) async fn dispatch(&self, out: Outgoing<'_>) -> Result<CallToolResponse, CallError> {
        let started = Instant::now();
        let d = self.downstream(out.index).clone();
        let call_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut meta = out.meta;
        meta.insert(
            mcp_runtime::telemetry::CORRELATION_META_KEY.to_owned(),
            Value::String(out.correlation_id.to_owned()),
        );
        // One span per downstream call; the caller's trace continues downstream as its child.
        let span = tracing::info_span!(
            "downstream_call",
            downstream = %d.name(),
            tool = %out.name,
            correlation_id = %out.correlation_id,
            trace_id = out.trace_id.unwrap_or(""),
        );
        if let Some(tp) = mcp_runtime::telemetry::traceparent_for(&span, out.trace_id) {
            meta.insert(
                mcp_runtime::telemetry::TRACEPARENT_META_KEY.to_owned(),
                Value::String(tp),
            );
        }
        // Only master speaks for the caller: drop any assertion a client sent, then sign our own.
        meta.remove(IDENTITY_META_KEY);
        if let Some(key) = &self.assertion_key {
            let assertion = key.sign(out.identity, out.correlation_id);
            if let Ok(v) = serde_json::to_value(assertion) {
                meta.insert(IDENTITY_META_KEY.to_owned(), v);
            }
        }
        // token_exchange: the caller's token becomes one meant for this downstream, held for the
        // call and named by reference in `_meta` (the HTTP client sends it; the token itself is
        // never in the message). Without a caller's token master's own is sent.
        let (mut _held, mut refused) = (None, None);
        if let (Some(credentials), Some(subject)) = (d.credentials(), out.subject_token)
            && credentials.exchanges()
        {
            match credentials.exchange(subject).await {
                Ok(token) => {
                    let held = credentials.hold(token);
                    meta.insert(
                        crate::downstream::credentials::CREDENTIAL_META_KEY.to_owned(),
                        Value::String(held.reference.clone()),
                    );
                    _held = Some(held);
                }
                Err(e) => {
                    tracing::warn!(message = "Token exchange failed.", downstream = %d.name(), error = %e);
                    // Not sent, but counted below like any call that failed.
                    refused = Some(CallError::Credentials(e.to_string()));
                }
            }
        }
        // Calls without a client (workflow steps) have nobody to relay progress or requests to.
        if let Some(peer) = out.peer
            && let Ok(mut m) = self.inflight.lock()
        {
            m.entry(out.index).or_default().push(InFlight {
                id: call_id,
                peer: peer.clone(),
            });
        }
        let mut guard = InFlightGuard {
            gateway: self,
            index: out.index,
            id: call_id,
            progress_key: None,
        };
        let mut params = CallToolRequestParams::new(out.name.to_owned());
        params.arguments = out.arguments;
        params.meta = Some(meta);

        let max_attempts = if out.retry {
            self.cfg.retry.max_attempts
        } else {
            1
        };
        let ct = out.ct;
        let mut attempt = 1;
        let outcome = async {
            if let Some(e) = refused {
                return Err(e);
            }
            loop {
                let client = match d.admit() {
                    Ok(c) => c,
                    Err(u) => break Err(CallError::Unavailable(u)),
                };
                let r = self
                    .forward_call(
                        &d,
                        &client,
                        params.clone(),
                        out.progress.clone(),
                        out.peer,
                        &mut guard,
                        ct,
                    )
                    .await;
                match r {
                    Err(CallError::Connection(e)) if attempt < max_attempts => {
                        self.metrics.retries.with_label_values(&[d.name()]).inc();
                        let base = self
                            .cfg
                            .retry
                            .base_delay_ms
                            .saturating_mul(1 << (attempt - 1));
                        let capped = base.min(self.cfg.retry.max_delay_ms);
                        let jitter = rand::rng().random_range(0..=capped / 2 + 1);
                        tracing::info!(message = "Retrying after connection failure.", downstream = %d.name(), attempt, error = %e);
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_millis(capped / 2 + jitter)) => {}
                            () = ct.cancelled() => break Err(CallError::Cancelled),
                        }
                        attempt += 1;
                    }
                    other => break other,
                }
            }
        }
        .instrument(span)
        .await;
        drop(guard);
        let status = match &outcome {
            Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true) => "error",
            Ok(_) => "success",
            Err(_) => "error",
        };
        self.metrics
            .proxied_calls
            .with_label_values(&[d.name(), out.name, status])
            .inc();
        self.metrics
            .proxied_duration
            .with_label_values(&[d.name(), out.name])
            .observe(started.elapsed().as_secs_f64());
        outcome
    }

    /// Sends one `tools/call` downstream, relays its progress, and tells the downstream when the
    /// caller cancels or the call times out.
    #[allow(clippy::too_many_arguments)]
    async fn forward_call(
        &self,
        d: &Downstream,
        client: &crate::downstream::Client,
        params: CallToolRequestParams,
        original_token: Option<ProgressToken>,
        peer: Option<&Peer<RoleServer>>,
        guard: &mut InFlightGuard<'_>,
        ct: &CancellationToken,
    ) -> Result<CallToolResponse, CallError> {
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        // Handing the request to the transport is bounded too: behind a hung connection it can
        // wait as long as the downstream does.
        let sent = tokio::time::timeout(
            d.call_timeout(),
            client
                .peer()
                .send_cancellable_request(request, rmcp::service::PeerRequestOptions::no_options()),
        );
        let handle = match sent.await {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                d.request_check();
                return Err(CallError::Connection(crate::downstream::plain_error(&e)));
            }
            Err(_) => return Err(d.timed_out()),
        };
        // rmcp gives every outgoing request its own progress token; progress for it is relayed
        // to this client under the client's original token.
        if let (Some(original), Some(peer)) = (original_token, peer) {
            let key = token_key(&handle.progress_token);
            if let Ok(mut m) = self.progress.lock() {
                m.insert(key.clone(), (peer.clone(), original));
            }
            if let Some(old) = guard.progress_key.replace(key)
                && let Ok(mut m) = self.progress.lock()
            {
                m.remove(&old);
            }
        }
        let request_id = handle.id.clone();
        let downstream_peer = handle.peer.clone();
        let response = async move {
            match handle.await_response().await? {
                ServerResult::CallToolResult(r) => Ok(CallToolResponse::Complete(r)),
                ServerResult::InputRequiredResult(r) => Ok(CallToolResponse::InputRequired(r)),
                ServerResult::CreateTaskResult(r) => Ok(CallToolResponse::Task(r)),
                _ => Err(rmcp::service::ServiceError::UnexpectedResponse),
            }
        };
        let r = d.request(response, ct).await;
        if let Err(CallError::Cancelled | CallError::Timeout(_)) = &r {
            let reason = if matches!(r, Err(CallError::Cancelled)) {
                "cancelled by the client"
            } else {
                "timed out at the gateway"
            };
            // In the background, bounded: a hung downstream must not hold the caller's answer.
            let notice = CancelledNotificationParam::new(Some(request_id), Some(reason.to_owned()));
            let wait = d.call_timeout();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(wait, downstream_peer.notify_cancelled(notice)).await;
            });
        }
        r
    }
}

/// The sentence a caller reads when a call to service `d` did not get an answer.
pub(crate) fn call_error_text(d: &Downstream, tool: &str, e: &CallError) -> String {
    match e {
        CallError::Unavailable(Unavailable::CircuitOpen { retry_in }) => format!(
            "service {} unavailable (circuit open after repeated failures, retry in {})",
            d.name(),
            fmt_secs(*retry_in)
        ),
        CallError::Unavailable(Unavailable::Disconnected { reason, retry_in }) => format!(
            "service {} unavailable ({reason}; reconnecting, next attempt in {})",
            d.name(),
            fmt_secs(*retry_in)
        ),
        CallError::Connection(e) => format!(
            "service {} failed during the call ({e}); master_getSystemStatus shows whether it is back",
            d.name()
        ),
        CallError::Timeout(t) => format!(
            "service {} did not answer {} within {} (master.downstream.timeout_secs); the call was cancelled there",
            d.name(),
            if tool.is_empty() {
                "the request".to_owned()
            } else {
                format!("`{tool}`")
            },
            fmt_secs(*t)
        ),
        CallError::Cancelled => "cancelled by the client".to_owned(),
        CallError::Remote(e) => e.message.to_string(),
        CallError::Credentials(e) => format!("{e}; the call was not sent"),
    }
}

pub(super) fn token_key(t: &ProgressToken) -> String {
    match &t.0 {
        NumberOrString::Number(n) => format!("n:{n}"),
        NumberOrString::String(s) => format!("s:{s}"),
    }
}
