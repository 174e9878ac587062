//! The legacy HTTP+SSE transport (MCP 2024-11-05), which rmcp no longer ships.
//!
//! `GET /sse` opens a session: the first event is `endpoint` with the URL to post to
//! (`/message?sessionId=<id>`), then every server message follows as an `event: message`.
//! `POST /message?sessionId=<id>` (or `/messages`) delivers one client message and answers 202.
//! Each session runs the service handler over an in-memory rmcp transport; closing the event
//! stream ends the session.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use rmcp::model::GetExtensions;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::{RoleServer, ServiceExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::edge::jsonrpc_error_response;

/// Messages queued per session in each direction before back-pressure applies.
const QUEUE: usize = 64;

type Inbound = mpsc::Sender<RxJsonRpcMessage<RoleServer>>;

/// Open legacy-SSE sessions of one service.
pub(crate) struct SseSessions<F> {
    sessions: Mutex<HashMap<String, Inbound>>,
    factory: F,
    endpoints: Vec<String>,
    shutdown: CancellationToken,
    keep_alive: Duration,
}

impl<F, H> SseSessions<F>
where
    F: Fn(&str) -> H + Send + Sync + 'static,
    H: rmcp::ServerHandler,
{
    pub(crate) fn new(
        factory: F,
        endpoints: Vec<String>,
        shutdown: CancellationToken,
        keep_alive: Duration,
    ) -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            factory,
            endpoints,
            shutdown,
            keep_alive,
        }
    }

    fn insert(&self, id: &str, tx: Inbound) {
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(id.to_owned(), tx);
        }
    }

    fn remove(&self, id: &str) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(id);
        }
    }

    fn get(&self, id: &str) -> Option<Inbound> {
        self.sessions.lock().ok().and_then(|s| s.get(id).cloned())
    }
}

/// rmcp transport of one SSE session: reads what `POST /message` delivered, writes to the event stream.
struct SessionTransport {
    inbound: mpsc::Receiver<RxJsonRpcMessage<RoleServer>>,
    outbound: mpsc::Sender<TxJsonRpcMessage<RoleServer>>,
}

impl Transport<RoleServer> for SessionTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let tx = self.outbound.clone();
        async move {
            tx.send(item).await.map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "sse client disconnected")
            })
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleServer>>> + Send {
        self.inbound.recv()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.inbound.close();
        Ok(())
    }
}

/// Ends the session when the event stream is dropped (client went away or server shut down).
struct StreamGuard<F: Send + Sync + 'static> {
    id: String,
    sessions: Arc<SseSessions<F>>,
    session_ct: CancellationToken,
}

impl<F: Send + Sync + 'static> Drop for StreamGuard<F> {
    fn drop(&mut self) {
        self.session_ct.cancel();
        if let Ok(mut s) = self.sessions.sessions.lock() {
            s.remove(&self.id);
        }
    }
}

/// `GET /sse`: opens a session of the main endpoint and streams its messages.
pub(crate) async fn open<F, H>(State(sessions): State<Arc<SseSessions<F>>>) -> Response
where
    F: Fn(&str) -> H + Send + Sync + 'static,
    H: rmcp::ServerHandler,
{
    open_endpoint(sessions, "")
}

/// `GET /sse/<endpoint>`: the same for a named endpoint. Its messages are posted to `/message` too:
/// the session id alone says which endpoint a message belongs to.
pub(crate) async fn open_named<F, H>(
    State(sessions): State<Arc<SseSessions<F>>>,
    Path(endpoint): Path<String>,
) -> Response
where
    F: Fn(&str) -> H + Send + Sync + 'static,
    H: rmcp::ServerHandler,
{
    if !sessions.endpoints.contains(&endpoint) {
        return (
            StatusCode::NOT_FOUND,
            format!("no endpoint `{endpoint}`; see GET /sse or the server's toolsets"),
        )
            .into_response();
    }
    open_endpoint(sessions, &endpoint)
}

fn open_endpoint<F, H>(sessions: Arc<SseSessions<F>>, endpoint: &str) -> Response
where
    F: Fn(&str) -> H + Send + Sync + 'static,
    H: rmcp::ServerHandler,
{
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (in_tx, in_rx) = mpsc::channel(QUEUE);
    let (out_tx, out_rx) = mpsc::channel::<TxJsonRpcMessage<RoleServer>>(QUEUE);
    sessions.insert(&id, in_tx);
    let session_ct = sessions.shutdown.child_token();
    let handler = (sessions.factory)(endpoint);
    let transport = SessionTransport {
        inbound: in_rx,
        outbound: out_tx,
    };
    {
        let sessions = sessions.clone();
        let id = id.clone();
        let ct = session_ct.clone();
        tokio::spawn(async move {
            match handler.serve_with_ct(transport, ct).await {
                Ok(running) => {
                    let _ = running.waiting().await;
                }
                Err(error) => {
                    tracing::info!(message = "Legacy SSE session ended before initialization.", %error);
                }
            }
            sessions.remove(&id);
        });
    }
    let post_to = format!("/message?sessionId={id}");
    let guard = StreamGuard {
        id,
        sessions: sessions.clone(),
        session_ct: session_ct.clone(),
    };
    let stream = event_stream(post_to, guard, session_ct, out_rx);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(sessions.keep_alive))
        .into_response()
}

fn event_stream<F: Send + Sync + 'static>(
    endpoint: String,
    guard: StreamGuard<F>,
    ct: CancellationToken,
    outbound: mpsc::Receiver<TxJsonRpcMessage<RoleServer>>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    let first = futures::stream::once(async move {
        Ok::<_, Infallible>(Event::default().event("endpoint").data(endpoint))
    });
    let rest = futures::stream::unfold(
        (guard, ct, outbound),
        |(guard, ct, mut outbound)| async move {
            let msg = tokio::select! {
                m = outbound.recv() => m?,
                () = ct.cancelled() => return None,
            };
            let data = match serde_json::to_string(&msg) {
                Ok(d) => d,
                Err(error) => {
                    tracing::warn!(message = "Could not serialize an outgoing message.", %error);
                    return None;
                }
            };
            Some((
                Ok(Event::default().event("message").data(data)),
                (guard, ct, outbound),
            ))
        },
    );
    futures::StreamExt::chain(first, rest)
}

#[derive(Deserialize)]
pub(crate) struct SessionQuery {
    #[serde(rename = "sessionId", alias = "session_id")]
    session_id: Option<String>,
}

/// `POST /message?sessionId=…`: hands one client message to its session.
pub(crate) async fn post<F, H>(
    State(sessions): State<Arc<SseSessions<F>>>,
    Query(q): Query<SessionQuery>,
    request: Request,
) -> Response
where
    F: Fn(&str) -> H + Send + Sync + 'static,
    H: rmcp::ServerHandler,
{
    let Some(id) = q.session_id else {
        return (StatusCode::BAD_REQUEST, "missing sessionId query parameter").into_response();
    };
    let Some(tx) = sessions.get(&id) else {
        return (
            StatusCode::NOT_FOUND,
            "unknown or closed session; open a new one with GET /sse",
        )
            .into_response();
    };
    let (parts, body) = request.into_parts();
    // The edge middleware already enforced the size limit and checked that the body is JSON.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::BAD_REQUEST, "could not read body").into_response(),
    };
    let mut message: RxJsonRpcMessage<RoleServer> = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => {
            return jsonrpc_error_response(
                StatusCode::BAD_REQUEST,
                -32600,
                &format!("Invalid Request: not a JSON-RPC message this server accepts: {e}"),
            );
        }
    };
    match &mut message {
        rmcp::model::JsonRpcMessage::Request(r) => {
            r.request.extensions_mut().insert(parts);
        }
        rmcp::model::JsonRpcMessage::Notification(n) => {
            n.notification.extensions_mut().insert(parts);
        }
        _ => {}
    }
    if tx.send(message).await.is_err() {
        return (
            StatusCode::GONE,
            "session has ended; open a new one with GET /sse",
        )
            .into_response();
    }
    (StatusCode::ACCEPTED, "Accepted").into_response()
}
