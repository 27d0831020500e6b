use super::*;

fn spec(yaml: &str) -> Value {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn caller(app_id: &str) -> Caller {
    Caller {
        app_id: app_id.into(),
        namespace: DEFAULT_NAMESPACE.into(),
        trust_domain: DEFAULT_TRUST_DOMAIN.into(),
    }
}

const POLICY: &str = r#"
accessControl:
  defaultAction: deny
  trustDomain: public
  policies:
  - appId: app1
    defaultAction: allow
    trustDomain: public
    namespace: default
    operations:
    - name: /op1
      httpVerb: [POST, GET]
      action: deny
    - name: /op2/*
      httpVerb: ["*"]
      action: deny
    - name: /op3/a/*
      httpVerb: [PUT]
      action: deny
    - name: /op4/**
      httpVerb: [GET]
      action: deny
    - name: /op5/*/x
      httpVerb: [GET]
      action: deny
    - name: /pre*fix
      httpVerb: [GET]
      action: deny
  - appId: app2
    trustDomain: domain2
    namespace: ns2
    operations:
    - name: /op1
      httpVerb: ["*"]
      action: allow
  - appId: app3
    trustDomain: public
    namespace: default
    defaultAction: deny
    operations:
    - name: /Op1
      action: allow
"#;

#[test]
fn policy_decisions() {
    let acl = AccessControl::from_spec(&spec(POLICY)).unwrap().unwrap();
    let app2 = Caller {
        app_id: "app2".into(),
        namespace: "ns2".into(),
        trust_domain: "domain2".into(),
    };
    let wrong_domain = Caller {
        trust_domain: "elsewhere".into(),
        ..app2.clone()
    };
    let other_ns = Caller {
        namespace: "default".into(),
        ..app2.clone()
    };
    // (caller, operation, verb, http app, allowed)
    let cases: &[(Option<&Caller>, &str, &str, bool, bool)] = &[
        // app1: app default allow, listed operations deny for their verbs.
        (Some(&caller("app1")), "op1", "POST", true, false),
        (Some(&caller("app1")), "/op1", "GET", true, false),
        (Some(&caller("app1")), "op1", "PUT", true, true),
        (Some(&caller("app1")), "OP1", "GET", true, false),
        (Some(&caller("app1")), "op1/more", "GET", true, true),
        (Some(&caller("app1")), "op2/a", "DELETE", true, false),
        (Some(&caller("app1")), "op2", "GET", true, false),
        (Some(&caller("app1")), "op2/a/b", "GET", true, true),
        (Some(&caller("app1")), "op3/a/b", "PUT", true, false),
        (Some(&caller("app1")), "op3/a/b", "POST", true, true),
        (Some(&caller("app1")), "op3/b/c", "PUT", true, true),
        (Some(&caller("app1")), "op4", "GET", true, false),
        (Some(&caller("app1")), "op4/a/b/c", "GET", true, false),
        (Some(&caller("app1")), "op4/a/b/c", "POST", true, true),
        (Some(&caller("app1")), "op5/any/x", "GET", true, false),
        (Some(&caller("app1")), "op5/any/y", "GET", true, true),
        (Some(&caller("app1")), "pre-and-fix", "GET", true, false),
        (Some(&caller("app1")), "prefix", "GET", true, false),
        (Some(&caller("app1")), "prefixes", "GET", true, true),
        (Some(&caller("app1")), "elsewhere", "GET", true, true),
        // app2: no app default, so the global deny unless an operation allows.
        (Some(&app2), "op1", "GET", true, true),
        (Some(&app2), "op2", "GET", true, false),
        (Some(&wrong_domain), "op1", "GET", true, false),
        (Some(&other_ns), "op1", "GET", true, false),
        // app3 on a gRPC app: case-sensitive names, verbs not looked at.
        (Some(&caller("app3")), "Op1", "", false, true),
        (Some(&caller("app3")), "op1", "", false, false),
        (Some(&caller("app3")), "op1", "GET", true, false),
        // Unknown callers and unlisted apps: the global default.
        (None, "op1", "GET", true, false),
        (Some(&caller("nobody")), "op1", "GET", true, false),
    ];
    for (i, (who, op, verb, http, allowed)) in cases.iter().enumerate() {
        assert_eq!(
            acl.allows(*who, op, verb, *http),
            *allowed,
            "case {i}: {who:?} {verb} {op} http={http}"
        );
    }
}

#[test]
fn defaults_when_parts_are_missing() {
    // No section, or an empty one: no access control at all.
    assert!(
        AccessControl::from_spec(&spec("features: []"))
            .unwrap()
            .is_none()
    );
    assert!(
        AccessControl::from_spec(&spec("accessControl: {}"))
            .unwrap()
            .is_none()
    );
    // Only a trust domain: policies are missing, so deny by default.
    let acl = AccessControl::from_spec(&spec("accessControl: {trustDomain: corp}"))
        .unwrap()
        .unwrap();
    assert_eq!(acl.trust_domain(), "corp");
    assert!(!acl.allows(Some(&caller("a")), "x", "GET", true));
    // An explicitly empty list: allow.
    let acl = AccessControl::from_spec(&spec("accessControl: {trustDomain: corp, policies: []}"))
        .unwrap()
        .unwrap();
    assert!(acl.allows(Some(&caller("a")), "x", "GET", true));
    // A global default alone.
    let acl = AccessControl::from_spec(&spec("accessControl: {defaultAction: Allow}"))
        .unwrap()
        .unwrap();
    assert_eq!(acl.trust_domain(), DEFAULT_TRUST_DOMAIN);
    assert!(acl.allows(None, "x", "GET", true));
}

#[test]
fn matcher() {
    let cases: &[(&str, &str, bool)] = &[
        ("/a", "/a", true),
        ("/a", "/b", false),
        ("/a/*", "/a", true),
        ("/a/*", "/a/b", true),
        ("/a/*", "/a/b/c", false),
        ("/a/**", "/a", true),
        ("/a/**", "/a/b/c", true),
        ("/a/**/d", "/a/b/c/d", true),
        ("/a/**/d", "/a/d", false),
        ("/*", "/anything", true),
        ("/a*", "/abc", true),
        ("/a*c", "/abbbc", true),
        ("/a*c", "/abd", false),
        ("/*/b", "/x/b", true),
    ];
    for (pattern, path, expected) in cases {
        let p = segments(pattern);
        let p: Vec<&str> = p.iter().map(String::as_str).collect();
        let s = segments(path);
        let s: Vec<&str> = s.iter().map(String::as_str).collect();
        assert_eq!(matches(&p, &s), *expected, "{pattern} vs {path}");
    }
}

#[test]
fn malformed_sections_name_the_field() {
    let cases = [
        ("accessControl: {defaultAction: maybe}", ".defaultAction"),
        ("accessControl: {defaultaction: deny}", ".defaultaction"),
        ("accessControl: {policies: 3}", ".policies"),
        (
            "accessControl:\n  policies:\n  - {namespace: default, trustDomain: public}\n",
            ".policies[0].appId",
        ),
        (
            "accessControl:\n  policies:\n  - {appId: a, trustDomain: public}\n",
            ".policies[0].namespace",
        ),
        (
            "accessControl:\n  policies:\n  - {appId: a, namespace: default}\n",
            ".policies[0].trustDomain",
        ),
        (
            "accessControl:\n  policies:\n  - appId: a\n    namespace: default\n    trustDomain: public\n    operations:\n    - {name: /x, action: permit}\n",
            ".policies[0].operations[0].action",
        ),
        (
            "accessControl:\n  policies:\n  - appId: a\n    namespace: default\n    trustDomain: public\n    operations:\n    - {name: /x, httpVerb: [GET, FETCH], action: allow}\n",
            ".policies[0].operations[0].httpVerb[1]",
        ),
        (
            "accessControl:\n  policies:\n  - appId: a\n    namespace: default\n    trustDomain: public\n    operations:\n    - {httpVerb: [GET], action: allow}\n",
            ".policies[0].operations[0].name",
        ),
        (
            "accessControl:\n  policies:\n  - appId: a\n    namespace: default\n    trustDomain: public\n    operations:\n    - {name: /x}\n",
            ".policies[0].operations[0].action",
        ),
    ];
    for (yaml, field) in cases {
        let err = AccessControl::from_spec(&spec(yaml)).unwrap_err();
        assert_eq!(err.field, field, "{yaml}");
        assert!(err.to_string().starts_with("spec.accessControl"), "{err}");
    }
}
