//! The server's state and its `ServerHandler`: what it announces, which
//! protocol versions it accepts, and how calls reach the tools.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, GetPromptRequestParams, GetPromptResponse, Implementation,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::output::Garbage;
use crate::{prompts, resources, tools};

const INSTRUCTIONS: &str = "berth's test server: each tool exercises one path of the bridge, failures included.";

/// Shared by every request of the one session a STDIO process serves.
#[derive(Clone)]
pub struct TestServer {
    /// Built once; `#[tool_handler]`'s default would rebuild it per call.
    tools: Arc<ToolRouter<Self>>,
    /// Tools listed and callable only once `dynamic_enabled` is set.
    late_tools: Arc<ToolRouter<Self>>,
    pub(crate) dynamic_enabled: Arc<AtomicBool>,
    pub(crate) counter: Arc<AtomicU64>,
    pub(crate) garbage: Garbage,
    modern: bool,
}

impl TestServer {
    pub fn new(modern: bool, garbage: Garbage) -> Self {
        Self {
            tools: Arc::new(tools::static_router()),
            late_tools: Arc::new(tools::dynamic_router()),
            dynamic_enabled: Arc::default(),
            counter: Arc::default(),
            garbage,
            modern,
        }
    }

    /// The router that owns `name` right now. A hidden tool falls through to
    /// the static router, which answers "tool not found" as for any unknown name.
    fn router_for(&self, name: &str) -> &ToolRouter<Self> {
        if self.dynamic_enabled.load(Ordering::SeqCst) && self.late_tools.has_route(name) {
            &self.late_tools
        } else {
            &self.tools
        }
    }
}

/// Tools are dispatched by hand rather than with `#[tool_handler]` because
/// the tool list changes at run time (`change_tools`).
impl ServerHandler for TestServer {
    #[expect(deprecated, reason = "logging is deprecated in 2026-07-28; a legacy server still declares it")]
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_prompts()
            .enable_logging()
            .build();
        ServerConfig::new(caps)
            // The default names the crate that calls it: rmcp.
            .with_server_info(Implementation::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    /// Legacy by default, like most servers in the wild: rmcp then answers
    /// `server/discover` with an unsupported-version error (listing these),
    /// which sends berth to `initialize`. `--modern` adds 2026-07-28.
    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        let newest = if self.modern { ProtocolVersion::V_2026_07_28 } else { ProtocolVersion::LATEST_WITH_INITIALIZE };
        Cow::Borrowed(ProtocolVersion::known_up_to(&newest))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut listed = self.tools.list_all();
        // A server that changes what a tool says, as a rug pull would
        // (berth's tool pinning is tested with it).
        if let Ok(description) = std::env::var("BERTH_TEST_ECHO_DESCRIPTION") {
            for tool in listed.iter_mut().filter(|t| t.name == "echo") {
                tool.description = Some(description.clone().into());
            }
        }
        if self.dynamic_enabled.load(Ordering::SeqCst) {
            listed.extend(self.late_tools.list_all());
        }
        Ok(ListToolsResult::with_all_items(listed))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let router = self.router_for(&request.name);
        router.call(ToolCallContext::new(self, request, context)).await
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.router_for(name).get(name).cloned()
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(resources::list()))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(resources::templates()))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        resources::read(&request.uri).map(Into::into)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(prompts::list()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        prompts::get(&request).map(Into::into)
    }
}
