//! The two-thread file pipeline (`engine::pipeline`) against the plain
//! frame-by-frame loop: the same streams, labels, packet and flag counts,
//! with and without a BPF filter, on every sample and corpus capture.

mod util;

use flowclass::engine::{Engine, Finished, pipeline};
use flowclass::source::{FileSet, FrameFilter};

fn summary(finished: &[Finished]) -> Vec<String> {
    let mut v: Vec<String> = finished
        .iter()
        .map(|f| {
            let r = f.record();
            format!(
                "{} {} {} {} {:?} {:?} {}",
                r.stream,
                f.verdict().label.as_str(),
                r.sides[0].packets,
                r.sides[1].packets,
                r.sides[0].flags(),
                r.sides[1].flags(),
                r.selected
            )
        })
        .collect();
    v.sort();
    v
}

/// A file-reading entry point of `engine::pipeline`.
type RunFiles = fn(&mut FileSet, Option<&mut FrameFilter>, &mut Engine, &mut dyn FnMut(&mut Engine) -> bool);

/// Every flow of `path` through `run`.
fn flows_of(run: RunFiles, path: &str, filter: Option<&str>) -> Option<Vec<String>> {
    let mut set = FileSet::open(&[path.to_string()]).ok()?;
    let mut filter = filter.map(|f| FrameFilter::new(f).unwrap());
    let mut engine = Engine::new();
    let mut done = Vec::new();
    run(&mut set, filter.as_mut(), &mut engine, &mut |e| {
        done.extend(e.take_finished());
        true
    });
    done.extend(engine.finish().0);
    Some(summary(&done))
}

/// The frame loop (what a run without the reader thread does).
fn plain(path: &str, filter: Option<&str>) -> Option<Vec<String>> {
    flows_of(|s, f, e, after| pipeline::run_files_on_one_thread(s, f, e, after), path, filter)
}

fn piped(path: &str, filter: Option<&str>) -> Option<Vec<String>> {
    flows_of(|s, f, e, after| pipeline::run_files(s, f, e, after), path, filter)
}

#[test]
fn pipeline_equals_the_frame_loop() {
    let mut files = util::sample_files();
    if let Some(d) = util::corpus_dir() {
        files.extend(util::corpus_files(&d));
    } else {
        util::require(false, "../shared/corpus");
    }
    let mut streams = 0;
    for f in &files {
        let path = f.display().to_string();
        for filter in [None, Some("tcp port 80 or tcp port 8888")] {
            let (a, b) = (plain(&path, filter), piped(&path, filter));
            assert_eq!(a, b, "{path} filter {filter:?}");
            streams += a.map_or(0, |a| a.len());
        }
    }
    println!("pipeline: {} files, {streams} streams equal", files.len());
    assert!(streams > 100);
}

#[test]
fn stopping_early_ends_the_reader() {
    let path = util::root().join("samples").join("accept-overflow-drop-shaped.pcap").display().to_string();
    let mut set = FileSet::open(&[path]).unwrap();
    let mut engine = Engine::new();
    let mut batches = 0;
    pipeline::run_files(&mut set, None, &mut engine, |_| {
        batches += 1;
        false
    });
    assert_eq!(batches, 1, "run_files returns after the callback says stop");
}

/// `Engine::finish_in_chunks` (classify and digest on two threads, chunk
/// pairs at a time) hands over the same streams in the same order as
/// `Engine::finish_with`, for chunk sizes that leave odd chunks, lone last
/// chunks and empty helpers.
#[test]
fn finishing_in_chunks_equals_finishing_one_by_one() {
    let mut files = util::sample_files();
    if let Some(d) = util::corpus_dir() {
        files.extend(util::corpus_files(&d));
    } else {
        util::require(false, "../shared/corpus");
    }
    let run = |path: &str| -> Option<Engine> {
        let mut set = FileSet::open(&[path.to_string()]).ok()?;
        let mut engine = Engine::new();
        while let Some(frame) = set.next_frame() {
            engine.on_frame(&frame, true);
        }
        Some(engine)
    };
    let order = |v: &[Finished]| v.iter().map(|f| f.record().stream).collect::<Vec<u32>>();
    let mut compared = 0;
    for f in &files {
        let path = f.display().to_string();
        let Some(engine) = run(&path) else { continue };
        let mut one = Vec::new();
        engine.finish_with(|f| one.push(f));
        for chunk in [1, 3, 1000] {
            let engine = run(&path).unwrap();
            let mut chunks: Vec<Vec<Finished>> = Vec::new();
            engine.finish_in_chunks(chunk, |done| done, |done| chunks.push(done));
            let all: Vec<Finished> = chunks.into_iter().flatten().collect();
            assert_eq!(order(&all), order(&one), "{path} chunk {chunk}");
            assert_eq!(summary(&all), summary(&one), "{path} chunk {chunk}");
            compared += all.len();
        }
    }
    assert!(compared > 100);
}
