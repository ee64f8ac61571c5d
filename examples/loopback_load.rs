//! Benchmark load: real short TCP connections over the loopback interface,
//! for `scripts/record-loopback.sh` to capture (the issue's "1M packets of
//! real loopback traffic, 100k short connections").
//!
//! Usage: `loopback_load --connections N [--threads T] [--port P]`
//!
//! A server on 127.0.0.1:P (backlog 4096) and T client threads. Each
//! connection: the client sends a request of 40-300 bytes, the server reads
//! it and answers 100-800 bytes, the client reads the answer and closes,
//! the server closes after the client's FIN. Sizes come from a seeded PRNG
//! (the same sequence every run; the packets' timing is the kernel's).
//! Prints the connections made and failed to stdout.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// splitmix64: small, fast, deterministic.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn arg(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).ok_or_else(|| format!("{name} needs a number")),
    }
}

/// Serve one connection: read the request (its length is its first two
/// bytes), answer, then wait for the client's FIN and close.
fn serve(mut s: TcpStream) -> std::io::Result<()> {
    let mut head = [0u8; 2];
    s.read_exact(&mut head)?;
    let len = usize::from(u16::from_be_bytes(head));
    let mut request = vec![0u8; len.saturating_sub(2)];
    s.read_exact(&mut request)?;
    // Answer size from the request's last byte: 100-800 bytes.
    let answer = 100 + usize::from(request.last().copied().unwrap_or(0)) * 700 / 255;
    s.write_all(&vec![b'r'; answer])?;
    let mut rest = [0u8; 64];
    while s.read(&mut rest)? > 0 {}
    Ok(())
}

fn client(port: u16, seed: u64, count: u64, ok: &AtomicU64, failed: &AtomicU64) {
    let mut rng = seed;
    for _ in 0..count {
        let len = 40 + (next(&mut rng) % 261) as usize;
        let mut request = vec![b'q'; len];
        request[..2].copy_from_slice(&(len as u16).to_be_bytes());
        request[len - 1] = (next(&mut rng) % 256) as u8;
        let answer = 100 + usize::from(request[len - 1]) * 700 / 255;
        let outcome = (|| -> std::io::Result<()> {
            let mut s = TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(&request)?;
            let mut buf = vec![0u8; answer];
            s.read_exact(&mut buf)?;
            s.shutdown(Shutdown::Write)?;
            let mut rest = [0u8; 64];
            while s.read(&mut rest)? > 0 {}
            Ok(())
        })();
        match outcome {
            Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let parsed = (|| -> Result<(u64, u64, u16), String> {
        let n = arg(&args, "--connections", 100_000)?;
        let threads = arg(&args, "--threads", 8)?.clamp(1, 256);
        let port = u16::try_from(arg(&args, "--port", 9000)?).map_err(|_| "--port: 1-65535".to_string())?;
        Ok((n, threads, port))
    })();
    let (n, threads, port) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("loopback_load: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("loopback_load: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::from(1);
        }
    };
    // As many server threads as clients, each serving one connection at a
    // time, so the accept queue never overflows. They are never joined:
    // when every client has seen its server's FIN, the process exits.
    for _ in 0..threads {
        let l = match listener.try_clone() {
            Ok(l) => l,
            Err(e) => {
                eprintln!("loopback_load: {e}");
                return ExitCode::from(1);
            }
        };
        std::thread::spawn(move || {
            while let Ok((conn, _)) = l.accept() {
                let _ = serve(conn);
            }
        });
    }
    let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        for t in 0..threads {
            let count = n / threads + u64::from(t < n % threads);
            let (ok, failed) = (&ok, &failed);
            s.spawn(move || client(port, 0x5EED + t, count, ok, failed));
        }
    });
    println!("connections {} failed {}", ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    ExitCode::SUCCESS
}
