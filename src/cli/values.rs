//! The values flags take, as the command line spells them, mapped onto library types (which know
//! nothing of clap, as ripgrep's flags do it).

use crate::mask::{contains_ip, Field, NetworkMaskMode, StrategyName};
use crate::source::SqsProtocol;

/// `--mask-strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StrategyArg {
    /// Keyed HMAC-SHA256: deterministic, one-way (default).
    #[value(name = "hmac-sha256")]
    HmacSha256,
    /// AES-256-SIV: deterministic, reversible by key holders.
    #[value(name = "aes-siv")]
    AesSiv,
    /// Unkeyed SHA-256: only for tables already built that way; IPv4 masks are brute-forceable.
    #[value(name = "sha256")]
    Sha256,
}

impl From<StrategyArg> for StrategyName {
    fn from(arg: StrategyArg) -> Self {
        match arg {
            StrategyArg::HmacSha256 => StrategyName::HmacSha256,
            StrategyArg::AesSiv => StrategyName::AesSiv,
            StrategyArg::Sha256 => StrategyName::Sha256,
        }
    }
}

/// `--ip-network-mask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkMaskArg {
    /// Not at all (the column stays NULL).
    Off,
    /// Keyed HMAC of the network prefix: groups by one chosen prefix, one-way.
    Hmac,
    /// Prefix-preserving encryption of the whole address: every prefix groups, reversible.
    #[value(name = "ipcrypt-pfx")]
    IpcryptPfx,
}

impl From<NetworkMaskArg> for NetworkMaskMode {
    fn from(arg: NetworkMaskArg) -> Self {
        match arg {
            NetworkMaskArg::Off => NetworkMaskMode::Off,
            NetworkMaskArg::Hmac => NetworkMaskMode::Hmac,
            NetworkMaskArg::IpcryptPfx => NetworkMaskMode::IpcryptPfx,
        }
    }
}

/// `--sqs-protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SqsProtocolArg {
    /// JSON first; switch to the query protocol when the endpoint speaks only that.
    Auto,
    /// Only the JSON protocol (LocalStack 3 and later, moto 4.1.11 and later, AWS).
    Json,
    /// Only the query protocol (LocalStack before 3.0, moto before 4.1.11; AWS accepts it too).
    Query,
}

impl From<SqsProtocolArg> for SqsProtocol {
    fn from(arg: SqsProtocolArg) -> Self {
        match arg {
            SqsProtocolArg::Auto => SqsProtocol::Auto,
            SqsProtocolArg::Json => SqsProtocol::Json,
            SqsProtocolArg::Query => SqsProtocol::Query,
        }
    }
}

/// `reveal --field`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FieldArg {
    /// The client IP address (`masked_ip`).
    Ip,
    /// The device identifier (`masked_device_id`).
    DeviceId,
    /// The address's network pseudonym (`masked_ip_network`; only `ipcrypt-pfx` ones reveal).
    IpNetwork,
}

impl From<FieldArg> for Field {
    fn from(arg: FieldArg) -> Self {
        match arg {
            FieldArg::Ip => Field::Ip,
            FieldArg::DeviceId => Field::DeviceId,
            FieldArg::IpNetwork => Field::IpNetwork,
        }
    }
}

/// `--envelope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EnvelopeArg {
    /// SNS notifications and EventBridge events, recognised by their shape.
    Auto,
    /// Nothing: every body is one login as it arrives (no gzip, envelope or array).
    None,
    /// Only SNS notifications.
    Sns,
    /// Only EventBridge events.
    Eventbridge,
}

impl From<EnvelopeArg> for crate::envelope::EnvelopeMode {
    fn from(arg: EnvelopeArg) -> Self {
        use crate::envelope::EnvelopeMode;
        match arg {
            EnvelopeArg::Auto => EnvelopeMode::Auto,
            EnvelopeArg::None => EnvelopeMode::None,
            EnvelopeArg::Sns => EnvelopeMode::Sns,
            EnvelopeArg::Eventbridge => EnvelopeMode::EventBridge,
        }
    }
}

/// Output formats of reports and listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Aligned text for people.
    Table,
    /// One JSON document.
    Json,
    /// CSV.
    Csv,
}

/// `--reason` and `--actor` of the audited commands: kept in audit rows for years, so never an
/// address (the one kind of PII recognisable in free text). Checked by the command, not by clap,
/// whose error would print the value back.
pub fn audit_text(flag: &str, text: Option<&str>) -> anyhow::Result<()> {
    anyhow::ensure!(
        !text.is_some_and(contains_ip),
        "{flag} holds what looks like an IP address, and audit rows keep it for years: give a \
         reference (a ticket id), not the data; nothing was done"
    );
    Ok(())
}
