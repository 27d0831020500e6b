//! Access control for service invocation: which caller may call which
//! method of this gateway's app, from the `Configuration` resource's
//! `spec.accessControl` (Dapr's allow lists).
//!
//! Policies are enforced on the callee's gateway, with the caller's app id,
//! namespace and trust domain that the caller's gateway sends along with the
//! call. Decision order, as daprd's:
//! 1. no `accessControl` (or an empty one): everything is allowed;
//! 2. a caller with no policy (matched by app id *and* namespace), or whose
//!    trust domain differs from its policy's: the global `defaultAction`;
//! 3. otherwise the policy's `defaultAction` (when set) replaces it, and the
//!    first operation (in file order) whose `name` matches the method decides:
//!    for HTTP apps only when its `httpVerb` list names the verb or `*`; for
//!    gRPC apps the verb is not looked at.
//!
//! A missing global `defaultAction` is `deny` when policies are given (or the
//! list is left out) and `allow` for an explicitly empty list. Operation names
//! are matched segment by segment: `*` is one segment (a trailing `/*` also
//! matches the bare prefix), `**` at the end is any number of segments, and
//! `*` inside a segment matches any characters; HTTP method paths are matched
//! without regard to case.

use std::collections::HashMap;

use serde_yaml_ng::Value;

/// The trust domain of apps whose configuration names none.
pub const DEFAULT_TRUST_DOMAIN: &str = "public";
/// The namespace of apps that are given none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Verbs an operation may list (besides `*`).
const VERBS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// What a policy does with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Let it through.
    Allow,
    /// Refuse it.
    Deny,
}

/// Who is calling, as the caller's gateway declared it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's app id.
    pub app_id: String,
    /// Its namespace.
    pub namespace: String,
    /// Its trust domain.
    pub trust_domain: String,
}

impl Caller {
    /// The SPIFFE id Dapr would give this caller (for messages and logs).
    pub fn spiffe_id(&self) -> String {
        format!(
            "spiffe://{}/ns/{}/{}",
            self.trust_domain, self.namespace, self.app_id
        )
    }
}

#[derive(Debug, Clone)]
struct Operation {
    /// The name's segments after the leading `/` (for gRPC apps).
    pattern: Vec<String>,
    /// The same, lower-case (HTTP apps match without regard to case).
    folded: Vec<String>,
    /// Upper-case verbs, or `*`.
    verbs: Vec<String>,
    action: Action,
}

#[derive(Debug, Clone)]
struct AppPolicy {
    default: Option<Action>,
    trust_domain: String,
    operations: Vec<Operation>,
}

/// A parsed `spec.accessControl`.
#[derive(Debug, Clone)]
pub struct AccessControl {
    default: Action,
    trust_domain: String,
    /// By app id, then namespace.
    policies: HashMap<String, HashMap<String, AppPolicy>>,
}

/// A malformed `spec.accessControl` (the message names the field).
#[derive(Debug, thiserror::Error)]
#[error("spec.accessControl{field}: {reason}")]
pub struct AccessControlError {
    /// The offending field, e.g. `.policies[0].operations[1].action`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> AccessControlError {
    AccessControlError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Reject keys the section does not know (a typo must not silently open or
/// close access).
fn known_keys(value: &Value, at: &str, keys: &[&str]) -> Result<(), AccessControlError> {
    let Some(map) = value.as_mapping() else {
        return Err(bad(at, "must be a map"));
    };
    for key in map.keys() {
        let name = key.as_str().unwrap_or_default();
        if !keys.contains(&name) {
            return Err(bad(
                format!("{at}.{name}"),
                format!("unknown key; expected one of {}", keys.join(", ")),
            ));
        }
    }
    Ok(())
}

fn text<'a>(value: &'a Value, key: &str, at: &str) -> Result<Option<&'a str>, AccessControlError> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(bad(format!("{at}.{key}"), "must be a string")),
    }
}

fn action(value: &Value, key: &str, at: &str) -> Result<Option<Action>, AccessControlError> {
    match text(value, key, at)? {
        None | Some("") => Ok(None),
        Some(word) if word.eq_ignore_ascii_case("allow") => Ok(Some(Action::Allow)),
        Some(word) if word.eq_ignore_ascii_case("deny") => Ok(Some(Action::Deny)),
        Some(word) => Err(bad(
            format!("{at}.{key}"),
            format!("{word:?} is not allow or deny"),
        )),
    }
}

fn segments(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect()
}

fn parse_operation(value: &Value, at: &str) -> Result<Operation, AccessControlError> {
    known_keys(value, at, &["name", "httpVerb", "action"])?;
    let name = text(value, "name", at)?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad(format!("{at}.name"), "required, e.g. /orders/*"))?;
    let action = action(value, "action", at)?
        .ok_or_else(|| bad(format!("{at}.action"), "required: allow or deny"))?;
    let verbs = match value.get("httpVerb") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(list)) => {
            let mut verbs = Vec::new();
            for (i, verb) in list.iter().enumerate() {
                let verb = verb
                    .as_str()
                    .map(str::to_ascii_uppercase)
                    .filter(|v| v == "*" || VERBS.contains(&v.as_str()))
                    .ok_or_else(|| {
                        bad(
                            format!("{at}.httpVerb[{i}]"),
                            format!("{verb:?} is not an HTTP verb or *"),
                        )
                    })?;
                verbs.push(verb);
            }
            verbs
        }
        Some(_) => return Err(bad(format!("{at}.httpVerb"), "must be a list")),
    };
    Ok(Operation {
        pattern: segments(name),
        folded: segments(&name.to_lowercase()),
        verbs,
        action,
    })
}

impl AccessControl {
    /// From a `Configuration`'s `spec`; `None` when it has no (or an empty)
    /// `accessControl`, which allows every call.
    ///
    /// # Errors
    /// An unknown key, an action other than allow/deny, a policy without
    /// `appId`, `namespace` or `trustDomain`, an operation without `name`
    /// or `action`, or an unknown verb.
    pub fn from_spec(spec: &Value) -> Result<Option<Self>, AccessControlError> {
        let Some(section) = spec.get("accessControl").filter(|s| !s.is_null()) else {
            return Ok(None);
        };
        known_keys(section, "", &["defaultAction", "trustDomain", "policies"])?;
        let default = action(section, "defaultAction", "")?;
        let trust_domain = text(section, "trustDomain", "")?.filter(|t| !t.is_empty());
        let listed = match section.get("policies") {
            None | Some(Value::Null) => None,
            Some(Value::Sequence(list)) => Some(list.as_slice()),
            Some(_) => return Err(bad(".policies", "must be a list")),
        };
        if default.is_none() && trust_domain.is_none() && listed.is_none_or(<[_]>::is_empty) {
            return Ok(None);
        }
        // Policies without a global default: the safer choice, deny.
        let default = default.unwrap_or(match listed {
            Some([]) => Action::Allow,
            _ => Action::Deny,
        });
        let mut policies = HashMap::new();
        for (i, policy) in listed.unwrap_or_default().iter().enumerate() {
            let at = format!(".policies[{i}]");
            known_keys(
                policy,
                &at,
                &[
                    "appId",
                    "defaultAction",
                    "trustDomain",
                    "namespace",
                    "operations",
                ],
            )?;
            let required = |key: &str| -> Result<String, AccessControlError> {
                text(policy, key, &at)?
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| bad(format!("{at}.{key}"), "required"))
            };
            let app_id = required("appId")?;
            let namespace = required("namespace")?;
            let trust_domain = required("trustDomain")?;
            let operations = match policy.get("operations") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Sequence(list)) => list
                    .iter()
                    .enumerate()
                    .map(|(j, op)| parse_operation(op, &format!("{at}.operations[{j}]")))
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(bad(format!("{at}.operations"), "must be a list")),
            };
            let by_namespace: &mut HashMap<String, AppPolicy> = policies.entry(app_id).or_default();
            by_namespace.entry(namespace).or_insert(AppPolicy {
                default: action(policy, "defaultAction", &at)?,
                trust_domain,
                operations,
            });
        }
        Ok(Some(Self {
            default,
            trust_domain: trust_domain.unwrap_or(DEFAULT_TRUST_DOMAIN).to_owned(),
            policies,
        }))
    }

    /// This app's own trust domain (`public` unless configured).
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// Whether `caller` (unknown: `None`) may call `operation` with `verb`
    /// on an HTTP (`http`) or gRPC app.
    pub fn allows(&self, caller: Option<&Caller>, operation: &str, verb: &str, http: bool) -> bool {
        self.decide(caller, operation, verb, http).0 == Action::Allow
    }

    /// The action for a call, and whether the caller's app policy (one
    /// with its own `defaultAction`) rather than the global default
    /// decided it (daprd's `app` / `global` metric split).
    pub fn decide(
        &self,
        caller: Option<&Caller>,
        operation: &str,
        verb: &str,
        http: bool,
    ) -> (Action, bool) {
        let Some(caller) = caller else {
            return (self.default, false);
        };
        let Some(policy) = self
            .policies
            .get(&caller.app_id)
            .and_then(|by_namespace| by_namespace.get(&caller.namespace))
            .filter(|p| p.trust_domain == caller.trust_domain)
        else {
            return (self.default, false);
        };
        let mut decided = policy.default.unwrap_or(self.default);
        let path = if http {
            operation.to_lowercase()
        } else {
            operation.to_owned()
        };
        let path: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let found = policy.operations.iter().find(|op| {
            let pattern = if http { &op.folded } else { &op.pattern };
            let pattern: Vec<&str> = pattern.iter().map(String::as_str).collect();
            matches(&pattern, &path)
        });
        if let Some(op) = found {
            if !http {
                decided = op.action;
            } else if verb.is_empty() {
                decided = policy.default.unwrap_or(Action::Deny);
            } else if op
                .verbs
                .iter()
                .any(|v| v == "*" || v.eq_ignore_ascii_case(verb))
            {
                decided = op.action;
            }
        }
        (decided, policy.default.is_some())
    }
}

/// A gateway's access control and the identity it presents to peers.
#[derive(Debug, Clone)]
pub struct Security {
    /// This app's policies (`None`: every call is allowed).
    pub access_control: Option<AccessControl>,
    /// Who this gateway's app is, sent with every call to a peer.
    pub identity: Caller,
}

impl Security {
    /// For `app_id` in `namespace` (`NAMESPACE`, else `default`), with the
    /// trust domain of `access_control` (else `public`).
    pub fn new(
        access_control: Option<AccessControl>,
        app_id: &str,
        namespace: Option<String>,
    ) -> Self {
        let trust_domain = access_control
            .as_ref()
            .map_or(DEFAULT_TRUST_DOMAIN, AccessControl::trust_domain)
            .to_owned();
        Self {
            identity: Caller {
                app_id: app_id.to_owned(),
                namespace: namespace
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
                trust_domain,
            },
            access_control,
        }
    }

    /// Let `caller` call `operation` with `verb` on this (HTTP or gRPC) app,
    /// counting the decision.
    ///
    /// # Errors
    /// `PermissionDenied` with daprd's message when a policy refuses it.
    pub fn admit(
        &self,
        caller: Option<&Caller>,
        operation: &str,
        verb: &str,
        http: bool,
    ) -> Result<(), tonic::Status> {
        let Some(acl) = &self.access_control else {
            return Ok(());
        };
        let (action, by_app) = acl.decide(caller, operation, verb, http);
        let allowed = action == Action::Allow;
        let who = caller.map_or(["", "", ""], |c| {
            [
                c.app_id.as_str(),
                c.trust_domain.as_str(),
                c.namespace.as_str(),
            ]
        });
        crate::metrics::invocation::access_decided(who, allowed, by_app);
        if allowed {
            return Ok(());
        }
        let id = caller.map_or_else(|| "<unknown caller>".to_owned(), Caller::spiffe_id);
        let message = format!(
            "access control policy has denied access to id: {id} operation: {operation} verb: {verb}"
        );
        tracing::debug!(reason = %message, "call refused");
        Err(tonic::Status::permission_denied(message))
    }
}

/// Metadata a gateway adds to the plain gRPC calls it proxies to a peer,
/// naming its app (app id, namespace, trust domain), as `CallLocal` does.
pub const CALLER_HEADERS: [&str; 3] = [
    "outrigger-caller-app-id",
    "outrigger-caller-namespace",
    "outrigger-caller-trust-domain",
];

/// The caller named by [`CALLER_HEADERS`] (`None` without an app id).
pub fn caller_from_headers(headers: &http::HeaderMap) -> Option<Caller> {
    let get = |name: &str, default: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .unwrap_or(default)
            .to_owned()
    };
    let app_id = get(CALLER_HEADERS[0], "");
    (!app_id.is_empty()).then(|| Caller {
        app_id,
        namespace: get(CALLER_HEADERS[1], DEFAULT_NAMESPACE),
        trust_domain: get(CALLER_HEADERS[2], DEFAULT_TRUST_DOMAIN),
    })
}

/// Replace whatever [`CALLER_HEADERS`] `headers` carry by `caller`'s.
pub fn set_caller_headers(headers: &mut http::HeaderMap, caller: Option<&Caller>) {
    for name in CALLER_HEADERS {
        headers.remove(name);
    }
    let Some(caller) = caller else {
        return;
    };
    for (name, value) in
        CALLER_HEADERS
            .iter()
            .zip([&caller.app_id, &caller.namespace, &caller.trust_domain])
    {
        if let Ok(value) = http::HeaderValue::from_str(value) {
            headers.insert(*name, value);
        }
    }
}

/// Whether the segments `path` match the pattern's segments.
fn matches(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", [])) => true,
        Some((&"**", rest)) => (1..=path.len()).any(|i| matches(rest, &path[i..])),
        Some((&"*", [])) => path.len() <= 1,
        Some((first, rest)) => path
            .split_first()
            .is_some_and(|(segment, tail)| glob(first, segment) && matches(rest, tail)),
    }
}

/// `*` in `pattern` matches any run of characters (within one segment).
fn glob(pattern: &str, text: &str) -> bool {
    let Some((head, tail)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let Some(rest) = text.strip_prefix(head) else {
        return false;
    };
    (0..=rest.len())
        .filter(|i| rest.is_char_boundary(*i))
        .any(|i| glob(tail, &rest[i..]))
}

#[cfg(test)]
#[path = "access_control/tests.rs"]
mod tests;
