"""Outrigger's window onto the wire schema that the official Dapr Python SDK expects.

The `dapr[workflow]` wheel ships generated `*_pb2.py` modules that embed the
`FileDescriptorProto` of every Dapr runtime, common and Durable Task file. This
module loads them and offers two commands:

    python sdk_descriptors.py dump       # serialized FileDescriptorSet on stdout
    python sdk_descriptors.py render DIR # write .proto text for those files under DIR

`dump` feeds the descriptor-comparison test (proto/tests/sdk_descriptors.rs).
`render` is how proto/dapr and proto/durabletask are refreshed when Dapr's
schema moves: it keeps names, numbers, types and labels (the interoperability
facts) and nothing else, and writes them in our layout with our own header.
"""

import importlib
import os
import pkgutil
import sys

from google.protobuf import descriptor_pb2

# Durable Task files the TaskHubSidecarService needs; the wheel's backend_service
# and runtime_state files describe daprd internals, not anything on the wire.
DURABLETASK_FILES = {
    "orchestrator_service.proto",
    "orchestrator_actions.proto",
    "history_events.proto",
    "orchestration.proto",
    "attestation.proto",
}


def sdk_files():
    """Every FileDescriptorProto we mirror, keyed by its name in the SDK."""
    import dapr.ext.workflow._durabletask.internal as durabletask
    import dapr.proto.common.v1.common_pb2 as common
    import dapr.proto.runtime.v1 as runtime

    modules = [common]
    for pkg in (runtime, durabletask):
        for info in pkgutil.iter_modules(pkg.__path__):
            if info.name.endswith("_pb2"):
                modules.append(importlib.import_module(f"{pkg.__name__}.{info.name}"))
    files = {}
    for module in modules:
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        if not proto.package and proto.name not in DURABLETASK_FILES:
            continue
        if proto.package.startswith("durabletask.protos.backend"):
            continue
        files[proto.name] = proto
    return files


def dump():
    out = descriptor_pb2.FileDescriptorSet()
    for proto in sdk_files().values():
        out.file.append(proto)
    sys.stdout.buffer.write(out.SerializeToString())


# === rendering ===

SCALARS = {
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: "double",
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT: "float",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: "int64",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT64: "uint64",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: "int32",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED64: "fixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32: "fixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "bool",
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "string",
    descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: "bytes",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: "uint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED32: "sfixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED64: "sfixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT32: "sint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT64: "sint64",
}


def our_path(name):
    """Where a file of the SDK lives in our tree (and how it is imported)."""
    if name.startswith("dapr/") or name.startswith("google/"):
        return name
    return "durabletask/" + name


def camel(name):
    parts = name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def type_name(field):
    scalar = SCALARS.get(field.type)
    return scalar if scalar else field.type_name


def field_options(field):
    opts = []
    if field.json_name and field.json_name != camel(field.name):
        opts.append(f'json_name = "{field.json_name}"')
    if field.options.deprecated:
        opts.append("deprecated = true")
    return f" [{', '.join(opts)}]" if opts else ""


def render_reserved(out, pad, ranges, names, inclusive=False):
    # Message reserved ranges end one past the last number; enum ranges end on it.
    for r in ranges:
        last = r.end if inclusive else r.end - 1
        span = str(r.start) if last == r.start else f"{r.start} to {last}"
        out.append(f"{pad}reserved {span};")
    if names:
        out.append(pad + "reserved " + ", ".join(f'"{n}"' for n in names) + ";")


def render_enum(out, enum, depth):
    pad = "  " * depth
    out.append(f"{pad}enum {enum.name} {{")
    if enum.options.allow_alias:
        out.append(f"{pad}  option allow_alias = true;")
    for value in enum.value:
        dep = " [deprecated = true]" if value.options.deprecated else ""
        out.append(f"{pad}  {value.name} = {value.number}{dep};")
    render_reserved(out, pad + "  ", enum.reserved_range, enum.reserved_name, inclusive=True)
    out.append(f"{pad}}}")


def render_message(out, msg, depth):
    pad = "  " * depth
    maps = {n.name: n for n in msg.nested_type if n.options.map_entry}
    out.append(f"{pad}message {msg.name} {{")
    if msg.options.deprecated:
        out.append(f"{pad}  option deprecated = true;")
    for enum in msg.enum_type:
        render_enum(out, enum, depth + 1)
    for nested in msg.nested_type:
        if not nested.options.map_entry:
            render_message(out, nested, depth + 1)
    real_oneofs = {
        i
        for i, f in enumerate(msg.field)
        if f.HasField("oneof_index") and not f.proto3_optional
    }
    emitted_oneofs = set()
    for i, field in enumerate(msg.field):
        if i in real_oneofs:
            index = field.oneof_index
            if index in emitted_oneofs:
                continue
            emitted_oneofs.add(index)
            out.append(f"{pad}  oneof {msg.oneof_decl[index].name} {{")
            for member in msg.field:
                if member.HasField("oneof_index") and member.oneof_index == index and not member.proto3_optional:
                    out.append(
                        f"{pad}    {type_name(member)} {member.name} = {member.number}{field_options(member)};"
                    )
            out.append(f"{pad}  }}")
            continue
        entry_name = field.type_name.rsplit(".", 1)[-1]
        if field.label == field.LABEL_REPEATED and entry_name in maps and field.type_name.endswith(
            f"{msg.name}.{entry_name}"
        ):
            entry = maps[entry_name]
            key, value = entry.field[0], entry.field[1]
            kind = f"map<{type_name(key)}, {type_name(value)}>"
        elif field.label == field.LABEL_REPEATED:
            kind = f"repeated {type_name(field)}"
        elif field.proto3_optional:
            kind = f"optional {type_name(field)}"
        else:
            kind = type_name(field)
        out.append(f"{pad}  {kind} {field.name} = {field.number}{field_options(field)};")
    render_reserved(out, pad + "  ", msg.reserved_range, msg.reserved_name)
    out.append(f"{pad}}}")


def render_file(proto):
    out = [
        "// Outrigger wire schema. Generated by proto/tools/sdk_descriptors.py from the",
        "// descriptors that the official Dapr Python SDK (dapr[workflow]==1.19.0) ships:",
        "// names, numbers, types and labels only. Edit by regenerating, not by hand.",
        f'syntax = "{proto.syntax or "proto2"}";',
        "",
    ]
    if proto.package:
        out += [f"package {proto.package};", ""]
    for dep in proto.dependency:
        out.append(f'import "{our_path(dep)}";')
    if proto.dependency:
        out.append("")
    for enum in proto.enum_type:
        render_enum(out, enum, 0)
        out.append("")
    for msg in proto.message_type:
        render_message(out, msg, 0)
        out.append("")
    for service in proto.service:
        out.append(f"service {service.name} {{")
        for m in service.method:
            cs = "stream " if m.client_streaming else ""
            ss = "stream " if m.server_streaming else ""
            body = " { option deprecated = true; }" if m.options.deprecated else ";"
            out.append(f"  rpc {m.name}({cs}{m.input_type}) returns ({ss}{m.output_type}){body}")
        out.append("}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def render(root):
    for name, proto in sdk_files().items():
        path = os.path.join(root, our_path(name))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(render_file(proto))


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "dump":
        dump()
    elif len(sys.argv) == 3 and sys.argv[1] == "render":
        render(sys.argv[2])
    else:
        sys.exit("usage: sdk_descriptors.py dump | render DIR")
