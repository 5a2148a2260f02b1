//! Sizes near `i64::MAX` (a model's dims can multiply that far; found by the `onnx_compile`
//! fuzz target) make the memory planner and its checks give answers or errors, never an
//! arithmetic overflow.
use sod2_expr::{Bindings, ExprArena};
use sod2_planner::memory::{peak_live, plan_memory, verify_memory_plan, BufferReq};

#[test]
fn buffers_near_i64_max_are_planned_and_checked_without_overflow() {
    let mut arena = ExprArena::new();
    let n = arena.symbol("n", 1, i64::MAX / 4, None);
    let nx = arena.sym(n);
    let big = arena.constant(i64::MAX / 2 + 1);
    let small = arena.constant(64);
    let reqs = [
        BufferReq {
            size: big,
            first: 0,
            last: 2,
        },
        BufferReq {
            size: big,
            first: 1,
            last: 3,
        },
        BufferReq {
            size: nx,
            first: 1,
            last: 2,
        },
        BufferReq {
            size: small,
            first: 2,
            last: 3,
        },
    ];
    let mut rep = Bindings::new();
    rep.set(n, i64::MAX / 4);
    let plan = plan_memory(&mut arena, &reqs, &rep);
    assert_eq!(plan.offsets.len(), reqs.len());
    // Two live buffers of more than half of i64 each cannot both fit: an error, not a panic.
    let e = verify_memory_plan(&arena, &reqs, &plan, &rep).unwrap_err();
    assert!(
        e.contains("overflows") || e.contains("does not evaluate"),
        "{e}"
    );
    assert_eq!(peak_live(&arena, &reqs, &rep), i64::MAX);
}
