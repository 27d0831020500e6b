use super::*;
use std::path::{Path, PathBuf};

fn template(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("apps.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn reads_dapr_keys_with_common_settings_and_paths() {
    let dir = tempfile::tempdir().unwrap();
    for folder in ["shared", "orders", "web/.dapr/resources", "own"] {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("orders/res")).unwrap();
    std::fs::write(
        dir.path().join("orders/config.yaml"),
        "kind: Configuration\n",
    )
    .unwrap();
    let path = template(
        dir.path(),
        r#"
version: 1
common:
  resourcesPath: ./shared
  logLevel: debug
  env: {SHARED: "1", LEVEL: common}
  appLogDestination: console
apps:
- appID: orders
  appDirPath: ./orders
  appPort: 8080
  daprHTTPPort: 3510
  daprGRPCPort: -1
  appProtocol: grpc
  resourcesPaths: [res]
  configFilePath: config.yaml
  maxBodySize: 8Mi
  enableAppHealthCheck: true
  env: {LEVEL: app, NUMBER: 3}
  command: ["python3", "app.py"]
- appDirPath: web
- appDirPath: own
  command: [sh, -c, "exit 0"]
"#,
    );
    let plans = load(&path).unwrap();
    assert_eq!(plans.len(), 3);
    let orders = &plans[0];
    assert_eq!(orders.app_id, "orders");
    assert_eq!(orders.dir, dir.path().join("orders"));
    assert_eq!(orders.command, ["python3", "app.py"]);
    let args = orders.args.join(" ");
    for expected in [
        "--app-id orders",
        "--app-port 8080",
        "--dapr-http-port 3510",
        "--app-protocol grpc",
        "--log-level debug",
        "--max-body-size 8",
        "--enable-app-health-check",
    ] {
        assert!(args.contains(expected), "{expected} in {args}");
    }
    assert!(!args.contains("--dapr-grpc-port"), "{args}");
    assert!(args.contains(&format!(
        "--resources-path {}",
        dir.path().join("orders/res").display()
    )));
    assert!(
        !args.contains("shared"),
        "the app's own resources win: {args}"
    );
    assert!(args.contains(&format!(
        "--config {}",
        dir.path().join("orders/config.yaml").display()
    )));
    assert_eq!(orders.env["LEVEL"], "app");
    assert_eq!(orders.env["SHARED"], "1");
    assert_eq!(orders.env["NUMBER"], "3");

    // appID from the folder; `.dapr/resources` beats `common`; no command.
    let web = &plans[1];
    assert_eq!(web.app_id, "web");
    assert!(web.command.is_empty());
    assert!(web.args.join(" ").contains(".dapr/resources"));
    // `common`'s resources otherwise.
    assert!(plans[2].args.join(" ").contains("shared"));
}

#[test]
fn template_mistakes_name_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a")).unwrap();
    let cases = [
        ("apps: [{appDirPath: a}]\n", "version"),
        ("version: 2\napps: [{appDirPath: a}]\n", "version"),
        ("version: 1\n", "apps"),
        ("version: 1\napps: [{appID: x}]\n", "apps[0].appDirPath"),
        (
            "version: 1\napps: [{appDirPath: nowhere}]\n",
            "apps[0].appDirPath",
        ),
        (
            "version: 1\napps: [{appDirPath: a, appId: x}]\n",
            "apps[0].appId",
        ),
        (
            "version: 1\ncommon: {appPort: 1}\napps: [{appDirPath: a}]\n",
            "common.appPort",
        ),
        ("version: 1\nextra: 1\napps: [{appDirPath: a}]\n", "extra"),
        (
            "version: 1\napps: [{appDirPath: a, command: python3 app.py}]\n",
            "apps[0].command",
        ),
        (
            "version: 1\napps: [{appDirPath: a, appPort: eighty}]\n",
            "apps[0].appPort",
        ),
        (
            "version: 1\ncommon: {env: [A]}\napps: [{appDirPath: a}]\n",
            "common.env",
        ),
    ];
    for (yaml, field) in cases {
        let path = template(dir.path(), yaml);
        match load(&path) {
            Err(TemplateError::Invalid {
                path: p, field: f, ..
            }) => {
                assert_eq!(f, field, "{yaml}");
                assert_eq!(p, path);
            }
            other => panic!("{yaml}: {other:?}"),
        }
    }
    // A folder means its dapr.yaml.
    std::fs::write(
        dir.path().join(DEFAULT_TEMPLATE),
        "version: 1\napps: [{appDirPath: a}]\n",
    )
    .unwrap();
    assert_eq!(load(dir.path()).unwrap()[0].app_id, "a");
}
