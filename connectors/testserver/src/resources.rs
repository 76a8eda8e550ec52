//! One static resource and one template, enough to test listing, reading
//! and the not-found error through berth.

use rmcp::ErrorData;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate};

pub const HELLO_URI: &str = "test://static/hello";
pub const HELLO_TEXT: &str = "hello resource";
const ECHO_PREFIX: &str = "test://echo/";

pub fn list() -> Vec<Resource> {
    vec![Resource::new(HELLO_URI, "hello").with_mime_type("text/plain")]
}

pub fn templates() -> Vec<ResourceTemplate> {
    vec![ResourceTemplate::new(format!("{ECHO_PREFIX}{{x}}"), "echo").with_mime_type("text/plain")]
}

/// The static resource, or `test://echo/<x>` whose text is `<x>`.
pub fn read(uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let body = match uri {
        HELLO_URI => HELLO_TEXT,
        _ => uri
            .strip_prefix(ECHO_PREFIX)
            .ok_or_else(|| ErrorData::resource_not_found(format!("no resource {uri}"), None))?,
    };
    Ok(ReadResourceResult::new(vec![ResourceContents::text(body, uri).with_mime_type("text/plain")]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_template_and_missing() {
        let text_of = |uri| serde_json::to_value(read(uri).unwrap()).unwrap()["contents"][0]["text"].clone();
        assert_eq!(text_of(HELLO_URI), HELLO_TEXT);
        assert_eq!(text_of("test://echo/zürich"), "zürich");
        assert!(read("test://nope").is_err());
    }
}
