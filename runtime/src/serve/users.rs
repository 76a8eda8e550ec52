//! The admin API's users (`/admin/v1/users`): everyone berth knows of —
//! from sign-ins, tokens, connected accounts, groups, policies and the
//! audit trail — and offboarding one in a single call.
//!
//! berth keeps no user table of its own: the identity provider (or the
//! local development accounts) owns who exists; berth owns what it handed
//! them, which is what offboarding (`POST …/users/{user}/offboard`) takes back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::admin::{Admin, ApiPath};
use super::schema::ErrorBody;
use super::{AppState, json_error, store_failed};

/// One user as berth knows them.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserSummary {
    /// The user (the token subject).
    user: String,
    /// Groups they are in.
    groups: Vec<String>,
    /// Personal access tokens they hold.
    tokens: usize,
    /// Whether they hold a live sign-in (an OAuth refresh token).
    signed_in: bool,
    /// Providers where they connected an upstream account.
    accounts: Vec<String>,
    /// Connectors with a tool policy for them.
    policies: Vec<String>,
    /// Their latest tool call (ms since the epoch), if any.
    last_call_ms: Option<i64>,
}

/// What offboarding took back.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Offboarded {
    /// The user.
    user: String,
    /// Personal access tokens revoked.
    tokens_revoked: usize,
    /// Sign-ins ended (refresh token families); access tokens and browser
    /// sessions issued before now are refused too.
    sign_ins_ended: usize,
    /// Connected upstream accounts deleted, with their grants.
    accounts_removed: usize,
    /// Group memberships removed (a provider-given one returns if they
    /// sign in again and the provider still lists it).
    groups_left: usize,
    /// Tool policies removed.
    policies_removed: usize,
    /// Instances of their own pools, stopped.
    instances_stopped: usize,
}

/// One user.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct UserPath {
    /// The user.
    user: String,
}

/// Everyone berth knows of, by name.
#[utoipa::path(
    get, path = "/admin/v1/users", tag = "users", operation_id = "listUsers",
    responses((status = 200, description = "Every user berth knows of", body = Vec<UserSummary>))
)]
pub(crate) async fn list(_: Admin, State(app): State<Arc<AppState>>) -> Response {
    match gather(&app).await {
        Ok(users) => Json(users.into_values().collect::<Vec<_>>()).into_response(),
        Err(r) => r,
    }
}

/// One user.
#[utoipa::path(
    get, path = "/admin/v1/users/{user}", tag = "users", operation_id = "getUser",
    params(UserPath),
    responses(
        (status = 200, description = "The user", body = UserSummary),
        (status = 404, description = "berth knows nothing of them", body = ErrorBody),
    )
)]
pub(crate) async fn get(_: Admin, State(app): State<Arc<AppState>>, ApiPath(p): ApiPath<UserPath>) -> Response {
    match gather(&app).await {
        Ok(mut users) => match users.remove(&p.user) {
            Some(u) => Json(u).into_response(),
            None => json_error(StatusCode::NOT_FOUND, format!("berth knows nothing of {}", p.user), None),
        },
        Err(r) => r,
    }
}

/// Offboards a user: revokes their tokens, ends their sign-ins, deletes
/// their connected accounts, memberships and policies, and stops their
/// instances. An action, not a deletion: the audit trail keeps their
/// records, so berth still knows of them. Safe to repeat.
#[utoipa::path(
    post, path = "/admin/v1/users/{user}/offboard", tag = "users", operation_id = "offboardUser",
    params(UserPath),
    responses(
        (status = 200, description = "What was taken back", body = Offboarded),
        (status = 400, description = "No user named", body = ErrorBody),
    )
)]
pub(crate) async fn offboard(_: Admin, State(app): State<Arc<AppState>>, ApiPath(p): ApiPath<UserPath>) -> Response {
    let user = p.user;
    if user.is_empty() || user.starts_with("group:") {
        return json_error(StatusCode::BAD_REQUEST, "name a user (not a group)", None);
    }
    let mut done = Offboarded {
        user: user.clone(),
        tokens_revoked: 0,
        sign_ins_ended: 0,
        accounts_removed: 0,
        groups_left: 0,
        policies_removed: 0,
        instances_stopped: 0,
    };
    if let Some(auth) = &app.auth {
        match auth.pats.revoke_user(&user).await {
            Ok(n) => done.tokens_revoked = n,
            Err(e) => return store_failed("token", e),
        }
        match auth.sign_out(&user).await {
            Ok(n) => done.sign_ins_ended = n,
            Err(e) => return store_failed("sign-in", e.error_description),
        }
    }
    if let Some(broker) = &app.broker {
        match broker.forget(&user).await {
            Ok(n) => done.accounts_removed = n,
            Err(e) => return store_failed("connected account", e),
        }
    }
    if let Some(groups) = &app.groups {
        match groups.remove_user(&user).await {
            Ok(n) => done.groups_left = n,
            Err(e) => return store_failed("group membership", e),
        }
    }
    match app.hosting.forget_user(&user).await {
        Ok((policies, stopped)) => (done.policies_removed, done.instances_stopped) = (policies, stopped),
        Err(e) => return store_failed("policy", e),
    }
    tracing::info!(user = %user, ?done, "user offboarded");
    Json(done).into_response()
}

/// Everyone berth knows of, from every source.
async fn gather(app: &AppState) -> Result<BTreeMap<String, UserSummary>, Response> {
    let mut users: BTreeMap<String, UserSummary> = BTreeMap::new();
    if let Some(auth) = &app.auth {
        for t in auth.pats.list(None) {
            entry(&mut users, &t.user).tokens += 1;
        }
        for u in auth.signed_in_users() {
            entry(&mut users, &u).signed_in = true;
        }
    }
    if let Some(broker) = &app.broker {
        for (u, providers) in broker.account_holders().await.map_err(|e| store_failed("connected account", e))? {
            entry(&mut users, &u).accounts = providers;
        }
    }
    if let Some(groups) = &app.groups {
        let mut by_user: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (g, members) in groups.list() {
            for u in members.into_keys() {
                by_user.entry(u).or_default().insert(g.clone());
            }
        }
        for (u, gs) in by_user {
            entry(&mut users, &u).groups = gs.into_iter().collect();
        }
    }
    let subjects = app.hosting.policy_subjects().await.map_err(|e| store_failed("policy", e))?;
    for (subject, connectors) in subjects.into_iter().filter(|(s, _)| !s.starts_with("group:")) {
        entry(&mut users, &subject).policies = connectors;
    }
    if let Some(audit) = &app.audit {
        for (u, at) in audit.last_calls().await.map_err(|e| store_failed("audit", e))? {
            entry(&mut users, &u).last_call_ms = Some(at);
        }
    }
    Ok(users)
}

fn entry<'a>(users: &'a mut BTreeMap<String, UserSummary>, name: &str) -> &'a mut UserSummary {
    users.entry(name.to_owned()).or_insert_with(|| UserSummary { user: name.to_owned(), ..Default::default() })
}
