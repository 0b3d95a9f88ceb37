//! Loopback addresses for host-node pods: `127.{block}.0.1` upward, never one that is in use.
//!
//! Each host node takes its own second octet (its *address block*), claimed with a lock file
//! for as long as the process lives ([`claim_block`]), so two environments on one machine (a
//! `burstcert up` beside `cargo test`) never hand out the same pod address or service VIP.

use std::collections::HashSet;
use std::net::Ipv4Addr;

/// The block of a host node that claims none (tests that run one host node at a time).
pub const DEFAULT_BLOCK: u8 = 100;
/// Blocks a host node may claim: `127.100.0.0/16` to `127.249.0.0/16` (127.254.0.0/16 holds
/// the service VIPs).
pub const BLOCKS: std::ops::RangeInclusive<u8> = 100..=249;

/// Claims an address block for this process: the first free one from a place derived from
/// `seed`, held by an exclusive lock on `{dir}/{block}.lock` until the returned file is dropped
/// or the process ends (the kernel releases the lock even after a crash).
pub fn claim_block(seed: &str, dir: &std::path::Path) -> std::io::Result<(u8, std::fs::File)> {
    std::fs::create_dir_all(dir)?;
    let span = u32::from(*BLOCKS.end() - *BLOCKS.start()) + 1;
    let start = seed
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % span;
    for i in 0..span {
        let block = *BLOCKS.start() + ((start + i) % span) as u8;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{block}.lock")))?;
        match file.try_lock() {
            Ok(()) => return Ok((block, file)),
            Err(std::fs::TryLockError::WouldBlock) => continue,
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
    Err(std::io::Error::other(
        "every host-node address block is taken",
    ))
}

/// Hands out pod addresses in order, wrapping around, skipping live ones and `.0` / `.255`.
#[derive(Debug)]
pub struct IpPool {
    first: u32,
    last: u32,
    next: u32,
    live: HashSet<Ipv4Addr>,
}

impl Default for IpPool {
    fn default() -> Self {
        Self::new(DEFAULT_BLOCK)
    }
}

impl IpPool {
    /// A pool over `127.{block}.0.1` to `127.{block}.255.254`.
    pub fn new(block: u8) -> Self {
        let first = Ipv4Addr::new(127, block, 0, 1).to_bits();
        Self {
            first,
            last: Ipv4Addr::new(127, block, 255, 254).to_bits(),
            next: first,
            live: HashSet::new(),
        }
    }

    /// A free address (`None` when all ~10 million are live).
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let span = self.last - self.first + 1;
        for _ in 0..span {
            let candidate = Ipv4Addr::from_bits(self.next);
            self.next = if self.next >= self.last {
                self.first
            } else {
                self.next + 1
            };
            let last = candidate.octets()[3];
            if last == 0 || last == 255 || self.live.contains(&candidate) {
                continue;
            }
            self.live.insert(candidate);
            return Some(candidate);
        }
        None
    }

    /// Gives an address back (it is handed out again only after the pool wraps around).
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.live.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_start_at_127_100_0_1_and_skip_network_and_broadcast_octets() {
        let mut pool = IpPool::default();
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 100, 0, 1)));
        pool.next = Ipv4Addr::new(127, 100, 0, 254).to_bits();
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 100, 0, 254)));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 100, 1, 1)));
    }

    #[test]
    fn a_released_address_is_not_reused_at_once_and_a_live_one_never() {
        let mut pool = IpPool::default();
        let a = pool.allocate().unwrap();
        pool.release(a);
        let b = pool.allocate().unwrap();
        assert_ne!(a, b);
        // Wrap around: the live address b is skipped, the released a is free again.
        pool.next = pool.last;
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 100, 255, 254)));
        assert_eq!(pool.allocate(), Some(a));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 100, 0, 3)));
    }

    #[test]
    fn a_pool_stays_inside_its_block() {
        let mut pool = IpPool::new(201);
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 201, 0, 1)));
    }

    #[test]
    fn two_claims_in_one_folder_get_different_blocks_and_a_dropped_claim_is_free_again() {
        let dir = tempfile::tempdir().unwrap();
        let (a, file) = claim_block("same seed", dir.path()).unwrap();
        let (b, _other) = claim_block("same seed", dir.path()).unwrap();
        assert_ne!(a, b);
        assert!(BLOCKS.contains(&a) && BLOCKS.contains(&b));
        drop(file);
        let (c, _) = claim_block("same seed", dir.path()).unwrap();
        assert_eq!(c, a);
    }
}
