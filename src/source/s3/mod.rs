//! S3 objects as a source of logins (issue 34): the notifications S3 sends to the queue
//! ([`notification`]) and an object's content read as chunks the login path already knows
//! ([`chunks`]). Each chunk has an identity of its own ([`chunk_id`]), so a redelivered
//! notification or a crash half-way through an object lands nothing twice.

pub mod chunks;
pub mod fetch;
pub mod list;
pub mod notification;
mod resume;

use sha2::{Digest, Sha256};

pub use chunks::{Chunks, Limits, Piece, Unreadable};
pub use fetch::{FetchError, ObjectStore, Opened};
pub use list::{notification_of, Listed, Location};
pub use notification::{Notification, ObjectRef};

/// The ledger id of the chunk of `object` that starts at line `first`: the same on every read
/// of the same content (bucket, key, and version id, else ETag), different for new content under
/// the same key. The key is hashed: ids are logged, and a key may hold anything.
pub fn chunk_id(object: &ObjectRef, first: u64) -> String {
    format!("{}:{first}", object_id(object))
}

/// The id of an object's content, which its chunks' ids start with: `s3:` and 32 hex digits.
pub fn object_id(object: &ObjectRef) -> String {
    let mut content = Sha256::new();
    for part in [
        object.bucket.as_str(),
        object.key.as_str(),
        object.version_id.as_deref().unwrap_or(""),
        object.etag.as_deref().unwrap_or(""),
    ] {
        content.update((part.len() as u64).to_be_bytes());
        content.update(part.as_bytes());
    }
    let digest = hex::encode(content.finalize());
    format!("s3:{}", &digest[..32])
}
