//! berth's authorization server and per-user credential broker.
//!
//! Empty until the OAuth issue lands: it exists now so the dependency direction
//! (`runtime` → `oauth`, never the reverse and never `oauth` → `sandbox`/`catalog`)
//! holds from the first commit.
