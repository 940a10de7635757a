//! Process hardening at start: no core dumps (they would hold keys and card
//! data), not dumpable by ptrace from other users, and a warning when run as
//! root.

#[derive(Debug, thiserror::Error)]
pub enum HardeningError {
    #[error("cannot disable core dumps: {0}")]
    CoreDumps(nix::Error),
    #[error("cannot mark the process non-dumpable: {0}")]
    Dumpable(nix::Error),
}

pub fn harden_process() -> Result<(), HardeningError> {
    use nix::sys::resource::{Resource, setrlimit};
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(HardeningError::CoreDumps)?;
    #[cfg(target_os = "linux")]
    nix::sys::prctl::set_dumpable(false).map_err(HardeningError::Dumpable)?;
    Ok(())
}

pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_dumps_are_off_after_hardening() {
        harden_process().unwrap();
        let (soft, hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_CORE).unwrap();
        assert_eq!((soft, hard), (0, 0));
        #[cfg(target_os = "linux")]
        assert!(!nix::sys::prctl::get_dumpable().unwrap());
    }
}
