//! The HTTP client master uses for streamable-HTTP downstreams: reqwest, plus the caller's signed
//! identity assertion copied from a request's `_meta` into the `x-mcp-identity-assertion` header, so
//! services (and proxies in between) can read it from headers as well, and, for OAuth
//! downstreams, the bearer token of each request: the call's exchanged token when it holds one
//! (named by reference in `_meta`, a key stripped before sending), else master's own.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::BoxStream;
use mcp_runtime::assertion::{IDENTITY_HEADER, IDENTITY_META_KEY};
use mcp_runtime::telemetry::{CORRELATION_HEADER, CORRELATION_META_KEY, TRACEPARENT_META_KEY};
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, GetMeta, JsonRpcMessage};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use sse_stream::Sse;

use super::credentials::{CREDENTIAL_META_KEY, Credentials};

/// reqwest with identity-assertion headers and OAuth bearer tokens.
#[derive(Clone)]
pub struct AssertingClient {
    pub http: reqwest::Client,
    pub credentials: Option<Arc<Credentials>>,
}

impl AssertingClient {
    /// The bearer token for `message` (and the message without its credential reference):
    /// the call's own token when it holds one, else [`Self::own_bearer`].
    async fn bearer(
        &self,
        mut message: ClientJsonRpcMessage,
        auth_header: Option<String>,
    ) -> Result<(ClientJsonRpcMessage, Option<String>), StreamableHttpError<reqwest::Error>> {
        if let Some(credentials) = &self.credentials
            && let JsonRpcMessage::Request(r) = &mut message
            && let ClientRequest::CallToolRequest(c) = &mut r.request
            && let Some(reference) = c
                .params
                .meta
                .as_mut()
                .and_then(|m| m.remove(CREDENTIAL_META_KEY))
            && let Some(token) = reference.as_str().and_then(|r| credentials.held(r))
        {
            return Ok((message, Some(token)));
        }
        let auth = self.own_bearer(auth_header).await?;
        Ok((message, auth))
    }

    /// Master's own token when the downstream has OAuth credentials; `auth_header` otherwise.
    async fn own_bearer(
        &self,
        auth_header: Option<String>,
    ) -> Result<Option<String>, StreamableHttpError<reqwest::Error>> {
        match &self.credentials {
            None => Ok(auth_header),
            Some(c) => c.own_token().await.map(Some).map_err(|e| {
                tracing::warn!(message = "No downstream token.", error = %e);
                StreamableHttpError::UnexpectedServerResponse(e.to_string().into())
            }),
        }
    }
}

type Headers = HashMap<HeaderName, HeaderValue>;

fn with_assertion(message: &ClientJsonRpcMessage, mut headers: Headers) -> Headers {
    let JsonRpcMessage::Request(r) = message else {
        return headers;
    };
    // Master puts the assertion in the tool call's own `_meta`; other requests carry it (if ever)
    // in the request-level metadata.
    let from_params = match &r.request {
        ClientRequest::CallToolRequest(c) => c
            .params
            .meta
            .as_ref()
            .and_then(|m| m.get(IDENTITY_META_KEY)),
        _ => None,
    };
    if let Some(v) = from_params.or_else(|| r.request.get_meta().get(IDENTITY_META_KEY))
        && let Ok(value) = HeaderValue::from_str(&v.to_string())
    {
        headers.insert(HeaderName::from_static(IDENTITY_HEADER), value);
    }
    // The caller's trace context and correlation id, as HTTP headers too.
    if let ClientRequest::CallToolRequest(c) = &r.request
        && let Some(meta) = &c.params.meta
    {
        for (key, header) in [
            (TRACEPARENT_META_KEY, "traceparent"),
            (CORRELATION_META_KEY, CORRELATION_HEADER),
        ] {
            if let Some(v) = meta.get(key).and_then(|v| v.as_str())
                && let Ok(value) = HeaderValue::from_str(v)
            {
                headers.insert(HeaderName::from_static(header), value);
            }
        }
    }
    headers
}

impl StreamableHttpClient for AssertingClient {
    type Error = reqwest::Error;

    fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: Headers,
    ) -> impl Future<Output = Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>>>
    + Send
    + '_ {
        let headers = with_assertion(&message, custom_headers);
        async move {
            let (message, auth) = self.bearer(message, auth_header).await?;
            self.http
                .post_message(uri, message, session_id, auth, headers)
                .await
        }
    }

    fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: Headers,
        max_sse_event_size: usize,
    ) -> impl Future<Output = Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>>>
    + Send
    + '_ {
        let headers = with_assertion(&message, custom_headers);
        async move {
            let (message, auth) = self.bearer(message, auth_header).await?;
            self.http
                .post_message_with_max_sse_event_size(
                    uri,
                    message,
                    session_id,
                    auth,
                    headers,
                    max_sse_event_size,
                )
                .await
        }
    }

    fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: Headers,
        limits: StreamableHttpResponseLimits,
    ) -> impl Future<Output = Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>>>
    + Send
    + '_ {
        let headers = with_assertion(&message, custom_headers);
        async move {
            let (message, auth) = self.bearer(message, auth_header).await?;
            self.http
                .post_message_with_response_limits(uri, message, session_id, auth, headers, limits)
                .await
        }
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: Headers,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        let auth = self.own_bearer(auth_header).await?;
        self.http
            .delete_session(uri, session_id, auth, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: Headers,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        let auth = self.own_bearer(auth_header).await?;
        self.http
            .get_stream(uri, session_id, last_event_id, auth, custom_headers)
            .await
    }
}
