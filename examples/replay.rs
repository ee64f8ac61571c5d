//! Bench tool: send the frames of a capture out of an interface at a fixed
//! packet rate (libpcap `pcap_sendpacket`), for the live-capture ramp in
//! `scripts/bench-live.sh`. Frames are read into memory first so that
//! reading never limits the rate; the file is repeated if `--count` asks
//! for more frames than it has.
//!
//! Usage: `replay --iface IF --file F --pps N --count N` (`--pps 0`: as fast
//! as possible). Prints one JSON line: frames sent, seconds, packets/s.

use std::time::{Duration, Instant};

fn main() {
    let mut iface = String::new();
    let mut file = String::new();
    let (mut pps, mut count) = (0u64, 0u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_default();
        match a.as_str() {
            "--iface" => iface = v,
            "--file" => file = v,
            "--pps" => pps = v.parse().expect("--pps N"),
            "--count" => count = v.parse().expect("--count N"),
            _ => {
                eprintln!("usage: replay --iface IF --file F --pps N --count N");
                std::process::exit(2);
            }
        }
    }
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut cap = pcap::Capture::from_file(&file).unwrap_or_else(|e| fail(&format!("{file}: {e}")));
    while let Ok(p) = cap.next_packet() {
        frames.push(p.data.to_vec());
        if frames.len() as u64 >= count {
            break;
        }
    }
    if frames.is_empty() {
        fail(&format!("{file}: no frames"));
    }
    let mut out = pcap::Capture::from_device(iface.as_str())
        .and_then(|d| d.open())
        .unwrap_or_else(|e| fail(&format!("{iface}: {e}")));
    let start = Instant::now();
    let (mut sent, mut errors) = (0u64, 0u64);
    for frame in frames.iter().cycle().take(count as usize) {
        // Pace in steps of 64 frames: ahead of schedule, wait.
        if pps > 0 && sent % 64 == 0 {
            let due = Duration::from_secs_f64(sent as f64 / pps as f64);
            while start.elapsed() < due {
                std::hint::spin_loop();
            }
        }
        match out.sendpacket(frame.as_slice()) {
            Ok(()) => sent += 1,
            Err(_) => errors += 1,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"sent\":{sent},\"errors\":{errors},\"seconds\":{secs:.3},\"pps\":{:.0}}}",
        sent as f64 / secs.max(1e-9)
    );
}

fn fail(msg: &str) -> ! {
    eprintln!("replay: {msg}");
    std::process::exit(1);
}
