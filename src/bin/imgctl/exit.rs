//! The exit status of every `imgctl` command: 0 done, 1 the operation failed, 2 the command
//! line or the compose file asks for something that cannot be done, 3 another run is busy.

use std::error::Error;

use imgctl::deploy::DeployError;
use imgctl::deploy::core::Refusal;
use imgctl::deploy::lock::LockError;
use imgctl::deploy::spec::SpecError;
use imgctl::deploy::target::TargetError;
use imgctl::digest::InvalidDigest;
use imgctl::reference::InvalidReference;

/// The operation failed (for a deploy: traffic is where the report says, on the old version
/// unless switching back failed too).
pub const FAILED: u8 = 1;
/// The command line or the compose file asks for something that cannot be done.
pub const USAGE: u8 = 2;
/// Another run holds the service's lock, or a deploy is in flight (`--continue`, `--abort`).
pub const BUSY: u8 = 3;

/// A command line that cannot be carried out as given.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// The exit status for an error that stopped a command: [`USAGE`], [`BUSY`], or [`FAILED`]
/// for anything else.
pub fn code(error: &(dyn Error + 'static)) -> u8 {
    if let Some(error) = error.downcast_ref::<DeployError>() {
        return match error {
            DeployError::Lock(LockError::Held { .. }) | DeployError::Refused(Refusal::InFlight { .. }) => BUSY,
            // A stack without the service is the compose file's (or --stack's) mistake: no
            // run started, nothing changed.
            DeployError::Refused(_) | DeployError::Target(TargetError::NotASwarm | TargetError::NotInStack { .. }) => {
                USAGE
            }
            _ => FAILED,
        };
    }
    if error.is::<SpecError>() || error.is::<Usage>() || error.is::<InvalidDigest>() || error.is::<InvalidReference>() {
        return USAGE;
    }
    FAILED
}
