//! Client side of the legacy HTTP+SSE transport, for downstreams that only speak it (rmcp has none).
//! `GET <url>` opens the event stream; its first `endpoint` event says where to `POST` messages.

use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{ACCEPT, HeaderMap};
use rmcp::RoleClient;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Errors of the SSE client transport.
#[derive(Debug, thiserror::Error)]
pub enum SseClientError {
    #[error("cannot open event stream {url}: {message}")]
    Open { url: String, message: String },
    #[error("event stream of {url} sent no `endpoint` event within {secs} s")]
    NoEndpoint { url: String, secs: u64 },
    #[error("post to {url} failed: {message}")]
    Post { url: String, message: String },
}

/// A connected legacy-SSE session.
pub struct SseClientTransport {
    inbound: mpsc::Receiver<RxJsonRpcMessage<RoleClient>>,
    post_url: String,
    http: reqwest::Client,
    stop: CancellationToken,
}

impl Drop for SseClientTransport {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl SseClientTransport {
    /// Opens the stream and waits for the endpoint event.
    pub async fn connect(
        url: &str,
        http: reqwest::ClientBuilder,
        headers: HeaderMap,
    ) -> Result<Self, SseClientError> {
        let http = http
            .default_headers(headers)
            .build()
            .map_err(|e| SseClientError::Open {
                url: url.to_owned(),
                message: e.to_string(),
            })?;
        let resp = http
            .get(url)
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| SseClientError::Open {
                url: url.to_owned(),
                message: e.to_string(),
            })?;
        let base = resp.url().clone();
        let mut events = sse_stream::SseStream::from_bytes_stream(resp.bytes_stream());
        let wait = Duration::from_secs(10);
        let endpoint = tokio::time::timeout(wait, async {
            while let Some(Ok(ev)) = events.next().await {
                if ev.event.as_deref() == Some("endpoint") {
                    return ev.data;
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| SseClientError::NoEndpoint {
            url: url.to_owned(),
            secs: wait.as_secs(),
        })?;
        let post_url = base
            .join(endpoint.trim())
            .map_err(|e| SseClientError::Open {
                url: url.to_owned(),
                message: format!("bad endpoint `{endpoint}`: {e}"),
            })?
            .to_string();
        let (tx, inbound) = mpsc::channel(64);
        let stop = CancellationToken::new();
        let reader_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                let ev = tokio::select! {
                    ev = events.next() => ev,
                    () = reader_stop.cancelled() => break,
                };
                let Some(Ok(ev)) = ev else { break };
                if ev.event.as_deref().unwrap_or("message") != "message" {
                    continue;
                }
                let Some(data) = ev.data else { continue };
                match serde_json::from_str::<RxJsonRpcMessage<RoleClient>>(&data) {
                    Ok(msg) => {
                        if tx.send(msg).await.is_err() {
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(message = "Ignoring malformed message from SSE downstream.", %error);
                    }
                }
            }
            // Dropping `tx` ends `receive`, which closes the rmcp service.
        });
        Ok(Self {
            inbound,
            post_url,
            http,
            stop,
        })
    }
}

impl Transport<RoleClient> for SseClientTransport {
    type Error = SseClientError;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let http = self.http.clone();
        let url = self.post_url.clone();
        async move {
            let resp =
                http.post(&url)
                    .json(&item)
                    .send()
                    .await
                    .map_err(|e| SseClientError::Post {
                        url: url.clone(),
                        message: e.to_string(),
                    })?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(SseClientError::Post {
                    url,
                    message: format!("HTTP {}", resp.status()),
                })
            }
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleClient>>> + Send {
        self.inbound.recv()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.stop.cancel();
        self.inbound.close();
        Ok(())
    }
}
