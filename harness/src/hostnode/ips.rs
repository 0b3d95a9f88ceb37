//! Loopback addresses for host-node pods: 127.100.0.1 upward, never one that is in use.

use std::collections::HashSet;
use std::net::Ipv4Addr;

/// The first pod address.
pub const FIRST_POD_IP: Ipv4Addr = Ipv4Addr::new(127, 100, 0, 1);
/// The last pod address (127.254.0.0/16 holds the service VIPs).
pub const LAST_POD_IP: Ipv4Addr = Ipv4Addr::new(127, 253, 255, 254);

/// Hands out pod addresses in order, wrapping around, skipping live ones and `.0` / `.255`.
#[derive(Debug)]
pub struct IpPool {
    next: u32,
    live: HashSet<Ipv4Addr>,
}

impl Default for IpPool {
    fn default() -> Self {
        Self {
            next: FIRST_POD_IP.to_bits(),
            live: HashSet::new(),
        }
    }
}

impl IpPool {
    /// A free address (`None` when all ~10 million are live).
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let span = LAST_POD_IP.to_bits() - FIRST_POD_IP.to_bits() + 1;
        for _ in 0..span {
            let candidate = Ipv4Addr::from_bits(self.next);
            self.next = if self.next >= LAST_POD_IP.to_bits() {
                FIRST_POD_IP.to_bits()
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
        pool.next = LAST_POD_IP.to_bits();
        assert_eq!(pool.allocate(), Some(LAST_POD_IP));
        assert_eq!(pool.allocate(), Some(a));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(127, 100, 0, 3)));
    }
}
