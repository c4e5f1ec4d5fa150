//! The hints shown under errors users commonly hit, for every error type of the plugin and its
//! engine: one registry, at the top of the command layer, so that the modules raising the errors
//! need not know one another. The printer is handed [`hint`] when it is made.

use mlbackup_helper::api::ApiError;
use mlbackup_helper::plan::PlanError;
use mlbackup_helper::protocol::WireError;
use mlbackup_helper::secret::TokenError;

use crate::cluster::ClusterError;
use crate::cluster::pod::PodError;
use crate::commands::app::NothingSelected;
use crate::commands::backup::BackupError;
use crate::commands::deployments::Incomplete;
use crate::commands::restore::RestoreError;
use crate::commands::schedule::ScheduleError;
use crate::datarobot::helper_binary::HelperNotFound;
use crate::datarobot::in_pod::InPodError;
use crate::encryption::EncryptionError;
use crate::exit::UsageError;
use crate::folder::FolderError;
use crate::location::LocationError;
use crate::location::aws::AwsConfigError;
use crate::location::s3::S3Error;
use crate::store::StoreError;

/// An error that can tell the user what to do about it.
pub trait Hint {
    fn hint(&self) -> Option<String>;
}

/// Implements [`Hint`] for error types that already have a hint method of their own.
macro_rules! hint_by {
    ($($error:ty => $how:expr),+ $(,)?) => {
        $(impl Hint for $error {
            fn hint(&self) -> Option<String> {
                let how: fn(&$error) -> Option<String> = $how;
                how(self)
            }
        })+

        /// The first hint that any error in the chain carries.
        pub fn hint(err: &anyhow::Error) -> Option<String> {
            err.chain().find_map(|cause| {
                None$(.or_else(|| cause.downcast_ref::<$error>().and_then(Hint::hint)))+
            })
        }
    };
}

hint_by! {
    ClusterError => ClusterError::hint,
    FolderError => FolderError::hint,
    EncryptionError => EncryptionError::hint,
    StoreError => StoreError::hint,
    S3Error => S3Error::hint,
    LocationError => LocationError::hint,
    AwsConfigError => AwsConfigError::hint,
    UsageError => |e| Some(e.hint.clone()),
    RestoreError => RestoreError::hint,
    HelperNotFound => |e| Some(e.hint()),
    ApiError => ApiError::hint,
    TokenError => TokenError::hint,
    PlanError => PlanError::hint,
    WireError => wire_hint,
    Incomplete => |e| e.hint.clone(),
    PodError => PodError::hint,
    InPodError => InPodError::hint,
    NothingSelected => |e| Some(e.hint()),
    ScheduleError => ScheduleError::hint,
    // Transparent wrappers: their inner error is not a link of the chain.
    BackupError => |e| match e {
        BackupError::Cluster(inner) => inner.hint(),
        BackupError::Folder(inner) => inner.hint(),
        BackupError::Upload(inner) => inner.hint(),
        BackupError::Encode { .. } | BackupError::Download(_) => None,
    },
}

/// The hint of an error the helper reported.
fn wire_hint(error: &WireError) -> Option<String> {
    error
        .hint
        .clone()
        .or_else(|| mlbackup_helper::api::hint_for(error.kind))
}
