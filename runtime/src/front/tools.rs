//! The annotations of a connector's tools, for policies that judge tools by
//! them: learned from every `tools/list` answer that passes through, and
//! asked of the server when a call names a tool berth has not seen listed.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::RwLock;
use serde_json::{Value, json};

use super::{CallerRef, Front};
use crate::era;
use crate::jsonrpc::ErrorObject;
use crate::upstream::{Era, client_info};

/// Most `tools/list` pages read when asking the server.
const MAX_PAGES: usize = 32;

/// Tool name → its `annotations` (`Null` when it declares none).
#[derive(Debug, Default)]
pub struct ToolIndex {
    by_name: RwLock<HashMap<String, Value>>,
}

impl ToolIndex {
    /// Records the tools of one `tools/list` result (page).
    pub fn record(&self, result: &Value) {
        let Some(tools) = result.get("tools").and_then(Value::as_array) else { return };
        let mut index = self.by_name.write();
        for t in tools {
            if let Some(name) = t.get("name").and_then(Value::as_str) {
                index.insert(name.to_owned(), t.get("annotations").cloned().unwrap_or(Value::Null));
            }
        }
    }

    /// A tool's annotations, if it has been listed.
    pub fn get(&self, name: &str) -> Option<Value> {
        self.by_name.read().get(name).cloned()
    }
}

impl Front {
    /// Makes sure `tool` is in the index if the server has it, listing the
    /// server's tools (as this caller's instance sees them) when it is not.
    pub(super) async fn learn_tool(&self, tool: &str, caller: &CallerRef) -> Result<(), ErrorObject> {
        if self.tools.get(tool).is_some() {
            return Ok(());
        }
        let ready = self.pool_for(caller).await?.ready().await?;
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut params = cursor.take().map(|c| json!({"cursor": c}));
            if ready.profile.era == Era::Modern {
                era::add_modern_meta(&mut params, &client_info(), &json!({}));
            }
            let outcome = ready.conn.request("tools/list", params, Duration::from_secs(30)).await;
            let Ok(raw) = outcome else { break };
            let Ok(page) = serde_json::from_str::<Value>(raw.get()) else { break };
            self.tools.record(&page);
            cursor = page.get("nextCursor").and_then(Value::as_str).map(str::to_owned);
            if cursor.is_none() || self.tools.get(tool).is_some() {
                break;
            }
        }
        Ok(())
    }
}
