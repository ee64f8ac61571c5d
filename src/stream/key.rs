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

impl std::fmt::Display for Endpoint {
    /// `10.0.0.1:80`, `[2001:db8::1]:443`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            Addr::V4(_) => write!(f, "{}:{}", self.addr, self.port),
            Addr::V6(_) => write!(f, "[{}]:{}", self.addr, self.port),
        }
    }
}

impl serde::Serialize for Endpoint {
    /// `{"ip": "10.0.0.1", "port": 80}`, the JSON contract's endpoint.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Endpoint", 2)?;
        st.serialize_field("ip", &self.addr.to_string())?;
        st.serialize_field("port", &self.port)?;
        st.end()
    }
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

    /// The lower endpoint.
    pub fn lo(&self) -> Endpoint {
        self.lo
    }

    /// The higher endpoint.
    pub fn hi(&self) -> Endpoint {
        self.hi
    }
}
