//! The MCP face of the gateway: one `MasterHandler` per client session, answering from the merged
//! index and forwarding to downstreams through the [`Gateway`].

use std::sync::Arc;

use mcp_runtime::CallerContext;
use rmcp::model::*;
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::gateway::Gateway;
use crate::namespace::wire_uri;

/// Per-session handler.
#[derive(Clone)]
pub struct MasterHandler {
    pub(crate) gateway: Arc<Gateway>,
}

fn rewrite_contents(ns: &str, contents: &mut [ResourceContents]) {
    for c in contents {
        match c {
            ResourceContents::TextResourceContents { uri, .. }
            | ResourceContents::BlobResourceContents { uri, .. } => *uri = wire_uri(ns, uri),
            _ => {}
        }
    }
}

impl MasterHandler {
    /// The downstream serving a wire resource URI, and the URI it knows the resource by.
    fn resource_target(&self, uri: &str) -> Result<(usize, String), ErrorData> {
        self.gateway.resource_route(uri).ok_or_else(|| {
            ErrorData::resource_not_found(format!("no service serves resource `{uri}`"), None)
        })
    }
}

#[allow(deprecated)] // Logging and legacy subscriptions still serve 2025-era clients.
impl ServerHandler for MasterHandler {
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_resources()
            .enable_resources_list_changed()
            .enable_logging()
            .enable_completions()
            .build();
        let mut info = ServerConfig::new(caps);
        info.server_info = Implementation::new("mcp-master", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "Gateway to the infrastructure MCP services. Tools are named <namespace>_<tool> (cmdb_getHost, linux_runCommand, ...). master_getSystemStatus shows which services are up."
                .to_owned(),
        );
        info
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.gateway.add_peer(context.peer.clone());
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.gateway.canonical(name).map(|(_, _, t)| t)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = CallerContext::from_request(&context);
        Ok(ListToolsResult::with_all_items(
            self.gateway.visible_tools(&caller),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = CallerContext::from_request(&context);
        let mut meta = context.meta.clone();
        if let Some(m) = &request.meta {
            for (k, v) in m.iter() {
                meta.insert(k.clone(), v.clone());
            }
        }
        self.gateway
            .call_tool(request, meta, &caller, &context.peer, &context.ct)
            .await
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(
            self.gateway.index().prompts.clone(),
        ))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let (index, name) = self.gateway.prompt_route(&request.name).ok_or_else(|| {
            ErrorData::invalid_params(format!("unknown prompt `{}`", request.name), None)
        })?;
        let mut params = request.clone();
        params.name = name;
        let r = self
            .gateway
            .forward(
                index,
                async move |peer| peer.get_prompt(params).await,
                &context.ct,
            )
            .await?;
        Ok(r.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(
            self.gateway.index().resources.clone(),
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            self.gateway.index().templates.clone(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let (index, uri) = self.resource_target(&request.uri)?;
        let ns = self.gateway.downstream(index).namespace().to_owned();
        let mut params = request.clone();
        params.uri = uri;
        let mut r = self
            .gateway
            .forward(
                index,
                async move |peer| peer.read_resource(params).await,
                &context.ct,
            )
            .await?;
        rewrite_contents(&ns, &mut r.contents);
        Ok(r.into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let (index, uri) = self.resource_target(&request.uri)?;
        let mut params = request.clone();
        params.uri = uri;
        self.gateway
            .forward(
                index,
                async move |peer| peer.subscribe(params).await,
                &context.ct,
            )
            .await
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let (index, uri) = self.resource_target(&request.uri)?;
        let mut params = request.clone();
        params.uri = uri;
        self.gateway
            .forward(
                index,
                async move |peer| peer.unsubscribe(params).await,
                &context.ct,
            )
            .await
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let mut params = request.clone();
        let index = match &mut params.r#ref {
            Reference::Prompt(p) => {
                let (index, name) = self.gateway.prompt_route(&p.name).ok_or_else(|| {
                    ErrorData::invalid_params(format!("unknown prompt `{}`", p.name), None)
                })?;
                p.name = name;
                index
            }
            Reference::Resource(r) => {
                let (index, uri) = self.resource_target(&r.uri)?;
                r.uri = uri;
                index
            }
            _ => {
                return Err(ErrorData::invalid_params(
                    "unsupported completion reference",
                    None,
                ));
            }
        };
        self.gateway
            .forward(
                index,
                async move |peer| peer.complete(params).await,
                &context.ct,
            )
            .await
    }

    async fn set_level(
        &self,
        _request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }
}
