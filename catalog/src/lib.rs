//! berth's connector catalog: manifests, their validation, the versioned store
//! and the artifacts a launch needs.
//!
//! A manifest is the official registry's `server.json` plus berth's hosting
//! extension ([`manifest::EXTENSION_KEY`]). This crate knows nothing of HTTP
//! routing or sandboxes: the runtime turns a [`Manifest`] into a launch.

pub mod artifact;
pub mod manifest;
mod problem;
pub mod store;
mod validate;

pub use manifest::Manifest;
pub use problem::{Invalid, Problem};
pub use store::{Entry, Status, Store, StoreError, VersionRef};
