//! `StreamKey`: the two endpoints of a stream in canonical order, so both
//! directions find the same entry with one lookup.

use crate::decode::Addr;

/// One end of a TCP connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Endpoint {
    /// IP address (typed v4/v6).
    pub addr: Addr,
    /// TCP port.
    pub port: u16,
}

/// Unordered endpoint pair: the smaller endpoint first.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct StreamKey {
    lo: Endpoint,
    hi: Endpoint,
}

impl StreamKey {
    /// The key for traffic between `a` and `b`, in either direction.
    pub fn new(a: Endpoint, b: Endpoint) -> Self {
        if a <= b { StreamKey { lo: a, hi: b } } else { StreamKey { lo: b, hi: a } }
    }
}
