//! The state query API evaluated over JSON values, for stores whose backend
//! cannot run the query itself: `EQ`, `IN`, `AND`, `OR` filters on dotted
//! paths into the value, multi-key sort, and an offset page token.

use std::cmp::Ordering;

use crate::ComponentError;
use crate::state::{QueryItem, QueryRequest, QueryResponse, SortOrder};
use serde_json::Value;

fn path<'a>(value: &'a Value, dotted: &str) -> Option<&'a Value> {
    // Dapr queries name fields as `value.a.b` or `a.b`.
    let dotted = dotted.strip_prefix("value.").unwrap_or(dotted);
    dotted.split('.').try_fold(value, |v, part| v.get(part))
}

fn matches(filter: &serde_json::Map<String, Value>, value: &Value) -> Result<bool, ComponentError> {
    for (op, arg) in filter {
        let ok = match op.as_str() {
            "EQ" => {
                let pairs = arg.as_object().ok_or_else(|| {
                    ComponentError::invalid_argument(
                        "query.filter.EQ",
                        "must be {\"field\": value}",
                    )
                })?;
                pairs
                    .iter()
                    .all(|(field, wanted)| path(value, field) == Some(wanted))
            }
            "IN" => {
                let pairs = arg.as_object().ok_or_else(|| {
                    ComponentError::invalid_argument(
                        "query.filter.IN",
                        "must be {\"field\": [values]}",
                    )
                })?;
                let mut all = true;
                for (field, wanted) in pairs {
                    let list = wanted.as_array().ok_or_else(|| {
                        ComponentError::invalid_argument(
                            format!("query.filter.IN.{field}"),
                            "must be a list",
                        )
                    })?;
                    all &= path(value, field).is_some_and(|v| list.contains(v));
                }
                all
            }
            "AND" | "OR" => {
                let list = arg.as_array().ok_or_else(|| {
                    ComponentError::invalid_argument(
                        format!("query.filter.{op}"),
                        "must be a list of filters",
                    )
                })?;
                let mut results = Vec::with_capacity(list.len());
                for (i, f) in list.iter().enumerate() {
                    let f = f.as_object().ok_or_else(|| {
                        ComponentError::invalid_argument(
                            format!("query.filter.{op}[{i}]"),
                            "must be a filter object",
                        )
                    })?;
                    results.push(matches(f, value)?);
                }
                if op == "AND" {
                    results.iter().all(|r| *r)
                } else {
                    results.iter().any(|r| *r)
                }
            }
            other => {
                return Err(ComponentError::invalid_argument(
                    format!("query.filter.{other}"),
                    "unknown operator; use EQ, IN, AND or OR",
                ));
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
        (None, None) => Ordering::Equal,
    }
}

/// Apply `req` to `(key, value bytes, etag)` rows (sorted by key). Values
/// that are not JSON match only an empty filter.
///
/// # Errors
/// A malformed filter or token, named.
pub fn run(
    req: &QueryRequest,
    rows: Vec<(String, Vec<u8>, i64)>,
) -> Result<QueryResponse, ComponentError> {
    let mut hits: Vec<(String, Vec<u8>, i64, Value)> = Vec::new();
    for (key, data, etag) in rows {
        // Values that are not JSON cannot match a filter over JSON fields.
        let Ok(value) = serde_json::from_slice::<Value>(&data) else {
            if req.filter.is_empty() {
                hits.push((key, data, etag, Value::Null));
            }
            continue;
        };
        if matches(&req.filter, &value)? {
            hits.push((key, data, etag, value));
        }
    }
    if !req.sort.is_empty() {
        hits.sort_by(|a, b| {
            for (field, order) in &req.sort {
                let (x, y) = (path(&a.3, field), path(&b.3, field));
                // Items without the field sort last in either order.
                let o = match (x, y) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Greater,
                    (Some(_), None) => Ordering::Less,
                    _ if *order == SortOrder::Descending => compare(x, y).reverse(),
                    _ => compare(x, y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            a.0.cmp(&b.0)
        });
    }
    let start = match &req.token {
        None => 0,
        Some(t) => t.parse::<usize>().map_err(|_| {
            ComponentError::invalid_argument(
                "query.pagination.token",
                format!("{t:?} is not a token from this store"),
            )
        })?,
    };
    let limit = if req.limit == 0 {
        usize::MAX
    } else {
        usize::try_from(req.limit).unwrap_or(usize::MAX)
    };
    let total = hits.len();
    let items: Vec<QueryItem> = hits
        .into_iter()
        .skip(start)
        .take(limit)
        .map(|(key, data, etag, _)| QueryItem {
            key,
            data,
            etag: Some(etag.to_string()),
            error: None,
            content_type: None,
        })
        .collect();
    let next = start.saturating_add(items.len());
    Ok(QueryResponse {
        token: (req.limit > 0 && next < total).then(|| next.to_string()),
        items,
        metadata: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<(String, Vec<u8>, i64)> {
        [
            ("a", r#"{"state":"CA","person":{"org":"dev","id":3}}"#),
            ("b", r#"{"state":"WA","person":{"org":"ops","id":1}}"#),
            ("c", r#"{"state":"CA","person":{"org":"ops","id":2}}"#),
            ("d", "not json"),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (k, v))| (k.to_owned(), v.as_bytes().to_vec(), i as i64))
        .collect()
    }

    fn query(
        filter: Value,
        sort: Vec<(&str, SortOrder)>,
        limit: u64,
        token: Option<&str>,
    ) -> QueryRequest {
        QueryRequest {
            filter: filter.as_object().cloned().unwrap_or_default(),
            sort: sort.into_iter().map(|(k, o)| (k.to_owned(), o)).collect(),
            limit,
            token: token.map(str::to_owned),
            metadata: Default::default(),
        }
    }

    fn keys(r: &QueryResponse) -> Vec<&str> {
        r.items.iter().map(|i| i.key.as_str()).collect()
    }

    #[test]
    fn filters() {
        let eq = run(
            &query(serde_json::json!({"EQ": {"state": "CA"}}), vec![], 0, None),
            rows(),
        )
        .unwrap();
        assert_eq!(keys(&eq), ["a", "c"]);
        let nested = run(
            &query(
                serde_json::json!({"EQ": {"value.person.org": "ops"}}),
                vec![],
                0,
                None,
            ),
            rows(),
        )
        .unwrap();
        assert_eq!(keys(&nested), ["b", "c"]);
        let and = serde_json::json!({"AND": [{"EQ": {"state": "CA"}}, {"IN": {"person.org": ["ops", "x"]}}]});
        assert_eq!(
            keys(&run(&query(and, vec![], 0, None), rows()).unwrap()),
            ["c"]
        );
        let or = serde_json::json!({"OR": [{"EQ": {"state": "WA"}}, {"EQ": {"person.id": 3}}]});
        assert_eq!(
            keys(&run(&query(or, vec![], 0, None), rows()).unwrap()),
            ["a", "b"]
        );
        let all = run(&query(serde_json::json!({}), vec![], 0, None), rows()).unwrap();
        assert_eq!(keys(&all), ["a", "b", "c", "d"]);
    }

    #[test]
    fn sort_and_pages() {
        let sorted = query(
            serde_json::json!({}),
            vec![("person.id", SortOrder::Descending)],
            2,
            None,
        );
        let first = run(&sorted, rows()).unwrap();
        assert_eq!(keys(&first), ["a", "c"]);
        let token = first.token.clone().unwrap();
        let second = run(
            &query(
                serde_json::json!({}),
                vec![("person.id", SortOrder::Descending)],
                2,
                Some(&token),
            ),
            rows(),
        )
        .unwrap();
        assert_eq!(keys(&second), ["b", "d"]);
        assert!(second.token.is_none());
    }

    #[test]
    fn bad_filters_name_the_field() {
        let err = run(
            &query(serde_json::json!({"LIKE": {}}), vec![], 0, None),
            rows(),
        )
        .unwrap_err();
        assert!(err.message().contains("query.filter.LIKE"), "{err}");
        let err = run(
            &query(serde_json::json!({"IN": {"state": "CA"}}), vec![], 0, None),
            rows(),
        )
        .unwrap_err();
        assert!(err.message().contains("query.filter.IN.state"), "{err}");
        let err = run(&query(serde_json::json!({}), vec![], 1, Some("x")), rows()).unwrap_err();
        assert!(err.message().contains("token"), "{err}");
    }
}
