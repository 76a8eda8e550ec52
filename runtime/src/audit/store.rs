//! Audit records in the runtime's table of the catalog database.

use sqlx::{AnyPool, Row};

use super::{AuditRecord, Decision};

/// Filters of an audit query; all optional.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AuditQuery {
    /// Exactly this user.
    pub user: Option<String>,
    /// Exactly this `name@version`, or any version of `name`.
    pub connector: Option<String>,
    /// Exactly this tool.
    pub tool: Option<String>,
    /// `allow` or `deny`.
    pub decision: Option<Decision>,
    /// Records at or after this time (milliseconds since the epoch).
    #[serde(default, deserialize_with = "number")]
    pub since_ms: Option<i64>,
    /// Most records, newest first (default 100, at most 10 000).
    #[serde(default, deserialize_with = "number")]
    pub limit: Option<u32>,
}

/// A number written as a number or as text. The admin API flattens this
/// query into its own parameters, and serde hands flattened fields of a query
/// string over as text, so without this `?limit=10` was refused as "expected u32".
fn number<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr + serde::Deserialize<'de>,
    T::Err: std::fmt::Display,
{
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText<T> {
        Number(T),
        Text(String),
    }
    match Option::<NumberOrText<T>>::deserialize(d)? {
        None => Ok(None),
        Some(NumberOrText::Number(n)) => Ok(Some(n)),
        Some(NumberOrText::Text(t)) => t.trim().parse().map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod query_tests {
    use super::*;

    /// As the admin API reads it: flattened beside its own parameters.
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(flatten)]
        query: AuditQuery,
        #[allow(dead_code)]
        format: Option<String>,
    }

    #[test]
    fn numbers_parse_from_text_and_numbers_alike() {
        let text: Params = serde_json::from_str(r#"{"limit": "10", "since_ms": "1700000000000", "format": "jsonl"}"#)
            .expect("numbers as text");
        assert_eq!((text.query.limit, text.query.since_ms), (Some(10), Some(1_700_000_000_000)));
        let numbers: AuditQuery = serde_json::from_str(r#"{"limit": 5}"#).expect("numbers");
        assert_eq!((numbers.limit, numbers.since_ms), (Some(5), None));
        assert!(serde_json::from_str::<AuditQuery>(r#"{"limit": "ten"}"#).is_err());
        assert!(serde_json::from_str::<AuditQuery>(r#"{"limit": "-1"}"#).is_err());
    }
}

/// The audit table.
#[derive(Clone)]
pub struct AuditStore {
    pool: AnyPool,
}

impl AuditStore {
    /// The audit table in `pool` (see [`crate::db::open`]).
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// Writes a batch in one transaction.
    pub async fn insert(&self, batch: &[AuditRecord]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for r in batch {
            sqlx::query(
                "INSERT INTO berth_audit
                 (at_ms, user_id, client_id, connector, tool, decision, outcome, error, duration_ms, instance, arguments)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(r.at_ms)
            .bind(&r.user)
            .bind(&r.client_id)
            .bind(&r.connector)
            .bind(&r.tool)
            .bind(if r.decision == Decision::Allow { "allow" } else { "deny" })
            .bind(&r.outcome)
            .bind(&r.error)
            .bind(r.duration_ms)
            .bind(&r.instance)
            .bind(r.arguments.as_ref().map(serde_json::Value::to_string))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// Each user's latest call (ms since the epoch).
    pub async fn last_calls(&self) -> Result<std::collections::HashMap<String, i64>, sqlx::Error> {
        let rows =
            sqlx::query("SELECT user_id, MAX(at_ms) AS last_ms FROM berth_audit WHERE user_id <> '' GROUP BY user_id")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| Ok((r.try_get("user_id")?, r.try_get("last_ms")?))).collect()
    }

    /// Records matching `q`, newest first.
    pub async fn query(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, sqlx::Error> {
        let limit = q.limit.unwrap_or(100).clamp(1, 10_000) as i64;
        // Empty filters match everything: one static statement, no string building.
        let rows = sqlx::query(
            "SELECT at_ms, user_id, client_id, connector, tool, decision, outcome, error, duration_ms, instance, arguments
             FROM berth_audit
             WHERE ($1 = '' OR user_id = $1)
               AND ($2 = '' OR connector = $2 OR connector LIKE $3)
               AND ($4 = '' OR tool = $4)
               AND ($5 = '' OR decision = $5)
               AND at_ms >= $6
             ORDER BY at_ms DESC LIMIT $7",
        )
        .bind(q.user.clone().unwrap_or_default())
        .bind(q.connector.clone().unwrap_or_default())
        .bind(format!("{}@%", q.connector.clone().unwrap_or_default()))
        .bind(q.tool.clone().unwrap_or_default())
        .bind(match q.decision {
            Some(Decision::Allow) => "allow",
            Some(Decision::Deny) => "deny",
            None => "",
        })
        .bind(q.since_ms.unwrap_or(0))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    at_ms: r.try_get("at_ms")?,
                    user: r.try_get("user_id")?,
                    client_id: r.try_get("client_id")?,
                    connector: r.try_get("connector")?,
                    tool: r.try_get("tool")?,
                    decision: if r.try_get::<String, _>("decision")? == "deny" {
                        Decision::Deny
                    } else {
                        Decision::Allow
                    },
                    outcome: r.try_get("outcome")?,
                    error: r.try_get("error")?,
                    duration_ms: r.try_get("duration_ms")?,
                    instance: r.try_get("instance")?,
                    arguments: r.try_get::<Option<String>, _>("arguments")?.and_then(|a| serde_json::from_str(&a).ok()),
                })
            })
            .collect()
    }
}
