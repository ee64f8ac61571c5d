//! A numbering side effect of Wireshark's SOCKS dissector that tshark 4.0
//! shows as a gap in `tcp.stream` values.
//!
//! Wireshark follows the SOCKS handshake on TCP port 1080. Once a CONNECT
//! has been answered, it hands the proxied payload to the dissector of the
//! *remote* port, with the packet's SOCKS port rewritten to that port. The
//! TLS dissector then finds or creates the TCP conversation of the
//! rewritten endpoint pair, and creating it takes the next stream index,
//! although no frame is ever shown with it. Verified with tshark 4.0.17 on
//! `ndpi/tls_heur__vmess-tcp.pcapng` (SOCKS 5, CONNECT to port 443: index 2
//! is taken by the first proxied TLS record and never printed).
//!
//! Only the case verified is emulated: SOCKS 4/5 without authentication,
//! a successful CONNECT, and a remote port that tshark dissects as TLS.

/// The well-known SOCKS port Wireshark's dissector is registered on.
pub const SOCKS_PORT: u16 = 1080;

/// Remote ports whose dissector (TLS) creates the conversation.
const TLS_PORTS: [u16; 1] = [443];

/// Where a SOCKS connection's handshake stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SocksState {
    /// Nothing seen yet.
    #[default]
    Start,
    /// SOCKS 5 greeting sent by the client.
    Greeted,
    /// SOCKS 5 server chose "no authentication".
    MethodChosen,
    /// CONNECT requested to this remote port; waiting for the reply.
    Requested(u16),
    /// CONNECT succeeded; the next payload is handed to the remote port's
    /// dissector.
    Connected(u16),
    /// Proxied payload was handed on once already, or the exchange is not
    /// one we follow.
    Done,
}

impl SocksState {
    /// Feed one payload; `to_socks` is true when it is sent to port 1080.
    /// Returns the remote port when this payload is the first one handed to
    /// a conversation-creating dissector.
    pub fn on_payload(&mut self, to_socks: bool, p: &[u8]) -> Option<u16> {
        if p.is_empty() {
            return None;
        }
        let be16 = |i: usize| Some(u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]));
        *self = match (*self, to_socks) {
            // SOCKS 5 greeting: version, method count, methods.
            (SocksState::Start, true) if p[0] == 5 => SocksState::Greeted,
            // SOCKS 4 CONNECT: version 4, command 1, port, address.
            (SocksState::Start, true) if p[0] == 4 && p.get(1) == Some(&1) => {
                be16(2).map_or(SocksState::Done, SocksState::Requested)
            }
            (SocksState::Greeted, false) if p == [5, 0] => SocksState::MethodChosen,
            // SOCKS 5 CONNECT: version, command 1, reserved, address type,
            // address, port (last two bytes).
            (SocksState::MethodChosen, true) if p.len() >= 7 && p[0] == 5 && p[1] == 1 => {
                be16(p.len() - 2).map_or(SocksState::Done, SocksState::Requested)
            }
            // Replies: SOCKS 5 "succeeded" (5, 0) or SOCKS 4 "granted" (0, 0x5A).
            (SocksState::Requested(port), false) if p.starts_with(&[5, 0]) || p.starts_with(&[0, 0x5A]) => {
                SocksState::Connected(port)
            }
            (SocksState::Connected(port), _) => {
                *self = SocksState::Done;
                return TLS_PORTS.contains(&port).then_some(port);
            }
            _ => SocksState::Done,
        };
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socks5_connect_to_443_hands_on_the_first_payload_once() {
        let mut s = SocksState::default();
        assert_eq!(s.on_payload(true, &[5, 1, 0]), None);
        assert_eq!(s.on_payload(false, &[5, 0]), None);
        assert_eq!(s.on_payload(true, &[5, 1, 0, 1, 1, 2, 3, 4, 0x01, 0xBB]), None);
        assert_eq!(s.on_payload(false, &[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(s.on_payload(true, &[0x16, 3, 1]), Some(443));
        assert_eq!(s.on_payload(false, &[0x16, 3, 3]), None);
    }

    #[test]
    fn other_remote_ports_and_failures_take_no_index() {
        let mut s = SocksState::default();
        s.on_payload(true, &[4, 1, 0, 80, 1, 2, 3, 4, 0]);
        s.on_payload(false, &[0, 0x5A, 0, 0, 0, 0, 0, 0]);
        assert_eq!(s.on_payload(true, b"GET / HTTP/1.1\r\n"), None);
        let mut s = SocksState::default();
        s.on_payload(true, &[5, 1, 2]);
        assert_eq!(s.on_payload(false, &[5, 2]), None);
        assert_eq!(s, SocksState::Done);
    }
}
