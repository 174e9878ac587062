//! The MCP face of the gateway: one `MasterHandler` per client session, answering from the merged
//! index and forwarding to downstreams through the [`Gateway`].

use std::sync::Arc;

use mcp_runtime::CallerContext;
use rmcp::model::*;
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::gateway::{Call, Gateway};
use crate::namespace::wire_uri;
use crate::toolsets::{View, ViewKind};

/// Per-session handler of one endpoint (`/mcp`, a toolset, or discovery).
#[derive(Clone)]
pub struct MasterHandler {
    pub(crate) gateway: Arc<Gateway>,
    view: Arc<View>,
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
    pub fn new(gateway: Arc<Gateway>, view: Arc<View>) -> Self {
        Self { gateway, view }
    }

    /// Whether this endpoint offers the tool `wire` (canonical name) to `caller`.
    fn offers(&self, caller: &CallerContext, wire: &str) -> bool {
        if !self.view.allows(&caller.identity) {
            return false;
        }
        let idx = self.gateway.index();
        let ns = idx.tool_ns.get(wire).map_or("", String::as_str);
        self.view.admits(wire, ns)
    }

    /// Whether this endpoint shows prompts and resources of namespace `ns`.
    fn shows_namespace(&self, ns: &str) -> bool {
        match &self.view.kind {
            ViewKind::All => true,
            ViewKind::Discover => false,
            ViewKind::Toolset { namespaces, .. } => namespaces.iter().any(|n| n == ns),
        }
    }

    /// Whether this endpoint shows the resource (or template) at wire URI `uri`.
    fn shows_resource(&self, uri: &str) -> bool {
        match &self.view.kind {
            ViewKind::All => true,
            ViewKind::Discover => false,
            ViewKind::Toolset { .. } => self
                .gateway
                .resource_route(uri)
                .is_some_and(|(i, _)| self.shows_namespace(self.gateway.downstream(i).namespace())),
        }
    }

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
        self.gateway
            .add_peer(context.peer.clone(), self.view.clone());
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        if matches!(self.view.kind, ViewKind::Discover) {
            return crate::gateway::discovery_tools(&self.gateway.cfg.separator)
                .into_iter()
                .find(|t| t.name == name);
        }
        self.gateway
            .canonical(name)
            .map(|(_, _, t)| Tool::clone(&t))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = CallerContext::from_request(&context);
        if !self.view.allows(&caller.identity) {
            return Ok(ListToolsResult::with_all_items(Vec::new()));
        }
        if matches!(self.view.kind, ViewKind::Discover) {
            return Ok(ListToolsResult::with_all_items(
                crate::gateway::discovery_tools(&self.gateway.cfg.separator),
            ));
        }
        let tools = self
            .gateway
            .visible_tools(&caller)
            .into_iter()
            .filter(|t| self.offers(&caller, &t.name))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = CallerContext::from_request(&context);
        self.gateway
            .metrics
            .endpoint_calls
            .with_label_values(&[self.view.path().as_str()])
            .inc();
        let mut meta = context.meta.clone();
        if let Some(m) = &request.meta {
            for (k, v) in m.iter() {
                meta.insert(k.clone(), v.clone());
            }
        }
        // Every refusal (missing, denied, outside this endpoint) is the pipeline's.
        self.gateway
            .call_tool(Call {
                request,
                meta,
                caller: &caller,
                view: Some(&self.view),
                peer: Some(&context.peer),
                context: Some(&context),
                ct: &context.ct,
                secret_result: false,
            })
            .await
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let prompts = self
            .gateway
            .index()
            .prompts
            .iter()
            .filter(|p| {
                self.gateway.prompt_route(&p.name).is_some_and(|(i, _)| {
                    self.shows_namespace(self.gateway.downstream(i).namespace())
                })
            })
            .cloned()
            .collect();
        Ok(ListPromptsResult::with_all_items(prompts))
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
        let resources = self
            .gateway
            .index()
            .resources
            .iter()
            .filter(|r| self.shows_resource(&r.uri))
            .cloned()
            .collect();
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let templates = self
            .gateway
            .index()
            .templates
            .iter()
            .filter(|t| self.shows_resource(&t.uri_template))
            .cloned()
            .collect();
        Ok(ListResourceTemplatesResult::with_all_items(templates))
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
