//! Dapr-compatible wire types for Outrigger.
//!
//! Every message, enum and gRPC service here has the package, name, field
//! names, numbers and types that Dapr's own definitions use, so Dapr's SDKs,
//! daprd and Dapr pluggable components interoperate with Outrigger. The
//! `.proto` sources sit beside this crate; they are compiled by protox in
//! `build.rs`, so no `protoc` is needed.
//!
//! # Layout
//! - [`dapr::proto::common::v1`]: messages shared by the runtime API.
//! - [`dapr::proto::runtime::v1`]: the app-facing `Dapr` service and the app
//!   callback services (`AppCallback`, `AppCallbackHealthCheck`, `AppCallbackAlpha`).
//! - [`dapr::proto::components::v1`]: the pluggable-component services
//!   (state, pub/sub, bindings, secret store).
//! - [`outrigger::components::v1`]: our own `ConfigurationStore` component
//!   service (Dapr has no pluggable protocol for configuration stores).
//! - [`durabletask`]: the Durable Task protocol (`TaskHubSidecarService`)
//!   that Dapr's workflow SDKs speak. It has no proto package, so its method
//!   paths are `/TaskHubSidecarService/<Rpc>`.
//! - [`google::rpc`]: `google.rpc.Status`, used inside runtime messages.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors of all of the above, for
//!   gRPC reflection and for schema comparison.

/// Generated code: rustdoc for it would only repeat the `.proto` files.
#[allow(missing_docs, unreachable_pub, clippy::all, rust_2018_idioms)]
pub mod dapr {
    /// Dapr's `dapr.proto.*` packages.
    pub mod proto {
        /// `dapr.proto.common.*`
        pub mod common {
            /// `dapr.proto.common.v1`
            pub mod v1 {
                tonic::include_proto!("dapr.proto.common.v1");
            }
        }
        /// `dapr.proto.runtime.*`
        pub mod runtime {
            /// `dapr.proto.runtime.v1`
            pub mod v1 {
                tonic::include_proto!("dapr.proto.runtime.v1");
            }
        }
        /// `dapr.proto.components.*`
        pub mod components {
            /// `dapr.proto.components.v1`
            pub mod v1 {
                tonic::include_proto!("dapr.proto.components.v1");
            }
        }
    }
}

/// Outrigger's own packages, for what Dapr's protocols do not cover.
#[allow(missing_docs, unreachable_pub, clippy::all, rust_2018_idioms)]
pub mod outrigger {
    /// `outrigger.components.*`
    pub mod components {
        /// `outrigger.components.v1`: the configuration-store component service.
        pub mod v1 {
            tonic::include_proto!("outrigger.components.v1");
        }
    }
    /// `outrigger.internal.*`
    pub mod internal {
        /// `outrigger.internal.v1`: gateway-to-gateway service invocation.
        pub mod v1 {
            tonic::include_proto!("outrigger.internal.v1");
        }
    }
}

/// The Durable Task protocol (Dapr's fork), which declares no proto package.
#[allow(missing_docs, unreachable_pub, clippy::all, rust_2018_idioms)]
pub mod durabletask {
    tonic::include_proto!("_");
}

/// `google.rpc` types referenced by Dapr messages.
#[allow(missing_docs, unreachable_pub, clippy::all, rust_2018_idioms)]
pub mod google {
    /// `google.rpc`
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

/// Shorter paths for the packages used most.
pub use dapr::proto::{common::v1 as common, components::v1 as components, runtime::v1 as runtime};

/// Encoded `FileDescriptorSet` of every file in this crate (imports included),
/// for registering gRPC reflection and for comparing schemas.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/outrigger_descriptor.bin"));
