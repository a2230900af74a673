//! Process hardening, first thing in `main`: no core dumps (a dump would
//! hold the root key and every unsealed secret) and no ptrace attachment by
//! other processes of the same user (`PR_SET_DUMPABLE=0`).

use nix::sys::prctl;
use nix::sys::resource::{Resource, setrlimit};

/// Disables core dumps and ptrace attachment. Failing to do so is reported,
/// not fatal: some sandboxes forbid `prctl`.
pub fn harden_process() {
    if let Err(e) = setrlimit(Resource::RLIMIT_CORE, 0, 0) {
        eprintln!("warning: could not disable core dumps: {e}");
    }
    if let Err(e) = prctl::set_dumpable(false) {
        eprintln!("warning: could not disable ptrace attachment (PR_SET_DUMPABLE): {e}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn process_is_not_dumpable_after_hardening() {
        super::harden_process();
        assert!(!nix::sys::prctl::get_dumpable().unwrap());
        let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_CORE).unwrap();
        assert_eq!((soft, hard), (0, 0));
    }
}
