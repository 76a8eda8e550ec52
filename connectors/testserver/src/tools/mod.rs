//! The tools. Each reaches one path of berth's bridge — including the paths
//! where the server misbehaves — so a test or benchmark can trigger it with
//! an ordinary `tools/call`.

// Sampling, roots and logging are deprecated in 2026-07-28; a legacy server
// uses them, and berth must carry them.
#![allow(deprecated)]

mod hostile;
mod params;

use std::sync::atomic::Ordering;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, CreateMessageRequestParams, ElicitRequestParams, ElicitationAction,
    ElicitationSchema, LoggingLevel, LoggingMessageNotificationParam, ProgressNotificationParam, RequestMetaObject,
    SamplingMessage,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, Peer, RoleServer, tool, tool_router};
use serde::Serialize;
use serde_json::{Value, json};

use crate::output::stderr_lines;
use crate::server::TestServer;
use params::{Add, Crash, Elicit, Large, Lines, Log, Progress, Sample, Sleep, Spin, Sum, Text};

/// Largest payload `large` returns: big enough to test berth's limits,
/// small enough not to exhaust a CI machine.
const MAX_LARGE: u64 = 64 << 20;

/// Longest a `work` call computes.
const MAX_WORK_MS: u64 = 10_000;

/// Held while `work` computes: one call at a time per process.
static WORK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Exit code of `crash` when none is given.
const DEFAULT_CRASH_CODE: i32 = 3;

/// Lines `garbage` prints: prose, a truncated object, an empty line, valid
/// JSON that is not JSON-RPC, and bytes that are not even UTF-8.
const GARBAGE: [&[u8]; 5] = [b"this is not json\n", b"{broken\n", b"\n", b"[1,2,3]\n", b"\xff\xfe not utf-8\n"];

/// Every tool listed from the start.
pub fn static_router() -> ToolRouter<TestServer> {
    TestServer::bridge_router() + TestServer::hostile_router()
}

/// Tools hidden until `change_tools` is called.
pub fn dynamic_router() -> ToolRouter<TestServer> {
    TestServer::late_router()
}

fn text(s: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(s)])
}

/// A result whose text says what the caller expects to read and whose
/// structured content matches the tool's output schema.
fn structured(text_part: impl Into<String>, value: &impl Serialize) -> Result<CallToolResult, ErrorData> {
    let mut result = text(text_part);
    result.structured_content = Some(serde_json::to_value(value).map_err(internal)?);
    Ok(result)
}

fn internal(e: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(e.to_string(), None)
}

#[tool_router(router = bridge_router, vis = "pub(crate)")]
impl TestServer {
    #[tool(
        description = "Echo the text back, as text and as structured content {text}.",
        output_schema = schema_for_output::<Text>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn echo(&self, Parameters(Text { text: t }): Parameters<Text>) -> Result<CallToolResult, ErrorData> {
        structured(t.clone(), &Text { text: t })
    }

    #[tool(description = "Add two numbers; structured result {sum}.", output_schema = schema_for_output::<Sum>())]
    async fn add(&self, Parameters(Add { a, b }): Parameters<Add>) -> Result<CallToolResult, ErrorData> {
        let sum = a + b;
        structured(sum.to_string(), &Sum { sum })
    }

    /// Cancellation reaches a handler as `ctx.ct`; rmcp drops whatever the
    /// handler returns afterwards, so the stderr line is the only trace a
    /// test can observe.
    #[tool(description = "Sleep for `ms` milliseconds; stops early (and says so on stderr) if cancelled.")]
    async fn sleep(
        &self,
        Parameters(Sleep { ms }): Parameters<Sleep>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => text(format!("slept {ms} ms")),
            _ = ctx.ct.cancelled() => {
                stderr_lines([format!("berth-testserver: request {} cancelled", ctx.id)]);
                text("cancelled")
            }
        }
    }

    /// The caller's `progressToken` comes in the request's `_meta`; without
    /// one the tool still takes its time but sends nothing.
    #[tool(description = "Send `steps` progress notifications, `delay_ms` apart, then answer \"done <steps>\".")]
    async fn progress(
        &self,
        Parameters(Progress { steps, delay_ms }): Parameters<Progress>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let token = meta.get_progress_token();
        for step in 1..=steps {
            if step > 1 {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            if let Some(token) = &token {
                let p = ProgressNotificationParam::new(token.clone(), f64::from(step))
                    .with_total(f64::from(steps))
                    .with_message(format!("step {step} of {steps}"));
                peer.notify_progress(p).await.map_err(internal)?;
            }
        }
        Ok(text(format!("done {steps}")))
    }

    #[tool(description = "Ask the client for a name (form elicitation) and greet it.")]
    async fn elicit(
        &self,
        Parameters(Elicit { message }): Parameters<Elicit>,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let schema = ElicitationSchema::builder()
            .required_string_property("name", |s| s.description("Your name"))
            .build()
            .map_err(internal)?;
        let params = ElicitRequestParams::FormElicitationParams { meta: None, message, requested_schema: schema };
        let res = peer.create_elicitation(params).await.map_err(internal)?;
        Ok(text(match res.action {
            ElicitationAction::Accept => {
                let name = res.content.as_ref().and_then(|c| c.get("name")).and_then(|n| n.as_str());
                format!("hello {}", name.unwrap_or("?"))
            }
            ElicitationAction::Decline => "declined".into(),
            // Cancel, and whatever a later revision adds: the user did not answer.
            _ => "cancelled".into(),
        }))
    }

    #[tool(description = "Ask the client's model (sampling/createMessage) and return its text.")]
    async fn sample(
        &self,
        Parameters(Sample { prompt }): Parameters<Sample>,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let params = CreateMessageRequestParams::new(vec![SamplingMessage::user_text(prompt)], 100);
        let res = peer.create_message(params).await.map_err(internal)?;
        let answer: Vec<String> =
            res.message.content.into_vec().iter().filter_map(|c| c.as_text()).map(|t| t.text.clone()).collect();
        Ok(text(answer.concat()))
    }

    #[tool(description = "Ask the client for its roots (roots/list) and return them as JSON.")]
    async fn roots(&self, peer: Peer<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let res = peer.list_roots().await.map_err(internal)?;
        Ok(text(serde_json::to_string(&res.roots).map_err(internal)?))
    }

    #[tool(description = "Return exactly `bytes` ASCII characters (at most 64 MiB), repeating \"abcdefghij\".")]
    async fn large(&self, Parameters(Large { bytes }): Parameters<Large>) -> CallToolResult {
        // Capped at 64 MiB, so the cast cannot truncate.
        let n = bytes.min(MAX_LARGE) as usize;
        let mut s = "abcdefghij".repeat(n.div_ceil(10));
        s.truncate(n);
        text(s)
    }

    #[tool(
        description = "Exit the process at once with `code` (default 3), without answering.",
        annotations(destructive_hint = true)
    )]
    async fn crash(&self, Parameters(Crash { code }): Parameters<Crash>) -> CallToolResult {
        std::process::exit(code.unwrap_or(DEFAULT_CRASH_CODE))
    }

    #[tool(description = "Wedge the server: it stays alive and never writes another message.")]
    async fn freeze(&self) -> CallToolResult {
        crate::output::freeze();
        std::future::pending().await
    }

    #[tool(description = "Print non-JSON lines to stdout, then answer \"ok\" normally.")]
    async fn garbage(&self) -> CallToolResult {
        for raw in GARBAGE {
            // Fails only once stdout is gone, when there is no one to answer anyway.
            let _ = self.garbage.send(raw.to_vec());
        }
        text("ok")
    }

    #[tool(description = "Send a notifications/message logging notification, then answer \"logged\".")]
    async fn log(
        &self,
        Parameters(Log { level, message }): Parameters<Log>,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let level: LoggingLevel = serde_json::from_value(json!(level))
            .map_err(|_| ErrorData::invalid_params(format!("unknown logging level {level:?}"), None))?;
        let params = LoggingMessageNotificationParam::new(level, json!(message)).with_logger("berth-testserver");
        peer.notify_logging_message(params).await.map_err(internal)?;
        Ok(text("logged"))
    }

    #[tool(description = "Reveal the `dynamic` tool and send notifications/tools/list_changed.")]
    async fn change_tools(&self, peer: Peer<RoleServer>) -> Result<CallToolResult, ErrorData> {
        self.dynamic_enabled.store(true, Ordering::SeqCst);
        peer.notify_tool_list_changed().await.map_err(internal)?;
        Ok(text("changed"))
    }

    #[tool(description = "Compute for `ms` milliseconds (at most 10 s), one call at a time per process, as a \
                       single-threaded server would; answers \"worked <ms> ms\".")]
    async fn work(&self, Parameters(Spin { ms }): Parameters<Spin>) -> Result<CallToolResult, ErrorData> {
        let ms = ms.min(MAX_WORK_MS);
        tokio::task::spawn_blocking(move || {
            let _one = WORK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let until = std::time::Instant::now() + Duration::from_millis(ms);
            let mut x = 0u64;
            while std::time::Instant::now() < until {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        })
        .await
        .map_err(internal)?;
        Ok(text(format!("worked {ms} ms")))
    }

    #[tool(description = "Return the request's `_meta` as the server received it, as JSON.")]
    async fn meta(&self, meta: RequestMetaObject) -> Result<CallToolResult, ErrorData> {
        let v = Value::Object((**meta).clone());
        structured(v.to_string(), &v)
    }

    #[tool(description = "Report this process: pid, BERTH_TEST_TOKEN, and the names of all environment variables.")]
    async fn whoami(&self) -> Result<CallToolResult, ErrorData> {
        let mut names: Vec<String> = std::env::vars_os().map(|(k, _)| k.to_string_lossy().into_owned()).collect();
        names.sort();
        let report = json!({
            "pid": std::process::id(),
            "token": std::env::var("BERTH_TEST_TOKEN").ok(),
            "env": names,
        });
        structured(report.to_string(), &report)
    }

    #[tool(description = "Write `lines` lines to stderr, then answer \"ok\".")]
    async fn stderr(&self, Parameters(Lines { lines }): Parameters<Lines>) -> CallToolResult {
        stderr_lines((0..lines).map(|i| format!("berth-testserver stderr line {i}")));
        text("ok")
    }

    #[tool(description = "Increment this process's counter and return its new value.")]
    async fn counter(&self) -> CallToolResult {
        text((self.counter.fetch_add(1, Ordering::SeqCst) + 1).to_string())
    }
}

#[tool_router(router = late_router, vis = "pub(crate)")]
impl TestServer {
    #[tool(description = "Exists only after change_tools; answers \"dynamic\".")]
    async fn dynamic(&self) -> CallToolResult {
        text("dynamic")
    }
}
