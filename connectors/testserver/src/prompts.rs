//! One prompt with one required argument: enough to test listing, getting
//! and argument errors through berth.

use rmcp::ErrorData;
use rmcp::model::{GetPromptRequestParams, GetPromptResult, Prompt, PromptArgument, PromptMessage, Role};

const GREET: &str = "greet";

pub fn list() -> Vec<Prompt> {
    let name = PromptArgument::new("name").with_description("Who to greet").with_required(true);
    vec![Prompt::new(GREET, Some("Greet someone by name"), Some(vec![name]))]
}

/// `greet` with `name` set gives one user message, "Hello, <name>!".
pub fn get(request: &GetPromptRequestParams) -> Result<GetPromptResult, ErrorData> {
    if request.name != GREET {
        return Err(ErrorData::invalid_params(format!("no prompt {:?}", request.name), None));
    }
    let name = request
        .arguments
        .as_ref()
        .and_then(|args| args.get("name"))
        .and_then(|v| v.as_str())
        .ok_or_else(|| ErrorData::invalid_params("greet needs the argument \"name\"", None))?;
    let message = PromptMessage::new_text(Role::User, format!("Hello, {name}!"));
    Ok(GetPromptResult::new(vec![message]).with_description("A greeting"))
}
