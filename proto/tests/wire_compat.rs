//! Proof of wire compatibility: our descriptors against the ones the
//! official Dapr Python SDK (`dapr[workflow]==1.19.0`) ships.
//!
//! `proto/tools/sdk_descriptors.py dump` serialises the SDK's
//! `FileDescriptorProto`s (runtime, common and Durable Task files). Every
//! message, field, enum value, service and method is compared in both
//! directions by fully-qualified name: name, number, type, label, oneof,
//! proto3 `optional`, streaming. Any difference fails and is named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Command;

use prost::Message;
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FileDescriptorProto, FileDescriptorSet,
    ServiceDescriptorProto,
};

/// Everything named in a descriptor set, by fully-qualified name.
#[derive(Default)]
struct Index {
    messages: BTreeMap<String, DescriptorProto>,
    enums: BTreeMap<String, EnumDescriptorProto>,
    services: BTreeMap<String, ServiceDescriptorProto>,
}

/// Packages outside the comparison: Google's own types, the components
/// protocol, which the Python SDK does not ship, and our own packages.
fn compared(file: &FileDescriptorProto) -> bool {
    let package = file.package();
    !package.starts_with("google.")
        && !package.starts_with("dapr.proto.components.")
        && !package.starts_with("outrigger.")
}

fn prefix(package: &str) -> String {
    if package.is_empty() {
        String::from(".")
    } else {
        format!(".{package}.")
    }
}

fn index_message(index: &mut Index, scope: &str, message: &DescriptorProto) {
    let name = format!("{scope}{}", message.name());
    for nested in &message.nested_type {
        index_message(index, &format!("{name}."), nested);
    }
    for e in &message.enum_type {
        index
            .enums
            .insert(format!("{name}.{}", e.name()), e.clone());
    }
    index.messages.insert(name, message.clone());
}

fn index(set: &FileDescriptorSet) -> Index {
    let mut index = Index::default();
    for file in set.file.iter().filter(|f| compared(f)) {
        let scope = prefix(file.package());
        for message in &file.message_type {
            index_message(&mut index, &scope, message);
        }
        for e in &file.enum_type {
            index
                .enums
                .insert(format!("{scope}{}", e.name()), e.clone());
        }
        for s in &file.service {
            index.services.insert(
                format!("{scope}{}", s.name())
                    .trim_start_matches('.')
                    .to_owned(),
                s.clone(),
            );
        }
    }
    index
}

/// The oneof a field belongs to, ignoring the synthetic oneofs of proto3 `optional`.
fn oneof_of(
    message: &DescriptorProto,
    field: &prost_types::FieldDescriptorProto,
) -> Option<String> {
    if field.proto3_optional() {
        return None;
    }
    field
        .oneof_index
        .and_then(|i| message.oneof_decl.get(usize::try_from(i).ok()?))
        .map(|o| o.name().to_owned())
}

fn compare_messages(
    name: &str,
    ours: &DescriptorProto,
    sdk: &DescriptorProto,
    diffs: &mut Vec<String>,
) {
    for field in &sdk.field {
        let Some(mine) = ours.field.iter().find(|f| f.name() == field.name()) else {
            diffs.push(format!(
                "field {name}.{}: missing in ours (dapr SDK has number {})",
                field.name(),
                field.number()
            ));
            continue;
        };
        let at = format!("field {name}.{}", field.name());
        if mine.number() != field.number() {
            diffs.push(format!(
                "{at}: number {} (ours) != {} (dapr SDK)",
                mine.number(),
                field.number()
            ));
        }
        if mine.r#type() != field.r#type() {
            diffs.push(format!(
                "{at}: type {:?} (ours) != {:?} (dapr SDK)",
                mine.r#type(),
                field.r#type()
            ));
        }
        if mine.type_name() != field.type_name() {
            diffs.push(format!(
                "{at}: type {} (ours) != {} (dapr SDK)",
                mine.type_name(),
                field.type_name()
            ));
        }
        if mine.label() != field.label() {
            diffs.push(format!(
                "{at}: label {:?} (ours) != {:?} (dapr SDK)",
                mine.label(),
                field.label()
            ));
        }
        if mine.proto3_optional() != field.proto3_optional() {
            diffs.push(format!(
                "{at}: proto3 optional {} (ours) != {} (dapr SDK)",
                mine.proto3_optional(),
                field.proto3_optional()
            ));
        }
        let (a, b) = (oneof_of(ours, mine), oneof_of(sdk, field));
        if a != b {
            diffs.push(format!("{at}: oneof {a:?} (ours) != {b:?} (dapr SDK)"));
        }
    }
    for field in &ours.field {
        if !sdk.field.iter().any(|f| f.name() == field.name()) {
            diffs.push(format!(
                "field {name}.{}: declared by us (number {}) but not in the dapr SDK",
                field.name(),
                field.number()
            ));
        }
    }
}

fn compare_enums(
    name: &str,
    ours: &EnumDescriptorProto,
    sdk: &EnumDescriptorProto,
    diffs: &mut Vec<String>,
) {
    for value in &sdk.value {
        match ours.value.iter().find(|v| v.name() == value.name()) {
            None => diffs.push(format!(
                "enum value {name}.{}: missing in ours",
                value.name()
            )),
            Some(mine) if mine.number() != value.number() => diffs.push(format!(
                "enum value {name}.{}: number {} (ours) != {} (dapr SDK)",
                value.name(),
                mine.number(),
                value.number()
            )),
            Some(_) => {}
        }
    }
    for value in &ours.value {
        if !sdk.value.iter().any(|v| v.name() == value.name()) {
            diffs.push(format!(
                "enum value {name}.{}: declared by us but not in the dapr SDK",
                value.name()
            ));
        }
    }
}

fn compare_services(
    name: &str,
    ours: &ServiceDescriptorProto,
    sdk: &ServiceDescriptorProto,
    diffs: &mut Vec<String>,
) {
    for method in &sdk.method {
        let Some(mine) = ours.method.iter().find(|m| m.name() == method.name()) else {
            diffs.push(format!("rpc {name}/{}: missing in ours", method.name()));
            continue;
        };
        let at = format!("rpc {name}/{}", method.name());
        if (mine.input_type(), mine.output_type()) != (method.input_type(), method.output_type()) {
            diffs.push(format!(
                "{at}: ({}) -> ({}) (ours) != ({}) -> ({}) (dapr SDK)",
                mine.input_type(),
                mine.output_type(),
                method.input_type(),
                method.output_type()
            ));
        }
        if (mine.client_streaming(), mine.server_streaming())
            != (method.client_streaming(), method.server_streaming())
        {
            diffs.push(format!("{at}: streaming differs"));
        }
    }
    for method in &ours.method {
        if !sdk.method.iter().any(|m| m.name() == method.name()) {
            diffs.push(format!(
                "rpc {name}/{}: declared by us but not in the dapr SDK",
                method.name()
            ));
        }
    }
}

/// Every difference between two descriptor sets, named.
fn compare(ours: &FileDescriptorSet, sdk: &FileDescriptorSet) -> Vec<String> {
    let (ours, sdk) = (index(ours), index(sdk));
    let mut diffs = Vec::new();
    for (name, theirs) in &sdk.messages {
        match ours.messages.get(name) {
            Some(mine) => compare_messages(name, mine, theirs, &mut diffs),
            None => diffs.push(format!("message {name}: missing in ours")),
        }
    }
    for name in ours
        .messages
        .keys()
        .filter(|n| !sdk.messages.contains_key(*n))
    {
        diffs.push(format!(
            "message {name}: declared by us but not in the dapr SDK"
        ));
    }
    for (name, theirs) in &sdk.enums {
        match ours.enums.get(name) {
            Some(mine) => compare_enums(name, mine, theirs, &mut diffs),
            None => diffs.push(format!("enum {name}: missing in ours")),
        }
    }
    for name in ours.enums.keys().filter(|n| !sdk.enums.contains_key(*n)) {
        diffs.push(format!(
            "enum {name}: declared by us but not in the dapr SDK"
        ));
    }
    for (name, theirs) in &sdk.services {
        match ours.services.get(name) {
            Some(mine) => compare_services(name, mine, theirs, &mut diffs),
            None => diffs.push(format!("service {name}: missing in ours")),
        }
    }
    for name in ours
        .services
        .keys()
        .filter(|n| !sdk.services.contains_key(*n))
    {
        diffs.push(format!(
            "service {name}: declared by us but not in the dapr SDK"
        ));
    }
    diffs
}

fn ours() -> FileDescriptorSet {
    FileDescriptorSet::decode(outrigger_proto::FILE_DESCRIPTOR_SET).unwrap()
}

fn sdk() -> FileDescriptorSet {
    let python = std::env::var("OUTRIGGER_PYTHON").expect(
        "OUTRIGGER_PYTHON is not set: run `bash scripts/test.sh`, which installs dapr[workflow]==1.19.0 into a venv and sets it",
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/sdk_descriptors.py");
    let output = Command::new(&python)
        .arg(script)
        .arg("dump")
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "dumping the SDK's descriptors failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    FileDescriptorSet::decode(output.stdout.as_slice()).expect("a FileDescriptorSet")
}

#[test]
fn our_schema_matches_the_official_python_sdk() {
    let sdk = sdk();
    let theirs = index(&sdk);
    let dapr = theirs
        .services
        .get("dapr.proto.runtime.v1.Dapr")
        .expect("the SDK ships the Dapr service");
    assert!(
        dapr.method.len() >= 60,
        "only {} Dapr rpcs in the SDK?",
        dapr.method.len()
    );
    assert!(
        theirs.services.contains_key("TaskHubSidecarService"),
        "durabletask service without a package"
    );
    assert!(
        theirs.messages.len() > 200,
        "only {} messages compared",
        theirs.messages.len()
    );
    eprintln!(
        "comparing {} messages, {} enums, {} services ({} Dapr rpcs)",
        theirs.messages.len(),
        theirs.enums.len(),
        theirs.services.len(),
        dapr.method.len()
    );
    let diffs = compare(&ours(), &sdk);
    assert!(
        diffs.is_empty(),
        "{} differences from the dapr SDK:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// The comparison can fail: each planted difference is reported by name.
#[test]
fn planted_differences_are_reported() {
    let mut changed = ours();
    for file in &mut changed.file {
        if file.package() != "dapr.proto.runtime.v1" {
            continue;
        }
        for message in &mut file.message_type {
            if message.name() == "GetStateRequest"
                && let Some(field) = message.field.iter_mut().find(|f| f.name() == "key")
            {
                field.number = Some(99);
            }
        }
        for service in &mut file.service {
            if service.name() == "Dapr" {
                service.method.retain(|m| m.name() != "SaveState");
            }
        }
    }
    for file in &mut changed.file {
        for e in &mut file.enum_type {
            if e.name() == "OrchestrationStatus"
                && let Some(v) = e
                    .value
                    .iter_mut()
                    .find(|v| v.name() == "ORCHESTRATION_STATUS_COMPLETED")
            {
                v.number = Some(42);
            }
        }
    }
    let diffs = compare(&changed, &ours());
    let joined = diffs.join("\n");
    assert!(
        joined.contains("field .dapr.proto.runtime.v1.GetStateRequest.key: number 99 (ours) != 2"),
        "{joined}"
    );
    assert!(
        joined.contains("rpc dapr.proto.runtime.v1.Dapr/SaveState: missing in ours"),
        "{joined}"
    );
    assert!(
        joined
            .contains("enum value .OrchestrationStatus.ORCHESTRATION_STATUS_COMPLETED: number 42"),
        "{joined}"
    );
    assert_eq!(diffs.len(), 3, "{joined}");
}
