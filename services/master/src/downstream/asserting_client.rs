//! The HTTP client master uses for streamable-HTTP downstreams: reqwest, plus the caller's signed
//! identity assertion copied from a request's `_meta` into the `x-mcp-identity-assertion` header, so
//! services (and proxies in between) can read it from headers as well.

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

/// reqwest with identity-assertion headers.
#[derive(Clone)]
pub struct AssertingClient(pub reqwest::Client);

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
        self.0
            .post_message(uri, message, session_id, auth_header, headers)
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
        self.0.post_message_with_max_sse_event_size(
            uri,
            message,
            session_id,
            auth_header,
            headers,
            max_sse_event_size,
        )
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
        self.0.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            headers,
            limits,
        )
    }

    fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: Headers,
    ) -> impl Future<Output = Result<(), StreamableHttpError<Self::Error>>> + Send + '_ {
        self.0
            .delete_session(uri, session_id, auth_header, custom_headers)
    }

    fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: Headers,
    ) -> impl Future<
        Output = Result<
            BoxStream<'static, Result<Sse, SseError>>,
            StreamableHttpError<Self::Error>,
        >,
    > + Send
    + '_ {
        self.0
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
    }
}
