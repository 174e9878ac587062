//! The wrapper every service handler runs inside: it records tool metrics, logs each call with the
//! request's correlation id, enforces the tool timeout and bounds tool output. Services never do this
//! themselves, so no tool can forget it.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::*;
use rmcp::service::{MaybeSendFuture, NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use tracing::Instrument;

use crate::approval::{APPROVAL_META_KEY, Approval, ApprovalError, ApprovalLedger, ApprovalToken};
use crate::assertion::{AssertionKey, IDENTITY_HEADER, IDENTITY_META_KEY, IdentityAssertion};
use crate::auth::Identity;
use crate::metrics::{CallStatus, Metrics, SessionGuard, UNKNOWN_TOOL};
use crate::output::bound_result;
use crate::telemetry::{
    CORRELATION_META_KEY, CorrelationId, TRACEPARENT_META_KEY, is_valid_correlation_id,
    trace_id_from_traceparent,
};

/// Limits and sinks shared by every session of one service.
#[derive(Debug)]
pub(crate) struct CallPolicy {
    pub(crate) assertion_key: Option<AssertionKey>,
    pub(crate) approval_key: Option<AssertionKey>,
    pub(crate) ledger: ApprovalLedger,
    pub(crate) metrics: Metrics,
    pub(crate) tool_timeout: Duration,
    pub(crate) max_output_bytes: usize,
}

/// Who called and under which correlation id, as established at the HTTP edge.
#[derive(Debug, Clone)]
pub struct CallerContext {
    pub correlation_id: String,
    pub identity: Identity,
    pub trace_id: Option<String>,
    /// The caller's W3C `traceparent` (HTTP header, else `_meta`), which this call's span continues.
    pub traceparent: Option<String>,
    /// A valid, unused approval token for exactly this call (tool and arguments), if one came.
    pub approval: Option<Approval>,
    /// Why an approval token that came with the call was refused.
    pub approval_error: Option<String>,
    /// The OAuth access token the caller presented (none for static tokens, certificates and
    /// auth off): what master exchanges for a downstream's token.
    pub subject_token: Option<crate::oauth::SubjectToken>,
}

impl CallerContext {
    /// Reads the caller context from a request context: the HTTP parts the transport attached
    /// (identity, correlation id, trace id), with a `_meta.correlationId` used when the HTTP request
    /// carried none.
    pub fn from_request(ctx: &RequestContext<RoleServer>) -> Self {
        let parts = ctx.extensions.get::<http::request::Parts>();
        let header_cid = parts
            .and_then(|p| p.extensions.get::<CorrelationId>())
            .cloned();
        let meta_cid = ctx
            .meta
            .get(CORRELATION_META_KEY)
            .and_then(|v| v.as_str())
            .filter(|v| is_valid_correlation_id(v))
            .map(str::to_owned);
        let correlation_id = match (header_cid, meta_cid) {
            (Some(h), _) if !h.generated => h.id,
            (_, Some(m)) => m,
            (Some(h), None) => h.id,
            (None, None) => CorrelationId::from_header(None).id,
        };
        let identity = ctx
            .extensions
            .get::<AssertedIdentity>()
            .map(|a| a.0.clone())
            .or_else(|| parts.and_then(|p| p.extensions.get::<Identity>()).cloned())
            .unwrap_or_else(Identity::anonymous);
        // The HTTP `traceparent` header, else a `traceparent` in `_meta` (how master passes it on,
        // also over stdio and SSE).
        let traceparent = parts
            .and_then(|p| p.extensions.get::<TraceParent>())
            .map(|t| t.0.clone())
            .or_else(|| {
                ctx.meta
                    .get(TRACEPARENT_META_KEY)
                    .and_then(|v| v.as_str())
                    .filter(|v| trace_id_from_traceparent(v).is_some())
                    .map(|v| v.trim().to_owned())
            });
        let trace_id = traceparent
            .as_deref()
            .and_then(trace_id_from_traceparent)
            .map(str::to_owned);
        let (approval, approval_error) = match ctx.extensions.get::<ApprovalState>() {
            Some(ApprovalState::Approved(a)) => (Some(a.clone()), None),
            Some(ApprovalState::Refused(e)) => (None, Some(e.clone())),
            None => (None, None),
        };
        let subject_token = parts
            .and_then(|p| p.extensions.get::<crate::oauth::SubjectToken>())
            .cloned();
        Self {
            correlation_id,
            identity,
            trace_id,
            traceparent,
            approval,
            approval_error,
            subject_token,
        }
    }
}

/// The outcome of checking a call's approval token.
#[derive(Debug, Clone)]
enum ApprovalState {
    Approved(Approval),
    Refused(String),
}

/// Verifies an approval token in `_meta` against the tool and arguments of this very call and
/// consumes it (single use).
fn verify_approval(
    policy: &CallPolicy,
    request: &CallToolRequestParams,
    ctx: &mut RequestContext<RoleServer>,
) {
    let Some(raw) = ctx.meta.get(APPROVAL_META_KEY) else {
        return;
    };
    let state = match (
        &policy.approval_key,
        serde_json::from_value::<ApprovalToken>(raw.clone()),
    ) {
        (None, _) => Err(ApprovalError::NoKey),
        (_, Err(e)) => Err(ApprovalError::Malformed(e.to_string())),
        (Some(key), Ok(token)) => key
            .verify_approval(&token, &request.name, request.arguments.as_ref())
            .and_then(|a| policy.ledger.consume(&a).map(|()| a)),
    };
    let state = match state {
        Ok(a) => {
            tracing::info!(message = "Approval token accepted.", approval_id = %a.id);
            ApprovalState::Approved(a)
        }
        Err(e) => {
            tracing::warn!(message = "Approval token refused.", error = %e);
            ApprovalState::Refused(e.to_string())
        }
    };
    ctx.extensions.insert(state);
}

/// An identity asserted by master and verified with the shared key.
#[derive(Debug, Clone)]
struct AssertedIdentity(Identity);

/// Verifies an identity assertion from `_meta` (or else the `x-mcp-identity-assertion` header), if
/// the service has a key and the request carries one.
fn verify_assertion(key: Option<&AssertionKey>, ctx: &mut RequestContext<RoleServer>) {
    let Some(key) = key else { return };
    let parsed = match ctx.meta.get(IDENTITY_META_KEY) {
        Some(raw) => {
            serde_json::from_value::<IdentityAssertion>(raw.clone()).map_err(|e| e.to_string())
        }
        None => {
            let header = ctx
                .extensions
                .get::<http::request::Parts>()
                .and_then(|p| p.headers.get(IDENTITY_HEADER))
                .and_then(|v| v.to_str().ok());
            match header {
                Some(h) => serde_json::from_str::<IdentityAssertion>(h).map_err(|e| e.to_string()),
                None => return,
            }
        }
    };
    let verified = parsed.and_then(|a| key.verify(&a).map_err(|e| e.to_string()));
    match verified {
        Ok(identity) => {
            ctx.extensions.insert(AssertedIdentity(identity));
        }
        Err(error) => tracing::warn!(message = "Identity assertion refused.", %error),
    }
}

/// Rewrites rmcp's "failed to deserialize parameters: …" tool error into a sentence naming the
/// tool and the shape its schema expects.
fn explain_argument_error(
    r: &mut CallToolResult,
    tool: &str,
    lookup: impl FnOnce() -> Option<rmcp::model::Tool>,
) {
    if r.is_error != Some(true) || r.content.len() != 1 {
        return;
    }
    let Some(detail) = r.content[0]
        .as_text()
        .and_then(|t| t.text.strip_prefix(crate::arguments::RMCP_ARGUMENT_ERROR))
        .map(str::to_owned)
    else {
        return;
    };
    if let Some(t) = lookup() {
        r.content = vec![ContentBlock::text(crate::arguments::explain(
            tool,
            &detail,
            &t.input_schema,
        ))];
    }
}

/// W3C trace id of a request, stored in its extensions by the edge middleware.
#[derive(Debug, Clone)]
pub(crate) struct TraceParent(pub(crate) String);

/// A service handler plus the runtime's instrumentation. One per session.
pub(crate) struct Instrumented<H> {
    inner: H,
    policy: Arc<CallPolicy>,
    _session: SessionGuard,
}

impl<H> Instrumented<H> {
    pub(crate) fn new(inner: H, policy: Arc<CallPolicy>, transport: &'static str) -> Self {
        let session = SessionGuard::new(&policy.metrics, transport);
        Self {
            inner,
            policy,
            _session: session,
        }
    }
}

impl<H: ServerHandler> Instrumented<H> {
    async fn instrumented_call(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        verify_assertion(self.policy.assertion_key.as_ref(), &mut context);
        verify_approval(&self.policy, &request, &mut context);
        let caller = CallerContext::from_request(&context);
        let tool = request.name.to_string();
        let label = if self.inner.get_tool(&tool).is_some() {
            tool.clone()
        } else {
            UNKNOWN_TOOL.to_owned()
        };
        let span = tracing::info_span!(
            "tool_call",
            service = %self.policy.metrics.service(),
            correlation_id = %caller.correlation_id,
            identity = %caller.identity.name,
            tool = %label,
            trace_id = caller.trace_id.as_deref().unwrap_or(""),
        );
        if let Some(tp) = &caller.traceparent {
            crate::telemetry::continue_trace(&span, tp);
        }
        let policy = &self.policy;
        async move {
            let started = Instant::now();
            let outcome =
                tokio::time::timeout(policy.tool_timeout, self.inner.call_tool(request, context)).await;
            let (result, status) = match outcome {
                Ok(Ok(CallToolResponse::Complete(mut r))) => {
                    explain_argument_error(&mut r, &tool, || self.inner.get_tool(&tool));
                    if bound_result(&mut r, policy.max_output_bytes) {
                        tracing::info!(message = "Tool output truncated.", limit = policy.max_output_bytes);
                    }
                    let status = if r.is_error == Some(true) {
                        CallStatus::Error
                    } else {
                        CallStatus::Success
                    };
                    (Ok(CallToolResponse::Complete(r)), status)
                }
                Ok(Ok(other)) => (Ok(other), CallStatus::Success),
                Ok(Err(e)) => (Err(e), CallStatus::Error),
                Err(_) => (
                    Ok(CallToolResponse::Complete(CallToolResult::error(vec![
                        ContentBlock::text(format!(
                            "tool `{tool}` timed out after {} s and was stopped; retry with a narrower request or raise server.tool_timeout_secs",
                            policy.tool_timeout.as_secs()
                        )),
                    ]))),
                    CallStatus::Error,
                ),
            };
            let seconds = started.elapsed().as_secs_f64();
            policy.metrics.record_tool_call(&label, status, seconds);
            match (&result, status) {
                (Err(e), _) => tracing::warn!(
                    message = "Tool call failed.",
                    status = "error",
                    error = %e.message,
                    duration_ms = seconds * 1000.0
                ),
                (_, CallStatus::Error) => tracing::info!(
                    message = "Tool call finished with a tool error.",
                    status = "error",
                    duration_ms = seconds * 1000.0
                ),
                _ => tracing::info!(
                    message = "Tool call finished.",
                    status = "success",
                    duration_ms = seconds * 1000.0
                ),
            }
            result
        }
        .instrument(span)
        .await
    }
}

// Every method must be forwarded, including the ones rmcp marks deprecated (logging and legacy
// subscriptions), or clients on older protocol versions would lose them.
#[allow(deprecated)]
impl<H: ServerHandler> ServerHandler for Instrumented<H> {
    fn ping(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.ping(context)
    }

    fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<InitializeResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.initialize(request, context)
    }

    fn negotiate_initialize(
        &self,
        request: &InitializeRequestParams,
    ) -> Result<InitializeResult, McpError> {
        self.inner.negotiate_initialize(request)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        self.inner.supported_protocol_versions()
    }

    fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<DiscoverResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.discover(context)
    }

    fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CompleteResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.complete(request, context)
    }

    fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.set_level(request, context)
    }

    fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetPromptResponse, McpError>> + MaybeSendFuture + '_ {
        self.inner.get_prompt(request, context)
    }

    fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListPromptsResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_prompts(request, context)
    }

    fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourcesResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_resources(request, context)
    }

    fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourceTemplatesResult, McpError>> + MaybeSendFuture + '_
    {
        self.inner.list_resource_templates(request, context)
    }

    fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ReadResourceResponse, McpError>> + MaybeSendFuture + '_ {
        self.inner.read_resource(request, context)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        self.inner.accepted_subscription_filter(requested)
    }

    fn listen(
        &self,
        context: SubscriptionContext,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.listen(context)
    }

    fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.subscribe(request, context)
    }

    fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.unsubscribe(request, context)
    }

    fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CallToolResponse, McpError>> + MaybeSendFuture + '_ {
        self.instrumented_call(request, context)
    }

    fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListToolsResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_tools(request, context)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.inner.get_tool(name)
    }

    fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CustomResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.on_custom_request(request, context)
    }

    fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_cancelled(notification, context)
    }

    fn on_progress(
        &self,
        notification: ProgressNotificationParam,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_progress(notification, context)
    }

    fn on_initialized(
        &self,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_initialized(context)
    }

    fn on_roots_list_changed(
        &self,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_roots_list_changed(context)
    }

    fn on_custom_notification(
        &self,
        notification: CustomNotification,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_custom_notification(notification, context)
    }

    fn get_info(&self) -> ServerConfig {
        self.inner.get_info()
    }

    fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetTaskResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.get_task(request, context)
    }

    fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.update_task(request, context)
    }

    fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.cancel_task(request, context)
    }

    fn list_skills(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListSkillsResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_skills(request, context)
    }

    fn get_skill(
        &self,
        request: GetSkillRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetSkillResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.get_skill(request, context)
    }

    fn read_resource_directory(
        &self,
        request: ReadResourceDirectoryRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ReadResourceDirectoryResult, McpError>> + MaybeSendFuture + '_
    {
        self.inner.read_resource_directory(request, context)
    }
}
