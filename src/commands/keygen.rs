//! `login-etl keygen`: print a new key entry (plain, or a KMS-encrypted data key).

use super::Globals;
use crate::cli::KmsArgs;
use clap::Args;
use zeroize::Zeroizing;

use super::kms_endpoint;
use crate::mask::keys;

/// `keygen` options.
#[derive(Debug, Clone, Args)]
pub struct KeygenArgs {
    /// Key id, written before every mask made with this key; use a new id for each rotation.
    #[arg(long, default_value = "k1")]
    pub id: String,
    /// Generate the key as an AWS KMS data key under this KMS key (id, ARN or alias/…): only its
    /// encrypted form is printed, and `run` decrypts it with kms:Decrypt at start.
    #[arg(long)]
    pub kms_key_id: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub kms: KmsArgs,
}

pub(super) async fn execute(args: KeygenArgs, _: Globals) -> anyhow::Result<()> {
    let entry = match &args.kms_key_id {
        Some(kms_key_id) => {
            let endpoint = kms_endpoint(args.kms.kms_endpoint.0.as_ref(), None);
            Zeroizing::new(
                crate::mask::kms::generate_entry(&args.id, kms_key_id, endpoint.as_ref()).await?,
            )
        }
        None => keys::generate(&args.id)?,
    };
    println!("{}", *entry);
    eprintln!(
        "Put this line first in LOGIN_ETL_MASK_KEY or the key file, keeping older keys after it \
         (they can still reveal their aes-siv masks). Store it like a password."
    );
    Ok(())
}
