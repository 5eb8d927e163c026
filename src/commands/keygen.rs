//! `login-etl keygen`: print a new key entry (plain, or a KMS-encrypted data key).

use zeroize::Zeroizing;

use super::kms_endpoint;
use crate::cli::KeygenArgs;
use crate::mask::keys;

pub(super) async fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let entry = match &args.kms_key_id {
        Some(kms_key_id) => {
            let endpoint = kms_endpoint(args.kms.kms_endpoint.0.as_ref(), None);
            Zeroizing::new(
                crate::kms::generate_entry(&args.id, kms_key_id, endpoint.as_ref()).await?,
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
