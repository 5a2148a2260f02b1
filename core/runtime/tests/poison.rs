//! `RunOptions::poison_arena`: memory is filled with a NaN pattern before it is written (the
//! whole arena before each run, each output buffer before its step), outputs are unchanged on
//! a correct plan, and the pattern is really there wherever no step wrote.
use sod2_runtime::{Plan, RunOptions, Session, TensorIn, POISON_WORD};

mod common;
#[path = "common/onnx.rs"]
mod onnx;

fn poisoned(on: bool) -> RunOptions {
    RunOptions {
        poison_arena: on,
        ..RunOptions::default()
    }
}

/// The bundled model's output bytes at `[b, s]`.
fn run(s: &mut Session, b: usize, n: usize) -> Vec<u8> {
    let ids: Vec<i64> = (0..b * n).map(|i| (i as i64 * 7) % 97 + 2).collect();
    let mask = vec![1i64; b * n];
    let out = s
        .run(&[TensorIn::i64(&ids, &[b, n]), TensorIn::i64(&mask, &[b, n])])
        .unwrap();
    assert_eq!(out[0].dims, vec![b, n, 32]);
    out[0].data.clone()
}

/// How many 8-byte words of `bytes` (from `from` on) hold the poison word.
fn poison_words(bytes: &[u8], from: usize) -> usize {
    bytes[from.next_multiple_of(8)..]
        .chunks_exact(8)
        .filter(|w| {
            u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]) == POISON_WORD
        })
        .count()
}

#[test]
fn poisoning_leaves_outputs_unchanged_and_fills_what_no_step_wrote() {
    let p = common::compile(sod2_planner::Opt::default());
    let plan = Plan::from_bytes(&sod2_format::write(&p.plan, &p.weights, 0)).unwrap();
    let mut s = Session::new(plan.clone());
    assert!(!s.options().poison_arena, "off by default");
    // A large shape first: it writes real values over most of the arena.
    let large = run(&mut s, 8, 128);
    let small = run(&mut s, 2, 9);
    let len = s.arena_bytes();
    let words = s.arena().len() / 8;
    assert!(
        s.arena().len() > 4 * len,
        "the arena keeps the large shape's allocation"
    );
    let before = poison_words(s.arena(), len);
    assert!(
        before < (words - len / 8) / 2,
        "{before} of the tail poisoned without the option"
    );

    s.set_options(poisoned(true));
    assert_eq!(run(&mut s, 2, 9), small, "poisoning changes no output");
    // Every word past the small shape's bytes was written by no step of this run: all poison.
    let tail = words - len.div_ceil(8);
    assert_eq!(poison_words(s.arena(), len), tail);
    // The large shape's tensors overwrite it, and give the same outputs as unpoisoned.
    assert_eq!(run(&mut s, 8, 128), large);
    assert_eq!(run(&mut s, 2, 9), small);

    // Another session with poisoning on from its first run gives the same bytes.
    let mut fresh = Session::new(plan);
    fresh.set_options(poisoned(true));
    assert_eq!(run(&mut fresh, 2, 9), small);
    assert_eq!(run(&mut fresh, 8, 128), large);
}

#[test]
fn poisoned_heap_outputs_are_written_in_full() {
    let mut s = Session::new(onnx::nonzero_plan());
    s.set_options(poisoned(true));
    for (n, every) in [(64usize, 1usize), (64, 3), (5, 2), (64, 7)] {
        let x: Vec<f32> = (0..n)
            .map(|i| if i.is_multiple_of(every) { 1.0 } else { 0.0 })
            .collect();
        let want: Vec<i64> = (0..n as i64)
            .filter(|&i| (i as usize).is_multiple_of(every))
            .collect();
        let out = s.run(&[TensorIn::f32(&x, &[n])]).unwrap();
        assert_eq!(out[0].dims, vec![1, want.len()]);
        assert_eq!(out[0].to_i64().unwrap(), want, "n {n}, every {every}");
    }
}
