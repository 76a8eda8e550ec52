//! Typed reads of a JSON document that record a [`Problem`] instead of failing.

use serde_json::{Map, Value};

use super::problem;
use crate::problem::Pointer;
use crate::{Invalid, Problem};

/// Collects problems while rules read the document.
#[derive(Default)]
pub(crate) struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    pub(crate) fn report(&mut self, at: &Pointer, message: impl Into<String>) {
        self.problems.push(problem(at, message));
    }

    pub(crate) fn finish(self) -> Result<(), Invalid> {
        if self.problems.is_empty() { Ok(()) } else { Err(Invalid { problems: self.problems }) }
    }

    pub(crate) fn object<'a>(&mut self, v: &'a Value, at: &Pointer) -> Option<&'a Map<String, Value>> {
        let obj = v.as_object();
        if obj.is_none() {
            self.report(at, format!("expected an object, found {}", kind(v)));
        }
        obj
    }

    /// A string member; `required` ones report when missing.
    pub(crate) fn string<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        at: &Pointer,
        key: &str,
        required: bool,
    ) -> Option<&'a str> {
        let here = at.key(key);
        match obj.get(key) {
            None if required => {
                self.report(&here, "required string is missing");
                None
            }
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                self.report(&here, format!("expected a string, found {}", kind(other)));
                None
            }
        }
    }

    /// A string member with a length range in characters.
    pub(crate) fn bounded_string<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        at: &Pointer,
        key: &str,
        required: bool,
        len: std::ops::RangeInclusive<usize>,
    ) -> Option<&'a str> {
        let s = self.string(obj, at, key, required)?;
        let n = s.chars().count();
        if !len.contains(&n) {
            self.report(&at.key(key), format!("expected {} to {} characters, found {n}", len.start(), len.end()));
        }
        Some(s)
    }

    /// An array member; each element is handed to `each` with its pointer.
    pub(crate) fn array<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        at: &Pointer,
        key: &str,
        mut each: impl FnMut(&mut Self, &'a Value, Pointer),
    ) {
        let here = at.key(key);
        match obj.get(key) {
            None => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    each(self, item, here.index(i));
                }
            }
            Some(other) => self.report(&here, format!("expected an array, found {}", kind(other))),
        }
    }

    /// An optional object member.
    pub(crate) fn member_object<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        at: &Pointer,
        key: &str,
    ) -> Option<&'a Map<String, Value>> {
        obj.get(key).and_then(|v| self.object(v, &at.key(key)))
    }

    /// An optional boolean member.
    pub(crate) fn boolean(&mut self, obj: &Map<String, Value>, at: &Pointer, key: &str) -> Option<bool> {
        match obj.get(key)? {
            Value::Bool(b) => Some(*b),
            other => {
                self.report(&at.key(key), format!("expected true or false, found {}", kind(other)));
                None
            }
        }
    }

    /// An optional whole number within `range`.
    pub(crate) fn whole(
        &mut self,
        obj: &Map<String, Value>,
        at: &Pointer,
        key: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Option<u64> {
        let v = obj.get(key)?;
        match v.as_u64() {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                self.report(
                    &at.key(key),
                    format!("expected a whole number from {} to {}, found {v}", range.start(), range.end()),
                );
                None
            }
        }
    }

    /// An optional string that must be one of `allowed`.
    pub(crate) fn one_of<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        at: &Pointer,
        key: &str,
        required: bool,
        allowed: &[&str],
    ) -> Option<&'a str> {
        let s = self.string(obj, at, key, required)?;
        if !allowed.contains(&s) {
            self.report(&at.key(key), format!("expected one of {}, found \"{s}\"", quoted(allowed)));
            return None;
        }
        Some(s)
    }

    /// Members not in `known` are reported (berth's own objects are strict,
    /// so a misspelt limit is an error rather than silently ignored).
    pub(crate) fn only(&mut self, obj: &Map<String, Value>, at: &Pointer, known: &[&str]) {
        for key in obj.keys().filter(|k| !known.contains(&k.as_str())) {
            self.report(&at.key(key), format!("unknown field; expected one of {}", quoted(known)));
        }
    }
}

/// The JSON type of `v`, for messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn quoted(items: &[&str]) -> String {
    items.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")
}
