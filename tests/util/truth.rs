//! The mapping rule from the kernel lab's ground truth to the label a
//! flow must get, shared by the recorded-sample and the live tests.

#![allow(dead_code)]

/// The label a client's flow must get, derived only from what the client and
/// the server kernel recorded (never from an earlier flowclass run).
pub fn expected_label(client_result: &str, server_state: &str) -> Result<&'static str, String> {
    match (client_result, server_state) {
        // The handshake completed on both ends: the client's connect()
        // returned and the server kernel held a full socket (in the accept
        // queue, or accepted). That it later ended with FIN, or with a RST
        // when the listener closed, does not change the label.
        ("connected", "ESTAB") => Ok("established"),
        // The client's connect() returned (it got a SYN-ACK and ACKed it),
        // but the server kernel has no established socket: it is still in
        // SYN-RECV (the handshake ACK found the accept queue full and was
        // dropped; the server keeps retransmitting its SYN-ACK) or has no
        // state at all (a SYN-cookie handshake whose ACK found the accept
        // queue full). The application thinks it is connected; the server
        // will never read its data.
        ("connected", "SYN-RECV") | ("connected", "absent") => Ok("client_thinks_connected"),
        // No SYN-ACK within the client's connect timeout (the server dropped
        // every SYN because its accept queue was full).
        ("timeout", _) => Ok("syn_timeout"),
        // The server answered with a RST: to the SYN (no listener, the
        // client saw ECONNREFUSED) or right after the handshake ACK
        // (tcp_abort_on_overflow=1, the client saw ECONNRESET).
        ("reset", _) | ("refused", _) => Ok("reset"),
        // connect() failed with an ICMP error read from the socket's error
        // queue (port unreachable from a REJECT rule): the SYN was answered
        // by ICMP, not by the server.
        ("unreachable", _) => Ok("unreachable"),
        (r, s) => Err(format!("no mapping rule for client_result={r} server_state={s}")),
    }
}
