use proptest::prelude::*;

use super::*;

/// A small but complete plan: a model input, a weight, an arena tensor, an If with two
/// sub-plans, a rebinding, a kernel version, every attribute kind.
fn sample() -> (Plan, Vec<u8>) {
    let exprs = vec![
        Expr::Sym(0),        // 0: n
        Expr::Const(4),      // 1
        Expr::Mul(0, 1),     // 2: 4n  (bytes of [n] f32)
        Expr::Const(0),      // 3: offset 0
        Expr::Const(2),      // 4
        Expr::Sym(1),        // 5: k (fresh)
        Expr::CeilDiv(2, 1), // 6
        Expr::Max(6, 4),     // 7
        Expr::Const(64),     // 8: arena size
    ];
    let t = |name: &str, dtype, shape: Vec<u32>, storage| Tensor {
        name: name.into(),
        dtype,
        shape,
        storage,
    };
    let tensors = vec![
        t("x", DType::F32, vec![0], Storage::Input(0)),
        t(
            "w",
            DType::F32,
            vec![4],
            Storage::Weight { offset: 0, len: 8 },
        ),
        t("y", DType::F32, vec![0], Storage::Arena { offset: 3 }),
        t("nz", DType::I64, vec![4, 5], Storage::Dynamic),
        t("b", DType::F32, vec![0], Storage::Dynamic),
        t("c", DType::F32, vec![0], Storage::Dynamic),
        t("cond", DType::Bool, vec![], Storage::Dynamic),
        t("img", DType::F32, vec![0, 1, 1, 1], Storage::Dynamic),
        t("img_out", DType::F32, vec![0, 1, 1, 1], Storage::Dynamic),
    ];
    let step = |name: &str, op: OpCode, ins: Vec<Option<u32>>, outs: Vec<Option<u32>>| Step {
        name: name.into(),
        op,
        backend: BackendKind::Cpu,
        attrs: vec![],
        inputs: ins,
        outputs: outs,
        bodies: vec![],
        versions: vec![],
        rebinds: vec![],
    };
    let mut add = step("add", OpCode::Add, vec![Some(0), None], vec![Some(2)]);
    add.attrs = vec![
        ("a".into(), AttrValue::Int(-3)),
        ("b".into(), AttrValue::Float(0.5)),
        ("c".into(), AttrValue::Ints(vec![1, -1])),
        ("d".into(), AttrValue::Floats(vec![1.5])),
        ("e".into(), AttrValue::Str("NOTSET".into())),
        ("f".into(), AttrValue::Tensor(1)),
    ];
    let mut conv = step("conv", OpCode::Conv, vec![Some(7), Some(1)], vec![Some(8)]);
    conv.attrs = vec![("group".into(), AttrValue::Int(1))];
    conv.versions = vec![
        KernelVersion {
            id: VersionId::ConvDirectRows,
            when: vec![(0, 1, 64)],
        },
        KernelVersion {
            id: VersionId::ConvIm2colGemm,
            when: vec![],
        },
    ];
    let mut nz = step("nonzero", OpCode::NonZero, vec![Some(2)], vec![Some(3)]);
    nz.rebinds.push(Rebind {
        sym: 1,
        tensor: 3,
        dim: 1,
    });
    let mut iff = step("branch", OpCode::If, vec![Some(6)], vec![Some(4)]);
    iff.bodies = vec![1, 2];
    let plan = Plan {
        symbols: vec![
            Symbol {
                name: "n".into(),
                lo: 1,
                hi: 512,
                origin: None,
            },
            Symbol {
                name: "nonzero_nz".into(),
                lo: 0,
                hi: i64::MAX,
                origin: Some("nonzero".into()),
            },
        ],
        exprs,
        tensors,
        graphs: vec![
            Graph {
                inputs: vec![0],
                outputs: vec![4],
                steps: vec![add, nz, iff, conv],
                value_binds: vec![],
            },
            Graph {
                inputs: vec![],
                outputs: vec![5],
                steps: vec![step("t", OpCode::Relu, vec![Some(2)], vec![Some(5)])],
                value_binds: vec![],
            },
            Graph {
                inputs: vec![],
                outputs: vec![2],
                steps: vec![],
                value_binds: vec![],
            },
        ],
        arena_size: 8,
        producer: "test".into(),
        guards: vec![Guard {
            expr: 2,
            nonzero: true,
            message: "a test guard".into(),
        }],
    };
    let mut weights = vec![0u8; 64];
    weights[..4].copy_from_slice(&1.0f32.to_le_bytes());
    (plan, weights)
}

fn file() -> Vec<u8> {
    let (p, w) = sample();
    write(&p, &w, 0b101)
}

#[test]
fn round_trip() {
    let (p, w) = sample();
    let bytes = write(&p, &w, 0b101);
    let f = read(&bytes).unwrap();
    assert_eq!(f.plan, p);
    assert_eq!(f.features, 0b101);
    assert_eq!(&bytes[f.weights.clone()], &w[..]);
    assert_eq!(f.weights.start % 64, 0);
}

#[test]
fn every_truncation_is_rejected() {
    let bytes = file();
    for cut in 0..bytes.len() {
        assert!(
            read(&bytes[..cut]).is_err(),
            "accepted a plan cut at {cut} of {}",
            bytes.len()
        );
    }
}

#[test]
fn every_flipped_metadata_byte_is_rejected() {
    let bytes = file();
    // The header, the section table and META are covered; the padding after META and the
    // weights are not (weights are never read at load).
    let meta_end = HEADER_SIZE + 48 + meta_len(&bytes);
    for i in 0..meta_end {
        let mut b = bytes.clone();
        b[i] ^= 0x40;
        assert!(read(&b).is_err(), "flipping byte {i} was not detected");
    }
}

fn meta_len(bytes: &[u8]) -> usize {
    let t = &bytes[HEADER_SIZE..HEADER_SIZE + 24];
    u64::from_le_bytes(t[16..24].try_into().unwrap()) as usize
}

#[test]
fn header_errors_are_named() {
    let bytes = file();
    let mut b = bytes.clone();
    b[0] = b'X';
    assert_eq!(read(&b), Err(FormatError::BadMagic));
    let mut b = bytes.clone();
    b[8..12].copy_from_slice(&(VERSION + 1).to_le_bytes());
    assert_eq!(
        read(&b),
        Err(FormatError::UnsupportedVersion {
            found: VERSION + 1,
            supported: VERSION
        })
    );
    let mut b = bytes.clone();
    b[30] ^= 1; // inside the checksum
    assert!(matches!(read(&b), Err(FormatError::Checksum { .. })));
    let mut b = bytes.clone();
    b.push(0);
    assert!(matches!(
        read(&b),
        Err(FormatError::Truncated {
            section: "file",
            ..
        })
    ));
}

/// Rewrites the section table entry `k` and fixes the checksum, so the structural check runs.
fn with_section(bytes: &[u8], k: usize, off: u64, size: u64) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let at = HEADER_SIZE + 24 * k;
    b[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
    b[at + 16..at + 24].copy_from_slice(&size.to_le_bytes());
    // A table entry outside the file cannot be sealed: `read` rejects it before the checksum.
    seal_checksum(&mut b);
    b
}

#[test]
fn seal_checksum_reseals_edited_files_and_refuses_unlocatable_ones() {
    let bytes = file();
    // Sealing an intact file changes nothing.
    let mut same = bytes.clone();
    assert!(seal_checksum(&mut same));
    assert_eq!(same, bytes);
    // A byte of META edited: the stale checksum is caught, the resealed one is not.
    let meta = read(&bytes).unwrap().sections[0].range.clone();
    let mut b = bytes.clone();
    b[meta.end - 1] ^= 0x5a;
    assert!(matches!(read(&b), Err(FormatError::Checksum { .. })));
    assert!(seal_checksum(&mut b));
    assert!(!matches!(read(&b), Err(FormatError::Checksum { .. })));
    // Weights are not covered: editing them needs no reseal.
    let weights = read(&bytes).unwrap().weights;
    if !weights.is_empty() {
        let mut w = bytes.clone();
        w[weights.start] ^= 1;
        let mut sealed = w.clone();
        assert!(seal_checksum(&mut sealed));
        assert_eq!(sealed, w);
    }
    // Too short, no sections, too many, a table past the end, META outside the file.
    assert!(!seal_checksum(&mut bytes[..40].to_vec()));
    for n in [0u32, 65, 1000] {
        let mut b = bytes.clone();
        b[32..36].copy_from_slice(&n.to_le_bytes());
        let before = b.clone();
        assert!(!seal_checksum(&mut b));
        assert_eq!(b, before);
    }
    assert!(!seal_checksum(&mut bytes[..HEADER_SIZE + 30].to_vec()));
    let mut b = bytes.clone();
    b[HEADER_SIZE + 8..HEADER_SIZE + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(!seal_checksum(&mut b));
}

#[test]
fn section_offsets_out_of_bounds_are_rejected() {
    let bytes = file();
    let len = bytes.len() as u64;
    for (k, off, size) in [
        (0, len, 10),
        (0, 10, 10),
        (1, len - 8, 64),
        (1, u64::MAX - 3, 8),
        (1, 65, 0),
    ] {
        let b = with_section(&bytes, k, off, size);
        let e = read(&b).unwrap_err();
        assert!(
            matches!(
                e,
                FormatError::Invalid {
                    section: "section table",
                    ..
                } | FormatError::Truncated { .. }
            ),
            "{k} {off} {size}: {e}"
        );
    }
}

fn rejects(mutate: impl FnOnce(&mut Plan), expect: &str) {
    let (mut p, w) = sample();
    mutate(&mut p);
    let e = read(&write(&p, &w, 0)).unwrap_err();
    assert!(
        e.to_string().contains(expect),
        "expected `{expect}`, got `{e}`"
    );
}

#[test]
fn invalid_plans_with_valid_checksums_are_rejected() {
    rejects(|p| p.exprs[2] = Expr::Mul(0, 5), "refers forward");
    rejects(|p| p.exprs[0] = Expr::Sym(9), "missing symbol");
    rejects(|p| p.arena_size = 99, "arena size");
    rejects(
        |p| p.guards[0].expr = 99,
        "guard `a test guard`: expression out of range",
    );
    rejects(
        |p| p.tensors[0].shape = vec![77],
        "shape expression out of range",
    );
    rejects(
        |p| p.tensors[1].storage = Storage::Weight { offset: 64, len: 8 },
        "outside the weights section",
    );
    rejects(
        |p| p.tensors[1].storage = Storage::Weight { offset: 4, len: 8 },
        "aligned",
    );
    rejects(
        |p| p.tensors[1].storage = Storage::Weight { offset: 0, len: 12 },
        "12 bytes for 2 elements",
    );
    rejects(|p| p.tensors[1].shape = vec![0], "non-constant shape");
    rejects(
        |p| p.tensors[2].storage = Storage::Input(3),
        "model input 3",
    );
    rejects(
        |p| p.tensors[2].storage = Storage::Arena { offset: 40 },
        "arena offset",
    );
    rejects(
        |p| p.graphs[0].steps[0].inputs[0] = Some(100),
        "tensor 100 does not exist",
    );
    rejects(
        |p| p.graphs[0].steps[0].attrs[5].1 = AttrValue::Tensor(2),
        "not a weight tensor",
    );
    rejects(|p| p.graphs[0].steps[1].rebinds[0].dim = 5, "bad rebinding");
    rejects(
        |p| p.graphs[0].steps[1].rebinds[0].tensor = 2,
        "bad rebinding",
    );
    rejects(|p| p.graphs[0].steps[2].bodies = vec![1, 1], "used twice");
    rejects(
        |p| p.graphs[0].steps[2].bodies = vec![1, 0],
        "sub-plan 0 does not exist",
    );
    rejects(|p| p.graphs[0].steps[2].bodies = vec![1], "not reachable");
    rejects(|p| p.graphs[1].steps[0].bodies = vec![2], "used twice");
    rejects(
        |p| p.graphs[0].steps[3].versions[0].when[0] = (0, 9, 1),
        "bad version condition",
    );
    rejects(
        |p| {
            p.graphs[0].steps[0].versions = vec![KernelVersion {
                id: VersionId::ConvChannelBlocked,
                when: vec![],
            }]
        },
        "step `add` (Add): kernel version 2 (conv-channel-blocked) does not apply",
    );
    rejects(
        |p| p.graphs[0].steps[3].attrs = vec![("group".into(), AttrValue::Int(0))],
        "step `conv` (Conv): attribute `group` is 0, must be at least 1",
    );
    rejects(|p| p.symbols[0].lo = 600, "empty range");
    rejects(
        |p| p.graphs[0].value_binds = vec![(0, 5)],
        "bad value binding",
    );
    rejects(
        |p| {
            p.graphs.clear();
            p.tensors.clear();
        },
        "no main graph",
    );
}

#[test]
fn unknown_extra_sections_round_trip_intact() {
    let (p, w) = sample();
    let blob: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let extra = [
        (section::FIRST_EXTRA + 7, &blob[..]),
        (0x9999, &b"spirv"[..]),
    ];
    let bytes = write_with_sections(&p, &w, 3, &extra);
    let f = read(&bytes).unwrap();
    assert_eq!(f.plan, p);
    assert_eq!(&bytes[f.weights.clone()], &w[..]);
    let kept = f.extra_sections(&bytes);
    assert_eq!(kept, extra.to_vec());
    for s in &f.sections {
        if s.kind != section::META {
            assert_eq!(s.range.start % 64, 0, "section {} not aligned", s.kind);
        }
    }
    // A tool that rewrites the plan with what it read writes the same file.
    assert_eq!(write_with_sections(&f.plan, &w, f.features, &kept), bytes);
    // Extra sections are covered by the checksum.
    let at = f
        .sections
        .iter()
        .find(|s| s.kind == 0x9999)
        .unwrap()
        .range
        .start;
    let mut b = bytes.clone();
    b[at] ^= 1;
    assert!(matches!(read(&b), Err(FormatError::Checksum { .. })));
}

#[test]
fn unknown_codes_are_named() {
    let (p, w) = sample();
    let bytes = write(&p, &w, 0);
    // The add step's operator code follows its name in META: find it and corrupt it.
    let meta = read(&bytes).unwrap().sections[0].range.clone();
    let name = b"\x03\0\0\0add";
    let at = meta.start
        + bytes[meta.clone()]
            .windows(name.len())
            .position(|x| x == name)
            .unwrap()
        + name.len();
    assert_eq!(
        u16::from_le_bytes([bytes[at], bytes[at + 1]]),
        OpCode::Add.code()
    );
    let reseal = |mut b: Vec<u8>| {
        assert!(seal_checksum(&mut b));
        b
    };
    let mut b = bytes.clone();
    b[at..at + 2].copy_from_slice(&0x3fffu16.to_le_bytes());
    let e = read(&reseal(b)).unwrap_err().to_string();
    assert!(
        e.contains("step `add`: operator code 16383 is unknown"),
        "{e}"
    );
    let mut b = bytes.clone();
    b[at + 2] = 9;
    let e = read(&reseal(b)).unwrap_err().to_string();
    assert!(e.contains("step `add`: backend code 9 is unknown"), "{e}");
}

#[test]
fn op_codes_are_stable_and_names_round_trip() {
    for &op in OpCode::ALL {
        assert_eq!(OpCode::from_code(op.code()), Some(op));
        assert_eq!(OpCode::from_name(op.name()), Some(op));
    }
    // Codes stored in plans never change.
    assert_eq!(OpCode::Abs.code(), 1);
    assert_eq!(OpCode::Conv.code(), 70);
    assert_eq!(OpCode::Scan.code(), 135);
    assert_eq!(OpCode::LSTM.code(), 136);
    assert_eq!(OpCode::GRU.code(), 137);
    assert_eq!(OpCode::RNN.code(), 138);
    assert_eq!(OpCode::GridSample.code(), 150);
    assert_eq!(OpCode::TensorScatter.code(), 155);
    assert_eq!(OpCode::Fused.name(), "sod2.Fused");
    assert_eq!(OpCode::Values.name(), "sod2.Values");
    for &v in VersionId::ALL {
        assert_eq!(VersionId::from_code(v.code()), Some(v));
    }
}

#[test]
fn eval_pool_binds_progressively() {
    let (p, _) = sample();
    let mut out = Vec::new();
    eval_pool(&p.exprs, &[Some(5), None], &mut out).unwrap();
    assert_eq!(out[2], Some(20));
    assert_eq!(out[5], None);
    assert_eq!(out[7], Some(5));
    eval_pool(&p.exprs, &[Some(5), Some(3)], &mut out).unwrap();
    assert_eq!(out[5], Some(3));
    let div0 = [Expr::Const(1), Expr::Const(0), Expr::FloorDiv(0, 1)];
    assert_eq!(
        eval_pool(&div0, &[], &mut out),
        Err(EvalError::DivByZero(2))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), prefix in any::<bool>()) {
        let mut b = if prefix { file()[..64].to_vec() } else { Vec::new() };
        b.extend_from_slice(&bytes);
        let _ = read(&b);
    }

    #[test]
    fn random_corruption_of_a_valid_plan_never_panics(pos in any::<prop::sample::Index>(), val in any::<u8>()) {
        let mut b = file();
        let i = pos.index(b.len());
        b[i] = val;
        let _ = read(&b);
    }

    #[test]
    fn floor_and_ceil_match_reference(a in -1000i64..1000, b in prop_oneof![-9i64..-1, 1i64..9]) {
        let pool = [Expr::Const(a), Expr::Const(b), Expr::FloorDiv(0, 1), Expr::CeilDiv(0, 1), Expr::Mod(0, 1)];
        let mut out = Vec::new();
        eval_pool(&pool, &[], &mut out).unwrap();
        let f = (a as f64 / b as f64).floor() as i64;
        prop_assert_eq!(out[2], Some(f));
        prop_assert_eq!(out[3], Some((a as f64 / b as f64).ceil() as i64));
        prop_assert_eq!(out[4], Some(a - f * b));
    }
}

#[test]
fn sequence_and_optional_values_round_trip_and_are_checked() {
    let (mut p, w) = sample();
    for (name, kind, input) in [
        ("s", ValueKind::Sequence, None),
        ("o", ValueKind::Optional, Some(0)),
        ("os", ValueKind::OptionalSequence, None),
    ] {
        p.tensors.push(Tensor {
            name: name.into(),
            dtype: DType::F32,
            shape: vec![],
            storage: Storage::Value { kind, input },
        });
    }
    let f = read(&write(&p, &w, 0)).unwrap();
    assert_eq!(f.plan, p);
    assert_eq!(
        Storage::Value {
            kind: ValueKind::Optional,
            input: Some(0)
        }
        .input(),
        Some(0)
    );
    assert!(Storage::Value {
        kind: ValueKind::Sequence,
        input: None
    }
    .is_heap());
    assert!(
        ValueKind::OptionalSequence.holds_sequence() && ValueKind::OptionalSequence.is_optional()
    );
    assert!(!ValueKind::Sequence.is_optional() && !ValueKind::Optional.holds_sequence());
    rejects(
        |p| {
            p.tensors.push(Tensor {
                name: "v".into(),
                dtype: DType::F32,
                shape: vec![],
                storage: Storage::Value {
                    kind: ValueKind::Sequence,
                    input: Some(9),
                },
            })
        },
        "value `v`: model input 9 does not exist",
    );
}

#[test]
fn expression_text_is_bounded_by_its_budget() {
    // max(max(...max(s, s + 1)...)) sharing one subterm: text doubles per level, the pool does not.
    let symbols = vec![Symbol {
        name: "s".into(),
        lo: 1,
        hi: 9,
        origin: None,
    }];
    let mut exprs = vec![Expr::Sym(0), Expr::Const(1)];
    exprs.push(Expr::Add(0, 1));
    for _ in 0..60 {
        let last = (exprs.len() - 1) as u32;
        exprs.push(Expr::Max(last, last));
    }
    let top = (exprs.len() - 1) as u32;
    assert_eq!(
        expr_text_within(&exprs, &symbols, 2, 100).as_deref(),
        Some("s + 1")
    );
    assert_eq!(expr_text_within(&exprs, &symbols, 2, 4), None);
    // a chain of binary max prints as one call over its distinct operands
    assert_eq!(
        expr_text_within(&exprs, &symbols, top, 10_000).as_deref(),
        Some("s + 1")
    );
    assert_eq!(expr_text(&exprs, &symbols, 3), "s + 1");
    assert_eq!(expr_size(&exprs, top), exprs.len());
    // max(max(max(s, 1), s + 1), min(min(s, 1), 2))
    let mut exprs = vec![Expr::Sym(0), Expr::Const(1), Expr::Const(2)];
    exprs.push(Expr::Add(0, 1)); // 3
    exprs.push(Expr::Max(0, 1)); // 4
    exprs.push(Expr::Max(4, 3)); // 5
    exprs.push(Expr::Min(0, 1)); // 6
    exprs.push(Expr::Min(6, 2)); // 7
    exprs.push(Expr::Max(5, 7)); // 8
    assert_eq!(
        expr_text(&exprs, &symbols, 8),
        "max(s, 1, s + 1, min(s, 1, 2))"
    );
    assert_eq!(
        expr_text_within(&exprs, &symbols, 8, 30).as_deref(),
        Some("max(s, 1, s + 1, min(s, 1, 2))")
    );
    assert_eq!(expr_text_within(&exprs, &symbols, 8, 20), None);
    // a wide chain of distinct operands is still bounded by the budget
    let mut exprs = vec![Expr::Sym(0)];
    for k in 0..5000 {
        exprs.push(Expr::Const(k));
        let (last, c) = ((exprs.len() - 2) as u32, (exprs.len() - 1) as u32);
        exprs.push(Expr::Max(last, c));
    }
    let top = (exprs.len() - 1) as u32;
    assert_eq!(expr_text_within(&exprs, &symbols, top, 1000), None);
    assert!(expr_text(&exprs, &symbols, top).starts_with("max(s, 0, 1, 2"));
}
