//! Randomness for keys, nonces and shares: the operating system's CSPRNG
//! (through `ring::rand::SystemRandom`) and nothing else.

use crate::CoreError;
use ring::rand::{SecureRandom, SystemRandom};

/// Fills `buf` from the OS CSPRNG.
pub fn fill(buf: &mut [u8]) -> Result<(), CoreError> {
    SystemRandom::new().fill(buf).map_err(|_| CoreError::Random)
}

/// Returns `N` random bytes from the OS CSPRNG.
pub fn bytes<const N: usize>() -> Result<[u8; N], CoreError> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}

/// Adapter handing the OS CSPRNG to `vsss-rs`, which asks for a `rand_core` RNG.
///
/// A failure of the OS source is a hard error: `fill_bytes` panics rather
/// than return predictable bytes, and [`crate::shamir::split`] catches it
/// by checking the source first.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsCsprng;

impl rand_core::TryRng for OsCsprng {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        #[allow(clippy::expect_used)]
        fill(dst).expect("OS random source failed while splitting the root key");
        Ok(())
    }
}

impl rand_core::TryCryptoRng for OsCsprng {}
