//! berth's connector catalog: manifests, validation, the versioned store and artifacts.
//!
//! Empty until the catalog issue lands: it exists now so the dependency direction
//! (`runtime` → `catalog`, never the reverse) holds from the first commit.
