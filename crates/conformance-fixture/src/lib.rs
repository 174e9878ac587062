//! A server exposing what the official MCP conformance suite (`@modelcontextprotocol/conformance`)
//! exercises: content types, logging, progress, sampling, elicitation, resources, templates,
//! subscriptions, prompts and completion. It runs on `mcp-runtime`, so the suite checks our runtime;
//! master mounts it with an empty namespace to check the gateway the same way.

// The suite still exercises logging and sampling (2025-06-18 and 2025-11-25), which rmcp marks
// deprecated for the 2026-07-28 protocol; the fixture must keep serving them.
#![allow(deprecated)]

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_runtime::health::AlwaysHealthy;
use mcp_runtime::{BoxError, BuildContext, HealthProbe, McpService};
use rmcp::model::*;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

/// A 1×1 PNG.
const PNG_1X1: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
/// A tiny WAV header with no samples.
const WAV_EMPTY: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=";

/// The fixture service.
#[derive(Debug, Default)]
pub struct Fixture;

impl McpService for Fixture {
    const NAME: &'static str = "conformance-fixture";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SECTION: &'static str = "fixture";
    const DEFAULT_PORT: u16 = 8099;
    type Config = BTreeMap<String, Value>;
    type Handler = FixtureHandler;

    async fn build(_config: Self::Config, _ctx: BuildContext) -> Result<Self, BoxError> {
        Ok(Self)
    }

    fn handler(self: &Arc<Self>) -> FixtureHandler {
        FixtureHandler::default()
    }

    fn health(self: &Arc<Self>) -> Arc<dyn HealthProbe> {
        Arc::new(AlwaysHealthy)
    }
}

/// Per-session handler.
#[derive(Debug, Default, Clone)]
pub struct FixtureHandler {
    subscriptions: Arc<Mutex<HashSet<String>>>,
}

fn object(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(m) => Arc::new(m),
        _ => Arc::new(JsonObject::new()),
    }
}

fn empty_schema() -> Arc<JsonObject> {
    object(json!({"type": "object", "properties": {}}))
}

fn tools() -> Vec<Tool> {
    let plain = [
        ("test_simple_text", "Returns one text block"),
        ("test_image_content", "Returns one PNG image block"),
        ("test_audio_content", "Returns one WAV audio block"),
        (
            "test_embedded_resource",
            "Returns an embedded text resource",
        ),
        (
            "test_multiple_content_types",
            "Returns text, image and resource blocks",
        ),
        (
            "test_tool_with_logging",
            "Sends three log notifications while running",
        ),
        (
            "test_tool_with_progress",
            "Sends progress notifications 0, 50, 100 of 100",
        ),
        ("test_error_handling", "Always fails with a tool error"),
        (
            "test_elicitation_sep1034_defaults",
            "Asks the client for input whose fields all have defaults",
        ),
        (
            "test_elicitation_sep1330_enums",
            "Asks the client to pick from titled and untitled enums",
        ),
        ("test_reconnection", "Completes after a short pause"),
    ];
    let mut tools: Vec<Tool> = plain
        .iter()
        .map(|(name, desc)| Tool::new(*name, *desc, empty_schema()))
        .collect();
    tools.push(Tool::new(
        "test_sampling",
        "Asks the client's model to complete a prompt",
        object(json!({
            "type": "object",
            "properties": {"prompt": {"type": "string", "description": "Text for the model"}},
            "required": ["prompt"]
        })),
    ));
    tools.push(Tool::new(
        "test_elicitation",
        "Asks the user for a username and an email",
        object(json!({
            "type": "object",
            "properties": {"message": {"type": "string", "description": "What to ask"}},
            "required": ["message"]
        })),
    ));
    tools.push(Tool::new(
        "json_schema_2020_12_tool",
        "Takes arguments described with JSON Schema 2020-12 features",
        object(json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "$defs": {
                "address": {
                    "type": "object",
                    "properties": {"street": {"type": "string"}, "city": {"type": "string"}}
                }
            },
            "properties": {
                "name": {"type": "string"},
                "address": {"$ref": "#/$defs/address"}
            },
            "additionalProperties": false
        })),
    ));
    tools
}

fn text(s: impl Into<String>) -> ContentBlock {
    ContentBlock::text(s)
}

fn action_name(a: &ElicitationAction) -> &'static str {
    match a {
        ElicitationAction::Accept => "accept",
        ElicitationAction::Decline => "decline",
        ElicitationAction::Cancel => "cancel",
        _ => "other",
    }
}

impl FixtureHandler {
    async fn elicit(
        &self,
        cx: &RequestContext<RoleServer>,
        message: &str,
        schema: Value,
    ) -> CallToolResult {
        let schema: ElicitationSchema = match serde_json::from_value(schema) {
            Ok(s) => s,
            Err(e) => return CallToolResult::error(vec![text(format!("bad schema: {e}"))]),
        };
        let params = ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: message.to_owned(),
            requested_schema: schema,
        };
        match cx.peer.create_elicitation(params).await {
            Ok(r) => CallToolResult::success(vec![text(format!(
                "elicitation finished: action={}, content={}",
                action_name(&r.action),
                r.content.unwrap_or(Value::Null)
            ))]),
            Err(e) => CallToolResult::error(vec![text(format!("elicitation failed: {e}"))]),
        }
    }
}

impl ServerHandler for FixtureHandler {
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_prompts()
            .enable_logging()
            .enable_completions()
            .build();
        let mut info = ServerConfig::new(caps);
        info.server_info =
            Implementation::new("mcp-conformance-fixture", env!("CARGO_PKG_VERSION"));
        info.instructions = Some("Fixture for the MCP conformance suite".to_owned());
        info
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools().into_iter().find(|t| t.name == name)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.clone().unwrap_or_default();
        let arg = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_owned);
        let result = match request.name.as_ref() {
            "test_simple_text" => CallToolResult::success(vec![text("This is a simple text response for testing.")]),
            "test_image_content" => CallToolResult::success(vec![ContentBlock::image(PNG_1X1, "image/png")]),
            "test_audio_content" => CallToolResult::success(vec![ContentBlock::audio(WAV_EMPTY, "audio/wav")]),
            "test_embedded_resource" => CallToolResult::success(vec![ContentBlock::resource(
                ResourceContents::TextResourceContents {
                    uri: "test://embedded-resource".into(),
                    mime_type: Some("text/plain".into()),
                    text: "This is an embedded resource content.".into(),
                    meta: None,
                },
            )]),
            "test_multiple_content_types" => CallToolResult::success(vec![
                text("Multiple content types test:"),
                ContentBlock::image(PNG_1X1, "image/png"),
                ContentBlock::resource(ResourceContents::TextResourceContents {
                    uri: "test://mixed-content-resource".into(),
                    mime_type: Some("application/json".into()),
                    text: json!({"test": "data", "value": 123}).to_string(),
                    meta: None,
                }),
            ]),
            "test_tool_with_logging" => {
                for step in ["Tool execution started", "Tool processing data", "Tool execution completed"] {
                    let _ = cx
                        .peer
                        .notify_logging_message(
                            LoggingMessageNotificationParam::new(LoggingLevel::Info, json!(step))
                                .with_logger("conformance-fixture"),
                        )
                        .await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                CallToolResult::success(vec![text("Logging test completed")])
            }
            "test_tool_with_progress" => {
                let token = cx.meta.get_progress_token();
                for (done, msg) in [(0.0, "Starting"), (50.0, "Halfway"), (100.0, "Complete")] {
                    if let Some(token) = &token {
                        let _ = cx
                            .peer
                            .notify_progress(
                                ProgressNotificationParam::new(token.clone(), done)
                                    .with_total(100.0)
                                    .with_message(msg),
                            )
                            .await;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                CallToolResult::success(vec![text("Progress test completed")])
            }
            "test_error_handling" => {
                CallToolResult::error(vec![text("This tool intentionally returns an error for testing")])
            }
            "test_sampling" => {
                let prompt = arg("prompt").unwrap_or_else(|| "Hello".to_owned());
                let params = CreateMessageRequestParams::new(vec![SamplingMessage::user_text(prompt)], 100);
                match cx.peer.create_message(params).await {
                    Ok(r) => {
                        let answer = r
                            .message
                            .content
                            .first()
                            .and_then(|c| c.as_text())
                            .map(|t| t.text.clone())
                            .unwrap_or_default();
                        CallToolResult::success(vec![text(format!("LLM response: {answer}"))])
                    }
                    Err(e) => CallToolResult::error(vec![text(format!("sampling failed: {e}"))]),
                }
            }
            "test_elicitation" => {
                let message = arg("message").unwrap_or_else(|| "Please provide your information".to_owned());
                self.elicit(
                    &cx,
                    &message,
                    json!({
                        "type": "object",
                        "properties": {
                            "username": {"type": "string", "description": "User's response"},
                            "email": {"type": "string", "description": "User's email address"}
                        },
                        "required": ["username", "email"]
                    }),
                )
                .await
            }
            "test_elicitation_sep1034_defaults" => {
                self.elicit(
                    &cx,
                    "Please review these values (each has a default)",
                    json!({
                        "type": "object",
                        "properties": {
                            "name": {"type": "string", "description": "User's name", "default": "John Doe"},
                            "age": {"type": "integer", "description": "User's age", "default": 30},
                            "score": {"type": "number", "description": "User's score", "default": 95.5},
                            "status": {"type": "string", "description": "User's status",
                                       "enum": ["active", "inactive", "pending"], "default": "active"},
                            "verified": {"type": "boolean", "description": "Whether user is verified", "default": true}
                        }
                    }),
                )
                .await
            }
            "test_elicitation_sep1330_enums" => {
                self.elicit(
                    &cx,
                    "Pick options",
                    json!({
                        "type": "object",
                        "properties": {
                            "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                            "titledSingle": {"type": "string", "oneOf": [
                                {"const": "value1", "title": "First Option"},
                                {"const": "value2", "title": "Second Option"},
                                {"const": "value3", "title": "Third Option"}
                            ]},
                            "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"],
                                           "enumNames": ["Option One", "Option Two", "Option Three"]},
                            "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                            "titledMulti": {"type": "array", "items": {"anyOf": [
                                {"const": "value1", "title": "First Choice"},
                                {"const": "value2", "title": "Second Choice"},
                                {"const": "value3", "title": "Third Choice"}
                            ]}}
                        }
                    }),
                )
                .await
            }
            "json_schema_2020_12_tool" => {
                let name = arg("name").unwrap_or_else(|| "world".to_owned());
                CallToolResult::success(vec![text(format!("Hello, {name}!"))])
            }
            "test_reconnection" => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                CallToolResult::success(vec![text("Reconnection test completed")])
            }
            other => {
                return Err(ErrorData::invalid_params(format!("unknown tool: {other}"), None));
            }
        };
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new("test://static-text", "Static Text Resource")
                .with_description("A static text resource")
                .with_mime_type("text/plain"),
            Resource::new("test://static-binary", "Static Binary Resource")
                .with_description("A static PNG")
                .with_mime_type("image/png"),
            Resource::new("test://watched-resource", "Watched Resource")
                .with_description("A resource clients may subscribe to")
                .with_mime_type("text/plain"),
        ]))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new("test://template/{id}/data", "Dynamic Resource")
                .with_description("Data for one id")
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.as_str();
        let contents = match uri {
            "test://static-text" => ResourceContents::TextResourceContents {
                uri: uri.into(),
                mime_type: Some("text/plain".into()),
                text: "This is the content of the static text resource.".into(),
                meta: None,
            },
            "test://watched-resource" => ResourceContents::TextResourceContents {
                uri: uri.into(),
                mime_type: Some("text/plain".into()),
                text: "Watched resource content.".into(),
                meta: None,
            },
            "test://static-binary" => ResourceContents::BlobResourceContents {
                uri: uri.into(),
                mime_type: Some("image/png".into()),
                blob: PNG_1X1.into(),
                meta: None,
            },
            _ => match uri
                .strip_prefix("test://template/")
                .and_then(|rest| rest.strip_suffix("/data"))
            {
                Some(id) if !id.is_empty() && !id.contains('/') => ResourceContents::TextResourceContents {
                    uri: uri.into(),
                    mime_type: Some("application/json".into()),
                    text: json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")})
                        .to_string(),
                    meta: None,
                },
                _ => {
                    return Err(ErrorData::resource_not_found(
                        format!("no resource at {uri}"),
                        Some(json!({"uri": uri})),
                    ));
                }
            },
        };
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if let Ok(mut s) = self.subscriptions.lock() {
            s.insert(request.uri.to_string());
        }
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if let Ok(mut s) = self.subscriptions.lock() {
            s.remove(request.uri.as_str());
        }
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(vec![
            Prompt::new(
                "test_simple_prompt",
                Some("A prompt without arguments"),
                None,
            ),
            Prompt::new(
                "test_prompt_with_arguments",
                Some("A prompt with two arguments"),
                Some(vec![
                    PromptArgument::new("arg1")
                        .with_description("First argument")
                        .with_required(true),
                    PromptArgument::new("arg2")
                        .with_description("Second argument")
                        .with_required(false),
                ]),
            ),
            Prompt::new(
                "test_prompt_with_embedded_resource",
                Some("A prompt that embeds a resource"),
                Some(vec![
                    PromptArgument::new("resourceUri")
                        .with_description("URI of the resource to embed")
                        .with_required(false),
                ]),
            ),
            Prompt::new(
                "test_prompt_with_image",
                Some("A prompt with an image"),
                None,
            ),
        ]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let args = request.arguments.clone().unwrap_or_default();
        let arg = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let result = match request.name.as_str() {
            "test_simple_prompt" => GetPromptResult::new(vec![PromptMessage::new_text(
                Role::User,
                "This is a simple test prompt.",
            )]),
            "test_prompt_with_arguments" => GetPromptResult::new(vec![PromptMessage::new_text(
                Role::User,
                format!(
                    "Prompt with arguments: arg1='{}', arg2='{}'",
                    arg("arg1"),
                    arg("arg2")
                ),
            )]),
            "test_prompt_with_embedded_resource" => {
                let uri = Some(arg("resourceUri"))
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| "test://static-text".to_owned());
                GetPromptResult::new(vec![
                    PromptMessage::new_resource(
                        Role::User,
                        uri,
                        Some("text/plain".into()),
                        Some("Embedded resource content for testing.".into()),
                        None,
                        None,
                        None,
                    ),
                    PromptMessage::new_text(
                        Role::User,
                        "Please process the embedded resource above.",
                    ),
                ])
            }
            "test_prompt_with_image" => GetPromptResult::new(vec![
                PromptMessage::new(Role::User, ContentBlock::image(PNG_1X1, "image/png")),
                PromptMessage::new_text(Role::User, "Please analyze the image above."),
            ]),
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown prompt: {other}"),
                    None,
                ));
            }
        };
        Ok(result.into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let prefix = request.argument.value.clone();
        let candidates: Vec<String> = match &request.r#ref {
            Reference::Resource(_) if request.argument.name == "id" => {
                vec!["1".into(), "2".into(), "3".into()]
            }
            Reference::Prompt(_) => vec!["Alice".into(), "Bob".into(), "Charlie".into()],
            _ => Vec::new(),
        };
        let values: Vec<String> = candidates
            .into_iter()
            .filter(|v| v.to_lowercase().starts_with(&prefix.to_lowercase()))
            .collect();
        let info = CompletionInfo::new(values).map_err(|e| ErrorData::internal_error(e, None))?;
        Ok(CompleteResult::new(info))
    }

    async fn set_level(
        &self,
        _request: SetLevelRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }
}
