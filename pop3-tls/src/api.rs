//! The public names both adapters (`pop3-blocking`, `pop3-async`) re-export, written once:
//! each adapter's root is `pub use pop3_tls::api::*;` plus its own `Connection` and stream
//! types, so a program switches adapters without touching anything else it names.

/// Everything a call can fail with: one type for both adapters.
pub use crate::ConnectionError as Error;
/// The error of [`TlsOptions`]' methods (converts into [`Error`]).
pub use crate::Error as TlsOptionsError;
pub use crate::{
    CertificateInfo, CertificateRecorder, ClientCertificate, Fingerprint, FingerprintError,
    Options, PinMismatch, Proxy, ProxyError, ProxyKind, ProxyUrlError, Security, Session,
    TRACE_TARGET, TlsOptions, TrustStore, TrustStoreError, channel_binding,
    describe_error as describe_tls_error, scram_nonce,
};
pub use pop3_proto;
pub use pop3_proto::login::{LoginMethod, LoginPolicy};
pub use pop3_proto::reply::{
    Greeting, Listings, Reply, ScanListing, ServerError, Stat, UniqueIdListing,
};
pub use pop3_proto::request::{Pipeline, PipelineEvent, RetrEvent};
pub use pop3_proto::uid::{FetchReport, SeenStore, UidError};
pub use pop3_proto::{Capabilities, Config, ResponseCode, Secret};
pub use rustls;
