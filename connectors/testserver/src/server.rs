//! The tools, resources and prompts.

#![allow(deprecated)] // sampling, roots and logging are deprecated in 2026-07-28; legacy servers use them.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::*;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::json;

use crate::hostile;
use crate::output::Garbage;

/// Largest payload `large` returns.
const MAX_LARGE: u64 = 64 << 20;

#[derive(Clone)]
pub struct TestServer {
    #[expect(dead_code, reason = "read by the code #[tool_handler] generates")]
    tool_router: ToolRouter<Self>,
    modern: bool,
    garbage: Garbage,
    counter: Arc<AtomicU64>,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Text {
    /// Any text.
    text: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Add {
    a: f64,
    b: f64,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Sleep {
    /// Milliseconds to sleep.
    ms: u64,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Progress {
    /// Number of progress notifications.
    steps: u32,
    /// Delay between them, in milliseconds.
    #[serde(default)]
    delay_ms: u64,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Message {
    /// What to ask.
    #[serde(default = "default_question")]
    message: String,
}

fn default_question() -> String {
    "What is your name?".into()
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Prompt {
    prompt: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Large {
    /// Size of the text returned, in bytes.
    bytes: u64,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Crash {
    /// Exit code (default 3).
    code: Option<i32>,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Log {
    level: String,
    message: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Lines {
    lines: u32,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct PathArg {
    path: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Count {
    n: u32,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Megabytes {
    mb: u64,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct WriteFile {
    path: String,
    bytes: u64,
    /// Keep the file afterwards (it is removed by default).
    #[serde(default)]
    keep: bool,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Addr {
    /// `ip:port`
    addr: String,
}

/// A structured report, as text and as structured content.
fn report(v: serde_json::Value) -> CallToolResult {
    let mut r = text(v.to_string());
    r.structured_content = Some(v);
    r
}

fn text(s: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(s)])
}

fn failed(e: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(e.to_string(), None)
}

#[tool_router]
impl TestServer {
    pub fn new(modern: bool, garbage: Garbage) -> Self {
        Self { tool_router: Self::tool_router(), modern, garbage, counter: Arc::default() }
    }

    #[tool(description = "Echo the text back, as text and as structured content.")]
    async fn echo(&self, Parameters(Text { text: t }): Parameters<Text>) -> CallToolResult {
        let mut r = text(t.clone());
        r.structured_content = Some(json!({ "text": t }));
        r
    }

    #[tool(description = "Add two numbers; structured result {sum}.")]
    async fn add(&self, Parameters(Add { a, b }): Parameters<Add>) -> CallToolResult {
        let mut r = text((a + b).to_string());
        r.structured_content = Some(json!({ "sum": a + b }));
        r
    }

    #[tool(description = "Sleep for `ms` milliseconds; stops early (and says so on stderr) if cancelled.")]
    async fn sleep(
        &self,
        Parameters(Sleep { ms }): Parameters<Sleep>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => text(format!("slept {ms} ms")),
            _ = ctx.ct.cancelled() => {
                eprintln!("berth-testserver: request {} cancelled", ctx.id);
                text("cancelled")
            }
        }
    }

    #[tool(description = "Send `steps` progress notifications, `delay_ms` apart.")]
    async fn progress(
        &self,
        Parameters(Progress { steps, delay_ms }): Parameters<Progress>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let token = meta.get_progress_token();
        for step in 1..=steps {
            if let Some(token) = &token {
                let p = ProgressNotificationParam::new(token.clone(), f64::from(step))
                    .with_total(f64::from(steps))
                    .with_message(format!("step {step}"));
                peer.notify_progress(p).await.map_err(failed)?;
            }
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        }
        Ok(text(format!("done {steps}")))
    }

    #[tool(description = "Ask the client for a name (form elicitation) and greet it.")]
    async fn elicit(
        &self,
        Parameters(Message { message }): Parameters<Message>,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let schema = ElicitationSchema::builder().required_string_property("name", |s| s).build().map_err(failed)?;
        let params = ElicitRequestParams::FormElicitationParams { meta: None, message, requested_schema: schema };
        let res = peer.create_elicitation(params).await.map_err(failed)?;
        Ok(match res.action {
            ElicitationAction::Accept => {
                let name = res.content.as_ref().and_then(|c| c.get("name")).and_then(|n| n.as_str()).unwrap_or("?");
                text(format!("hello {name}"))
            }
            ElicitationAction::Decline => text("declined"),
            _ => text("cancelled"),
        })
    }

    #[tool(description = "Ask the client's model (sampling) and return its answer.")]
    async fn sample(
        &self,
        Parameters(Prompt { prompt }): Parameters<Prompt>,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let params = CreateMessageRequestParams::new(vec![SamplingMessage::user_text(prompt)], 100);
        let res = peer.create_message(params).await.map_err(failed)?;
        let answer = serde_json::to_value(&res.message).map_err(failed)?;
        Ok(text(answer.pointer("/content/text").and_then(|t| t.as_str()).unwrap_or_default().to_owned()))
    }

    #[tool(description = "Ask the client for its roots and return them as JSON.")]
    async fn roots(&self, peer: Peer<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let res = peer.list_roots().await.map_err(failed)?;
        Ok(text(serde_json::to_string(&res.roots).map_err(failed)?))
    }

    #[tool(description = "Return exactly `bytes` ASCII characters (at most 64 MiB).")]
    async fn large(&self, Parameters(Large { bytes }): Parameters<Large>) -> CallToolResult {
        let n = bytes.min(MAX_LARGE) as usize;
        text("abcdefghij".repeat(n / 10 + 1)[..n].to_owned())
    }

    #[tool(description = "Exit the process at once with `code` (default 3), without answering.")]
    async fn crash(&self, Parameters(Crash { code }): Parameters<Crash>) -> CallToolResult {
        std::process::exit(code.unwrap_or(3))
    }

    #[tool(description = "Print non-JSON lines to stdout, then answer normally.")]
    async fn garbage(&self) -> CallToolResult {
        for raw in [&b"this is not json\n"[..], b"{broken\n", b"\n", b"[1,2,3]\n", b"\xff\xfe not utf-8\n"] {
            let _ = self.garbage.send(raw.to_vec());
        }
        text("ok")
    }

    #[tool(description = "Send a logging notification, then answer.")]
    async fn log(
        &self,
        Parameters(Log { level, message }): Parameters<Log>,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let level: LoggingLevel =
            serde_json::from_value(json!(level)).map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        let params = LoggingMessageNotificationParam::new(level, json!(message)).with_logger("berth-testserver");
        peer.notify_logging_message(params).await.map_err(failed)?;
        Ok(text("logged"))
    }

    #[tool(description = "Send notifications/tools/list_changed.")]
    async fn change_tools(&self, peer: Peer<RoleServer>) -> Result<CallToolResult, ErrorData> {
        peer.notify_tool_list_changed().await.map_err(failed)?;
        Ok(text("changed"))
    }

    #[tool(description = "Report this process: pid, BERTH_TEST_TOKEN, and the names of all environment variables.")]
    async fn whoami(&self) -> CallToolResult {
        let mut names: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
        names.sort();
        let report = json!({
            "pid": std::process::id(),
            "token": std::env::var("BERTH_TEST_TOKEN").ok(),
            "env": names,
        });
        let mut r = text(report.to_string());
        r.structured_content = Some(report);
        r
    }

    #[tool(description = "Write `lines` lines to stderr.")]
    async fn stderr(&self, Parameters(Lines { lines }): Parameters<Lines>) -> CallToolResult {
        for i in 0..lines {
            eprintln!("berth-testserver stderr line {i}");
        }
        text("ok")
    }

    #[tool(description = "Hostile: read a file.")]
    async fn read_file(&self, Parameters(PathArg { path }): Parameters<PathArg>) -> CallToolResult {
        report(hostile::read_file(&path))
    }

    #[tool(description = "Hostile: list a directory.")]
    async fn list_dir(&self, Parameters(PathArg { path }): Parameters<PathArg>) -> CallToolResult {
        report(hostile::list_dir(&path))
    }

    #[tool(description = "Hostile: capabilities, no_new_privs, seccomp and ids of this process.")]
    async fn status(&self) -> CallToolResult {
        report(hostile::status())
    }

    #[tool(description = "Hostile: try mount, unshare, ptrace, bpf, keyctl, setuid(0), chroot.")]
    async fn syscalls(&self) -> CallToolResult {
        report(hostile::syscalls())
    }

    #[tool(description = "Hostile: start up to n processes.")]
    async fn fork_bomb(&self, Parameters(Count { n }): Parameters<Count>) -> CallToolResult {
        report(tokio::task::spawn_blocking(move || hostile::fork_bomb(n)).await.unwrap_or_default())
    }

    #[tool(description = "Hostile: allocate and touch mb MiB.")]
    async fn alloc(&self, Parameters(Megabytes { mb }): Parameters<Megabytes>) -> CallToolResult {
        report(hostile::alloc(mb))
    }

    #[tool(description = "Hostile: write bytes to a file.")]
    async fn write_file(&self, Parameters(WriteFile { path, bytes, keep }): Parameters<WriteFile>) -> CallToolResult {
        report(tokio::task::spawn_blocking(move || hostile::write_file(&path, bytes, keep)).await.unwrap_or_default())
    }

    #[tool(description = "Hostile: open /dev/null up to n times.")]
    async fn open_files(&self, Parameters(Count { n }): Parameters<Count>) -> CallToolResult {
        report(hostile::open_files(n))
    }

    #[tool(description = "Hostile: spin on the CPU for ms milliseconds; reports the CPU time received.")]
    async fn spin(&self, Parameters(Sleep { ms }): Parameters<Sleep>) -> CallToolResult {
        report(tokio::task::spawn_blocking(move || hostile::spin(ms)).await.unwrap_or_default())
    }

    #[tool(description = "Hostile: try a TCP connection to ip:port.")]
    async fn connect(&self, Parameters(Addr { addr }): Parameters<Addr>) -> CallToolResult {
        report(tokio::task::spawn_blocking(move || hostile::connect(&addr)).await.unwrap_or_default())
    }

    #[tool(description = "Increment this process's counter and return it.")]
    async fn counter(&self) -> CallToolResult {
        text((self.counter.fetch_add(1, Ordering::SeqCst) + 1).to_string())
    }
}

#[tool_handler]
impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_prompts()
            .enable_logging()
            .build();
        ServerConfig::new(caps).with_instructions("berth's test server: every tool exercises one path of the bridge.")
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        if self.modern {
            Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
        } else {
            Cow::Owned(vec![
                ProtocolVersion::V_2025_11_25,
                ProtocolVersion::V_2025_06_18,
                ProtocolVersion::V_2025_03_26,
            ])
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let res = Resource::new("test://static/hello", "hello");
        Ok(ListResourcesResult::with_all_items(vec![res]))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let t = ResourceTemplate::new("test://echo/{x}", "echo");
        Ok(ListResourceTemplatesResult::with_all_items(vec![t]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let body = match request.uri.as_str() {
            "test://static/hello" => "hello resource".to_owned(),
            uri => match uri.strip_prefix("test://echo/") {
                Some(x) => x.to_owned(),
                None => return Err(ErrorData::resource_not_found(format!("no resource {uri}"), None)),
            },
        };
        Ok(ReadResourceResult::new(vec![ResourceContents::text(body, request.uri)]).into())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let arg = PromptArgument::new("name").with_required(true);
        Ok(ListPromptsResult::with_all_items(vec![rmcp::model::Prompt::new(
            "greet",
            Some("Greet someone"),
            Some(vec![arg]),
        )]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if request.name != "greet" {
            return Err(ErrorData::invalid_params(format!("no prompt {}", request.name), None));
        }
        let name = request.arguments.as_ref().and_then(|a| a.get("name")).and_then(|v| v.as_str()).unwrap_or("world");
        let msg = PromptMessage::new_text(Role::User, format!("Hello, {name}!"));
        Ok(GetPromptResult::new(vec![msg]).into())
    }
}
