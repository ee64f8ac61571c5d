//! BPF filters (`-f`, tcpdump syntax) applied to frames read from files,
//! compiled by libpcap once per link type.

use pcap::{BpfProgram, Capture, Linktype};

use crate::decode::LinkType;

/// A compiled filter, one program per link type seen.
pub struct FrameFilter {
    expr: String,
    programs: Vec<(LinkType, Option<BpfProgram>)>,
}

impl FrameFilter {
    /// Check `expr` compiles (for Ethernet) so a typo fails before any
    /// output; returns libpcap's message otherwise.
    pub fn new(expr: &str) -> Result<FrameFilter, String> {
        let mut f = FrameFilter { expr: expr.to_string(), programs: Vec::new() };
        f.compile(LinkType(1))?;
        Ok(f)
    }

    fn compile(&mut self, link: LinkType) -> Result<(), String> {
        let dead = Capture::dead(Linktype(link.0 as i32)).map_err(|e| e.to_string())?;
        let prog = dead.compile(&self.expr, true).map_err(|e| e.to_string());
        let ok = prog.is_ok();
        self.programs.push((link, prog.ok()));
        if ok { Ok(()) } else { Err(format!("cannot compile filter for link type {}", link.0)) }
    }

    /// Whether a frame of `link` with bytes `data` matches. A link type for
    /// which libpcap cannot compile the filter matches nothing.
    pub fn matches(&mut self, link: LinkType, data: &[u8]) -> bool {
        if !self.programs.iter().any(|(l, _)| *l == link) {
            let _ = self.compile(link);
        }
        match self.programs.iter().find(|(l, _)| *l == link) {
            Some((_, Some(p))) => p.filter(data),
            _ => false,
        }
    }
}
