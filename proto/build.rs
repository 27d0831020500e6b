//! Compiles `proto/**/*.proto` with protox (a pure-Rust protobuf compiler, so no
//! `protoc` has to be installed) and generates prost messages and tonic
//! clients and servers. The encoded descriptor set is written beside the code
//! so servers can answer gRPC reflection.

use std::path::{Path, PathBuf};

use prost::Message;

fn proto_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            proto_files(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let mut files = Vec::new();
    for dir in ["dapr", "durabletask", "google", "outrigger"] {
        proto_files(&root.join(dir), &mut files)?;
    }
    files.sort();
    let relative: Vec<PathBuf> = files
        .iter()
        .map(|f| f.strip_prefix(&root).map(Path::to_path_buf))
        .collect::<Result<_, _>>()?;

    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_imports(true).include_source_info(false);
    compiler.open_files(&relative)?;
    let descriptors = compiler.file_descriptor_set();

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("outrigger_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Every rpc a server does not implement answers UNIMPLEMENTED rather
        // than failing to compile: the Dapr service has ~90 of them.
        .generate_default_stubs(true)
        // A call between gateways: its headers and body are read as slices
        // of the frame they arrived in, not copied into vectors.
        .bytes(".outrigger.internal.v1.Header")
        .bytes(".outrigger.internal.v1.LocalCall")
        .bytes(".outrigger.internal.v1.LocalReply")
        .compile_fds(descriptors)?;

    println!("cargo:rerun-if-changed=dapr");
    println!("cargo:rerun-if-changed=durabletask");
    println!("cargo:rerun-if-changed=google");
    println!("cargo:rerun-if-changed=outrigger");
    Ok(())
}
