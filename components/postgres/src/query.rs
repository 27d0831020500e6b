//! The state query API translated to SQL over the `value_json` JSONB column:
//! `EQ`, `IN`, `AND`, `OR` filters on dotted paths, multi-key `ORDER BY`,
//! and `LIMIT`/`OFFSET` pages whose token is the offset. Every value and
//! path is a bound parameter; only the table name (a checked identifier) is
//! spliced in.

use outrigger_component_sdk::ComponentError;
use outrigger_component_sdk::state::{QueryRequest, SortOrder};
use serde_json::Value;

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    /// A path as `text[]`.
    Path(Vec<String>),
    /// A JSON value, bound as text and cast to `jsonb`.
    Json(String),
    /// A count.
    Int(i64),
}

fn path(field: &str) -> Vec<String> {
    let field = field.strip_prefix("value.").unwrap_or(field);
    field.split('.').map(str::to_owned).collect()
}

struct Builder {
    params: Vec<Param>,
}

impl Builder {
    fn push(&mut self, p: Param) -> usize {
        self.params.push(p);
        self.params.len()
    }

    fn filter(
        &mut self,
        filter: &serde_json::Map<String, Value>,
        at: &str,
    ) -> Result<String, ComponentError> {
        let mut clauses = Vec::new();
        for (op, arg) in filter {
            let here = format!("{at}.{op}");
            clauses.push(match op.as_str() {
                "EQ" => {
                    let pairs = arg.as_object().ok_or_else(|| {
                        ComponentError::invalid_argument(&here, "must be {\"field\": value}")
                    })?;
                    let mut parts = Vec::new();
                    for (field, value) in pairs {
                        let p = self.push(Param::Path(path(field)));
                        let v = self.push(Param::Json(value.to_string()));
                        parts.push(format!("(value_json #> ${p}::text[]) = ${v}::jsonb"));
                    }
                    format!(
                        "({})",
                        if parts.is_empty() {
                            "TRUE".to_owned()
                        } else {
                            parts.join(" AND ")
                        }
                    )
                }
                "IN" => {
                    let pairs = arg.as_object().ok_or_else(|| {
                        ComponentError::invalid_argument(&here, "must be {\"field\": [values]}")
                    })?;
                    let mut parts = Vec::new();
                    for (field, values) in pairs {
                        let list = values.as_array().ok_or_else(|| {
                            ComponentError::invalid_argument(
                                format!("{here}.{field}"),
                                "must be a list",
                            )
                        })?;
                        let p = self.push(Param::Path(path(field)));
                        let options: Vec<String> = list
                            .iter()
                            .map(|v| format!("${}::jsonb", self.push(Param::Json(v.to_string()))))
                            .collect();
                        parts.push(if options.is_empty() {
                            "FALSE".to_owned()
                        } else {
                            format!("(value_json #> ${p}::text[]) IN ({})", options.join(", "))
                        });
                    }
                    format!(
                        "({})",
                        if parts.is_empty() {
                            "TRUE".to_owned()
                        } else {
                            parts.join(" AND ")
                        }
                    )
                }
                "AND" | "OR" => {
                    let list = arg.as_array().ok_or_else(|| {
                        ComponentError::invalid_argument(&here, "must be a list of filters")
                    })?;
                    let mut parts = Vec::new();
                    for (i, f) in list.iter().enumerate() {
                        let f = f.as_object().ok_or_else(|| {
                            ComponentError::invalid_argument(
                                format!("{here}[{i}]"),
                                "must be a filter object",
                            )
                        })?;
                        parts.push(self.filter(f, &format!("{here}[{i}]"))?);
                    }
                    let joiner = if op == "AND" { " AND " } else { " OR " };
                    let empty = if op == "AND" { "TRUE" } else { "FALSE" };
                    format!(
                        "({})",
                        if parts.is_empty() {
                            empty.to_owned()
                        } else {
                            parts.join(joiner)
                        }
                    )
                }
                other => {
                    return Err(ComponentError::invalid_argument(
                        format!("{at}.{other}"),
                        "unknown operator; use EQ, IN, AND or OR",
                    ));
                }
            });
        }
        Ok(if clauses.is_empty() {
            "TRUE".to_owned()
        } else {
            clauses.join(" AND ")
        })
    }
}

/// The SQL (selecting `key, value, etag`) and its parameters for `req`, plus
/// the offset it starts at.
///
/// # Errors
/// A malformed filter or token, named.
pub(crate) fn sql(
    table: &str,
    req: &QueryRequest,
) -> Result<(String, Vec<Param>, i64), ComponentError> {
    let mut b = Builder { params: Vec::new() };
    let filter = if req.filter.is_empty() {
        "TRUE".to_owned()
    } else {
        format!(
            "value_json IS NOT NULL AND {}",
            b.filter(&req.filter, "query.filter")?
        )
    };
    let mut order = Vec::new();
    for (field, direction) in &req.sort {
        let p = b.push(Param::Path(path(field)));
        let dir = if *direction == SortOrder::Descending {
            "DESC"
        } else {
            "ASC"
        };
        order.push(format!("(value_json #> ${p}::text[]) {dir} NULLS LAST"));
    }
    order.push("key ASC".to_owned());
    let offset = match &req.token {
        None => 0,
        Some(t) => t.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ComponentError::invalid_argument(
                "query.pagination.token",
                format!("{t:?} is not a token from this store"),
            )
        })?,
    };
    let mut text = format!(
        "SELECT key, value, etag FROM {table} WHERE (expires_at IS NULL OR expires_at > now()) AND {filter} ORDER BY {}",
        order.join(", ")
    );
    if req.limit > 0 {
        let limit = b.push(Param::Int(i64::try_from(req.limit).unwrap_or(i64::MAX)));
        let off = b.push(Param::Int(offset));
        text.push_str(&format!(" LIMIT ${limit} OFFSET ${off}"));
    }
    Ok((text, b.params, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(filter: Value) -> QueryRequest {
        QueryRequest {
            filter: filter.as_object().cloned().unwrap_or_default(),
            ..Default::default()
        }
    }

    #[test]
    fn filters_become_bound_jsonb_comparisons() {
        let (text, params, _) = sql(
            "state",
            &req(serde_json::json!({"AND": [{"EQ": {"value.a.b": 1}}, {"IN": {"c": ["x", "y"]}}]})),
        )
        .unwrap();
        assert!(
            text.contains("(value_json #> $1::text[]) = $2::jsonb"),
            "{text}"
        );
        assert!(text.contains("IN ($4::jsonb, $5::jsonb)"), "{text}");
        assert_eq!(params[0], Param::Path(vec!["a".into(), "b".into()]));
        assert_eq!(params[4], Param::Json("\"y\"".into()));
        assert!(!text.contains("\"x\""), "values are never spliced into SQL");
    }

    #[test]
    fn bad_filters_name_the_field() {
        let err = sql("state", &req(serde_json::json!({"LIKE": {}}))).unwrap_err();
        assert!(err.message().contains("query.filter.LIKE"), "{err}");
        let mut r = req(serde_json::json!({}));
        r.token = Some("-1".into());
        assert!(sql("state", &r).unwrap_err().message().contains("token"));
    }
}
